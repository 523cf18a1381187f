"""The claims ledger and never-stale rebuilds, end to end, on a tiny book built by Sphinx with the
book's own extension (myst-nb executing real kernels, the real check recorder).

The toy book has two chapters: ``toy-a`` imports a module of a toy package ``toycore`` (which imports
another of its modules, ``toycore._helper``), records checks of every kind (the post's and the book's,
a refuted claim with its Erratum box, an untested claim); ``toy-b`` imports nothing from ``toycore``.
The test builds it (two processes: Sphinx's parallel reading), rebuilds with no change (nothing
executes), changes ``toycore/_helper.py`` (only ``toy-a`` executes again, and its check changes
outcome, the ledger page's own source untouched), compares the ledger, errata and execution statistics
with those of a fresh build, and finds the imported modules and ``requirements.txt`` among the
dependencies Sphinx keeps for the chapter.
"""
from __future__ import annotations

import html
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "_ext"))
from kexue_book import dependencies, parallel  # noqa: E402

CONF = f"""
import sys
sys.path.insert(0, {str(ROOT / '_ext')!r})
extensions = ["myst_nb", "kexue_book"]
kexue_api_pages = False
kexue_tracked_packages = ["kexue_core", "toycore"]
nb_execution_mode = "force"
nb_execution_raise_on_error = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
exclude_patterns = ["_build", "toycore"]
html_theme = "basic"
"""

INDEX = """\
# Toy book

```{toctree}
book/toy/toy-a
book/toy/toy-b
ledger
errata
execution
```
"""

PAGES = {
    "ledger.md": "# Ledger\n\n```{kexue-claims-ledger}\n```\n",
    "errata.md": "# Errata\n\n```{kexue-errata}\n```\n",
    "execution.md": "# Execution\n\n```{nb-exec-table}\n```\n",
}

FRONT = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kexue:
  posts:
    - archive: 8823
      title_zh: 从熵不变性看Attention的Scale操作
      title_en: Attention Scaling from the Perspective of Entropy Invariance
      date: "2021-12-21"
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""

CHAPTER_A = FRONT + """\
# Toy chapter A

:::{admonition} Erratum: the post's pi
:class: warning
:name: erratum-toy-a-pi

The post rounds pi to 3.
:::

```{code-cell} ipython3
import os
from kexue_core.checks import CheckRecorder
from toycore.api import value

open(os.environ["TOY_RUNS"], "a").write("toy-a\\n")
checks = CheckRecorder("toy-a", source="https://kexue.fm/archives/8823")
v = value()
if abs(v - 3.142) <= 5e-4:
    checks.close("pi to three digits", v, 3.142, atol=5e-4, why="printed to 3 decimals", claim_of="post")
else:
    checks.not_at_scale("pi to three digits", v, 3.142, min_gap=0.1, why="a cruder value")
checks.holds("pi is positive", v > 0, claim_of="book", why="sign")
checks.refutes("the post's pi is 3", 3.14159, 3.0, min_gap=0.1, erratum="erratum-toy-a-pi", why="it rounds")
checks.untested("pi is irrational", why="not numerical")
```
"""

CHAPTER_B = FRONT + """\
# Toy chapter B

```{code-cell} ipython3
import os
from kexue_core.checks import CheckRecorder

open(os.environ["TOY_RUNS"], "a").write("toy-b\\n")
checks = CheckRecorder("toy-b", source="https://kexue.fm/archives/8823")
checks.close("e to two digits", 2.71828, 2.72, atol=5e-3, why="printed to 2 decimals", claim_of="post")
```
"""

HELPER = "PI = {}\n"
API = "from toycore._helper import PI\n\n\ndef value():\n    return PI\n"


def _write_book(src: Path) -> None:
    (src / "book" / "toy").mkdir(parents=True)
    (src / "toycore").mkdir()
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text(INDEX)
    for name, text in PAGES.items():
        (src / name).write_text(text)
    (src / "book" / "toy" / "toy-a.md").write_text(CHAPTER_A)
    (src / "book" / "toy" / "toy-b.md").write_text(CHAPTER_B)
    (src / "toycore" / "__init__.py").write_text("")
    (src / "toycore" / "api.py").write_text(API)
    (src / "toycore" / "_helper.py").write_text(HELPER.format(3.14159))
    (src / "requirements.txt").write_text("sympy\n")


def _build(src: Path, out: Path, claims: Path, runs: Path) -> list[str]:
    """Build (incrementally if ``out`` holds a build); return the chapters that executed."""
    before = runs.read_text().split() if runs.is_file() else []
    env = {**os.environ, "KEXUE_CLAIMS_DIR": str(claims), "PYTHONPATH": f"{ROOT}{os.pathsep}{src}",
           "TOY_RUNS": str(runs), "KEXUE_BUILD_JOBS": "2"}
    r = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", str(src), str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    after = runs.read_text().split() if runs.is_file() else []
    return after[len(before):]


def _table(page: str, cls: str) -> list[list[str]]:
    """The body rows of the table of class ``cls`` of a built page, as cell texts."""
    m = re.search(r'<table class="[^"]*\b' + re.escape(cls) + r'\b(?!-)[^"]*">(.*?)</table>', page, re.S)
    assert m, f"no table of class {cls} on the page"
    body = m.group(1).split("<tbody>", 1)[-1]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def ledger_table(page: str) -> list[list[str]]:
    """The body rows of the ledger table (class ``kexue-ledger``) of a built page, as cell texts:
    chapter, #, claim, of, expected, got, tolerance, status."""
    return _table(page, "kexue-ledger")


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _pages(out: Path) -> dict[str, object]:
    """What must not depend on how the book was built (fresh or incrementally)."""
    ledger = (out / "ledger.html").read_text(encoding="utf-8")
    errata = (out / "errata.html").read_text(encoding="utf-8")
    execution = (out / "execution.html").read_text(encoding="utf-8")
    main = lambda page: re.search(r'<div class="body" role="main">(.*?)</div>\s*</div>\s*</div>', page, re.S)  # noqa: E731
    exec_rows = [[r[0], r[2], r[4]] for r in _table(execution, "docutils")]  # document, method, status (not times)
    return {
        "ledger": _text(main(ledger).group(1)),
        "errata": _text(main(errata).group(1)),
        "execution": exec_rows,
    }


def test_ledger_and_never_stale_rebuilds(tmp_path):
    src, out, claims, runs = tmp_path / "src", tmp_path / "out", tmp_path / "claims", tmp_path / "runs.txt"
    _write_book(src)

    assert sorted(_build(src, out, claims, runs)) == ["toy-a", "toy-b"]
    page = (out / "ledger.html").read_text(encoding="utf-8")
    rows = ledger_table(page)
    assert [r[2:] for r in rows] == [
        ["pi to three digits", "post", "3.142", "3.14159", rows[0][6], "reproduced"],
        ["pi is positive", "book", "", "holds in 1/1", rows[1][6], "holds"],
        ["the post's pi is 3", "post", "3", "3.14159", rows[2][6], "refuted"],
        ["e to two digits", "post", "2.72", "2.71828", rows[3][6], "reproduced"],
    ]
    assert "Toy chapter A" in rows[0][0] and "printed to 3 decimals" in rows[0][6]
    # the refuted record links to its Erratum box, which is on the chapter page
    link = re.search(r'<a class="reference internal" href="([^"]+)">refuted</a>', page)
    assert link and link.group(1) == "book/toy/toy-a.html#erratum-toy-a-pi", link
    assert 'id="erratum-toy-a-pi"' in (out / "book" / "toy" / "toy-a.html").read_text(encoding="utf-8")
    # totals and per chapter: the post's claims and the book's results apart, each status, untested
    totals = {r[0]: r[1:] for r in _table(page, "kexue-ledger-totals")}
    assert totals["reproduced"] == ["2", "0", "2"] and totals["holds"] == ["0", "1", "1"]
    assert totals["refuted"] == ["1", "0", "1"] and totals["all"] == ["3", "1", "4"]
    assert len(totals) == 9, "one row per status of kexue_core.checks.STATUSES, and the total"
    per_chapter = _table(page, "kexue-ledger-summary")
    assert [r[1:3] + r[-1:] for r in per_chapter] == [["2", "1", "1"], ["1", "0", "0"]]
    untested = re.search(r'<ul class="[^"]*kexue-ledger-untested[^"]*">(.*?)</ul>', page, re.S)
    assert untested and "pi is irrational" in _text(untested.group(1)) and "not numerical" in untested.group(1)
    assert "1 claims of the posts not tested" in _text(page)

    assert _build(src, out, claims, runs) == [], "a rebuild with no change executes nothing"
    assert (claims / "imports" / "book__toy__toy-a.json").is_file()

    time.sleep(0.01)  # a later mtime than the last execution's start
    (src / "toycore" / "_helper.py").write_text(HELPER.format(3.0))  # used by toy-a through toycore.api
    assert _build(src, out, claims, runs) == ["toy-a"], "only the chapter that imported the module executes"
    incremental = _pages(out)
    rows = ledger_table((out / "ledger.html").read_text(encoding="utf-8"))
    assert rows[0][2:6] == ["pi to three digits", "post", "3.142", "3"] and rows[0][7] == "not reproduced at our scale"

    fresh_out, fresh_claims = tmp_path / "fresh", tmp_path / "fresh-claims"
    assert sorted(_build(src, fresh_out, fresh_claims, runs)) == ["toy-a", "toy-b"]
    assert incremental == _pages(fresh_out), "an incremental build shows what a fresh build shows"
    assert len(incremental["execution"]) == 2 and all("✅" in r[2] for r in incremental["execution"])

    # declared to Sphinx: what toy-a imported (through toycore.api too) and requirements.txt
    with open(out / ".doctrees" / "environment.pickle", "rb") as f:
        deps = pickle.load(f).dependencies
    assert {"requirements.txt", "toycore/api.py", "toycore/_helper.py", "toycore/__init__.py"} <= deps["book/toy/toy-a"]
    assert "requirements.txt" in deps["book/toy/toy-b"] and not any("toycore" in d for d in deps["book/toy/toy-b"])


# -- the pieces, without a build ----------------------------------------------------------------
def test_record_cell_writes_the_tracked_modules(tmp_path):
    """The hidden cell, run here: it lists the modules of the tracked packages and their files."""
    path = tmp_path / "rec.json"
    cell = dependencies.record_cell(path, ["json", "kexue_core"])
    code = cell.split("\n", 3)[3].rsplit("```", 1)[0]
    assert ":tags: [remove-cell]" in cell
    import json

    import kexue_core.checks  # noqa: F401

    exec(code, {})
    got = json.loads(path.read_text())
    assert {"json", "json.decoder", "kexue_core", "kexue_core.checks"} <= set(got)
    assert got["kexue_core.checks"].endswith("checks.py") and not any(n.startswith("os") for n in got)


def test_outdated_imports(tmp_path):
    (tmp_path / "m.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")
    # just after the later of the two files' times (they can fall on two sides of a clock tick)
    later = max((tmp_path / f).stat().st_mtime_ns for f in ("m.py", "requirements.txt")) // 1000 + 1
    imports = {
        "fresh": {"started": later, "modules": {"m": "m.py"}},
        "stale": {"started": later - 10**7, "modules": {"m": "m.py"}},
        "no-record": {"started": later, "modules": None},
        "gone": {"started": later, "modules": {"x": "x.py"}},
    }
    assert dependencies.outdated_imports(str(tmp_path), imports, ["requirements.txt"]) == ["gone", "no-record", "stale"]
    assert dependencies.outdated_imports(str(tmp_path), {"a": imports["fresh"]}, ["missing.txt"]) == []


def test_cost_chunks_put_each_notebook_alone_longest_first():
    docs = [f"d{i:02d}" for i in range(25)]
    cost = {d: 0.1 for d in docs} | {"d10": 30, "d03": 25, "d20": 8}
    chunks = parallel.cost_chunks(docs, cost)
    assert chunks[:3] == [["d10"], ["d03"], ["d20"]]
    assert [len(c) for c in chunks[3:]] == [10, 10, 2] and sorted(d for c in chunks for d in c) == docs


def test_sphinx_chunking_is_what_cost_chunks_replaces():
    """Sphinx 7.4's own chunks are contiguous and equal in length (why cost_chunks exists); the
    reading phase finds make_chunks in sphinx.builders, where the extension swaps it."""
    import inspect

    import sphinx.builders

    assert [len(c) for c in sphinx.builders.make_chunks(list(range(31)), 2)] == [12, 12, 7]
    assert "make_chunks(docnames, nproc)" in inspect.getsource(sphinx.builders.Builder._read_parallel)


def test_build_jobs(monkeypatch):
    monkeypatch.delenv(parallel.JOBS_ENV, raising=False)
    assert parallel.build_jobs("auto") >= 1 and parallel.build_jobs(3) == 3
    monkeypatch.setenv(parallel.JOBS_ENV, "1")
    assert parallel.build_jobs("auto") == 1
    monkeypatch.setenv(parallel.JOBS_ENV, "zero")
    with pytest.raises(ValueError, match="KEXUE_BUILD_JOBS"):
        parallel.build_jobs("auto")
