"""Tests for kexue_core.attention.linear (post 7546: linear attention without softmax)."""
import math

import pytest
import torch
import torch.nn.functional as F

from kexue_core.attention import (
    causal_linear_attention,
    causal_linear_attention_recurrent,
    cosine_feature_map,
    efficient_attention,
    elu_feature_map,
    general_attention,
    linear_attention,
    linformer_attention,
    resolve_feature_maps,
    softmax_feature_map,
)


def _qkv(b=2, h=3, n=37, d=8, dv=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, s, generator=g, dtype=dtype) for s in (d, d, dv))


def _kernel_sim(feature_map):
    phi, varphi = resolve_feature_maps(feature_map)
    return lambda q, k: phi(q) @ varphi(k).mT  # (..., n, m)


# ---- feature maps ------------------------------------------------------------------------------
def test_elu_feature_map_values_and_positivity():
    x = torch.tensor([-30.0, -1.0, 0.0, 2.0], dtype=torch.float64)
    expected = torch.tensor([math.exp(-30.0), math.exp(-1.0), 1.0, 3.0], dtype=torch.float64)
    # elu(x) + 1 = (e^x - 1) + 1: exact up to one rounding of a number near 1 (2^-53 absolute)
    torch.testing.assert_close(elu_feature_map(x), expected, rtol=1e-15, atol=2.0**-53)
    assert (elu_feature_map(torch.randn(1000, dtype=torch.float64) * 10) >= 0).all()


def test_cosine_feature_map_gives_one_plus_cosine():
    q, k, _ = _qkv(n=11, d=6)
    got = cosine_feature_map(q) @ cosine_feature_map(k).mT
    expected = 1 + F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).mT
    assert cosine_feature_map(q).shape == (*q.shape[:-1], q.shape[-1] + 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)
    assert got.min() >= 0 and got.max() <= 2 + 1e-14


def test_softmax_feature_map_axes():
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    torch.testing.assert_close(softmax_feature_map(x).sum(-1), torch.ones(4, 7, dtype=torch.float64))
    torch.testing.assert_close(softmax_feature_map(x, dim=-2).sum(-2), torch.ones(4, 3, dtype=torch.float64))


# ---- non-causal: linear form == quadratic form -----------------------------------------------------
@pytest.mark.parametrize("fmap", ["elu+1", "softmax", "1+qk", torch.exp, (torch.sigmoid, torch.exp)])
def test_linear_equals_quadratic_float64(fmap):
    q, k, v = _qkv()
    eps = 1e-6
    lin = linear_attention(q, k, v, feature_map=fmap, eps=eps)
    quad = general_attention(q, k, v, _kernel_sim(fmap), eps=eps)
    assert lin.shape == (2, 3, 37, 5)
    torch.testing.assert_close(lin, quad, rtol=0, atol=1e-12)


def test_linear_equals_quadratic_float32():
    q, k, v = _qkv(n=200, d=16, dv=16, dtype=torch.float32)
    lin = linear_attention(q, k, v)
    quad = general_attention(q, k, v, _kernel_sim("elu+1"), eps=1e-6)
    torch.testing.assert_close(lin, quad, rtol=0, atol=1e-5)


def test_cross_attention_lengths():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(3, 10, 4, generator=g, dtype=torch.float64)
    k = torch.randn(3, 17, 4, generator=g, dtype=torch.float64)
    v = torch.randn(3, 17, 2, generator=g, dtype=torch.float64)
    out = linear_attention(q, k, v, feature_map="1+qk")
    assert out.shape == (3, 10, 2)
    torch.testing.assert_close(out, general_attention(q, k, v, _kernel_sim("1+qk"), eps=1e-6), rtol=0, atol=1e-12)


def test_softmax_feature_map_is_efficient_attention():
    """phi = softmax over d, varphi = softmax over n: the denominator is exactly 1."""
    q, k, v = _qkv()
    out = linear_attention(q, k, v, feature_map="softmax", eps=1e-6)
    torch.testing.assert_close(out * (1 + 1e-6), efficient_attention(q, k, v), rtol=0, atol=1e-13)
    # the per-key map exp(k) of the post is a different model
    other = linear_attention(q, k, v, feature_map=(lambda x: torch.softmax(x, -1), torch.exp))
    assert (other - efficient_attention(q, k, v)).abs().max() > 1e-3


def test_elu_plus_one_constant_matters():
    """Changing the +1 of elu+1 (e.g. to +2) changes the output well beyond round-off."""
    q, k, v = _qkv()
    ref = general_attention(q, k, v, lambda a, b: (F.elu(a) + 1) @ (F.elu(b) + 1).mT, eps=1e-6)
    torch.testing.assert_close(linear_attention(q, k, v), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(causal_linear_attention(q, k, v), general_attention(
        q, k, v, lambda a, b: (F.elu(a) + 1) @ (F.elu(b) + 1).mT, causal=True, eps=1e-6), rtol=0, atol=1e-12)
    shifted = general_attention(q, k, v, lambda a, b: (F.elu(a) + 2) @ (F.elu(b) + 2).mT, eps=1e-6)
    assert (linear_attention(q, k, v) - shifted).abs().max() > 1e-3


# ---- causal ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmap", ["elu+1", "1+qk", torch.exp])
@pytest.mark.parametrize("n", [1, 5, 64, 130])
def test_causal_equals_masked_quadratic_float64(fmap, n):
    q, k, v = _qkv(n=n)
    got = causal_linear_attention(q, k, v, feature_map=fmap, chunk_size=16)
    ref = general_attention(q, k, v, _kernel_sim(fmap), causal=True, eps=1e-6)
    assert got.shape == v.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_causal_equals_masked_quadratic_float32():
    q, k, v = _qkv(b=1, h=4, n=700, d=64, dv=64, dtype=torch.float32)
    got = causal_linear_attention(q, k, v)
    ref = general_attention(q, k, v, _kernel_sim("elu+1"), causal=True, eps=1e-6)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)


def test_causal_equals_recurrence():
    q, k, v = _qkv(n=23)
    torch.testing.assert_close(causal_linear_attention(q, k, v, chunk_size=4),
                               causal_linear_attention_recurrent(q, k, v), rtol=0, atol=1e-12)


def test_causal_chunk_size_independent():
    q, k, v = _qkv(n=100)
    ref = causal_linear_attention(q, k, v, chunk_size=1)
    for c in (3, 7, 32, 64, 100, 1000):
        torch.testing.assert_close(causal_linear_attention(q, k, v, chunk_size=c), ref, rtol=0, atol=1e-12)


def test_causal_does_not_look_ahead():
    q, k, v = _qkv(n=40)
    out = causal_linear_attention(q, k, v, chunk_size=8)
    k2, v2 = k.clone(), v.clone()
    k2[..., 20:, :] += 5.0
    v2[..., 20:, :] -= 3.0
    out2 = causal_linear_attention(q, k2, v2, chunk_size=8)
    torch.testing.assert_close(out[..., :20, :], out2[..., :20, :], rtol=0, atol=0)
    assert (out[..., 20:, :] - out2[..., 20:, :]).abs().max() > 1e-2


def test_causal_broadcast_batch_and_grad():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 1, 9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 3, 9, 4, generator=g, dtype=torch.float64)
    v = torch.randn(9, 2, generator=g, dtype=torch.float64)
    out = causal_linear_attention(q, k, v, chunk_size=4)
    assert out.shape == (2, 3, 9, 2)
    ref = general_attention(q, k, v, _kernel_sim("elu+1"), causal=True, eps=1e-6)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    qs = q[:1, :, :5, :3].detach().clone().requires_grad_(True)  # gradcheck on a small slice (15 entries)
    assert torch.autograd.gradcheck(lambda x: causal_linear_attention(x, k[..., :5, :3], v[:5], chunk_size=2), (qs,))


# ---- peer library: performer-pytorch ----------------------------------------------------------------
def test_matches_performer_pytorch():
    perf = pytest.importorskip("performer_pytorch.performer_pytorch")
    q, k, v = _qkv(b=2, h=2, n=256, d=16, dv=16, dtype=torch.float32)
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    # performer's linear_attention has no eps: compare with a tiny one
    torch.testing.assert_close(linear_attention(q, k, v, eps=1e-12), perf.linear_attention(fq, fk, v),
                               rtol=0, atol=1e-5)
    # performer adds eps to every entry of the key prefix sum: pass eps=0 there, 1e-12 here
    ref = perf.causal_linear_attention_noncuda(elu_feature_map(q.double()), elu_feature_map(k.double()), v.double(),
                                               eps=0.0)
    torch.testing.assert_close(causal_linear_attention(q.double(), k.double(), v.double(), eps=1e-12), ref,
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(causal_linear_attention(q, k, v, eps=1e-12), ref.float(), rtol=0, atol=1e-5)


# ---- Efficient Attention and Linformer ---------------------------------------------------------------
def test_efficient_attention_rows_normalised():
    q, k, _ = _qkv()
    w = torch.softmax(q, -1) @ torch.softmax(k, -2).mT
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w[..., 0]), rtol=0, atol=1e-13)


def test_linformer_matches_explicit_and_leaks():
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(12, 4, generator=g, dtype=torch.float64) for _ in range(3))
    e, f = torch.randn(3, 12, generator=g, dtype=torch.float64), torch.randn(3, 12, generator=g, dtype=torch.float64)
    out = linformer_attention(q, k, v, e, f)
    torch.testing.assert_close(out, torch.softmax(q @ (e @ k).T / 2.0, -1) @ (f @ v), rtol=0, atol=1e-13)
    v2 = v.clone()
    v2[-1] += 1.0  # change the last value only
    assert (linformer_attention(q, k, v2, e, f)[0] - out[0]).abs().max() > 1e-3  # position 0 sees it
    with pytest.raises(ValueError):
        linformer_attention(q, k, v, e[:, :5], f)


# ---- bad input -------------------------------------------------------------------------------------
def test_bad_inputs():
    q, k, v = _qkv(n=6)
    with pytest.raises(ValueError):
        linear_attention(q, k[..., :3], v)  # d mismatch
    with pytest.raises(ValueError):
        linear_attention(q, k, v[..., :4, :])  # m mismatch
    with pytest.raises(ValueError):
        causal_linear_attention(q[..., :4, :], k, v)  # n != m
    bad = q.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError):
        linear_attention(bad, k, v)
    with pytest.raises(ValueError):
        causal_linear_attention(bad, k, v)
    with pytest.raises(ValueError):
        linear_attention(q, k, v, feature_map="relu")
    with pytest.raises(ValueError):
        causal_linear_attention(q, k, v, feature_map="softmax")  # non-causal key map
    with pytest.raises(TypeError):
        linear_attention(q, k, v, feature_map=3)
    with pytest.raises(TypeError):
        linear_attention(q, k, v, feature_map=(torch.exp,))
    for eps in (0.0, -1e-6):
        with pytest.raises(ValueError):
            linear_attention(q, k, v, eps=eps)
        with pytest.raises(ValueError):
            causal_linear_attention(q, k, v, eps=eps)
    with pytest.raises(ValueError):
        causal_linear_attention(q, k, v, chunk_size=0)
    with pytest.raises(TypeError):
        causal_linear_attention(q, k, v, chunk_size=2.5)
    with pytest.raises(TypeError):
        linear_attention(q.numpy(), k, v)
    with pytest.raises(TypeError):
        linear_attention(q.long(), k, v)
    with pytest.raises(ValueError):
        general_attention(q, k, v, lambda a, b: a @ b.mT)  # negative similarities
    with pytest.raises(ValueError):
        linear_attention(q[:, :2], k[:, :, :], v)  # batch dims do not broadcast (2 vs 3 heads)


# ---- issue 9: real use (half precision, gradients at 0, padding, guards) ----------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n", [1024, 8192])
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_matches_float32(dtype, n, causal):
    """Sums of n ~ 1000 features pass float16's 65504: accumulate in float32, return the input dtype."""
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(1, 2, n, 64, generator=g).to(dtype) for _ in range(3))
    fn = causal_linear_attention if causal else linear_attention
    out = fn(q, k, v)
    assert out.dtype == dtype
    ref = fn(q.float(), k.float(), v.float())  # the same rounded inputs in float32 arithmetic
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert rel <= 1e-2, rel  # the bound; rounding the output alone gives ~5e-4 / 4e-3


def test_elu_feature_map_equals_elu_plus_one_in_value_and_gradient():
    x = torch.tensor([-60.0, -30.0, -1.0, -1e-9, 0.0, 1e-9, 1.0, 30.0], dtype=torch.float64, requires_grad=True)
    y = torch.ones_like(x).requires_grad_(False)
    ours = elu_feature_map(x)
    (g_ours,) = torch.autograd.grad(ours, x, y)
    ref = F.elu(x) + 1
    (g_ref,) = torch.autograd.grad(ref, x, y)
    # equal to elu(x) + 1 up to the rounding of e^x - 1 + 1 (one ulp of 1, 2^-52)
    torch.testing.assert_close(ours, ref, rtol=0, atol=2.0**-52)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-15, atol=0)
    assert g_ours[4].item() == 1.0  # at x = 0 the gradient is 1 (the issue: it was 2)
    assert ours.dtype == x.dtype and ours.shape == x.shape


def _real_key_reference(q, k, v, mask, fmap, causal):
    """Drop the padded keys by hand (one batch row at a time) and run the unpadded function."""
    outs = []
    for b in range(q.shape[0]):
        keep = mask[b]
        if causal:  # padded keys get zero features in the prefix sums: compare with general_attention
            sim = _kernel_sim(fmap)
            w = sim(q[b], k[b]) * keep[None, None, :].to(q.dtype)  # (h, n, m)
            w = w * torch.ones(q.shape[-2], q.shape[-2], dtype=torch.bool).tril()
            outs.append((w @ v[b]) / (w.sum(-1, keepdim=True) + 1e-6))
        else:
            outs.append(linear_attention(q[b], k[b][:, keep], v[b][:, keep], feature_map=fmap))
    return torch.stack(outs)


@pytest.mark.parametrize("fmap", ["elu+1", "1+qk", "softmax"])
def test_key_padding_mask_equals_dropping_the_padded_keys(fmap):
    q, k, v = _qkv(b=2, h=3, n=11, d=4, dv=5)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[0, 7:] = False  # right padding
    mask[1, :3] = False  # left padding
    k_pad, v_pad = k.clone(), v.clone()
    k_pad.masked_fill_(~mask[:, None, :, None], 1e3)  # huge padded keys: they would swamp softmax_1's sums
    v_pad.masked_fill_(~mask[:, None, :, None], -1e3)
    got = linear_attention(q, k_pad, v_pad, feature_map=fmap, key_padding_mask=mask[:, None, :])
    torch.testing.assert_close(got, _real_key_reference(q, k, v, mask, fmap, causal=False), rtol=0, atol=1e-12)
    if fmap != "softmax":
        got = causal_linear_attention(q, k_pad, v_pad, feature_map=fmap, key_padding_mask=mask[:, None, :], chunk_size=4)
        torch.testing.assert_close(got, _real_key_reference(q, k, v, mask, fmap, causal=True), rtol=0, atol=1e-12)


def test_key_padding_mask_bad_input():
    q, k, v = _qkv(n=6)
    for fn in (linear_attention, causal_linear_attention):
        with pytest.raises(TypeError, match="key_padding_mask"):
            fn(q, k, v, key_padding_mask=torch.ones(6))  # not boolean
        with pytest.raises(ValueError, match="key_padding_mask"):
            fn(q, k, v, key_padding_mask=torch.ones(5, dtype=torch.bool))  # wrong m


def test_causal_rejects_non_causal_maps_by_property():
    q, k, v = _qkv(n=6)
    with pytest.raises(ValueError, match="causal"):
        causal_linear_attention(q, k, v, feature_map=resolve_feature_maps("softmax"))  # the pair, not the name
    with pytest.raises(ValueError, match="causal"):
        causal_linear_attention(q, k, v, feature_map=(torch.exp, lambda x: torch.softmax(x, dim=-2)))  # a user's
    with pytest.raises(ValueError, match="causal"):
        causal_linear_attention_recurrent(q, k, v, feature_map=resolve_feature_maps("softmax"))
    # per-position maps pass, also as a pair
    out = causal_linear_attention(q, k, v, feature_map=(elu_feature_map, torch.exp))
    ref = general_attention(q, k, v, lambda a, b: elu_feature_map(a) @ torch.exp(b).mT, causal=True, eps=1e-6)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
