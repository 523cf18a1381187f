"""Tests for kexue_core.sampling against independent references: scipy's dense eigen-solver for the
stationary vector, an explicit per-entry loop for the kernels, exact enumeration for Gibbs."""
import itertools

import numpy as np
import pytest
import scipy.linalg
import torch

from kexue_core.sampling import (
    gibbs_sampler,
    hill_climbing,
    metropolis_hastings_kernel,
    sample_markov_chain,
    simulated_annealing,
    spectral_gap,
    stationary_distribution,
    total_variation,
)


def _random_problem(s=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(s, generator=g, dtype=torch.float64) + 0.05
    p = p / p.sum()
    Q = torch.rand(s, s, generator=g, dtype=torch.float64) ** 3  # strongly asymmetric
    Q = Q / Q.sum(1, keepdim=True)
    return p, Q


def _scipy_stationary(P):
    w, vl = scipy.linalg.eig(P.numpy(), left=True, right=False)
    v = np.real(vl[:, np.argmin(np.abs(w - 1))])
    return v / v.sum()


@pytest.mark.parametrize("acceptance", ["mh", "raw"])
def test_detailed_balance_and_stationarity(acceptance):
    for seed in range(3):
        p, Q = _random_problem(seed=seed)
        P = metropolis_hastings_kernel(p, Q, acceptance=acceptance)
        flow = p[:, None] * P
        assert torch.allclose(flow, flow.T, atol=1e-12, rtol=0)
        assert torch.allclose(P.sum(1), torch.ones(6, dtype=torch.float64), atol=1e-12)
        assert (P >= 0).all()
        np.testing.assert_allclose(_scipy_stationary(P), p.numpy(), atol=1e-12)
        np.testing.assert_allclose(stationary_distribution(P).numpy(), p.numpy(), atol=1e-12)


def test_mh_kernel_entries_match_the_hastings_formula():
    """An explicit loop with the textbook ratio min(1, p(y)q(x|y) / (p(x)q(y|x))): the direction of the
    ratio matters for an asymmetric Q (a swapped ratio breaks detailed balance and this test)."""
    p, Q = _random_problem(seed=5)
    P = metropolis_hastings_kernel(p, Q)
    s = p.numel()
    for x in range(s):
        for y in range(s):
            if x != y:
                want = Q[x, y] * min(1.0, float(p[y] * Q[y, x] / (p[x] * Q[x, y])))
                assert abs(float(P[x, y]) - want) < 1e-15
    raw = metropolis_hastings_kernel(p, Q, acceptance="raw")
    for x in range(s):
        for y in range(s):
            if x != y:
                assert abs(float(raw[x, y]) - float(Q[x, y] * Q[y, x] * p[y])) < 1e-15


def test_mh_mixes_faster_than_raw():
    p, Q = _random_problem(seed=1)
    gap_mh = spectral_gap(metropolis_hastings_kernel(p, Q))
    gap_raw = spectral_gap(metropolis_hastings_kernel(p, Q, acceptance="raw"))
    assert gap_mh > gap_raw > 0


def test_sample_markov_chain_histogram():
    p, Q = _random_problem(seed=2)
    P = metropolis_hastings_kernel(p, Q)
    g = torch.Generator().manual_seed(0)
    xs = sample_markov_chain(P, torch.zeros(4000, dtype=torch.long), 200, generator=g)
    hist = torch.bincount(xs[-1], minlength=6).double() / 4000
    # TV of an empirical histogram of 4000 iid draws over 6 states is about 0.02; 0.05 is > 3 sigma
    assert total_variation(hist, p) < 0.05


def test_gibbs_matches_enumeration():
    g = torch.Generator().manual_seed(0)
    V, L = 3, 4
    B = torch.rand(V, V, generator=g, dtype=torch.float64) + 0.1

    def log_joint(x):
        return torch.log(B[x[:, :-1], x[:, 1:]]).sum(1)

    seqs = torch.tensor(list(itertools.product(range(V), repeat=L)))
    w = torch.softmax(log_joint(seqs), 0)
    exact = torch.stack([torch.zeros(V, dtype=torch.float64).index_add(0, seqs[:, i], w) for i in range(L)])
    xs = gibbs_sampler(log_joint, torch.zeros(3000, L, dtype=torch.long), V, 40, generator=g)
    emp = torch.stack([torch.bincount(xs[-1, :, i], minlength=V).double() / 3000 for i in range(L)])
    assert (emp - exact).abs().max() < 0.04  # 4 standard errors of a proportion with n = 3000


def test_simulated_annealing_finds_maximum_and_hill_climbing_gets_stuck():
    f_tab = torch.tensor([0.0, 3.0, 1.0, 0.0, 0.0, 2.0, 5.0, 0.0, 0.0])  # local max 3 at 1, global 5 at 6

    def objective(x):
        return f_tab[x[:, 0]]

    def neighbour(x, gen):
        step = torch.randint(0, 2, x.shape, generator=gen) * 2 - 1
        return (x + step).clamp(0, 8)

    g = torch.Generator().manual_seed(0)
    x0 = torch.ones(200, 1, dtype=torch.long)
    _, best_hc, _ = hill_climbing(objective, neighbour, x0, steps=100, generator=g)
    assert (best_hc == 3.0).all()  # every move from the local maximum lowers f
    _, best_sa, trace = simulated_annealing(objective, neighbour, x0, schedule=lambda t: 3.0 * 0.995**t,
                                            steps=1000, generator=g)
    assert trace.shape == (1000, 200)
    assert (best_sa <= 5.0).all() and (best_sa == 5.0).float().mean() > 0.5


@pytest.mark.parametrize(
    "p, Q, match",
    [
        (torch.tensor([0.5, 0.6], dtype=torch.float64), torch.eye(2, dtype=torch.float64), "p"),
        (torch.tensor([1.5, -0.5], dtype=torch.float64), torch.eye(2, dtype=torch.float64), "p"),
        (torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([[1.5, -0.5], [0.0, 1.0]], dtype=torch.float64), "Q"),
        (torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([[0.5, 0.4], [0.0, 1.0]], dtype=torch.float64), "Q"),
        (torch.tensor([0.5, 0.5], dtype=torch.float64), torch.eye(3, dtype=torch.float64), "Q"),
    ],
)
def test_bad_input(p, Q, match):
    with pytest.raises(ValueError, match=match):
        metropolis_hastings_kernel(p, Q)


def test_bad_input_other():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match="acceptance"):
        metropolis_hastings_kernel(p, torch.eye(2, dtype=torch.float64), acceptance="metropolis")
    with pytest.raises(TypeError, match="p"):
        metropolis_hastings_kernel([0.5, 0.5], torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="steps"):
        sample_markov_chain(torch.eye(2, dtype=torch.float64), torch.zeros(3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="x0"):
        sample_markov_chain(torch.eye(2, dtype=torch.float64), torch.full((3,), 5), 1)
    with pytest.raises(ValueError, match="schedule"):
        simulated_annealing(lambda x: x[:, 0].double(), lambda x, g: x, torch.zeros(2, 1), schedule=lambda t: -1.0,
                            steps=2)
