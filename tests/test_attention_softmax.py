"""Tests of kexue_core.attention.softmax (softmax attention, row entropy, entropy-invariant scale)."""
import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from kexue_core.attention import (
    attention_entropy,
    entropy_invariant_attention,
    entropy_invariant_scale,
    mean_field_entropy_lower_bound,
    softmax_attention,
)


def _qkv(*batch, n=5, m=7, d=8, dv=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, n, d, generator=g, dtype=dtype)
    k = torch.randn(*batch, m, d, generator=g, dtype=dtype)
    v = torch.randn(*batch, m, dv, generator=g, dtype=dtype)
    return q, k, v


# ---------------------------------------------------------------- softmax_attention
def test_matches_definition_float64():
    q, k, v = _qkv(n=4, m=6, d=5)
    out, probs = softmax_attention(q, k, v, scale=0.3)
    logits = 0.3 * q @ k.T
    want_p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(-1, keepdims=True)
    np.testing.assert_allclose(probs.numpy(), want_p, rtol=1e-13, atol=0)
    np.testing.assert_allclose(out.numpy(), want_p @ v.numpy(), rtol=1e-12, atol=1e-14)
    assert out.shape == (4, 3) and probs.shape == (4, 6)


@pytest.mark.parametrize("scale", [None, 0.05, 0.4])
def test_equals_sdpa_float32_batch_heads(scale):
    # logits |λ q·k| of order 1, so float32 round-off stays below 1e-6 (at λ = 1.7, logits ~ 7,
    # the two float32 computations differ by ~1.4e-6)
    q, k, v = _qkv(2, 3, n=9, m=11, d=16, dv=4, dtype=torch.float32)
    out, probs = softmax_attention(q, k, v, scale=scale)
    want = F.scaled_dot_product_attention(q, k, v, scale=scale)
    assert out.shape == (2, 3, 9, 4) and probs.shape == (2, 3, 9, 11)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)


def test_equals_sdpa_with_mask_float32():
    q, k, v = _qkv(2, 2, n=6, m=6, d=8, dtype=torch.float32, seed=1)
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(2, 1, 6, 6, generator=g) > 0.4
    mask[..., 0] = True  # every row keeps a key
    out, probs = softmax_attention(q, k, v, scale=0.2, mask=mask)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.2)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)
    assert (probs.masked_select(~mask.expand_as(probs)) == 0).all()
    # a causal mask equals is_causal=True
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    out_c, _ = softmax_attention(q, k, v, mask=causal)
    torch.testing.assert_close(out_c, F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=0, atol=1e-6)


def test_tensor_scale_per_query_row():
    q, k, v = _qkv(n=4, m=6, d=5)
    s = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64).unsqueeze(-1)
    out, _ = softmax_attention(q, k, v, scale=s)
    for i in range(4):
        row, _ = softmax_attention(q[i : i + 1], k, v, scale=float(s[i]))
        torch.testing.assert_close(out[i : i + 1], row, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"q": torch.zeros(3, 4), "k": torch.zeros(5, 3), "v": torch.zeros(5, 2)}, ValueError),  # d mismatch
        ({"q": torch.zeros(3, 4), "k": torch.zeros(5, 4), "v": torch.zeros(6, 2)}, ValueError),  # m mismatch
        ({"q": torch.zeros(4), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2)}, ValueError),  # 1-D q
        ({"q": torch.zeros(3, 4, dtype=torch.int64), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2)}, TypeError),
        ({"q": np.zeros((3, 4)), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2)}, TypeError),
        ({"q": torch.full((3, 4), math.nan), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2)}, ValueError),
        ({"q": torch.zeros(3, 4), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2), "mask": torch.ones(3, 5)}, TypeError),
        ({"q": torch.zeros(3, 4), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2), "mask": torch.ones(3, 4, dtype=torch.bool)}, ValueError),
        ({"q": torch.zeros(3, 4), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2), "mask": torch.zeros(3, 5, dtype=torch.bool)}, ValueError),
        ({"q": torch.zeros(3, 4), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2), "scale": math.nan}, ValueError),
        ({"q": torch.zeros(3, 4), "k": torch.zeros(5, 4), "v": torch.zeros(5, 2), "scale": "0.5"}, TypeError),
        ({"q": torch.zeros(2, 3, 4), "k": torch.zeros(3, 5, 4), "v": torch.zeros(3, 5, 2)}, ValueError),  # batch
        ({"q": torch.zeros(3, 4), "k": torch.zeros(0, 4), "v": torch.zeros(0, 2)}, ValueError),  # no keys
    ],
)
def test_softmax_attention_bad_input(kwargs, err):
    with pytest.raises(err):
        softmax_attention(kwargs.pop("q"), kwargs.pop("k"), kwargs.pop("v"), **kwargs)


# ---------------------------------------------------------------- attention_entropy
def test_entropy_matches_scipy_and_entr():
    q, k, v = _qkv(2, n=5, m=50, d=8, seed=2)
    _, p = softmax_attention(q, k, v, scale=0.7)
    h = attention_entropy(p)
    assert h.shape == (2, 5)
    np.testing.assert_allclose(h.numpy(), scipy.stats.entropy(p.numpy(), axis=-1), rtol=1e-13, atol=0)
    torch.testing.assert_close(h, -(p * p.log()).sum(-1), rtol=1e-13, atol=0)


def test_entropy_zero_log_zero_and_extremes():
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.25] * 4], dtype=torch.float64)
    h = attention_entropy(p)
    torch.testing.assert_close(h, torch.tensor([0.0, math.log(2), math.log(4)], dtype=torch.float64), rtol=0, atol=1e-15)
    # masked attention rows have exact zeros and must not produce NaN
    q, k, v = _qkv(n=4, m=4)
    _, pc = softmax_attention(q, k, v, mask=torch.ones(4, 4, dtype=torch.bool).tril())
    hc = attention_entropy(pc)
    assert torch.isfinite(hc).all() and hc[0] == 0


def test_entropy_float32_large_m_accepted():
    q, k, v = _qkv(n=3, m=4096, d=8, dtype=torch.float32)
    _, p = softmax_attention(q, k, v)
    h = attention_entropy(p)
    np.testing.assert_allclose(h.numpy(), scipy.stats.entropy(p.double().numpy(), axis=-1), rtol=1e-5)


@pytest.mark.parametrize(
    "p, err",
    [
        (torch.tensor([[0.5, 0.6]]), ValueError),  # row sums to 1.1
        (torch.tensor([[1.5, -0.5]]), ValueError),  # negative entry
        (torch.tensor([[math.nan, 1.0]]), ValueError),
        (torch.tensor([[1, 0]]), TypeError),
        ([[0.5, 0.5]], TypeError),
    ],
)
def test_entropy_bad_input(p, err):
    with pytest.raises(err):
        attention_entropy(p)


# ---------------------------------------------------------------- entropy_invariant_scale
def test_scale_values():
    assert entropy_invariant_scale(512, 64) == pytest.approx(1 / 8, rel=1e-15)
    assert entropy_invariant_scale(1, 64) == 0.0
    assert entropy_invariant_scale(4096, 16) == pytest.approx((4 / 3) / 4, rel=1e-15)  # log_512 4096 = 4/3
    # train_len matters: with 256 instead of 512 the scale at n = 512 is 9/8 of 1/sqrt(d)
    assert entropy_invariant_scale(512, 64, train_len=256) == pytest.approx(9 / 64, rel=1e-15)
    assert entropy_invariant_scale(512, 64) != pytest.approx(entropy_invariant_scale(512, 64, train_len=256), rel=1e-3)
    assert entropy_invariant_scale(64, 64, train_len=64) == pytest.approx(1 / 8, rel=1e-15)


def test_scale_default_train_len_is_512():
    # would fail if the default calibration length were changed (e.g. to 256)
    for d in (1, 16, 64, 128):
        assert entropy_invariant_scale(512, d) == pytest.approx(1 / math.sqrt(d), rel=1e-15)
        assert entropy_invariant_scale(256, d) == pytest.approx(8 / 9 / math.sqrt(d), rel=1e-15)


def test_scale_tensor_n():
    n = torch.tensor([1, 8, 512, 4096])
    s = entropy_invariant_scale(n, 64)
    assert s.dtype == torch.float64 and s.shape == (4,)
    torch.testing.assert_close(s, torch.tensor([0.0, 1 / 24, 1 / 8, 1 / 6], dtype=torch.float64), rtol=1e-15, atol=0)
    torch.testing.assert_close(entropy_invariant_scale(n.double(), 64), s)


@pytest.mark.parametrize(
    "args, kw, err",
    [
        ((0, 64), {}, ValueError),
        ((-3, 64), {}, ValueError),
        ((512, 0), {}, ValueError),
        ((512, 64), {"train_len": 1}, ValueError),
        ((512.5, 64), {}, TypeError),
        ((512, 64.0), {}, TypeError),
        ((True, 64), {}, TypeError),
        ((torch.tensor([0, 3]), 64), {}, ValueError),
        ((torch.tensor([2.5]), 64), {}, TypeError),
    ],
)
def test_scale_bad_input(args, kw, err):
    with pytest.raises(err):
        entropy_invariant_scale(*args, **kw)


# ---------------------------------------------------------------- entropy_invariant_attention
def test_entropy_invariant_attention_equals_sdpa_float32():
    for m in (64, 512, 1000):
        q, k, v = _qkv(2, 4, n=7, m=m, d=32, dtype=torch.float32, seed=m)
        out, probs = entropy_invariant_attention(q, k, v)
        want = F.scaled_dot_product_attention(q, k, v, scale=math.log(m, 512) / math.sqrt(32))
        torch.testing.assert_close(out, want, rtol=0, atol=1e-6)
    # at m = 512 it is standard attention
    q, k, v = _qkv(n=7, m=512, d=32, dtype=torch.float32)
    torch.testing.assert_close(entropy_invariant_attention(q, k, v)[0], F.scaled_dot_product_attention(q, k, v), rtol=0, atol=1e-6)


def test_entropy_invariant_attention_causal():
    n, d = 10, 16
    q, k, v = _qkv(3, n=n, m=n, d=d, dtype=torch.float32, seed=4)
    out, probs = entropy_invariant_attention(q, k, v, causal=True, train_len=8)
    row_scale = (torch.log(torch.arange(1, n + 1, dtype=torch.float64)) / (math.log(8) * math.sqrt(d))).float()
    want = F.scaled_dot_product_attention(q * row_scale[:, None], k, v, is_causal=True, scale=1.0)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)
    assert (probs.triu(1) == 0).all()
    torch.testing.assert_close(probs[..., 0, 0], torch.ones(3))  # first query: one visible key
    # query i sees i + 1 keys: its row equals non-causal E-attention over the first i + 1 keys
    i = 6
    row, _ = entropy_invariant_attention(q[:, i : i + 1], k[:, : i + 1], v[:, : i + 1], train_len=8)
    torch.testing.assert_close(out[:, i : i + 1], row, rtol=0, atol=1e-6)


def test_entropy_invariant_attention_bad_input():
    q, k, v = _qkv(n=4, m=6)
    with pytest.raises(ValueError):
        entropy_invariant_attention(q, k, v, causal=True)  # n != m
    with pytest.raises(ValueError):
        entropy_invariant_attention(q, k, v, train_len=1)
    with pytest.raises(ValueError):
        entropy_invariant_attention(q, k[:, :5], v)


# ---------------------------------------------------------------- mean_field_entropy_lower_bound
def test_lower_bound_value_and_equality_case():
    s = torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]], dtype=torch.float64)
    lb = mean_field_entropy_lower_bound(s, 0.5)
    torch.testing.assert_close(lb, torch.tensor([math.log(3) - 0.5 * (4 - 7 / 3), math.log(3)], dtype=torch.float64))
    h = attention_entropy(torch.softmax(0.5 * s, -1))
    assert h[1].item() == pytest.approx(lb[1].item(), abs=1e-15)  # equal scores: equality
    assert h[0] > lb[0]


def test_lower_bound_holds_on_random_scores():
    g = torch.Generator().manual_seed(7)
    for n in (2, 10, 300):
        s = 3 * torch.randn(2000, n, generator=g, dtype=torch.float64)
        for lam in (0.01, 0.3, 1.0, 5.0):
            h = attention_entropy(torch.softmax(lam * s, -1))
            assert (mean_field_entropy_lower_bound(s, lam) <= h + 1e-12).all()


@pytest.mark.parametrize(
    "s, lam, err",
    [
        (torch.zeros(3), 0.0, ValueError),
        (torch.zeros(3), -1.0, ValueError),
        (torch.zeros(3), math.nan, ValueError),
        (torch.zeros(3), math.inf, ValueError),
        (torch.zeros(3), "1", TypeError),
        (torch.tensor([1.0, math.nan]), 1.0, ValueError),
        (torch.zeros(()), 1.0, ValueError),
        ([1.0, 2.0], 1.0, TypeError),
    ],
)
def test_lower_bound_bad_input(s, lam, err):
    with pytest.raises(err):
        mean_field_entropy_lower_bound(s, lam)


def test_mask_row_without_keys_is_rejected_even_if_every_key_is_used():
    # row 1 may attend nowhere, though every key column is allowed by some row
    q, k, v = torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 3)
    mask = torch.tensor([[True, True], [False, False]])
    with pytest.raises(ValueError):
        softmax_attention(q, k, v, mask=mask)


def test_entropy_of_a_single_distribution_and_shortest_train_len():
    p = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    assert attention_entropy(p).item() == pytest.approx(1.5 * math.log(2), rel=1e-14)
    # train_len = 2 is the smallest that has a log: the scale at n = 2 is 1/sqrt(d)
    assert entropy_invariant_scale(2, 16, train_len=2) == pytest.approx(0.25, rel=1e-14)


# ---------------------------------------------------------------- issue 9: SDPA path, guards, padding
def test_need_weights_false_goes_through_sdpa(monkeypatch):
    q, k, v = _qkv(2, 3, n=6, m=9, dtype=torch.float32)
    mask = torch.rand(6, 9, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[:, 0] = True
    scale = torch.linspace(0.1, 0.9, 6)[:, None]  # per-query (n, 1) scale
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*a, **kw):
        calls.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    for kw in ({}, {"mask": mask}, {"scale": 0.3}, {"scale": scale, "mask": mask}):
        out, probs = softmax_attention(q, k, v, need_weights=False, **kw)
        assert probs is None
        want, _ = softmax_attention(q, k, v, **kw)
        torch.testing.assert_close(out, want, rtol=0, atol=1e-6)
    assert len(calls) == 4


def test_scale_must_broadcast_to_query_rows():
    q, k, v = _qkv(n=5, m=7)
    with pytest.raises(ValueError, match="scale"):
        softmax_attention(q, k, v, scale=torch.ones(7, dtype=torch.float64))  # per key: would scale columns
    with pytest.raises(ValueError, match="scale"):
        softmax_attention(q, k, v, scale=torch.ones(5, dtype=torch.float64))  # (n,) broadcasts over keys too
    with pytest.raises(ValueError, match="scale"):
        softmax_attention(q, k, v, scale=torch.ones(4, 1, dtype=torch.float64))  # wrong n
    for ok in (torch.tensor(0.3, dtype=torch.float64), torch.ones(5, 1, dtype=torch.float64), torch.ones(1, 1)):
        softmax_attention(q, k, v, scale=ok)


def test_entropy_invariant_attention_counts_only_real_keys():
    q, k, v = _qkv(2, n=4, m=9, d=8, seed=3)
    keep = torch.ones(2, 9, dtype=torch.bool)
    keep[0, 6:] = False
    keep[1, :1] = False
    out, probs = entropy_invariant_attention(q, k, v, key_padding_mask=keep, train_len=16)
    for b in range(2):
        ref, _ = entropy_invariant_attention(q[b], k[b][keep[b]], v[b][keep[b]], train_len=16)
        torch.testing.assert_close(out[b], ref, rtol=0, atol=1e-12)
    assert (probs[~keep[:, None, :].expand_as(probs)] == 0).all()
    # causal: query i counts the real keys among 0..i
    qc, kc, vc = _qkv(2, n=7, m=7, d=8, seed=5)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[1, 2:4] = False
    out, _ = entropy_invariant_attention(qc, kc, vc, causal=True, key_padding_mask=keep, train_len=16)
    for i in range(7):
        vis = keep[1, : i + 1]
        ref, _ = entropy_invariant_attention(qc[1, i : i + 1], kc[1, : i + 1][vis], vc[1, : i + 1][vis], train_len=16)
        torch.testing.assert_close(out[1, i : i + 1], ref, rtol=0, atol=1e-12)


def test_lower_bound_ignores_masked_scores():
    s = torch.tensor([[1.0, 2.0, 4.0, -math.inf, -math.inf], [0.5, -math.inf, -math.inf, -math.inf, -math.inf]],
                     dtype=torch.float64)
    lb = mean_field_entropy_lower_bound(s, 0.5)
    assert torch.isfinite(lb).all()
    assert lb[0].item() == pytest.approx(math.log(3) - 0.5 * (4 - 7 / 3), rel=1e-14)  # n = 3 real scores
    assert lb[1].item() == 0.0  # one real score: the entropy is 0, the bound log 1 - 0 = 0
    h = attention_entropy(torch.softmax(0.5 * s, -1))
    assert (lb <= h + 1e-12).all()
    assert mean_field_entropy_lower_bound(torch.full((2, 4), -math.inf), 1.0).eq(0).all()  # no real key: 0
    with pytest.raises(ValueError, match=r"\+inf"):
        mean_field_entropy_lower_bound(torch.tensor([1.0, math.inf]), 1.0)
