"""kexue_core.attribution: integrated gradients against Captum (every method), completeness, errors."""
import numpy as np
import pytest
import torch

from kexue_core.attribution import METHODS, completeness_gap, integrated_gradients, quadrature

captum_attr = pytest.importorskip("captum.attr")
DT = torch.float64


def _model(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10)).to(DT)
    return net, (lambda z: net(z)[:, 3])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_steps", [2, 7, 50])
def test_equals_captum_every_method(method, n_steps):
    net, f = _model()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 64, dtype=DT, generator=g)
    base = 0.3 * torch.rand(6, 64, dtype=DT, generator=g)
    ours = integrated_gradients(f, x, base, n_steps=n_steps, method=method)
    ref = captum_attr.IntegratedGradients(f).attribute(x, base, n_steps=n_steps, method=method)
    assert ours.dtype == DT and ours.shape == x.shape
    # Captum rounds its points and weights to float32 (relative 6e-8); the attributions are O(0.1)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_equals_captum_with_target_and_default_baseline():
    net, _ = _model(2)
    x = torch.rand(4, 64, dtype=DT, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 3, 5, 9])
    ours = integrated_gradients(lambda z: net(z).gather(1, y.repeat(len(z) // 4)[:, None])[:, 0], x, n_steps=20)
    ref = captum_attr.IntegratedGradients(net).attribute(x, target=y, n_steps=20)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", METHODS)
def test_quadrature_matches_captum_tables(method):
    from captum.attr._utils.approximation_methods import approximation_parameters

    steps, alphas = approximation_parameters(method)
    for n in (2, 3, 10, 64):
        a, w = quadrature(method, n)
        np.testing.assert_allclose(a, alphas(n), atol=1e-7, rtol=0)  # Captum: float32 linspace
        np.testing.assert_allclose(w, steps(n), atol=1e-15, rtol=1e-15)


def test_quadrature_exactness():
    # Gauss-Legendre with n points integrates degree 2n-1 exactly; the midpoint rule degree 1
    for n in (1, 3, 6):
        a, w = quadrature("gausslegendre", n)
        for deg in range(2 * n):
            assert abs(w @ a**deg - 1 / (deg + 1)) < 1e-14
        assert abs(w @ a ** (2 * n) - 1 / (2 * n + 1)) > 1e-9
    a, w = quadrature("riemann_middle", 4)
    assert abs(w @ a - 0.5) < 1e-15 and abs(w @ a**2 - 1 / 3) > 1e-4
    a, w = quadrature("riemann_trapezoid", 5)  # Captum's variant: weights sum to 1 - 1/n
    assert abs(w.sum() - 0.8) < 1e-15


def test_completeness_and_convergence_orders():
    _, f = _model(4)
    x = torch.rand(5, 64, dtype=DT, generator=torch.Generator().manual_seed(5))
    gaps = {}
    for method in ("riemann_right", "riemann_middle", "gausslegendre"):
        gaps[method] = [completeness_gap(f, x, integrated_gradients(f, x, n_steps=n, method=method)).abs().max().item()
                        for n in (8, 32)]
    # first order: x4 points -> gap / 4; second order: gap / 16 (a smooth tanh net)
    assert 3.0 < gaps["riemann_right"][0] / gaps["riemann_right"][1] < 5.0
    assert 12.0 < gaps["riemann_middle"][0] / gaps["riemann_middle"][1] < 20.0
    assert gaps["gausslegendre"][1] < 1e-12


def test_linear_model_is_exact_and_sign_of_direction():
    w = torch.randn(10, dtype=DT, generator=torch.Generator().manual_seed(0))
    f = lambda z: z @ w + 1.5
    x, base = torch.randn(3, 10, dtype=DT), torch.randn(3, 10, dtype=DT)
    for m in METHODS:
        ig = integrated_gradients(f, x, base, n_steps=3, method=m)
        expected = w * (x - base)
        if m == "riemann_trapezoid":
            expected = expected * (1 - 1 / 3)  # Captum's weights sum to 1 - 1/n
        torch.testing.assert_close(ig, expected, atol=1e-14, rtol=0)
    # the post's direction (x -> baseline) is the negative: swap the roles of input and baseline
    # on a nonlinear f, riemann_left on one path is riemann_right on the other
    _, g = _model(1)
    a = integrated_gradients(g, x.new_ones(2, 64), x.new_zeros(2, 64), n_steps=9, method="riemann_left")
    b = integrated_gradients(g, x.new_zeros(2, 64), x.new_ones(2, 64), n_steps=9, method="riemann_right")
    torch.testing.assert_close(a, -b, atol=1e-14, rtol=0)


def test_broadcast_baseline_float32_and_vmap():
    _, f = _model()
    x = torch.rand(3, 64, dtype=DT)
    full = integrated_gradients(f, x, torch.full_like(x, 0.2), n_steps=5)
    torch.testing.assert_close(integrated_gradients(f, x, torch.full((1, 64), 0.2, dtype=DT), n_steps=5), full)
    torch.testing.assert_close(integrated_gradients(f, x, 0.2, n_steps=5), full)
    net32 = torch.nn.Linear(4, 1)
    x32 = torch.rand(2, 4)
    out = integrated_gradients(lambda z: net32(z)[:, 0], x32, n_steps=4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, net32.weight[0].detach() * x32)
    # under torch.func.vmap over a leading axis of independent batches
    xs = torch.rand(2, 3, 64, dtype=DT)
    vm = torch.func.vmap(lambda xb: integrated_gradients(f, xb, n_steps=5))(xs)
    torch.testing.assert_close(vm, torch.stack([integrated_gradients(f, xb, n_steps=5) for xb in xs]))


def test_bad_input_names_the_argument():
    _, f = _model()
    x = torch.rand(2, 64, dtype=DT)
    with pytest.raises(ValueError, match="method"):
        integrated_gradients(f, x, method="simpson")
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(f, x, n_steps=-3)
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(f, x, n_steps=1, method="riemann_left")
    assert integrated_gradients(f, x, n_steps=1).shape == x.shape  # Gauss-Legendre with one point is fine
    with pytest.raises(TypeError, match="n_steps"):
        integrated_gradients(f, x, n_steps=2.5)
    with pytest.raises(ValueError, match="baselines"):
        integrated_gradients(f, x, torch.zeros(3, 64, dtype=DT))
    with pytest.raises(ValueError, match="forward"):
        integrated_gradients(lambda z: z, x)
    with pytest.raises(TypeError, match="forward"):
        integrated_gradients("net", x)
    with pytest.raises(TypeError, match="inputs"):
        integrated_gradients(f, torch.ones(2, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="inputs"):
        integrated_gradients(f, torch.full((2, 64), float("nan"), dtype=DT))
    with pytest.raises(ValueError, match="attributions"):
        completeness_gap(f, x, torch.zeros(2, 63, dtype=DT))
    with pytest.raises(ValueError, match="method"):
        quadrature("left", 4)
