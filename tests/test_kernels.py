"""Unit tests of kexue_core.kernels (post 8009): the NTK against an autograd loop, the path kernel against
closed forms."""
import numpy as np
import pytest
import torch
from torch import nn

from kexue_core.kernels import empirical_ntk, path_kernel_gd
from kexue_core.nn import MLP

DT = torch.float64


def _loop_ntk(model, x1, x2):
    """Independent oracle: one torch.autograd.grad call per example, flattened and multiplied."""
    params = [p for p in model.parameters() if p.requires_grad]

    def jac(x):
        rows = []
        for i in range(x.shape[0]):
            out = model(x[i:i + 1]).reshape(())
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)]))
        return torch.stack(rows)

    return jac(x1) @ jac(x2).T


@pytest.mark.parametrize("method", ["jacobian", "jvp"])
def test_ntk_matches_autograd_loop(method):
    torch.manual_seed(0)
    m = MLP([5, 7, 6, 1], "tanh").to(DT)
    x1, x2 = torch.randn(4, 5, dtype=DT), torch.randn(3, 5, dtype=DT)
    torch.testing.assert_close(empirical_ntk(m, x1, x2, method=method), _loop_ntk(m, x1, x2), rtol=1e-12, atol=1e-13)


def test_ntk_of_linear_model_is_inner_product_plus_one():
    torch.manual_seed(1)
    lin = nn.Linear(6, 1).to(DT)  # (n, 1) output
    x1, x2 = torch.randn(5, 6, dtype=DT), torch.randn(4, 6, dtype=DT)
    torch.testing.assert_close(empirical_ntk(lin, x1, x2), x1 @ x2.T + 1, rtol=1e-14, atol=1e-14)


def test_ntk_skips_frozen_parameters_and_is_psd():
    torch.manual_seed(2)
    m = MLP([4, 8, 1], "relu").to(DT)
    m.layers[0].weight.requires_grad_(False)
    x = torch.randn(6, 4, dtype=DT)
    k = empirical_ntk(m, x, x)
    torch.testing.assert_close(k, _loop_ntk(m, x, x), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(k, k.T, rtol=0, atol=1e-13)
    assert torch.linalg.eigvalsh(k).min() > -1e-10


def test_ntk_rejects_bad_input():
    m = MLP([3, 4, 2], "tanh").to(DT)
    x = torch.randn(2, 3, dtype=DT)
    with pytest.raises(ValueError, match="one scalar output"):
        empirical_ntk(m, x, x)
    m1 = MLP([3, 4, 1], "tanh").to(DT)
    with pytest.raises(ValueError, match="method"):
        empirical_ntk(m1, x, x, method="svd")
    with pytest.raises(ValueError, match="x1"):
        empirical_ntk(m1, torch.full((2, 3), float("nan"), dtype=DT), x)
    with pytest.raises(ValueError, match="x2"):
        empirical_ntk(m1, x, torch.full((2, 3), float("inf"), dtype=DT))
    with pytest.raises(ValueError, match="x2"):
        empirical_ntk(m1, x, torch.zeros(0, 3, dtype=DT))
    with pytest.raises(TypeError, match="model"):
        empirical_ntk(lambda z: z, x, x)
    with pytest.raises(TypeError, match="x1"):
        empirical_ntk(m1, x.long(), x)


def _mse(f, y):
    return 0.5 * ((f - y) ** 2).mean()


def test_path_kernel_is_exact_for_linear_model():
    """Linear model: the kernel x x_i + 1 is constant, so both rules reproduce f_T to round-off, and the
    path kernel is (x^T x_i + 1) T."""
    torch.manual_seed(3)
    lin = nn.Linear(4, 1).to(DT)
    xtr, ytr, xte = torch.randn(10, 4, dtype=DT), torch.randn(10, dtype=DT), torch.randn(3, 4, dtype=DT)
    r = path_kernel_gd(lin, _mse, xtr, ytr, xte, lr=0.1, steps=30)
    torch.testing.assert_close(r.euler, r.fT, rtol=0, atol=1e-12)
    torch.testing.assert_close(r.trapezoid, r.fT, rtol=0, atol=1e-12)
    torch.testing.assert_close(r.K_path, (xte @ xtr.T + 1) * 3.0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r.kernel_machine(), r.fT, rtol=0, atol=1e-12)
    # independent GD in closed form
    w, b = lin.weight.detach().clone()[0], lin.bias.detach().clone()[0]
    for _ in range(30):
        res = (xtr @ w + b - ytr) / 10
        w, b = w - 0.1 * xtr.T @ res, b - 0.1 * res.sum()
    torch.testing.assert_close(r.fT, xte @ w + b, rtol=0, atol=1e-12)
    assert r.model is not lin


def test_path_kernel_orders_of_accuracy():
    torch.manual_seed(5)
    m = MLP([3, 16, 1], "tanh").to(DT)
    xtr, ytr, xte = torch.randn(12, 3, dtype=DT), torch.randn(12, dtype=DT), torch.randn(5, 3, dtype=DT)
    err_e, err_t = [], []
    for lr in (0.1, 0.05, 0.025):  # time T = 1.2; first order: error halves, second order: quarters
        r = path_kernel_gd(m, _mse, xtr, ytr, xte, lr=lr, steps=round(1.2 / lr))
        err_e.append((r.euler - r.fT).abs().max().item())
        err_t.append((r.trapezoid - r.fT).abs().max().item())
        torch.testing.assert_close(r.kernel_machine(), r.euler, rtol=0, atol=1e-12)
    ratio_e, ratio_t = err_e[1] / err_e[2], err_t[1] / err_t[2]
    assert 1.6 < ratio_e < 2.4 and 3.2 < ratio_t < 4.8, (err_e, err_t)


def test_path_kernel_gd_does_not_modify_model_and_rejects_bad_input():
    m = MLP([3, 4, 1], "tanh").to(DT)
    before = [p.detach().clone() for p in m.parameters()]
    x, y = torch.randn(5, 3, dtype=DT), torch.randn(5, dtype=DT)
    path_kernel_gd(m, _mse, x, y, x, lr=0.1, steps=2)
    assert all(torch.equal(a, p) for a, p in zip(before, m.parameters()))
    with pytest.raises(ValueError, match="lr"):
        path_kernel_gd(m, _mse, x, y, x, lr=0.0, steps=2)
    with pytest.raises(ValueError, match="steps"):
        path_kernel_gd(m, _mse, x, y, x, lr=0.1, steps=0)
    with pytest.raises(TypeError, match="loss_fn"):
        path_kernel_gd(m, None, x, y, x, lr=0.1, steps=2)
    with pytest.raises(ValueError, match="y_train"):
        path_kernel_gd(m, _mse, x, y[:3], x, lr=0.1, steps=2)
    with pytest.raises(ValueError, match="x_test"):
        path_kernel_gd(m, _mse, x, y, torch.full((2, 3), float("nan"), dtype=DT), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="non-finite"):
        path_kernel_gd(m, lambda f, t: f.sum() * float("inf"), x, y, x, lr=0.1, steps=2)


def test_ntk_in_float32():
    torch.manual_seed(6)
    m = MLP([4, 6, 1], "tanh")
    x = torch.randn(5, 4)
    k32 = empirical_ntk(m, x, x, method="jvp")
    assert k32.dtype == torch.float32
    torch.testing.assert_close(k32.double(), empirical_ntk(m.double(), x.double(), x.double()), rtol=1e-5, atol=1e-5)
