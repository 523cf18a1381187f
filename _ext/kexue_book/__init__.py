"""The book's own Sphinx extension (``_config.yml``: ``sphinx: local_extensions: kexue_book: _ext/``).

One module per thing it generates; :func:`setup` only wires them (adding an appendix is adding a
module with its own ``setup(app)`` and one line here):

- :mod:`.mathjax`: MathJax 3 served from the site (no network), the book's stylesheet;
- :mod:`.api_pages`: one API page per public module of ``kexue_core`` (``book/appendices/api/``) and
  the ``{kexue-api-modules}`` table;
- :mod:`.chapter_header`: the "Source post" box of each chapter, from its front matter;
- :mod:`.notebooks`: each chapter as an ``.ipynb`` download;
- :mod:`.posts`: ``{kexue-posts}``, the posts index;
- :mod:`.ledger`: ``{kexue-claims-ledger}``, every check of every chapter, from the recorder's records;
- :mod:`.errata`: ``{kexue-errata}``, every Erratum / Approximation box of the chapters;
- :mod:`.execution`: ``{kexue-versions}``, the stack that built the book (beside myst-nb's execution table);
- :mod:`.post_role`: the ``{post}`` role for numbers quoted from the post;
- :mod:`.checks_tables`: the chapters' "what we checked" tables typeset by MathJax;
- :mod:`.html_fixes`: a clean browser console;
- :mod:`.dependencies`: never-stale rebuilds (a notebook depends on the ``kexue_core`` modules it imported);
- :mod:`.parallel`: the notebooks execute in parallel (Sphinx's parallel reading);
- :mod:`.common`: what they share (per-document data, placeholders of collected pages, tables).

The collected pages (ledger, errata, posts, versions, API index) are re-read and re-written on every
build and filled in at ``doctree-resolved``, after every chapter of the build has executed.
"""
from __future__ import annotations

import os

from sphinx.application import Sphinx

from . import (
    api_pages, chapter_header, checks_tables, common, dependencies, errata, execution, html_fixes, ledger, mathjax,
    notebooks, parallel, post_role, posts,
)
# the names the tests and other tools use
from .api_pages import API_DIR, API_PACKAGE, api_page, docstring_problems, documented_location, public_modules, public_names, write_api_pages  # noqa: F401
from .chapter_header import NOTEBOOK_DIR, add_to_source_box, chapter_posts, front_matter, header_block, insert_after_title, run_line  # noqa: F401
from .checks_tables import typeset_checks_tables  # noqa: F401
from .common import claims_dir_of, text_with_math, toc_order  # noqa: F401
from .ledger import ledger_rows, load_claims, untested_claims  # noqa: F401
from .mathjax import MATHJAX_DIST, MATHJAX_ENTRY, mathjax_static_dir  # noqa: F401
from .notebooks import write_notebook  # noqa: F401

MODULES = (
    common, mathjax, api_pages, chapter_header, notebooks, posts, ledger, errata, execution, post_role,
    checks_tables, html_fixes, dependencies, parallel,
)


def _export_claims_dir(app: Sphinx) -> None:
    # the kernels that execute the chapters inherit this: all claims of this build land in one place
    os.environ[common.CLAIMS_ENV] = str(claims_dir_of(app))


def setup(app: Sphinx) -> dict:
    for module in MODULES:
        module.setup(app)
    app.connect("builder-inited", _export_claims_dir)
    return {"version": "0.2", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 2}
