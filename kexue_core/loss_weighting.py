r"""Multi-task loss weighting: scale-invariant normalisations, the power (generalised) mean and the
inverse-gradient-norm rule.

Given task losses :math:`\mathcal L_1,\dots,\mathcal L_n` (a tensor of shape ``(n,)`` of 0-dim
losses, positive where stated), these functions build the single objective whose gradient trains all
tasks. Source: https://kexue.fm/archives/8870 (Su Jianlin, *Multi-task learning notes (I): in the
name of the loss*, 2022); the equation numbers below are the post's.

- :func:`static_weighted_loss`: :math:`\sum_i \mathcal L_i/\mathcal L_i^{(\text{ref})}`, scale-invariant (eqs. 2-3);
- :func:`realtime_weighted_loss`: :math:`\sum_i \mathcal L_i/\mathrm{sg}(\mathcal L_i)`, scale-invariant (eq. 5);
- :func:`generalized_mean`: :math:`\big(\tfrac1n\sum_i\mathcal L_i^\gamma\big)^{1/\gamma}`, invariant to a
  common scale (eqs. 10-11);
- :func:`inverse_grad_norm_loss`: :math:`\sum_i \mathcal L_i/\mathrm{sg}\Vert\nabla\mathcal L_i\Vert`,
  invariant to scale and shift (eqs. 12-13).

Reference losses for the static scheme: :func:`init_loss_cross_entropy`, :func:`init_loss_mse`
(zero output) and :func:`prior_loss_cross_entropy`, :func:`prior_loss_mse` (best constant output).
All losses are in nats (cross-entropy) or squared target units (MSE).
"""
from __future__ import annotations

import math

import torch

from ._validation import check_positive_int, check_tensor

__all__ = [
    "generalized_mean",
    "init_loss_cross_entropy",
    "init_loss_mse",
    "prior_loss_cross_entropy",
    "prior_loss_mse",
    "static_weighted_loss",
    "realtime_weighted_loss",
    "inverse_grad_norm_loss",
    "normalized_gradient_sum",
]


def _check_losses(losses, *, positive: bool) -> torch.Tensor:
    check_tensor(losses, "losses")
    if losses.dim() != 1 or losses.numel() == 0:
        raise ValueError(f"losses must have shape (n,) with n >= 1, got {tuple(losses.shape)}")
    if positive and bool((losses.detach() <= 0).any()):
        raise ValueError("losses must be strictly positive for this weighting")
    return losses


def generalized_mean(losses, gamma: float):
    r"""Power (generalised) mean :math:`\mathcal L(\gamma) = \big(\frac1n\sum_i \mathcal L_i^\gamma\big)^{1/\gamma}`.

    ``gamma = 1`` is the arithmetic mean, ``gamma = 0`` the geometric mean (the limit), ``gamma = -1``
    the harmonic mean, ``gamma = +inf``/``-inf`` the max/min (post 8870, eqs. 10-11). Non-decreasing in
    ``gamma``. Computed in log space (``logsumexp``), so large or small losses do not overflow.

    Parameters
    ----------
    losses : Tensor (n,), floating, strictly positive
    gamma : float (``math.inf`` and ``-math.inf`` allowed)

    Returns
    -------
    Tensor
        0-dim, in the losses' units; differentiable.

    Raises
    ------
    TypeError
        If ``losses`` is not a floating tensor or ``gamma`` not a real number.
    ValueError
        If ``losses`` is not 1-D, is empty, or has an entry <= 0, or ``gamma`` is NaN.
    """
    _check_losses(losses, positive=True)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise TypeError(f"gamma must be a real number, got {type(gamma).__name__}")
    gamma = float(gamma)
    if gamma != gamma:
        raise ValueError("gamma must not be NaN")
    if gamma == math.inf:
        return losses.max()
    if gamma == -math.inf:
        return losses.min()
    logs = torch.log(losses)
    if gamma == 0:
        return torch.exp(logs.mean())
    n = losses.numel()
    return torch.exp((torch.logsumexp(gamma * logs, dim=0) - math.log(n)) / gamma)


def init_loss_cross_entropy(num_classes: int) -> float:
    r"""Cross-entropy of the uniform prediction (zero logits) over ``num_classes`` classes: :math:`\log K` nats.

    Raises ``TypeError``/``ValueError`` if ``num_classes`` is not an integer >= 2. Source: post 8870, §"initial state".
    """
    k = check_positive_int(num_classes, "num_classes", minimum=2)
    return math.log(k)


def _check_targets(targets) -> torch.Tensor:
    check_tensor(targets, "targets")
    if targets.dim() not in (1, 2) or targets.shape[0] == 0:
        raise ValueError(f"targets must have shape (N,) or (N, d) with N >= 1, got {tuple(targets.shape)}")
    return targets if targets.dim() == 2 else targets[:, None]


def init_loss_mse(targets) -> torch.Tensor:
    r"""Squared error of the zero prediction, :math:`\mathbb E\Vert y\Vert^2` (sum over the ``d``
    outputs, mean over the ``N`` samples).

    targets : Tensor (N,) or (N, d), floating. Returns a 0-dim tensor (squared target units). Raises
    ``TypeError``/``ValueError`` naming ``targets``. Source: post 8870, §"initial state".
    """
    y = _check_targets(targets)
    return (y**2).sum(1).mean()


def prior_loss_cross_entropy(class_counts) -> torch.Tensor:
    r"""Cross-entropy of the best constant prediction, the class frequencies :math:`p`: the entropy
    :math:`H(p) = -\sum_k p_k\log p_k` in nats.

    class_counts : Tensor (K,), non-negative counts (or frequencies), not all zero. Returns a 0-dim
    tensor. Raises ``TypeError``/``ValueError`` naming ``class_counts``. Source: post 8870, eq. (4).
    """
    check_tensor(class_counts, "class_counts", floating=False)
    c = class_counts.double() if not class_counts.is_floating_point() else class_counts
    if c.dim() != 1 or c.numel() < 2:
        raise ValueError(f"class_counts must have shape (K,) with K >= 2, got {tuple(c.shape)}")
    if bool((c < 0).any()) or float(c.sum()) <= 0:
        raise ValueError("class_counts must be non-negative and not all zero")
    p = c / c.sum()
    return -torch.special.xlogy(p, p).sum()


def prior_loss_mse(targets) -> torch.Tensor:
    r"""Squared error of the best constant prediction, the mean :math:`\mu`:
    :math:`\mathbb E\Vert y-\mu\Vert^2` (sum over outputs, mean over samples; the biased variance).

    targets : Tensor (N,) or (N, d), floating. Returns a 0-dim tensor. Raises as :func:`init_loss_mse`.
    Source: post 8870, §"prior state".
    """
    y = _check_targets(targets)
    return ((y - y.mean(0, keepdim=True)) ** 2).sum(1).mean()


def static_weighted_loss(losses, refs):
    r"""Scale-invariant static weighting :math:`\sum_i \mathcal L_i/\mathcal L_i^{(\text{ref})}`
    (post 8870, eqs. 2-3), with ``refs`` the initial or prior losses.

    losses : Tensor (n,), floating. refs : Tensor (n,), strictly positive, treated as constants
    (detached). Returns a 0-dim tensor. Raises ``ValueError`` on a shape mismatch or a ref <= 0.
    """
    _check_losses(losses, positive=False)
    check_tensor(refs, "refs")
    if refs.shape != losses.shape:
        raise ValueError(f"refs must have the shape of losses {tuple(losses.shape)}, got {tuple(refs.shape)}")
    if bool((refs <= 0).any()):
        raise ValueError("refs must be strictly positive")
    return (losses / refs.detach()).sum()


def realtime_weighted_loss(losses):
    r"""Real-time normalisation :math:`\sum_i \mathcal L_i/\mathrm{sg}(\mathcal L_i)` (post 8870, eq. 5).

    Its value is ``n``; its gradient is :math:`\sum_i\nabla\mathcal L_i/\mathcal L_i = \nabla\sum_i\log\mathcal L_i`,
    the gradient of ``n`` times the log of the geometric mean (eqs. 6-9).

    losses : Tensor (n,), floating, strictly positive. Returns a 0-dim tensor. Raises ``ValueError``
    if a loss is <= 0 (the log interpretation and the weights 1/L need positive losses).
    """
    _check_losses(losses, positive=True)
    return (losses / losses.detach()).sum()


def _flat_grad(loss, params, retain_graph):
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


def inverse_grad_norm_loss(losses, params, *, eps: float = 0.0):
    r"""Weighting by the inverse gradient norm, :math:`\sum_i \mathcal L_i/\mathrm{sg}\Vert\nabla_\theta\mathcal L_i\Vert`
    (post 8870, eq. 12).

    Its gradient with respect to ``params`` is :math:`\sum_i \nabla\mathcal L_i/\Vert\nabla\mathcal L_i\Vert`
    (eq. 13), the sum of unit task gradients: invariant to :math:`\mathcal L_i\to a\mathcal L_i + b`
    (:math:`a > 0`). Costs one extra backward pass per task (graph retained).

    Parameters
    ----------
    losses : Tensor (n,), floating, each entry a function of ``params``
    params : list of Tensors
        The parameters :math:`\theta` over which the norms are taken (e.g. only the shared encoder;
        the post writes :math:`\nabla_\theta` generically).
    eps : float
        Added to each norm (>= 0); 0 raises if a task gradient vanishes.

    Returns
    -------
    Tensor
        0-dim; its value is :math:`\sum_i\mathcal L_i/\Vert\nabla\mathcal L_i\Vert`.

    Raises
    ------
    ValueError
        If ``params`` is empty, ``eps < 0``, or a task gradient norm is 0 with ``eps = 0``.
    """
    _check_losses(losses, positive=False)
    params = list(params)
    if not params:
        raise ValueError("params must be a non-empty list of tensors")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a real number >= 0, got {eps!r}")
    norms = torch.stack([_flat_grad(losses[i], params, True).norm() for i in range(losses.numel())])
    if eps == 0 and bool((norms == 0).any()):
        raise ValueError("a task gradient is zero; pass eps > 0")
    return (losses / (norms + eps).detach()).sum()


def normalized_gradient_sum(grads):
    r"""Sum of unit task gradients :math:`\sum_i g_i/\Vert g_i\Vert` (post 8870, eq. 13): the update of
    :func:`inverse_grad_norm_loss` when the task gradients ``g_i`` are computed one task at a time.

    grads : Tensor (n, P), floating, no zero row. Returns a Tensor (P,). Raises ``ValueError`` for a
    wrong shape or a zero row.
    """
    check_tensor(grads, "grads")
    if grads.dim() != 2 or grads.shape[0] == 0:
        raise ValueError(f"grads must have shape (n, P) with n >= 1, got {tuple(grads.shape)}")
    norms = grads.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("grads has a zero row (a task with zero gradient has no direction)")
    return (grads / norms).sum(0)
