r"""Weight regularisers and the weight-scale-shift invariance of ReLU networks.

A bias-carrying MLP with a positively homogeneous activation (ReLU, identity), rescaled layer by
layer as ``W_l -> gamma_l W_l`` and ``b_l -> (gamma_1 ... gamma_l) b_l``, computes
``(gamma_1 ... gamma_L)`` times the original function; with ``prod gamma_l = 1`` it is the same
function (weight-scale-shift invariance, WEISSI). The L2 penalty ``sum_l ||W_l||_F^2`` is not
invariant under this shift; the WEISSI penalty ``lambda_1 sum_l log ||W_l||_F + lambda_2 sum_l
||W_l||_1 / ||W_l||_F`` is.

Under gradient flow on ``L_task + lambda sum_l ||W_l||_F^2`` of a *bias-free* positively homogeneous
network, the difference of two layers' squared norms obeys
``d/dt (||W_l||^2 - ||W_m||^2) = -4 lambda (||W_l||^2 - ||W_m||^2)`` (:func:`l2_rebalancing_factor`).

Norms are Frobenius norms (the post's ``||W||_2``). Source: Su Jianlin,
https://kexue.fm/archives/7681; Liu et al., "Improve Generalization and Robustness of Neural
Networks via Weight Scale Shifting Invariant Regularizations", arXiv:1905.05931.
"""
from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence

import torch

from ._validation import check_positive_real, check_tensor
from .nn import MLP

__all__ = ["rescale_layers", "layer_norms", "l2_penalty", "weissi_penalty", "l2_rebalancing_factor"]

BIAS_MODES = ("cumulative", "per_layer")


def rescale_layers(model: MLP, gammas: Sequence[float], *, bias: str = "cumulative") -> MLP:
    r"""A rescaled copy of ``model``: layer ``l`` gets ``W_l * gamma_l`` and a rescaled bias.

    .. math::
        W_l \to \gamma_l W_l,\qquad
        b_l \to \Big(\prod_{k\le l}\gamma_k\Big) b_l \ \ (\texttt{bias="cumulative"}),\qquad
        b_l \to \gamma_l b_l \ \ (\texttt{bias="per_layer"}, \text{the post's form}).

    With ``bias="cumulative"`` and a positively homogeneous activation (``"relu"``, ``"identity"``)
    the new model computes exactly ``prod(gammas)`` times the old one, so with ``prod(gammas) = 1``
    the same function. ``"per_layer"`` is the scaling written in the post; it preserves the function
    only if every bias after the first layer is zero (see https://kexue.fm/archives/7681, eq. (4)).

    Parameters
    ----------
    model : a :class:`kexue_core.nn.MLP` with ``L = model.num_layers`` linear layers (not modified).
    gammas : ``L`` finite real numbers, each ``> 0``.
    bias : ``"cumulative"`` (default) or ``"per_layer"``; ignored for a bias-free model.

    Returns
    -------
    MLP
        A deep copy of ``model`` with rescaled parameters (same dtype and device).

    Raises
    ------
    TypeError
        If ``model`` is not an ``MLP`` or a gamma is not a real number.
    ValueError
        If ``len(gammas) != model.num_layers``, a gamma is ``<= 0`` or not finite, or ``bias`` is
        unknown.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a kexue_core.nn.MLP, got {type(model).__name__}")
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {BIAS_MODES}, got {bias!r}")
    if isinstance(gammas, torch.Tensor):
        gammas = gammas.detach().cpu().tolist()
    gammas = list(gammas)
    if len(gammas) != model.num_layers:
        raise ValueError(f"gammas must have one entry per linear layer ({model.num_layers}), got {len(gammas)}")
    gammas = [check_positive_real(g, "gammas entry") for g in gammas]
    out = copy.deepcopy(model)
    cum = 1.0
    with torch.no_grad():
        for layer, g in zip(out.layers, gammas):
            cum *= g  # prod_{k <= l} gamma_k
            layer.weight.mul_(g)  # W_l -> gamma_l W_l
            if layer.bias is not None:
                layer.bias.mul_(cum if bias == "cumulative" else g)
    return out


def _check_weights(weights, name: str = "weights") -> list[torch.Tensor]:
    if isinstance(weights, torch.Tensor) or not isinstance(weights, Sequence):
        raise TypeError(f"{name} must be a sequence of weight tensors, got {type(weights).__name__}")
    if len(weights) == 0:
        raise ValueError(f"{name} must contain at least one tensor")
    out = []
    for i, w in enumerate(weights):
        check_tensor(w, f"{name}[{i}]")
        if w.numel() == 0:
            raise ValueError(f"{name}[{i}] is empty")
        if not torch.isfinite(w.detach()).all():
            raise ValueError(f"{name}[{i}] contains inf")
        out.append(w)
    return out


def layer_norms(model: MLP) -> torch.Tensor:
    """Frobenius norms ``||W_l||_F`` of the weight matrices of ``model``: ``(L,)``, the weights'
    dtype, no autograd graph. Raises ``TypeError`` if ``model`` is not an ``MLP``.
    Source: https://kexue.fm/archives/7681 (the post's ``||W_l||_2``)."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a kexue_core.nn.MLP, got {type(model).__name__}")
    return torch.stack([torch.linalg.matrix_norm(layer.weight.detach()) for layer in model.layers])


def l2_penalty(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""The L2 penalty :math:`\sum_l \Vert W_l\Vert_F^2`: a 0-dim tensor, differentiable.

    weights : non-empty sequence of floating tensors of any shape (finite, no NaN).
    Raises ``TypeError``/``ValueError`` naming ``weights`` for bad input.
    Source: https://kexue.fm/archives/7681, eq. (5).
    """
    ws = _check_weights(weights)
    return sum(w.pow(2).sum() for w in ws)


def weissi_penalty(weights: Sequence[torch.Tensor], *, lambda1: float = 1.0, lambda2: float = 0.0) -> torch.Tensor:
    r"""The WEISSI regulariser, a 0-dim tensor (differentiable):

    .. math::
        \lambda_1 \sum_l \log\Vert W_l\Vert_F + \lambda_2 \sum_l \frac{\Vert W_l\Vert_1}{\Vert W_l\Vert_F}

    (natural log; ``||.||_1`` the sum of absolute entries). It is unchanged by any rescaling
    ``W_l -> gamma_l W_l`` with ``prod gamma_l = 1``: the log term shifts by ``lambda1 *
    log prod gamma_l``, the direction term is scale-free.

    Parameters
    ----------
    weights : non-empty sequence of floating tensors (each with at least one non-zero entry).
    lambda1, lambda2 : finite real weights of the two terms (``>= 0``).

    Raises
    ------
    TypeError
        If ``weights`` is not a sequence of floating tensors or a lambda is not a real number.
    ValueError
        If ``weights`` is empty, a tensor contains NaN/inf or is all zeros (its log-norm is
        ``-inf``), or a lambda is negative or not finite.

    Source: https://kexue.fm/archives/7681, eq. (10); arXiv:1905.05931.
    """
    ws = _check_weights(weights)
    lambda1 = check_positive_real(lambda1, "lambda1", allow_zero=True)
    lambda2 = check_positive_real(lambda2, "lambda2", allow_zero=True)
    total = ws[0].new_zeros(())
    for i, w in enumerate(ws):
        fro = torch.linalg.vector_norm(w)
        if fro.detach() == 0:
            raise ValueError(f"weights[{i}] is all zeros: log ||W||_F is -inf")
        total = total + lambda1 * torch.log(fro) + lambda2 * w.abs().sum() / fro
    return total


def l2_rebalancing_factor(lam: float, t) -> torch.Tensor | float:
    r"""Predicted ratio :math:`D(t)/D(0) = e^{-4\lambda t}` for
    :math:`D = \Vert W_l\Vert_F^2 - \Vert W_m\Vert_F^2` under gradient flow on
    :math:`L_{task} + \lambda\sum_l \Vert W_l\Vert_F^2`.

    Holds exactly for a bias-free positively homogeneous network (ReLU/identity): by Euler's theorem
    :math:`\langle W_l, \nabla_{W_l} L_{task}\rangle` is the same for every layer, so the task loss
    drops out of :math:`dD/dt = -4\lambda D`. For gradient descent with learning rate ``eta``, use
    ``t = eta * steps`` (the discrete factor is :math:`(1-2\eta\lambda)^{2k}` up to :math:`O(\eta^2)`
    terms from the task gradient).

    Parameters
    ----------
    lam : penalty weight ``lambda`` (finite, ``>= 0``), for the penalty ``lambda sum ||W||^2`` (not
        ``lambda/2``).
    t : time (a float ``>= 0``, or a tensor of times).

    Returns
    -------
    float or torch.Tensor
        ``exp(-4 lam t)``, of the shape of ``t``.

    Raises
    ------
    ValueError
        For a negative or non-finite ``lam`` or a negative or non-finite ``t``.

    Source: the book's derivation for https://kexue.fm/archives/7681 (not in the post).
    """
    lam = check_positive_real(lam, "lam", allow_zero=True)
    if isinstance(t, torch.Tensor):
        if (t < 0).any() or not torch.isfinite(t).all():
            raise ValueError("t must be finite and >= 0")
        return torch.exp(-4.0 * lam * t)
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t < 0:
        raise ValueError(f"t must be a finite real number >= 0, got {t!r}")
    return math.exp(-4.0 * lam * t)
