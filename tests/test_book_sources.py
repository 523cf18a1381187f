"""Checks of the book's sources that need no build (fast; part of the plain ``pytest`` run).

- every public docstring of ``kexue_core`` is valid reST once napoleon has read it (the API appendix
  shows an invalid one verbatim, and this test names it);
- every public function and class has a docstring;
- the API pages are generated for every module, and a new module or function appears without edits;
- ``book/appendices/posts.yml`` and the chapters' ``kexue: posts:`` front matter are complete;
- the claims ledger reacts to a changed check (on records written by the real recorder).
"""
from __future__ import annotations

import importlib
import inspect
import re
import sys
import textwrap

import pytest
import yaml

from conftest import ROOT, is_notebook_chapter, toc_files

sys.path.insert(0, str(ROOT / "_ext"))
import kexue_book  # noqa: E402

MODULES = kexue_book.public_modules()
POSTS_YML = ROOT / "book" / "appendices" / "posts.yml"


def _own_public_objects(modname: str):
    mod = importlib.import_module(modname)
    for name in kexue_book.public_names(mod):
        obj = getattr(mod, name, None)
        if inspect.ismodule(obj) or kexue_book.documented_location(mod, name, MODULES) != modname:
            continue
        yield name, obj


def _napoleon_rst(doc: str, what: str, name: str, obj) -> str:
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import NumpyDocstring

    cfg = Config(
        napoleon_google_docstring=False, napoleon_numpy_docstring=True, napoleon_use_param=False,
        napoleon_use_rtype=False, napoleon_use_ivar=True,
    )
    return str(NumpyDocstring(doc, cfg, what=what, name=name, obj=obj))


@pytest.mark.parametrize("modname", MODULES)
def test_docstrings_are_valid_rest(modname):
    mod = importlib.import_module(modname)
    items = [(modname, "module", mod)]
    for name, obj in _own_public_objects(modname):
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue  # constants: inspect.getdoc would give their type's docstring
        items.append((f"{modname}.{name}", "class" if inspect.isclass(obj) else "function", obj))
        if inspect.isclass(obj):
            for m, member in vars(obj).items():
                if not m.startswith("_") and inspect.isfunction(member):
                    items.append((f"{modname}.{name}.{m}", "method", member))
    bad = {}
    for full, what, obj in items:
        doc = inspect.getdoc(obj)
        if doc:
            problems = kexue_book.docstring_problems(_napoleon_rst(doc, what, full, obj))
            if problems:
                bad[full] = problems
    assert not bad, (
        "docstrings that are not valid reST (numpy style, read by napoleon); the API appendix shows them "
        "verbatim. Usually a missing blank line before/after an indented block or a list:\n"
        + "\n".join(f"  {k}: {v}" for k, v in bad.items())
    )


@pytest.mark.parametrize("modname", MODULES)
def test_public_names_have_docstrings(modname):
    missing = [
        name for name, obj in _own_public_objects(modname)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj)
    ]
    assert not inspect.getdoc(importlib.import_module(modname)) is None, f"{modname} has no module docstring"
    assert not missing, f"public names of {modname} without a docstring: {missing}"


def test_api_pages_follow_the_package(tmp_path, monkeypatch):
    """A new module and a new function appear in the generated pages with no hand edit."""
    pkg = tmp_path / "pkgsrc" / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Fake."""\nfrom .alpha import f\n__all__ = ["f"]\n')
    (pkg / "alpha.py").write_text('"""Alpha."""\n__all__ = ["f"]\n\ndef f(x):\n    """F."""\n    return x\n')
    (pkg / "sub" / "__init__.py").write_text('"""Sub."""\n')
    (pkg / "_private.py").write_text('"""Private."""\n')
    monkeypatch.syspath_prepend(str(tmp_path / "pkgsrc"))
    src = tmp_path / "book"
    mods = kexue_book.write_api_pages(src, package="fakepkg")
    assert mods == ["fakepkg", "fakepkg.alpha", "fakepkg.sub"]
    api = src / kexue_book.API_DIR
    assert sorted(p.name for p in api.glob("fakepkg*.md")) == ["fakepkg.alpha.md", "fakepkg.md", "fakepkg.sub.md"]
    alpha = (api / "fakepkg.alpha.md").read_text()
    assert ".. automodule:: fakepkg.alpha" in alpha and ":members: f" in alpha
    top = (api / "fakepkg.md").read_text()
    assert "fakepkg.alpha.f" in top, "a re-export links to where it is documented"

    # a new function and a new module, then a removed module
    (pkg / "alpha.py").write_text((pkg / "alpha.py").read_text().replace('["f"]', '["f", "g"]') + "\ndef g(y):\n    return y\n")
    (pkg / "beta.py").write_text('"""Beta."""\ndef h():\n    """H."""\n')
    for m in [m for m in sys.modules if m.startswith("fakepkg")]:
        del sys.modules[m]
    importlib.invalidate_caches()
    kexue_book.write_api_pages(src, package="fakepkg")
    assert ":members: f, g" in (api / "fakepkg.alpha.md").read_text()
    assert (api / "fakepkg.beta.md").is_file()
    (pkg / "beta.py").unlink()
    for m in [m for m in sys.modules if m.startswith("fakepkg")]:
        del sys.modules[m]
    importlib.invalidate_caches()
    kexue_book.write_api_pages(src, package="fakepkg")
    assert not (api / "fakepkg.beta.md").exists(), "the page of a removed module is removed"


def test_docstring_checker_catches_broken_rest():
    assert kexue_book.docstring_problems("Fine.\n\n- a\n- b\n") == []
    assert kexue_book.docstring_problems("Para.\n\n    quoted\nunindented at once\n")
    assert kexue_book.docstring_problems("- a\n- b\nno blank line after the list\n")


# -- posts and front matter ----------------------------------------------------------------------
def _posts():
    return yaml.safe_load(POSTS_YML.read_text(encoding="utf-8"))["posts"]


def _chapters():
    for f in toc_files():
        p = ROOT / f"{f}.md"
        if not f.startswith("book/appendices/") and p.is_file() and is_notebook_chapter(p):
            yield f, kexue_book.front_matter(p.read_text(encoding="utf-8"))


def test_posts_index_is_complete():
    posts = _posts()
    archives = [p["archive"] for p in posts]
    assert len(archives) == len(set(archives)), "an archive number appears twice in posts.yml"
    assert len(posts) >= 33
    for p in posts:
        for key in ("archive", "title_zh", "title_en", "date", "part"):
            assert p.get(key), f"post {p.get('archive')}: no {key}"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(p["date"])), p


def test_chapters_declare_their_posts():
    listed = {p["archive"] for p in _posts()}
    problems = []
    for f, meta in _chapters():
        posts = kexue_book.chapter_posts(meta)
        if not posts:
            problems.append(f"{f}: no `kexue: posts:` in the front matter")
            continue
        for p in posts:
            for key in ("archive", "title_zh", "title_en", "date"):
                if not p.get(key):
                    problems.append(f"{f}: post {p.get('archive')} has no {key}")
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(p.get("date", ""))):
                problems.append(f"{f}: date {p.get('date')!r} is not YYYY-MM-DD")
        if int(posts[0].get("archive", 0)) not in listed:
            problems.append(f"{f}: its first post {posts[0].get('archive')} is not in posts.yml")
    assert not problems, "\n".join(problems)


def test_header_goes_under_the_title():
    text = textwrap.dedent("""\
        ---
        kexue: {}
        ---
        (lbl)=
        ```{code-cell}
        # not a title
        ```
        # The title

        Body.
        """)
    out = kexue_book.insert_after_title(text, "BLOCK\n")
    assert out.index("# The title") < out.index("BLOCK") < out.index("Body.")
    assert out.count("# not a title") == 1 and out.index("# not a title") < out.index("BLOCK")


def test_notebook_line_goes_into_the_chapters_own_box():
    text = "# T\n\n:::{admonition} Source post\n:class: note\nSu, post.\n:::\n\nBody.\n"
    out = kexue_book.add_to_source_box(text, "RUN")
    assert out.index("Su, post.") < out.index("RUN") < out.index(":::\n\nBody.")
    assert kexue_book.add_to_source_box("# T\n\nBody.\n", "RUN") is None


# -- claims ledger -------------------------------------------------------------------------------
def test_ledger_rows_follow_the_records(tmp_path):
    """The ledger is built from what the recorder writes: change one check's outcome, the rows change."""
    from kexue_core.checks import CheckRecorder, NOT_AT_SCALE, REPRODUCED

    def run(value):
        rec = CheckRecorder("toy", source="https://kexue.fm/archives/1", out_dir=tmp_path)
        if abs(value - 3.142) <= 5e-4:
            rec.close("pi to 3 digits", value, 3.142, atol=5e-4, why="printed to 3 decimals", claim_of="post")
        else:
            rec.not_at_scale("pi to 3 digits", value, 3.142, min_gap=0.01, why="a cruder value")
        return kexue_book.ledger_rows([("book/x/toy", "Toy")], kexue_book.load_claims(tmp_path))

    rows, missing = run(3.14159)
    assert not missing and len(rows) == 1
    assert (rows[0]["status"], rows[0]["got"], rows[0]["expected"]) == (REPRODUCED, "3.14159", "3.142")
    rows2, _ = run(3.0)
    assert (rows2[0]["status"], rows2[0]["got"]) == (NOT_AT_SCALE, "3")
    rows3, missing3 = kexue_book.ledger_rows([("book/x/other", "Other")], kexue_book.load_claims(tmp_path))
    assert rows3 == [] and missing3 == ["book/x/other"], "a chapter without records is reported"


def test_checks_tables_are_typeset():
    """The recorder's table writes SymPy results as $...$; the book turns them into MathJax input."""
    out = kexue_book.typeset_checks_tables(
        "<table class='kexue-checks'><tr><td>$x^{2}$</td><td>$\\frac{1}{2}$</td><td>5 \\$ fee</td></tr></table>"
    )
    assert "mathjax_process" in out and "\\(x^{2}\\)" in out and "\\(\\frac{1}{2}\\)" in out
    assert "5 \\$ fee" in out


@pytest.mark.parametrize("modname", MODULES)
def test_no_prose_swallowed_by_raises_section(modname):
    """numpy style reads every paragraph after ``Raises`` as another exception: the prose (source,
    equivalences) must come before the sections."""
    bad = {}
    for name, obj in _own_public_objects(modname):
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        rst = _napoleon_rst(doc, "class" if inspect.isclass(obj) else "function", name, obj)
        for line in rst.splitlines():
            m = re.match(r":raises ([^:]*):", line)
            if m and not re.fullmatch(r"[A-Za-z_.]+(, [A-Za-z_.]+)*", m.group(1).strip()):
                bad.setdefault(f"{modname}.{name}", []).append(line[:80])
    assert not bad, bad
