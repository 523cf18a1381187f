r"""Markov chain Monte Carlo on finite state spaces and simulated annealing.

Conventions (row-stochastic, as in most textbooks): a kernel ``P`` of shape ``(S, S)`` has
``P[x, y]`` = probability of moving from state ``x`` to state ``y``; rows sum to 1. A distribution
``p`` of shape ``(S,)`` is stationary when ``p @ P == p``. The post https://kexue.fm/archives/8084
writes the same kernel as :math:`p(y\leftarrow x)`, i.e. ``P[x, y]``, and a proposal
:math:`q(y\leftarrow x)` as ``Q[x, y]``.

Source: Su Jianlin, "【搜出来的文本】⋅（二）从MCMC到模拟退火", https://kexue.fm/archives/8084
(2021-01-14); Metropolis et al. (1953); Hastings (1970).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ._validation import check_positive_int, check_tensor

__all__ = [
    "metropolis_hastings_kernel",
    "stationary_distribution",
    "total_variation",
    "spectral_gap",
    "sample_markov_chain",
    "gibbs_sampler",
    "simulated_annealing",
    "hill_climbing",
]

def _check_distribution(p, name: str) -> torch.Tensor:
    check_tensor(p, name, min_dim=1)
    if p.dim() != 1:
        raise ValueError(f"{name} must be a 1-D distribution of shape (S,), got shape {tuple(p.shape)}")
    if (p < 0).any():
        raise ValueError(f"{name} must be a distribution: it has negative entries")
    tol = 1e-9 if p.dtype == torch.float64 else 1e-5
    if abs(float(p.sum()) - 1.0) > tol:
        raise ValueError(f"{name} must be a distribution: entries sum to {float(p.sum())!r}, not 1")
    return p


def _check_kernel(Q, name: str, size: int | None = None) -> torch.Tensor:
    check_tensor(Q, name, min_dim=2)
    if Q.dim() != 2 or Q.shape[0] != Q.shape[1]:
        raise ValueError(f"{name} must be a square (S, S) matrix, got shape {tuple(Q.shape)}")
    if size is not None and Q.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size}, {size}) to match p, got {tuple(Q.shape)}")
    if (Q < 0).any():
        raise ValueError(f"{name} must be row-stochastic: it has negative entries")
    tol = 1e-9 if Q.dtype == torch.float64 else 1e-5
    if not torch.allclose(Q.sum(1), torch.ones((), dtype=Q.dtype), atol=tol, rtol=0):
        raise ValueError(f"{name} must be row-stochastic: its rows must sum to 1")
    return Q


def metropolis_hastings_kernel(p: torch.Tensor, Q: torch.Tensor, *, acceptance: str = "mh") -> torch.Tensor:
    r"""The exact transition matrix of a Metropolis–Hastings chain for target ``p`` and proposal ``Q``.

    Off the diagonal ``P[x, y] = Q[x, y] * A(x -> y)``; the rejected mass
    :math:`1-\sum_{y\ne x}P[x,y]` stays on the diagonal (the post's eq. "diagonal completion").

    Parameters
    ----------
    p : Tensor (S,), floating
        Target distribution (non-negative, sums to 1).
    Q : Tensor (S, S), floating, same dtype
        Proposal, row-stochastic: ``Q[x, y]`` = probability of proposing ``y`` from ``x``.
    acceptance : {"mh", "raw"}
        ``"mh"``: the Hastings ratio :math:`\min\bigl(1, p(y)Q[y,x] / (p(x)Q[x,y])\bigr)`
        (needs ``p`` only up to a constant). ``"raw"``: the post's first acceptance
        :math:`\alpha(y\leftarrow x)=q(x\leftarrow y)p(y)` = ``Q[y, x] * p[y]``, a probability only because
        ``p`` and ``Q`` are normalised (post 8084, step 3 of its "Metropolis sampling").

    Returns
    -------
    Tensor (S, S), dtype of ``p``: row-stochastic, in detailed balance with ``p``.

    Raises
    ------
    TypeError
        If ``p`` or ``Q`` is not a floating tensor.
    ValueError
        If ``p`` is not a distribution, ``Q`` has a negative entry, rows not summing to 1 or the
        wrong shape, or ``acceptance`` is unknown.
    """
    _check_distribution(p, "p")
    _check_kernel(Q, "Q", p.shape[0])
    if acceptance not in ("mh", "raw"):
        raise ValueError(f"acceptance must be 'mh' or 'raw', got {acceptance!r}")
    Q = Q.to(p.dtype)
    forward = p[:, None] * Q  # p(x) Q[x, y]
    backward = forward.T  # p(y) Q[y, x]
    if acceptance == "mh":
        ratio = backward / forward
        acc = torch.where(forward > 0, torch.clamp(ratio, max=1.0), torch.ones_like(forward))
    else:
        acc = Q.T * p[None, :]  # Q[y, x] p(y)
    off = Q * acc
    off = off - torch.diag(torch.diagonal(off))
    return off + torch.diag(1.0 - off.sum(1))


def stationary_distribution(P: torch.Tensor) -> torch.Tensor:
    r"""The stationary distribution :math:`\pi` of a row-stochastic ``P`` (:math:`\pi P=\pi`,
    :math:`\sum\pi=1`), by least squares on the stacked system :math:`[(P^\top-I); \mathbf 1^\top]\pi=e`.

    Parameters
    ----------
    P : Tensor (S, S), floating, row-stochastic and irreducible (unique stationary distribution).

    Returns
    -------
    Tensor (S,), dtype of ``P``.

    Raises
    ------
    TypeError, ValueError
        If ``P`` is not a floating, square, row-stochastic matrix.
    """
    _check_kernel(P, "P")
    s = P.shape[0]
    a = torch.cat([P.T - torch.eye(s, dtype=P.dtype), torch.ones(1, s, dtype=P.dtype)], 0)
    b = torch.zeros(s + 1, 1, dtype=P.dtype)
    b[-1] = 1.0
    return torch.linalg.lstsq(a, b, driver="gelsd" if P.device.type == "cpu" else None).solution[:, 0]


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Total-variation distance :math:`\tfrac12\sum_x|p(x)-q(x)|` over the last dim (broadcast over
    leading dims). Raises ``ValueError`` if the last dims differ, ``TypeError`` if not floating."""
    check_tensor(p, "p", min_dim=1)
    check_tensor(q, "q", min_dim=1)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p and q must share the last dim, got {tuple(p.shape)} and {tuple(q.shape)}")
    return 0.5 * (p - q).abs().sum(-1)


def spectral_gap(P: torch.Tensor) -> torch.Tensor:
    r"""Absolute spectral gap :math:`1-|\lambda_2|` of a row-stochastic ``P`` (``|λ_2|`` the second
    largest eigenvalue modulus): the rate at which :math:`\|p^{(t)}-\pi\|` decays.
    Raises ``ValueError``/``TypeError`` if ``P`` is not row-stochastic."""
    _check_kernel(P, "P")
    mods = torch.linalg.eigvals(P).abs().sort(descending=True).values
    return 1.0 - mods[1]


def sample_markov_chain(P: torch.Tensor, x0: torch.Tensor, steps: int, *, generator: torch.Generator | None = None):
    """Run ``C`` independent chains with kernel ``P`` for ``steps`` steps.

    Parameters
    ----------
    P : Tensor (S, S), row-stochastic.
    x0 : LongTensor (C,), start states in ``[0, S)``.
    steps : int >= 1.
    generator : torch.Generator, optional.

    Returns
    -------
    LongTensor (steps, C): the states after steps 1..steps (rejections repeat the current state).

    Raises
    ------
    TypeError, ValueError
        For a bad ``P``, a non-integer ``x0`` or states out of range, ``steps < 1``.
    """
    _check_kernel(P, "P")
    steps = check_positive_int(steps, "steps")
    if not isinstance(x0, torch.Tensor) or x0.is_floating_point() or x0.dim() != 1:
        raise TypeError("x0 must be an integer tensor of shape (C,)")
    if x0.numel() and (x0.min() < 0 or x0.max() >= P.shape[0]):
        raise ValueError(f"x0 must hold states in [0, {P.shape[0]})")
    cdf = P.cumsum(1)
    cdf[:, -1] = 1.0
    x = x0.clone()
    out = torch.empty(steps, x.numel(), dtype=torch.long)
    for t in range(steps):
        u = torch.rand(x.numel(), 1, dtype=P.dtype, generator=generator)
        x = torch.searchsorted(cdf[x], u).squeeze(1).clamp_(max=P.shape[0] - 1)
        out[t] = x
    return out


def gibbs_sampler(
    log_joint: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    vocab_size: int,
    steps: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Random-scan Gibbs sampling of ``C`` sequences over a finite vocabulary.

    Each step picks a position :math:`i` uniformly per chain and resamples it from
    :math:`p(y\mid x_{-i})\propto p(x_{[x_i=y]})`, computed by calling ``log_joint`` on all
    ``vocab_size`` replacements (post 8084, "Gibbs sampling": MH with acceptance exactly 1).

    Parameters
    ----------
    log_joint : callable, LongTensor (M, l) -> Tensor (M,), unnormalised log-probability.
    x0 : LongTensor (C, l), ids in ``[0, vocab_size)``.
    vocab_size : int >= 1.
    steps : int >= 1 (single-site updates; ``l`` steps make one sweep).
    generator : torch.Generator, optional.

    Returns
    -------
    LongTensor (steps, C, l): the state after every step.

    Raises
    ------
    TypeError, ValueError
        For a non-integer or non-2-D ``x0``, ids out of range, bad sizes, or a ``log_joint`` that
        does not return shape (M,).
    """
    vocab_size = check_positive_int(vocab_size, "vocab_size")
    steps = check_positive_int(steps, "steps")
    if not isinstance(x0, torch.Tensor) or x0.is_floating_point() or x0.dim() != 2:
        raise TypeError("x0 must be an integer tensor of shape (C, l)")
    if x0.numel() and (x0.min() < 0 or x0.max() >= vocab_size):
        raise ValueError(f"x0 must hold ids in [0, {vocab_size})")
    c, l = x0.shape
    x = x0.clone()
    rows = torch.arange(c)
    cand_vals = torch.arange(vocab_size)
    out = torch.empty(steps, c, l, dtype=torch.long)
    for t in range(steps):
        i = torch.randint(l, (c,), generator=generator)
        cand = x[:, None, :].expand(c, vocab_size, l).clone()  # (C, V, l)
        cand[rows, :, i] = cand_vals
        lp = log_joint(cand.reshape(c * vocab_size, l))
        if lp.shape != (c * vocab_size,):
            raise ValueError(f"log_joint must return shape ({c * vocab_size},), got {tuple(lp.shape)}")
        y = torch.multinomial(torch.softmax(lp.reshape(c, vocab_size), -1), 1, generator=generator).squeeze(1)
        x[rows, i] = y
        out[t] = x
    return out


def simulated_annealing(
    objective: Callable[[torch.Tensor], torch.Tensor],
    neighbour: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor],
    x0: torch.Tensor,
    *,
    schedule: Callable[[int], float],
    steps: int,
    generator: torch.Generator | None = None,
):
    r"""Simulated annealing, maximising ``objective``, for ``C`` independent runs at once.

    Step :math:`t` proposes :math:`y` = ``neighbour(x, generator)`` (a symmetric proposal) and accepts
    with probability :math:`\min\bigl(1, e^{[f(y)-f(x)]/\tau_t}\bigr)`, :math:`\tau_t` = ``schedule(t)``:
    Metropolis–Hastings for :math:`p_\tau\propto e^{f/\tau}` (post 8084, "simulated annealing").
    :math:`\tau_t=0` accepts iff :math:`f(y)\ge f(x)` (hill climbing).

    Parameters
    ----------
    objective : callable, Tensor (C, ...) -> Tensor (C,) floating.
    neighbour : callable, (Tensor (C, ...), generator) -> Tensor (C, ...).
    x0 : Tensor (C, ...), the starts.
    schedule : callable, int -> float >= 0, the temperature at step t = 0..steps-1.
    steps : int >= 1.
    generator : torch.Generator, optional (also passed to ``neighbour``).

    Returns
    -------
    best_x : Tensor (C, ...), the best state each run visited.
    best_value : Tensor (C,), its objective.
    trace : Tensor (steps, C), the objective of the current state after each step.

    Raises
    ------
    TypeError, ValueError
        If ``x0`` is not a tensor of at least 1 dim, ``steps < 1``, a temperature is negative or not
        finite, or ``objective`` does not return shape (C,).
    """
    if not isinstance(x0, torch.Tensor) or x0.dim() < 1:
        raise TypeError("x0 must be a tensor of shape (C, ...)")
    steps = check_positive_int(steps, "steps")
    if not callable(schedule):
        raise TypeError("schedule must be a callable t -> temperature")
    x = x0.clone()
    fx = objective(x)
    if fx.shape != (x.shape[0],):
        raise ValueError(f"objective must return shape ({x.shape[0]},), got {tuple(fx.shape)}")
    best_x, best_v = x.clone(), fx.clone()
    trace = torch.empty(steps, x.shape[0], dtype=fx.dtype)
    for t in range(steps):
        tau = float(schedule(t))
        if not (tau >= 0 and tau < float("inf")):
            raise ValueError(f"schedule({t}) must be a finite temperature >= 0, got {tau}")
        y = neighbour(x, generator)
        fy = objective(y)
        delta = fy - fx
        if tau == 0:
            accept = delta >= 0
        else:
            u = torch.rand(fx.shape, dtype=fx.dtype, generator=generator)
            accept = torch.log(u) <= delta / tau
        mask = accept.reshape((-1,) + (1,) * (x.dim() - 1))
        x = torch.where(mask, y, x)
        fx = torch.where(accept, fy, fx)
        better = fx > best_v
        best_x = torch.where(better.reshape(mask.shape), x, best_x)
        best_v = torch.where(better, fx, best_v)
        trace[t] = fx
    return best_x, best_v, trace


def hill_climbing(objective, neighbour, x0, *, steps: int, generator: torch.Generator | None = None):
    """:func:`simulated_annealing` at temperature 0: accept a proposal iff it does not lower the
    objective (post 8084's "hill climbing"). Same arguments, returns and errors."""
    return simulated_annealing(objective, neighbour, x0, schedule=lambda t: 0.0, steps=steps, generator=generator)
