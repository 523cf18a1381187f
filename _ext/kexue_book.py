"""The book's own Sphinx extension (``_config.yml``: ``sphinx: local_extensions: kexue_book: _ext/``).

What it does, in build order:

1. **Math with no network.** MathJax 3 is copied into the built site from the ``sphinx-mathjax-offline``
   package (``_static/mathjax/``) and ``mathjax_path`` points there; MathJax is loaded on every page.
2. **API pages.** At ``config-inited`` it writes one page per public module of ``kexue_core``
   (``book/appendices/api/kexue_core*.md``, git-ignored, picked up by a glob in ``_toc.yml``), each an
   ``automodule`` with ``:members:``: a new module or function appears without any hand edit.
3. **Chapter header.** At ``source-read``, for each chapter (a notebook with ``kexue: posts:`` in its
   front matter) it adds a download link to the chapter as ``.ipynb`` (written with jupytext into
   ``_build/notebooks/``) and one line on how to open it, inside the chapter's own "Source post" box; a
   chapter without such a box gets one under its title, built from the front matter (Chinese and English
   title, date, link, citation).
4. **Collected appendices**, filled in at ``doctree-resolved`` (after every chapter of the build has been
   read, that is executed), like ``sphinx.ext.todo``'s list:

   - ``{kexue-claims-ledger}``: every check of every chapter, from the JSON records that
     :class:`kexue_core.checks.CheckRecorder` writes while the chapter executes;
   - ``{kexue-errata}``: every ``Erratum`` / ``Approximation`` admonition of the chapters, with a link to
     its section;
   - ``{kexue-posts}``: the posts of ``posts.yml`` with the chapter that declares each in its front matter;
   - ``{kexue-versions}``: the versions of Python and of the stack that built the book.

   Pages holding these directives are re-read and re-written on every build.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import os
import pkgutil
import platform
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, new_document

LOG = logging.getLogger(__name__)

MATHJAX_DIST = "sphinx-mathjax-offline"
MATHJAX_ENTRY = "mathjax/tex-mml-chtml.js"
API_PACKAGE = "kexue_core"
API_DIR = "book/appendices/api"  # relative to the source folder
NOTEBOOK_DIR = "_build/notebooks"  # relative to the source folder; the .ipynb downloads
POST_URL = "https://kexue.fm/archives/{}"
COLLECTED_KINDS = ("Erratum", "Approximation")
_CLAIMS_ENV = "KEXUE_CLAIMS_DIR"


# ---------------------------------------------------------------------------------------------
# 1. MathJax from the site itself
# ---------------------------------------------------------------------------------------------
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
    here = Path(__file__).resolve().parent / "static"  # kexue.css
    config.html_static_path = [*config.html_static_path, str(mathjax_static_dir()), str(here)]
    config.mathjax_path = MATHJAX_ENTRY  # relative: served from _static/


# ---------------------------------------------------------------------------------------------
# 2. API pages, one per module, generated from the package
# ---------------------------------------------------------------------------------------------
def public_modules(package: str = API_PACKAGE) -> list[str]:
    """``package`` and every submodule whose dotted name has no part starting with ``_``, sorted."""
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


def public_names(module) -> list[str]:
    """The names a module exports: its ``__all__`` if it has one, else the public functions and
    classes defined in it."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]


def documented_location(module, name: str, submodules: list[str]) -> str:
    """Dotted name of the module whose API page documents ``module.name``: the public module that
    defines and exports it, else a public submodule of ``module`` that exports the same object, else
    ``module`` itself."""
    obj = getattr(module, name, None)
    home = getattr(obj, "__module__", None)
    if home and home != module.__name__ and home in submodules:
        if name in public_names(importlib.import_module(home)):
            return home
    if hasattr(module, "__path__"):
        for sub in submodules:
            if sub.startswith(module.__name__ + "."):
                sub_mod = importlib.import_module(sub)
                if name in public_names(sub_mod) and getattr(sub_mod, name, None) is obj:
                    return sub
    return module.__name__


def api_page(modname: str, submodules: list[str]) -> str:
    """MyST source of the API page of one module."""
    mod = importlib.import_module(modname)
    label = "api-" + re.sub(r"[^a-z0-9]+", "-", modname.lower())
    lines = [
        "<!-- generated by _ext/kexue_book.py from the package; do not edit -->",
        f"({label})=",
        f"# `{modname}`",
        "",
    ]
    names = public_names(mod)
    own, reexported = [], []
    for n in names:
        obj = getattr(mod, n, None)
        if inspect.ismodule(obj):
            continue
        where = documented_location(mod, n, submodules)
        (own if where == modname else reexported).append((n, where))
    # autodoc writes reST: it must be parsed as reST, not as MyST
    code = [n for n, _ in own if callable(getattr(mod, n))]
    data = [n for n, _ in own if not callable(getattr(mod, n))]
    lines += ["```{eval-rst}", f".. automodule:: {modname}"]
    if code:
        lines += ["   :members: " + ", ".join(code), "   :undoc-members:", "   :member-order: bysource"]
    for n in data:  # constants: autodoc's :members: skips those without a doc comment
        lines += ["", f".. autodata:: {modname}.{n}"]
    lines += ["```", ""]
    children = [s for s in submodules if s.rsplit(".", 1)[0] == modname]
    if children:
        lines += ["## Submodules", ""]
        lines += [f"- {{doc}}`{c} <{c}>`" for c in children]
        lines += [""]
    if reexported:
        lines += ["## Re-exported names", "", f"`{modname}` re-exports these names from its submodules:", ""]
        lines += [f"- {{py:obj}}`{n} <{where}.{n}>` from `{where}`" for n, where in reexported]
        lines += [""]
    return "\n".join(lines)


def write_api_pages(srcdir: Path, package: str = API_PACKAGE) -> list[str]:
    """Write ``<srcdir>/book/appendices/api/<module>.md`` for each public module (only when changed,
    so unchanged pages are not re-read), delete pages of modules that no longer exist; return the
    module names."""
    out = srcdir / API_DIR
    out.mkdir(parents=True, exist_ok=True)
    mods = public_modules(package)
    wanted = {}
    for m in mods:
        wanted[out / f"{m}.md"] = api_page(m, mods)
    for stale in out.glob(f"{package}*.md"):
        if stale not in wanted:
            stale.unlink()
    for path, text in wanted.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return mods


def _generate_api(app: Sphinx, config) -> None:
    if not config.kexue_api_pages:
        return
    root = Path(app.srcdir)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    mods = write_api_pages(root)
    LOG.info(f"[kexue_book] API pages for {len(mods)} modules of {API_PACKAGE}")


# Messages of docutils that mean a docstring's reST is malformed (its layout would be lost or
# garbled); unknown roles are not among them (Sphinx's roles are unknown to plain docutils).
_STRUCTURAL = re.compile(
    r"Unexpected indentation|ends without a blank line|Malformed table|start-string without end-string|"
    r"Inconsistent literal block quoting|Unexpected section title|Title underline too short|"
    r"Enumerated list ends|Explicit markup ends|Duplicate explicit target|Unknown target name"
)


def docstring_problems(rst: str, env=None) -> list[str]:
    """Structural reST problems of a docstring (as rendered text, after napoleon), as
    ``"line N: message"`` strings; ``[]`` if it parses cleanly."""
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document as du_new_document

    parser = Parser()
    settings = get_default_settings(Parser)
    settings.report_level = 5  # collect, print nothing
    settings.halt_level = 5
    if env is not None:  # inside a Sphinx build, Sphinx's roles look for it
        settings.env = env
    doc = du_new_document("<docstring>", settings)
    found: list[str] = []

    def observe(msg):
        text = msg.astext()
        if msg["level"] >= 2 and _STRUCTURAL.search(text):
            found.append(f"line {msg.get('line', '?')}: {text.splitlines()[0]}")

    doc.reporter.attach_observer(observe)
    parser.parse(rst, doc)
    return found


def _verbatim_bad_docstrings(app: Sphinx, what, name, obj, options, lines: list[str]) -> None:
    """A docstring whose reST is malformed is shown verbatim (a literal block) rather than garbled,
    and named in the log; ``tests/test_book_api.py`` fails on it so that it gets fixed."""
    if not lines:
        return
    if what == "data" and inspect.getdoc(type(obj)) and "\n".join(lines).strip() == inspect.getdoc(type(obj)).strip():
        lines[:] = []  # a constant without its own docstring: not its type's (dict, str...) docstring
        return
    problems = docstring_problems("\n".join(lines), app.env)
    if problems:
        raw = inspect.getdoc(obj) or "\n".join(lines)
        LOG.info(f"[kexue_book] docstring of {name} is not valid reST ({problems[0]}): shown verbatim")
        lines[:] = ["::", ""] + ["    " + line for line in raw.splitlines()] + [""]


def _resolve_reexports(app: Sphinx, env, node, contnode):
    """``kexue_core.attention.softmax_attention`` (a re-export) resolves to the page that documents
    the object (``kexue_core.attention.softmax.softmax_attention``)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith(API_PACKAGE + "."):
        return None
    modname, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(modname), attr)
    except (ImportError, AttributeError):
        return None
    home = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", attr)
    if not home or f"{home}.{qual}" == target:
        return None
    domain = env.get_domain("py")
    new = node.deepcopy()
    new["reftarget"] = f"{home}.{qual}"
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], new["reftarget"], new, contnode)


class ApiModulesDirective(SphinxDirective):
    """``{kexue-api-modules}``: a table of the package's public modules and their one-line summary."""

    def run(self):
        _mark_dynamic(self.env)
        rows = []
        for m in public_modules():
            doc = inspect.getdoc(importlib.import_module(m)) or ""
            summary = doc.strip().splitlines()[0] if doc.strip() else ""
            ref = addnodes.pending_xref(
                "", nodes.literal(m, m), refdomain="std", reftype="doc", reftarget=f"/{API_DIR}/{m}",
                refexplicit=True, refdoc=self.env.docname,
            )
            rows.append([[ref], [nodes.Text(summary)]])
        return [_table(["module", "summary"], rows, widths=[30, 70])]


# ---------------------------------------------------------------------------------------------
# 3. Chapter header and notebook download
# ---------------------------------------------------------------------------------------------
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
    text = source[0]
    if not docname.startswith("book/"):
        return
    meta = front_matter(text)
    posts = chapter_posts(meta)
    if posts is None or "kernelspec" not in meta:
        return
    env = app.env
    env.kexue_chapters[docname] = posts
    write_notebook(text, Path(app.srcdir) / NOTEBOOK_DIR / f"{docname}.ipynb", posts)
    # a chapter's own Source post box (it may add context: the papers behind the post) gets the
    # notebook line; a chapter without one gets the whole box, generated from its front matter
    merged = add_to_source_box(text, run_line(docname))
    source[0] = merged if merged is not None else insert_after_title(text, header_block(docname, posts, app.kexue_bib_keys))


# ---------------------------------------------------------------------------------------------
# 4. Collected appendices
# ---------------------------------------------------------------------------------------------
class kexue_placeholder(nodes.General, nodes.Element):
    """Replaced at doctree-resolved by the collected content (kind: ledger, errata, posts)."""


def _mark_dynamic(env) -> None:
    env.kexue_dynamic.add(env.docname)


class _PlaceholderDirective(SphinxDirective):
    kind = ""
    optional_arguments = 1
    has_content = False

    def run(self):
        _mark_dynamic(self.env)
        node = kexue_placeholder()
        node["kind"] = self.kind
        if self.arguments:
            _, abspath = self.env.relfn2path(self.arguments[0], self.env.docname)
            node["path"] = abspath
            self.env.note_dependency(abspath)
        return [node]


class LedgerDirective(_PlaceholderDirective):
    """``{kexue-claims-ledger}``: the table of every check of every chapter."""

    kind = "ledger"


class ErrataDirective(_PlaceholderDirective):
    """``{kexue-errata}``: every Erratum / Approximation admonition of the chapters."""

    kind = "errata"


class PostsDirective(_PlaceholderDirective):
    """``{kexue-posts} posts.yml``: the posts and the chapter deriving each."""

    kind = "posts"
    required_arguments = 1
    optional_arguments = 0


VERSIONED = [
    "torch", "numpy", "scipy", "sympy", "mpmath", "matplotlib", "scikit-learn", "snownlp",
    "jupyter-book", "sphinx", "myst-nb", "myst-parser", "jupytext", "jupyter-cache", "nbclient",
    "ipykernel", "sphinx-book-theme", "sphinxcontrib-bibtex", "sphinx-proof", "sphinx-mathjax-offline",
    "pytest", "nbval", "playwright", "kexue_core",
]


class VersionsDirective(SphinxDirective):
    """``{kexue-versions}``: Python and the versions of the packages that built this book."""

    def run(self):
        _mark_dynamic(self.env)
        rows = [[[nodes.Text("Python")], [nodes.literal(text=platform.python_version())]],
                [[nodes.Text("platform")], [nodes.literal(text=f"{platform.system()} {platform.machine()}")]]]
        for dist in VERSIONED:
            try:
                v = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                v = "not installed"
            rows.append([[nodes.Text(dist)], [nodes.literal(text=v)]])
        return [_table(["package", "version"], rows, widths=[40, 60])]


def _table(header: list[str], rows: list[list[list[nodes.Node]]], widths: list[int] | None = None,
           classes: tuple[str, ...] = ()) -> nodes.table:
    table = nodes.table(classes=["colwidths-auto", *classes])
    tgroup = nodes.tgroup(cols=len(header))
    table += tgroup
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
    return table


def text_with_math(s: str) -> list[nodes.Node]:
    """Text where ``$...$`` spans become inline math nodes (the recorder writes SymPy results so)."""
    out: list[nodes.Node] = []
    for i, part in enumerate(re.split(r"(?<!\\)\$(.+?)(?<!\\)\$", s)):
        if i % 2:
            out.append(nodes.math(part, part))
        elif part:
            out.append(nodes.Text(part))
    return out


# -- errata: collected at doctree-read ----------------------------------------------------------
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


def _purge(app: Sphinx, env, docname: str) -> None:
    for attr in ("kexue_errata", "kexue_chapters"):
        getattr(env, attr).pop(docname, None)
    env.kexue_dynamic.discard(docname)


def _merge(app: Sphinx, env, docnames, other) -> None:
    for attr in ("kexue_errata", "kexue_chapters"):
        getattr(env, attr).update({d: v for d, v in getattr(other, attr).items() if d in docnames})
    env.kexue_dynamic |= {d for d in other.kexue_dynamic if d in docnames}


def _init_env(app: Sphinx, env, docnames) -> None:
    for attr, default in (("kexue_errata", dict), ("kexue_chapters", dict), ("kexue_dynamic", set)):
        if not hasattr(env, attr):
            setattr(env, attr, default())


def _builder_inited(app: Sphinx) -> None:
    _init_env(app, app.env, [])
    app.kexue_bib_keys = bib_keys([Path(app.srcdir) / f for f in getattr(app.config, "bibtex_bibfiles", [])])
    # the kernels that execute the chapters inherit this: all claims of this build land in one place
    os.environ[_CLAIMS_ENV] = str(claims_dir_of(app))


def _always_reread(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Pages with collected content are re-read (and so re-written) on every build."""
    _init_env(app, env, [])
    return sorted(d for d in env.kexue_dynamic if d in env.found_docs and d not in added | changed | removed)


# -- resolution ------------------------------------------------------------------------------------
_CLAIMS_ENV_AT_START = os.environ.get(_CLAIMS_ENV)


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


def _doc_link(app: Sphinx, fromdoc: str, todoc: str, text: str, anchor: str = "") -> nodes.reference:
    uri = app.builder.get_relative_uri(fromdoc, todoc)
    if anchor:
        uri += "#" + anchor
    return nodes.reference("", text, internal=True, refuri=uri)


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


LEDGER_COLUMNS = ["chapter", "#", "claim", "expected", "got", "tolerance", "status"]


def ledger_rows(chapters: list[tuple[str, str]], claims: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """Rows of the claims ledger for the chapters ``[(docname, title)]`` in book order, from the
    recorder payloads ``claims`` (keyed by chapter slug = file name of the chapter). Returns the rows
    (dicts with the ``LEDGER_COLUMNS`` keys plus ``docname``, ``why``) and the docnames with no
    records."""
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
                "expected": r.get("expected", ""), "got": r.get("got", ""), "tolerance": r.get("tolerance", ""),
                "status": r.get("status", ""), "why": r.get("why", ""),
            })
    return rows, missing


def _render_ledger(app: Sphinx, fromdoc: str) -> list[nodes.Node]:
    env = app.env
    from kexue_core.checks import STATUSES

    chapters = [(d, chapter_title(env, d)) for d in toc_order(env) if d in env.kexue_chapters]
    claims = load_claims(claims_dir_of(app))
    rows, missing = ledger_rows(chapters, claims)
    out: list[nodes.Node] = []
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    summary = nodes.paragraph()
    summary += nodes.strong(text=f"{len(rows)} checks in {len(chapters) - len(missing)} chapters")
    summary += nodes.Text(": " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
    out.append(summary)
    per_chapter = []
    for d, title in chapters:
        rs = [r for r in rows if r["docname"] == d]
        cells = [[_doc_link(app, fromdoc, d, title)], [nodes.Text(str(len(rs)))]]
        cells += [[nodes.Text(str(sum(r["status"] == s for r in rs)))] for s in STATUSES]
        per_chapter.append(cells)
    out.append(_table(["chapter", "checks", *STATUSES], per_chapter, classes=("kexue-ledger-summary",)))
    if missing:
        p = nodes.paragraph(classes=["kexue-ledger-missing"])
        p += nodes.strong(text="No checks recorded for: ")
        for i, d in enumerate(missing):
            if i:
                p += nodes.Text(", ")
            p += _doc_link(app, fromdoc, d, chapter_title(env, d))
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
            [_doc_link(app, fromdoc, r["docname"], r["chapter"])] if first else [],
            [nodes.Text(r["#"])],
            text_with_math(r["claim"]),
            text_with_math(r["expected"]),
            text_with_math(r["got"]),
            tol,
            [nodes.Text(r["status"])],
        ])
    out.append(_table(LEDGER_COLUMNS, body, widths=[14, 3, 27, 14, 14, 18, 10], classes=("kexue-ledger",)))
    return out


def _render_errata(app: Sphinx, fromdoc: str, document: nodes.document) -> list[nodes.Node]:
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
            p += _doc_link(app, fromdoc, d, it["section"] or chapter_title(env, d), it["anchor"])
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


def _render_posts(app: Sphinx, fromdoc: str, path: str) -> list[nodes.Node]:
    env = app.env
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
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
                where.append(_doc_link(app, fromdoc, d, chapter_title(env, d)))
        elif p.get("note"):
            where = [nodes.Text(p["note"])]
        else:
            where = [nodes.emphasis(text=f"not yet written (planned for {p.get('part', 'a later part')})")]
        rows.append([[nodes.Text(str(p["date"]))], title, [link], where])
    out: list[nodes.Node] = [
        nodes.paragraph(text=f"{len(posts)} posts; {sum(int(p['archive']) in derived for p in posts)} "
                             "derived in a chapter so far."),
        _table(["date", "title", "post", "chapter"], rows, widths=[10, 45, 15, 30], classes=("kexue-posts",)),
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
                where.append(_doc_link(app, fromdoc, d, chapter_title(env, d)))
            rows.append([[nodes.Text(str(p.get("date", "")))],
                         [nodes.Text(f"{p.get('title_zh', '')} "), nodes.emphasis(text=str(p.get("title_en", "")))],
                         [link], where])
        out.append(_table(["date", "title", "post", "chapter"], rows, widths=[10, 45, 15, 30], classes=("kexue-posts",)))
    return out


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
    for node in list(doctree.findall(kexue_placeholder)):
        kind = node["kind"]
        if kind == "ledger":
            new = _render_ledger(app, docname)
        elif kind == "errata":
            new = _render_errata(app, docname, doctree)
        elif kind == "posts":
            new = _render_posts(app, docname, node["path"])
        else:  # pragma: no cover
            raise ExtensionError(f"unknown placeholder {kind}")
        node.replace_self(new)


def _always_rewrite(app: Sphinx, env) -> list[str]:
    return sorted(d for d in env.kexue_dynamic if d in env.found_docs)


def _page_context(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Two fixes for a clean browser console: sphinx-thebe's inline configuration script is added
    twice under Jupyter Book (a ``const`` declared twice is a SyntaxError), and the pydata theme logs
    an error when no ``default_mode`` is set."""
    if "script_files" in context:
        seen, unique = set(), []
        for js in context["script_files"]:
            attrs = getattr(js, "attributes", {})  # the duplicates differ in priority only
            key = (getattr(js, "filename", str(js)) or None, attrs.get("body"))  # filename '' or None
            if key not in seen:
                seen.add(key)
                unique.append(js)
        context["script_files"][:] = unique  # in place: the template and later handlers share it
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def post_number_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{post}`1.67629``: a number quoted from the post (not computed by the chapter). It renders
    as the plain number with the class ``kexue-post-number`` (a tooltip says whose it is); the test
    of prose numbers (tests/test_book_sources.py) accepts numbers marked this way."""
    node = nodes.inline(rawtext, text, classes=["kexue-post-number"])
    node["title"] = "quoted from the post"
    return [node], []


def setup(app: Sphinx) -> dict:
    app.add_role("post", post_number_role)
    app.setup_extension("sphinx.ext.autodoc")  # its events are connected below
    app.add_config_value("kexue_api_pages", True, "env")  # write book/appendices/api/*.md
    app.add_node(kexue_placeholder)
    app.add_directive("kexue-claims-ledger", LedgerDirective)
    app.add_directive("kexue-errata", ErrataDirective)
    app.add_directive("kexue-posts", PostsDirective)
    app.add_directive("kexue-versions", VersionsDirective)
    app.add_directive("kexue-api-modules", ApiModulesDirective)
    app.connect("config-inited", _setup_mathjax)
    app.connect("config-inited", _generate_api, priority=100)  # before sphinx-external-toc reads the toc
    app.connect("builder-inited", _builder_inited)
    app.connect("env-before-read-docs", _init_env)
    app.connect("env-get-outdated", _always_reread)
    app.connect("env-get-updated", _always_rewrite)
    app.connect("source-read", _source_read)
    app.connect("doctree-read", _collect_errata)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _doctree_resolved)
    app.connect("autodoc-process-docstring", _verbatim_bad_docstrings, priority=600)  # after napoleon
    app.connect("missing-reference", _resolve_reexports)
    app.connect("html-page-context", _page_context, priority=999)  # after everyone adding scripts
    app.add_css_file("kexue.css")
    app.set_html_assets_policy("always")  # MathJax on every page (the ledger gets its math late)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
