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
