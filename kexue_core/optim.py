r"""Optimisers derived in the book: exponentiated gradient descent and its meta-learned step sizes.

* :class:`EGD`: ``p <- p * exp(-lr * grad)``, keeps positive parameters positive. It is mirror
  descent with the (unnormalised) KL divergence as the Bregman divergence.
* :class:`EGMetaLR`: plain gradient descent with a per-entry step multiplier ``nu`` that is itself
  learned by EGD on the hypergradient ``-lr * g_{t-1} * g_t``:
  ``nu <- nu * exp(gamma * g_{t-1} * g_t)``, then ``p <- p - lr * nu * g_t``.

Both are :class:`torch.optim.Optimizer` subclasses (``step(closure=None)``, ``zero_grad``,
``state_dict``). Source: Su Jianlin, https://kexue.fm/archives/8968; Amid, Anil, Fifty & Warmuth,
"Step-size Adaptation Using Exponentiated Gradient Updates", arXiv:2202.00145 (the post simplifies it).
"""
from __future__ import annotations


import torch
from torch.optim import Optimizer

from ._validation import check_positive_real

__all__ = ["EGD", "EGMetaLR"]


def _real(x, name: str, *, positive: bool) -> float:
    return check_positive_real(x, name, allow_zero=not positive)


class EGD(Optimizer):
    r"""Exponentiated gradient descent: :math:`p_{t+1} = p_t \odot \exp(-\eta\, \nabla_p L(p_t))`.

    Every entry stays positive, so this minimises over the positive orthant (non-negative
    constraints). One step equals the mirror-descent step
    :math:`\arg\min_p \langle g, p\rangle + \eta^{-1} \mathrm{KL}(p \Vert p_t)` with the unnormalised
    KL divergence :math:`\sum_i p_i\log(p_i/p_{t,i}) - p_i + p_{t,i}`. Entries that should be 0 decay
    geometrically; in float64 they may underflow to subnormals (and to exactly 0 after very many
    steps, from which they cannot recover).

    Parameters
    ----------
    params : iterable of tensors (or parameter groups), every entry ``> 0``.
    lr : learning rate ``eta > 0`` (units: 1 / gradient units).

    Raises
    ------
    ValueError
        If ``lr`` is not finite and ``> 0``, or a parameter has an entry ``<= 0`` or NaN (at
        construction; ``params`` is named in the message).
    TypeError
        If ``lr`` is not a real number.

    Source: https://kexue.fm/archives/8968, eq. (2) (EGD); Kivinen & Warmuth (1997).
    """

    def __init__(self, params, lr: float):
        lr = _real(lr, "lr", positive=True)
        super().__init__(params, {"lr": lr})
        for group in self.param_groups:
            _real(group["lr"], "lr", positive=True)
            for i, p in enumerate(group["params"]):
                if not p.is_floating_point():
                    raise TypeError(f"params[{i}] must be floating point, got {p.dtype}")
                if not bool((p.detach() > 0).all()):
                    raise ValueError(f"params[{i}] has a non-positive (or NaN) entry; EGD needs p > 0")

    @torch.no_grad()
    def step(self, closure=None):
        """One EGD step on every parameter with a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.mul_(torch.exp(-group["lr"] * p.grad))  # p <- p * exp(-lr * g)
        return loss


class EGMetaLR(Optimizer):
    r"""Gradient descent with per-entry step sizes learned by exponentiated gradient descent.

    With ``g_t`` the gradient at step ``t`` and ``g_{-1} = 0`` (so the first step is plain GD with
    ``nu_init``):

    .. math::
        \nu_{t+1} = \nu_t \odot \exp(\gamma\, g_{t-1}\odot g_t),\qquad
        p_{t+1} = p_t - \eta\, \nu_{t+1}\odot g_t .

    ``-eta g_{t-1} * g_t`` is the gradient of the loss at ``p_t`` with respect to the step sizes
    ``nu_t`` that produced ``p_t`` (the hypergradient); ``gamma`` absorbs ``eta`` (the post merges
    ``gamma * eta`` into ``gamma``). With ``gamma = 0`` this is plain gradient descent with step
    ``lr * nu_init``. ``gamma`` has units of 1/gradient²; too large a value overflows ``exp``.

    State per parameter: ``nu`` (same shape, starts at ``nu_init``) and ``prev_grad`` (zeros).

    Parameters
    ----------
    params : iterable of tensors or parameter groups.
    lr : ``eta > 0``. gamma : meta learning rate ``>= 0``. nu_init : initial multiplier ``> 0``.

    Raises
    ------
    ValueError
        If ``lr`` or ``nu_init`` is not finite and ``> 0``, or ``gamma`` is negative or not finite.
    TypeError
        If one of them is not a real number.

    Source: https://kexue.fm/archives/8968, eq. (7)-(12).
    """

    def __init__(self, params, lr: float, gamma: float, *, nu_init: float = 1.0):
        lr = _real(lr, "lr", positive=True)
        gamma = _real(gamma, "gamma", positive=False)
        nu_init = _real(nu_init, "nu_init", positive=True)
        super().__init__(params, {"lr": lr, "gamma": gamma, "nu_init": nu_init})

    @torch.no_grad()
    def step(self, closure=None):
        """One step: update ``nu`` from ``g_{t-1} * g_t``, then ``p``; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["nu"] = torch.full_like(p, group["nu_init"])
                    state["prev_grad"] = torch.zeros_like(p)
                nu, prev = state["nu"], state["prev_grad"]
                nu.mul_(torch.exp(group["gamma"] * prev * g))  # nu_{t+1} = nu_t exp(gamma g_{t-1} g_t)
                p.addcmul_(nu, g, value=-group["lr"])  # p_{t+1} = p_t - lr nu_{t+1} g_t
                prev.copy_(g)
        return loss
