"""The ``{post}`` role: a number quoted from the post, not computed by the chapter."""
from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx


def post_number_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{post}`1.67629``: a number quoted from the post (not computed by the chapter). It renders
    as the plain number with the class ``kexue-post-number`` (a tooltip says whose it is); the test
    of prose numbers (tests/test_book_built.py::test_no_hand_typed_results_in_the_prose) accepts numbers marked this way."""
    node = nodes.inline(rawtext, text, classes=["kexue-post-number"])
    node["title"] = "quoted from the post"
    return [node], []


def setup(app: Sphinx) -> None:
    app.add_role("post", post_number_role)
