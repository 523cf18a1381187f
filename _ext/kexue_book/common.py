"""What several modules of the extension share: the per-document data kept in the build
environment, the placeholder node of the collected appendices, and small docutils helpers.

Per-document data
    A module that collects something per document (errata, the chapters' posts, the modules a
    chapter imported) declares it with :func:`env_store`; this module creates it on the environment,
    drops a document's entry when the document is re-read (``env-purge-doc``) and merges the
    entries of parallel readers (``env-merge-info``).

Collected appendices
    A page that shows what the whole build collected (ledger, errata, posts) holds a
    :class:`kexue_placeholder` node of some ``kind``, put there by a :class:`PlaceholderDirective`;
    the module that owns the kind replaces it at ``doctree-resolved`` (:func:`on_placeholder`), after
    every chapter of the build has been read, like ``sphinx.ext.todo``'s list. Such pages are
    "dynamic": re-read and re-written on every build.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOG = logging.getLogger("kexue_book")

POST_URL = "https://kexue.fm/archives/{}"
CLAIMS_ENV = "KEXUE_CLAIMS_DIR"
#: ``$KEXUE_CLAIMS_DIR`` when the extension was imported (the build sets it for its kernels later)
_CLAIMS_ENV_AT_START = os.environ.get(CLAIMS_ENV)

# -- per-document data in the environment --------------------------------------------------------
_STORES: dict[str, type] = {"kexue_dynamic": set}


def env_store(attr: str, default: type = dict) -> None:
    """Declare ``env.<attr>``: a ``dict`` ``{docname: ...}`` (or a ``set`` of docnames), purged when
    a document is re-read and merged from parallel readers."""
    _STORES[attr] = default


def init_env(app: Sphinx, env=None, docnames=None) -> None:
    env = env if env is not None else app.env
    for attr, default in _STORES.items():
        if not hasattr(env, attr):
            setattr(env, attr, default())


def _purge(app: Sphinx, env, docname: str) -> None:
    init_env(app, env)
    for attr in _STORES:
        store = getattr(env, attr)
        if isinstance(store, set):
            store.discard(docname)
        else:
            store.pop(docname, None)


def _merge(app: Sphinx, env, docnames, other) -> None:
    init_env(app, env)
    for attr in _STORES:
        mine, theirs = getattr(env, attr), getattr(other, attr, None)
        if theirs is None:
            continue
        if isinstance(mine, set):
            mine |= {d for d in theirs if d in docnames}
        else:
            mine.update({d: v for d, v in theirs.items() if d in docnames})


# -- dynamic pages and placeholders --------------------------------------------------------------
def mark_dynamic(env) -> None:
    """The page being read shows collected content: re-read and re-write it on every build."""
    env.kexue_dynamic.add(env.docname)


class kexue_placeholder(nodes.General, nodes.Element):
    """Replaced at doctree-resolved by the collected content of its ``kind``."""


class PlaceholderDirective(SphinxDirective):
    """Puts a :class:`kexue_placeholder` of ``kind`` (with the optional file argument's absolute
    ``path``, a dependency of the page) and marks the page dynamic."""

    kind = ""
    optional_arguments = 1
    has_content = False

    def run(self):
        mark_dynamic(self.env)
        node = kexue_placeholder()
        node["kind"] = self.kind
        if self.arguments:
            _, abspath = self.env.relfn2path(self.arguments[0], self.env.docname)
            node["path"] = abspath
            self.env.note_dependency(abspath)
        return [node]


def on_placeholder(app: Sphinx, kind: str, render: Callable[[Sphinx, str, nodes.document, nodes.Element], list]) -> None:
    """At ``doctree-resolved``, replace every placeholder of ``kind`` by
    ``render(app, docname, doctree, node)``."""

    def resolve(app: Sphinx, doctree: nodes.document, docname: str) -> None:
        for node in list(doctree.findall(kexue_placeholder)):
            if node["kind"] == kind:
                node.replace_self(render(app, docname, doctree, node))

    app.connect("doctree-resolved", resolve)


def _always_reread(app: Sphinx, env, added, changed, removed) -> list[str]:
    init_env(app, env)
    return sorted(d for d in env.kexue_dynamic if d in env.found_docs and d not in added | changed | removed)


def _always_rewrite(app: Sphinx, env) -> list[str]:
    return sorted(d for d in env.kexue_dynamic if d in env.found_docs)


# -- where things are ---------------------------------------------------------------------------
def claims_dir_of(app: Sphinx) -> Path:
    """Where this build's chapters write their check records: ``$KEXUE_CLAIMS_DIR`` as it was when
    the build started, else ``<source folder>/_build/claims`` (what
    :func:`kexue_core.checks.claims_dir` finds from a chapter's folder)."""
    return Path(_CLAIMS_ENV_AT_START) if _CLAIMS_ENV_AT_START else Path(app.srcdir) / "_build" / "claims"


def toc_order(env) -> list[str]:
    """All documents in reading order (depth-first through the toctrees from the root)."""
    order: list[str] = []
    seen = set()

    def walk(doc):
        if doc in seen:
            return
        seen.add(doc)
        order.append(doc)
        for child in env.toctree_includes.get(doc, []):
            walk(child)

    walk(env.config.root_doc)
    order += sorted(d for d in env.found_docs if d not in seen)
    return order


def chapter_title(env, docname: str) -> str:
    t = env.titles.get(docname)
    return t.astext() if t is not None else docname


# -- docutils helpers ---------------------------------------------------------------------------
def doc_link(app: Sphinx, fromdoc: str, todoc: str, text: str, anchor: str = "") -> nodes.reference:
    uri = app.builder.get_relative_uri(fromdoc, todoc)
    if anchor:
        uri += "#" + anchor
    return nodes.reference("", text, internal=True, refuri=uri)


def table(header: list[str], rows: list[list[list[nodes.Node]]], widths: list[int] | None = None,
          classes: tuple[str, ...] = ()) -> nodes.table:
    """A docutils table; each cell is a list of inline nodes."""
    tbl = nodes.table(classes=["colwidths-auto", *classes])
    tgroup = nodes.tgroup(cols=len(header))
    tbl += tgroup
    for w in widths or [100 // len(header)] * len(header):
        tgroup += nodes.colspec(colwidth=w)
    thead = nodes.thead()
    tgroup += thead
    hrow = nodes.row()
    for h in header:
        hrow += nodes.entry("", nodes.paragraph(text=h))
    thead += hrow
    tbody = nodes.tbody()
    tgroup += tbody
    for r in rows:
        row = nodes.row()
        for cell in r:
            row += nodes.entry("", nodes.paragraph("", "", *cell))
        tbody += row
    return tbl


def text_with_math(s: str) -> list[nodes.Node]:
    """Text where ``$...$`` spans become inline math nodes (the recorder writes SymPy results so)."""
    out: list[nodes.Node] = []
    for i, part in enumerate(re.split(r"(?<!\\)\$(.+?)(?<!\\)\$", s)):
        if i % 2:
            out.append(nodes.math(part, part))
        elif part:
            out.append(nodes.Text(part))
    return out


def setup(app: Sphinx) -> None:
    app.add_node(kexue_placeholder)
    app.connect("builder-inited", init_env)
    app.connect("env-before-read-docs", init_env)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-get-outdated", _always_reread)
    app.connect("env-get-updated", _always_rewrite)
