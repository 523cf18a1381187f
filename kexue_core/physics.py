r"""Curves of classical mechanics: the catenary and the rotating (skipping) rope.

A uniform rope (unit linear density) rotating at angular velocity :math:`\omega` about the vertical
:math:`y`-axis under gravity :math:`g` is stationary for the functional
:math:`\int\varphi(x,y)\,ds` with :math:`\varphi=\tfrac12\omega^2x^2-gy+\lambda` (:math:`\lambda` the
Lagrange multiplier of the length constraint; the post takes :math:`\lambda=0`). With arc length
:math:`s` the Euler–Lagrange equations read

.. math:: \frac{d}{ds}\Big(\varphi\frac{dx}{ds}\Big)=\omega^2x,\qquad
          \frac{d}{ds}\Big(\varphi\frac{dy}{ds}\Big)=-g,\qquad x'^2+y'^2=1,

and the second integrates to :math:`\varphi\,y'=C_1-gs`. The ODE is integrated with
:func:`scipy.integrate.solve_ivp`; nothing here hand-rolls a solver.

Source: Su Jianlin, "你跳绳的时候，想过绳子的形状曲线是怎样的吗？", https://kexue.fm/archives/6784
(2019-07-06).

Conventions: lengths in the same (arbitrary) unit, :math:`\omega` in rad per time unit, :math:`g` in
length per time unit squared; arrays are NumPy float64 (SciPy's solvers work in NumPy).
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import ellipkinc

__all__ = [
    "catenary",
    "rope_potential",
    "rope_rhs",
    "solve_rope",
    "euler_lagrange_residuals",
    "skipping_rope_curve",
]


def _real(v, name: str, *, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite real number, got {v!r}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v!r}")
    return float(v)


def catenary(x, a: float, b: float, c: float = 0.0):
    r"""The catenary :math:`y=a\cosh\big((x-b)/a\big)+c`.

    Parameters
    ----------
    x : float or array_like (any shape).
    a : float > 0, the parameter (radius of curvature at the vertex; the vertex height above the
        directrix).
    b, c : floats, horizontal position of the vertex and vertical offset.

    Returns
    -------
    ndarray (shape of ``x``), float64.

    Raises
    ------
    ValueError
        If ``a <= 0`` or a parameter is not finite.

    Notes
    -----
    Post 6784 derives it in its :math:`\omega=0` case but prints :math:`y=a\cosh(x-b)`, which drops the
    ``a`` inside the cosh (correct only for :math:`a=1`).
    """
    a = _real(a, "a", positive=True)
    b, c = _real(b, "b"), _real(c, "c")
    return a * np.cosh((np.asarray(x, dtype=float) - b) / a) + c


def rope_potential(x, y, *, omega: float, g: float, tension_constant: float = 0.0):
    r""":math:`\varphi(x,y)=\tfrac12\omega^2x^2-gy+\lambda` (``tension_constant`` = :math:`\lambda`), the
    integrand of post 6784's action :math:`\int\varphi\,ds`. Arrays broadcast; returns float64."""
    omega, g, lam = _real(omega, "omega"), _real(g, "g"), _real(tension_constant, "tension_constant")
    return 0.5 * omega**2 * np.asarray(x, dtype=float) ** 2 - g * np.asarray(y, dtype=float) + lam


def rope_rhs(s: float, state, *, omega: float, g: float, c1: float, branch: int = -1, tension_constant: float = 0.0):
    r"""Right-hand side of the derived first-order rope system, for ``solve_ivp``.

    .. math:: y'=\frac{C_1-gs}{\varphi(x,y)},\qquad x'=\pm\sqrt{1-y'^2}

    (the post's first integral "ode2" and unit speed "ode1"; ``branch`` picks the sign of :math:`x'`).

    Parameters
    ----------
    s : float, arc length.
    state : array_like (2,), ``(x, y)``.
    omega, g, c1 : floats.
    branch : +1 or -1.
    tension_constant : float, :math:`\lambda` added to :math:`\varphi` (0 in the post).

    Returns
    -------
    ndarray (2,): ``(dx/ds, dy/ds)``; NaN where :math:`|y'|>1` or :math:`\varphi=0` (stop there with the
    event of :func:`solve_rope`).

    Raises
    ------
    ValueError
        If ``branch`` is not ±1.
    """
    if branch not in (1, -1):
        raise ValueError(f"branch must be +1 or -1, got {branch!r}")
    x, y = state
    phi = rope_potential(x, y, omega=omega, g=g, tension_constant=tension_constant)
    with np.errstate(divide="ignore", invalid="ignore"):
        dy = (c1 - g * s) / phi
        dx = branch * np.sqrt(1.0 - dy * dy)
    return np.array([dx, dy], dtype=float)


def solve_rope(
    s_end: float,
    start,
    *,
    omega: float,
    g: float,
    c1: float,
    branch: int = -1,
    tension_constant: float = 0.0,
    s_eval=None,
    rtol: float = 1e-11,
    atol: float = 1e-13,
    method: str = "DOP853",
):
    r"""Integrate :func:`rope_rhs` from arc length 0 to ``s_end`` with :func:`scipy.integrate.solve_ivp`,
    stopping early (terminal event) where the system is singular: :math:`|y'|\to1` (the curve turns
    vertical and the branch of :math:`x'` must switch) or :math:`\varphi\to0` (zero tension).

    Parameters
    ----------
    s_end : float > 0.
    start : (x0, y0).
    omega, g, c1, branch, tension_constant : see :func:`rope_rhs`.
    s_eval : array_like, optional, arc lengths at which to report the solution.
    rtol, atol : solver tolerances. method : a ``solve_ivp`` method.

    Returns
    -------
    s, x, y : ndarrays (T,), and ``status`` (str): ``"complete"`` or ``"stopped at singularity"``.

    Raises
    ------
    ValueError
        If ``s_end <= 0``, ``start`` is not a pair of finite numbers, the start point is singular, or
        the solver fails.
    """
    s_end = _real(s_end, "s_end", positive=True)
    if len(start) != 2:
        raise ValueError(f"start must be (x0, y0), got {start!r}")
    x0, y0 = _real(start[0], "start[0]"), _real(start[1], "start[1]")
    kw = dict(omega=omega, g=g, c1=c1, branch=branch, tension_constant=tension_constant)
    d0 = rope_rhs(0.0, (x0, y0), **kw)
    if not np.all(np.isfinite(d0)):
        raise ValueError(f"start {start!r} is singular: |dy/ds| > 1 or phi = 0 there")

    def singular(s, st):
        phi = rope_potential(st[0], st[1], omega=omega, g=g, tension_constant=tension_constant)
        return phi * phi - (c1 - g * s) ** 2  # 0 where |y'| = 1 (and where phi = 0 only if c1 = g s)

    singular.terminal = True
    def rhs(s, st):  # rope_rhs with 1 - y'^2 clipped at 0, so that trial steps past the singularity stay
        # finite and the solver can locate the event there (the returned solution stops at the event)
        phi = rope_potential(st[0], st[1], omega=omega, g=g, tension_constant=tension_constant)
        dy = (c1 - g * s) / phi if phi != 0 else math.copysign(1e300, c1 - g * s)
        return np.array([branch * math.sqrt(max(1.0 - dy * dy, 0.0)), dy])

    sol = solve_ivp(rhs, (0.0, s_end), [x0, y0], method=method, rtol=rtol, atol=atol, t_eval=s_eval,
                    events=singular)
    if sol.status == -1:
        raise ValueError(f"solve_ivp failed: {sol.message}")
    status = "stopped at singularity" if sol.status == 1 else "complete"
    return sol.t, sol.y[0], sol.y[1], status


def euler_lagrange_residuals(s, x, y, *, omega: float, g: float, tension_constant: float = 0.0):
    r"""Residuals of both Euler–Lagrange equations on a sampled curve, by second-order finite
    differences (:func:`numpy.gradient`) on a uniform arc-length grid:

    .. math:: r_1=\frac{d}{ds}(\varphi x')-\omega^2x,\qquad r_2=\frac{d}{ds}(\varphi y')+g .

    Parameters
    ----------
    s, x, y : array_like (T,), T >= 5, ``s`` uniformly spaced.

    Returns
    -------
    ndarray (2, T-4): the residuals away from the two end points on each side (where one-sided
    differences are less accurate).

    Raises
    ------
    ValueError
        If the arrays differ in length, are shorter than 5, or ``s`` is not uniform.
    """
    s, x, y = (np.asarray(v, dtype=float) for v in (s, x, y))
    if not (s.shape == x.shape == y.shape) or s.ndim != 1 or s.size < 5:
        raise ValueError("s, x, y must be 1-D arrays of equal length >= 5")
    ds = np.diff(s)
    if not np.allclose(ds, ds[0], rtol=1e-9, atol=0):
        raise ValueError("s must be uniformly spaced")
    h = ds[0]
    phi = rope_potential(x, y, omega=omega, g=g, tension_constant=tension_constant)
    xp, yp = np.gradient(x, h, edge_order=2), np.gradient(y, h, edge_order=2)
    r1 = np.gradient(phi * xp, h, edge_order=2) - _real(omega, "omega") ** 2 * x
    r2 = np.gradient(phi * yp, h, edge_order=2) + _real(g, "g")
    return np.stack([r1, r2])[:, 2:-2]


def skipping_rope_curve(x, beta: float):
    r"""Post 6784's :math:`g=0` curve in closed form:
    :math:`y(x)=\int_a^x\frac{dt}{\sqrt{\beta^2t^4-1}}=\frac{a}{\sqrt2}F\!\big(\arccos\tfrac ax\,\big|\,\tfrac12\big)`,
    :math:`a=\beta^{-1/2}`, with :math:`F(\phi|m)` = :func:`scipy.special.ellipkinc` (parameter
    :math:`m`). It solves :math:`\tfrac12\omega^2x^2\,dy/ds=C_1` with :math:`\beta=\omega^2/(2C_1)`;
    as :math:`x\to\infty`, :math:`y\to\frac a{\sqrt2}K(\tfrac12)`.

    Parameters
    ----------
    x : float or array_like, all :math:`\ge a`.
    beta : float > 0.

    Returns
    -------
    ndarray (shape of ``x``), float64.

    Raises
    ------
    ValueError
        If ``beta <= 0`` or some ``x < a`` (the curve does not exist there).
    """
    beta = _real(beta, "beta", positive=True)
    a = beta**-0.5
    x = np.asarray(x, dtype=float)
    if np.any(x < a * (1 - 1e-12)):
        raise ValueError(f"x must be >= beta**-0.5 = {a:.6g}")
    return a / math.sqrt(2) * ellipkinc(np.arccos(np.clip(a / x, -1.0, 1.0)), 0.5)
