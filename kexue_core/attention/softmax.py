"""Softmax (dot-product) attention, its row entropy, and the entropy-invariant scale.

Shapes follow one convention: ``q: (..., n, d)``, ``k: (..., m, d)``, ``v: (..., m, dv)`` with batch
and head dimensions leading; boolean masks are ``(..., n, m)`` with ``True`` = may attend
(PyTorch's convention for ``scaled_dot_product_attention``).
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from .._validation import check_key_padding_mask, check_positive_int, check_qkv, check_tensor, values_checkable

__all__ = [
    "softmax_attention",
    "attention_entropy",
    "entropy_invariant_scale",
    "entropy_invariant_attention",
    "mean_field_entropy_lower_bound",
]


def softmax_attention(q, k, v, *, scale=None, mask=None, need_weights: bool = True):
    r"""Scaled dot-product attention that also returns the attention probabilities.

    .. math:: \mathrm{out} = \mathrm{softmax}(\lambda\, q k^\top)\, v,\qquad \lambda = \text{scale}

    Equals ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)``
    (tested to 1e-6 in float32). Source: Vaswani et al. (2017), eq. (1); https://kexue.fm/archives/8823.

    Parameters
    ----------
    q : (..., n, d) queries.
    k : (..., m, d) keys.
    v : (..., m, dv) values.
    scale : the logit scale λ: ``None`` means ``1/sqrt(d)`` (standard attention), a float, or a
        tensor broadcastable to ``(..., n, 1)``: one scale per query row (e.g.
        :func:`entropy_invariant_scale` of each query's number of visible keys). A scale that varies
        along the key axis (shape ``(m,)`` or ``(..., n, m)``) is rejected: it would re-weight keys.
    mask : optional boolean (..., n, m), ``True`` = may attend. A row with no allowed key is an
        error (its softmax is undefined; checked outside torch.func transforms and torch.compile).
    need_weights : bool
        ``True`` (default): also return the probabilities. ``False``: return ``(out, None)`` through
        PyTorch's fused ``scaled_dot_product_attention`` (a tensor scale is applied to ``q``), which
        never forms the ``(..., n, m)`` probabilities.

    Returns
    -------
    out : (..., n, dv)
    probs : (..., n, m), rows sum to 1; ``None`` if ``need_weights=False``.

    Raises
    ------
    TypeError
        Non-tensor or non-floating inputs, or a non-boolean mask.
    ValueError
        NaN inputs, mismatched ``d`` or ``m``, a non-finite scale, a tensor scale not broadcastable
        to ``(..., n, 1)``, a mask that does not broadcast to ``(..., n, m)``, or a mask row with no
        allowed key.
    """
    check_qkv(q, k, v)
    n, d = q.shape[-2], q.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    elif isinstance(scale, torch.Tensor):
        check_tensor(scale, "scale")
        if scale.dim() >= 1 and scale.shape[-1] != 1 or scale.dim() >= 2 and scale.shape[-2] not in (1, n):
            raise ValueError(
                f"a tensor scale must broadcast to (..., n={n}, 1) (one scale per query row), got shape "
                f"{tuple(scale.shape)}; a scale along the key axis would re-weight the keys")
        if values_checkable(scale) and not torch.isfinite(scale).all():
            raise ValueError("scale must be finite")
        scale = scale.to(q.dtype)
    elif isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be None, a real number or a tensor, got {type(scale).__name__}")
    elif not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    logits_shape = (*torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), n, k.shape[-2])
    if isinstance(scale, torch.Tensor):
        try:
            torch.broadcast_shapes(scale.shape, (*logits_shape[:-1], 1))
        except RuntimeError as e:
            raise ValueError(f"scale of shape {tuple(scale.shape)} does not broadcast to {(*logits_shape[:-1], 1)}") from e
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a boolean tensor (True = may attend)")
        try:
            torch.broadcast_shapes(mask.shape, logits_shape)
        except RuntimeError as e:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to {logits_shape}") from e
        if values_checkable(mask) and not mask.any(dim=-1).all():
            raise ValueError("mask has a query row with no allowed key")
    if not need_weights:
        if isinstance(scale, torch.Tensor):  # (λ_i q_i)·k_j = λ_i (q_i·k_j): a per-row scale moves onto q
            q, scale = q * scale, 1.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale), None
    logits = torch.matmul(q, k.transpose(-2, -1)) * scale  # (..., n, m): λ q_i·k_j
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.matmul(probs, v), probs


def attention_entropy(probs):
    r"""Shannon entropy of each attention row, in nats: :math:`H_i = -\sum_j a_{ij}\log a_{ij}`.

    probs : (..., n, m), rows summing to 1 (within ``max(1e-6, 16 eps sqrt(m))``, eps the dtype's
    machine epsilon; the value checks run outside torch.func transforms and torch.compile).
    Returns (..., n).
    ``0·log 0`` is taken as 0 (``torch.special.entr``).

    Raises ``ValueError`` if an entry is negative or NaN, or if a row does not sum to 1;
    ``TypeError`` for a non-floating tensor.
    Source: https://kexue.fm/archives/8823, the definition of :math:`\mathcal H_i`.
    """
    check_tensor(probs, "probs", min_dim=1)
    if values_checkable(probs):
        if (probs < 0).any():
            raise ValueError("probs has negative entries")
        m = probs.shape[-1]
        tol = max(1e-6, 16 * torch.finfo(probs.dtype).eps * m**0.5)  # round-off of a sum of m terms
        if not torch.allclose(probs.sum(-1), torch.ones((), dtype=probs.dtype), rtol=0.0, atol=tol):
            raise ValueError("probs rows must sum to 1")
    return torch.special.entr(probs).sum(-1)


def entropy_invariant_scale(n, d: int, *, train_len: int = 512):
    r"""The entropy-invariant logit scale :math:`\lambda = \log_{L} n / \sqrt d = \log n/(\log L\,\sqrt d)`.

    Chosen so that the row entropy grows more slowly with the number of keys ``n`` and equals the
    standard ``1/sqrt(d)`` at ``n = train_len`` (``L``).

    n : number of keys each query sees: an int >= 1, or an integer-valued tensor of any shape.
    d : head dimension (int >= 1).
    train_len : the length ``L`` at which the scale equals ``1/sqrt(d)`` (int >= 2; the post uses 512).

    Returns a float (int ``n``) or a float64 tensor of ``n``'s shape. Dimensionless.

    Raises ``ValueError`` for ``n < 1``, ``d < 1`` or ``train_len < 2``; ``TypeError`` for
    non-integers. Source: https://kexue.fm/archives/8823, eq. for "Attention-E".
    """
    d = check_positive_int(d, "d")
    train_len = check_positive_int(train_len, "train_len", minimum=2)
    denom = math.log(train_len) * math.sqrt(d)
    if isinstance(n, torch.Tensor):
        if n.is_floating_point() and not torch.equal(n, n.round()):
            raise TypeError("n must hold integers (numbers of keys)")
        if (n < 1).any():
            raise ValueError("n must be >= 1")
        return torch.log(n.to(torch.float64)) / denom
    n = check_positive_int(n, "n")
    return math.log(n) / denom


def entropy_invariant_attention(q, k, v, *, train_len: int = 512, causal: bool = False, key_padding_mask=None):
    r"""Attention with the entropy-invariant scale ("Attention-E" of post 8823).

    ``softmax(log_L(n_i)/sqrt(d) · q_i·K^T) V`` where ``n_i`` is the number of keys query ``i`` sees:
    ``m`` without a mask, ``i + 1`` with ``causal=True`` (so the first query's single key gets a
    uniform, i.e. trivially correct, weight); with ``key_padding_mask`` only the real keys count
    (and only they are attended to). Shapes as in :func:`softmax_attention`; causal requires
    ``n == m``. ``key_padding_mask`` : optional (..., m) bool, ``True`` = a real key.
    Returns ``(out, probs)``.

    Raises ``ValueError`` for ``causal`` with ``n != m``, a bad ``key_padding_mask``, a query that sees
    no real key, and the errors of :func:`softmax_attention`; ``TypeError`` for a non-boolean mask.
    Source: https://kexue.fm/archives/8823.
    """
    check_qkv(q, k, v)
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    if causal and n != m:
        raise ValueError(f"causal attention needs as many queries as keys, got {n} and {m}")
    keep = check_key_padding_mask(key_padding_mask, k.shape[:-2], m)
    if keep is None and not causal:
        return softmax_attention(q, k, v, scale=entropy_invariant_scale(m, d, train_len=train_len))
    mask = None
    if causal:
        mask = torch.ones(n, m, dtype=torch.bool, device=q.device).tril()  # (n, m)
    if keep is not None:
        mask = keep.unsqueeze(-2) if mask is None else mask & keep.unsqueeze(-2)  # (..., n, m)
    visible = mask.sum(-1, keepdim=True)  # (..., n, 1): n_i, the keys query i sees
    train_len = check_positive_int(train_len, "train_len", minimum=2)
    check_positive_int(d, "d")
    # log_L(n_i)/sqrt(d); n_i = 0 (no real key: rejected by softmax_attention) is clamped to 1 here
    scale = torch.log(visible.clamp(min=1).to(torch.float64)) / (math.log(train_len) * math.sqrt(d))
    return softmax_attention(q, k, v, scale=scale.to(q.dtype), mask=mask)


def mean_field_entropy_lower_bound(scores, lam: float):
    r"""The 9034 estimate :math:`\log n - \lambda(s_{\max} - \bar s)`, which is a *lower bound* on the
    entropy of ``softmax(lam * scores)``.

    Post 9034 approximates :math:`\log\frac1n\sum e^{\lambda s_i}\approx\lambda\bar s` and
    :math:`\sum p_i s_i\approx s_{\max}`; by Jensen the first is an under-estimate and the second an
    over-estimate, so the result never exceeds the true entropy (equality iff all scores are equal).

    scores : (..., n) logits before scaling; ``-inf`` marks a masked-out key: ``n`` counts and
    :math:`\bar s` averages the finite scores only (the bound of the softmax over the real keys). A
    row with no finite score gets 0 (the entropy of an empty distribution, as in
    :func:`kexue_core.information.softmax_entropy`). lam : the scale λ > 0. Returns (...), nats.
    Raises ``ValueError`` for NaN or ``+inf`` scores (outside torch.func transforms) or λ <= 0 (or
    infinite); ``TypeError`` for a non-real λ. Source: https://kexue.fm/archives/9034.
    """
    check_tensor(scores, "scores", min_dim=1)
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a real number, got {type(lam).__name__}")
    if not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"lam must be > 0, got {lam}")
    if values_checkable(scores) and (scores == math.inf).any():
        raise ValueError("scores must not be +inf (-inf marks a masked key)")
    real = scores > -math.inf  # (..., n)
    n = real.sum(-1)  # (...): number of real keys
    safe = torch.where(real, scores, torch.zeros_like(scores))
    mean = safe.sum(-1) / n.clamp(min=1)
    smax = scores.amax(-1)
    smax = torch.where(n > 0, smax, torch.zeros_like(smax))  # all -inf: any finite value
    bound = torch.log(n.clamp(min=1).to(scores.dtype)) - lam * (smax - mean)
    return torch.where(n > 0, bound, torch.zeros_like(bound))
