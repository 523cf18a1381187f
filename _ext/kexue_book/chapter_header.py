"""The chapter header: the "Source post" box of every chapter.

At ``source-read``, for each chapter (a notebook under ``book/`` with ``kexue: posts:`` in its front
matter) it records the chapter's posts (``env.kexue_chapters``, read by the posts index, the ledger and
the errata) and adds the paragraph with the chapter's ``.ipynb`` download (:mod:`.notebooks`) and how to
open it inside the chapter's own "Source post" box; a chapter without such a box gets one under its
title, built from the front matter (Chinese and English title, date, link, citation).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from sphinx.application import Sphinx

from .common import POST_URL, env_store

NOTEBOOK_DIR = "_build/notebooks"  # relative to the source folder; the .ipynb downloads


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def front_matter(text: str) -> dict:
    """The YAML front matter of a MyST file, ``{}`` if there is none."""
    m = _FRONT.match(text)
    if not m:
        return {}
    data = yaml.safe_load(m.group(1))
    return data if isinstance(data, dict) else {}


def chapter_posts(meta: dict) -> list[dict] | None:
    """The ``kexue: posts:`` list of a chapter's front matter (``None`` if it declares none)."""
    kexue = meta.get("kexue")
    if not isinstance(kexue, dict) or not isinstance(kexue.get("posts"), list):
        return None
    return kexue["posts"]


def _md_escape(s: Any) -> str:
    return re.sub(r"([\\`*_\[\]<>|$])", r"\\\1", str(s))


def bib_keys(paths: list[Path]) -> set[str]:
    keys = set()
    for p in paths:
        if p.is_file():
            keys |= set(re.findall(r"@\w+\s*\{\s*([^,\s]+)\s*,", p.read_text(encoding="utf-8")))
    return keys


def post_line(post: dict, cite_keys: set[str]) -> str:
    a = post.get("archive")
    zh, en, date = post.get("title_zh", ""), post.get("title_en", ""), post.get("date", "")
    key = f"su{a}"
    cite = f" {{cite}}`{key}`" if key in cite_keys else ""
    return (
        f"Su Jianlin, **{_md_escape(zh)}** (*{_md_escape(en)}*), *Scientific Spaces*, {date}, "
        f"<{POST_URL.format(a)}>{cite}"
    )


def run_line(docname: str) -> str:
    """The paragraph with the notebook download and how to open it."""
    stem = docname.rsplit("/", 1)[-1]
    return (
        f"**Run this chapter:** {{download}}`{stem}.ipynb </{NOTEBOOK_DIR}/{docname}.ipynb>` "
        f"(the chapter as a notebook). It imports `kexue_core`: open it in Jupyter in a clone of the "
        f"repository after `pip install -r requirements.txt`, where Jupyter also opens `{docname}.md` "
        f"itself as a notebook (jupytext)."
    )


def header_block(docname: str, posts: list[dict], cite_keys: set[str]) -> str:
    """The "Source post" box generated from the front matter, for a chapter that has none."""
    lines = [":::{admonition} Source post" + ("s" if len(posts) > 1 else ""), ":class: note kexue-source-post"]
    if len(posts) == 1:
        lines += [post_line(posts[0], cite_keys) + ".", ""]
    else:
        lines += [f"- {post_line(p, cite_keys)}" for p in posts] + [""]
    lines += [run_line(docname), ":::", ""]
    return "\n".join(lines)


_SOURCE_BOX = re.compile(r"^(:{3,})\{admonition\}[ \t]+Source posts?[ \t]*$", re.M)


def add_to_source_box(text: str, paragraph: str) -> str | None:
    """Append ``paragraph`` inside the chapter's own ``:::{admonition} Source post`` box (before its
    closing fence); ``None`` if the chapter has no such box."""
    m = _SOURCE_BOX.search(text)
    if not m:
        return None
    close = re.compile(r"^" + re.escape(m.group(1)) + r"[ \t]*$", re.M).search(text, m.end())
    if not close:
        return None
    return text[: close.start()].rstrip("\n") + "\n\n" + paragraph + "\n" + text[close.start():]


def insert_after_title(text: str, block: str) -> str:
    """Insert ``block`` after the first level-1 heading outside code fences (after the front
    matter); at the top of the body if there is none."""
    m = _FRONT.match(text)
    start = m.end() if m else 0
    body = text[start:].splitlines(keepends=True)
    fence = None
    for i, line in enumerate(body):
        s = line.lstrip()
        f = re.match(r"(`{3,}|~{3,}|:{3,})", s)
        if f:
            tok = f.group(1)
            if fence is None:
                fence = tok
            elif tok[0] == fence[0] and len(tok) >= len(fence) and s.strip() == tok:
                fence = None
            continue
        if fence is None and re.match(r"#\s", line):
            return text[:start] + "".join(body[: i + 1]) + "\n" + block + "\n" + "".join(body[i + 1 :])
    return text[:start] + block + "\n" + "".join(body)


def is_chapter(docname: str, meta: dict) -> bool:
    """A chapter: a notebook (``kernelspec`` in the front matter) under ``book/`` that declares the
    posts it derives (``kexue: posts:``)."""
    return docname.startswith("book/") and chapter_posts(meta) is not None and "kernelspec" in meta


def _builder_inited(app: Sphinx) -> None:
    app.kexue_bib_keys = bib_keys([Path(app.srcdir) / f for f in getattr(app.config, "bibtex_bibfiles", [])])


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    text = source[0]
    meta = front_matter(text)
    if not is_chapter(docname, meta):
        return
    posts = chapter_posts(meta)
    app.env.kexue_chapters[docname] = posts
    # a chapter's own Source post box (it may add context: the papers behind the post) gets the
    # notebook line; a chapter without one gets the whole box, generated from its front matter
    merged = add_to_source_box(text, run_line(docname))
    source[0] = merged if merged is not None else insert_after_title(text, header_block(docname, posts, app.kexue_bib_keys))


def setup(app: Sphinx) -> None:
    env_store("kexue_chapters")
    app.connect("builder-inited", _builder_inited)
    app.connect("source-read", _source_read)
