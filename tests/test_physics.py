"""Tests for kexue_core.physics against independent references: solve_ivp on the catenary's own ODE,
numerical quadrature of the g = 0 integral, and the chapter spec's reference end points."""
import math

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from kexue_core.physics import (
    catenary,
    euler_lagrange_residuals,
    rope_potential,
    rope_rhs,
    skipping_rope_curve,
    solve_rope,
)


def test_catenary_solves_its_ode():
    """The hanging chain y'' = sqrt(1 + y'^2) / a, integrated by SciPy from the vertex (b, a + c)."""
    a, b, c = 2.0, 0.5, -1.0
    sol = solve_ivp(lambda x, u: [u[1], math.sqrt(1 + u[1] ** 2) / a], (b, b + 3), [a + c, 0.0], rtol=1e-12,
                    atol=1e-12, dense_output=True)
    xs = np.linspace(b, b + 3, 50)
    np.testing.assert_allclose(catenary(xs, a, b, c), sol.sol(xs)[0], atol=1e-9)


def test_catenary_arc_length_relation():
    # y^2 - s^2 = a^2 with s the arc length from the vertex (post 6784, omega = 0 case)
    a, b = 3.0, -1.0
    for x in (-0.5, 1.0, 4.0):
        s = quad(lambda t: math.sqrt(1 + math.sinh((t - b) / a) ** 2), b, x)[0]
        assert abs(float(catenary(x, a, b)) ** 2 - s**2 - a**2) < 1e-9


def test_omega_zero_rope_is_the_catenary():
    a, b = 2.0, 0.5
    s, x, y, status = solve_rope(3.0, (b, a), omega=0.0, g=1.0, c1=0.0, branch=1, s_eval=np.linspace(0, 3, 301))
    assert status == "complete"
    np.testing.assert_allclose(y, catenary(x, a, b), atol=1e-8)


def test_spec_reference_end_points_and_residuals():
    se = np.arange(0, 0.5, 1e-4)  # the post's grid: np.arange(0, T, h)
    for branch, ref in ((-1, (0.6216, -0.2636)), (1, (1.4868, -0.1046))):
        s, x, y, status = solve_rope(0.5, (1.0, 0.0), omega=2.0, g=3.0, c1=0.0, branch=branch, s_eval=se)
        assert status == "complete"
        assert abs(x[-1] - ref[0]) < 5e-5 and abs(y[-1] - ref[1]) < 5e-5  # 4 printed digits
        assert np.abs(euler_lagrange_residuals(s, x, y, omega=2.0, g=3.0)).max() < 1e-4


def test_skipping_rope_closed_form_against_quadrature_and_ode():
    beta = 2.3
    a = beta**-0.5
    for x in (1.2 * a, 2 * a, 7 * a):
        ref = quad(lambda t: 1 / math.sqrt(beta**2 * t**4 - 1), a, x, limit=200)[0]
        assert abs(float(skipping_rope_curve(x, beta)) - ref) < 1e-8
    omega = 2.0
    x0 = 1.5 * a
    s, x, y, _ = solve_rope(2.0, (x0, float(skipping_rope_curve(x0, beta))), omega=omega, g=0.0,
                            c1=omega**2 / (2 * beta), branch=1, s_eval=np.linspace(0, 2, 201))
    np.testing.assert_allclose(y, skipping_rope_curve(x, beta), atol=1e-9)


def test_singularity_event_stops_the_solver():
    s, x, y, status = solve_rope(5.0, (1.0, 0.0), omega=2.0, g=3.0, c1=1.0, branch=-1)
    assert status == "stopped at singularity" and s[-1] < 5.0
    d = rope_rhs(s[-1], (x[-1], y[-1]), omega=2.0, g=3.0, c1=1.0)
    assert abs(abs(d[1]) - 1) < 1e-6  # |dy/ds| = 1 there: the curve is vertical


def test_rope_potential():
    assert float(rope_potential(2.0, 1.0, omega=3.0, g=4.0, tension_constant=0.5)) == 0.5 * 9 * 4 - 4 + 0.5


def test_bad_input():
    with pytest.raises(ValueError, match="a must be > 0"):
        catenary(1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="branch"):
        rope_rhs(0.0, (1.0, 0.0), omega=1.0, g=1.0, c1=0.0, branch=0)
    with pytest.raises(ValueError, match="s_end"):
        solve_rope(-1.0, (1.0, 0.0), omega=1.0, g=1.0, c1=0.0)
    with pytest.raises(ValueError, match="singular"):
        solve_rope(1.0, (1.0, 0.0), omega=1.0, g=1.0, c1=5.0)
    with pytest.raises(ValueError, match="beta"):
        skipping_rope_curve(0.1, 2.0)
    with pytest.raises(ValueError, match="uniformly"):
        euler_lagrange_residuals([0, 1, 3, 4, 5], [0] * 5, [0] * 5, omega=1.0, g=1.0)
