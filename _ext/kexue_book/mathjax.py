"""Math with no network: MathJax 3 is served from the built site.

MathJax is copied into the site from the ``sphinx-mathjax-offline`` wheel (``_static/mathjax/``),
``mathjax_path`` points there, and MathJax is loaded on every page (the ledger gets its math late, at
``doctree-resolved``). The book's stylesheet ``static/kexue.css`` is added here too.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

MATHJAX_DIST = "sphinx-mathjax-offline"
MATHJAX_ENTRY = "mathjax/tex-mml-chtml.js"
STATIC = Path(__file__).resolve().parent / "static"  # kexue.css


def mathjax_static_dir() -> Path:
    """The folder whose ``mathjax/`` subfolder holds MathJax 3 (from the ``sphinx-mathjax-offline``
    wheel, which ships MathJax 3.2.2 with its fonts). Raises ``ExtensionError`` if it is missing."""
    try:
        dist = importlib.metadata.distribution(MATHJAX_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ExtensionError(
            f"{MATHJAX_DIST} is not installed: `pip install -r requirements.txt` (the book serves MathJax itself)"
        ) from exc
    static = Path(dist.locate_file("sphinx-mathjax-offline/static"))
    if not (static / MATHJAX_ENTRY).is_file():
        raise ExtensionError(f"MathJax entry point {MATHJAX_ENTRY} not found under {static}")
    return static


def _setup_mathjax(app: Sphinx, config) -> None:
    config.html_static_path = [*config.html_static_path, str(mathjax_static_dir()), str(STATIC)]
    config.mathjax_path = MATHJAX_ENTRY  # relative: served from _static/


def setup(app: Sphinx) -> None:
    app.connect("config-inited", _setup_mathjax)
    app.add_css_file("kexue.css")
    app.set_html_assets_policy("always")  # MathJax on every page (the ledger gets its math late)
