"""Unit tests of kexue_core.regularization (post 7681), against independent NumPy/SciPy implementations."""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from kexue_core.nn import MLP
from kexue_core.regularization import (
    l2_penalty,
    l2_rebalancing_factor,
    layer_norms,
    rescale_layers,
    weissi_penalty,
)

DT = torch.float64


def _mlp(dims=(6, 5, 4, 3), bias=True, activation="relu", seed=0):
    torch.manual_seed(seed)
    m = MLP(list(dims), activation, bias=bias).to(DT)
    if bias:
        with torch.no_grad():
            for layer in m.layers:
                layer.bias.normal_(0.0, 0.5)
    return m


def _numpy_forward(ws, bs, x):
    """Independent forward pass of a ReLU MLP (last layer linear) in NumPy."""
    h = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w.T + (0 if b is None else b)
        if i < len(ws) - 1:
            h = np.maximum(h, 0.0)
    return h


def _params(m):
    ws = [layer.weight.detach().numpy().copy() for layer in m.layers]
    bs = [None if layer.bias is None else layer.bias.detach().numpy().copy() for layer in m.layers]
    return ws, bs


@pytest.mark.parametrize("gammas", [(2.0, 0.25, 2.0), (3.0, 0.7, 0.9), (0.5, 0.5, 0.5)])
def test_cumulative_scaling_multiplies_output_by_product(gammas):
    """Exact homogeneity: the rescaled ReLU net computes prod(gammas) times the original (NumPy oracle)."""
    m = _mlp()
    x = np.random.default_rng(1).normal(size=(20, 6))
    ws, bs = _params(m)
    r = rescale_layers(m, gammas)
    ws_r, bs_r = _params(r)
    cum = np.cumprod(gammas)
    for l, g in enumerate(gammas):
        np.testing.assert_allclose(ws_r[l], g * ws[l], rtol=1e-15)
        np.testing.assert_allclose(bs_r[l], cum[l] * bs[l], rtol=1e-15)
    y = _numpy_forward(ws, bs, x)
    y_r = r(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y_r, np.prod(gammas) * y, rtol=1e-12, atol=1e-12)


def test_cumulative_scaling_is_invariant_when_product_is_one():
    m = _mlp(seed=3)
    x = torch.randn(50, 6, dtype=DT)
    r = rescale_layers(m, [4.0, 0.125, 2.0])  # powers of two: exact in floating point
    assert torch.equal(r(x), m(x))


def test_per_layer_scaling_is_the_posts_form_and_breaks_invariance():
    m = _mlp(seed=4)
    ws, bs = _params(m)
    r = rescale_layers(m, [2.0, 0.25, 2.0], bias="per_layer")
    ws_r, bs_r = _params(r)
    for l, g in enumerate([2.0, 0.25, 2.0]):
        np.testing.assert_allclose(bs_r[l], g * bs[l], rtol=1e-15)
    x = torch.randn(50, 6, dtype=DT)
    assert (r(x) - m(x)).abs().max() > 1e-3


def test_bias_free_net_both_modes_agree_and_are_invariant():
    m = _mlp(bias=False, seed=5)
    x = torch.randn(30, 6, dtype=DT)
    a = rescale_layers(m, [2.0, 0.25, 2.0], bias="cumulative")
    b = rescale_layers(m, [2.0, 0.25, 2.0], bias="per_layer")
    assert torch.equal(a(x), b(x))
    torch.testing.assert_close(a(x), m(x), rtol=0, atol=1e-13)


def test_rescale_does_not_modify_input_and_accepts_tensor_gammas():
    m = _mlp()
    before = [p.detach().clone() for p in m.parameters()]
    r = rescale_layers(m, torch.tensor([2.0, 0.5, 1.0]))
    assert all(torch.equal(a, p) for a, p in zip(before, m.parameters()))
    assert r is not m and isinstance(r, MLP)


def test_rescale_layers_rejects_bad_input():
    m = _mlp()
    with pytest.raises(TypeError, match="model"):
        rescale_layers(torch.nn.Linear(2, 2), [1.0])
    with pytest.raises(ValueError, match="gammas"):
        rescale_layers(m, [1.0, 1.0])
    with pytest.raises(ValueError, match="gammas"):
        rescale_layers(m, [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="gammas"):
        rescale_layers(m, [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="gammas"):
        rescale_layers(m, [1.0, float("nan"), 1.0])
    with pytest.raises(ValueError, match="bias"):
        rescale_layers(m, [1.0, 1.0, 1.0], bias="layerwise")


def test_penalties_match_numpy():
    rng = np.random.default_rng(2)
    ws = [rng.normal(size=s) for s in [(5, 6), (4, 5), (3, 4)]]
    tw = [torch.tensor(w) for w in ws]
    l1, l2 = 0.7, 0.3
    expect = sum(l1 * np.log(np.sqrt((w**2).sum())) + l2 * np.abs(w).sum() / np.sqrt((w**2).sum()) for w in ws)
    assert abs(weissi_penalty(tw, lambda1=l1, lambda2=l2).item() - expect) < 1e-12
    assert abs(l2_penalty(tw).item() - sum((w**2).sum() for w in ws)) < 1e-12
    m = _mlp()
    np.testing.assert_allclose(layer_norms(m).numpy(), [np.linalg.norm(w) for w in _params(m)[0]], rtol=1e-14)


def test_weissi_is_invariant_l2_is_not():
    m = _mlp(seed=7)
    r = rescale_layers(m, [3.0, 0.5, 2 / 3])
    w0 = [layer.weight for layer in m.layers]
    w1 = [layer.weight for layer in r.layers]
    assert abs(weissi_penalty(w0, lambda1=1.0, lambda2=1e-3) - weissi_penalty(w1, lambda1=1.0, lambda2=1e-3)) < 1e-12
    assert abs(l2_penalty(w0) - l2_penalty(w1)) > 1e-2


def test_weissi_gradient_is_w_over_norm_squared():
    w = torch.randn(4, 3, dtype=DT, requires_grad=True)
    (g,) = torch.autograd.grad(weissi_penalty([w]), w)
    torch.testing.assert_close(g, w.detach() / w.detach().pow(2).sum(), rtol=1e-13, atol=0)


def test_weissi_rejects_bad_input():
    w = torch.randn(3, 3, dtype=DT)
    with pytest.raises(ValueError, match="weights"):
        weissi_penalty([])
    with pytest.raises(TypeError, match="weights"):
        weissi_penalty(w)
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        weissi_penalty([w, torch.zeros(2, 2, dtype=DT)])
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        weissi_penalty([torch.tensor([[float("nan")]])])
    with pytest.raises(ValueError, match="lambda1"):
        weissi_penalty([w], lambda1=-1.0)
    with pytest.raises(ValueError, match="lambda2"):
        weissi_penalty([w], lambda2=float("inf"))


def test_rebalancing_factor_matches_gradient_flow_ode():
    """Independent oracle: integrate gradient flow of a bias-free 3-layer ReLU net on squared loss + L2 with
    solve_ivp and compare (||W1||^2 - ||W3||^2)(t) / (...)(0) with exp(-4 lambda t)."""
    rng = np.random.default_rng(0)
    dims = [(3, 4), (3, 3), (1, 3)]
    sizes = [a * b for a, b in dims]
    x = rng.normal(size=(8, 4))
    y = rng.normal(size=8)
    lam = 0.05

    def unpack(v):
        out, i = [], 0
        for (a, b), s in zip(dims, sizes):
            out.append(v[i:i + s].reshape(a, b))
            i += s
        return out

    def rhs(_, v):
        w1, w2, w3 = unpack(v)
        z1 = x @ w1.T
        h1 = np.maximum(z1, 0)
        z2 = h1 @ w2.T
        h2 = np.maximum(z2, 0)
        f = (h2 @ w3.T)[:, 0]
        r = (f - y) / len(y)  # d/df of mean squared loss / 2
        g3 = r[None, :] @ h2
        d2 = (r[:, None] * w3) * (z2 > 0)
        g2 = d2.T @ h1
        d1 = (d2 @ w2) * (z1 > 0)
        g1 = d1.T @ x
        return -np.concatenate([(g + 2 * lam * w).ravel() for g, w in zip((g1, g2, g3), (w1, w2, w3))])

    v0 = np.concatenate([rng.normal(size=s) * sc for s, sc in zip(sizes, (1.5, 1.0, 0.4))])
    ts = np.array([0.0, 1.0, 3.0, 6.0])
    sol = solve_ivp(rhs, (0, ts[-1]), v0, t_eval=ts, rtol=1e-11, atol=1e-12, method="DOP853")
    d = np.array([(unpack(sol.y[:, k])[0] ** 2).sum() - (unpack(sol.y[:, k])[2] ** 2).sum() for k in range(len(ts))])
    pred = np.array([l2_rebalancing_factor(lam, t) for t in ts])
    np.testing.assert_allclose(d / d[0], pred, rtol=1e-6)
    np.testing.assert_allclose(l2_rebalancing_factor(lam, torch.tensor(ts)).numpy(), pred, rtol=1e-15)


def test_rebalancing_factor_rejects_bad_input():
    with pytest.raises(ValueError, match="lam"):
        l2_rebalancing_factor(-1.0, 1.0)
    with pytest.raises(ValueError, match="t must"):
        l2_rebalancing_factor(0.1, -1.0)
    with pytest.raises(ValueError, match="t must"):
        l2_rebalancing_factor(0.1, torch.tensor([1.0, float("nan")]))


def test_penalties_in_low_precision_and_under_torch_func():
    torch.manual_seed(0)
    ws32 = [torch.randn(4, 3), torch.randn(2, 4)]
    ref = weissi_penalty([w.double() for w in ws32], lambda1=0.5, lambda2=0.1)
    assert weissi_penalty(ws32, lambda1=0.5, lambda2=0.1).dtype == torch.float32
    assert abs(weissi_penalty(ws32, lambda1=0.5, lambda2=0.1).double() - ref) < 1e-5
    w16 = [w.to(torch.bfloat16) for w in ws32]
    assert abs(weissi_penalty(w16, lambda1=0.5, lambda2=0.1).double() - ref) < 5e-2
    g = torch.func.grad(lambda w: weissi_penalty([w]))(ws32[0])  # functional gradient: W / ||W||^2
    torch.testing.assert_close(g, ws32[0] / ws32[0].pow(2).sum(), rtol=1e-6, atol=1e-7)
    m = MLP([3, 4, 2], "relu").to(torch.float32)
    assert all(p.dtype == torch.float32 for p in rescale_layers(m, [2.0, 0.5]).parameters())
