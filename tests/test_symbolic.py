import pytest
import sympy as sp

from kexue_core.symbolic import IdentityResult, assert_identity

x, y = sp.symbols("x y", positive=True)
s = sp.symbols("s1:4", real=True)


def test_proves_simple_identity():
    res = assert_identity(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1)
    assert isinstance(res, IdentityResult) and res.proved


def test_proves_log_identity_needing_expand_log():
    res = assert_identity(sp.log(x * y), sp.log(x) + sp.log(y))
    assert res.proved


def test_softmax_entropy_identity_is_proved_or_spot_checked():
    lam = sp.Symbol("lam", positive=True)
    z = sum(sp.exp(lam * si) for si in s)
    p = [sp.exp(lam * si) / z for si in s]
    lhs = -sum(pi * sp.log(pi) for pi in p)
    rhs = sp.log(z) - lam * sum(pi * si for pi, si in zip(p, s))
    res = assert_identity(lhs, rhs)
    assert res.method in ("simplify", "random-points")


def test_refutes_false_identity():
    with pytest.raises(AssertionError, match="identity fails"):
        assert_identity(sp.log(x + y), sp.log(x) + sp.log(y))


def test_refutes_wrong_constant():
    with pytest.raises(AssertionError):
        assert_identity(sp.Rational(833, 100), 2 / sp.Rational(24, 100))


def test_closed_number_checked_numerically():
    # sqrt(2*pi/sqrt(5)) squared is 2*pi/sqrt(5): simplify proves it
    assert assert_identity(sp.sqrt(2 * sp.pi / sp.sqrt(5)) ** 2, 2 * sp.pi / sp.sqrt(5)).proved


def test_matrices():
    a = sp.Matrix([[x, 1], [0, y]])
    res = assert_identity(a * a.inv(), sp.eye(2))
    assert res.proved
    with pytest.raises(TypeError):
        assert_identity(a, sp.eye(3))
    with pytest.raises(AssertionError):
        assert_identity(a, sp.eye(2))


def test_substitutions():
    n = sp.Symbol("n", positive=True, integer=True)
    assert assert_identity(sp.integrate(sp.sin(x) ** 2, (x, 0, sp.pi)), sp.pi / n, substitutions={n: 2}).proved


def test_spot_check_when_simplify_cannot_prove():
    # SymPy 1.14's simplify does not reduce erf(x) + erfc(x) - 1 to 0: the helper falls back to
    # exact random rational points (8 by default) and says so
    res = assert_identity(sp.erf(x) + sp.erfc(x), 1)
    assert not res.proved and res.method == "random-points" and res.points == 8
    assert assert_identity(sp.erf(x) + sp.erfc(x), 1, points=3).points == 3
    # a difference of 1e-30 is far above the 1e-40 tolerance at 60 digits: refuted
    with pytest.raises(AssertionError, match="identity fails"):
        assert_identity(sp.erf(x) + sp.erfc(x), 1 + sp.Rational(1, 10**30))


def test_exact_zero_at_random_points():
    # simplify cannot remove floor(x) + frac(x) - x, but at each rational point it is exactly 0
    res = assert_identity(sp.floor(x) + sp.frac(x), x)
    assert res.method == "random-points" and res.points == 8


def test_real_symbols_get_negative_points():
    # sqrt(r^2) = r only for r >= 0: a real (not positive) symbol must be tried at negative points
    r = sp.Symbol("r", real=True)
    with pytest.raises(AssertionError, match="identity fails"):
        assert_identity(sp.sqrt(r**2), r)
    assert assert_identity(sp.sqrt(x**2), x).proved
