"""Notebook downloads: every chapter as ``.ipynb``.

At ``source-read`` (before the header is added) each chapter is written with jupytext to
``_build/notebooks/<docname>.ipynb``, with a plain-markdown line on its source post first (Jupyter and
Colab do not render MyST directives); the chapter header links it with ``{download}``.
"""
from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

from .chapter_header import NOTEBOOK_DIR, chapter_posts, front_matter, is_chapter
from .common import POST_URL


def write_notebook(text: str, target: Path, posts: list[dict]) -> None:
    """The chapter as ``.ipynb`` (jupytext), with a plain-markdown source line first (Jupyter and Colab
    do not render MyST directives). Written only if changed."""
    import jupytext

    nb = jupytext.reads(text, fmt="md:myst")
    src = "\n".join(
        f"*Source post:* Su Jianlin, **{p.get('title_zh', '')}** (*{p.get('title_en', '')}*), "
        f"Scientific Spaces, {p.get('date', '')}, {POST_URL.format(p.get('archive'))}"
        for p in posts
    )
    src += (
        "\n\n*From the book* Scientific Spaces, derived. *Run it from a clone of the book's repository after "
        "`pip install -r requirements.txt` (it imports `kexue_core`).*"
    )
    from nbformat.v4 import new_markdown_cell

    nb.cells.insert(0, new_markdown_cell(src))
    nb.metadata.pop("jupytext", None)
    out = jupytext.writes(nb, fmt="ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or target.read_text(encoding="utf-8") != out:
        target.write_text(out, encoding="utf-8")


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    meta = front_matter(source[0])
    if is_chapter(docname, meta):
        write_notebook(source[0], Path(app.srcdir) / NOTEBOOK_DIR / f"{docname}.ipynb", chapter_posts(meta))


def setup(app: Sphinx) -> None:
    app.connect("source-read", _source_read, priority=400)  # the chapter as written, before its header
