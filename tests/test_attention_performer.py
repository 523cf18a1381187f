"""Tests for kexue_core.attention.performer (Performer / FAVOR+ random features)."""
import math

import pytest
import torch
from scipy import stats

from kexue_core.attention import (
    chi_quantile_norms,
    draw_random_features,
    performer_attention,
    positive_random_features,
    random_feature_relative_variance,
    softmax_kernel_estimate,
    trigonometric_random_features,
)

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- draw_random_features
@pytest.mark.parametrize("kind", ["iid", "orthogonal", "orthogonal_quantile"])
def test_draw_shape_dtype_and_determinism(kind):
    a = draw_random_features(19, 8, kind=kind, generator=gen(1), dtype=F64)
    b = draw_random_features(19, 8, kind=kind, generator=gen(1), dtype=F64)
    c = draw_random_features(19, 8, kind=kind, generator=gen(2), dtype=F64)
    assert a.shape == (19, 8) and a.dtype == F64
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_orthogonal_blocks_are_orthogonal_with_chi_norms():
    d, m = 8, 2 * 8 + 3  # two full blocks and a truncated one (m > d)
    W = draw_random_features(m, d, kind="orthogonal", generator=gen(0), dtype=F64)
    U = W / W.norm(dim=1, keepdim=True)
    for start in range(0, m, d):
        blk = U[start:start + d]
        assert torch.allclose(blk @ blk.T, torch.eye(blk.shape[0], dtype=F64), atol=1e-12)
    # rows of different blocks are not orthogonal in general
    assert (U[:d] @ U[d:2 * d].T).abs().max() > 0.1
    # the norms are chi(d), not all equal (rows of a plain orthogonal matrix would all have norm 1)
    norms = draw_random_features(2560, d, generator=gen(1), dtype=F64).norm(dim=1)
    assert stats.kstest(norms.numpy(), stats.chi(df=d).cdf).pvalue > 1e-3
    iid_norms = torch.ones(2560, dtype=F64) * math.sqrt(d)  # what a fixed-norm (scaling=1) draw would give
    assert stats.kstest(iid_norms.numpy(), stats.chi(df=d).cdf).pvalue < 1e-6


def test_orthogonal_directions_are_isotropic():
    # Haar directions: the first coordinate of the first unit row has mean 0 and variance 1/d
    d = 6
    W = draw_random_features(3000 * d, d, generator=gen(0), dtype=F64)
    u = W[::d, 0] / W[::d].norm(dim=1)  # first row of each of the 3000 independent blocks
    se = math.sqrt(1 / d / 3000)
    assert abs(u.mean().item()) < 4 * se
    assert abs((u**2).mean().item() - 1 / d) < 0.1 / d


def test_quantile_norms_match_scipy_and_are_used():
    R = chi_quantile_norms(5, 3, dtype=F64)
    ref = stats.chi(df=3).ppf([i / 6 for i in range(1, 6)])
    assert torch.allclose(R, torch.tensor(ref, dtype=F64), rtol=1e-12)
    W = draw_random_features(5, 3, kind="orthogonal_quantile", generator=gen(0), dtype=F64)
    assert torch.allclose(W.norm(dim=1).sort().values, R, rtol=1e-12)


@pytest.mark.parametrize("m,d", [(0, 4), (4, 0), (-1, 3)])
def test_draw_rejects_nonpositive_sizes(m, d):
    with pytest.raises(ValueError):
        draw_random_features(m, d)


def test_draw_rejects_unknown_kind_and_non_int():
    with pytest.raises(ValueError):
        draw_random_features(4, 4, kind="sobol")
    with pytest.raises(TypeError):
        draw_random_features(4.0, 4)


# ---------------------------------------------------------------- features: exact values
def test_positive_features_exact_value_single_omega():
    # one ω: φ(x) = exp(ω·x − ‖x‖²/2); fails if the −‖x‖²/2 (or the 1/√m) is changed
    x = torch.tensor([[0.3, -0.7, 1.1]], dtype=F64)
    w = torch.tensor([[0.5, 0.2, -1.0]], dtype=F64)
    got = positive_random_features(x, w)
    assert torch.allclose(got, torch.exp(x @ w.T - 0.5 * (x**2).sum()), rtol=1e-14)
    W2 = torch.cat([w, torch.zeros_like(w)])  # m = 2: second feature is exp(−‖x‖²/2)/√2
    got2 = positive_random_features(x, W2)
    expect = torch.exp(torch.stack([(x @ w.T)[0, 0], torch.tensor(0.0, dtype=F64)]) - 0.5 * (x**2).sum()) / math.sqrt(2)
    assert torch.allclose(got2[0], expect, rtol=1e-14)


def test_trig_features_exact_value():
    x = torch.tensor([[0.3, -0.7]], dtype=F64)
    w = torch.tensor([[0.5, 0.2], [1.0, -2.0]], dtype=F64)
    got = trigonometric_random_features(x, w)
    p = (x @ w.T)[0]
    expect = math.exp(0.5 * (x**2).sum().item()) / math.sqrt(2) * torch.cat([p.cos(), p.sin()])
    assert got.shape == (1, 4) and torch.allclose(got[0], expect, rtol=1e-14)


def test_stabilize_modes_only_rescale():
    x = torch.randn(2, 5, 4, generator=gen(3), dtype=F64)
    W = draw_random_features(12, 4, generator=gen(4), dtype=F64)
    raw = positive_random_features(x, W)
    row = positive_random_features(x, W, stabilize="row")
    allm = positive_random_features(x, W, stabilize="all")
    r1, r2 = row / raw, allm / raw
    assert torch.allclose(r1, r1[..., :1].expand_as(r1), rtol=1e-12)  # constant per row
    assert not torch.allclose(r1[:, 0, 0], r1[:, 1, 0], rtol=1e-6)  # ...but differs between rows
    assert torch.allclose(r2, r2[:, :1, :1].expand_as(r2), rtol=1e-12)  # constant per (batch) slice
    assert row.amax(-1).sub(1).abs().max() < 1e-14 and allm.amax((-1, -2)).sub(1).abs().max() < 1e-14


def test_stabilized_features_do_not_overflow():
    x = 40 * torch.randn(6, 8, generator=gen(5), dtype=torch.float32)
    W = draw_random_features(16, 8, generator=gen(6), dtype=torch.float32)
    assert not torch.isfinite(torch.exp(x @ W.T)).all()  # the naive e^{Wx} overflows in float32
    assert torch.isfinite(positive_random_features(x, W, stabilize="row")).all()


# ---------------------------------------------------------------- unbiasedness (Monte Carlo)
@pytest.mark.parametrize("kind", ["iid", "orthogonal"])
@pytest.mark.parametrize("features", ["positive", "trigonometric"])
def test_kernel_estimate_is_unbiased(kind, features):
    d, blocks = 4, 20_000
    q = torch.tensor([[0.4, -0.3, 0.2, 0.5]], dtype=F64)
    k = torch.tensor([[0.1, 0.6, -0.4, 0.3]], dtype=F64)
    W = draw_random_features(d * blocks, d, kind=kind, generator=gen(7), dtype=F64)
    # per-block estimates are i.i.d. (blocks are independent), so their spread gives the standard error
    per_block = torch.stack([
        softmax_kernel_estimate(q, k, W[i:i + d * 500], features=features)[0, 0] for i in range(0, d * blocks, d * 500)
    ])
    est, se = per_block.mean().item(), per_block.std().item() / math.sqrt(len(per_block))
    exact = math.exp((q * k).sum().item())
    assert abs(est - exact) < 4 * se, (est, exact, se)
    assert se < 0.01 * exact  # the test has power: a 4% bias (e.g. a wrong constant) is detected


def test_wrong_norm_term_is_detected_by_monte_carlo():
    # the same MC setup with −‖x‖² instead of −‖x‖²/2 is biased by far more than 4 standard errors
    q = torch.tensor([[0.8, -0.3]], dtype=F64)
    k = torch.tensor([[0.5, 0.6]], dtype=F64)
    W = draw_random_features(100_000, 2, kind="iid", generator=gen(8), dtype=F64)
    good = softmax_kernel_estimate(q, k, W)[0, 0].item()
    bad = good * math.exp(-0.5 * (q**2).sum().item() - 0.5 * (k**2).sum().item())
    rel_se = math.sqrt(random_feature_relative_variance(q[0], k[0], 100_000).item())
    exact = math.exp((q * k).sum().item())
    assert abs(good / exact - 1) < 4 * rel_se
    assert abs(bad / exact - 1) > 20 * rel_se


@pytest.mark.parametrize("features", ["positive", "trigonometric"])
def test_relative_variance_formula_matches_monte_carlo(features):
    q = torch.tensor([0.5, -0.2, 0.3], dtype=F64)
    k = torch.tensor([0.3, 0.4, -0.6], dtype=F64)
    n = 400_000
    W = draw_random_features(n, 3, kind="iid", generator=gen(9), dtype=F64)
    fn = positive_random_features if features == "positive" else trigonometric_random_features
    fq, fk = fn(q[None], W)[0] * math.sqrt(n), fn(k[None], W)[0] * math.sqrt(n)
    single = fq * fk if features == "positive" else fq[:n] * fk[:n] + fq[n:] * fk[n:]  # one-ω estimates
    rel = single.var().item() / math.exp(2 * (q @ k).item())
    pred = random_feature_relative_variance(q, k, 1, features=features).item()
    # sample-variance error ~ sqrt(2/n + kurtosis/n) relative; 5% is > 5 standard errors here
    assert abs(rel / pred - 1) < 0.05, (rel, pred)
    assert random_feature_relative_variance(q, k, 8, features=features).item() == pytest.approx(pred / 8, rel=1e-14)


def test_trig_estimates_can_be_negative_positive_cannot():
    q = torch.tensor([[1.0, 0.0]], dtype=F64)
    k = -q
    for s in range(20):
        W = draw_random_features(4, 2, kind="iid", generator=gen(100 + s), dtype=F64)
        assert softmax_kernel_estimate(q, k, W)[0, 0] > 0
    vals = [softmax_kernel_estimate(q, k, draw_random_features(4, 2, kind="iid", generator=gen(100 + s), dtype=F64),
                                    features="trigonometric")[0, 0].item() for s in range(20)]
    assert min(vals) < 0


# ---------------------------------------------------------------- performer-pytorch oracle
def test_matches_performer_pytorch_softmax_kernel_and_linear_attention():
    pp = pytest.importorskip("performer_pytorch.performer_pytorch")
    b, h, n, d, m = 2, 3, 10, 16, 40
    torch.manual_seed(0)
    W = pp.gaussian_orthogonal_random_matrix(nb_rows=m, nb_columns=d, scaling=0).to(F64)
    q, k, v = (torch.randn(b, h, n, d, generator=gen(s), dtype=F64) for s in (10, 11, 12))
    theirs_q = pp.softmax_kernel(q, projection_matrix=W, is_query=True, eps=0.0)
    theirs_k = pp.softmax_kernel(k, projection_matrix=W, is_query=False, eps=0.0)
    c = d ** -0.25  # their data_normalizer: features of c·x approximate exp(q·k/√d)
    ours_q = positive_random_features(c * q, W)  # unstabilised
    ours_k = positive_random_features(c * k, W)
    # they subtract max_j (W c x)_j per query row and max over (n, m) of W c x for keys: undo that
    assert torch.allclose(ours_q * torch.exp(-(c * q @ W.T).amax(-1, keepdim=True)), theirs_q, rtol=1e-12, atol=0)
    assert torch.allclose(ours_k * torch.exp(-(c * k @ W.T).amax((-1, -2), keepdim=True)), theirs_k, rtol=1e-12, atol=0)
    # the normalised attention output is what both preserve
    out_theirs = pp.linear_attention(theirs_q, theirs_k, v)
    out_ours = performer_attention(q, k, v, W)
    assert torch.allclose(out_ours, out_theirs, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- performer_attention
def _softmax_attn(q, k, v, causal=False):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


def test_performer_attention_converges_to_softmax_attention():
    n, d = 32, 16
    q, k, v = (0.5 * torch.randn(n, d, generator=gen(s), dtype=F64) for s in (20, 21, 22))
    exact = _softmax_attn(q, k, v)
    errs = []
    for m in (16, 256, 4096):
        e = [(performer_attention(q, k, v, draw_random_features(m, d, generator=gen(30 + s), dtype=F64)) - exact)
             .pow(2).mean().item() for s in range(4)]
        errs.append(sum(e) / len(e))
    assert errs[0] > 4 * errs[1] > 16 * errs[2]  # MSE ~ 1/m: 16x more features -> >= 4x smaller error
    assert errs[2] < 1e-4


def test_performer_attention_scale_and_explicit_formula():
    n, d, m = 7, 4, 9
    q, k, v = (torch.randn(2, n, d, generator=gen(s), dtype=F64) for s in (40, 41, 42))
    W = draw_random_features(m, d, generator=gen(43), dtype=F64)
    for scale in (None, 0.3):
        lam = 1 / math.sqrt(d) if scale is None else scale
        A = softmax_kernel_estimate(math.sqrt(lam) * q, math.sqrt(lam) * k, W)  # unstabilised φ(Q)φ(K)ᵀ
        ref = (A / A.sum(-1, keepdim=True)) @ v
        assert torch.allclose(performer_attention(q, k, v, W, scale=scale), ref, rtol=1e-12, atol=1e-13)
        Ac = A.tril()
        ref_c = (Ac / Ac.sum(-1, keepdim=True)) @ v
        assert torch.allclose(performer_attention(q, k, v, W, scale=scale, causal=True), ref_c, rtol=1e-9, atol=1e-10)


def test_causal_performer_converges_to_causal_softmax():
    n, d = 24, 8
    q, k, v = (0.5 * torch.randn(n, d, generator=gen(s), dtype=F64) for s in (50, 51, 52))
    W = draw_random_features(8192, d, generator=gen(53), dtype=F64)
    err = (performer_attention(q, k, v, W, causal=True) - _softmax_attn(q, k, v, causal=True)).abs().max()
    assert err < 0.02


def test_performer_attention_bad_input():
    q = torch.randn(5, 4, dtype=F64)
    W = draw_random_features(8, 4, dtype=F64)
    with pytest.raises(ValueError):
        performer_attention(q, torch.randn(5, 3, dtype=F64), q, W)  # d mismatch
    with pytest.raises(ValueError):
        performer_attention(q, q, torch.randn(6, 4, dtype=F64), W)  # n_k mismatch
    with pytest.raises(ValueError):
        performer_attention(q, q, q, draw_random_features(8, 3, dtype=F64))  # W has wrong d
    with pytest.raises(ValueError):
        performer_attention(q, q, q, W, scale=-1.0)
    with pytest.raises(TypeError):
        performer_attention(q, q, q, W, scale="big")
    with pytest.raises(ValueError):
        performer_attention(q, torch.randn(6, 4, dtype=F64), torch.randn(6, 4, dtype=F64), W, causal=True)
    bad = q.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError):
        performer_attention(bad, q, q, W)
    with pytest.raises(TypeError):
        performer_attention(q.long(), q, q, W)


def test_feature_functions_bad_input():
    x = torch.randn(3, 4, dtype=F64)
    W = draw_random_features(5, 4, dtype=F64)
    with pytest.raises(ValueError):
        positive_random_features(x, W[:, :3])
    with pytest.raises(ValueError):
        positive_random_features(x, W[None])
    with pytest.raises(ValueError):
        positive_random_features(x, W, stabilize="col")
    with pytest.raises(TypeError):
        positive_random_features(x.float(), W)
    with pytest.raises(ValueError):
        trigonometric_random_features(torch.full((2, 4), float("nan"), dtype=F64), W)
    with pytest.raises(ValueError):
        softmax_kernel_estimate(x, x, W, features="relu")
    with pytest.raises(ValueError):
        random_feature_relative_variance(x[0], x[0, :3])
    with pytest.raises(ValueError):
        random_feature_relative_variance(x[0], x[0], 0)
    with pytest.raises(ValueError):
        chi_quantile_norms(0, 3)


def test_features_of_a_single_vector():
    # x: (d,) is allowed and gives the same features as the row of a (1, d) batch, for every stabiliser
    W = draw_random_features(16, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = torch.randn(4, dtype=F64, generator=torch.Generator().manual_seed(1))
    for stabilize in (None, "row", "all"):
        one = positive_random_features(x, W, stabilize=stabilize)
        assert one.shape == (16,)
        torch.testing.assert_close(one, positive_random_features(x[None], W, stabilize=stabilize)[0], rtol=0, atol=1e-15)


def test_relative_variance_default_is_one_feature():
    q = torch.tensor([0.3, -0.2], dtype=F64)
    k = torch.tensor([0.1, 0.4], dtype=F64)
    assert random_feature_relative_variance(q, k).item() == pytest.approx(math.expm1(0.4**2 + 0.2**2), rel=1e-14)


# ---------------------------------------------------------------- issue 9: causality, padding
def _causal_performer_reference(q, k, v, W, scale=None, keep=None):
    """Unstabilised phi(Q) phi(K)^T, lower triangle, padded keys dropped, normalised (float64)."""
    lam = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    A = softmax_kernel_estimate(math.sqrt(lam) * q, math.sqrt(lam) * k, W).tril()
    if keep is not None:
        A = A * keep[..., None, :].to(A.dtype)
    return (A @ v) / A.sum(-1, keepdim=True)


def test_causal_performer_does_not_leak_future_keys_float32():
    """A large key at position j > i must not move output i beyond float32 rounding (one global
    max over all positions as key stabiliser did: 4.8e-3 at 1eb4054)."""
    n, d, m = 96, 64, 128
    q, k = (3.5 * torch.randn(2, n, d, generator=gen(s)) for s in (60, 61))
    v = torch.randn(2, n, d, generator=gen(62))
    W = draw_random_features(m, d, generator=gen(63))
    out = performer_attention(q, k, v, W, causal=True)
    k2 = k.clone()
    k2[:, 70, :] = W[W.norm(dim=1).argmax()] * d**0.25  # scaled by d^(-1/4) it is the longest omega: largest exponent
    out2 = performer_attention(q, k2, v, W, causal=True)
    leak = (out2[:, :70] - out[:, :70]).abs().max().item()
    assert leak <= 1e-5, leak  # float32 rounding of outputs of size ~1 (1.68 at 1eb4054)
    assert (out2[:, 70:] - out[:, 70:]).abs().max() > 1e-2  # the perturbation does reach j >= 70


def test_causal_performer_exact_in_float64():
    n, d, m = 150, 8, 33  # three chunks of 64: the prefix states across chunks are used
    q, k, v = (torch.randn(3, n, d, generator=gen(s), dtype=F64) for s in (64, 65, 66))
    k[:, 100] *= 6  # a large key mid-sequence: the running maximum jumps inside chunk 1
    W = draw_random_features(m, d, generator=gen(67), dtype=F64)
    for scale in (None, 0.7):
        got = performer_attention(q, k, v, W, scale=scale, causal=True)
        torch.testing.assert_close(got, _causal_performer_reference(q, k, v, W, scale), rtol=0, atol=1e-12)


def test_performer_key_padding_mask():
    n, d, m = 140, 8, 40  # three chunks of 64
    q, k, v = (torch.randn(2, n, d, generator=gen(s), dtype=F64) for s in (70, 71, 72))
    W = draw_random_features(m, d, generator=gen(73), dtype=F64)
    keep = torch.ones(2, n, dtype=torch.bool)
    keep[0, 90:] = False
    keep[1, :2] = False
    keep[1, 60:70] = False  # padding across a chunk boundary
    k_pad = k.clone()
    k_pad[~keep] = 40.0  # padded keys whose exponents would dominate any max over all keys
    got = performer_attention(q, k_pad, v, W, key_padding_mask=keep)
    for b in range(2):
        ref = performer_attention(q[b], k[b][keep[b]], v[b][keep[b]], W)
        torch.testing.assert_close(got[b], ref, rtol=0, atol=1e-12)
    got_c = performer_attention(q, k_pad, v, W, causal=True, key_padding_mask=keep)
    ref_c = _causal_performer_reference(q, k, v, W, keep=keep)
    torch.testing.assert_close(got_c[1, 2:], ref_c[1, 2:], rtol=0, atol=1e-12)
    torch.testing.assert_close(got_c[0], ref_c[0], rtol=0, atol=1e-12)
    assert (got_c[1, :2] == 0).all()  # queries that see no real key: output 0 (empty sum)
