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
    claims_dir = Path(os.environ.get("KEXUE_CLAIMS_DIR") or html.parent / "claims")
    rows = ledger_table(_page(html, f"{APPX}/claims-ledger"))
    problems, expected_rows = [], []
    for doc in _chapters():
        slug = doc.rsplit("/", 1)[-1]
        f = claims_dir / f"{slug}.json"
        records = json.loads(f.read_text(encoding="utf-8"))["records"] if f.is_file() else []
        if not records:
            problems.append(f"{doc}: recorded no check (use kexue_core.checks.CheckRecorder)")
        expected_rows += [(r["claim"], r["got"], r["status"]) for r in records]
    got_rows = [(_text(r[2]), _text(r[4]), r[6]) for r in rows]
    norm = [(_text(c), _text(g), s) for c, g, s in expected_rows]
    # math cells are typeset differently: compare the claim and status, and got where it has no math
    assert [(c, s) for c, _, s in got_rows] == [(c, s) for c, _, s in norm], "ledger rows differ from the records"
    for (c, g, s), (c2, g2, s2) in zip(got_rows, norm):
        if "$" not in g2:
            assert g == g2, f"{c}: ledger shows got={g!r}, the record says {g2!r}"
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
