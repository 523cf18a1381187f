"""Tests for kexue_core.random_projection against scikit-learn and closed forms."""
import math

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.random_projection import johnson_lindenstrauss_min_dim
from sklearn.utils.extmath import randomized_svd as sk_randomized_svd

from kexue_core.random_projection import (
    gaussian_projection_matrix,
    jl_min_dim,
    pairwise_sq_distance_ratios,
    randomized_svd,
    simhash,
    simhash_cosine,
)


def test_gaussian_matrix_law():
    A = gaussian_projection_matrix(50, 400, generator=torch.Generator().manual_seed(0))
    assert A.shape == (50, 400) and A.dtype == torch.float64
    # entries N(0, 1/50): Kolmogorov-Smirnov against that law
    assert scipy.stats.kstest((A * math.sqrt(50)).flatten().numpy(), "norm").pvalue > 1e-3
    assert gaussian_projection_matrix(3, 4, dtype=torch.float32).dtype == torch.float32


def test_jl_min_dim_reference_values():
    # the spec's reference values of the post's n > 24 log N / eps^2 (computed independently there)
    assert jl_min_dim(500, 0.3) == 1658
    assert jl_min_dim(1000, 0.3) == 1843
    assert jl_min_dim(10_000, 0.1) == 22105
    assert jl_min_dim(500, 0.3, constant=16) == 1105
    # the defining property of 24: the union bound N(N-1) exp(-eps^2 n / 8) is at most 1/N
    for n_samples, eps in ((500, 0.3), (10_000, 0.1), (3, 0.9)):
        n = jl_min_dim(n_samples, eps)
        assert n_samples * (n_samples - 1) * math.exp(-eps**2 * n / 8) <= 1 / n_samples
    # scikit-learn's bound has a sharper constant: always smaller
    assert johnson_lindenstrauss_min_dim(1000, eps=0.3) < jl_min_dim(1000, 0.3)


def test_pairwise_ratios_identity_and_scaling():
    X = torch.randn(20, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    r = pairwise_sq_distance_ratios(X, 3 * X)
    assert r.shape == (190,)
    assert torch.allclose(r, torch.full_like(r, 9.0), atol=1e-12)


def test_simhash_estimates_arcsin_law():
    g = torch.Generator().manual_seed(0)
    m, n = 64, 20000
    A = gaussian_projection_matrix(n, m, generator=g)
    for rho in (0.0, 0.5, 0.9):
        u = torch.zeros(1, m, dtype=torch.float64)
        u[0, 0] = 1
        v = torch.zeros(1, m, dtype=torch.float64)
        v[0, 0], v[0, 1] = rho, math.sqrt(1 - rho**2)
        bu, bv = simhash(u, A), simhash(v, A)
        raw = float((bu * bv).mean())  # cos of the sign vectors
        # 20000 bits: standard error of the agreement fraction <= 0.0036, of 2a-1 <= 0.0071
        assert abs(raw - 2 / math.pi * math.asin(rho)) < 0.03
        assert abs(float(simhash_cosine(bu, bv)) - rho) < 0.03
    assert ((simhash(torch.zeros(2, m, dtype=torch.float64), A) == 1).all())  # sign(0) = +1


def test_randomized_svd_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    m, n, r = 300, 400, 10
    U0 = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64)).Q
    V0 = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64)).Q
    M = U0 @ torch.diag(torch.linspace(10, 1, r, dtype=torch.float64)) @ V0.T
    M = M + 0.05 * torch.randn(m, n, generator=g, dtype=torch.float64)
    U, S, Vh = randomized_svd(M, r, generator=g)
    assert U.shape == (m, r) and S.shape == (r,) and Vh.shape == (r, n)
    ours = torch.linalg.norm(M - U @ torch.diag(S) @ Vh) / torch.linalg.norm(M)
    Us, Ss, Vhs = sk_randomized_svd(M.numpy(), r, n_oversamples=10, n_iter=2, random_state=0)
    theirs = np.linalg.norm(M.numpy() - Us @ np.diag(Ss) @ Vhs) / np.linalg.norm(M.numpy())
    assert abs(float(ours) - theirs) <= 0.1 * theirs
    # and both near the optimal rank-r error (Eckart-Young)
    s_all = torch.linalg.svdvals(M)
    best = torch.sqrt((s_all[r:] ** 2).sum()) / torch.linalg.norm(M)
    assert float(ours) <= 1.1 * float(best)


@pytest.mark.parametrize("eps", [0.0, 1.0, -0.1, 1.5])
def test_jl_min_dim_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        jl_min_dim(100, eps)


def test_bad_input():
    with pytest.raises(ValueError, match="n_samples"):
        jl_min_dim(1, 0.5)
    with pytest.raises(ValueError, match="n_components"):
        gaussian_projection_matrix(0, 5)
    with pytest.raises(ValueError, match="A must be"):
        simhash(torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="bits_a"):
        simhash_cosine(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="rank"):
        randomized_svd(torch.zeros(3, 4), 5)
    with pytest.raises(ValueError, match="coincident"):
        pairwise_sq_distance_ratios(torch.zeros(3, 2), torch.zeros(3, 2))
