"""The posts index: ``{kexue-posts} posts.yml`` lists the posts of ``posts.yml`` by date, each with
a link to the post and the chapter that declares it in its front matter (``kexue: posts:``), and then
the companion posts that chapters derive but ``posts.yml`` does not list."""
from __future__ import annotations

from pathlib import Path

import yaml
from docutils import nodes
from sphinx.application import Sphinx

from .common import POST_URL, PlaceholderDirective, chapter_title, doc_link, on_placeholder, table, toc_order


class PostsDirective(PlaceholderDirective):
    """``{kexue-posts} posts.yml``: the posts and the chapter deriving each."""

    kind = "posts"
    required_arguments = 1
    optional_arguments = 0


def _render_posts(app: Sphinx, fromdoc: str, document, node) -> list[nodes.Node]:
    env = app.env
    data = yaml.safe_load(Path(node["path"]).read_text(encoding="utf-8"))
    posts = data["posts"]
    derived: dict[int, list[str]] = {}
    for d in toc_order(env):
        for p in env.kexue_chapters.get(d, []):
            derived.setdefault(int(p["archive"]), []).append(d)
    listed = {int(p["archive"]) for p in posts}
    rows = []
    for p in sorted(posts, key=lambda p: str(p["date"])):
        a = int(p["archive"])
        link = nodes.reference("", f"kexue.fm/archives/{a}", refuri=POST_URL.format(a))
        title = [nodes.Text(f"{p['title_zh']} "), nodes.emphasis(text=p["title_en"])]
        if a in derived:
            where: list[nodes.Node] = []
            for i, d in enumerate(derived[a]):
                if i:
                    where.append(nodes.Text(", "))
                where.append(doc_link(app, fromdoc, d, chapter_title(env, d)))
        elif p.get("note"):
            where = [nodes.Text(p["note"])]
        else:
            where = [nodes.emphasis(text=f"not yet written (planned for {p.get('part', 'a later part')})")]
        rows.append([[nodes.Text(str(p["date"]))], title, [link], where])
    out: list[nodes.Node] = [
        nodes.paragraph(text=f"{len(posts)} posts; {sum(int(p['archive']) in derived for p in posts)} "
                             "derived in a chapter so far."),
        table(["date", "title", "post", "chapter"], rows, widths=[10, 45, 15, 30], classes=("kexue-posts",)),
    ]
    extra = sorted(a for a in derived if a not in listed)
    if extra:
        out.append(nodes.paragraph(text="Companion posts that chapters also derive:"))
        rows = []
        for a in extra:
            d0 = derived[a][0]
            p = next(p for p in env.kexue_chapters[d0] if int(p["archive"]) == a)
            link = nodes.reference("", f"kexue.fm/archives/{a}", refuri=POST_URL.format(a))
            where = []
            for i, d in enumerate(derived[a]):
                if i:
                    where.append(nodes.Text(", "))
                where.append(doc_link(app, fromdoc, d, chapter_title(env, d)))
            rows.append([[nodes.Text(str(p.get("date", "")))],
                         [nodes.Text(f"{p.get('title_zh', '')} "), nodes.emphasis(text=str(p.get("title_en", "")))],
                         [link], where])
        out.append(table(["date", "title", "post", "chapter"], rows, widths=[10, 45, 15, 30], classes=("kexue-posts",)))
    return out


def setup(app: Sphinx) -> None:
    app.add_directive("kexue-posts", PostsDirective)
    on_placeholder(app, "posts", _render_posts)
