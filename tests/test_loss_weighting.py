"""kexue_core.loss_weighting against scipy.stats (pmean, gmean, entropy) and autograd oracles."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from kexue_core.loss_weighting import (
    generalized_mean,
    init_loss_cross_entropy,
    init_loss_mse,
    inverse_grad_norm_loss,
    normalized_gradient_sum,
    prior_loss_cross_entropy,
    prior_loss_mse,
    realtime_weighted_loss,
    static_weighted_loss,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


L = torch.tensor([0.3, 2.5, 11.0, 0.07], dtype=torch.float64)


@pytest.mark.parametrize("gamma", [-2.0, -1.0, -0.3, 0.5, 1.0, 2.0, 3.0])
def test_generalized_mean_matches_scipy_pmean(gamma):
    assert math.isclose(float(generalized_mean(L, gamma)), stats.pmean(L.numpy(), gamma), rel_tol=1e-12)


def test_generalized_mean_limits():
    assert math.isclose(float(generalized_mean(L, 0.0)), stats.gmean(L.numpy()), rel_tol=1e-12)
    assert math.isclose(float(generalized_mean(L, -1)), stats.hmean(L.numpy()), rel_tol=1e-12)
    assert float(generalized_mean(L, math.inf)) == 11.0
    assert float(generalized_mean(L, -math.inf)) == 0.07
    # continuity at 0 and at large |gamma|
    assert math.isclose(float(generalized_mean(L, 1e-7)), stats.gmean(L.numpy()), rel_tol=1e-6)
    assert math.isclose(float(generalized_mean(L, 400.0)), 11.0, rel_tol=1e-2)


def test_generalized_mean_monotone_and_homogeneous():
    gs = np.linspace(-5, 5, 41)
    vals = np.array([float(generalized_mean(L, g)) for g in gs])
    assert (np.diff(vals) > 0).all()
    assert math.isclose(float(generalized_mean(7 * L, 1.7)), 7 * float(generalized_mean(L, 1.7)), rel_tol=1e-12)


def test_generalized_mean_no_overflow():
    big = torch.tensor([1e200, 1e201], dtype=torch.float64)
    assert math.isclose(float(generalized_mean(big, 3.0)), stats.pmean(np.array([1.0, 10.0]), 3.0) * 1e200, rel_tol=1e-10)


@pytest.mark.parametrize(
    "losses,gamma,exc,match",
    [
        (torch.tensor([1.0, -1.0]), 1.0, ValueError, "losses"),
        (torch.tensor([1.0, 0.0]), 1.0, ValueError, "losses"),
        (torch.tensor([[1.0, 2.0]]), 1.0, ValueError, "losses"),
        (torch.tensor([1.0, 2.0]), float("nan"), ValueError, "gamma"),
        (torch.tensor([1.0, 2.0]), "1", TypeError, "gamma"),
        ([1.0, 2.0], 1.0, TypeError, "losses"),
    ],
)
def test_generalized_mean_bad_input(losses, gamma, exc, match):
    with pytest.raises(exc, match=match):
        generalized_mean(losses, gamma)


def test_reference_losses():
    assert math.isclose(init_loss_cross_entropy(10), math.log(10))
    counts = torch.tensor([5, 1, 0, 14])
    assert math.isclose(float(prior_loss_cross_entropy(counts)), stats.entropy(counts.numpy()), rel_tol=1e-12)
    y = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], dtype=torch.float64)
    assert math.isclose(float(init_loss_mse(y)), float(np.mean(np.sum(y.numpy() ** 2, 1))), rel_tol=1e-12)
    assert math.isclose(float(prior_loss_mse(y)), float(np.var(y.numpy(), axis=0).sum()), rel_tol=1e-12)
    assert math.isclose(float(prior_loss_mse(y[:, 0])), float(np.var(y.numpy()[:, 0])), rel_tol=1e-12)
    with pytest.raises(ValueError, match="num_classes"):
        init_loss_cross_entropy(1)
    with pytest.raises(ValueError, match="class_counts"):
        prior_loss_cross_entropy(torch.tensor([1, -1, 3]))
    with pytest.raises(ValueError, match="targets"):
        prior_loss_mse(torch.zeros(0, 3))


def _tasks(seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    A = torch.randn(3, 6, generator=g, dtype=torch.float64)
    losses = torch.stack([((A[i] * theta).sum() - i) ** 2 + 0.1 * (i + 1) for i in range(3)])
    return theta, losses


def test_static_weighting_is_scale_invariant():
    theta, losses = _tasks()
    refs = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    k = torch.tensor([1.0, 1000.0, 0.01], dtype=torch.float64)
    (g1,) = torch.autograd.grad(static_weighted_loss(losses, refs), theta, retain_graph=True)
    (g2,) = torch.autograd.grad(static_weighted_loss(k * losses, k * refs), theta)
    assert torch.allclose(g1, g2, rtol=1e-12)
    with pytest.raises(ValueError, match="refs"):
        static_weighted_loss(losses, refs[:2])


def test_realtime_gradient_is_gradient_of_sum_log():
    theta, losses = _tasks(1)
    obj = realtime_weighted_loss(losses)
    assert math.isclose(float(obj.detach()), 3.0, rel_tol=1e-15)
    (g1,) = torch.autograd.grad(obj, theta, retain_graph=True)
    (g2,) = torch.autograd.grad(torch.log(losses).sum(), theta)
    assert torch.allclose(g1, g2, rtol=1e-12)
    with pytest.raises(ValueError, match="losses"):
        realtime_weighted_loss(losses.detach() - 100)


def test_inverse_grad_norm_gradient_is_sum_of_unit_gradients():
    theta, losses = _tasks(2)
    grads = torch.stack([torch.autograd.grad(losses[i], theta, retain_graph=True)[0] for i in range(3)])
    (g,) = torch.autograd.grad(inverse_grad_norm_loss(losses, [theta]), theta, retain_graph=True)
    manual = sum(grads[i] / torch.linalg.vector_norm(grads[i]) for i in range(3))
    assert torch.allclose(g, manual, rtol=1e-12)
    assert torch.allclose(normalized_gradient_sum(grads), manual, rtol=1e-12)
    # invariant to L_i -> a_i L_i + b_i
    a = torch.tensor([3.0, 0.001, 50.0], dtype=torch.float64)
    b = torch.tensor([5.0, -2.0, 100.0], dtype=torch.float64)
    (g_ab,) = torch.autograd.grad(inverse_grad_norm_loss(a * losses + b, [theta]), theta)
    assert torch.allclose(g_ab, g, rtol=1e-10)


def test_inverse_grad_norm_bad_input():
    theta, losses = _tasks(3)
    with pytest.raises(ValueError, match="params"):
        inverse_grad_norm_loss(losses, [])
    with pytest.raises(ValueError, match="eps"):
        inverse_grad_norm_loss(losses, [theta], eps=-1.0)
    with pytest.raises(ValueError, match="grads"):
        normalized_gradient_sum(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="grads"):
        normalized_gradient_sum(torch.ones(3))
