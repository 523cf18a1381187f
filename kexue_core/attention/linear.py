"""Linear attention: attention without the softmax, in O(n) time.

Post 7546 ("Exploring linear attention: must attention have a softmax?") writes attention as a
weighted average with a non-negative similarity,

.. math:: \\mathrm{out}_i = \\frac{\\sum_j \\mathrm{sim}(q_i, k_j)\\, v_j}{\\sum_j \\mathrm{sim}(q_i, k_j)},

and notes that when :math:`\\mathrm{sim}(q, k) = \\phi(q)^\\top \\varphi(k)` the sums factor through the
``D x dv`` matrix :math:`\\sum_j \\varphi(k_j) v_j^\\top`, so the cost is linear in the length ``n``.

Shapes follow the package convention: ``q: (..., n, d)``, ``k: (..., m, d)``, ``v: (..., m, dv)`` with
batch and head dimensions leading. Feature maps act on the last axis and return ``(..., n, D)``.

Feature maps accepted by the ``feature_map`` argument:

``"elu+1"``
    :math:`\\phi = \\varphi = \\mathrm{elu}(x) + 1` (Katharopoulos et al. 2020), :func:`elu_feature_map`.
``"softmax"``
    Efficient Attention (Shen et al.): :math:`\\phi(q_i) = \\mathrm{softmax}(q_i)` over the ``d`` axis
    and :math:`\\varphi(K) = \\mathrm{softmax}_1(K)`, the softmax of each key *column* over the
    sequence axis. With this pair the denominator is exactly 1 (each row of
    :math:`\\mathrm{softmax}_2(Q)\\,\\mathrm{softmax}_1(K)^\\top` sums to 1), so the result equals
    :func:`efficient_attention` up to the ``1/(1 + eps)`` factor. The post's own reading,
    :math:`\\varphi(k_j) = e^{k_j}` per key, is *not* equal to Efficient Attention (see the chapter).
    Because :math:`\\mathrm{softmax}_1(K)` depends on every key, this map is non-causal (its key map
    has ``position_wise = False``) and :func:`causal_linear_attention` rejects it; with a
    ``key_padding_mask`` the padded keys are left out of the column softmax.
``"1+qk"``
    The post's own proposal :math:`\\mathrm{sim} = 1 + \\hat q^\\top \\hat k` with
    :math:`\\hat x = x/\\Vert x\\Vert`, written as a kernel with :func:`cosine_feature_map`
    :math:`\\phi(x) = [1, \\hat x] \\in \\mathbb{R}^{d+1}`, so that :math:`\\phi(q)^\\top\\phi(k) = 1 + \\hat q^\\top\\hat k`
    (the post does not spell this factorisation out; it is exact). It is a *signed* factorisation:
    :math:`\\hat x` has negative entries, so :math:`[1, \\hat x]` is not a non-negative feature map,
    although every similarity :math:`1 + \\hat q^\\top\\hat k \\ge 0` is; the cost is still linear.
a callable ``f``
    Used for both queries and keys: ``f(x: (..., n, d)) -> (..., n, D)``, such that the similarities
    :math:`\\phi(q)^\\top\\varphi(k)` are non-negative (the post's requirement; non-negative features
    are the simple way to get it, but not the only one: see ``"1+qk"``). A map that mixes positions (such
    as the softmax over the sequence axis) must carry the attribute ``position_wise = False`` and
    accept ``key_padding_mask=``; :func:`causal_linear_attention` rejects it.
a pair ``(phi, varphi)``
    Different maps for queries and keys (the post's :math:`\\phi \\neq \\varphi`).

Half precision: :func:`linear_attention` and :func:`causal_linear_attention` compute in float32
when given float16 or bfloat16 inputs (the unnormalised sums of ~1000 features pass float16's
65504) and return the input dtype.

Padding: ``key_padding_mask`` (``(..., m)`` bool, ``True`` = a real key) gives padded keys zero
features, so they enter neither the numerator nor the denominator.

Source: https://kexue.fm/archives/7546, eqs. for the general form, the kernel form and the causal
recurrence.
"""
from __future__ import annotations

import math
from typing import Callable, Tuple, Union

import torch
import torch.nn.functional as F

from .._validation import (
    check_key_padding_mask,
    check_positive_int,
    check_positive_real,
    check_qkv,
    check_result_no_nan,
    check_tensor,
    values_checkable,
)

__all__ = [
    "elu_feature_map",
    "softmax_feature_map",
    "cosine_feature_map",
    "resolve_feature_maps",
    "general_attention",
    "linear_attention",
    "causal_linear_attention",
    "causal_linear_attention_recurrent",
    "efficient_attention",
    "linformer_attention",
]

FeatureMap = Union[str, Callable[[torch.Tensor], torch.Tensor], Tuple[Callable, Callable]]

#: Default chunk length of :func:`causal_linear_attention` (tuned on CPU for d = 64; see the chapter).
DEFAULT_CHUNK_SIZE = 64


# ----------------------------------------------------------------------------------------------
# feature maps
# ----------------------------------------------------------------------------------------------
def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    r"""The feature map :math:`\phi(x) = \mathrm{elu}(x) + 1` of Katharopoulos et al. (2020), elementwise.

    x : (..., n, d). Returns (..., n, d) of ``x``'s dtype with entries in [0, inf): ``x + 1`` for
    ``x > 0`` and ``exp(x)`` for ``x <= 0`` (``F.elu(x) + 1`` exactly, in value and gradient, also at
    ``x = 0`` where the gradient is 1; below ``x ~ -37`` in float64, ``-17`` in float32, the value
    rounds to 0 as ``e^x - 1 + 1`` does).

    Raises ``TypeError`` for a non-floating tensor, ``ValueError`` for NaN.
    Source: https://kexue.fm/archives/7546, kernel form; arXiv:2006.16236, eq. (7).
    """
    check_tensor(x, "x", min_dim=1)
    return _elu1(x)


def _elu1(x: torch.Tensor) -> torch.Tensor:
    # one ELU pass and an in-place +1 on its fresh output (ELU's backward keeps its input, not its
    # output, so the in-place add is safe for autograd and torch.func)
    return F.elu(x).add_(1.0)


elu_feature_map.position_wise = True


def softmax_feature_map(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Softmax along ``dim``: the feature maps of Efficient Attention.

    ``dim=-1`` (the ``d`` axis) gives the query map :math:`\mathrm{softmax}_2(Q)`; ``dim=-2`` (the
    sequence axis) gives the key map :math:`\mathrm{softmax}_1(K)`, whose columns each sum to 1.

    x : (..., n, d). Returns (..., n, d), entries in (0, 1).
    Raises ``TypeError``/``ValueError`` for non-floating or NaN input, ``ValueError`` for
    ``x.dim() < 2``. Source: https://kexue.fm/archives/7546, "Efficient Attention"; arXiv:1812.01243.
    """
    check_tensor(x, "x", min_dim=2)
    return torch.softmax(x, dim=dim)


def cosine_feature_map(x: torch.Tensor) -> torch.Tensor:
    r"""The feature map :math:`\phi(x) = [1,\ x/\Vert x\Vert] \in \mathbb{R}^{d+1}` of the post's proposal.

    For any two non-zero vectors :math:`\phi(q)^\top\phi(k) = 1 + \hat q^\top \hat k \in [0, 2]`, the
    similarity :math:`1 + \cos(q, k)` the post obtains from :math:`e^{x} \approx 1 + x`. A zero vector
    maps to ``[1, 0, ..., 0]`` (similarity 1 with everything). The features themselves are signed
    (:math:`\hat x` has negative entries): a signed factorisation of a non-negative similarity, which
    keeps the linear cost but is not a non-negative feature map.

    x : (..., n, d). Returns (..., n, d + 1).
    Raises ``TypeError``/``ValueError`` for non-floating or NaN input.
    Source: https://kexue.fm/archives/7546, "my own idea" (the factorisation is ours).
    """
    check_tensor(x, "x", min_dim=1)
    xhat = F.normalize(x, dim=-1)  # x / max(||x||, 1e-12)
    ones = torch.ones_like(x[..., :1])
    return torch.cat([ones, xhat], dim=-1)


def _softmax_query_map(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)  # softmax_2(Q): over d, per position


def _softmax_key_map(x: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    # softmax_1(K): over the sequence axis, padded keys left out of the normalisation (and given 0)
    if key_padding_mask is None:
        return torch.softmax(x, dim=-2)
    keep = key_padding_mask.unsqueeze(-1)  # (..., m, 1)
    return torch.softmax(x.masked_fill(~keep, float("-inf")), dim=-2).masked_fill(~keep, 0.0)


_softmax_query_map.position_wise = True
_softmax_key_map.position_wise = False  # mixes positions: not causal, needs the padding mask
cosine_feature_map.position_wise = True


def resolve_feature_maps(feature_map: FeatureMap) -> tuple[Callable, Callable]:
    """Turn a ``feature_map`` argument into the pair ``(phi, varphi)`` for queries and keys.

    feature_map : ``"elu+1"``, ``"softmax"``, ``"1+qk"``, a callable (used for both), or a pair of
        callables. See the module docstring for what each name means.

    Returns ``(phi, varphi)``, callables ``(..., n, d) -> (..., n, D)``. The key map of ``"softmax"``
    has ``position_wise = False`` (it normalises over the sequence axis) and takes
    ``key_padding_mask=``; :func:`causal_linear_attention` rejects any map so marked.
    Raises ``ValueError`` for an unknown name, ``TypeError`` for anything else that is not callable.
    Source: https://kexue.fm/archives/7546.
    """
    if isinstance(feature_map, str):
        if feature_map == "elu+1":
            return elu_feature_map, elu_feature_map
        if feature_map == "softmax":
            return _softmax_query_map, _softmax_key_map
        if feature_map == "1+qk":
            return cosine_feature_map, cosine_feature_map
        raise ValueError(f"unknown feature_map {feature_map!r}; use 'elu+1', 'softmax', '1+qk' or a callable")
    if isinstance(feature_map, tuple):
        if len(feature_map) != 2 or not all(callable(f) for f in feature_map):
            raise TypeError("a feature_map pair must be two callables (phi for queries, varphi for keys)")
        return feature_map[0], feature_map[1]
    if callable(feature_map):
        return feature_map, feature_map
    raise TypeError(f"feature_map must be a string, a callable or a pair of callables, got {type(feature_map).__name__}")


def _apply(f: Callable, x: torch.Tensor, key_padding_mask=None) -> torch.Tensor:
    """Features of ``x`` (already validated); our own elu map without a second validation."""
    if f is elu_feature_map:
        return _elu1(x)
    if f is cosine_feature_map:
        return torch.cat([torch.ones_like(x[..., :1]), F.normalize(x, dim=-1)], dim=-1)
    if key_padding_mask is not None and getattr(f, "position_wise", True) is False:
        return f(x, key_padding_mask=key_padding_mask)
    return f(x)


def _features(q, k, feature_map, key_padding_mask=None, *, causal: bool = False):
    phi, varphi = resolve_feature_maps(feature_map)
    if causal:
        for name, f in (("phi", phi), ("varphi", varphi)):
            if getattr(f, "position_wise", True) is False:
                raise ValueError(
                    f"the {name} feature map mixes positions (position_wise = False; e.g. the key map of "
                    "'softmax', which normalises over the whole sequence), so causal attention would see "
                    "future keys; use 'elu+1', '1+qk' or a per-position callable")
    fq, fk = _apply(phi, q), _apply(varphi, k, key_padding_mask)
    for name, f, x in (("phi(q)", fq, q), ("varphi(k)", fk, k)):
        if not isinstance(f, torch.Tensor) or f.shape[:-1] != x.shape[:-1]:
            raise ValueError(f"{name} must be a tensor of shape (..., n, D) matching the input's leading dims")
    if fq.shape[-1] != fk.shape[-1]:
        raise ValueError(f"phi(q) and varphi(k) must have the same feature size, got {fq.shape[-1]} and {fk.shape[-1]}")
    if causal and values_checkable(q, k):
        # by property: a causal-safe map gives position 0 the same feature whether or not the later
        # positions are present (one extra map of one position per argument; exact for elementwise maps)
        for name, f, x, fx in (("phi", phi, q, fq), ("varphi", varphi, k, fk)):
            if getattr(f, "position_wise", None) is True:
                continue
            first = f(x[..., :1, :])
            if not torch.allclose(first.to(fx.dtype), fx[..., :1, :], rtol=1e-4, atol=1e-6 * float(fx[..., :1, :].abs().max()) + 1e-30):
                raise ValueError(
                    f"the {name} feature map is not causal: the feature of position 0 changes when later "
                    "positions are removed (a map over the sequence axis, such as softmax(x, dim=-2), "
                    "would let outputs see future keys); use a per-position map")
    if key_padding_mask is not None:
        fk = fk.masked_fill(~key_padding_mask.unsqueeze(-1), 0.0)  # padded keys: zero features
    return fq, fk


_HALF = (torch.float16, torch.bfloat16)


def _upcast(*xs):
    """float16/bfloat16 -> float32 (sums of many features overflow or lose all digits in half)."""
    return tuple(x.float() if x.dtype in _HALF else x for x in xs)


# ----------------------------------------------------------------------------------------------
# the O(n^2) reference
# ----------------------------------------------------------------------------------------------
def general_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sim: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    causal: bool = False,
    eps: float = 0.0,
) -> torch.Tensor:
    r"""The post's general attention, evaluated the O(n²) way:
    :math:`\mathrm{out}_i = \sum_j \mathrm{sim}(q_i,k_j) v_j / (\sum_j \mathrm{sim}(q_i,k_j) + \varepsilon)`.

    Parameters
    ----------
    q : (..., n, d)
        Queries.
    k : (..., m, d)
        Keys.
    v : (..., m, dv)
        Values.
    sim : callable
        ``(q, k) -> (..., n, m)`` non-negative similarities, e.g.
        ``lambda q, k: torch.exp(q @ k.mT)`` (softmax attention without the scale).
    causal : bool
        If True, key ``j`` is visible to query ``i`` only when ``j <= i`` (needs ``n == m``).
    eps : float
        Added to the denominator (default 0; use the same ``eps`` as a linear form to compare).

    Returns
    -------
    (..., n, dv)
        Memory O(n·m).

    Raises
    ------
    ValueError
        Mismatched shapes, NaN input, a negative ``eps``, a ``sim`` that returns the wrong shape or
        negative values.
    TypeError
        Non-tensors.

    Source: https://kexue.fm/archives/7546, the general definition (eq. gen-att).
    """
    check_qkv(q, k, v, causal=causal)
    eps = check_positive_real(eps, "eps", allow_zero=True)
    w = sim(q, k)  # (..., n, m): sim(q_i, k_j)
    if not isinstance(w, torch.Tensor) or w.shape[-2:] != (q.shape[-2], k.shape[-2]):
        raise ValueError("sim must return a tensor of shape (..., n, m)")
    if values_checkable(w) and (w < 0).any():
        raise ValueError("sim must be non-negative (the post's only requirement)")
    if causal:
        n = q.shape[-2]
        w = w * torch.ones(n, n, dtype=torch.bool, device=w.device).tril()  # keep j <= i
    return (w @ v) / (w.sum(-1, keepdim=True) + eps)


# ----------------------------------------------------------------------------------------------
# linear attention
# ----------------------------------------------------------------------------------------------
def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: FeatureMap = "elu+1",
    eps: float = 1e-6,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Non-causal linear attention
    :math:`\mathrm{out}_i = \phi(q_i)^\top \sum_j \varphi(k_j) v_j^\top \,/\, (\phi(q_i)^\top \sum_j \varphi(k_j) + \varepsilon)`.

    The ``D x dv`` matrix :math:`\varphi(K)^\top V` is formed first (associativity), so time is
    O(n·D·dv) and memory O(n·(D + dv) + D·dv), never O(n²).

    Equals :func:`general_attention` with ``sim = phi(q)·varphi(k)`` (tested to 1e-12 in float64)
    and ``performer_pytorch``'s ``linear_attention`` on the same features.
    Source: https://kexue.fm/archives/7546, kernel form (eq. gen-att-2); arXiv:2006.16236, eq. (6).

    Parameters
    ----------
    q : (..., n, d)
        Queries.
    k : (..., m, d)
        Keys.
    v : (..., m, dv)
        Values.
    feature_map : str, callable or pair
        ``"elu+1"`` (default), ``"softmax"`` (Efficient Attention), ``"1+qk"`` (the
        post's :math:`1 + \hat q^\top\hat k`), a callable, or a pair ``(phi, varphi)``; see the module
        docstring. The similarities :math:`\phi(q)^\top\varphi(k)` must be non-negative (the
        features themselves need not be: ``"1+qk"`` is a signed factorisation).
    eps : float
        > 0, added to the denominator (guards rows whose similarities are all ~0).
    key_padding_mask : (..., m) bool tensor, optional
        ``True`` = a real key, ``False`` = padding; leading dims broadcast against the batch dims.
        Padded keys get zero features (with ``"softmax"`` they are also left out of the column
        normalisation), so the result equals attention over the real keys only.

    Returns
    -------
    (..., n, dv), the dtype of ``q`` (float16/bfloat16 inputs are computed in float32).

    Raises
    ------
    TypeError
        Non-tensor or non-floating inputs, a ``feature_map`` of the wrong type, a non-real ``eps``,
        a non-boolean ``key_padding_mask``.
    ValueError
        NaN inputs (checked outside torch.func transforms and torch.compile only), mismatched
        ``d``/``m``/batch dims, unknown ``feature_map`` name, ``eps <= 0``, a ``key_padding_mask``
        of the wrong shape.
    """
    check_qkv(q, k, v, values=False)  # values: one NaN check of the result below
    eps = check_positive_real(eps, "eps")
    mask = check_key_padding_mask(key_padding_mask, k.shape[:-2], k.shape[-2])
    dtype = q.dtype
    q32, k32, v32 = _upcast(q, k, v)
    fq, fk = _features(q32, k32, feature_map, mask)  # (..., n, D), (..., m, D)
    if mask is not None:
        v32 = v32.masked_fill(~mask.unsqueeze(-1), 0.0)
    kv = fk.mT @ v32  # (..., D, dv): sum_j varphi(k_j) v_j^T
    z = fk.sum(-2)  # (..., D):     sum_j varphi(k_j)
    num = fq @ kv  # (..., n, dv)
    den = (fq @ z.unsqueeze(-1)).add_(eps)  # (..., n, 1): phi(q_i)^T z + eps
    out = (num / den).to(dtype)
    return check_result_no_nan(out, {"q": q, "k": k, "v": v})


def _causal_chunked(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, eps: float, chunk: int) -> torch.Tensor:
    """Chunk-wise causal linear attention on featurised inputs (see causal_linear_attention).

    Four batched GEMMs over the ``n/C`` chunks (the masked block, its product with ``[V | 1]``, the
    chunk states, the prior states) and one cumsum; no Python loop over positions or chunks."""
    *batch, n, D = fq.shape
    dv = v.shape[-1]
    batch = torch.broadcast_shapes(tuple(batch), fk.shape[:-2], v.shape[:-2])
    C = min(chunk, n)
    N = -(-n // C)  # number of chunks
    pad = N * C - n
    # append a column of ones to v: the last output column is then the denominator phi(q_i)^T z_i
    v1 = F.pad(v, (0, 1), value=1.0)
    if pad:  # zero keys add nothing to the states; padded query rows are cut off below
        fq, fk, v1 = F.pad(fq, (0, 0, 0, pad)), F.pad(fk, (0, 0, 0, pad)), F.pad(v1, (0, 0, 0, pad))
    # flatten (batch..., chunk) into one GEMM batch: (B*N, C, .)
    fq = fq.expand(*batch, N * C, D).reshape(-1, C, D)
    fk = fk.expand(*batch, N * C, D).reshape(-1, C, D)
    v1 = v1.expand(*batch, N * C, dv + 1).reshape(-1, C, dv + 1)
    # within a chunk: masked quadratic form, A_{ts} = phi(q_t)^T varphi(k_s) for s <= t
    eager = values_checkable(fq)  # not under torch.func / compile: in-place ops (no vmap batching rule)
    A = torch.bmm(fq, fk.mT)
    A = A.tril_() if eager else A.tril()  # (B*N, C, C)
    out = torch.bmm(A, v1)  # (B*N, C, dv+1)
    if N > 1:
        # across chunks: [S_c | z_c] = varphi(K_c)^T [V_c | 1], inclusive prefix over the chunks
        # (a cumsum, never "cumsum - state": its rounding would let a chunk's later keys move its
        # earlier outputs). Chunk c needs the prefix up to c - 1: in the flattened batch that is
        # the previous entry, once the last chunk of every sequence (never needed) is zeroed so that
        # chunk 0 of the next sequence receives nothing.
        prefix = torch.bmm(fk.mT, v1).unflatten(0, (-1, N)).cumsum(dim=1)  # (B, N, D, dv+1)
        prefix[:, -1] = 0.0
        prefix = prefix.flatten(0, 1)  # (B*N, D, dv+1)
        if eager:  # one fused in-place GEMM, out_c += phi(Q_c) prefix_{c-1}
            out[1:].baddbmm_(fq[1:], prefix[:-1])
        else:  # torch.func / torch.compile: baddbmm_ has no vmap batching rule
            out[1:] += torch.bmm(fq[1:], prefix[:-1])
    out = out.reshape(*batch, N * C, dv + 1)[..., :n, :]
    return out[..., :dv] / (out[..., dv:] + eps)


def causal_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: FeatureMap = "elu+1",
    eps: float = 1e-6,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Causal (autoregressive) linear attention
    :math:`\mathrm{out}_i = \phi(q_i)^\top S_i / (\phi(q_i)^\top z_i + \varepsilon)` with the prefix sums
    :math:`S_i = \sum_{j\le i} \varphi(k_j) v_j^\top`, :math:`z_i = \sum_{j \le i}\varphi(k_j)`.

    Evaluated chunk-wise, without a Python loop over positions: the sequence is cut into chunks of
    ``C = chunk_size`` positions; inside a chunk the masked quadratic form
    :math:`\mathrm{tril}(\phi(Q_c)\varphi(K_c)^\top)V_c` is used, and across chunks the states
    :math:`\varphi(K_c)^\top [V_c, 1]` are summed by a cumsum over the ``n/C`` chunks. Time
    O(n·C·D + n·D·dv), memory O(n·C + (n/C)·D·dv), i.e. O(n·(D + dv)) for ``C >= D`` — never the
    O(n·D·dv) of a cumsum over positions nor the O(n²) of the masked form. The result does not
    depend on ``chunk_size`` (beyond round-off).

    Equals the masked quadratic form (:func:`general_attention` with ``causal=True``) to 1e-5 in
    float32, and :func:`causal_linear_attention_recurrent` (the post's RNN form).
    Source: https://kexue.fm/archives/7546, "autoregressive generation" (the S_i, z_i recurrence);
    arXiv:2006.16236, eqs. (8)-(12).

    Parameters
    ----------
    q, k : (..., n, d)
        Queries and keys; causal attention needs as many queries as keys.
    v : (..., n, dv)
        Values.
    feature_map : str, callable or pair
        ``"elu+1"`` (default), ``"1+qk"``, a callable or a pair; see the module
        docstring. A map that mixes positions is rejected, by property: one marked
        ``position_wise = False`` (as the key map of ``"softmax"``, :math:`\mathrm{softmax}_1(K)`,
        which normalises over the whole sequence and would leak future keys), and (outside
        torch.func transforms) any map whose feature of position 0 changes when the later positions
        are removed.
    eps : float
        > 0, added to the denominator.
    chunk_size : int
        Positive, the chunk length ``C`` (default 64, tuned on CPU for d = 64).
    key_padding_mask : (..., n) bool tensor, optional
        ``True`` = a real key; padded keys get zero features (they add nothing to :math:`S_i, z_i`).
        A query that sees no real key gets output 0.

    Returns
    -------
    (..., n, dv), the dtype of ``q`` (float16/bfloat16 inputs are computed in float32).

    Raises
    ------
    TypeError
        Non-tensor or non-floating inputs, bad ``feature_map`` type, non-integer ``chunk_size``,
        non-boolean ``key_padding_mask``.
    ValueError
        NaN inputs (outside transforms), mismatched shapes, ``n != m``, ``eps <= 0``,
        ``chunk_size < 1``, an unknown feature map name, a non-causal feature map.
    """
    check_qkv(q, k, v, causal=True, values=False)  # values: one NaN check of the result below
    eps = check_positive_real(eps, "eps")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    mask = check_key_padding_mask(key_padding_mask, k.shape[:-2], k.shape[-2])
    dtype = q.dtype
    q32, k32, v32 = _upcast(q, k, v)
    fq, fk = _features(q32, k32, feature_map, mask, causal=True)
    if mask is not None:
        v32 = v32.masked_fill(~mask.unsqueeze(-1), 0.0)
    out = _causal_chunked(fq, fk, v32, eps, chunk_size).to(dtype)
    return check_result_no_nan(out, {"q": q, "k": k, "v": v})


def causal_linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: FeatureMap = "elu+1",
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""The post's RNN form of causal linear attention, one position at a time:
    :math:`S_i = S_{i-1} + \varphi(k_i)v_i^\top`, :math:`z_i = z_{i-1} + \varphi(k_i)`,
    :math:`\mathrm{out}_i = \phi(q_i)^\top S_i/(\phi(q_i)^\top z_i + \varepsilon)`.

    A readable reference (a Python loop over the ``n`` positions; O(D·dv) state memory), as used for
    decoding. Use :func:`causal_linear_attention` for speed.

    q, k : (..., n, d). v : (..., n, dv). Returns (..., n, dv).
    Raises as :func:`causal_linear_attention`.
    Source: https://kexue.fm/archives/7546, the recurrence for S_i, z_i.
    """
    check_qkv(q, k, v, causal=True)
    eps = check_positive_real(eps, "eps")
    fq, fk = _features(q, k, feature_map, causal=True)
    batch = torch.broadcast_shapes(fq.shape[:-2], fk.shape[:-2], v.shape[:-2])
    D, dv = fq.shape[-1], v.shape[-1]
    S = fq.new_zeros(*batch, D, dv)  # S_0 = 0
    z = fq.new_zeros(*batch, D)  # z_0 = 0
    outs = []
    for i in range(q.shape[-2]):
        S = S + fk[..., i, :, None] * v[..., i, None, :]  # S_i = S_{i-1} + varphi(k_i) v_i^T
        z = z + fk[..., i, :]  # z_i = z_{i-1} + varphi(k_i)
        num = (fq[..., i, :, None] * S).sum(-2)  # phi(q_i)^T S_i
        den = (fq[..., i, :] * z).sum(-1, keepdim=True)  # phi(q_i)^T z_i
        outs.append(num / (den + eps))
    return torch.stack(outs, dim=-2)


# ----------------------------------------------------------------------------------------------
# the two other linear-cost forms the post discusses
# ----------------------------------------------------------------------------------------------
def efficient_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Efficient Attention (Shen et al.): :math:`\mathrm{softmax}_2(Q)\,\mathrm{softmax}_1(K)^\top V`,
    softmax over ``d`` for the queries and over the sequence axis for the keys. No denominator is
    needed: each row of :math:`\mathrm{softmax}_2(Q)\mathrm{softmax}_1(K)^\top` sums to 1.

    q : (..., n, d). k : (..., m, d). v : (..., m, dv). Returns (..., n, dv). Non-causal.
    Raises ``TypeError``/``ValueError`` as :func:`linear_attention`.
    Source: https://kexue.fm/archives/7546, "clever use of softmax"; arXiv:1812.01243, eq. (3).
    """
    check_qkv(q, k, v)
    return torch.softmax(q, dim=-1) @ (torch.softmax(k, dim=-2).mT @ v)  # (n,d) @ ((d,m) @ (m,dv))


def linformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    e: torch.Tensor,
    f: torch.Tensor,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Linformer attention :math:`\mathrm{softmax}(\lambda\, Q (EK)^\top)\, FV` with ``E, F`` of shape
    ``(p, n)`` projecting along the sequence axis (the post's ``m x n``; here ``p`` to keep ``m``
    for the number of keys).

    Because ``EK`` and ``FV`` mix all positions, output ``i`` depends on inputs ``j > i``: the form
    has no causal version (the post's remark, shown by a Jacobian in the chapter).

    q : (..., n, d). k : (..., n, d). v : (..., n, dv). e, f : (p, n). scale : λ, default ``1/sqrt(d)``.
    Returns (..., n, dv).
    Raises ``ValueError`` if ``e``/``f`` are not ``(p, n)`` with the same ``p``, plus the errors of
    :func:`linear_attention` for q, k, v.
    Source: https://kexue.fm/archives/7546, "Linformer"; arXiv:2006.04768, eq. (7).
    """
    check_qkv(q, k, v)
    check_tensor(e, "e", min_dim=2)
    check_tensor(f, "f", min_dim=2)
    n = k.shape[-2]
    if e.dim() != 2 or f.dim() != 2 or e.shape != f.shape or e.shape[1] != n:
        raise ValueError(f"e and f must both have shape (p, n={n}), got {tuple(e.shape)} and {tuple(f.shape)}")
    lam = 1.0 / math.sqrt(q.shape[-1]) if scale is None else check_positive_real(scale, "scale")
    ek = e @ k  # (..., p, d): projected keys
    fv = f @ v  # (..., p, dv): projected values
    return torch.softmax(lam * (q @ ek.mT), dim=-1) @ fv  # (..., n, p) @ (..., p, dv)
