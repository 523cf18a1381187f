"""The errata appendix: ``{kexue-errata}`` lists every ``Erratum`` / ``Approximation`` admonition of
the chapters, with a link to its section.

The admonitions are collected from each chapter's doctree at ``doctree-read`` (``env.kexue_errata``)
and the list is rendered at ``doctree-resolved``, after every chapter of the build has been read.
"""
from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import new_document

from .common import PlaceholderDirective, chapter_title, doc_link, env_store, on_placeholder, toc_order

COLLECTED_KINDS = ("Erratum", "Approximation")


class ErrataDirective(PlaceholderDirective):
    """``{kexue-errata}``: every Erratum / Approximation admonition of the chapters."""

    kind = "errata"


def _collect_errata(app: Sphinx, doctree: nodes.document) -> None:
    env = app.env
    if env.docname not in env.kexue_chapters:
        return
    found = []
    for adm in doctree.findall(nodes.admonition):
        title = next(iter(adm.findall(nodes.title)), None)
        if title is None:
            continue
        text = title.astext().strip()
        kind = next((k for k in COLLECTED_KINDS if text.startswith(k)), None)
        if kind is None:
            continue
        section = adm.parent
        while section is not None and not isinstance(section, nodes.section):
            section = section.parent
        anchor = section["ids"][0] if section is not None and section["ids"] else ""
        sec_title = section[0].astext() if section is not None and isinstance(section[0], nodes.title) else ""
        body = nodes.container(classes=["kexue-erratum-body"])
        for child in adm.children:
            if not isinstance(child, nodes.title):
                body += child.deepcopy()
        found.append({"kind": kind, "title": text, "anchor": anchor, "section": sec_title, "body": body})
    if found:
        env.kexue_errata[env.docname] = found


def _render_errata(app: Sphinx, fromdoc: str, document: nodes.document, node=None) -> list[nodes.Node]:
    env = app.env
    out: list[nodes.Node] = []
    n = 0
    for d in toc_order(env):
        items = env.kexue_errata.get(d)
        if not items:
            continue
        sec = nodes.rubric(text=chapter_title(env, d))
        out.append(sec)
        lst = nodes.bullet_list()
        for it in items:
            n += 1
            li = nodes.list_item(classes=["kexue-erratum"])
            p = nodes.paragraph()
            p += nodes.strong(text=it["title"])
            p += nodes.Text(" — in ")
            p += doc_link(app, fromdoc, d, it["section"] or chapter_title(env, d), it["anchor"])
            li += p
            # the copied content still holds the chapter's unresolved references: resolve them in a
            # scratch document (as sphinx.ext.todo does for its list)
            scratch = new_document(document["source"], document.settings)
            scratch += it["body"].deepcopy()
            env.resolve_references(scratch, fromdoc, app.builder)
            li += scratch.children
            lst += li
        out.append(lst)
    intro = nodes.paragraph(text=f"{n} place(s) where a chapter finds its post, or the paper behind it, "
                                 "wrong or only approximately right.")
    return [intro, *out]


def setup(app: Sphinx) -> None:
    env_store("kexue_errata")
    app.add_directive("kexue-errata", ErrataDirective)
    app.connect("doctree-read", _collect_errata)
    on_placeholder(app, "errata", _render_errata)
