"""SymPy helpers shared by every chapter.

One helper, :func:`assert_identity`, asserts that two SymPy expressions are equal. It first tries
to *prove* the identity (``simplify(lhs - rhs) == 0``, then a few standard rewrites); if SymPy cannot
close the proof it falls back to exact substitution at random rational points, which can refute an
identity but only gives evidence for it. The result says which of the two happened, so that a
chapter (and the claims ledger) never calls a spot check a proof.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

__all__ = ["IdentityResult", "assert_identity"]


@dataclass(frozen=True)
class IdentityResult:
    """Outcome of :func:`assert_identity`.

    method: ``"simplify"`` (proved symbolically) or ``"random-points"`` (no symbolic proof found;
    the difference vanished at ``points`` random rational substitutions, exactly or to ``1e-40``
    at 60 significant digits).
    """

    lhs: sp.Expr
    rhs: sp.Expr
    method: str
    points: int = 0

    @property
    def proved(self) -> bool:
        return self.method == "simplify"

    def _repr_latex_(self) -> str:
        tag = r"\quad\text{(proved)}" if self.proved else rf"\quad\text{{(checked at {self.points} random points)}}"
        return f"$\\displaystyle {sp.latex(self.lhs)} = {sp.latex(self.rhs)}{tag}$"

    def __repr__(self) -> str:
        how = "proved" if self.proved else f"checked at {self.points} random points"
        return f"{self.lhs} = {self.rhs}  ({how})"


def _is_zero_symbolically(diff: sp.Expr) -> bool:
    attempts = (
        lambda e: e,
        sp.simplify,
        lambda e: sp.simplify(sp.expand_log(e, force=True)),
        lambda e: sp.simplify(sp.logcombine(e, force=True)),
        lambda e: sp.simplify(sp.gammasimp(e)),
        lambda e: sp.nsimplify(sp.simplify(sp.expand(e))),
    )
    for f in attempts:
        try:
            if f(diff) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError, AttributeError):  # pragma: no cover
            continue
    return False


def _random_rational(rng: random.Random, symbol: sp.Symbol) -> sp.Rational:
    num = rng.randint(1, 97)
    den = rng.randint(1, 31)
    value = Fraction(num, den)
    if symbol.is_positive or symbol.is_nonnegative:
        return sp.Rational(value.numerator, value.denominator)
    sign = rng.choice((-1, 1))
    return sp.Rational(sign * value.numerator, value.denominator)


def assert_identity(
    lhs,
    rhs,
    *,
    points: int = 8,
    seed: int = 0,
    tol: float = 1e-40,
    substitutions: dict | None = None,
) -> IdentityResult:
    """Assert that ``lhs == rhs`` as SymPy expressions, and return how it was established.

    Parameters
    ----------
    lhs, rhs : sympy expressions (or matrices of the same shape, or numbers).
    points : number of random rational points tried when ``simplify`` does not return 0.
    seed : seed of the random points (deterministic by default).
    tol : absolute tolerance on ``|lhs - rhs|`` evaluated with 60 significant digits at a random
        point, used only when the exact substituted difference does not simplify to 0.
    substitutions : optional ``{symbol: value}`` applied before checking (e.g. to fix a dimension).

    Returns
    -------
    IdentityResult
        Displays as the typeset identity in Jupyter; ``.proved`` tells a proof from a spot check.

    Raises
    ------
    AssertionError
        If the identity is refuted at some point, or SymPy can neither prove it nor evaluate it.
    TypeError
        If ``lhs`` and ``rhs`` are matrices of different shapes.

    Source: the project's checking convention (DEVELOPERS.md, "a check must be able to fail").
    """
    lhs = sp.sympify(lhs)
    rhs = sp.sympify(rhs)
    if substitutions:
        lhs = lhs.subs(substitutions)
        rhs = rhs.subs(substitutions)
    if isinstance(lhs, sp.MatrixBase) or isinstance(rhs, sp.MatrixBase):
        if not (isinstance(lhs, sp.MatrixBase) and isinstance(rhs, sp.MatrixBase)) or lhs.shape != rhs.shape:
            raise TypeError("assert_identity: both sides must be matrices of the same shape")
        results = [assert_identity(a, b, points=points, seed=seed, tol=tol) for a, b in zip(lhs, rhs)]
        method = "simplify" if all(r.proved for r in results) else "random-points"
        return IdentityResult(lhs, rhs, method, 0 if method == "simplify" else points)

    diff = lhs - rhs
    if _is_zero_symbolically(diff):
        return IdentityResult(lhs, rhs, "simplify")

    free = sorted(diff.free_symbols, key=lambda s: s.name)
    rng = random.Random(seed)
    checked = 0
    for _ in range(points if free else 1):
        subs = {s: _random_rational(rng, s) for s in free}
        value = diff.subs(subs)
        if sp.simplify(value) == 0:
            checked += 1
            continue
        numeric = sp.N(value, 60)
        if not numeric.is_number:
            raise AssertionError(f"cannot evaluate {lhs} - ({rhs}) at {subs}")
        if abs(complex(numeric)) > tol:
            raise AssertionError(
                f"identity fails: {lhs} != {rhs}; at {subs} the difference is {sp.N(value, 15)}"
            )
        checked += 1
    if not free:
        # a closed number that did not simplify to 0 but is 0 to 60 digits
        return IdentityResult(lhs, rhs, "random-points", 1)
    return IdentityResult(lhs, rhs, "random-points", checked)
