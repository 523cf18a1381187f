"""The table of contents and the chapters pytest runs must agree: no orphan, nothing skipped."""
import subprocess
import sys
from pathlib import Path

from conftest import BOOK, ROOT, is_notebook_chapter, toc_files


def _notebook_chapters_on_disk() -> set[str]:
    return {str(p.relative_to(ROOT).with_suffix("")) for p in BOOK.rglob("*.md") if is_notebook_chapter(p)}


def test_every_toc_entry_exists():
    missing = [f for f in toc_files() if not (ROOT / f"{f}.md").is_file() and not (ROOT / f"{f}.ipynb").is_file()]
    assert not missing, f"listed in _toc.yml but missing: {missing}"


def test_no_orphan_chapter():
    listed = set(toc_files())
    orphans = sorted(_notebook_chapters_on_disk() - listed)
    assert not orphans, f"notebook chapters not in _toc.yml: {orphans}"


def test_pytest_collects_exactly_the_toc_chapters():
    """Ask pytest itself which chapters it collects, and compare with _toc.yml."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "book"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    collected = {line.split("::")[0].removesuffix(".md") for line in out.stdout.splitlines() if "::" in line}
    listed_notebooks = {f for f in toc_files() if (ROOT / f"{f}.md").is_file() and is_notebook_chapter(ROOT / f"{f}.md")}
    assert listed_notebooks, "no notebook chapter listed in _toc.yml"
    assert collected == listed_notebooks, (collected ^ listed_notebooks)


def test_chapter_of_names_the_chapter_of_a_cell():
    """The run-time table and the xdist scheduler group a chapter's cells by this."""
    from conftest import chapter_of

    assert chapter_of("book/attention/tta-fast-mlm.md::Cell 12") == "book/attention/tta-fast-mlm.md"
    assert chapter_of("tests/test_toc.py::test_no_orphan_chapter") is None
    assert chapter_of("book/attention/tta-fast-mlm.md") is None
