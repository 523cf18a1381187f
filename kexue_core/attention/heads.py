"""Multi-head attention and talking-heads attention.

Shapes follow the package convention, with the head dimension just before the sequence dimension:
``q: (..., h, n, d_k)``, ``k: (..., h, m, d_k)``, ``v: (..., h, m, d_v)``; boolean masks are
``(..., n, m)`` with ``True`` = may attend, shared by all heads. Projection matrices act on the right,
as in the post (``Q = X W_Q``): ``w_q: (d_q, h*d_k)``, and head ``i`` owns columns ``i*d_k:(i+1)*d_k``,
the same split as ``torch.nn.MultiheadAttention``.

Symbols: ``h`` heads, ``d_k`` key_size (dimension of each head's queries and keys), ``d_v`` head_size
(dimension of each head's values), ``n`` queries, ``m`` keys.
Source: https://kexue.fm/archives/7325 (Su Jianlin, 2020), Vaswani et al. (2017) and
Shazeer et al. (2020), "Talking-Heads Attention", arXiv:2003.02436.
"""
from __future__ import annotations

import math

import torch

from .._validation import check_positive_int, check_tensor, values_checkable
from .softmax import softmax_attention

__all__ = ["multi_head_attention", "talking_heads_logits", "talking_heads_attention"]


def _check_matrix(w, name: str, rows: int | None = None) -> torch.Tensor:
    check_tensor(w, name, min_dim=2)
    if w.dim() != 2:
        raise ValueError(f"{name} must be a matrix, got shape {tuple(w.shape)}")
    if rows is not None and w.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {tuple(w.shape)}")
    return w


def _check_bias(b, name: str, size: int):
    if b is None:
        return
    check_tensor(b, name, min_dim=1)
    if b.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {tuple(b.shape)}")


def _check_mix(w, name: str, rows: int | None = None) -> torch.Tensor:
    check_tensor(w, name, min_dim=2)
    if rows is not None and w.shape[-2] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {tuple(w.shape)}")
    return w


def _split_heads(x: torch.Tensor, h: int) -> torch.Tensor:
    # (..., n, h*d) -> (..., n, h, d) -> (..., h, n, d)
    return x.unflatten(-1, (h, x.shape[-1] // h)).transpose(-3, -2)


def multi_head_attention(
    x_q: torch.Tensor,
    x_kv: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_o: torch.Tensor,
    *,
    num_heads: int,
    b_q: torch.Tensor | None = None,
    b_k: torch.Tensor | None = None,
    b_v: torch.Tensor | None = None,
    b_o: torch.Tensor | None = None,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Multi-head attention with independent key_size and head_size.

    .. math::
        Q^{(i)} = X_q W_Q^{(i)},\ K^{(i)} = X_{kv} W_K^{(i)},\ V^{(i)} = X_{kv} W_V^{(i)},\quad
        O^{(i)} = \mathrm{softmax}\big(\lambda\, Q^{(i)} K^{(i)\top}\big) V^{(i)},\quad
        \mathrm{out} = [O^{(1)}, \dots, O^{(h)}]\, W_O

    with :math:`\lambda` = ``scale`` (default :math:`1/\sqrt{d_k}`; it uses the key_size, not the
    head_size). Each head is one call of :func:`softmax_attention`.

    Given the same weights, equals ``torch.nn.MultiheadAttention`` (``batch_first=True``,
    ``in_proj_weight = cat([w_q, w_k, w_v], 1).T``, ``out_proj.weight = w_o.T``, ``attn_mask = ~mask``)
    when ``d_k = d_v = d_model/h`` (tested to 1e-10 in float64). Source: https://kexue.fm/archives/7325,
    eqs. (1)-(2); Vaswani et al. (2017), section 3.2.2.

    Parameters
    ----------
    x_q : (..., n, d_q) query inputs.
    x_kv : (..., m, d_kv) key/value inputs (pass ``x_q`` for self-attention).
    w_q : (d_q, h·d_k) query projection; head ``i`` uses columns ``i*d_k:(i+1)*d_k``.
    w_k : (d_kv, h·d_k) key projection, split like ``w_q``.
    w_v : (d_kv, h·d_v) value projection; head ``i`` uses columns ``i*d_v:(i+1)*d_v``.
    w_o : (h·d_v, d_out) output projection; rows ``i*d_v:(i+1)*d_v`` act on head ``i``.
    num_heads : h >= 1; must divide the widths of ``w_q`` and ``w_v``.
    b_q, b_k : optional (h·d_k,) biases.
    b_v : optional (h·d_v,) bias.
    b_o : optional (d_out,) bias.
    scale : logit scale λ (float), default ``1/sqrt(d_k)``.
    mask : optional boolean (..., n, m), ``True`` = may attend, the same for every head.

    Returns
    -------
    out : (..., n, d_out)
    probs : (..., h, n, m), each head's attention probabilities (rows sum to 1).

    Raises
    ------
    TypeError
        Non-tensor or non-floating inputs, non-integer ``num_heads``, non-boolean mask.
    ValueError
        NaN inputs, ``num_heads < 1``, widths not divisible by ``num_heads``, mismatched shapes,
        or a mask row with no allowed key.
    """
    h = check_positive_int(num_heads, "num_heads")
    check_tensor(x_q, "x_q", min_dim=2)
    check_tensor(x_kv, "x_kv", min_dim=2)
    _check_matrix(w_q, "w_q", rows=x_q.shape[-1])
    _check_matrix(w_k, "w_k", rows=x_kv.shape[-1])
    _check_matrix(w_v, "w_v", rows=x_kv.shape[-1])
    if w_q.shape[1] != w_k.shape[1]:
        raise ValueError(f"w_q and w_k must have the same width h*d_k, got {w_q.shape[1]} and {w_k.shape[1]}")
    if w_q.shape[1] % h or w_v.shape[1] % h:
        raise ValueError(
            f"num_heads={h} must divide the widths of w_q ({w_q.shape[1]}) and w_v ({w_v.shape[1]})"
        )
    _check_matrix(w_o, "w_o", rows=w_v.shape[1])
    _check_bias(b_q, "b_q", w_q.shape[1])
    _check_bias(b_k, "b_k", w_k.shape[1])
    _check_bias(b_v, "b_v", w_v.shape[1])
    _check_bias(b_o, "b_o", w_o.shape[1])
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a boolean tensor (True = may attend)")
        mask = mask.unsqueeze(-3)  # (..., 1, n, m): the same mask for every head

    def proj(x, w, b):
        y = x @ w
        return y if b is None else y + b

    q = _split_heads(proj(x_q, w_q, b_q), h)  # (..., h, n, d_k)
    k = _split_heads(proj(x_kv, w_k, b_k), h)  # (..., h, m, d_k)
    v = _split_heads(proj(x_kv, w_v, b_v), h)  # (..., h, m, d_v)
    o, probs = softmax_attention(q, k, v, scale=scale, mask=mask)  # (..., h, n, d_v), (..., h, n, m)
    o = o.transpose(-3, -2).flatten(-2)  # (..., n, h*d_v) = [O^(1), ..., O^(h)]
    return proj(o, w_o, b_o), probs


def _check_heads_qk(q, k):
    check_tensor(q, "q", min_dim=3)
    check_tensor(k, "k", min_dim=3)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the key_size d_k, got {q.shape[-1]} and {k.shape[-1]}")
    if q.shape[-3] != k.shape[-3]:
        raise ValueError(f"q and k must have the same number of heads, got {q.shape[-3]} and {k.shape[-3]}")


def talking_heads_logits(
    q: torch.Tensor, k: torch.Tensor, pre_mix: torch.Tensor, *, scale: float | None = None
) -> torch.Tensor:
    r"""The mixed logits of talking-heads attention (before the softmax).

    .. math:: J_{\ldots a i j} = \sum_{b} \mathrm{pre\_mix}_{\ldots b a}\; s \sum_{c} q_{\ldots b i c}\, k_{\ldots b j c}

    with ``s = scale``, i.e. ``einsum("...bij,...ba->...aij", s * q @ k.mT, pre_mix)``. In the notation
    of the post, :math:`J^{(a)} = \sum_b \lambda_{ab} \hat J^{(b)}` with
    :math:`\boldsymbol\lambda = \mathrm{pre\_mix}^\top`. The scale is applied *before* mixing (as in
    the paper's code and in x-transformers); mixing is linear, so scaling after gives the same result.

    Parameters
    ----------
    q : (..., h_k, n, d_k) queries of the h_k logit heads.
    k : (..., h_k, m, d_k) keys.
    pre_mix : (h_k, h): row = logit head, column = softmax head (the paper's ``P_l``). A stack
        (..., h_k, h) broadcastable against the batch dimensions of ``q`` gives each batch element its
        own mixing (e.g. a batch of separately fitted models).
    scale : the logit scale s, default ``1/sqrt(d_k)``.

    Returns
    -------
    logits : (..., h, n, m)

    Raises
    ------
    TypeError
        Non-tensor or non-floating inputs.
    ValueError
        NaN inputs; ``q``/``k`` heads != ``pre_mix.shape[-2]``; mismatched key sizes or head counts.

    Source: https://kexue.fm/archives/7325, the talking-heads equation; Shazeer et al. (2020), section 4.
    """
    _check_heads_qk(q, k)
    _check_mix(pre_mix, "pre_mix")
    if pre_mix.shape[-2] != q.shape[-3]:
        raise ValueError(
            f"pre_mix must have one row per query/key head ({q.shape[-3]}), got shape {tuple(pre_mix.shape)}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    logits = torch.matmul(q, k.transpose(-2, -1)) * scale  # (..., h_k, n, m): \hat J^{(b)}
    return torch.einsum("...bij,...ba->...aij", logits, pre_mix.to(logits.dtype))  # (..., h, n, m)


def talking_heads_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pre_mix: torch.Tensor,
    post_mix: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Talking-heads attention (Shazeer et al. 2020): heads mixed before and after the softmax.

    .. math::
        J^{(a)} = \sum_b \mathrm{pre\_mix}_{ba}\, s\, Q^{(b)} K^{(b)\top},\quad
        P^{(a)} = \mathrm{softmax}(J^{(a)}),\quad
        W^{(c)} = \sum_a \mathrm{post\_mix}_{ac} P^{(a)},\quad O^{(c)} = W^{(c)} V^{(c)}

    with ``s = scale``. In einsum form: ``J = einsum("...bij,...ba->...aij", s * q @ k.mT, pre_mix)``,
    ``W = einsum("...aij,...ac->...cij", P, post_mix)``, ``O = W @ v``. The post's matrix
    (:math:`J^{(a)} = \sum_b \lambda_{ab}\hat J^{(b)}`) is ``pre_mix.T``. With ``pre_mix`` and
    ``post_mix`` identity matrices this is plain multi-head attention.

    Source: https://kexue.fm/archives/7325 (pre-softmax mixing only, scale omitted there);
    Shazeer et al. (2020), arXiv:2003.02436, section 4 (pseudo-code with ``P_l``, ``P_w``).

    Parameters
    ----------
    q : (..., h_k, n, d_k) queries of the h_k logit heads.
    k : (..., h_k, m, d_k) keys.
    v : (..., h_v, m, d_v) values of the h_v value heads (h_v = h when ``post_mix`` is None).
    pre_mix : (h_k, h), mixes the h_k logit heads into h softmax heads (the paper's ``P_l``).
    post_mix : optional (h, h_v), mixes the h probability heads into h_v value heads (``P_w``).
        Either may also be a stack ``(..., rows, cols)`` broadcastable against the batch dimensions.
    scale : logit scale s, applied before mixing; default ``1/sqrt(d_k)``.
    mask : optional boolean (..., n, m), ``True`` = may attend, the same for every head. It is applied
        to the mixed logits (entry (i, j) of every J^{(a)} depends only on entries (i, j) of the
        unmixed logits, so masking before or after mixing selects the same keys).

    Returns
    -------
    out : (..., h_v, n, d_v)
    probs : (..., h, n, m), the softmax probabilities P^{(a)} (before ``post_mix``; rows sum to 1).

    Raises
    ------
    TypeError
        Non-tensor or non-floating inputs, non-boolean mask.
    ValueError
        NaN inputs; mismatched key sizes or key counts; heads of ``q``/``k`` != ``pre_mix.shape[-2]``;
        ``post_mix.shape[-2] != pre_mix.shape[-1]``; heads of ``v`` != ``post_mix.shape[-1]`` (or
        ``pre_mix.shape[-1]`` without ``post_mix``); a mask row with no allowed key.
    """
    check_tensor(v, "v", min_dim=3)
    logits = talking_heads_logits(q, k, pre_mix, scale=scale)  # (..., h, n, m)
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys m, got {k.shape[-2]} and {v.shape[-2]}")
    h = pre_mix.shape[-1]
    if post_mix is not None:
        _check_mix(post_mix, "post_mix", rows=h)
        h_v = post_mix.shape[-1]
    else:
        h_v = h
    if v.shape[-3] != h_v:
        raise ValueError(f"v must have {h_v} heads (columns of the last mixing matrix), got {v.shape[-3]}")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a boolean tensor (True = may attend)")
        if values_checkable(mask) and not mask.any(dim=-1).all():
            raise ValueError("mask has a query row with no allowed key")
        logits = logits.masked_fill(~mask.unsqueeze(-3), float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (..., h, n, m)
    weights = probs
    if post_mix is not None:
        weights = torch.einsum("...aij,...ac->...cij", probs, post_mix.to(probs.dtype))  # (..., h_v, n, m)
    return torch.matmul(weights, v), probs
