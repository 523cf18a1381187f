"""Parallel execution of the notebooks: Sphinx's parallel reading, with chunks balanced by cost.

myst-nb executes a notebook while Sphinx reads it, declares itself ``parallel_read_safe`` and merges
its execution data from the parallel readers; so the notebooks execute in parallel when Sphinx reads
in parallel. ``jupyter-book build`` has no ``-j`` option, so this module sets Sphinx's number of
processes for the reading phase only (writing stays serial): ``kexue_build_jobs`` (``"auto"``: the
CPUs this process may use), overridden by ``$KEXUE_BUILD_JOBS`` (``KEXUE_BUILD_JOBS=1`` builds
serially). Sphinx reads in parallel only when more than 5 documents are outdated and every extension
is parallel-read safe (two that Jupyter Book loads do not say so but are: :data:`REVIEWED_SAFE`);
and every domain can merge the data of parallel readers (sphinx-proof's ``prf`` domain keeps no data
but lacks the no-op ``merge_domaindata`` Sphinx asks for: it is given one); otherwise it reads
serially, as before.

Sphinx cuts the sorted list of outdated documents into contiguous chunks, one process each, at most
``jobs`` at a time. Sorted, the long notebooks of one part would share a chunk; at
``env-before-read-docs`` the list is reordered so that the costliest documents (the last execution
time myst-nb recorded, else a guess: notebooks 10 s, pages 0.1 s) are spread over the chunks that
start first, longest first.
"""
from __future__ import annotations

import os
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.domains import Domain
from sphinx.util.parallel import make_chunks, parallel_available

from .common import LOG

JOBS_ENV = "KEXUE_BUILD_JOBS"
#: extensions Jupyter Book loads that do not declare ``parallel_read_safe`` but are: reviewed in the
#: pinned versions. sphinx-multitoc-numbering only replaces the numbering of the toctrees, which
#: Sphinx runs in the main process after the parallel readers are merged; sphinx-jupyterbook-latex
#: adds transforms that change only the document being read and sets up the LaTeX builder in the
#: main process. Without this, Sphinx would read serially.
REVIEWED_SAFE = ("sphinx_multitoc_numbering", "sphinx_jupyterbook_latex")
GUESS_NOTEBOOK_S, GUESS_PAGE_S = 10.0, 0.1


def build_jobs(setting) -> int:
    """The number of reading processes for ``kexue_build_jobs`` = ``setting`` (``"auto"`` or an
    int >= 1), overridden by ``$KEXUE_BUILD_JOBS``. Raises ``ValueError`` on anything else."""
    value = os.environ.get(JOBS_ENV) or setting
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ValueError(f"kexue_build_jobs / ${JOBS_ENV} must be 'auto' or an integer >= 1, got {value!r}")
    return n


def balanced_order(docnames: list[str], cost: dict[str, float], nproc: int) -> list[str]:
    """``docnames`` reordered so that Sphinx's chunks (:func:`sphinx.util.parallel.make_chunks`, run
    ``nproc`` at a time in list order) get the costliest documents first and evenly: longest first,
    each to the least loaded of the chunks that start at once while they have room, then to the
    later chunks."""
    sizes = [len(c) for c in make_chunks(list(range(len(docnames))), nproc)]
    bins: list[list[str]] = [[] for _ in sizes]
    load = [0.0] * len(sizes)
    for d in sorted(docnames, key=lambda d: (-cost.get(d, 0.0), d)):
        room = [i for i in range(len(sizes)) if len(bins[i]) < sizes[i]]
        first = [i for i in room if i < nproc] or room
        i = min(first, key=lambda i: (load[i], i))
        bins[i].append(d)
        load[i] += cost.get(d, 0.0)
    return [d for b in bins for d in b]


def _cost(app: Sphinx, env, docname: str) -> float:
    exec_data = (getattr(env, "nb_metadata", {}) or {}).get(docname, {}).get("exec_data") or {}
    if exec_data.get("runtime"):
        return float(exec_data["runtime"])
    try:
        head = Path(env.doc2path(docname)).read_text(encoding="utf-8")[:2000]
    except OSError:
        return GUESS_PAGE_S
    return GUESS_NOTEBOOK_S if "kernelspec:" in head else GUESS_PAGE_S


def _merge_nothing(self, docnames, otherdata) -> None:
    """``merge_domaindata`` of a domain that keeps no data of its own."""


def _before_read(app: Sphinx, env, docnames: list[str]) -> None:
    jobs = build_jobs(app.config.kexue_build_jobs)
    app._kexue_parallel_was = app.parallel
    if jobs <= 1 or app.parallel > 1 or not parallel_available:
        return
    for name in app.config.kexue_parallel_safe_extensions:
        ext = app.extensions.get(name)
        if ext is not None and ext.parallel_read_safe is None:  # undeclared, reviewed safe
            ext.parallel_read_safe = True
    unsafe = [name for name, ext in app.extensions.items() if not ext.parallel_read_safe]
    for domain in env.domains.values():
        if type(domain).merge_domaindata is Domain.merge_domaindata:  # Sphinx's: raises NotImplementedError
            if type(domain).initial_data:
                unsafe.append(f"the {domain.name} domain (no merge_domaindata)")
            else:  # nothing to merge (sphinx-proof 0.4.0's prf domain: its proofs are in env.proof_list)
                type(domain).merge_domaindata = _merge_nothing
    if unsafe:
        LOG.info(f"[kexue_book] reading serially: not parallel-read safe: {', '.join(unsafe)}")
        return
    app.parallel = jobs
    if len(docnames) > 5:
        docnames[:] = balanced_order(list(docnames), {d: _cost(app, env, d) for d in docnames}, jobs)
        LOG.info(f"[kexue_book] reading {len(docnames)} documents in {jobs} processes")


def _after_read(app: Sphinx, env) -> None:
    app.parallel = getattr(app, "_kexue_parallel_was", app.parallel)  # writing stays as it was


def setup(app: Sphinx) -> None:
    app.add_config_value("kexue_build_jobs", "auto", "")
    app.add_config_value("kexue_parallel_safe_extensions", list(REVIEWED_SAFE), "")
    app.connect("env-before-read-docs", _before_read, priority=900)
    app.connect("env-updated", _after_read, priority=100)
