"""kexue_core.multitask: MGDA min-norm weights against SLSQP, the primary-auxiliary direction against NNLS."""
import numpy as np
import pytest
import torch
from scipy.optimize import minimize, nnls

from kexue_core.multitask import (
    frank_wolfe_weights,
    greedy_primary_auxiliary,
    min_norm_weights,
    primary_auxiliary_direction,
)

DT = torch.float64


def _slsqp(G):
    n = len(G)
    res = minimize(lambda a: a @ G @ a, np.full(n, 1 / n), jac=lambda a: 2 * G @ a, method="SLSQP",
                   bounds=[(0, 1)] * n, constraints={"type": "eq", "fun": lambda a: a.sum() - 1},
                   options={"ftol": 1e-16, "maxiter": 1000})
    return res.x @ G @ res.x


def _instances(seed, count):
    rng = np.random.default_rng(seed)
    for t in range(count):
        n, P = int(rng.integers(3, 8)), int(rng.integers(8, 40))
        g = rng.standard_normal((n, P))
        if t % 2 == 0:
            g[1] = -0.8 * g[0] + 0.2 * rng.standard_normal(P)  # two conflicting tasks
        if t % 3 == 0:
            g += 2.0 * rng.standard_normal(P)  # a shared component: the optimum lies on a face
        yield g


def test_min_norm_two_tasks_closed_form():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=DT)
    a = min_norm_weights(g)
    torch.testing.assert_close(a, torch.tensor([0.8, 0.2], dtype=DT), atol=1e-15, rtol=0)  # |a g1 + b g2|^2 = a^2 + 4 b^2
    # clipped: g2 is the closer end and <g1 - g2, g2> >= 0 -> alpha = (0, 1)
    g = torch.tensor([[3.0, 0.0], [1.0, 0.0]], dtype=DT)
    torch.testing.assert_close(min_norm_weights(g), torch.tensor([0.0, 1.0], dtype=DT))
    assert min_norm_weights(torch.tensor([[1.0, 2.0]], dtype=DT)).tolist() == [1.0]


def test_min_norm_matches_slsqp_and_certificate():
    worst = 0.0
    for g in _instances(0, 40):
        G = g @ g.T
        a = min_norm_weights(torch.tensor(g)).numpy()
        assert a.min() >= 0 and abs(a.sum() - 1) < 1e-12
        ours, ref = a @ G @ a, _slsqp(G)
        scale = np.diag(G).max()
        worst = max(worst, (ours - ref) / max(ref, 1e-9 * scale))
        u = a @ g
        # optimality certificate: <g_i, u> >= |u|^2 for all i, with equality on the support
        dots = g @ u
        assert dots.min() >= u @ u - 1e-10 * scale
        assert np.all(np.abs(dots[a > 1e-9] - u @ u) <= 1e-9 * scale)
    assert worst <= 1e-6


def test_plain_frank_wolfe_stalls_but_ours_does_not():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((5, 50))
    g[1] = -0.8 * g[0] + 0.2 * rng.standard_normal(50)
    G = g @ g.T
    ref = _slsqp(G)
    a_fw = frank_wolfe_weights(torch.tensor(g), n_iter=2000).numpy()
    a = min_norm_weights(torch.tensor(g)).numpy()
    assert (a_fw @ G @ a_fw - ref) / ref > 1e-6  # 2000 line-search steps are not enough
    assert abs(a @ G @ a - ref) / ref < 1e-6
    # harmonic steps equal the post's averaged iteration u <- (k u + g_tau)/(k + 1)
    u = np.full(5, 0.2) @ g
    for k in range(1, 51):
        tau = int(np.argmin(g @ u))
        u = (k * u + g[tau]) / (k + 1)
    np.testing.assert_allclose(frank_wolfe_weights(torch.tensor(g), n_iter=50, step="harmonic").numpy() @ g, u, atol=1e-12)


def test_primary_auxiliary_equals_nnls():
    rng = np.random.default_rng(1)
    for t in range(60):
        n, P = int(rng.integers(1, 7)), int(rng.integers(2, 40))
        g0 = rng.standard_normal(P)
        A = rng.standard_normal((n, P))
        if t % 2 == 0:
            A[: max(1, n // 2)] += -0.8 * g0  # auxiliaries that conflict with the primary task
        u, lam = primary_auxiliary_direction(torch.tensor(g0), torch.tensor(A))
        x, _ = nnls(A.T, -g0)
        u_ref = g0 + A.T @ x
        assert lam.min() >= 0
        np.testing.assert_allclose(u.numpy(), u_ref, atol=1e-9 * np.linalg.norm(g0), rtol=0)
        np.testing.assert_allclose(u.numpy(), g0 + A.T @ lam.numpy(), atol=1e-12 * np.linalg.norm(g0))
        if P >= n:  # linearly independent auxiliaries: lambda is unique
            np.testing.assert_allclose(lam.numpy(), x, atol=1e-8 * (1 + x.max()), rtol=0)
        assert (A @ u.numpy()).min() >= -1e-9 * np.linalg.norm(g0) ** 2  # no auxiliary task gets worse


def test_primary_auxiliary_one_task_closed_form():
    g0 = torch.tensor([1.0, 1.0], dtype=DT)
    u, lam = primary_auxiliary_direction(g0, torch.tensor([[1.0, 0.0]], dtype=DT))  # no conflict: lambda = 0
    assert lam.tolist() == [0.0] and u.tolist() == [1.0, 1.0]
    u, lam = primary_auxiliary_direction(g0, torch.tensor([[-2.0, 0.0]], dtype=DT))  # relu(2)/4 = 1/2
    torch.testing.assert_close(lam, torch.tensor([0.5], dtype=DT))
    torch.testing.assert_close(u, torch.tensor([0.0, 1.0], dtype=DT))


def test_greedy_rule_stalls_on_the_spec_instance():
    g0 = torch.tensor([-3.0, -1.0], dtype=DT)
    A = torch.tensor([[2.0, 0.0], [3.0, 3.0]], dtype=DT)
    u, lam = greedy_primary_auxiliary(g0, A, n_iter=100)
    torch.testing.assert_close(lam, torch.tensor([0.5, 2 / 3], dtype=DT))
    torch.testing.assert_close(u, torch.tensor([0.0, 1.0], dtype=DT))
    u, lam = primary_auxiliary_direction(g0, A)
    torch.testing.assert_close(lam, torch.tensor([1.0, 1 / 3], dtype=DT))
    assert u.abs().max() < 1e-12


def test_dtype_and_zero_gradients():
    g = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    a = min_norm_weights(g)
    assert a.dtype == torch.float32 and a.tolist() == [0.0, 1.0, 0.0]
    u, lam = primary_auxiliary_direction(torch.tensor([1.0, -1.0]), torch.zeros(2, 2))
    assert u.tolist() == [1.0, -1.0] and lam.tolist() == [0.0, 0.0]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="grads"):
        min_norm_weights(torch.ones(3, dtype=DT))
    with pytest.raises(TypeError, match="grads"):
        min_norm_weights(np.ones((2, 3)))
    with pytest.raises(ValueError, match="grads"):
        min_norm_weights(torch.tensor([[1.0, float("inf")]]))
    with pytest.raises(ValueError, match="aux_grads"):
        primary_auxiliary_direction(torch.ones(3, dtype=DT), torch.ones(2, 4, dtype=DT))
    with pytest.raises(ValueError, match="g0"):
        primary_auxiliary_direction(torch.ones(2, 3, dtype=DT), torch.ones(2, 3, dtype=DT))
    with pytest.raises(ValueError, match="step"):
        frank_wolfe_weights(torch.ones(2, 3), n_iter=3, step="exact")
    with pytest.raises(ValueError, match="n_iter"):
        greedy_primary_auxiliary(torch.ones(3), torch.ones(2, 3), n_iter=-1)
