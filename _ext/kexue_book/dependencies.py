"""Never-stale execution: a notebook is re-executed when it changes, when a module of ``kexue_core``
it used changes (imported directly or through another module), or when ``requirements.txt`` changes;
otherwise it is not.

The build executes notebooks with ``execute_notebooks: force``, and Sphinx re-reads (so re-executes)
only the documents that are outdated: changed themselves, or with a changed dependency. This module
gives every executed notebook its dependencies, found from what its kernel actually imported:

1. at ``source-read`` it appends one hidden cell (tag ``remove-cell``: not shown, not in the
   ``.ipynb`` download) that writes, at the end of the execution, the modules of the tracked packages
   (``kexue_tracked_packages``, default ``["kexue_core"]``) found in the kernel's ``sys.modules``, with
   their files, to ``<claims dir>/imports/<docname>.json``, beside the claims records;
2. at ``doctree-read`` (the notebook has executed) it declares those files, and the files of
   ``kexue_execution_dependencies`` (default ``["requirements.txt"]``), to Sphinx as dependencies of the
   document (:meth:`BuildEnvironment.note_dependency`), and keeps the list in ``env.kexue_imports``;
3. at ``env-get-outdated`` it also marks outdated a notebook whose dependency changed after its
   execution *started* (Sphinx compares with the end of the reading), and one whose record is missing
   (it did not execute to the end): it will execute again.

This needs myst-nb's ``force`` execution mode: in ``cache`` mode jupyter-cache would serve a cached
output keyed on the notebook's own code, stale when a module changed.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sphinx.application import Sphinx

from .chapter_header import front_matter
from .common import LOG, claims_dir_of, env_store

MARK = "# kexue_book: record the modules this notebook imported (never-stale rebuilds)"


def imports_record(app: Sphinx, docname: str) -> Path:
    """Where the hidden cell of ``docname`` writes the modules its kernel imported."""
    return claims_dir_of(app) / "imports" / f"{docname.replace('/', '__')}.json"


def record_cell(path: Path, packages: list[str]) -> str:
    """The MyST source of the hidden last cell that writes ``{module: file}`` of the modules of
    ``packages`` in the kernel's ``sys.modules`` to ``path`` (JSON)."""
    return "\n".join([
        "```{code-cell} ipython3",
        ":tags: [remove-cell]",
        "",
        MARK,
        "import json as _kx_json, sys as _kx_sys",
        f"with open({str(path)!r}, 'w', encoding='utf-8') as _kx_f:",
        "    _kx_json.dump({_n: getattr(_m, '__file__', None) for _n, _m in list(_kx_sys.modules.items())",
        f"                   if _n.split('.')[0] in {tuple(packages)!r}}}, _kx_f, indent=1, sort_keys=True)",
        "del _kx_json, _kx_sys, _kx_f",
        "```",
        "",
    ])


def _executes(app: Sphinx) -> bool:
    return getattr(app.config, "nb_execution_mode", "off") not in ("off", None)  # myst-nb executes


def _is_notebook(meta: dict) -> bool:
    return "kernelspec" in meta


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if not _executes(app) or not _is_notebook(front_matter(source[0])):
        return
    path = imports_record(app, docname)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a stale record must not survive a failed execution
    app.env.kexue_imports[docname] = {"started": time.time_ns() // 1_000, "record": str(path), "modules": None}
    source[0] = source[0].rstrip("\n") + "\n\n" + record_cell(path, list(app.config.kexue_tracked_packages))


def _rel(app: Sphinx, file: str) -> str:
    """``file`` relative to the source folder if it is inside it (so that the environment survives a
    move of the clone), else absolute."""
    try:
        return os.path.relpath(file, app.srcdir) if Path(file).resolve().is_relative_to(Path(app.srcdir).resolve()) else file
    except ValueError:
        return file


def _doctree_read(app: Sphinx, doctree) -> None:
    env = app.env
    info = env.kexue_imports.get(env.docname)
    if info is None:
        return
    for extra in app.config.kexue_execution_dependencies:
        if (Path(app.srcdir) / extra).is_file():
            env.note_dependency(extra)
    path = Path(info["record"])
    if not path.is_file():
        LOG.info(f"[kexue_book] {env.docname}: no record of its imports (not executed?): it will execute again")
        return
    modules = json.loads(path.read_text(encoding="utf-8"))
    files = {}
    for name, file in sorted(modules.items()):
        if file and Path(file).is_file():
            files[name] = _rel(app, file)
            env.note_dependency(files[name])
    info["modules"] = files


def _mtime_us(path: Path) -> int:
    return path.stat().st_mtime_ns // 1_000


def outdated_imports(srcdir: str, imports: dict[str, dict], extra: list[str]) -> list[str]:
    """The documents of ``imports`` (``env.kexue_imports``) to execute again: no record of their
    modules, or a module or ``extra`` file missing or modified since their execution started."""
    out = []
    for docname, info in imports.items():
        if info.get("modules") is None:
            out.append(docname)
            continue
        files = [*info["modules"].values(), *extra]
        for f in files:
            p = Path(srcdir) / f
            if not p.is_file():
                if f in extra:
                    continue
                out.append(docname)
                break
            if _mtime_us(p) > info["started"]:
                out.append(docname)
                break
    return sorted(out)


def _get_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    if not hasattr(env, "kexue_imports"):
        return []
    found = env.found_docs
    again = [d for d in outdated_imports(str(app.srcdir), env.kexue_imports, list(app.config.kexue_execution_dependencies))
             if d in found and d not in added | changed | removed]
    if again:
        LOG.info(f"[kexue_book] {len(again)} notebook(s) to execute again (a module they imported changed): "
                 + ", ".join(again))
    return again


def setup(app: Sphinx) -> None:
    env_store("kexue_imports")
    app.add_config_value("kexue_tracked_packages", ["kexue_core"], "env")
    app.add_config_value("kexue_execution_dependencies", ["requirements.txt"], "env")
    app.connect("source-read", _source_read, priority=600)  # after the header: the cell goes last
    app.connect("doctree-read", _doctree_read)
    app.connect("env-get-outdated", _get_outdated)
