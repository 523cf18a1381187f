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

import functools
import math

import numpy as np
import torch
from scipy import optimize, special

from ._validation import check_positive_int, check_positive_real, check_tensor

__all__ = [
    "sphere_angle_density",
    "vmf_kl_to_uniform",
    "skipgram_entropy_estimate",
    "min_embedding_dim",
    "softmax_entropy",
    "fit_joint_softmax",
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


@functools.lru_cache(maxsize=4)
def _midpoint_grid(grid: int) -> tuple[np.ndarray, np.ndarray]:
    """cos θ_k and log sin θ_k at the midpoints θ_k = (k + 1/2)π/grid (read-only, cached).

    NumPy (single-threaded) rather than torch: a 1-D grid gains nothing from intra-op threads, which
    cost several times the CPU time on a busy machine."""
    theta = (np.arange(grid, dtype=np.float64) + 0.5) * (math.pi / grid)  # no endpoints: sin θ > 0
    cos, log_sin = np.cos(theta), np.log(np.sin(theta))
    cos.flags.writeable = False
    log_sin.flags.writeable = False
    return cos, log_sin


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


def vmf_kl_to_uniform(dim, kappa, *, method: str = "quadrature", grid: int = 200_001) -> float:
    r"""KL divergence of the von Mises–Fisher distribution from the uniform one on :math:`S^{d-1}`, nats.

    .. math::
       \mathrm{KL} = \kappa\,\frac{\int_0^\pi \sin^{d-2}\theta\,e^{\kappa\cos\theta}\cos\theta\,d\theta}
                                  {\int_0^\pi \sin^{d-2}\theta\,e^{\kappa\cos\theta}d\theta}
                   - \log\frac{\int_0^\pi \sin^{d-2}\theta\,e^{\kappa\cos\theta}d\theta}{\int_0^\pi\sin^{d-2}\theta\,d\theta}

    so that post 7695's :math:`h_n = -\mathrm{KL}(n, n)` and post 8823's entropy bracket at logit scale
    λ is :math:`-\mathrm{KL}(d, \lambda d)`.

    Parameters
    ----------
    dim : float
        The dimension d, a real >= 2 (real values allow root finding in d).
    kappa : float
        The concentration κ >= 0 (``λ·d`` for keys and queries of norm ``sqrt(d)``).
    method : str
        ``"quadrature"`` (default): midpoint rule on ``grid`` points of (0, π) in log space
        (log-sum-exp), float64, so :math:`e^{\kappa\cos\theta}` cannot overflow nor
        :math:`\sin^{d-2}\theta` underflow; error below 1e-7 for d <= 1024 at the default grid.
        ``"bessel"``: the closed form
        :math:`\log\Gamma(\tfrac d2)+(\tfrac d2-1)\log\tfrac2\kappa+\log I_{d/2-1}(\kappa)` and
        :math:`\mathbb E[\cos\theta]=I_{d/2}(\kappa)/I_{d/2-1}(\kappa)`, with SciPy's scaled Bessel
        function ``ive`` (an independent oracle, not in the post).
    grid : int
        Number of quadrature points (>= 1000).

    Returns
    -------
    float
        The divergence in nats, >= 0 (0 at κ = 0).

    Raises
    ------
    ValueError
        ``dim < 2``, ``kappa < 0``, a NaN or infinite argument, an unknown method or a too-small grid.
    TypeError
        A non-numeric ``dim`` or ``kappa``.

    Notes
    -----
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
    cos, log_sin = _midpoint_grid(grid)
    log_base = (d - 2) * log_sin  # log sin^{d-2}θ
    log_tilted = log_base + kappa * cos  # log [sin^{d-2}θ e^{κ cosθ}]
    log_norm = _logsumexp(log_tilted)
    log_mgf = log_norm - _logsumexp(log_base)  # log E_p[e^{κ cosθ}]
    mean_cos = float(np.dot(np.exp(log_tilted - log_norm), cos))  # E_vMF[cosθ]
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


def min_embedding_dim(vocab_size: int, *, method: str = "8.33", data_entropy: float = 0.0) -> float:
    r"""Post 7695's sufficient embedding dimension for a vocabulary of ``vocab_size`` words.

    The post asks for the n at which the random-sphere estimate :math:`2\log N + h_n` of the model
    entropy falls below the data entropy :math:`\tilde H`, and replaces :math:`\tilde H` by 0
    (``data_entropy=0``, the default, gives the post's rule).

    Parameters
    ----------
    vocab_size : int
        The vocabulary size N (>= 2).
    method : str
        ``"8.33"`` (default): the post's rule :math:`n = 8.33\log N` (``8.33 = 2/0.24``, the slope
        of :math:`h_n` read off the table); with ``data_entropy`` :math:`\tilde H` it becomes
        :math:`n = \frac{8.33}{2}(2\log N - \tilde H)`.
        ``"laplace"``: :math:`n = \frac{2}{\frac12\log\varphi}\log N = 8.3123\log N` with the exact
        asymptotic slope, φ the golden ratio (with :math:`\tilde H`:
        :math:`(2\log N-\tilde H)/(\tfrac12\log\varphi)`).
        ``"exact"``: the root of :math:`2\log N + h_n = \tilde H` in n >= 2 (Brent's method, no
        linearisation; :math:`h_n` from :func:`vmf_kl_to_uniform`).
    data_entropy : float
        :math:`\tilde H` in nats, ``0 <= data_entropy < 2 log N`` (default 0).

    Returns
    -------
    float
        The dimension n (not rounded).

    Raises
    ------
    ValueError
        An unknown method, ``vocab_size < 2`` (log N must be positive), ``data_entropy`` outside
        ``[0, 2 log N)``, or (method ``"exact"``) a root below n = 2.
    TypeError
        A non-integer ``vocab_size`` or non-numeric ``data_entropy``.

    Notes
    -----
    Source: https://kexue.fm/archives/7695.
    """
    n_words = check_positive_int(vocab_size, "vocab_size", minimum=2)
    log_n = math.log(n_words)
    h_data = check_positive_real(data_entropy, "data_entropy", allow_zero=True)
    if h_data >= 2 * log_n:
        raise ValueError(f"data_entropy must be < 2 log N = {2 * log_n:.6g} nats, got {h_data}")
    budget = 2 * log_n - h_data  # nats that h_n must absorb
    if method == "8.33":
        return 8.33 / 2 * budget
    if method == "laplace":
        phi = (1 + math.sqrt(5)) / 2
        return budget / (0.5 * math.log(phi))
    if method == "exact":
        f = lambda d: budget - vmf_kl_to_uniform(d, d)  # noqa: E731  # 2 log N + h_n - H~
        if f(2.0) <= 0:
            raise ValueError(f"2 log N + h_n < data_entropy already at n = 2 (budget {budget:.4g} nats)")
        hi = 5 * budget + 10  # h_n <= -0.24 n for n >= 2, so f(hi) < 0
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



def fit_joint_softmax(
    counts: torch.Tensor,
    dim: int,
    *,
    steps: int = 300,
    lr: float = 0.1,
    init_std: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Fit post 7695's joint-softmax (Skip-Gram) model to co-occurrence counts by full-batch Adam.

    .. math::
       p(w_i, w_j) = \frac{e^{\langle u_i, v_j\rangle}}{Z},\qquad
       \min_{U, V}\ \mathrm{KL}(\tilde p\,\|\,p) = \sum_{ij}\tilde p_{ij}\log\tilde p_{ij}
                                      - \sum_{ij}\tilde p_{ij}\log p_{ij},\qquad
       \tilde p_{ij} = C_{ij}/\textstyle\sum C

    (the cross-entropy minus the data entropy :math:`\tilde H`, so the loss is 0 only if the model
    reproduces :math:`\tilde p` exactly). No biases, no norm constraint: exactly the post's model.
    ``U`` and ``V`` start i.i.d. :math:`\mathcal N(0, \text{init\_std}^2)` (``U`` drawn first); Adam runs ``steps``
    full-batch steps with a cosine learning-rate decay from ``lr`` to 0.

    Parameters
    ----------
    counts : torch.Tensor
        (N, M) non-negative finite counts with a positive sum, floating (its dtype is the working
        dtype; float32 is enough and about twice as fast).
    dim : int
        The embedding dimension n (>= 1).
    steps : int
        Number of Adam steps (>= 1).
    lr : float
        Peak learning rate (> 0).
    init_std : float
        Standard deviation of the initial entries (> 0).
    generator : torch.Generator, optional
        Generator for the initialisation (seed it for a reproducible fit).

    Returns
    -------
    U : torch.Tensor
        (N, n) centre vectors (detached).
    V : torch.Tensor
        (M, n) context vectors (detached).
    kl : torch.Tensor
        (steps + 1,) the divergence :math:`\mathrm{KL}(\tilde p\|p)` in **nats** before each step and
        after the last one (``kl[-1]`` is the fitted value).

    Raises
    ------
    TypeError
        ``counts`` not a floating tensor; a non-integer ``dim`` or ``steps``.
    ValueError
        ``counts`` not 2-D, with NaN, infinite or negative entries, or a zero sum; ``dim`` or
        ``steps`` < 1; ``lr`` or ``init_std`` <= 0.

    Notes
    -----
    Source: https://kexue.fm/archives/7695 (the model, eq. for :math:`p(w_i, w_j)`).
    """
    check_tensor(counts, "counts", min_dim=2)
    if counts.dim() != 2:
        raise ValueError(f"counts must be a 2-D (N, M) matrix, got shape {tuple(counts.shape)}")
    if torch.isinf(counts).any() or (counts < 0).any():
        raise ValueError("counts must be finite and non-negative")
    total = counts.sum()
    if not total > 0:
        raise ValueError("counts must have a positive sum")
    dim = check_positive_int(dim, "dim")
    steps = check_positive_int(steps, "steps")
    lr = check_positive_real(lr, "lr")
    init_std = check_positive_real(init_std, "init_std")
    n_rows, n_cols = counts.shape
    p_data = counts / total  # \tilde p_{ij}
    neg_entropy = torch.special.xlogy(p_data, p_data).sum()  # \sum \tilde p log \tilde p = -\tilde H
    kw = dict(dtype=counts.dtype, generator=generator)
    u = (init_std * torch.randn(n_rows, dim, **kw)).requires_grad_()  # (N, n)
    v = (init_std * torch.randn(n_cols, dim, **kw)).requires_grad_()  # (M, n)
    opt = torch.optim.Adam([u, v], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    def kl_divergence() -> torch.Tensor:
        logits = u @ v.T  # (N, M): s_ij = <u_i, v_j>
        log_p = torch.log_softmax(logits.reshape(-1), 0).reshape(n_rows, n_cols)  # joint softmax over all pairs
        return neg_entropy - (p_data * log_p).sum()

    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = kl_divergence()
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.detach())
    with torch.no_grad():
        history.append(kl_divergence())
    return u.detach(), v.detach(), torch.stack(history)
