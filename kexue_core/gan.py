r"""GAN training dynamics and critic regularisers: the Dirac-GAN vector fields and the gradient penalty.

**Dirac GAN** (Mescheder, Geiger & Nowozin 2018, as used in https://kexue.fm/archives/6583): the real data
is the single point :math:`0\in\mathbb{R}^d`, the generator is a learnable point :math:`\theta\in\mathbb{R}^d`
and the critic is linear, :math:`D(x) = x\cdot\varphi`. Simultaneous gradient ascent of the critic and
descent of the generator is the ODE :math:`(\dot\varphi, \dot\theta) = (\nabla_\varphi L_1, -\nabla_\theta L_2)`;
:func:`dirac_gan_vector_field` gives its right-hand side for the four models of the post.

**Gradient penalty** (Gulrajani et al. 2017; 0-centred: Mescheder et al. 2018, Wu et al. 2018):
:func:`gradient_penalty` is the batch mean of :math:`(\Vert\nabla_x D(\hat x)\Vert_2 - c)^2` at random
interpolates :math:`\hat x` of real and fake samples, as discussed in https://kexue.fm/archives/8244.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ._validation import check_positive_real, check_real, check_tensor, values_checkable

__all__ = ["DIRAC_GAN_KINDS", "dirac_gan_vector_field", "gradient_penalty"]

#: the models :func:`dirac_gan_vector_field` knows
DIRAC_GAN_KINDS = ("vanilla", "wgan", "wgan_gp", "gan_qp")


def _check_finite(x: torch.Tensor, name: str) -> None:
    if not values_checkable(x):
        return  # vmap forbids data-dependent control flow
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")


def dirac_gan_vector_field(
    kind: str,
    phi: torch.Tensor,
    theta: torch.Tensor,
    *,
    lam: float = 1.0,
    c: float = 0.0,
    l2: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Right-hand side :math:`(\dot\varphi, \dot\theta)` of the Dirac-GAN training ODE.

    With :math:`s = \theta\cdot\varphi` (per row) and :math:`\sigma` the logistic sigmoid, the models of
    the post (eq. numbers of https://kexue.fm/archives/6583) are

    * ``"vanilla"`` (non-saturating GAN): :math:`\dot\varphi = -\sigma(s)\theta`,
      :math:`\dot\theta = (1-\sigma(s))\varphi`;
    * ``"wgan"`` (critic :math:`x\cdot\varphi/\Vert\varphi\Vert`):
      :math:`\dot\varphi = -\theta/\Vert\varphi\Vert + s\varphi/\Vert\varphi\Vert^3`,
      :math:`\dot\theta = \varphi/\Vert\varphi\Vert`;
    * ``"wgan_gp"`` (penalty :math:`\lambda(\Vert\varphi\Vert - c)^2`):
      :math:`\dot\varphi = -\theta - 2\lambda(1 - c/\Vert\varphi\Vert)\varphi`, :math:`\dot\theta = \varphi`;
    * ``"gan_qp"``: :math:`\dot\varphi = -\theta - s\,\theta/(\lambda\Vert\theta\Vert)`,
      :math:`\dot\theta = \varphi` (the post's formula, with :math:`\Vert\theta\Vert` in the denominator;
      the term is taken as 0 at :math:`\theta = 0`, its continuous extension).

    An L2 penalty :math:`\tfrac{l_2}{2}\Vert\varphi\Vert^2` on the critic's loss adds
    :math:`-l_2\varphi` to :math:`\dot\varphi` (the post's remedy, given there without a value).

    Parameters
    ----------
    kind : one of :data:`DIRAC_GAN_KINDS`.
    phi : ``(..., d)`` floating tensor, the critic's weights :math:`\varphi`.
    theta : ``(..., d)`` floating tensor of the same shape, the generator's point :math:`\theta`.
    lam : :math:`\lambda > 0`, the penalty weight (``"wgan_gp"``, ``"gan_qp"``; ignored otherwise).
    c : centre :math:`c \ge 0` of the gradient penalty (``"wgan_gp"`` only; 0 or 1 in the post).
    l2 : :math:`l_2 \ge 0`, weight of the L2 penalty on :math:`\varphi`.

    Returns
    -------
    (dphi, dtheta) : two tensors of the shape and dtype of ``phi``.

    Works under ``torch.func`` transforms (``vmap``, ``jacrev``), where the finiteness checks on the
    values are skipped, and in half precision.

    Raises
    ------
    ValueError
        For an unknown ``kind``; ``phi``/``theta`` of different shapes, without a last dimension or with
        NaN/inf entries; ``lam <= 0``, ``c < 0`` or ``l2 < 0``; ``phi`` with a zero row for ``"wgan"``
        or for ``"wgan_gp"`` with ``c != 0`` (the field is undefined there).
    TypeError
        If ``phi``/``theta`` are not floating-point tensors or ``lam``, ``c``, ``l2`` are not real numbers.
    """
    if kind not in DIRAC_GAN_KINDS:
        raise ValueError(f"kind must be one of {DIRAC_GAN_KINDS}, got {kind!r}")
    check_tensor(phi, "phi", min_dim=1, floating=False)
    check_tensor(theta, "theta", min_dim=1, floating=False)
    for x, name in ((phi, "phi"), (theta, "theta")):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        _check_finite(x, name)
    if phi.shape != theta.shape:
        raise ValueError(f"phi and theta must have the same shape, got {tuple(phi.shape)} and {tuple(theta.shape)}")
    if phi.shape[-1] == 0:
        raise ValueError("phi and theta need a last dimension d >= 1")
    lam = check_positive_real(lam, "lam")
    c = check_real(c, "c")
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    l2 = check_positive_real(l2, "l2", allow_zero=True)

    s = (theta * phi).sum(-1, keepdim=True)  # s = theta . phi, (..., 1)
    if kind == "vanilla":
        dphi = -torch.sigmoid(s) * theta  # grad_phi log(1 - sigma(s))
        dtheta = torch.sigmoid(-s) * phi  # grad_theta log sigma(s) = (1 - sigma(s)) phi
    elif kind == "wgan":
        n = _nonzero_norm(phi, "phi", kind)
        dphi = -theta / n + s * phi / n**3
        dtheta = phi / n
    elif kind == "wgan_gp":
        if c == 0.0:
            dphi = -theta - 2.0 * lam * phi
        else:
            n = _nonzero_norm(phi, "phi", f"{kind} with c != 0")
            dphi = -theta - 2.0 * lam * (1.0 - c / n) * phi
        dtheta = phi
    else:  # gan_qp
        nt = torch.linalg.vector_norm(theta, dim=-1, keepdim=True)
        safe = torch.where(nt > 0, nt, torch.ones_like(nt))
        dphi = -theta - torch.where(nt > 0, s / (lam * safe), torch.zeros_like(nt)) * theta
        dtheta = phi
    if l2:
        dphi = dphi - l2 * phi
    return dphi, dtheta


def _nonzero_norm(phi: torch.Tensor, name: str, what: str) -> torch.Tensor:
    n = torch.linalg.vector_norm(phi, dim=-1, keepdim=True)
    if values_checkable(phi) and bool((n == 0).any()):
        raise ValueError(f"{name} must have no zero row for kind {what!r} (the field divides by ||{name}||)")
    return n


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    x_real: torch.Tensor,
    x_fake: torch.Tensor,
    *,
    center: float = 1.0,
    alpha: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Gradient penalty :math:`\frac1B\sum_i (\Vert\nabla_x D(\hat x_i)\Vert_2 - c)^2` of a critic.

    At :math:`\hat x_i = \alpha_i x^{\rm real}_i + (1-\alpha_i) x^{\rm fake}_i`. With ``center=1`` it is the
    WGAN-GP penalty of Gulrajani et al. (2017); ``center=0`` is the 0-centred penalty (WGAN-div,
    Mescheder et al. 2018) that https://kexue.fm/archives/6583 finds locally convergent. The gradient
    norm is over all non-batch dimensions of one sample.

    Parameters
    ----------
    critic : maps ``(B, ...)`` to ``(B,)`` or ``(B, 1)``, row ``i`` depending only on sample ``i``
        (no batch norm).
    x_real, x_fake : ``(B, ...)`` floating tensors of the same shape, ``B >= 1``.
    center : :math:`c \ge 0`.
    alpha : ``(B,)`` or ``(B, 1)`` interpolation weights in :math:`[0, 1]`; drawn uniformly (from
        ``generator`` if given) when ``None``.
    generator : ``torch.Generator`` for drawing ``alpha``.

    Returns
    -------
    A 0-dim tensor in the dtype of the inputs, differentiable with respect to the critic's parameters
    (the input gradient is taken with ``create_graph=True``) and to ``x_real``/``x_fake`` if they require
    grad. Uses ``torch.autograd.grad``, so it is meant for ordinary autograd, not for ``torch.func``
    transforms. At a point where the input gradient is exactly 0 the norm is not differentiable.

    Raises
    ------
    ValueError
        If ``x_real``/``x_fake`` differ in shape, have no batch dimension or an empty batch, or contain
        NaN/inf; if ``alpha`` has the wrong shape, is non-finite or leaves :math:`[0, 1]`; if
        ``center < 0``; if the critic's output is not ``(B,)`` or ``(B, 1)``.
    TypeError
        If ``critic`` is not callable, the inputs are not floating tensors, or ``center`` is not real.
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    for x, name in ((x_real, "x_real"), (x_fake, "x_fake")):
        check_tensor(x, name, min_dim=1)
        _check_finite(x, name)
    if x_real.shape != x_fake.shape:
        raise ValueError(f"x_real and x_fake must have the same shape, got {tuple(x_real.shape)} and {tuple(x_fake.shape)}")
    B = x_real.shape[0]
    if B == 0:
        raise ValueError("x_real and x_fake must hold at least one sample")
    center = check_real(center, "center")
    if center < 0:
        raise ValueError(f"center must be >= 0, got {center}")
    if alpha is None:
        alpha = torch.rand(B, generator=generator, dtype=x_real.dtype, device=x_real.device)
    else:
        check_tensor(alpha, "alpha", min_dim=1)
        _check_finite(alpha, "alpha")
        if tuple(alpha.shape) not in ((B,), (B, 1)):
            raise ValueError(f"alpha must have shape ({B},) or ({B}, 1), got {tuple(alpha.shape)}")
        if bool(((alpha < 0) | (alpha > 1)).any()):
            raise ValueError("alpha must lie in [0, 1]")
    a = alpha.reshape(B, *([1] * (x_real.dim() - 1))).to(x_real.dtype)
    x_hat = a * x_real + (1 - a) * x_fake  # (B, ...)
    if not x_hat.requires_grad:
        x_hat.requires_grad_(True)
    out = critic(x_hat)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) not in ((B,), (B, 1)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"critic must return shape ({B},) or ({B}, 1), got {shape}")
    # rows are independent, so the gradient of the sum gives each sample's input gradient
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norms = torch.linalg.vector_norm(grad.reshape(B, -1), dim=1)  # (B,)
    return ((norms - center) ** 2).mean()
