"""Rotary position embedding (RoPE), the relative position encoding of RoFormer.

Shapes follow :mod:`kexue_core.attention.softmax`: ``x: (..., n, d)`` with ``d`` even.
"""
from __future__ import annotations

import torch

from .._validation import check_positive_real, check_tensor, values_checkable

__all__ = ["rotary_embedding"]


def rotary_embedding(x, positions=None, *, base: float = 10000.0):
    r"""Rotate each pair of coordinates of ``x`` by an angle proportional to its position (RoPE).

    .. math::
       \begin{pmatrix} y_{m,2i} \\ y_{m,2i+1}\end{pmatrix} =
       \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i\end{pmatrix}
       \begin{pmatrix} x_{m,2i} \\ x_{m,2i+1}\end{pmatrix},\qquad \theta_i = \text{base}^{-2i/d},

    so that :math:`\langle y_m, y'_n\rangle` depends on the positions only through :math:`m-n`.

    Parameters
    ----------
    x : (..., n, d) floating tensor, ``d`` even (queries or keys of one head).
    positions : optional (n,) or (..., n) tensor of positions (integers or reals; default
        ``0, 1, ..., n-1``), broadcastable against ``x.shape[:-1]``.
    base : the frequency base (> 0); 10000 in RoFormer.

    Returns
    -------
    (..., n, d) tensor of ``x``'s dtype: the rotated vectors (norms unchanged).

    Raises
    ------
    TypeError
        Non-tensor or non-floating ``x``, or a non-tensor ``positions``.
    ValueError
        Odd ``d``, NaN in ``x`` or ``positions``, positions not broadcastable, or ``base <= 0``.

    Source: https://kexue.fm/archives/8265 (RoPE), used by the RoFormer of https://kexue.fm/archives/8823.
    """
    check_tensor(x, "x", min_dim=2)
    base = check_positive_real(base, "base")
    n, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"the last dimension of x must be even, got {d}")
    if positions is None:
        positions = torch.arange(n, dtype=torch.float64, device=x.device)
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    positions = positions.to(torch.float64)
    if values_checkable(positions) and torch.isnan(positions).any():
        raise ValueError("positions contains NaN")
    try:
        torch.broadcast_shapes(positions.shape, x.shape[:-1])
    except RuntimeError as e:
        raise ValueError(f"positions of shape {tuple(positions.shape)} do not broadcast to {tuple(x.shape[:-1])}") from e
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)  # θ_i, (d/2,)
    angles = positions[..., None] * freqs  # (..., n, d/2): m θ_i
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., n, d/2) each: the pairs (x_{2i}, x_{2i+1})
    y = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (..., n, d/2, 2)
    return y.flatten(-2)
