"""Tests for kexue_core.attention.heads: multi-head and talking-heads attention."""
import math

import pytest
import torch
import torch.nn.functional as F

from kexue_core.attention import (
    multi_head_attention,
    softmax_attention,
    talking_heads_attention,
    talking_heads_logits,
)

DT = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, g):
    return torch.randn(*shape, generator=g, dtype=DT)


# ---------------------------------------------------------------- multi_head_attention
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("use_mask", [False, True])
def test_mha_matches_torch_multiheadattention(bias, use_mask):
    g = _gen(1)
    B, n, m, E, h = 2, 5, 7, 12, 3
    mha = torch.nn.MultiheadAttention(E, h, bias=bias, batch_first=True, dtype=DT)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(_randn(*p.shape, g=g) * 0.3)
    xq, xkv = _randn(B, n, E, g=g), _randn(B, m, E, g=g)
    mask = None
    if use_mask:
        mask = torch.rand(n, m, generator=g) < 0.6
        mask[:, 0] = True  # every query sees at least one key
    ref_out, ref_p = mha(xq, xkv, xkv, attn_mask=None if mask is None else ~mask,
                         need_weights=True, average_attn_weights=False)
    wq, wk, wv = (w.T for w in mha.in_proj_weight.detach().chunk(3, dim=0))
    biases = {}
    if bias:
        bq, bk, bv = mha.in_proj_bias.detach().chunk(3)
        biases = dict(b_q=bq, b_k=bk, b_v=bv, b_o=mha.out_proj.bias.detach())
    out, probs = multi_head_attention(xq, xkv, wq, wk, wv, mha.out_proj.weight.detach().T,
                                      num_heads=h, mask=mask, **biases)
    assert out.shape == (B, n, E) and probs.shape == (B, h, n, m)
    torch.testing.assert_close(out, ref_out.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(probs, ref_p.detach(), atol=1e-10, rtol=0)


def test_mha_key_size_differs_from_head_size_matches_sdpa_per_head():
    """key_size 6 != head_size 2: each head equals torch's SDPA on that head's projections."""
    g = _gen(2)
    n, d, h, dk, dv, dout = 4, 5, 3, 6, 2, 7
    x = _randn(n, d, g=g)
    wq, wk, wv, wo = _randn(d, h * dk, g=g), _randn(d, h * dk, g=g), _randn(d, h * dv, g=g), _randn(h * dv, dout, g=g)
    out, probs = multi_head_attention(x, x, wq, wk, wv, wo, num_heads=h)
    heads = []
    for i in range(h):
        qi, ki = x @ wq[:, i * dk:(i + 1) * dk], x @ wk[:, i * dk:(i + 1) * dk]
        vi = x @ wv[:, i * dv:(i + 1) * dv]
        heads.append(F.scaled_dot_product_attention(qi, ki, vi))  # default scale 1/sqrt(dk)
        p_ref = torch.softmax(qi @ ki.T / math.sqrt(dk), -1)
        torch.testing.assert_close(probs[i], p_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(out, torch.cat(heads, -1) @ wo, atol=1e-12, rtol=0)


def test_mha_single_head_is_softmax_attention():
    g = _gen(3)
    x = _randn(2, 4, 3, g=g)
    wq, wk, wv, wo = (_randn(3, 3, g=g) for _ in range(4))
    out, probs = multi_head_attention(x, x, wq, wk, wv, wo, num_heads=1, scale=0.7)
    o_ref, p_ref = softmax_attention(x @ wq, x @ wk, x @ wv, scale=0.7)
    torch.testing.assert_close(out, o_ref @ wo, atol=1e-13, rtol=0)
    torch.testing.assert_close(probs[:, 0], p_ref, atol=1e-13, rtol=0)


def test_mha_bad_input():
    g = _gen(4)
    x = _randn(4, 6, g=g)
    w = _randn(6, 6, g=g)
    with pytest.raises(ValueError):  # 4 heads do not divide 6
        multi_head_attention(x, x, w, w, w, w, num_heads=4)
    with pytest.raises(ValueError):  # w_q and w_k widths differ
        multi_head_attention(x, x, w, w[:, :4], w, w, num_heads=2)
    with pytest.raises(ValueError):  # w_o rows != h*d_v
        multi_head_attention(x, x, w, w, w, w[:4], num_heads=2)
    with pytest.raises(ValueError):  # w_q rows != d_q
        multi_head_attention(x, x, w[:5], w, w, w, num_heads=2)
    with pytest.raises(ValueError):
        multi_head_attention(x, x, w, w, w, w, num_heads=0)
    with pytest.raises(TypeError):
        multi_head_attention(x, x, w, w, w, w, num_heads=2.0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError):
        multi_head_attention(bad, x, w, w, w, w, num_heads=2)
    with pytest.raises(ValueError):
        multi_head_attention(x, x, w, w, w, w, num_heads=2, b_q=torch.zeros(5, dtype=DT))
    with pytest.raises(TypeError):
        multi_head_attention(x, x, w, w, w, w, num_heads=2, mask=torch.ones(4, 4))
    with pytest.raises(TypeError):
        multi_head_attention(x.numpy(), x, w, w, w, w, num_heads=2)


# ---------------------------------------------------------------- talking heads
def _qkv(g, B=2, h=3, n=5, m=6, dk=4, dv=3):
    return _randn(B, h, n, dk, g=g), _randn(B, h, m, dk, g=g), _randn(B, h, m, dv, g=g)


def test_talking_heads_identity_mixing_is_multi_head_attention():
    g = _gen(5)
    q, k, v = _qkv(g)
    eye = torch.eye(3, dtype=DT)
    out, probs = talking_heads_attention(q, k, v, eye, eye)
    o_ref, p_ref = softmax_attention(q, k, v)
    torch.testing.assert_close(out, o_ref, atol=1e-13, rtol=0)
    torch.testing.assert_close(probs, p_ref, atol=1e-13, rtol=0)
    out2, _ = talking_heads_attention(q, k, v, eye)  # no post-mix
    torch.testing.assert_close(out2, o_ref, atol=1e-13, rtol=0)


def test_talking_heads_matches_loop_reference_with_nontrivial_mixing():
    """h_k = 2 logit heads -> h = 3 softmax heads -> h_v = 4 value heads, written out with loops."""
    g = _gen(6)
    B, hk, h, hv, n, m, dk, dv = 2, 2, 3, 4, 3, 5, 4, 2
    q, k = _randn(B, hk, n, dk, g=g), _randn(B, hk, m, dk, g=g)
    v = _randn(B, hv, m, dv, g=g)
    pre, post = _randn(hk, h, g=g), _randn(h, hv, g=g)
    scale = 0.37
    out, probs = talking_heads_attention(q, k, v, pre, post, scale=scale)
    assert out.shape == (B, hv, n, dv) and probs.shape == (B, h, n, m)
    ref_out = torch.zeros(B, hv, n, dv, dtype=DT)
    for bi in range(B):
        jhat = [scale * q[bi, b] @ k[bi, b].T for b in range(hk)]  # \hat J^{(b)}
        P = [torch.softmax(sum(pre[b, a] * jhat[b] for b in range(hk)), -1) for a in range(h)]
        for a in range(h):
            torch.testing.assert_close(probs[bi, a], P[a], atol=1e-13, rtol=0)
        for c in range(hv):
            W = sum(post[a, c] * P[a] for a in range(h))
            ref_out[bi, c] = W @ v[bi, c]
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)


def test_talking_heads_logits_post_convention_and_scale():
    """pre_mix is the transpose of the post's λ; the default scale is 1/sqrt(d_k), applied before mixing."""
    g = _gen(7)
    q, k, _ = _qkv(g, B=1, h=2, dk=9)
    lam = torch.tensor([[1.0, 2.0], [-0.5, 3.0]], dtype=DT)  # J^(a) = Σ_b λ_ab \hat J^(b)
    J = talking_heads_logits(q, k, lam.T)
    jhat = q @ k.transpose(-2, -1) / 3.0
    torch.testing.assert_close(J[0, 0], jhat[0, 0] + 2 * jhat[0, 1], atol=1e-13, rtol=0)
    torch.testing.assert_close(J[0, 1], -0.5 * jhat[0, 0] + 3 * jhat[0, 1], atol=1e-13, rtol=0)


def test_batched_mixing_matrices_equal_separate_calls():
    """A stack of pre/post mixing matrices, one per batch element, equals separate calls."""
    g = _gen(11)
    q, k, v = _qkv(g, B=3, h=2)
    pre, post = _randn(3, 2, 2, g=g), _randn(3, 2, 2, g=g)
    out, probs = talking_heads_attention(q, k, v, pre, post)
    for i in range(3):
        o_i, p_i = talking_heads_attention(q[i], k[i], v[i], pre[i], post[i])
        torch.testing.assert_close(out[i], o_i, atol=1e-13, rtol=0)
        torch.testing.assert_close(probs[i], p_i, atol=1e-13, rtol=0)


def test_rank_bounds():
    """rank(Q Kᵀ) <= d_k per head; talking-heads mixing of h heads reaches rank h*d_k (and no more)."""
    g = _gen(8)
    h, n, dk = 3, 12, 2
    q, k = _randn(h, n, dk, g=g), _randn(h, n, dk, g=g)
    eye = torch.eye(h, dtype=DT)
    ranks_plain = torch.linalg.matrix_rank(talking_heads_logits(q, k, eye), rtol=1e-10)
    assert ranks_plain.tolist() == [dk] * h
    J = talking_heads_logits(q, k, _randn(h, h, g=g))
    ranks_mixed = torch.linalg.matrix_rank(J, rtol=1e-10)
    assert ranks_mixed.tolist() == [h * dk] * h
    # J^(a) = [Q^(1)..Q^(h)] diag(λ_a1 I, ..., λ_ah I) [K^(1)..K^(h)]ᵀ: rank <= h*d_k always
    big = torch.linalg.matrix_rank(talking_heads_logits(_randn(h, 40, dk, g=g), _randn(h, 40, dk, g=g),
                                                        _randn(h, h, g=g)), rtol=1e-10)
    assert big.tolist() == [h * dk] * h


def test_talking_heads_mask_matches_masked_reference():
    g = _gen(9)
    q, k, v = _qkv(g, B=1, h=2, n=4, m=4)
    mask = torch.ones(4, 4, dtype=torch.bool).tril()
    pre = _randn(2, 2, g=g)
    out, probs = talking_heads_attention(q, k, v, pre, mask=mask)
    assert torch.all(probs[..., ~mask] == 0)
    J = talking_heads_logits(q, k, pre).masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(out, torch.softmax(J, -1) @ v, atol=1e-13, rtol=0)


def test_talking_heads_bad_input():
    g = _gen(10)
    q, k, v = _qkv(g, B=1, h=3)
    eye3 = torch.eye(3, dtype=DT)
    with pytest.raises(ValueError):  # pre_mix rows != heads of q, k
        talking_heads_attention(q, k, v, torch.eye(2, dtype=DT))
    with pytest.raises(ValueError):  # post_mix rows != pre_mix columns
        talking_heads_attention(q, k, v, eye3, torch.eye(2, dtype=DT))
    with pytest.raises(ValueError):  # v heads != post_mix columns
        talking_heads_attention(q, k, v, eye3, torch.ones(3, 4, dtype=DT))
    with pytest.raises(ValueError):  # v heads != pre_mix columns without post_mix
        talking_heads_attention(q, k, v, torch.ones(3, 2, dtype=DT))
    with pytest.raises(ValueError):  # pre_mix not a matrix
        talking_heads_attention(q, k, v, torch.ones(3, dtype=DT))
    with pytest.raises(ValueError):  # key sizes differ
        talking_heads_attention(q, k[..., :2], v, eye3)
    with pytest.raises(ValueError):  # q and k heads differ
        talking_heads_logits(q, k[:, :2], eye3)
    with pytest.raises(ValueError):  # k and v key counts differ
        talking_heads_attention(q, k, v[..., :3, :], eye3)
    with pytest.raises(ValueError):  # q has no head dimension
        talking_heads_logits(q[0, 0], k[0, 0], eye3)
    nan_mix = eye3.clone()
    nan_mix[0, 1] = float("nan")
    with pytest.raises(ValueError):
        talking_heads_attention(q, k, v, nan_mix)
    bad_q = q.clone()
    bad_q[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError):
        talking_heads_attention(bad_q, k, v, eye3)
    with pytest.raises(TypeError):
        talking_heads_attention(q, k, v, torch.eye(3, dtype=torch.int64))
    with pytest.raises(TypeError):
        talking_heads_attention(q, k, v, eye3.tolist())
    with pytest.raises(TypeError):
        talking_heads_attention(q, k, v, eye3, mask=torch.ones(5, 6))
    with pytest.raises(ValueError):
        talking_heads_attention(q, k, v, eye3, mask=torch.zeros(5, 6, dtype=torch.bool))


def test_talking_heads_mask_row_without_keys_is_rejected():
    q = torch.zeros(2, 2, 4, dtype=DT)  # (h, n, d_k)
    mask = torch.tensor([[True, True], [False, False]])
    with pytest.raises(ValueError):
        talking_heads_attention(q, q, q, torch.eye(2, dtype=DT), mask=mask)
