r"""Integrated gradients: attribution by the fundamental theorem of calculus on a straight path.

For a scalar model output :math:`F` (one scalar per example), an input :math:`x` and a baseline
:math:`\bar x`, the straight path :math:`\gamma(\alpha) = \bar x + \alpha (x - \bar x)` gives the exact
decomposition

.. math::

    F(x) - F(\bar x) = \sum_i \underbrace{(x_i - \bar x_i) \int_0^1
    \partial_i F\big(\bar x + \alpha (x - \bar x)\big)\, d\alpha}_{\mathrm{IG}_i(x)} ,

the *completeness* of integrated gradients (Sundararajan, Taly & Yan 2017). The integral is replaced by
a quadrature rule :math:`\sum_k w_k\, \partial_i F(\gamma(\alpha_k))`. The rules and their names are
Captum's (``captum.attr.IntegratedGradients``, ``method=``), with the same points and weights:

=====================  ================================  ===============================================
method                 points :math:`\alpha_k`           weights :math:`w_k`
=====================  ================================  ===============================================
``riemann_left``       :math:`k/n`, k = 0..n-1           :math:`1/n`
``riemann_right``      :math:`k/n`, k = 1..n             :math:`1/n`
``riemann_middle``     :math:`(k + 1/2)/n`, k = 0..n-1   :math:`1/n`
``riemann_trapezoid``  :math:`k/(n-1)`, k = 0..n-1       :math:`1/n`, halved at both ends (sum 1 - 1/n)
``gausslegendre``      Gauss-Legendre nodes on [0, 1]    Gauss-Legendre weights / 2 (sum 1)
=====================  ================================  ===============================================

Captum's ``riemann_trapezoid`` is not the textbook trapezoid rule: its points are spaced
:math:`1/(n-1)` but its weights are :math:`1/n`, so they sum to :math:`1 - 1/n` and the rule is only
first-order accurate. We keep Captum's weights so that both libraries compute the same number.
Captum rounds the points and weights to float32 before using them; we use them in float64 (the
difference is about :math:`10^{-7}` relative).

Source: Su Jianlin, "积分梯度：一种新颖的神经网络可视化方法", https://kexue.fm/archives/7533 (the
post integrates from :math:`x` to :math:`\bar x`, which flips the sign; see :func:`integrated_gradients`).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._validation import check_positive_int, check_tensor

__all__ = ["METHODS", "quadrature", "integrated_gradients", "completeness_gap"]

#: the quadrature rules, named as in Captum
METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights of a quadrature rule on [0, 1], as Captum defines them.

    Parameters
    ----------
    method : one of :data:`METHODS`.
    n_steps : number of points; at least 2 for the Riemann rules (as in Captum), at least 1 for
        ``"gausslegendre"``.

    Returns
    -------
    alphas, weights : float64 arrays of shape ``(n_steps,)``.

    Raises
    ------
    ValueError
        If ``method`` is unknown or ``n_steps`` is too small.
    TypeError
        If ``n_steps`` is not an integer.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n = check_positive_int(n_steps, "n_steps", minimum=1 if method == "gausslegendre" else 2)
    k = np.arange(n, dtype=np.float64)
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1.0 + nodes), 0.5 * w
    weights = np.full(n, 1.0 / n)
    if method == "riemann_left":
        alphas = k / n
    elif method == "riemann_right":
        alphas = (k + 1) / n
    elif method == "riemann_middle":
        alphas = (k + 0.5) / n
    else:  # riemann_trapezoid, Captum's variant: points k/(n-1), weights 1/n halved at the ends
        alphas = k / (n - 1)
        weights[0] /= 2
        weights[-1] /= 2
    return alphas, weights


def _check_input(x, name: str, *, min_dim: int = 0) -> None:
    """check_tensor, except that the NaN test (data-dependent) is skipped under torch.func.vmap."""
    try:
        check_tensor(x, name, min_dim=min_dim)
    except RuntimeError:  # vmap cannot branch on data; the type and shape checks ran before the NaN test
        pass


def _check_forward(forward) -> None:
    if not callable(forward):
        raise TypeError(f"forward must be callable, got {type(forward).__name__}")


def _baselines_like(baselines, inputs: torch.Tensor) -> torch.Tensor:
    if baselines is None:
        return torch.zeros_like(inputs)
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        return torch.full_like(inputs, float(baselines))
    _check_input(baselines, "baselines")
    try:
        shape = torch.broadcast_shapes(baselines.shape, inputs.shape)
    except RuntimeError:
        shape = None
    if shape != inputs.shape:
        raise ValueError(
            f"baselines of shape {tuple(baselines.shape)} do not broadcast to inputs of shape {tuple(inputs.shape)}"
        )
    return baselines.to(inputs.dtype).expand_as(inputs)


def integrated_gradients(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    baselines: torch.Tensor | float | None = None,
    *,
    n_steps: int = 50,
    method: str = "gausslegendre",
) -> torch.Tensor:
    r"""Integrated gradients of ``forward`` at ``inputs``, on the straight path from ``baselines``.

    Computes :math:`\mathrm{IG}_i = (x_i - \bar x_i)\sum_k w_k\,\partial_i F(\bar x + \alpha_k (x - \bar x))`
    with the points and weights of :func:`quadrature`, so that
    :math:`\sum_i \mathrm{IG}_i \approx F(x) - F(\bar x)` (completeness; exact as ``n_steps`` grows).
    This is what ``captum.attr.IntegratedGradients(forward).attribute(inputs, baselines,
    n_steps=n_steps, method=method)`` computes. The post integrates the other way, from ``x`` to
    ``x̄``, and its attributions are the negatives of these (sum :math:`F(\bar x) - F(x)`); its
    discrete rule :math:`\alpha = k/n`, :math:`k = 1..n` on that path is ``riemann_left`` here.

    All ``n_steps`` points are evaluated in one batch of ``n_steps * B`` rows (as Captum does without
    ``internal_batch_size``). Gradients are taken with :func:`torch.func.vjp`, so the function also
    runs under ``torch.func`` transforms; the result carries a graph only if ``inputs`` do.

    Parameters
    ----------
    forward : callable mapping a batch ``(M, ...)`` to one scalar per example ``(M,)``. Row ``m`` of
        the output must depend on row ``m`` of the input only (no batch statistics, e.g. BatchNorm in
        training mode).
    inputs : ``(B, ...)`` floating tensor.
    baselines : ``(B, ...)``, or any shape that broadcasts to ``inputs`` (e.g. ``(1, ...)``), or a
        number; ``None`` (default) means zeros.
    n_steps : number of quadrature points (>= 2 for the Riemann rules, >= 1 for Gauss-Legendre).
    method : one of :data:`METHODS` (Captum's names); default ``"gausslegendre"`` as in Captum.

    Returns
    -------
    torch.Tensor
        Attributions, shaped and typed like ``inputs``.

    Raises
    ------
    ValueError
        If ``method`` is unknown, ``n_steps`` too small, ``baselines`` do not broadcast to ``inputs``,
        ``inputs`` contain NaN or ``forward`` does not return one scalar per example.
    TypeError
        If ``forward`` is not callable, ``inputs``/``baselines`` are not floating tensors or
        ``n_steps`` is not an integer.
    """
    _check_forward(forward)
    _check_input(inputs, "inputs", min_dim=1)
    base = _baselines_like(baselines, inputs)
    alphas_np, weights_np = quadrature(method, n_steps)
    n, B = len(alphas_np), inputs.shape[0]
    alphas = torch.as_tensor(alphas_np, dtype=inputs.dtype, device=inputs.device)
    weights = torch.as_tensor(weights_np, dtype=inputs.dtype, device=inputs.device)
    delta = inputs - base  # (B, ...)
    shape = (n,) + (1,) * inputs.dim()
    # path points, step-major as in Captum: rows k*B .. (k+1)*B - 1 are alpha_k
    path = (base.unsqueeze(0) + alphas.view(shape) * delta.unsqueeze(0)).reshape((n * B,) + tuple(inputs.shape[1:]))
    out, vjp_fn = torch.func.vjp(forward, path)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n * B,):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"forward must map (M, ...) to one scalar per example (M,), got {got} for M = {n * B}")
    (grads,) = vjp_fn(torch.ones_like(out))
    avg_grad = (weights.view(shape) * grads.reshape((n,) + tuple(inputs.shape))).sum(0)  # sum_k w_k dF(gamma(alpha_k))
    return avg_grad * delta


def completeness_gap(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    baselines: torch.Tensor | float | None = None,
) -> torch.Tensor:
    r"""How far attributions are from completeness: :math:`\sum_i \mathrm{IG}_i - (F(x) - F(\bar x))`.

    The same quantity as Captum's convergence delta (``return_convergence_delta=True``), per example.
    For attributions along the post's direction (``x → x̄``) pass their negatives.

    Parameters
    ----------
    forward : callable ``(M, ...) -> (M,)``, as in :func:`integrated_gradients`.
    inputs : ``(B, ...)``.
    attributions : ``(B, ...)``, the same shape as ``inputs``.
    baselines : as in :func:`integrated_gradients` (default zeros).

    Returns
    -------
    torch.Tensor
        ``(B,)``, in the units of ``forward``'s output.

    Raises
    ------
    ValueError
        If the shapes do not match or ``forward`` does not return ``(B,)``.
    TypeError
        If ``forward`` is not callable or the tensors are not floating.
    """
    _check_forward(forward)
    _check_input(inputs, "inputs", min_dim=1)
    _check_input(attributions, "attributions")
    if attributions.shape != inputs.shape:
        raise ValueError(f"attributions must have the shape of inputs {tuple(inputs.shape)}, got {tuple(attributions.shape)}")
    base = _baselines_like(baselines, inputs)
    with torch.no_grad():
        both = forward(torch.cat([inputs, base]))
    B = inputs.shape[0]
    if tuple(both.shape) != (2 * B,):
        raise ValueError(f"forward must map (M, ...) to (M,), got {tuple(both.shape)} for M = {2 * B}")
    return attributions.reshape(B, -1).sum(1) - (both[:B] - both[B:])
