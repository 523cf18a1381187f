"""Unit tests of kexue_core.gradients (post 8796, eq. (f), (w), (b)). All in float64."""
import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from kexue_core.gradients import (
    GradientPenaltyTerms,
    gradient_penalty_inequality,
    gradient_penalty_terms,
    input_gradients,
    input_jacobians,
    per_sample_grads,
)
from kexue_core.nn import MLP

DT = torch.float64
B = 6


def _setup(activation="tanh", bias=True, seed=0, dims=(5, 4, 3, 3), scale=1.0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    m = MLP(list(dims), activation, bias=bias).to(DT)
    x = scale * torch.randn(B, dims[0], dtype=DT, generator=g)
    y = torch.randint(0, dims[-1], (B,), generator=g)

    def f(out):  # per-sample log-likelihood: row b depends on output row b only
        return out.log_softmax(-1)[torch.arange(out.shape[0]), y]

    return m, x, f


def _f_projection(out):  # a second per-sample scalar: a fixed projection of the output
    u = torch.tensor([0.3, -1.2, 0.7], dtype=out.dtype)
    return out @ u


# -- per-sample gradients vs independent computations -----------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "gelu", "relu"])
def test_per_sample_grads_match_autograd_loop(activation):
    m, x, f = _setup(activation)
    g = per_sample_grads(m, x, f)
    names = [n for n, _ in m.named_parameters()]
    assert list(g) == names
    for b in range(B):  # reference: one torch.autograd.grad per sample
        ref = torch.autograd.grad(f(m(x))[b], list(m.parameters()))
        for n, r in zip(names, ref):
            assert g[n].shape == (B, *r.shape)
            torch.testing.assert_close(g[n][b], r, rtol=0, atol=1e-13)


def test_input_gradients_match_autograd_and_finite_differences():
    m, x, f = _setup()
    gx = input_gradients(m, x, f)
    assert gx.shape == (B, 5) and not gx.requires_grad
    eps = 1e-6  # central differences: truncation O(eps^2) ~ 1e-12, round-off ~ 1e-16/eps = 1e-10
    fd = torch.zeros_like(x)
    for i in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, i] = eps
        fd[:, i] = (f(m(x + e)) - f(m(x - e))).detach() / (2 * eps)
    torch.testing.assert_close(gx, fd, rtol=0, atol=1e-8)
    for b in range(B):
        xb = x[b : b + 1].clone().requires_grad_(True)
        ref = torch.autograd.grad(f(m(torch.cat([x[:b], xb, x[b + 1 :]])))[b], xb)[0][0]
        torch.testing.assert_close(gx[b], ref, rtol=0, atol=1e-14)


def test_input_jacobians_match_autograd_functional():
    m, x, _ = _setup("gelu")
    jacs = input_jacobians(m, x)
    assert [tuple(j.shape) for j in jacs] == [(B, 5, 5), (B, 4, 5), (B, 3, 5), (B, 3, 5)]
    torch.testing.assert_close(jacs[0], torch.eye(5, dtype=DT).expand(B, 5, 5), rtol=0, atol=0)  # h^(1) = x
    for t in range(1, 5):
        for b in range(B):
            ref = torch.autograd.functional.jacobian(lambda xb: m.hidden(xb, t), x[b])
            torch.testing.assert_close(jacs[t - 1][b], ref, rtol=0, atol=1e-14)


# -- the exact matrix identity behind eq. (w) --------------------------------------------------
@pytest.mark.parametrize("activation, bias", [("tanh", True), ("relu", True), ("gelu", False)])
@pytest.mark.parametrize("which_f", ["loglik", "projection"])
def test_per_sample_matrix_identity(activation, bias, which_f):
    """h^{(t)} (∇_x f)^T = (∇_{W^{(t)}} f) W^{(t)} (∇_x h^{(t)}) with the post's (in × out) gradient
    layout, i.e. PyTorch's gradient transposed: h[:, None] * gx[None, :] == G.T @ W @ J."""
    m, x, f = _setup(activation, bias)
    f = f if which_f == "loglik" else _f_projection
    gx, jacs, g = input_gradients(m, x, f), input_jacobians(m, x), per_sample_grads(m, x, f)
    hs = m.forward_with_hidden(x)
    for t in range(m.num_layers):
        lhs = hs[t][:, :, None] * gx[:, None, :]  # (B, d_t, d_1)
        G = g[f"layers.{t}.weight"]  # (B, d_{t+1}, d_t): PyTorch's out × in
        rhs = G.transpose(1, 2) @ m.layers[t].weight @ jacs[t]
        assert (lhs - rhs).abs().max() < 1e-10
        # without the transpose (the wrong layout) the shapes only match for square layers; where they
        # do, the identity fails
        if G.shape[1] == G.shape[2] == jacs[t].shape[1]:
            assert (lhs - G @ m.layers[t].weight @ jacs[t]).abs().max() > 1e-6


# -- norms vs SciPy ---------------------------------------------------------------------------
def test_norms_match_scipy():
    m, x, f = _setup()
    ts, tf = gradient_penalty_terms(m, x, f), gradient_penalty_terms(m, x, f, norm="frobenius")
    jacs = input_jacobians(m, x)
    for t, layer in enumerate(m.layers):
        W = layer.weight.detach().numpy()
        assert ts.weight_norm_sq[t].item() == pytest.approx(scipy.linalg.svdvals(W)[0] ** 2, rel=1e-13)
        assert tf.weight_norm_sq[t].item() == pytest.approx(np.linalg.norm(W, "fro") ** 2, rel=1e-13)
        for b in range(B):
            J = jacs[t][b].numpy()
            assert ts.jacobian_norm_sq[b, t].item() == pytest.approx(scipy.linalg.svdvals(J)[0] ** 2, rel=1e-12)
            assert tf.jacobian_norm_sq[b, t].item() == pytest.approx(np.linalg.norm(J, "fro") ** 2, rel=1e-12)
    np.testing.assert_allclose(ts.jacobian_norm_sq[:, 0].numpy(), 1.0, rtol=0, atol=1e-15)  # ∇_x h^(1) = I


# -- the inequalities -------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "sigmoid"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("norm", ["spectral", "frobenius"])
def test_inequalities_hold(activation, bias, norm):
    for seed in range(2):
        m, x, f = _setup(activation, bias, seed=seed)
        T = gradient_penalty_terms(m, x, f, norm=norm)
        assert isinstance(T, GradientPenaltyTerms) and T.norm == norm and T.has_bias == bias
        assert T.weight_lhs.shape == T.grad_weight_sq.shape == (B, 3)
        assert (T.weight_lhs <= T.grad_weight_sq * (1 + 1e-9)).all()  # eq. (w)
        assert (T.bias_lhs <= T.grad_bias_sq * (1 + 1e-9)).all()  # eq. (b)
        assert T.lhs.shape == T.rhs.shape == (B,)
        # eq. (f); lhs = 0 is possible for a sample whose ReLUs are all dead (then ∇_x f = 0)
        assert (T.lhs <= T.rhs * (1 + 1e-9)).all() and (T.lhs >= 0).all() and (T.lhs > 0).any()
    lhs, rhs = gradient_penalty_inequality(m, x, f, norm=norm)
    torch.testing.assert_close(lhs, T.lhs, rtol=0, atol=0)
    torch.testing.assert_close(rhs, T.rhs, rtol=0, atol=0)


def test_spectral_version_is_stronger():
    m, x, f = _setup()
    ls, rs = gradient_penalty_inequality(m, x, f)
    lf, rf = gradient_penalty_inequality(m, x, f, norm="frobenius")
    torch.testing.assert_close(rs, rf, rtol=0, atol=0)
    assert (ls >= lf).all() and (ls > lf * 1.01).any()


def _explicit_sides(m, x, f, with_one=True):
    """eq. (f) assembled by hand from plain autograd, SciPy norms and the named parameters."""
    lhs, rhs = np.zeros(B), np.zeros(B)
    params = list(m.parameters())
    for b in range(B):
        xb = x[b].clone().requires_grad_(True)
        fb = f(m(torch.cat([x[:b], xb[None], x[b + 1 :]])))[b]
        gx = torch.autograd.grad(fb, xb, retain_graph=True)[0]
        rhs[b] = sum((p_.detach() ** 2).sum().item() for p_ in torch.autograd.grad(fb, params))
        for t, layer in enumerate(m.layers):
            h = m.hidden(x[b], t + 1).detach().numpy()
            J = torch.autograd.functional.jacobian(lambda v: m.hidden(v, t + 1), x[b]).numpy()
            w2 = scipy.linalg.svdvals(layer.weight.detach().numpy())[0] ** 2
            j2 = scipy.linalg.svdvals(J)[0] ** 2
            lhs[b] += (gx**2).sum().item() * (float(with_one) + h @ h) / (w2 * j2)
    return lhs, rhs


def test_matches_explicit_formula_and_one_plus_term_matters():
    """Small inputs make ‖h^{(1)}‖² ≪ 1, so dropping the "1 +" (bias) term changes the left side a lot."""
    m, x, f = _setup(scale=0.05)
    lhs, rhs = gradient_penalty_inequality(m, x, f)
    lhs_ref, rhs_ref = _explicit_sides(m, x, f)
    np.testing.assert_allclose(lhs.numpy(), lhs_ref, rtol=1e-12)
    np.testing.assert_allclose(rhs.numpy(), rhs_ref, rtol=1e-12)  # full ∇_θ f, biases included
    lhs_no_one, _ = _explicit_sides(m, x, f, with_one=False)
    assert (np.abs(lhs.numpy() - lhs_no_one) > 0.1 * lhs.numpy()).all()
    T = gradient_penalty_terms(m, x, f)
    assert (T.grad_bias_sq > 0.01 * T.rhs[:, None]).any()  # the biases carry part of ‖∇_θ f‖²


def test_bias_free_drops_the_one():
    m, x, f = _setup(bias=False, scale=0.05)
    T = gradient_penalty_terms(m, x, f)
    assert torch.equal(T.grad_bias_sq, torch.zeros(B, 3, dtype=DT))
    assert torch.equal(T.bias_lhs, torch.zeros(B, 3, dtype=DT))
    lhs_ref, rhs_ref = _explicit_sides(m, x, f, with_one=False)
    np.testing.assert_allclose(T.lhs.numpy(), lhs_ref, rtol=1e-12)
    np.testing.assert_allclose(T.rhs.numpy(), rhs_ref, rtol=1e-12)
    assert (T.lhs <= T.rhs).all()


def test_batch_equals_single_samples():
    """Per-sample quantities: a batch gives the same rows as one call per sample."""
    m, x, _ = _setup()
    lhs, rhs = gradient_penalty_inequality(m, x, _f_projection)
    for b in range(B):
        l1, r1 = gradient_penalty_inequality(m, x[b : b + 1], _f_projection)
        torch.testing.assert_close(l1[0], lhs[b], rtol=1e-12, atol=0)
        torch.testing.assert_close(r1[0], rhs[b], rtol=1e-12, atol=0)


def test_dead_relu_layer_gives_zero_not_nan():
    """If h^{(t)} no longer depends on x (all ReLUs dead), ∇_x f = 0 and the terms are 0, not NaN."""
    m, x, f = _setup("relu")
    with torch.no_grad():
        m.layers[0].weight.zero_()
        m.layers[0].bias.fill_(-1.0)
    T = gradient_penalty_terms(m, x, f)
    assert torch.equal(T.grad_x_sq, torch.zeros(B, dtype=DT))
    assert torch.isfinite(T.lhs).all() and torch.equal(T.lhs, torch.zeros(B, dtype=DT))
    assert (T.rhs > 0).all()


# -- bad input --------------------------------------------------------------------------------
def test_bad_inputs():
    m, x, f = _setup()
    with pytest.raises(ValueError):
        gradient_penalty_inequality(m, x[0], f)  # 1-D
    with pytest.raises(ValueError):
        gradient_penalty_inequality(m, x[None], f)  # 3-D
    with pytest.raises(ValueError):
        gradient_penalty_inequality(m, x[:, :4], f)  # width mismatch
    with pytest.raises(ValueError):
        gradient_penalty_inequality(m, x[:0], f)  # empty batch
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError):
        gradient_penalty_inequality(m, bad, f)
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError):
        per_sample_grads(m, bad, f)
    with pytest.raises(ValueError):
        gradient_penalty_inequality(m, x, f, norm="nuclear")
    with pytest.raises(TypeError):
        gradient_penalty_inequality(m, x.float(), f)  # dtype differs from the model's
    with pytest.raises(TypeError):
        gradient_penalty_inequality(m, x.long(), f)
    with pytest.raises(TypeError):
        input_jacobians(nn.Sequential(nn.Linear(5, 3)).to(DT), x)  # not an MLP
    with pytest.raises(TypeError):
        input_gradients(m, x, "loss")
    with pytest.raises(ValueError):
        gradient_penalty_inequality(m, x, lambda out: f(out).mean())  # batch mean, not per sample
    with pytest.raises(ValueError):
        per_sample_grads(m, x, lambda out: out)  # (B, d_out), not (B,)
    with pytest.raises(ValueError):
        input_gradients(m, x, lambda out: f(out) * float("nan"))


def test_bound_attained_for_one_linear_layer_with_scalar_output():
    """f = w·x + b: ∇_x f = w, ‖∇_θ f‖² = ‖x‖² + 1 and LHS = ‖w‖²(1 + ‖x‖²)/‖w‖², so LHS = RHS exactly."""
    torch.manual_seed(3)
    m = MLP([5, 1]).to(DT)
    x = torch.randn(B, 5, dtype=DT)
    lhs, rhs = gradient_penalty_inequality(m, x, lambda out: out[:, 0])
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=0)
    torch.testing.assert_close(rhs, 1 + (x**2).sum(1), rtol=1e-12, atol=0)


def test_f_is_checked_on_the_model_output():
    # f may only make sense on the output (width 3), not on the last hidden layer (width 5)
    torch.manual_seed(0)
    model = MLP([4, 5, 3]).to(DT)
    x = torch.randn(B, 4, dtype=DT)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    f = lambda out: out @ c  # noqa: E731
    assert input_gradients(model, x, f).shape == (B, 4)
    assert per_sample_grads(model, x, f)["layers.0.weight"].shape == (B, 5, 4)


def test_zero_jacobian_layer_gives_zero_not_nan():
    # a layer whose input does not depend on x (‖W‖²‖J‖² = 0) contributes 0 to the scaled terms
    terms = GradientPenaltyTerms(
        grad_x_sq=torch.tensor([0.0, 2.0], dtype=DT),
        h_sq=torch.ones(2, 2, dtype=DT),
        weight_norm_sq=torch.tensor([1.0, 3.0], dtype=DT),
        jacobian_norm_sq=torch.tensor([[0.0, 1.0], [2.0, 0.0]], dtype=DT),
        grad_weight_sq=torch.ones(2, 2, dtype=DT),
        grad_bias_sq=torch.ones(2, 2, dtype=DT),
        has_bias=True,
        norm="spectral",
    )
    lhs = terms.weight_lhs
    assert torch.isfinite(lhs).all()
    assert lhs[0, 0] == 0 and lhs[1, 1] == 0
    assert lhs[1, 0] == pytest.approx(2.0 * 1.0 / (1.0 * 2.0))
