"""kexue_core.losses against independent formulas (NumPy, probability form, pairwise form)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kexue_core.losses import (
    am_softmax_loss,
    f1_weighted_bce,
    logit_adjusted_cross_entropy,
    sigmoid_focal_loss,
    smooth_accuracy,
    smooth_f1,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def focal_reference(x, t, alpha=0.25, gamma=2.0):
    """Lin et al. (2017) eq. (5) as published (torchvision's docstring), in NumPy, probability form."""
    p = 1 / (1 + np.exp(-x))
    p_t = np.where(t == 1, p, 1 - p)
    alpha_t = np.where(t == 1, alpha, 1 - alpha) if alpha >= 0 else 1.0
    return -alpha_t * (1 - p_t) ** gamma * np.log(p_t)


def _binary(seed, n=200):
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(n, generator=g, dtype=torch.float64)
    t = (torch.rand(n, generator=g, dtype=torch.float64) < 0.3).double()
    return x, t


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (0.5, 0.0), (-1.0, 1.5), (0.9, 3.0)])
def test_focal_matches_published_formula(alpha, gamma):
    x, t = _binary(0)
    got = sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma).numpy()
    ref = focal_reference(x.numpy(), t.numpy(), alpha, gamma)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-14)


def test_focal_defaults_are_torchvisions():
    # torchvision: alpha=0.25, gamma=2, reduction="none"
    x, t = _binary(1)
    got = sigmoid_focal_loss(x, t)
    assert got.shape == x.shape
    np.testing.assert_allclose(got.numpy(), focal_reference(x.numpy(), t.numpy(), 0.25, 2.0), rtol=1e-10)


def test_focal_reductions_and_bce_limit():
    x, t = _binary(2)
    full = sigmoid_focal_loss(x, t, alpha=0.3, gamma=1.0)
    assert torch.allclose(sigmoid_focal_loss(x, t, alpha=0.3, gamma=1.0, reduction="mean"), full.mean())
    assert torch.allclose(sigmoid_focal_loss(x, t, alpha=0.3, gamma=1.0, reduction="sum"), full.sum())
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert torch.allclose(sigmoid_focal_loss(x, t, alpha=-1, gamma=0.0), bce, rtol=1e-12)


def test_focal_half_precision_and_torch_func():
    x, t = _binary(3, n=16)
    h = sigmoid_focal_loss(x.half(), t.half())
    assert h.dtype == torch.float16
    assert torch.allclose(h.double(), sigmoid_focal_loss(x, t), atol=2e-3, rtol=2e-2)
    # torch.func.grad agrees with autograd (the input checks are value checks, not traced)
    g_func = torch.func.grad(lambda a: sigmoid_focal_loss(a, t, reduction="sum"))(x)
    xr = x.clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(sigmoid_focal_loss(xr, t, reduction="sum"), xr)
    assert torch.allclose(g_func, g_auto, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"gamma": -1.0}, "gamma"), ({"alpha": 1.5}, "alpha"), ({"reduction": "avg"}, "reduction")],
)
def test_focal_bad_arguments(kwargs, match):
    x, t = _binary(0, 4)
    with pytest.raises(ValueError, match=match):
        sigmoid_focal_loss(x, t, **kwargs)


def test_focal_bad_tensors():
    x, t = _binary(0, 4)
    with pytest.raises(ValueError, match="targets"):
        sigmoid_focal_loss(x, t[:3])
    with pytest.raises(ValueError, match="targets"):
        sigmoid_focal_loss(x, t + 2)
    with pytest.raises(TypeError, match="logits"):
        sigmoid_focal_loss(x.long(), t)


def test_smooth_metrics_by_hand():
    p = torch.tensor([0.9, 0.2, 0.6, 0.1], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    assert math.isclose(float(smooth_accuracy(p, y)), (0.9 + 0.8 + 0.6 + 0.9) / 4, rel_tol=1e-12)
    assert math.isclose(float(smooth_f1(p, y)), 2 * 1.5 / (2 + 1.8), rel_tol=1e-12)
    with pytest.raises(ValueError, match="probs"):
        smooth_f1(p + 1, y)


def test_f1_weighted_bce_is_scaled_pos_weight_bce():
    x, t = _binary(4)
    c = float(smooth_f1(torch.sigmoid(x), t))
    ref = (c / 2) * torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((2 - c) / c, dtype=torch.float64))(x, t)
    assert torch.allclose(f1_weighted_bce(x, t), ref, rtol=1e-12)


def test_f1_weighted_bce_gradient_has_f1_detached():
    x, t = _binary(5)
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(f1_weighted_bce(x, t), x)
    p = torch.sigmoid(x.detach())
    c = float(2 * (t * p).sum() / (t + p).sum())
    # d/dx of the weighted CE with c constant: -(y (1 - c/2)(1 - p) - (1 - y)(c/2) p) / N
    expected = -(t * (1 - c / 2) * (1 - p) - (1 - t) * (c / 2) * p) / len(t)
    assert torch.allclose(g, expected, rtol=1e-10, atol=1e-15)


def test_f1_weighted_bce_bad_input():
    x, t = _binary(0, 4)
    with pytest.raises(ValueError, match="logits"):
        f1_weighted_bce(x.view(2, 2), t.view(2, 2))


def _multiclass(seed, n=50, c=4):
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    prior = torch.rand(c, generator=g, dtype=torch.float64) + 0.1
    return logits, y, prior / prior.sum()


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_matches_pairwise_margin_form(tau):
    logits, y, prior = _multiclass(0)
    lp = torch.log(prior)
    ref = []
    for zi, yi in zip(logits.numpy(), y.numpy()):
        s = sum(math.exp(zi[i] - zi[yi] + tau * (lp[i] - lp[yi])) for i in range(len(zi)) if i != yi)
        ref.append(math.log1p(s))
    assert math.isclose(float(logit_adjusted_cross_entropy(logits, y, prior, tau=tau)), np.mean(ref), rel_tol=1e-12)


def test_logit_adjusted_default_tau_is_one():
    logits, y, prior = _multiclass(1)
    assert torch.allclose(
        logit_adjusted_cross_entropy(logits, y, prior),
        logit_adjusted_cross_entropy(logits, y, prior, tau=1.0),
    )
    assert not torch.allclose(
        logit_adjusted_cross_entropy(logits, y, prior), F.cross_entropy(logits, y)
    )


def test_logit_adjusted_bad_input():
    logits, y, prior = _multiclass(2)
    with pytest.raises(ValueError, match="prior"):
        logit_adjusted_cross_entropy(logits, y, prior * 2)
    with pytest.raises(ValueError, match="prior"):
        logit_adjusted_cross_entropy(logits, y, prior[:3] / prior[:3].sum())
    with pytest.raises(ValueError, match="prior"):
        logit_adjusted_cross_entropy(logits, y, torch.tensor([0.0, 0.5, 0.25, 0.25], dtype=torch.float64))
    with pytest.raises(ValueError, match="tau"):
        logit_adjusted_cross_entropy(logits, y, prior, tau=-1.0)
    with pytest.raises(ValueError, match="target"):
        logit_adjusted_cross_entropy(logits, y + 10, prior)
    with pytest.raises(TypeError, match="target"):
        logit_adjusted_cross_entropy(logits, y.double(), prior)


def am_reference(emb, w, y, s, m):
    """log(1 + sum_{i != y} exp(s (cos_i + m - cos_y))), NumPy."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    c = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = e @ c.T
    out = []
    for ci, yi in zip(cos, y):
        out.append(np.log1p(sum(np.exp(s * (ci[i] + m - ci[yi])) for i in range(len(ci)) if i != yi)))
    return float(np.mean(out))


@pytest.mark.parametrize("s,m", [(30.0, 0.35), (10.0, 0.0), (5.0, 0.2), (64.0, 0.5)])
def test_am_softmax_matches_pairwise_form(s, m):
    g = torch.Generator().manual_seed(7)
    emb = torch.randn(40, 8, generator=g, dtype=torch.float64)
    w = torch.randn(5, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (40,), generator=g)
    got = float(am_softmax_loss(emb, w, y, scale=s, margin=m))
    assert math.isclose(got, am_reference(emb.numpy(), w.numpy(), y.numpy(), s, m), rel_tol=1e-10)


def test_am_softmax_defaults_and_margin_increases_loss():
    g = torch.Generator().manual_seed(8)
    emb = torch.randn(40, 8, generator=g, dtype=torch.float64)
    w = torch.randn(5, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (40,), generator=g)
    got = float(am_softmax_loss(emb, w, y))
    assert math.isclose(got, am_reference(emb.numpy(), w.numpy(), y.numpy(), 30.0, 0.35), rel_tol=1e-10)
    assert got > float(am_softmax_loss(emb, w, y, margin=0.0))
    # invariant to rescaling the inputs (normalised inside)
    assert math.isclose(got, float(am_softmax_loss(3 * emb, 0.5 * w, y)), rel_tol=1e-12)


def test_am_softmax_bad_input():
    emb = torch.randn(4, 8)
    w = torch.randn(3, 8)
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="class_weights"):
        am_softmax_loss(emb, torch.randn(3, 7), y)
    with pytest.raises(ValueError, match="margin"):
        am_softmax_loss(emb, w, y, margin=-0.1)
    with pytest.raises(ValueError, match="scale"):
        am_softmax_loss(emb, w, y, scale=0.0)
    with pytest.raises(ValueError, match="target"):
        am_softmax_loss(emb, w, y[:3])
    with pytest.raises(ValueError, match="target"):
        am_softmax_loss(emb, w, torch.tensor([0, 1, 2, 3]))


def test_am_softmax_matches_pytorch_metric_learning_cosface():
    from pytorch_metric_learning.losses import CosFaceLoss

    g = torch.Generator().manual_seed(9)
    emb = torch.randn(30, 16, generator=g, dtype=torch.float64)
    w = torch.randn(6, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (30,), generator=g)
    pml = CosFaceLoss(num_classes=6, embedding_size=16, margin=0.35, scale=30.0).double()
    with torch.no_grad():
        pml.W.copy_(w.T)
    assert math.isclose(float(am_softmax_loss(emb, w, y)), float(pml(emb, y).detach()), rel_tol=1e-10)
