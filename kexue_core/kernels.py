r"""Neural tangent kernels and the path kernel of gradient descent.

For a model ``f_theta`` with one scalar output per example, the empirical neural tangent kernel is

.. math::
    K_\theta(x, x') = \langle \nabla_\theta f_\theta(x), \nabla_\theta f_\theta(x')\rangle ,

the sum running over every parameter that requires grad. Under gradient flow on
``L = loss(f_theta(x_1), ..., f_theta(x_n))`` every output moves as
``df(x)/dt = sum_i alpha_i K_theta(x, x_i)`` with ``alpha_i = -dL/df(x_i)``, so after time ``T``

.. math::
    f_{\theta_T}(x) = f_{\theta_0}(x) + \sum_i \int_0^T \alpha_i(t) K_{\theta(t)}(x, x_i)\,dt
                    = \beta(x) + \sum_i \bar\alpha_i(x) K(x, x_i),

with the path kernel ``K(x, x_i) = int_0^T K_theta(t)(x, x_i) dt`` and the kernel-weighted mean
``alpha_bar_i(x)``. :func:`path_kernel_gd` runs full-batch gradient descent and accumulates these
integrals with the rectangle (Euler) and trapezoid rules.

Source: Su Jianlin, https://kexue.fm/archives/8009, eq. (4)-(9); Domingos, "Every Model Learned by
Gradient Descent Is Approximately a Kernel Machine", arXiv:2012.00152.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from ._validation import check_positive_int, check_positive_real, check_tensor

__all__ = ["empirical_ntk", "PathKernelResult", "path_kernel_gd"]

NTK_METHODS = ("jacobian", "jvp")


def _split_params(model: nn.Module):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ValueError("model has no parameter that requires grad")
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return params, buffers


def _check_x(x, name: str) -> torch.Tensor:
    check_tensor(x, name, min_dim=1)
    if x.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one example, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains inf")
    return x


def _scalar_fn(model, buffers):
    """``f(params, x: (n, ...)) -> (n,)``; raises ValueError unless one scalar per example."""

    def f(params, x):
        out = functional_call(model, (params, buffers), (x,))
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.dim() != 1 or out.shape[0] != x.shape[0]:
            raise ValueError(
                f"model must give one scalar output per example, shape (n,) or (n, 1); got {tuple(out.shape)}")
        return out

    return f


def _flat_jacobian(f, params, x) -> torch.Tensor:
    """Per-example Jacobian ``(n, P)`` of ``f`` with respect to all params, by ``vmap(jacrev)``."""
    jac = vmap(jacrev(lambda p, xi: f(p, xi.unsqueeze(0))[0]), (None, 0))(params, x)  # name -> (n, *shape)
    return torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], dim=1)


def empirical_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor, *, method: str = "jacobian") -> torch.Tensor:
    r"""Empirical NTK :math:`K[a, b] = \sum_\theta \partial f(x_1^{(a)})/\partial\theta\;
    \partial f(x_2^{(b)})/\partial\theta` at the model's current parameters.

    Parameters
    ----------
    model : a module with one scalar output per example: ``model(x: (n, ...))`` of shape ``(n,)``
        or ``(n, 1)``. All parameters that require grad enter the sum; buffers are held fixed.
    x1 : ``(n1, ...)``, x2 : ``(n2, ...)`` floating inputs (no NaN/inf, at least one example).
    method : ``"jacobian"`` forms both per-example Jacobians with ``torch.func.vmap(jacrev)`` and
        multiplies them; ``"jvp"`` never forms a Jacobian: for each basis vector ``e_b`` it pulls
        back with ``vjp`` through ``f(x2)`` and pushes forward with ``jvp`` through ``f(x1)``
        (the NTK-vector-product recipe of the ``torch.func`` tutorial). Same result to round-off.

    Returns
    -------
    torch.Tensor
        ``(n1, n2)`` in the parameters' dtype, without autograd graph.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module`` or an input is not a floating tensor.
    ValueError
        If an input is empty or contains NaN/inf, the model has no trainable parameter, its output is
        not one scalar per example, or ``method`` is unknown.

    Source: https://kexue.fm/archives/8009, eq. (5); Jacot, Gabriel & Hongler (2018).
    """
    if method not in NTK_METHODS:
        raise ValueError(f"method must be one of {NTK_METHODS}, got {method!r}")
    params, buffers = _split_params(model)
    _check_x(x1, "x1")
    _check_x(x2, "x2")
    f = _scalar_fn(model, buffers)
    if method == "jacobian":
        return (_flat_jacobian(f, params, x1) @ _flat_jacobian(f, params, x2).T).detach()
    f(params, x1)  # shape check outside the transforms
    f(params, x2)
    _, vjp_fn = vjp(lambda p: f(p, x2), params)

    def column(e):  # K e = J1 (J2^T e)
        (cotangent,) = vjp_fn(e)
        return jvp(lambda p: f(p, x1), (params,), (cotangent,))[1]

    basis = torch.eye(x2.shape[0], dtype=next(iter(params.values())).dtype, device=x2.device)
    return vmap(column)(basis).T.detach()  # (n2, n1) -> (n1, n2)


@dataclass
class PathKernelResult:
    """What :func:`path_kernel_gd` returns (``m`` test points, ``n`` training points).

    Attributes
    ----------
    f0 : ``(m,)`` test outputs at the start, ``beta(x)``.
    fT : ``(m,)`` test outputs after the last step.
    euler : ``(m,)`` ``f0 + sum_k J_test(theta_k) (theta_{k+1} - theta_k)`` (rectangle rule).
    trapezoid : ``(m,)`` ``f0 + sum_k (J_test(theta_k) + J_test(theta_{k+1}))/2 (theta_{k+1} - theta_k)``.
    K_path : ``(m, n)`` path kernel ``sum_k lr * K_{theta_k}(x, x_i)`` (rectangle rule, time step ``lr``).
    alpha_bar : ``(m, n)`` ``sum_k lr * alpha_{k,i} K_{theta_k}(x, x_i) / K_path`` (kernel-weighted mean of
        ``alpha_i = -dL/df(x_i)`` along the path; depends on ``x``).
    time : ``lr * steps``, the gradient-flow time ``T`` covered.
    losses : ``(steps + 1,)`` training loss before each step and after the last.
    model : the trained copy of the model (the input model is not modified).
    """

    f0: torch.Tensor
    fT: torch.Tensor
    euler: torch.Tensor
    trapezoid: torch.Tensor
    K_path: torch.Tensor
    alpha_bar: torch.Tensor
    time: float
    losses: torch.Tensor
    model: nn.Module

    def kernel_machine(self) -> torch.Tensor:
        r"""``beta(x) + sum_i alpha_bar_i(x) K(x, x_i)``: ``(m,)``, the kernel-machine form of
        :attr:`euler` (equal to it up to round-off)."""
        return self.f0 + (self.alpha_bar * self.K_path).sum(dim=1)


def path_kernel_gd(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    lr: float,
    steps: int,
) -> PathKernelResult:
    r"""Full-batch gradient descent on ``loss_fn(f(x_train), y_train)``, accumulating the path kernel.

    At each step ``k`` (parameters ``theta_k``) we take the per-example Jacobians ``J_test (m, P)``
    and ``J_train (n, P)``, the NTK ``K_k = J_test J_train^T`` and ``alpha_k = -dL/df(x_train)``,
    then one ``torch.optim.SGD`` step (no momentum) to ``theta_{k+1}``. Gradient descent is
    ``theta_{k+1} - theta_k = lr * J_train^T alpha_k``, so ``J_test (theta_{k+1} - theta_k)
    = lr * K_k alpha_k``: the rectangle-rule sum reproduces ``f_T`` up to an ``O(lr)`` error, the
    trapezoid rule up to ``O(lr^2)``; both are exact as ``lr -> 0`` (gradient flow).

    Parameters
    ----------
    model : module with one scalar output per example (see :func:`empirical_ntk`); not modified.
    loss_fn : ``loss_fn(f_train: (n,), y_train) -> 0-dim tensor`` (e.g. a mean BCE with logits).
        With a mean loss ``alpha_i`` carries the factor ``1/n``.
    x_train : ``(n, ...)``; y_train : targets passed to ``loss_fn``; x_test : ``(m, ...)``.
    lr : learning rate ``> 0`` (also the time step). steps : number of steps ``>= 1``.

    Returns
    -------
    PathKernelResult

    Raises
    ------
    TypeError
        If ``loss_fn`` is not callable, or as :func:`empirical_ntk`.
    ValueError
        For bad ``lr``/``steps``, bad inputs, a non-scalar loss or a non-finite loss during training.

    Source: https://kexue.fm/archives/8009, eq. (6)-(9).
    """
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable")
    lr = check_positive_real(lr, "lr")
    steps = check_positive_int(steps, "steps")
    _check_x(x_train, "x_train")
    _check_x(x_test, "x_test")
    if not isinstance(y_train, torch.Tensor) or y_train.shape[:1] != x_train.shape[:1]:
        raise ValueError("y_train must be a tensor with one entry per row of x_train")
    net = copy.deepcopy(model)
    names = [k for k, v in net.named_parameters() if v.requires_grad]
    if not names:
        raise ValueError("model has no parameter that requires grad")
    live = dict(net.named_parameters())
    buffers = {k: v.detach() for k, v in net.named_buffers()}
    f = _scalar_fn(net, buffers)
    opt = torch.optim.SGD([live[k] for k in names], lr=lr)

    def snapshot():
        return {k: live[k].detach().clone() for k in names}

    def flat(p):
        return torch.cat([p[k].reshape(-1) for k in names])

    theta = snapshot()
    with torch.no_grad():
        f0 = f(theta, x_test).clone()
    j_test = _flat_jacobian(f, theta, x_test)
    m, n = x_test.shape[0], x_train.shape[0]
    dtype = j_test.dtype
    euler = torch.zeros(m, dtype=dtype)
    trap = torch.zeros(m, dtype=dtype)
    k_path = torch.zeros(m, n, dtype=dtype)
    weighted = torch.zeros(m, n, dtype=dtype)
    losses = []
    for _ in range(steps):
        j_train = _flat_jacobian(f, theta, x_train)
        out = net(x_train)
        out = out[:, 0] if out.dim() == 2 else out
        loss = loss_fn(out, y_train)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a 0-dim tensor, got shape {tuple(loss.shape)}")
        if not torch.isfinite(loss):
            raise ValueError(f"loss became non-finite ({loss.item()}); lower lr")
        losses.append(loss.item())
        (dl_df,) = torch.autograd.grad(loss, out, retain_graph=True)
        alpha = -dl_df.detach()  # alpha_i = -dL/df(x_i)
        kern = j_test @ j_train.T  # K_{theta_k}(x, x_i): (m, n)
        k_path += lr * kern
        weighted += lr * kern * alpha[None, :]
        opt.zero_grad()
        loss.backward()
        opt.step()
        new_theta = snapshot()
        delta = flat(new_theta) - flat(theta)  # theta_{k+1} - theta_k, from the optimiser itself
        j_next = _flat_jacobian(f, new_theta, x_test)
        euler += j_test @ delta
        trap += 0.5 * (j_test + j_next) @ delta
        theta, j_test = new_theta, j_next
    with torch.no_grad():
        f_t = f(theta, x_test)
        out = net(x_train)
        losses.append(loss_fn(out[:, 0] if out.dim() == 2 else out, y_train).item())
    return PathKernelResult(
        f0=f0, fT=f_t.detach(), euler=f0 + euler, trapezoid=f0 + trap, K_path=k_path,
        alpha_bar=weighted / k_path, time=lr * steps, losses=torch.tensor(losses, dtype=dtype), model=net,
    )
