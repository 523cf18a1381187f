"""The claims ledger end to end, on a two-page book built by Sphinx with the book's own extension.

A toy chapter executes (myst-nb, a real kernel) and records one check with the real recorder; the ledger
page lists it. Then the chapter's check changes outcome (reproduced -> does not reproduce at our scale)
and the book is rebuilt incrementally, the ledger page's own source untouched: the ledger must change.
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

CONF = f"""
import sys
sys.path.insert(0, {str(ROOT / '_ext')!r})
extensions = ["myst_nb", "kexue_book"]
kexue_api_pages = False
nb_execution_mode = "force"
nb_execution_raise_on_error = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
exclude_patterns = ["_build"]
html_theme = "basic"
"""

INDEX = """\
# Toy book

```{toctree}
book/toy/toy-chapter
ledger
```
"""

LEDGER = """\
# Ledger

```{kexue-claims-ledger}
```
"""

CHAPTER = """\
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
# Toy chapter

```{code-cell} ipython3
from kexue_core.checks import CheckRecorder
checks = CheckRecorder("toy-chapter", source="https://kexue.fm/archives/8823")
CHECK
```
"""

REPRODUCED = 'checks.close("pi to three digits", 3.14159, 3.142, atol=5e-4, why="printed to 3 decimals")'
DIFFERS = 'checks.differs("pi to three digits", 3.0, 3.142, min_gap=0.1, why="a cruder value")'


def _build(src: Path, out: Path, claims: Path) -> str:
    env = {**os.environ, "KEXUE_CLAIMS_DIR": str(claims), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", str(src), str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return (out / "ledger.html").read_text(encoding="utf-8")


def ledger_table(page: str) -> list[list[str]]:
    """The body rows of the ledger table (class ``kexue-ledger``) of a built page, as cell texts."""
    m = re.search(r'<table class="[^"]*\bkexue-ledger\b(?!-)[^"]*">(.*?)</table>', page, re.S)
    assert m, "no ledger table on the page"
    body = m.group(1).split("<tbody>", 1)[-1]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_changing_a_check_changes_the_ledger(tmp_path):
    src, out, claims = tmp_path / "src", tmp_path / "out", tmp_path / "claims"
    (src / "book" / "toy").mkdir(parents=True)
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text(INDEX)
    (src / "ledger.md").write_text(LEDGER)
    chapter = src / "book" / "toy" / "toy-chapter.md"
    chapter.write_text(CHAPTER.replace("CHECK", REPRODUCED))

    first = _build(src, out, claims)
    assert (claims / "toy-chapter.json").is_file(), "the executing chapter wrote its records"
    rows = ledger_table(first)
    assert len(rows) == 1
    chapter_cell, n, claim, expected, got, tolerance, status = rows[0]
    assert (claim, expected, got, status) == ("pi to three digits", "3.142", "3.14159", "reproduced")
    assert "Toy chapter" in chapter_cell and "printed to 3 decimals" in tolerance
    page = (out / "book" / "toy" / "toy-chapter.html").read_text(encoding="utf-8")
    assert "从熵不变性看Attention的Scale操作" in page and "kexue.fm/archives/8823" in page, "the header box"
    assert "toy-chapter.ipynb" in page and list(out.glob("_downloads/*/toy-chapter.ipynb")), "the notebook download"

    chapter.write_text(CHAPTER.replace("CHECK", DIFFERS))
    second = _build(src, out, claims)  # incremental: ledger.md itself is unchanged
    rows = ledger_table(second)
    assert len(rows) == 1
    _, _, claim, expected, got, tolerance, status = rows[0]
    assert (claim, expected, got, status) == ("pi to three digits", "3.142", "3", "does not reproduce at our scale")
    assert "a cruder value" in tolerance
