"""Checks of the built book (``_build/html``): the appendices are complete and generated, every chapter
has its header and notebook download, nothing is fetched from the network.

Needs a built book, so the plain ``pytest`` run (before the build) skips it, saying so. After
``jupyter-book build .`` run ``KEXUE_BOOK_HTML=_build/html pytest tests/test_book_built.py`` (``.ci/run``
does, right after the build).
"""
from __future__ import annotations

import html as htmllib
import importlib
import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, is_notebook_chapter, toc_files

sys.path.insert(0, str(ROOT / "_ext"))
import kexue_book  # noqa: E402
from test_book_ledger import ledger_table  # noqa: E402

HTML_ENV = "KEXUE_BOOK_HTML"
APPX = "book/appendices"


@pytest.fixture(scope="module")
def html() -> Path:
    value = os.environ.get(HTML_ENV)
    if not value:
        pytest.skip(
            f"checks of the built book: build it first (`jupyter-book build .`), then run "
            f"`{HTML_ENV}=_build/html pytest tests/test_book_built.py` (.ci/run does this after the build)"
        )
    p = Path(value) if Path(value).is_absolute() else ROOT / value
    if not (p / "index.html").is_file():
        pytest.fail(f"{HTML_ENV}={p} but there is no built book there (no index.html)")
    return p


def _page(html: Path, doc: str) -> str:
    return (html / f"{doc}.html").read_text(encoding="utf-8")


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _norm(s: str) -> str:
    """For comparing titles: whitespace, case and quote style aside."""
    return re.sub(r"\s+", " ", re.sub(r"[\"“”'‘’]", '"', s)).casefold().strip()


def _chapters() -> list[str]:
    return [  # notebooks of the parts; the appendices may hold notebooks too, but they derive no post
        f for f in toc_files()
        if not f.startswith("book/appendices/") and (ROOT / f"{f}.md").is_file() and is_notebook_chapter(ROOT / f"{f}.md")
    ]


def test_no_page_needs_the_network(html):
    """No script, stylesheet, font or image is loaded from another host (links to posts are fine)."""
    offenders = {}
    for p in html.rglob("*.html"):
        text = p.read_text(encoding="utf-8")
        bad = re.findall(r'<(?:script|img|iframe)[^>]+src="(https?:)?//[^"]+"', text)
        bad += re.findall(r'<link[^>]+rel="(?:stylesheet|preload|icon)"[^>]+href="https?://[^"]+"', text)
        if bad:
            offenders[str(p.relative_to(html))] = bad
    assert not offenders, offenders
    css_remote = [str(p.relative_to(html)) for p in (html / "_static").rglob("*.css")
                  if re.search(r"@import\s+url\(\s*['\"]?https?:|url\(\s*['\"]?https?://", p.read_text(errors="ignore"))]
    assert not css_remote, f"stylesheets that fetch from the network: {css_remote}"
    assert (html / "_static" / kexue_book.MATHJAX_ENTRY).is_file(), "MathJax is not served from the site"


def test_api_pages_list_every_public_name(html):
    missing = []
    mods = kexue_book.public_modules()
    for modname in mods:
        mod = importlib.import_module(modname)
        page = html / kexue_book.API_DIR / f"{modname}.html"
        if not page.is_file():
            missing.append(f"no page for {modname}")
            continue
        for name in kexue_book.public_names(mod):
            if importlib.util.find_spec(f"{modname}.{name}") if hasattr(mod, "__path__") and f"{modname}.{name}" in mods else False:
                continue  # a submodule listed in __all__
            where = kexue_book.documented_location(mod, name, mods)
            target = html / kexue_book.API_DIR / f"{where}.html"
            if f'id="{where}.{name}"' not in target.read_text(encoding="utf-8"):
                missing.append(f"{modname}.{name} (expected on the page of {where})")
    assert not missing, "public names missing from the API pages: " + ", ".join(missing)


def test_ledger_lists_every_check_of_every_chapter(html):
    """Every record of every chapter is a row (claim, whose, got, status), the post's claims and the
    book's results are counted apart per chapter, every refuted row links to an Erratum box that
    exists on its chapter's page, and every untested claim is listed."""
    from kexue_core.checks import STATUSES

    claims_dir = Path(os.environ.get("KEXUE_CLAIMS_DIR") or html.parent / "claims")
    page = _page(html, f"{APPX}/claims-ledger")
    rows = ledger_table(page)
    problems, expected_rows, per_chapter, untested = [], [], [], []
    for doc in _chapters():
        slug = doc.rsplit("/", 1)[-1]
        f = claims_dir / f"{slug}.json"
        payload = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
        records = payload.get("records", [])
        if not records:
            problems.append(f"{doc}: recorded no check (use kexue_core.checks.CheckRecorder)")
        expected_rows += [(r["claim"], r["claim_of"], r["got"], r["status"]) for r in records]
        per_chapter.append([str(sum(r["claim_of"] == w for r in records)) for w in ("post", "book")]
                           + [str(sum(r["status"] == s for r in records)) for s in STATUSES]
                           + [str(len(payload.get("untested", [])))])
        untested += [_text(u["claim"]) for u in payload.get("untested", [])]
    got_rows = [(_text(r[2]), r[3], _text(r[5]), r[7]) for r in rows]
    norm = [(_text(c), w, _text(g), s) for c, w, g, s in expected_rows]
    # math cells are typeset differently: compare the claim, whose and status, and got where it has no math
    assert [(c, w, s) for c, w, _, s in got_rows] == [(c, w, s) for c, w, _, s in norm], "ledger rows differ from the records"
    for (c, _, g, _), (_, _, g2, _) in zip(got_rows, norm):
        if "$" not in g2:
            assert g == g2, f"{c}: ledger shows got={g!r}, the record says {g2!r}"
    summary = re.search(r'<table class="[^"]*kexue-ledger-summary[^"]*">(.*?)</table>', page, re.S).group(1)
    shown = [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)][1:]
             for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", summary.split("<tbody>", 1)[-1], re.S)]
    assert shown == per_chapter, "per-chapter counts (post, book, each status, untested) differ from the records"
    for href in re.findall(r'<a class="reference internal" href="([^"]+)">refuted</a>', page):
        target, _, anchor = href.partition("#")
        chapter_page = (html / APPX / target).resolve()
        assert anchor and f'id="{anchor}"' in chapter_page.read_text(encoding="utf-8"), f"refuted row links to {href}: no such box"
    n_refuted = sum(s == "refuted" for _, _, _, s in norm)
    assert page.count('">refuted</a>') == n_refuted, "every refuted row links to its Erratum box"
    listed = _text(" ".join(re.findall(r'<ul class="[^"]*kexue-ledger-untested[^"]*">(.*?)</ul>', page, re.S)))
    assert all(u in listed for u in untested), "untested claims missing from the ledger"
    assert not problems, "\n".join(problems)


def test_errata_lists_every_erratum_and_approximation(html):
    n_src = 0
    for doc in _chapters():
        n_src += len(re.findall(r"^\s*(?::{3,}|`{3,})\{admonition\}\s+(?:Erratum|Approximation)", (ROOT / f"{doc}.md").read_text(encoding="utf-8"), re.M))
    n_page = _page(html, f"{APPX}/errata").count('class="kexue-erratum"')
    assert n_page == n_src, f"{n_src} Erratum/Approximation blocks in the chapters, {n_page} on the errata page"


def test_posts_page_lists_every_post_and_chapter(html):
    page = _page(html, f"{APPX}/posts")
    posts = yaml.safe_load((ROOT / APPX / "posts.yml").read_text(encoding="utf-8"))["posts"]
    missing = [p["archive"] for p in posts if f"https://kexue.fm/archives/{p['archive']}" not in page]
    assert not missing, f"posts missing from the posts page: {missing}"
    unlinked = [doc for doc in _chapters() if f'href="../{doc.removeprefix("book/")}.html' not in page]
    assert not unlinked, f"chapters not linked from the posts page: {unlinked}"


def test_chapter_pages_have_header_and_notebook(html):
    problems = []
    for doc in _chapters():
        page = _page(html, doc)
        box = re.search(r'<div class="[^"]*\badmonition\b[^"]*">\s*<p class="admonition-title">Source posts?</p>(.*?)</div>', page, re.S)
        if not box:
            problems.append(f"{doc}: no Source post box")
            continue
        box_text = _text(box.group(1))
        meta = kexue_book.front_matter((ROOT / f"{doc}.md").read_text(encoding="utf-8"))
        for p in kexue_book.chapter_posts(meta) or []:
            for key in ("title_zh", "title_en", "date"):
                if _norm(str(p[key])) not in _norm(box_text):
                    problems.append(f"{doc}: the Source post box lacks {key} {p[key]!r} (front matter)")
            if f"https://kexue.fm/archives/{p['archive']}" not in page:
                problems.append(f"{doc}: header lacks the link to {p['archive']}")
        stem = doc.rsplit("/", 1)[-1]
        m = re.search(r'href="([^"]*_downloads/[^"]+/' + re.escape(stem) + r'\.ipynb)"', page)
        if not m:
            problems.append(f"{doc}: no link to {stem}.ipynb")
            continue
        nb_path = (html / doc).parent / m.group(1)
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        if nb.get("nbformat") != 4 or len(nb.get("cells", [])) < 3:
            problems.append(f"{doc}: {nb_path} is not a notebook of this chapter")
    assert not problems, "\n".join(problems)


def test_execution_appendix(html):
    page = _page(html, f"{APPX}/execution")
    text = _text(page)
    for doc in _chapters():
        assert doc in text, f"{doc} missing from the execution statistics"
    assert "❌" not in page, "a chapter failed to execute"
    for pkg in ("Python", "torch", "sympy", "jupyter-book", "sphinx", "myst-nb"):
        assert re.search(rf"\b{re.escape(pkg)}\b \d+\.\d+", text), f"no version of {pkg}"


# -- no hand-typed results in the prose (issue 8 §4) --------------------------------------------
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])\d{1,3}(?:,\d{3})+(?![\d,])|(?<![A-Za-z_\d.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ROLE = re.compile(r"\{([\w:-]+)\}`[^`]*`")
_CODE_SPAN = re.compile(r"(`+)(?!\{).+?\1", re.S)


def numbers(text: str) -> list[str]:
    """The numbers of ``text`` as written (``10,000`` as ``10000``); not the digits of a name
    (``float32``, ``x_2``)."""
    return [m.replace(",", "") for m in _NUMBER.findall(text)]


def prose_of(markdown: str) -> str:
    """The prose of a markdown cell, inline and display math included: without the roles other than
    ``{math}`` (``{post}``, ``{glue:text}``, ``{cite}``, ``{ref}``, ... hold quoted numbers, glued
    values and targets, not typed results), code spans, URLs and link targets, labels, comments,
    directive options, dates and the exponents of powers of ten."""
    lines = []
    for line in markdown.splitlines():
        s = line.strip()
        if re.match(r"^\(.*\)=$", s) or s.startswith("%") or re.match(r"^:[\w-]+:", s):
            continue  # a label, a MyST comment, a directive option (:name:, :width:, ...)
        if re.match(r"^(`{3,}|~{3,}|:{3,})", s):
            continue  # a fence line ({figure} path, {admonition} title kept below its own line only)
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = _ROLE.sub(lambda m: m.group(0)[len(m.group(1)) + 2:] if m.group(1) == "math" else " ", text)
    text = _CODE_SPAN.sub(" ", text)
    text = re.sub(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+", " ", text)
    text = re.sub(r"\b\d{4}-\d{2}-\d{2}\b", " ", text)  # a date (of a post)
    text = re.sub(r"10\^\{?[-−]?\d+\}?", " ", text)  # an order of magnitude, 10^{-12} (its mantissa stays)
    text = re.sub(r"[_^](\{[^{}]*\}|\w)", " ", text)  # math indices and exponents: d_{13}, x^2, W_{l}
    return text


def _outputs_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
        for mime in ("text/plain", "text/html", "text/markdown", "text/latex"):
            value = out.get("data", {}).get(mime)
            if value:
                parts.append(re.sub(r"<[^>]+>", " ", "".join(value)))
        if out.get("output_type") == "error":
            parts.append(" ".join(out.get("traceback", [])))
    return "\n".join(parts)


def _rounds_to(typed: str, computed: str) -> bool:
    """``typed`` is ``computed`` rounded to the digits typed (only for typed numbers with a decimal
    point and at least 3 significant digits: shorter ones match too much by chance)."""
    if "." not in typed or "e" in typed.lower() or len(typed.replace(".", "").lstrip("0")) < 3:
        return False
    decimals = len(typed.split(".")[1])
    try:
        return f"{float(computed):.{decimals}f}" == typed
    except ValueError:
        return False


def typed_results(chapter_md: str, executed: dict) -> list[tuple[str, str]]:
    """The numbers typed in the prose of ``chapter_md`` (a MyST notebook's source) that a code cell
    of the executed notebook ``executed`` (nbformat dict) printed, rounded or not, but no code cell's
    source contains: results typed by hand instead of glued. Integers below 100, decimals with one
    significant digit and math indices (``d_{13}``) are ignored: they match outputs by chance.
    Returns ``[(number, the prose around it)]``."""
    import jupytext

    nb = jupytext.reads(chapter_md, fmt="md:myst")
    source_numbers = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            for x in numbers(cell.source):  # 16.0 in the code stands for the 16 of the prose too
                source_numbers.add(x)
                if re.fullmatch(r"\d+\.0+", x):
                    source_numbers.add(x.split(".")[0])
    output_numbers = set()
    for cell in executed.get("cells", []):
        if cell.get("cell_type") == "code":
            output_numbers |= set(numbers(_outputs_text(cell)))
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        prose = prose_of(cell.source)
        for m in _NUMBER.finditer(prose):
            n = m.group(0).replace(",", "")
            if n in source_numbers:
                continue
            # a number with fewer than 3 digits (an integer) or 2 (a decimal) matches an output by
            # chance too often to mean anything: 12 layers, 0.5, x_16
            if len(n.replace(".", "").lstrip("0")) < (2 if "." in n else 3):
                continue
            if n in output_numbers or any(_rounds_to(n, o) for o in output_numbers):
                found.append((n, re.sub(r"\s+", " ", prose[max(0, m.start() - 50): m.end() + 30]).strip()))
    return found


def test_typed_results_catches_a_hand_typed_number():
    """On a synthetic chapter: a result typed into the prose is caught, exactly or rounded; quoted
    ({post}), glued, one-digit and code-source numbers are not."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    md = textwrap.dedent("""\
        ---
        jupytext:
          text_representation:
            format_name: myst
        kernelspec:
          display_name: Python 3
          language: python
          name: python3
        ---
        (ch-toy)=
        # Toy

        The post says {post}`0.6931`; we glue {glue:text}`toy-mean:.4f` and sample n = 4096 points.

        ```{code-cell} ipython3
        n = 4096
        print(1 - math.exp(-1), 69 / 4, 3)
        ```

        PROSE
        """)
    executed = new_notebook(cells=[new_code_cell(
        "n = 4096\nprint(1 - math.exp(-1), 69 / 4, 3)",
        outputs=[new_output("stream", name="stdout", text="0.63212055 17.25 3 0.6931 4096\n")],
    )])
    clean = md.replace("PROSE", "The mean lies near $1 - e^{-1}$; 3 of the points are outliers.")
    assert typed_results(clean, executed) == []
    # math indices and small integers are not results: $d_{17}$, 17 layers (the cell printed 17.25)
    assert typed_results(md.replace("PROSE", "With $d_{4096}$ and 17 layers, $x^{4096}$."), executed) == []
    # a large integer the cell printed (a count) but no source holds is a result
    big = md.replace("PROSE", "It kept 2048 of them.").replace("17.25 3", "17.25 3 2048")
    assert [n for n, _ in typed_results(big, executed)] == []  # the cell's *output* below lacks 2048
    executed_big = new_notebook(cells=[new_code_cell(
        "n = 4096", outputs=[new_output("stream", name="stdout", text="kept 2048\n")])])
    assert [n for n, _ in typed_results(big, executed_big)] == ["2048"]
    caught = typed_results(md.replace("PROSE", "So the mean is 17.25, that is $\\approx 0.632$."), executed)
    assert [n for n, _ in caught] == ["17.25", "0.632"]
    assert "the mean is 17.25" in caught[0][1]
    # the {post} role is what protects a quoted number that a cell also prints
    assert [n for n, _ in typed_results(md.replace("PROSE", "As the post says, 0.6931."), executed)] == ["0.6931"]


def test_no_hand_typed_results_in_the_prose(html):
    """Every chapter: no number of the prose that a cell printed but no cell's source holds (glue it
    with myst-nb's ``glue``, or mark a number quoted from the post with ``{post}``)."""
    executed_dir = html.parent / "jupyter_execute"
    problems = []
    for doc in _chapters():
        nb_path = executed_dir / f"{doc}.ipynb"
        if not nb_path.is_file():
            problems.append(f"{doc}: no executed notebook at {nb_path}")
            continue
        executed = json.loads(nb_path.read_text(encoding="utf-8"))
        for n, context in typed_results((ROOT / f"{doc}.md").read_text(encoding="utf-8"), executed):
            problems.append(f"{doc}: {n} typed in the prose, printed by a cell: ...{context}...")
    assert not problems, "results typed by hand (glue them, or mark a post's number {post}`...`):\n" + "\n".join(problems)
