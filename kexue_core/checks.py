"""The check recorder: every numeric or symbolic claim a chapter verifies goes through here.

A chapter creates one :class:`CheckRecorder`, calls :meth:`~CheckRecorder.close`,
:meth:`~CheckRecorder.identity`, :meth:`~CheckRecorder.holds`, ... for each claim, and ends with
:meth:`~CheckRecorder.table` ("what we checked"). Each call *asserts* (so a wrong claim fails the
chapter under nbval and in the book build) and appends a record (chapter, claim, expected, got,
tolerance, whose claim it is, status, source). The records are written as JSON to
``<repo>/_build/claims/<chapter>.json`` (or ``$KEXUE_CLAIMS_DIR``) so that the book-wide claims ledger
can be built from them.

Whose claim (``claim_of``), one of :data:`CLAIM_OF`:

- ``"post"``: the post (or the paper it reports) says it;
- ``"book"``: a step or result of the book's own derivation.

How far it is established (``status``), one of :data:`STATUSES`:

- ``proved``: SymPy, exact (:meth:`~CheckRecorder.identity`);
- ``checked at random points``: SymPy could not prove it; it holds at random points of its domain;
- ``reproduced``: a number or claim of the post, within a stated tolerance;
- ``holds``: a numeric check of the book's own result;
- ``refuted``: the post is wrong; the record names its Erratum box (:meth:`~CheckRecorder.refutes`);
- ``approximate``: the post's step holds only approximately; the error is measured;
- ``not reproduced at our scale``: the post's number does not come out in our (smaller) setting;
- ``not reproducible offline``: needs data or weights that cannot be had offline.

A mathematical disagreement with the post is ``refuted`` (:meth:`~CheckRecorder.refutes`), never
``not reproduced at our scale`` (:meth:`~CheckRecorder.not_at_scale`). Claims of the post that the
chapter does not test are listed with :meth:`~CheckRecorder.untested`, so that nothing is skipped
silently.
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .symbolic import IdentityResult, assert_identity

__all__ = [
    "CheckRecord",
    "CheckRecorder",
    "UntestedClaim",
    "PROVED",
    "SPOT_CHECKED",
    "REPRODUCED",
    "HOLDS",
    "REFUTED",
    "APPROXIMATE",
    "NOT_AT_SCALE",
    "NOT_OFFLINE",
    "STATUSES",
    "CLAIM_OF",
    "claims_dir",
]

PROVED = "proved"
SPOT_CHECKED = "checked at random points"
REPRODUCED = "reproduced"
HOLDS = "holds"
REFUTED = "refuted"
APPROXIMATE = "approximate"
NOT_AT_SCALE = "not reproduced at our scale"
NOT_OFFLINE = "not reproducible offline"
#: every status a record may have, in the order the ledger shows them
STATUSES = (PROVED, SPOT_CHECKED, REPRODUCED, HOLDS, REFUTED, APPROXIMATE, NOT_AT_SCALE, NOT_OFFLINE)
#: whose claim a record is: the post's (or its paper's), or the book's own derivation
CLAIM_OF = ("post", "book")


@dataclass
class CheckRecord:
    """One verified claim. ``expected``/``got``/``tolerance`` are display strings."""

    chapter: str
    claim: str
    expected: str
    got: str
    tolerance: str
    status: str
    source: str
    why: str = ""
    claim_of: str = "post"
    erratum: str = ""


@dataclass
class UntestedClaim:
    """A claim of the post that the chapter does not test, and why."""

    chapter: str
    claim: str
    why: str
    source: str


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == bool:
        return str(arr.tolist()) if arr.size > 1 else str(bool(arr))
    if arr.size == 1 and np.issubdtype(arr.dtype, np.number):
        x = arr.item()
        if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
            return str(int(x))
        return f"{x:.6g}"
    if arr.size <= 8 and np.issubdtype(arr.dtype, np.number):
        return "[" + ", ".join(f"{x:.6g}" for x in arr.ravel().tolist()) + "]"
    if np.issubdtype(arr.dtype, np.number):
        return f"{arr.size} values in [{arr.min():.6g}, {arr.max():.6g}]"
    return str(value)


def _repo_root(start: Path) -> Path | None:
    for p in (start, *start.parents):
        if (p / "_toc.yml").is_file():
            return p
    return None


def claims_dir() -> Path | None:
    """Folder where check records are written: ``$KEXUE_CLAIMS_DIR`` if set, else
    ``<repo root>/_build/claims`` (repo root = first parent of the working directory holding
    ``_toc.yml``), else ``None`` (records are kept in memory only)."""
    env = os.environ.get("KEXUE_CLAIMS_DIR")
    if env:
        return Path(env)
    root = _repo_root(Path.cwd().resolve())
    return None if root is None else root / "_build" / "claims"


class CheckRecorder:
    """Records and asserts a chapter's checks.

    Parameters
    ----------
    chapter : the chapter's slug (its file name without ``.md``), e.g. ``"word-vector-dimension"``.
    source : default source of the claims, e.g. ``"https://kexue.fm/archives/7695"``.
    out_dir : where to write ``<chapter>.json``; default :func:`claims_dir`. ``False`` disables writing.

    Raises
    ------
    ValueError
        If ``chapter`` is empty or contains a path separator.
    """

    def __init__(self, chapter: str, *, source: str, out_dir: str | Path | None | bool = None):
        if not chapter or "/" in chapter or "\\" in chapter:
            raise ValueError(f"chapter must be a non-empty slug without '/', got {chapter!r}")
        self.chapter = chapter
        self.source = source
        self.records: list[CheckRecord] = []
        self.untested_claims: list[UntestedClaim] = []
        if out_dir is False:
            self._path = None
        else:
            d = claims_dir() if out_dir is None else Path(out_dir)
            self._path = None if d is None else d / f"{chapter}.json"
        self._write()

    # -- bookkeeping -------------------------------------------------------------------------
    def _write(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "chapter": self.chapter,
            "source": self.source,
            "records": [asdict(r) for r in self.records],
            "untested": [asdict(u) for u in self.untested_claims],
        }
        self._path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")

    def _add(self, claim, expected, got, tolerance, status, source, why, claim_of, erratum="") -> CheckRecord:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        _check_claim_of(claim_of)
        rec = CheckRecord(
            chapter=self.chapter,
            claim=claim,
            expected=_fmt(expected),
            got=_fmt(got),
            tolerance=tolerance,
            status=status,
            source=source or self.source,
            why=why,
            claim_of=claim_of,
            erratum=erratum,
        )
        self.records.append(rec)
        self._write()
        return rec

    # -- the checks ----------------------------------------------------------------------------
    def close(
        self,
        claim: str,
        got,
        expected,
        *,
        atol: float = 0.0,
        rtol: float = 0.0,
        why: str,
        claim_of: str,
        status: str | None = None,
        source: str | None = None,
    ):
        """Assert ``|got - expected| <= atol + rtol*|expected|`` elementwise and record it.

        ``why`` must say where the tolerance comes from (round-off, the post's printed digits,
        Monte Carlo error, ...). ``claim_of`` is ``"post"`` or ``"book"``; ``status`` defaults to
        ``reproduced`` for the post's claims and ``holds`` for the book's, and may be
        ``approximate`` (the post's step holds only approximately: ``why`` then says how far).

        Raises ``ValueError`` if both tolerances are 0 or negative, if ``got`` contains NaN, or if
        ``claim_of``/``status`` is not allowed here; ``AssertionError`` if the values differ by
        more than the tolerance. Returns ``got``.
        """
        status = _default_status(claim_of, status, allowed=(REPRODUCED, HOLDS, APPROXIMATE))
        if atol < 0 or rtol < 0 or (atol == 0 and rtol == 0):
            raise ValueError("give a positive atol and/or rtol")
        if not why:
            raise ValueError("say why this tolerance (argument why=)")
        g = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got, dtype=float)
        e = np.asarray(expected.detach().cpu().numpy() if hasattr(expected, "detach") else expected, dtype=float)
        if np.isnan(g).any():
            raise ValueError(f"{claim}: got NaN")
        err = np.abs(g - e)
        bound = atol + rtol * np.abs(e)
        tol = " + ".join(s for s in (f"atol {atol:g}" if atol else "", f"rtol {rtol:g}" if rtol else "") if s)
        if not np.all(err <= bound):
            worst = float(np.max(err - bound))
            raise AssertionError(
                f"{claim}: got {_fmt(g)}, expected {_fmt(e)} ({tol}); exceeded by {worst:.3g}"
            )
        self._add(claim, e, g, f"{tol} (max err {float(np.max(err)):.2g})", status, source, why, claim_of)
        return got

    def identity(
        self, claim: str, lhs, rhs, *, claim_of: str, source: str | None = None, **kwargs
    ) -> IdentityResult:
        """Assert a SymPy identity with :func:`kexue_core.symbolic.assert_identity` and record it
        as ``proved`` or ``checked at random points``. ``claim_of`` is ``"post"`` (an equation of
        the post) or ``"book"`` (a step of the book's derivation). Returns the
        :class:`~kexue_core.symbolic.IdentityResult`; raises ``AssertionError`` if it is refuted."""
        import sympy as sp

        _check_claim_of(claim_of)
        res = assert_identity(lhs, rhs, **kwargs)
        status = PROVED if res.proved else SPOT_CHECKED
        tol = "exact" if res.proved else f"{res.points} random points"
        self._add(claim, f"${sp.latex(res.rhs)}$", f"${sp.latex(res.lhs)}$", tol, status, source, "SymPy", claim_of)
        return res

    def holds(
        self,
        claim: str,
        condition,
        *,
        claim_of: str,
        got=None,
        expected=None,
        tolerance: str = "",
        why: str = "",
        status: str | None = None,
        source: str | None = None,
    ):
        """Assert that ``condition`` (a bool, or an array/tensor of bools: all must hold) is true
        and record it. ``got``/``expected`` are shown in the table (e.g. the worst ratio and the
        bound). ``status`` defaults to ``reproduced`` for ``claim_of="post"`` and ``holds`` for
        ``claim_of="book"``; ``approximate`` is allowed too.

        Raises ``AssertionError`` naming the claim if it does not hold, ``TypeError`` if
        ``condition`` is not boolean, ``ValueError`` if it is empty or ``claim_of``/``status`` is
        not allowed here."""
        status = _default_status(claim_of, status, allowed=(REPRODUCED, HOLDS, APPROXIMATE))
        c = condition.detach().cpu().numpy() if hasattr(condition, "detach") else np.asarray(condition)
        if c.dtype != bool:
            raise TypeError(f"{claim}: condition must be boolean, got dtype {c.dtype}")
        if c.size == 0:
            raise ValueError(f"{claim}: empty condition checks nothing")
        if not c.all():
            n_bad = int((~c).sum())
            raise AssertionError(f"{claim}: fails in {n_bad} of {c.size} cases (got {_fmt(got)}, expected {_fmt(expected)})")
        self._add(
            claim, expected, got if got is not None else f"holds in {c.size}/{c.size}", tolerance, status, source, why,
            claim_of,
        )
        return True

    def _gap(self, claim, got, post_value, min_gap, relative):
        if min_gap <= 0:
            raise ValueError("min_gap must be positive")
        g, p = float(np.asarray(got)), float(np.asarray(post_value))
        if np.isnan(g):
            raise ValueError(f"{claim}: got NaN")
        gap = abs(g - p) / (abs(p) if relative else 1.0)
        if not gap >= min_gap:
            raise AssertionError(f"{claim}: expected to differ from the post's {p:.6g} by >= {min_gap}, got {g:.6g}")
        kind = "relative" if relative else "absolute"
        return g, p, f"{kind} gap >= {min_gap:g} (gap {gap:.3g})"

    def refutes(
        self,
        claim: str,
        got,
        post_value,
        *,
        min_gap: float,
        erratum: str,
        why: str,
        relative: bool = False,
        source: str | None = None,
    ):
        """Record a claim of the post that is mathematically wrong: assert that the correct value
        ``got`` differs from the post's ``post_value`` by at least ``min_gap`` (absolute, or
        relative to ``|post_value|`` if ``relative``), so the chapter goes red if it ever starts to
        agree. ``erratum`` is the label of the chapter's Erratum box (``(label)=`` before it),
        which the ledger links. Status ``refuted``, ``claim_of="post"``. Returns ``got``.

        Raises ``ValueError`` if ``min_gap <= 0``, ``erratum`` is empty or ``got`` is NaN;
        ``AssertionError`` if the gap is smaller than ``min_gap``."""
        if not erratum:
            raise ValueError(f"{claim}: a refuted claim names its Erratum box (argument erratum=)")
        g, p, tol = self._gap(claim, got, post_value, min_gap, relative)
        self._add(claim, p, g, tol, REFUTED, source, why, "post", erratum=erratum)
        return got

    def not_at_scale(
        self,
        claim: str,
        got,
        post_value,
        *,
        min_gap: float,
        why: str,
        relative: bool = False,
        source: str | None = None,
    ):
        """Record a number of the post that does not come out at our (smaller) scale although
        nothing in its derivation is wrong: assert that ``got`` differs from the post's value by at
        least ``min_gap`` (absolute, or relative to ``|post_value|``), so the chapter goes red if it
        ever starts to agree. Status ``not reproduced at our scale``, ``claim_of="post"``. A
        mathematical disagreement is :meth:`refutes`, not this. Returns ``got``.

        Raises ``ValueError`` if ``min_gap <= 0`` or ``got`` is NaN, ``AssertionError`` if the gap
        is smaller than ``min_gap``."""
        g, p, tol = self._gap(claim, got, post_value, min_gap, relative)
        self._add(claim, p, g, tol, NOT_AT_SCALE, source, why, "post")
        return got

    def not_offline(self, claim: str, *, expected, why: str, source: str | None = None) -> None:
        """Record a claim of the post that cannot be checked here (no network, no pretrained
        weights); nothing is asserted, the status says so (``claim_of="post"``)."""
        self._add(claim, expected, "", "", NOT_OFFLINE, source, why, "post")

    def untested(self, claim: str, *, why: str, source: str | None = None) -> None:
        """List a claim of the post that this chapter does not test, and why. It is not a check:
        it goes to the ledger's list of untested claims, never into the counts of checks.

        Raises ``ValueError`` if ``why`` is empty."""
        if not why:
            raise ValueError("say why this claim is not tested (argument why=)")
        self.untested_claims.append(UntestedClaim(self.chapter, claim, why, source or self.source))
        self._write()

    # -- display -----------------------------------------------------------------------------
    def table(self):
        """The "what we checked" table as an IPython HTML object (plain text outside IPython)."""
        head = ("#", "claim", "of", "expected", "got", "tolerance", "status")
        rows = [
            (str(i + 1), r.claim, r.claim_of, r.expected, r.got, r.tolerance, r.status)
            for i, r in enumerate(self.records)
        ]
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        counts = {s: sum(r.status == s for r in self.records) for s in STATUSES}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        n_post = sum(r.claim_of == "post" for r in self.records)
        untested = "".join(f"<li>{html.escape(u.claim)}: {html.escape(u.why)}</li>" for u in self.untested_claims)
        doc = (
            f"<p><b>{len(self.records)} checks</b> ({n_post} of the post's claims, "
            f"{len(self.records) - n_post} of the book's own results): {html.escape(summary)}.</p>"
            "<table class='kexue-checks'><thead><tr>"
            + "".join(f"<th>{h}</th>" for h in head)
            + f"</tr></thead><tbody>{cells}</tbody></table>"
            + (f"<p><b>Claims of the post not tested here</b></p><ul>{untested}</ul>" if untested else "")
        )
        try:
            from IPython.display import HTML
        except ImportError:  # pragma: no cover
            return "\n".join(" | ".join(r) for r in rows)
        return HTML(doc)

    def __len__(self) -> int:
        return len(self.records)


def _check_claim_of(claim_of) -> None:
    if claim_of not in CLAIM_OF:
        raise ValueError(f"claim_of must be one of {CLAIM_OF}, got {claim_of!r}")


def _default_status(claim_of, status, *, allowed) -> str:
    _check_claim_of(claim_of)
    if status is None:
        return REPRODUCED if claim_of == "post" else HOLDS
    if status not in allowed:
        raise ValueError(f"status must be one of {allowed} here, got {status!r}")
    if status == REPRODUCED and claim_of != "post":
        raise ValueError("'reproduced' is for the post's claims; the book's own results 'hold'")
    if status == HOLDS and claim_of != "book":
        raise ValueError("'holds' is for the book's own results; a claim of the post is 'reproduced'")
    return status

