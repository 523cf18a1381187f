r"""Entropies of softmax distributions and the random-sphere estimates built on them.

Everything is in **nats** (natural logarithms). The central quantity is the entropy offset of a
softmax over random keys on a sphere. For ``u, v`` independent and uniform on the sphere of radius
``sqrt(d)`` in :math:`\mathbb R^d`, with :math:`\theta` their angle and :math:`\kappa = \lambda d`,

.. math::
   h_d(\kappa) = \log \mathbb E_\theta[e^{\kappa\cos\theta}]
               - \kappa\,\frac{\mathbb E_\theta[e^{\kappa\cos\theta}\cos\theta]}{\mathbb E_\theta[e^{\kappa\cos\theta}]}
               = -\,\mathrm{KL}\big(\mathrm{vMF}_d(\kappa)\,\big\|\,\mathrm{Uniform}(S^{d-1})\big),

the (negative) Kullback–Leibler divergence of a von Mises–Fisher distribution from the uniform one.
Post 7695's :math:`h_n` is :math:`h_n(n)` (``kappa = dim``); post 8823's bracket at logit scale λ is
:math:`h_d(\lambda d)`.
"""
from __future__ import annotations

import math

import torch
from scipy import optimize, special

from ._validation import check_positive_int, check_positive_real, check_tensor

__all__ = [
    "sphere_angle_density",
    "vmf_kl_to_uniform",
    "skipgram_entropy_estimate",
    "min_embedding_dim",
    "softmax_entropy",
]


def _check_dim(dim) -> float:
    d = check_positive_real(dim, "dim")
    if d < 2:
        raise ValueError(f"dim must be >= 2 (an angle needs at least a circle), got {dim}")
    return d


def sphere_angle_density(theta, dim: int):
    r"""Density of the angle between two independent uniform directions in :math:`\mathbb R^{d}`.

    .. math:: p_d(\theta) = \frac{\Gamma(d/2)}{\Gamma((d-1)/2)\sqrt\pi}\sin^{d-2}\theta,\quad \theta\in[0,\pi]

    theta : tensor of angles in **radians** (any shape; values outside [0, π] get density 0).
    dim : the dimension d (int >= 2). Returns a tensor of ``theta``'s shape and dtype (per radian).

    Raises ``TypeError``/``ValueError`` for a non-tensor or NaN ``theta`` or ``dim < 2``.
    Source: https://kexue.fm/archives/7695 (from archives/7076).
    """
    check_tensor(theta, "theta")
    d = check_positive_int(dim, "dim", minimum=2)
    log_c = math.lgamma(d / 2) - math.lgamma((d - 1) / 2) - 0.5 * math.log(math.pi)
    inside = (theta >= 0) & (theta <= math.pi)
    s = torch.sin(theta).clamp_min(0)
    dens = torch.exp(torch.tensor(log_c, dtype=theta.dtype)) * s ** (d - 2)
    return torch.where(inside, dens, torch.zeros_like(dens))


def vmf_kl_to_uniform(dim, kappa, *, method: str = "quadrature", grid: int = 200_001) -> float:
    r"""KL divergence of the von Mises–Fisher distribution from the uniform one on :math:`S^{d-1}`, nats.

    .. math::
       \mathrm{KL} = \kappa\,\frac{\int_0^\pi \sin^{d-2}\theta\,e^{\kappa\cos\theta}\cos\theta\,d\theta}
                                  {\int_0^\pi \sin^{d-2}\theta\,e^{\kappa\cos\theta}d\theta}
                   - \log\frac{\int_0^\pi \sin^{d-2}\theta\,e^{\kappa\cos\theta}d\theta}{\int_0^\pi\sin^{d-2}\theta\,d\theta}

    so that post 7695's :math:`h_n = -\mathrm{KL}(n, n)` and post 8823's entropy bracket at logit scale
    λ is :math:`-\mathrm{KL}(d, \lambda d)`.

    dim : the dimension d, a real >= 2 (real values allow root finding in d).
    kappa : the concentration κ >= 0 (``λ·d`` for keys and queries of norm ``sqrt(d)``).
    method : ``"quadrature"`` (default): midpoint rule on ``grid`` points of (0, π) in log space
        (log-sum-exp), float64 — no overflow of :math:`e^{\kappa\cos\theta}` or underflow of
        :math:`\sin^{d-2}`; error below 1e-7 for d <= 1024 at the default grid.
        ``"bessel"``: the closed form :math:`\log\Gamma(\tfrac d2)+(\tfrac d2-1)\log\tfrac2\kappa+\log I_{d/2-1}(\kappa)`
        and :math:`\mathbb E[\cos\theta]=I_{d/2}(\kappa)/I_{d/2-1}(\kappa)`, with SciPy's scaled Bessel
        function ``ive`` (an independent oracle, not in the post).
    grid : number of quadrature points (int >= 1000).

    Returns a Python float >= 0 (0 at κ = 0).

    Raises ``ValueError`` for ``dim < 2``, ``kappa < 0``, an unknown method or a too-small grid.
    Source: https://kexue.fm/archives/7695 (definition of :math:`h_n`, table), https://kexue.fm/archives/8823.
    """
    d = _check_dim(dim)
    kappa = check_positive_real(kappa, "kappa", allow_zero=True)
    if kappa == 0:
        return 0.0
    if method == "bessel":
        nu = d / 2 - 1
        log_mgf = math.lgamma(d / 2) + nu * math.log(2 / kappa) + math.log(special.ive(nu, kappa)) + kappa
        mean_cos = special.ive(nu + 1, kappa) / special.ive(nu, kappa)
        return float(kappa * mean_cos - log_mgf)
    if method != "quadrature":
        raise ValueError(f"method must be 'quadrature' or 'bessel', got {method!r}")
    grid = check_positive_int(grid, "grid", minimum=1000)
    theta = (torch.arange(grid, dtype=torch.float64) + 0.5) * (math.pi / grid)  # midpoints, no endpoints
    log_base = (d - 2) * torch.log(torch.sin(theta))  # log sin^{d-2}θ
    log_tilted = log_base + kappa * torch.cos(theta)  # log [sin^{d-2}θ e^{κ cosθ}]
    log_mgf = torch.logsumexp(log_tilted, 0) - torch.logsumexp(log_base, 0)  # log E_p[e^{κ cosθ}]
    mean_cos = (torch.softmax(log_tilted, 0) * torch.cos(theta)).sum()  # E_vMF[cosθ]
    return float(kappa * mean_cos - log_mgf)


def skipgram_entropy_estimate(vocab_size: int, dim) -> float:
    r"""Post 7695's estimate of the entropy of the joint-softmax (Skip-Gram) model, in nats:

    .. math:: H \approx \log N^2 + h_n,\qquad h_n = -\mathrm{KL}(\mathrm{vMF}_n(n)\,\|\,\mathrm{Unif})

    for ``N = vocab_size`` words with embeddings uniform on the sphere of radius ``sqrt(n)``,
    ``n = dim``. An approximation (sums over the N² pairs replaced by N²×expectation); it goes
    negative for large ``n``, which is the post's criterion ``n > 8.33 log N``.

    vocab_size : N (int >= 1). dim : n (real >= 2). Returns a float (may be negative).
    Raises ``TypeError``/``ValueError`` for bad arguments. Source: https://kexue.fm/archives/7695.
    """
    n_words = check_positive_int(vocab_size, "vocab_size")
    d = _check_dim(dim)
    return 2 * math.log(n_words) - vmf_kl_to_uniform(d, d)


def min_embedding_dim(vocab_size: int, *, method: str = "8.33") -> float:
    r"""Post 7695's sufficient embedding dimension for a vocabulary of ``vocab_size`` words.

    method :
        ``"8.33"``: the post's rule :math:`n = 8.33\log N` (``8.33 = 2/0.24``, the slope of
        :math:`h_n` read off the table);
        ``"laplace"``: :math:`n = \frac{2}{\frac12\log\varphi}\log N = 8.3123\log N` with the exact
        asymptotic slope, φ the golden ratio;
        ``"exact"``: the root of :math:`2\log N + h_n = 0` in n (Brent's method, no linearisation).

    Returns a float (the dimension, not rounded). Raises ``ValueError`` for an unknown method or
    ``vocab_size < 2`` (log N must be positive). Source: https://kexue.fm/archives/7695.
    """
    n_words = check_positive_int(vocab_size, "vocab_size", minimum=2)
    log_n = math.log(n_words)
    if method == "8.33":
        return 8.33 * log_n
    if method == "laplace":
        phi = (1 + math.sqrt(5)) / 2
        return 2 / (0.5 * math.log(phi)) * log_n
    if method == "exact":
        f = lambda d: skipgram_entropy_estimate(n_words, d)  # noqa: E731
        hi = 20 * log_n + 10
        return float(optimize.brentq(f, 2.0, hi, xtol=1e-9))
    raise ValueError(f"method must be '8.33', 'laplace' or 'exact', got {method!r}")


def softmax_entropy(logits, dim=-1):
    r"""Exact entropy, in nats, of ``softmax(logits)`` over ``dim`` (an int or a tuple of ints):

    .. math:: H = \log Z - \sum_j p_j s_j,\qquad Z = \sum_j e^{s_j}

    computed with ``logsumexp`` (no overflow). With ``dim=(-2, -1)`` it is the entropy of the joint
    softmax over all pairs of a logit matrix, e.g. ``U @ V.T`` in post 7695.

    logits : floating tensor, no NaN (``-inf`` allowed: zero probability). Returns the tensor with
    ``dim`` reduced. Raises ``TypeError``/``ValueError`` for bad input. Source: https://kexue.fm/archives/7695.
    """
    check_tensor(logits, "logits", min_dim=1)
    log_z = torch.logsumexp(logits, dim=dim, keepdim=True)
    log_p = logits - log_z
    p = log_p.exp()
    return -(p * torch.where(p > 0, log_p, torch.zeros_like(log_p))).sum(dim=dim)

