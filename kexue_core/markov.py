"""Markov chains and hidden Markov models over tokens: sampling and the exact conditionals
:math:`p(x_i \\mid x_{\\setminus i})` (the optimum of every masked-language-model objective on data
from the model), by the forward-backward algorithm.

Symbols: ``K`` hidden states, ``V`` symbols, ``B`` sequences, ``n`` positions. ``init: (K,)``,
``trans: (K, K)`` with ``trans[a, b] = p(z_{t+1} = b | z_t = a)``, ``emit: (K, V)`` with
``emit[a, v] = p(x_t = v | z_t = a)``. A first-order Markov chain over tokens is the HMM with
``K = V`` and ``emit = I``.
"""
from __future__ import annotations

import torch

from ._validation import check_positive_int, check_tensor

__all__ = ["sample_hmm", "hmm_token_conditionals", "markov_chain_token_conditionals"]


def _check_stochastic(p: torch.Tensor, name: str, dim: int) -> torch.Tensor:
    check_tensor(p, name, min_dim=dim)
    if p.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(p.shape)}")
    if (p < 0).any():
        raise ValueError(f"{name} has negative entries")
    if not torch.allclose(p.sum(-1), torch.ones((), dtype=p.dtype), atol=1e-6):
        raise ValueError(f"{name} rows must sum to 1")
    return p


def _check_hmm(init, trans, emit):
    _check_stochastic(init, "init", 1)
    _check_stochastic(trans, "trans", 2)
    _check_stochastic(emit, "emit", 2)
    k = init.shape[0]
    if trans.shape != (k, k) or emit.shape[0] != k:
        raise ValueError(f"need trans (K, K) and emit (K, V) with K = {k}, got {tuple(trans.shape)}, {tuple(emit.shape)}")


def sample_hmm(init, trans, emit, *, n_seq: int, length: int, generator: torch.Generator | None = None):
    """Sample ``n_seq`` sequences of ``length`` tokens. Returns ``(tokens, states)``, both LongTensor
    ``(n_seq, length)``. Raises ``ValueError`` for non-stochastic or mismatched matrices, NaN, or
    non-positive sizes. Source: Rabiner (1989)."""
    _check_hmm(init, trans, emit)
    n_seq, length = check_positive_int(n_seq, "n_seq"), check_positive_int(length, "length")
    z = torch.multinomial(init.expand(n_seq, -1), 1, generator=generator).squeeze(-1)  # (B,)
    states = [z]
    for _ in range(length - 1):
        z = torch.multinomial(trans[z], 1, generator=generator).squeeze(-1)
        states.append(z)
    states = torch.stack(states, dim=1)  # (B, n)
    tokens = torch.multinomial(emit[states.reshape(-1)], 1, generator=generator).reshape(n_seq, length)
    return tokens, states


def hmm_token_conditionals(tokens: torch.Tensor, init, trans, emit) -> torch.Tensor:
    r"""Exact :math:`p(x_i = v \mid x_{\setminus i})` for every position ``i`` and symbol ``v``.

    With forward messages :math:`\alpha_{i}(a) \propto p(x_{1..i}, z_i = a)` and backward messages
    :math:`\beta_i(a) = p(x_{i+1..n} \mid z_i = a)` (scaled; the scale cancels),

    .. math:: p(x_i = v \mid x_{\setminus i}) \propto \sum_a \Big[\sum_{a'} \alpha_{i-1}(a')\,
              T_{a'a}\Big]\, E_{a v}\, \beta_i(a), \qquad \alpha_0 T := \pi .

    tokens : LongTensor (B, n), ids in ``[0, V)``. Returns float (B, n, V) (dtype of ``emit``), each
    row summing to 1. Raises ``ValueError``/``TypeError`` for bad matrices or tokens.
    Source: Rabiner (1989), forward-backward; used as the MLM optimum in the chapter on
    https://kexue.fm/archives/7661.
    """
    _check_hmm(init, trans, emit)
    if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.dim() != 2:
        raise TypeError("tokens must be an integer tensor of shape (B, n)")
    v_size = emit.shape[1]
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= v_size):
        raise ValueError(f"token ids must lie in [0, {v_size})")
    b, n = tokens.shape
    lik = emit[:, tokens].permute(1, 2, 0)  # (B, n, K): E[a, x_t]
    # forward: pred[t] = p(z_t | x_{<t}) (normalised), alpha[t] = p(z_t | x_{<=t})
    pred = [init.expand(b, -1)]
    alpha = []
    for t in range(n):
        a = pred[t] * lik[:, t]
        a = a / a.sum(-1, keepdim=True)
        alpha.append(a)
        if t + 1 < n:
            pred.append(a @ trans)
    # backward: beta[t](a) ∝ p(x_{>t} | z_t = a)
    beta = [None] * n
    beta[n - 1] = torch.ones_like(pred[0])
    for t in range(n - 2, -1, -1):
        bt = (trans @ (lik[:, t + 1] * beta[t + 1]).unsqueeze(-1)).squeeze(-1)
        beta[t] = bt / bt.sum(-1, keepdim=True)
    pred_t = torch.stack(pred, 1)  # (B, n, K)
    beta_t = torch.stack(beta, 1)  # (B, n, K)
    scores = (pred_t * beta_t) @ emit  # (B, n, V): sum_a pred(a) beta(a) E[a, v]
    return scores / scores.sum(-1, keepdim=True)


def markov_chain_token_conditionals(tokens: torch.Tensor, init, trans) -> torch.Tensor:
    r"""Exact :math:`p(x_i = v \mid x_{\setminus i})` for a first-order Markov chain:
    :math:`\propto T_{x_{i-1} v}\, T_{v x_{i+1}}` (with :math:`\pi_v` for ``i = 1`` and no right
    factor for ``i = n``). tokens : LongTensor (B, n); returns (B, n, V). Same errors as
    :func:`hmm_token_conditionals`. Source: the Markov property; post https://kexue.fm/archives/7661."""
    _check_stochastic(init, "init", 1)
    _check_stochastic(trans, "trans", 2)
    if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.dim() != 2:
        raise TypeError("tokens must be an integer tensor of shape (B, n)")
    b, n = tokens.shape
    left = torch.cat([init.expand(b, 1, -1), trans[tokens[:, :-1]]], dim=1)  # (B, n, V): p(v | x_{i-1})
    right = torch.cat([trans[:, tokens[:, 1:]].permute(1, 2, 0), torch.ones_like(left[:, :1])], dim=1)  # T[v, x_{i+1}]
    s = left * right
    return s / s.sum(-1, keepdim=True)
