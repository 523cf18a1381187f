"""The chapters' "what we checked" tables typeset by MathJax.

:meth:`kexue_core.checks.CheckRecorder.table` writes SymPy results as ``$...$`` into an HTML output of
the notebook; at ``doctree-resolved`` they become ``\\(...\\)`` inside an element MathJax processes.
"""
from __future__ import annotations

import re

from docutils import nodes
from sphinx.application import Sphinx

_CHECKS_TABLE = re.compile(r"<table class=(['\"])kexue-checks\1>(.*?)</table>", re.S)


def typeset_checks_tables(html: str) -> str:
    """The "what we checked" table of :meth:`kexue_core.checks.CheckRecorder.table` writes SymPy results
    as ``$...$``; in a notebook's output MathJax looks only inside elements of class
    ``mathjax_process`` and only for ``\\(...\\)``: give it both."""

    def fix(m):
        body = re.sub(r"(?<!\\)\$(.+?)(?<!\\)\$", r"\\(\1\\)", m.group(2))
        return f"<table class='kexue-checks mathjax_process'>{body}</table>"

    return _CHECKS_TABLE.sub(fix, html)


def _doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for raw in list(doctree.findall(nodes.raw)):
        if "html" in raw.get("format", "").split() and "kexue-checks" in raw.astext():
            new = typeset_checks_tables(raw.astext())
            raw.replace_self(nodes.raw(new, new, format=raw["format"]))


def setup(app: Sphinx) -> None:
    app.connect("doctree-resolved", _doctree_resolved)
