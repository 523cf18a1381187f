"""Unit tests of kexue_core.optim (post 8968), against SciPy's nnls and an independent NumPy recursion."""
import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from kexue_core.optim import EGD, EGMetaLR

DT = torch.float64


def test_egd_step_is_multiplicative():
    p = torch.tensor([0.5, 2.0, 1e-3], dtype=DT, requires_grad=True)
    g = np.array([1.0, -0.3, 4.0])
    opt = EGD([p], lr=0.1)
    p.grad = torch.tensor(g)
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), np.array([0.5, 2.0, 1e-3]) * np.exp(-0.1 * g), rtol=1e-15)


def test_egd_solves_nonnegative_least_squares_like_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 5))
    b = a @ np.array([1.0, -1.0, 0.5, -0.5, 2.0]) + 0.1 * rng.normal(size=12)  # some constraints active
    ref, _ = nnls(a, b)
    A, B = torch.tensor(a), torch.tensor(b)
    theta = torch.full((5,), 0.1, dtype=DT, requires_grad=True)
    opt = EGD([theta], lr=0.02)
    for _ in range(20000):
        theta.grad = A.T @ (A @ theta.detach() - B)  # gradient of 1/2 ||A theta - b||^2
        opt.step()
    assert (theta > 0).all()
    np.testing.assert_allclose(theta.detach().numpy(), ref, atol=1e-6)
    assert (ref == 0).any() and (ref > 0).any()  # both active and inactive constraints are tested


def test_egd_closure_and_skips_params_without_grad():
    p = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    q = torch.tensor([3.0], dtype=DT, requires_grad=True)
    opt = EGD([p, q], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(p.detach().numpy(), [np.exp(-1.0), 2 * np.exp(-2.0)], rtol=1e-15)
    assert q.item() == 3.0


def test_egd_rejects_bad_input():
    with pytest.raises(ValueError, match="params"):
        EGD([torch.tensor([1.0, 0.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="params"):
        EGD([torch.tensor([1.0, -2.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        EGD([torch.tensor([1.0], requires_grad=True)], lr=0.0)
    with pytest.raises(TypeError, match="lr"):
        EGD([torch.tensor([1.0], requires_grad=True)], lr="0.1")


def _numpy_meta(theta0, h, lr, gamma, steps, nu0=1.0):
    """Independent recursion: nu_{t+1} = nu_t exp(gamma g_{t-1} g_t), theta_{t+1} = theta_t - lr nu_{t+1} g_t."""
    theta, nu, prev = theta0.copy(), np.full_like(theta0, nu0), np.zeros_like(theta0)
    s = np.zeros_like(theta0)
    for _ in range(steps):
        g = h * theta
        s += prev * g
        nu = nu * np.exp(gamma * prev * g)
        theta = theta - lr * nu * g
        prev = g
    return theta, nu, s


@pytest.mark.parametrize("gamma", [0.0, 1e-4, 2e-3])
def test_eg_meta_lr_matches_numpy_recursion(gamma):
    h = np.array([1.0, 30.0, 5.0])
    theta0 = np.array([1.0, -1.0, 0.5])
    p = torch.tensor(theta0, requires_grad=True)
    opt = EGMetaLR([p], lr=0.06, gamma=gamma, nu_init=1.0)
    for _ in range(25):
        opt.zero_grad()
        (0.5 * (torch.tensor(h) * p**2).sum()).backward()
        opt.step()
    th, nu, s = _numpy_meta(theta0, h, 0.06, gamma, 25)
    assert np.isfinite(th).all() and np.isfinite(nu).all()
    if gamma > 0:
        assert np.abs(np.log(nu)).max() > 1e-3  # nu actually moved
    np.testing.assert_allclose(p.detach().numpy(), th, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(opt.state[p]["nu"].numpy(), nu, rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["nu"].numpy(), np.exp(gamma * s), rtol=1e-12)  # closed form, nu_0 = 1


def test_eg_meta_lr_shrinks_oscillating_and_grows_agreeing_steps():
    """lr * h = 1.8 on coordinate 2 (oscillates: g_{t-1} g_t < 0), 0.06 on coordinate 1 (monotone)."""
    p = torch.tensor([1.0, 1.0], dtype=DT, requires_grad=True)
    h = torch.tensor([1.0, 30.0], dtype=DT)
    opt = EGMetaLR([p], lr=0.06, gamma=0.01)
    for _ in range(5):
        opt.zero_grad()
        (0.5 * (h * p**2).sum()).backward()
        opt.step()
    nu = opt.state[p]["nu"]
    assert nu[0] > 1.0 > nu[1]


def test_eg_meta_lr_with_gamma_zero_is_sgd():
    torch.manual_seed(0)
    a = torch.randn(3, 4, dtype=DT, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    x = torch.randn(5, 3, dtype=DT)
    o1, o2 = EGMetaLR([a], lr=0.1, gamma=0.0, nu_init=0.5), torch.optim.SGD([b], lr=0.05)
    for _ in range(10):
        for w, o in ((a, o1), (b, o2)):
            o.zero_grad()
            torch.tanh(x @ w).pow(2).sum().backward()
            o.step()
    torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)


def test_eg_meta_lr_state_dict_roundtrip():
    p = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    opt = EGMetaLR([p], lr=0.1, gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
    q = p.detach().clone().requires_grad_(True)
    opt2 = EGMetaLR([q], lr=0.1, gamma=0.5)
    opt2.load_state_dict(opt.state_dict())
    torch.testing.assert_close(opt2.state[q]["nu"], opt.state[p]["nu"])


def test_eg_meta_lr_rejects_bad_input():
    p = [torch.tensor([1.0], requires_grad=True)]
    with pytest.raises(ValueError, match="lr"):
        EGMetaLR(p, lr=-0.1, gamma=0.1)
    with pytest.raises(ValueError, match="gamma"):
        EGMetaLR(p, lr=0.1, gamma=-0.1)
    with pytest.raises(ValueError, match="gamma"):
        EGMetaLR(p, lr=0.1, gamma=float("nan"))
    with pytest.raises(ValueError, match="nu_init"):
        EGMetaLR(p, lr=0.1, gamma=0.1, nu_init=0.0)
    with pytest.raises(TypeError, match="gamma"):
        EGMetaLR(p, lr=0.1, gamma=None)
