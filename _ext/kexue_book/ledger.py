"""The claims ledger: ``{kexue-claims-ledger}`` lists every check of every chapter.

The rows come from the JSON records that :class:`kexue_core.checks.CheckRecorder` writes while a
chapter executes (``<claims dir>/<slug>.json``: ``records`` and ``untested``). The page shows

- the totals: checks of the post's claims and of the book's own results, by status
  (:data:`kexue_core.checks.STATUSES`);
- per chapter: the same counts, and the number of the post's claims it does not test;
- every check (chapter, #, claim, whose, expected, got, tolerance and why, status); a ``refuted``
  record's status links to the chapter's Erratum box (the ``:name:`` its record gives; a record
  naming no box of its chapter is a build warning);
- per chapter, the claims of the post it does not test, and why.

It is rendered at ``doctree-resolved``, after every chapter of the build has executed.
"""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

from .common import (
    LOG, PlaceholderDirective, chapter_title, claims_dir_of, doc_link, on_placeholder, table, text_with_math,
    toc_order,
)

LEDGER_COLUMNS = ["chapter", "#", "claim", "of", "expected", "got", "tolerance", "status"]
WHOSE = {"post": "the post's claims", "book": "the book's own results"}


class LedgerDirective(PlaceholderDirective):
    """``{kexue-claims-ledger}``: the table of every check of every chapter."""

    kind = "ledger"


def load_claims(claims_dir: Path) -> dict[str, dict]:
    """``{chapter slug: payload}`` of every ``*.json`` record file in ``claims_dir``."""
    out = {}
    if claims_dir.is_dir():
        for p in sorted(claims_dir.glob("*.json")):
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                LOG.warning(f"[kexue_book] unreadable claims file {p}: {exc}")
                continue
            out[data.get("chapter", p.stem)] = data
    return out


def ledger_rows(chapters: list[tuple[str, str]], claims: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """Rows of the claims ledger for the chapters ``[(docname, title)]`` in book order, from the
    recorder payloads ``claims`` (keyed by chapter slug = file name of the chapter). Returns the rows
    (dicts with the keys ``docname, chapter, #, claim, claim_of, expected, got, tolerance, status,
    why, erratum``) and the docnames with no records."""
    rows, missing = [], []
    for docname, title in chapters:
        slug = docname.rsplit("/", 1)[-1]
        payload = claims.get(slug)
        if not payload or not payload.get("records"):
            missing.append(docname)
            continue
        for i, r in enumerate(payload["records"], 1):
            rows.append({
                "docname": docname, "chapter": title, "#": str(i), "claim": r.get("claim", ""),
                "claim_of": r.get("claim_of", ""), "expected": r.get("expected", ""), "got": r.get("got", ""),
                "tolerance": r.get("tolerance", ""), "status": r.get("status", ""), "why": r.get("why", ""),
                "erratum": r.get("erratum", ""),
            })
    return rows, missing


def untested_claims(chapters: list[tuple[str, str]], claims: dict[str, dict]) -> dict[str, list[dict]]:
    """``{docname: [{"claim", "why"}, ...]}``: the claims of the post each chapter lists as not tested
    (the payload's ``untested``), for the chapters that list any, in book order."""
    out = {}
    for docname, _ in chapters:
        items = (claims.get(docname.rsplit("/", 1)[-1]) or {}).get("untested") or []
        if items:
            out[docname] = [{"claim": u.get("claim", ""), "why": u.get("why", "")} for u in items]
    return out


def status_counts(rows: list[dict], statuses) -> dict[str, dict[str, int]]:
    """``{claim_of: {status: count}}`` for ``claim_of`` in ``("post", "book")``."""
    return {who: {s: sum(r["claim_of"] == who and r["status"] == s for r in rows) for s in statuses} for who in WHOSE}


def erratum_target(env, label: str) -> tuple[str, str] | None:
    """``(docname, anchor id)`` of the admonition whose ``:name:`` is ``label``, ``None`` if no
    document defines it."""
    return env.get_domain("std").anonlabels.get(label.lower())


def _status_cell(app: Sphinx, fromdoc: str, r: dict) -> list[nodes.Node]:
    if r["status"] != "refuted":
        return [nodes.Text(r["status"])]
    target = erratum_target(app.env, r["erratum"]) if r["erratum"] else None
    if target is None or target[0] != r["docname"]:
        where = "names no Erratum box" if not r["erratum"] else (
            f"names the Erratum box {r['erratum']!r}, which "
            + ("does not exist" if target is None else f"is in {target[0]}, not in this chapter")
        )
        LOG.warning(f"[kexue_book] {r['docname']}: refuted check #{r['#']} ({r['claim']!r}) {where}",
                    location=r["docname"])
        return [nodes.Text(r["status"])]
    return [doc_link(app, fromdoc, target[0], "refuted", target[1])]


def _render_ledger(app: Sphinx, fromdoc: str, document=None, node=None) -> list[nodes.Node]:
    env = app.env
    from kexue_core.checks import STATUSES

    chapters = [(d, chapter_title(env, d)) for d in toc_order(env) if d in env.kexue_chapters]
    claims = load_claims(claims_dir_of(app))
    rows, missing = ledger_rows(chapters, claims)
    untested = untested_claims(chapters, claims)
    for r in rows:
        if r["status"] not in STATUSES or r["claim_of"] not in WHOSE:
            LOG.warning(f"[kexue_book] {r['docname']}: check #{r['#']} ({r['claim']!r}) has status {r['status']!r} "
                        f"and claim_of {r['claim_of']!r}: not among {STATUSES} and {tuple(WHOSE)} "
                        "(record it with the current kexue_core.checks)", location=r["docname"])
    out: list[nodes.Node] = []
    counts = status_counts(rows, STATUSES)
    n_post, n_book = (sum(counts[w].values()) for w in WHOSE)
    n_untested = sum(len(v) for v in untested.values())
    summary = nodes.paragraph(classes=["kexue-ledger-total"])
    summary += nodes.strong(text=f"{len(rows)} checks in {len(chapters) - len(missing)} chapters")
    summary += nodes.Text(f": {n_post} of the post's claims, {n_book} of the book's own results; "
                          f"{n_untested} claims of the posts not tested.")
    out.append(summary)
    totals = [[[nodes.Text(s)], [nodes.Text(str(counts["post"][s]))], [nodes.Text(str(counts["book"][s]))],
               [nodes.Text(str(counts["post"][s] + counts["book"][s]))]] for s in STATUSES]
    totals.append([[nodes.strong(text="all")], [nodes.strong(text=str(n_post))], [nodes.strong(text=str(n_book))],
                   [nodes.strong(text=str(len(rows)))]])
    out.append(table(["status", "of the post", "of the book", "total"], totals, widths=[40, 20, 20, 20],
                     classes=("kexue-ledger-totals",)))
    per_chapter = []
    for d, title in chapters:
        rs = [r for r in rows if r["docname"] == d]
        cells = [[doc_link(app, fromdoc, d, title)]]
        cells += [[nodes.Text(str(sum(r["claim_of"] == w for r in rs)))] for w in WHOSE]
        cells += [[nodes.Text(str(sum(r["status"] == s for r in rs)))] for s in STATUSES]
        cells += [[nodes.Text(str(len(untested.get(d, []))))]]
        per_chapter.append(cells)
    out.append(table(["chapter", "post", "book", *STATUSES, "untested"], per_chapter,
                     classes=("kexue-ledger-summary",)))
    if missing:
        p = nodes.paragraph(classes=["kexue-ledger-missing"])
        p += nodes.strong(text="No checks recorded for: ")
        for i, d in enumerate(missing):
            if i:
                p += nodes.Text(", ")
            p += doc_link(app, fromdoc, d, chapter_title(env, d))
        p += nodes.Text(".")
        out.append(p)
    body = []
    previous = None
    for r in rows:
        first = r["docname"] != previous  # the chapter is named once, on its first row
        previous = r["docname"]
        tol = text_with_math(r["tolerance"])
        if r["why"]:
            tol += [nodes.Text(" — "), nodes.emphasis(text=r["why"])] if tol else [nodes.emphasis(text=r["why"])]
        body.append([
            [doc_link(app, fromdoc, r["docname"], r["chapter"])] if first else [],
            [nodes.Text(r["#"])],
            text_with_math(r["claim"]),
            [nodes.Text(r["claim_of"])],
            text_with_math(r["expected"]),
            text_with_math(r["got"]),
            tol,
            _status_cell(app, fromdoc, r),
        ])
    out.append(table(LEDGER_COLUMNS, body, widths=[13, 3, 25, 5, 13, 13, 18, 10], classes=("kexue-ledger",)))
    if untested:
        out.append(nodes.rubric(text="Claims of the posts not tested"))
        for d, items in untested.items():
            p = nodes.paragraph()
            p += doc_link(app, fromdoc, d, chapter_title(env, d))
            out.append(p)
            lst = nodes.bullet_list(classes=["kexue-ledger-untested"])
            for u in items:
                li = nodes.list_item()
                para = nodes.paragraph("", "", *text_with_math(u["claim"]))
                para += [nodes.Text(" — "), nodes.emphasis(text=u["why"])]
                li += para
                lst += li
            out.append(lst)
    return out


def setup(app: Sphinx) -> None:
    app.add_directive("kexue-claims-ledger", LedgerDirective)
    on_placeholder(app, "ledger", _render_ledger)
