"""Unit tests of kexue_core.information (post 7695's entropy estimate and its helpers)."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

from kexue_core.information import (
    fit_joint_softmax,
    min_embedding_dim,
    skipgram_entropy_estimate,
    softmax_entropy,
    sphere_angle_density,
    vmf_kl_to_uniform,
)

TABLE_N = [32, 64, 96, 128, 256, 512]
POST_H = [-7.77471, -15.4734, -23.1726, -30.8718, -61.6692, -123.264]  # post 7695, 6 significant digits
PHI = (1 + math.sqrt(5)) / 2


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread is faster and does not oversubscribe a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- vmf_kl_to_uniform ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", TABLE_N)
def test_table_quadrature_matches_bessel(n):
    assert -vmf_kl_to_uniform(n, n) == pytest.approx(-vmf_kl_to_uniform(n, n, method="bessel"), abs=1e-6)


@pytest.mark.parametrize("n,post", list(zip(TABLE_N, POST_H)))
def test_table_matches_post_to_printed_digits(n, post):
    half_unit = 0.5 * 10 ** (math.floor(math.log10(abs(post))) - 5)  # 6 significant digits
    assert abs(-vmf_kl_to_uniform(n, n, method="bessel") - post) <= half_unit


def test_kl_against_mpmath_integrals():
    mpmath.mp.dps = 30
    for d, kappa in [(5, 5.0), (3, 1.7), (12, 30.0)]:
        w = lambda t: mpmath.sin(t) ** (d - 2)  # noqa: E731
        a = mpmath.quad(lambda t: w(t) * mpmath.exp(kappa * mpmath.cos(t)), [0, mpmath.pi])
        b = mpmath.quad(w, [0, mpmath.pi])
        c = mpmath.quad(lambda t: w(t) * mpmath.exp(kappa * mpmath.cos(t)) * mpmath.cos(t), [0, mpmath.pi])
        kl = float(kappa * c / a - mpmath.log(a / b))
        assert vmf_kl_to_uniform(d, kappa) == pytest.approx(kl, abs=1e-9)
        assert vmf_kl_to_uniform(d, kappa, method="bessel") == pytest.approx(kl, abs=1e-9)


def test_kl_zero_at_zero_concentration_and_positive_otherwise():
    for d in (2, 3, 10, 100):
        assert vmf_kl_to_uniform(d, 0) == 0.0
        assert vmf_kl_to_uniform(d, 0.0, method="bessel") == 0.0
        assert vmf_kl_to_uniform(d, 0.5) > 0


def test_kl_real_dimension_and_slope():
    # real (non-integer) dimensions are allowed (root finding); both routes agree there too
    assert vmf_kl_to_uniform(95.39, 95.39) == pytest.approx(vmf_kl_to_uniform(95.39, 95.39, method="bessel"), abs=1e-7)
    # h_n / n -> -1/2 log(phi) (Laplace), with an O(1) offset of about -0.075
    h = -vmf_kl_to_uniform(4096, 4096, method="bessel")
    assert h / 4096 == pytest.approx(-0.5 * math.log(PHI), abs=1e-4)


@pytest.mark.parametrize(
    "args,kwargs,exc",
    [
        ((1, 1.0), {}, ValueError),  # dim < 2
        ((1.5, 1.0), {}, ValueError),
        ((3, -1.0), {}, ValueError),  # negative kappa
        ((3, float("nan")), {}, ValueError),
        ((float("nan"), 1.0), {}, ValueError),
        ((3, float("inf")), {}, ValueError),
        ((3, 1.0), {"method": "laplace"}, ValueError),  # unknown method
        ((3, 1.0), {"grid": 10}, ValueError),
        (("3", 1.0), {}, TypeError),
        ((3, None), {}, TypeError),
    ],
)
def test_kl_bad_input(args, kwargs, exc):
    with pytest.raises(exc):
        vmf_kl_to_uniform(*args, **kwargs)


# --- sphere_angle_density -------------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 5, 16, 64, 300])
def test_angle_density_integrates_to_one(d):
    f = lambda t: float(sphere_angle_density(torch.tensor(t, dtype=torch.float64), d))  # noqa: E731
    value, err = scipy.integrate.quad(f, 0, math.pi, points=[math.pi / 2], limit=200)
    assert value == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("d", [3, 7, 16])
def test_angle_density_matches_scipy_beta(d):
    theta = torch.linspace(0.05, math.pi - 0.05, 101, dtype=torch.float64)
    beta = scipy.stats.beta((d - 1) / 2, (d - 1) / 2)
    expected = 0.5 * np.sin(theta.numpy()) * beta.pdf((1 + np.cos(theta.numpy())) / 2)  # change of variables
    np.testing.assert_allclose(sphere_angle_density(theta, d).numpy(), expected, rtol=1e-10)


def test_angle_density_shape_dtype_and_support():
    theta = torch.tensor([[-0.1, 0.0, 1.0], [math.pi / 2, math.pi, 4.0]], dtype=torch.float32)
    out = sphere_angle_density(theta, 4)
    assert out.shape == theta.shape and out.dtype == torch.float32
    assert out[0, 0] == 0 and out[1, 2] == 0  # outside [0, pi]
    assert out[1, 0] == pytest.approx(2 / math.pi)  # p_4(pi/2) = Gamma(2)/(Gamma(3/2) sqrt(pi)) = 2/pi
    # d = 2: uniform on [0, pi]
    assert torch.allclose(sphere_angle_density(torch.tensor([0.3, 2.0]), 2), torch.full((2,), 1 / math.pi))


@pytest.mark.parametrize(
    "theta,d,exc",
    [
        (torch.tensor([0.5]), 1, ValueError),
        (torch.tensor([0.5]), 0, ValueError),
        (torch.tensor([0.5]), 3.0, TypeError),
        (torch.tensor([float("nan")]), 3, ValueError),
        ([0.5], 3, TypeError),
        (torch.tensor([1, 2]), 3, TypeError),
    ],
)
def test_angle_density_bad_input(theta, d, exc):
    with pytest.raises(exc):
        sphere_angle_density(theta, d)


# --- skipgram_entropy_estimate ----------------------------------------------------------------------
def test_skipgram_estimate_worked_example():
    # post: n = 64, N = 100000 -> H ~ log(1e10) - 15.4734 = 7.55245
    assert skipgram_entropy_estimate(100_000, 64) == pytest.approx(7.55245, abs=5e-5)
    assert skipgram_entropy_estimate(100_000, 128) < 0  # the post's "negative entropy"
    assert skipgram_entropy_estimate(2000, 8) == pytest.approx(2 * math.log(2000) - vmf_kl_to_uniform(8, 8), abs=1e-12)


def test_skipgram_estimate_matches_exact_entropy_at_small_dim():
    # approximation A is accurate when n << log N: random sphere embeddings, N = 1500, n = 4
    g = torch.Generator().manual_seed(0)
    n_words, d = 1500, 4
    u = torch.randn(n_words, d, generator=g, dtype=torch.float64)
    v = torch.randn(n_words, d, generator=g, dtype=torch.float64)
    u = math.sqrt(d) * u / u.norm(dim=1, keepdim=True)
    v = math.sqrt(d) * v / v.norm(dim=1, keepdim=True)
    exact = softmax_entropy(u @ v.T, dim=(-2, -1)).item()
    assert exact == pytest.approx(skipgram_entropy_estimate(n_words, d), abs=0.02)


@pytest.mark.parametrize("args,exc", [((0, 8), ValueError), ((10, 1), ValueError), ((10.0, 8), TypeError), ((10, float("nan")), ValueError)])
def test_skipgram_estimate_bad_input(args, exc):
    with pytest.raises(exc):
        skipgram_entropy_estimate(*args)


# --- min_embedding_dim ------------------------------------------------------------------------------
def test_min_embedding_dim_rule_values():
    # fails if the constant 8.33 is changed (8.0 gives 92.10 and 123.40)
    assert min_embedding_dim(100_000) == pytest.approx(95.90, abs=0.005)
    assert min_embedding_dim(5_000_000) == pytest.approx(128.49, abs=0.005)
    assert min_embedding_dim(512) == pytest.approx(51.97, abs=0.005)
    assert min_embedding_dim(100_000, method="8.33") == min_embedding_dim(100_000)


def test_min_embedding_dim_laplace_and_exact():
    assert min_embedding_dim(100_000, method="laplace") / math.log(100_000) == pytest.approx(4 / math.log(PHI), rel=1e-12)
    assert min_embedding_dim(100_000, method="laplace") == pytest.approx(95.70, abs=0.005)
    assert min_embedding_dim(100_000, method="exact") == pytest.approx(95.39, abs=0.005)
    assert min_embedding_dim(5_000_000, method="exact") == pytest.approx(127.91, abs=0.005)
    root = min_embedding_dim(2000, method="exact")
    assert skipgram_entropy_estimate(2000, root) == pytest.approx(0.0, abs=1e-7)


def test_min_embedding_dim_with_data_entropy():
    h_data = 9.5
    root = min_embedding_dim(300, method="exact", data_entropy=h_data)
    assert skipgram_entropy_estimate(300, root) == pytest.approx(h_data, abs=1e-7)
    assert min_embedding_dim(300, data_entropy=h_data) == pytest.approx(8.33 / 2 * (2 * math.log(300) - h_data))
    assert min_embedding_dim(300, method="laplace", data_entropy=0.0) == min_embedding_dim(300, method="laplace")


@pytest.mark.parametrize(
    "args,kwargs,exc",
    [
        ((1,), {}, ValueError),  # vocab_size < 2
        ((0,), {}, ValueError),
        ((100.0,), {}, TypeError),
        ((100,), {"method": "8"}, ValueError),  # unknown method
        ((100,), {"data_entropy": -1.0}, ValueError),
        ((100,), {"data_entropy": 2 * math.log(100)}, ValueError),
        ((100,), {"data_entropy": float("nan")}, ValueError),
        ((100,), {"method": "exact", "data_entropy": 2 * math.log(100) - 0.1}, ValueError),  # root below n = 2
    ],
)
def test_min_embedding_dim_bad_input(args, kwargs, exc):
    with pytest.raises(exc):
        min_embedding_dim(*args, **kwargs)


# --- softmax_entropy --------------------------------------------------------------------------------
def test_softmax_entropy_matches_scipy_rows_and_joint():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(5, 7, 11, generator=g, dtype=torch.float64)
    rows = softmax_entropy(logits)  # (5, 7)
    expected = scipy.stats.entropy(torch.softmax(logits, -1).numpy(), axis=-1)
    assert rows.shape == (5, 7)
    np.testing.assert_allclose(rows.numpy(), expected, atol=1e-12)
    joint = softmax_entropy(logits, dim=(-2, -1))  # (5,)
    flat = torch.softmax(logits.reshape(5, -1), -1).numpy()
    np.testing.assert_allclose(joint.numpy(), scipy.stats.entropy(flat, axis=-1), atol=1e-12)


def test_softmax_entropy_stable_and_handles_minus_inf():
    x = torch.tensor([1000.0, 1000.0, -float("inf")], dtype=torch.float64)
    assert softmax_entropy(x).item() == pytest.approx(math.log(2), abs=1e-12)
    assert softmax_entropy(torch.zeros(8, dtype=torch.float64)).item() == pytest.approx(math.log(8), abs=1e-12)


@pytest.mark.parametrize(
    "x,exc",
    [(torch.tensor([1.0, float("nan")]), ValueError), (torch.tensor([1, 2]), TypeError), ([1.0, 2.0], TypeError), (torch.tensor(1.0), ValueError)],
)
def test_softmax_entropy_bad_input(x, exc):
    with pytest.raises(exc):
        softmax_entropy(x)


# --- fit_joint_softmax ------------------------------------------------------------------------------
def _rank2_counts(n_words=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n_words, 2, generator=g, dtype=torch.float64), torch.randn(n_words, 2, generator=g, dtype=torch.float64)
    p = torch.softmax((a @ b.T).reshape(-1), 0).reshape(n_words, n_words)
    return 1e6 * p  # "counts" exactly of the model's form with n = 2


def test_fit_joint_softmax_recovers_a_rank_two_model():
    counts = _rank2_counts(12)
    u, v, kl = fit_joint_softmax(counts, 2, steps=200, lr=0.1, generator=torch.Generator().manual_seed(0))
    assert u.shape == (12, 2) and v.shape == (12, 2) and kl.shape == (201,)
    assert kl[-1] < 1e-5 and kl[0] > 1.0
    # the reported KL is KL(p~ || p) of the returned embeddings (checked with SciPy)
    p_model = torch.softmax((u @ v.T).reshape(-1), 0).numpy()
    p_data = (counts / counts.sum()).reshape(-1).numpy()
    assert kl[-1].item() == pytest.approx(scipy.stats.entropy(p_data, p_model), abs=1e-10)


def test_fit_joint_softmax_deterministic_and_dimension_helps():
    counts = _rank2_counts(12, seed=1)
    runs = [fit_joint_softmax(counts, d, steps=50, generator=torch.Generator().manual_seed(3))[2] for d in (1, 1, 4)]
    assert torch.equal(runs[0], runs[1])
    assert runs[2][-1] < runs[0][-1]
    assert not runs[0].requires_grad


@pytest.mark.parametrize(
    "counts,kwargs,exc",
    [
        (torch.tensor([[1.0, -1.0], [0.0, 2.0]]), {}, ValueError),
        (torch.zeros(3, 3), {}, ValueError),
        (torch.ones(3), {}, ValueError),
        (torch.ones(2, 2, 2), {}, ValueError),
        (torch.tensor([[1.0, float("nan")], [0.0, 2.0]]), {}, ValueError),
        (torch.tensor([[1.0, float("inf")], [0.0, 2.0]]), {}, ValueError),
        (torch.ones(3, 3, dtype=torch.long), {}, TypeError),
        (np.ones((3, 3)), {}, TypeError),
        (torch.ones(3, 3), {"dim": 0}, ValueError),
        (torch.ones(3, 3), {"steps": 0}, ValueError),
        (torch.ones(3, 3), {"lr": -0.1}, ValueError),
        (torch.ones(3, 3), {"init_std": 0.0}, ValueError),
    ],
)
def test_fit_joint_softmax_bad_input(counts, kwargs, exc):
    kwargs = {"dim": 2, "steps": 2, **kwargs}
    dim = kwargs.pop("dim")
    with pytest.raises(exc):
        fit_joint_softmax(counts, dim, **kwargs)


def test_min_embedding_dim_smallest_vocabulary():
    # N = 2 is the smallest allowed vocabulary. There 2 log 2 - KL(n=2) = 0.815 nats > 0, so the
    # exact root exists (n = 5.42) and solves 2 log N = KL(vMF_n(n) || uniform).
    root = min_embedding_dim(2, method="exact")
    assert root > 2
    assert vmf_kl_to_uniform(root, root) == pytest.approx(2 * math.log(2), abs=1e-8)
    assert min_embedding_dim(2) == pytest.approx(8.33 * math.log(2), rel=1e-12)
    with pytest.raises(ValueError):
        min_embedding_dim(1)
    # a data entropy that leaves less than KL(n=2) = 0.57 nats of budget has no root above n = 2
    with pytest.raises(ValueError):
        min_embedding_dim(2, data_entropy=0.9, method="exact")


def test_fit_joint_softmax_starts_near_uniform_and_accepts_zero_counts():
    # With a tiny init_std the model starts uniform over the N*M pairs, so the first KL is
    # log(N M) - H(p~) (nats). Zero counts (unseen pairs, as in real co-occurrence data) are allowed.
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([[4.0, 0.0, 1.0], [2.0, 3.0, 0.0]], dtype=torch.float64)
    p = counts / counts.sum()
    h = -torch.special.xlogy(p, p).sum()
    _, _, kl = fit_joint_softmax(counts, 2, steps=1, lr=1e-9, init_std=1e-6, generator=g)
    assert kl[0].item() == pytest.approx(math.log(6) - h.item(), abs=1e-9)


def test_fit_joint_softmax_initial_kl_matches_its_documented_init():
    # U, V ~ N(0, init_std^2), U drawn first: kl[0] is the KL of that initial model (nats)
    counts = torch.tensor([[4.0, 0.0, 1.0], [2.0, 3.0, 0.0]], dtype=torch.float64)
    _, _, kl = fit_joint_softmax(counts, 3, steps=1, init_std=0.7, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    u = 0.7 * torch.randn(2, 3, dtype=torch.float64, generator=g)
    v = 0.7 * torch.randn(3, 3, dtype=torch.float64, generator=g)
    p = counts / counts.sum()
    log_q = torch.log_softmax((u @ v.T).reshape(-1), 0).reshape(2, 3)
    expected = (torch.special.xlogy(p, p) - p * log_q).sum()
    assert kl[0].item() == pytest.approx(expected.item(), abs=1e-12)


# --- issue 9: softmax_entropy at infinities, vmf_kl_to_uniform over its documented range --------------
def test_softmax_entropy_infinite_logits_defined():
    inf = math.inf
    x = torch.tensor([[inf, 0.0, 1.0], [inf, inf, -inf], [-inf, -inf, -inf], [0.0, 0.0, -inf]], dtype=torch.float64)
    h = softmax_entropy(x)
    # +inf logits: the limit puts all mass, uniformly, on them; an all -inf row has no mass: entropy 0
    torch.testing.assert_close(h, torch.tensor([0.0, math.log(2), 0.0, math.log(2)], dtype=torch.float64),
                               rtol=0, atol=1e-15)
    # the limit: a large finite logit gives the same
    big = torch.tensor([[1e300, 0.0, 1.0]], dtype=torch.float64)
    assert softmax_entropy(big).item() == 0.0
    joint = softmax_entropy(x[:2], dim=(-2, -1))  # three +inf entries over the whole matrix
    assert joint.item() == pytest.approx(math.log(3), abs=1e-15)


def _kl_mpmath(d, kappa, dps=50):
    """KL(vMF_d(kappa) || uniform) = kappa A_d(kappa) - log 0F1(; d/2; kappa^2/4), high precision."""
    with mpmath.workdps(dps):
        k, nu = mpmath.mpf(kappa), mpmath.mpf(d) / 2 - 1
        ratio = mpmath.besseli(nu + 1, k) / mpmath.besseli(nu, k)
        log_mgf = mpmath.loggamma(nu + 1) + nu * mpmath.log(2 / k) + mpmath.log(mpmath.besseli(nu, k))
        return float(k * ratio - log_mgf)


KAPPAS = [1e-8, 1e-3, 0.5, 10.0, 300.0, 1e4, 1e5]


@pytest.mark.parametrize("d", [2, 3, 64, 512, 1024])
def test_kl_quadrature_against_mpmath_over_its_range(d):
    for kappa in KAPPAS:
        want = _kl_mpmath(d, kappa)
        got = vmf_kl_to_uniform(d, kappa)
        assert got >= 0
        assert abs(got - want) <= 1e-7 * max(1.0, want), (d, kappa, got, want)


@pytest.mark.parametrize("d", [2, 3, 7.5, 64, 512, 1024, 4096])
def test_kl_bessel_against_mpmath_over_its_range(d):
    for kappa in KAPPAS + [1e7, 1e8, 1e10, 1e12]:
        want = _kl_mpmath(d, kappa)
        got = vmf_kl_to_uniform(d, kappa, method="bessel")
        assert got >= 0
        assert abs(got - want) <= 1e-10 * max(1.0, want), (d, kappa, got, want)


def test_kl_outside_range_raises_clearly():
    with pytest.raises(ValueError, match="quadrature"):
        vmf_kl_to_uniform(3, 1e10)  # the grid cannot resolve the peak: use method='bessel'
    with pytest.raises(ValueError, match="kappa"):
        vmf_kl_to_uniform(3, 1e13, method="bessel")
    with pytest.raises(ValueError, match="dim"):
        vmf_kl_to_uniform(5000, 1.0, method="bessel")
