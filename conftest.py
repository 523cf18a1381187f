"""pytest runs every chapter of the book through nbval, straight from its MyST-markdown source.

Each ``book/**/*.md`` file with a jupytext header is read with jupytext at collection time (no
notebook is ever written or committed) and handed to nbval, which runs it cell by cell in lax mode: a cell that raises, or an
``assert`` that fails, fails its test and pytest shows the cell. At the end of the run a table gives
each chapter's total time (kernel start-up included).

``pytest`` runs on all cores with pytest-xdist (``-n auto --dist loadfile`` in ``pyproject.toml``):
all cells of a chapter run in one worker, in order, on one kernel; the chapters start first and the
unit tests, one by one, fill the workers (:func:`pytest_xdist_make_scheduler`). ``-n 0`` runs serially.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

ROOT = Path(__file__).resolve().parent
BOOK = ROOT / "book"


def is_notebook_chapter(path: Path) -> bool:
    """A MyST .md file is a notebook chapter iff its front matter declares jupytext + kernelspec."""
    if path.suffix != ".md":
        return False
    head = path.read_text(encoding="utf-8")[:1000]
    return head.startswith("---") and "jupytext:" in head and "kernelspec:" in head


def toc_files() -> list[str]:
    """The ``file:`` entries of ``_toc.yml`` (paths relative to the root, without extension)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    out: list[str] = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                out.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc.get("parts", toc.get("chapters", [])))
    return out


class MystNotebook(IPyNbFile):
    """nbval's notebook collector, reading the notebook from a MyST ``.md`` file with jupytext.

    The node keeps the ``.md`` path, so ``pytest book/<part>/<slug>.md`` selects one chapter, test
    ids read ``book/<part>/<slug>.md::Cell N``, and the kernel runs in the chapter's folder (as in
    ``jupyter-book build``). Cells are collected exactly as nbval does for an ``.ipynb``.
    """

    def collect(self):
        import jupytext
        from nbval.plugin import IPyNbCell, find_comment_markers, find_metadata_tags

        self.nb = jupytext.read(self.path)
        cell_num = 0
        for cell in self.nb.cells:
            if cell.cell_type != "code":
                continue
            options = defaultdict(bool, find_metadata_tags(cell.metadata))
            options.update(dict(find_comment_markers(cell.source)))
            options.setdefault("check", self.compare_outputs)
            yield IPyNbCell.from_parent(self, name=f"Cell {cell_num}", cell_num=cell_num, cell=cell, options=options)
            cell_num += 1


def pytest_collect_file(file_path: Path, parent):
    try:
        file_path.relative_to(BOOK)
    except ValueError:
        return None
    if not is_notebook_chapter(file_path):
        return None
    return MystNotebook.from_parent(parent, path=file_path)


_chapter_time: dict[str, float] = defaultdict(float)


def chapter_of(nodeid: str) -> str | None:
    """``book/<part>/<slug>.md`` for the id of a chapter's cell (``book/<part>/<slug>.md::Cell N``),
    else ``None``."""
    path, sep, name = nodeid.partition("::")
    return path if sep and path.endswith(".md") and path.startswith("book/") and name.startswith("Cell ") else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's ``--dist loadfile``, refined: a chapter's cells are one unit of work (one worker,
    in order, on one kernel) and every other test is a unit of its own. Units with more tests go
    first (xdist's loadscope order), so the chapters start first and the short unit tests fill the
    workers at the end; plain loadfile would send whole test files, largest first, and leave one
    worker running the last chapter alone. Test ids are unchanged."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ChapterScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return chapter_of(nodeid) or nodeid

    return ChapterScheduling(config, log)


def pytest_runtest_logreport(report):
    """Add each phase of each cell to its chapter's time: the kernel starts in the first cell's
    set-up and stops in the last one's tear-down, so the sum is the chapter's wall time. Reports
    reach the controlling process under pytest-xdist too, so the table covers every worker."""
    chapter = chapter_of(report.nodeid)
    if chapter is not None:
        _chapter_time[chapter] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _chapter_time:
        return
    terminalreporter.section("chapter run times (kernel start-up included)")
    for name, t in sorted(_chapter_time.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{t:7.1f} s  {name}")
