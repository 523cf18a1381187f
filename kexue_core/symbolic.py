"""SymPy helpers shared by every chapter.

One helper, :func:`assert_identity`, asserts that two SymPy expressions are equal. It first tries
to *prove* the identity (``simplify(lhs - rhs) == 0``, then a few standard rewrites, all of which
respect the symbols' assumptions: no ``force=True``); if SymPy cannot close the proof it falls back
to substitution at random points drawn from the whole domain the assumptions allow (negative reals
for a symbol that is only ``real``, complex values for a symbol with no assumptions), which can
refute an identity but only gives evidence for it. The result says which of the two happened, so
that a chapter (and the claims ledger) never calls a spot check a proof, and never proves an
identity that is false somewhere in the symbols' domain (``log(a*b) = log(a) + log(b)`` for real
``a``, ``b`` is refuted at ``a = b = -1``-like points, and proved only for positive ``a``, ``b``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp
from sympy.core.function import AppliedUndef

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
    # every rewrite here must be valid under the symbols' assumptions: no force=True, no nsimplify
    # (which can turn a float that is merely close to a rational into that rational)
    attempts = (
        lambda e: e,
        sp.simplify,
        lambda e: sp.simplify(sp.expand_log(e)),
        lambda e: sp.simplify(sp.logcombine(e)),
        lambda e: sp.simplify(sp.gammasimp(e)),
        lambda e: sp.simplify(sp.expand(e)),
    )
    for f in attempts:
        try:
            if f(diff) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError, AttributeError):  # pragma: no cover
            continue
    return False


def _random_rational(rng: random.Random, *, integer: bool = False) -> sp.Rational:
    """A random positive rational (or integer) of moderate size."""
    if integer:
        return sp.Integer(rng.randint(1, 12))
    value = Fraction(rng.randint(1, 97), rng.randint(1, 31))
    return sp.Rational(value.numerator, value.denominator)


_CORNERS = {1: -1, 2: 1}  # attempt number -> forced sign of the first two points


def _random_point(rng: random.Random, symbol: sp.Symbol, sign: int | None = None) -> sp.Expr:
    """A random value from the whole domain ``symbol``'s assumptions allow: positive, negative or
    zero where allowed; real where the symbol is real; complex (non-real) where nothing is assumed.

    Raises ``ValueError`` for assumptions it cannot sample (e.g. ``prime``, ``even``)."""
    a = symbol.assumptions0
    for unsupported in ("prime", "even", "odd", "composite", "irrational", "transcendental"):
        if a.get(unsupported):
            raise ValueError(f"cannot draw random points for {symbol} with assumption {unsupported!r}")
    integer = bool(symbol.is_integer)
    if symbol.is_zero:
        return sp.Integer(0)
    if symbol.is_extended_real or symbol.is_real or integer or symbol.is_rational:
        choices = []
        if symbol.is_positive is not False and symbol.is_nonpositive is not True:
            choices.append(1)
        if symbol.is_negative is not False and symbol.is_nonnegative is not True:
            choices.append(-1)
        if symbol.is_zero is not False and rng.random() < 0.1:
            return sp.Integer(0)
        pick = sign if sign in choices else rng.choice(choices)
        return pick * _random_rational(rng, integer=integer)
    if symbol.is_imaginary:
        return sp.I * rng.choice((-1, 1)) * _random_rational(rng)
    # no assumptions: a complex number, off the real axis, sometimes with a negative real part
    re = (sign or rng.choice((-1, 1))) * _random_rational(rng)
    im = (sign or rng.choice((-1, 1))) * _random_rational(rng)
    return re + sp.I * im


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
    points : number of random points tried when ``simplify`` does not return 0. Points are drawn
        from the whole domain the symbols' assumptions allow (see :func:`_random_point`): complex
        values for symbols with no assumptions, both signs for ``real`` ones; the first point puts
        every symbol that may be negative at a negative value. Points where either side is
        undefined (a pole) are redrawn.
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

    undefined = sorted({str(f.func) for f in diff.atoms(AppliedUndef)})
    if undefined:
        raise AssertionError(
            f"cannot prove {lhs} = {rhs}, and it cannot be spot-checked: it contains the undefined "
            f"function(s) {', '.join(undefined)}"
        )
    free = sorted(diff.free_symbols, key=lambda s: s.name)
    rng = random.Random(seed)
    checked = 0
    attempts = 0
    # the first two points put every sign-free symbol at a negative (then positive) value, where
    # false rewrites such as log(a*b) = log(a) + log(b) show; the rest are random over the domain
    while checked < (points if free else 1):
        attempts += 1
        if attempts > 4 * points + 4:
            raise AssertionError(
                f"cannot evaluate {lhs} - ({rhs}): undefined at {attempts - 1} random points of its domain"
            )
        subs = {s: _random_point(rng, s, sign=_CORNERS.get(attempts)) for s in free}
        value = diff.subs(subs)
        if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            continue  # a pole or undefined point: draw another
        if sp.simplify(value) == 0:
            checked += 1
            continue
        numeric = sp.N(value, 60)
        if not numeric.is_number:
            raise AssertionError(f"cannot evaluate {lhs} - ({rhs}) at {subs}")
        if numeric.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            continue
        if abs(complex(numeric)) > tol:
            raise AssertionError(
                f"identity fails: {lhs} != {rhs}; at {subs} the difference is {sp.N(value, 15)}"
            )
        checked += 1
    if not free:
        # a closed number that did not simplify to 0 but is 0 to 60 digits
        return IdentityResult(lhs, rhs, "random-points", 1)
    return IdentityResult(lhs, rhs, "random-points", checked)
