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

Sphinx cuts the sorted list of outdated documents into a few contiguous chunks of equal length, one
process each, at most ``jobs`` at a time: the long notebooks of one part would share a chunk and
one process would work long after the other. So, for the reading phase only, the chunks are made here
(:func:`cost_chunks`): each notebook alone, longest first (the last execution time myst-nb recorded,
else a guess from its size), so that a process that finishes takes the next notebook; the pages
without code in batches after them. (This swaps ``sphinx.builders.make_chunks`` for the reading phase
and puts it back at ``env-updated``; Sphinx is pinned, 7.4.7.)
"""
from __future__ import annotations

import os
from pathlib import Path

import sphinx.builders
from sphinx.application import Sphinx
from sphinx.domains import Domain
from sphinx.util.parallel import parallel_available

from .common import LOG

JOBS_ENV = "KEXUE_BUILD_JOBS"
#: extensions Jupyter Book loads that do not declare ``parallel_read_safe`` but are: reviewed in the
#: pinned versions. sphinx-multitoc-numbering only replaces the numbering of the toctrees, which
#: Sphinx runs in the main process after the parallel readers are merged; sphinx-jupyterbook-latex
#: adds transforms that change only the document being read and sets up the LaTeX builder in the
#: main process. Without this, Sphinx would read serially.
REVIEWED_SAFE = ("sphinx_multitoc_numbering", "sphinx_jupyterbook_latex")
GUESS_PAGE_S = 0.1
GUESS_NOTEBOOK_S_PER_KB = 1.0  # a notebook's first execution time, guessed from its size


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


def cost_chunks(docnames: list[str], cost: dict[str, float], *, light: float = 1.0, batch: int = 10) -> list[list[str]]:
    """The chunks of Sphinx's parallel reading: each document of ``cost`` (seconds) >= ``light``
    alone, costliest first, then the cheaper ones in batches of at most ``batch``, in their order.
    Every document of ``docnames`` is in exactly one chunk."""
    heavy = sorted((d for d in docnames if cost.get(d, 0.0) >= light), key=lambda d: (-cost[d], d))
    cheap = [d for d in docnames if cost.get(d, 0.0) < light]
    return [[d] for d in heavy] + [cheap[i:i + batch] for i in range(0, len(cheap), batch)]


def _cost(app: Sphinx, env, docname: str) -> float:
    exec_data = (getattr(env, "nb_metadata", {}) or {}).get(docname, {}).get("exec_data") or {}
    if exec_data.get("runtime"):
        return float(exec_data["runtime"])
    try:
        text = Path(env.doc2path(docname)).read_text(encoding="utf-8")
    except OSError:
        return GUESS_PAGE_S
    return max(1.0, GUESS_NOTEBOOK_S_PER_KB * len(text) / 1000) if "kernelspec:" in text[:2000] else GUESS_PAGE_S


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
    if len(docnames) > 5:  # Sphinx reads fewer serially
        chunks = cost_chunks(list(docnames), {d: _cost(app, env, d) for d in docnames})
        docnames[:] = [d for c in chunks for d in c]
        original = sphinx.builders.make_chunks
        app._kexue_make_chunks = original

        def read_chunks(arguments, nproc, maxbatch=10):
            return chunks if list(arguments) == docnames else original(arguments, nproc, maxbatch)

        sphinx.builders.make_chunks = read_chunks
        LOG.info(f"[kexue_book] reading {len(docnames)} documents in {jobs} processes, "
                 f"{len(chunks)} chunks (each notebook alone, longest first)")


def _after_read(app: Sphinx, env) -> None:
    app.parallel = getattr(app, "_kexue_parallel_was", app.parallel)  # writing stays as it was
    if hasattr(app, "_kexue_make_chunks"):
        sphinx.builders.make_chunks = app._kexue_make_chunks
        del app._kexue_make_chunks


def setup(app: Sphinx) -> None:
    app.add_config_value("kexue_build_jobs", "auto", "")
    app.add_config_value("kexue_parallel_safe_extensions", list(REVIEWED_SAFE), "")
    app.connect("env-before-read-docs", _before_read, priority=900)
    app.connect("env-updated", _after_read, priority=100)
