"""A clean browser console (the browser test fails on any console error)."""
from __future__ import annotations

from sphinx.application import Sphinx


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


def setup(app: Sphinx) -> None:
    app.connect("html-page-context", _page_context, priority=999)  # after everyone adding scripts
