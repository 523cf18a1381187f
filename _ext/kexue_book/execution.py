"""The execution appendix: ``{kexue-versions}``, the versions of Python and of the stack that built
the book (the execution statistics themselves are myst-nb's ``{nb-exec-table}``)."""
from __future__ import annotations

import importlib.metadata
import platform

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from .common import mark_dynamic, table

VERSIONED = [
    "torch", "numpy", "scipy", "sympy", "mpmath", "matplotlib", "scikit-learn", "snownlp",
    "jupyter-book", "sphinx", "myst-nb", "myst-parser", "jupytext", "jupyter-cache", "nbclient",
    "ipykernel", "sphinx-book-theme", "sphinxcontrib-bibtex", "sphinx-proof", "sphinx-mathjax-offline",
    "pytest", "nbval", "playwright", "kexue_core",
]


class VersionsDirective(SphinxDirective):
    """``{kexue-versions}``: Python and the versions of the packages that built this book."""

    def run(self):
        mark_dynamic(self.env)
        rows = [[[nodes.Text("Python")], [nodes.literal(text=platform.python_version())]],
                [[nodes.Text("platform")], [nodes.literal(text=f"{platform.system()} {platform.machine()}")]]]
        for dist in VERSIONED:
            try:
                v = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                v = "not installed"
            rows.append([[nodes.Text(dist)], [nodes.literal(text=v)]])
        return [table(["package", "version"], rows, widths=[40, 60])]


def setup(app: Sphinx) -> None:
    app.add_directive("kexue-versions", VersionsDirective)
