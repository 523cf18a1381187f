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


#: Documented ranges of :func:`vmf_kl_to_uniform` (tested against mpmath).
QUADRATURE_MAX_DIM = 1024
QUADRATURE_MAX_KAPPA = 1e5  # at the default grid of 200_001 points; scales with grid^2
BESSEL_MAX_DIM = 4096
BESSEL_MAX_KAPPA = 1e12
_DEFAULT_GRID = 200_001


def _log_hyp0f1(a: float, x: float) -> float:
    """log 0F1(; a; x) = log sum_k x^k / (k! (a)_k) for a > 0, x >= 0: all terms positive, summed in
    log space (no overflow, no underflow, no cancellation); enough terms to pass the peak term."""
    if x == 0:
        return 0.0
    k_star = 0.5 * (-a + math.sqrt(a * a + 4 * x))  # where the term ratio x/((k+1)(k+a)) crosses 1
    k = np.arange(int(2 * k_star + 60), dtype=np.float64)
    log_terms = k * math.log(x) - special.gammaln(k + 1) - (special.gammaln(a + k) - math.lgamma(a))
    return _logsumexp(log_terms)


def _hankel(nu: float, kappa: float) -> tuple[float, float]:
    """``(kappa (I_{nu+1}(kappa)/I_nu(kappa) - 1), log ive(nu, kappa))`` from Hankel's large-kappa expansion
    sqrt(2 pi kappa) e^{-kappa} I_nu(kappa) ~ sum_k (-1)^k a_k(nu) kappa^-k,
    a_k(nu) = prod_{j<=k} (4 nu^2 - (2j-1)^2) / (k! 8^k), differenced term by term (the k = 0 terms
    cancel exactly, so no digits are lost). Used for kappa >= 100 (nu + 1)^2, where the terms fall
    by a factor of at least ~200 each."""
    mu0, mu1 = 4 * nu * nu, 4 * (nu + 1) ** 2
    s0 = s1 = 1.0  # partial sums of the two series
    diff = 0.0  # sum_{k>=1} (-1)^k (a_k(nu+1) - a_k(nu)) kappa^-k
    a0 = a1 = 1.0
    for j in range(1, 30):
        c = (2 * j - 1) ** 2
        f = -1.0 / (8 * j * kappa)
        new0, new1 = a0 * (mu0 - c) * f, a1 * (mu1 - c) * f
        # a1' - a0' = ((a1 - a0)(mu1 - c) + a0 (mu1 - mu0)) f: the difference without cancellation
        d_prev = diff_term if j > 1 else 0.0
        diff_term = (d_prev * (mu1 - c) + a0 * (mu1 - mu0)) * f
        a0, a1 = new0, new1
        s0 += a0
        s1 += a1
        diff += diff_term
        if abs(diff_term) < 1e-18 * abs(diff) and abs(a0) < 1e-18:
            break
    return kappa * diff / s0, math.log(s0) - 0.5 * math.log(2 * math.pi * kappa)


def _kl_bessel(d: float, kappa: float) -> float:
    nu = d / 2 - 1
    if kappa <= 2 * nu + 50:
        # series: log E[e^{kappa cos}] = log 0F1(; d/2; kappa^2/4) and
        # E[cos] = (kappa/d) 0F1(; d/2 + 1; kappa^2/4) / 0F1(; d/2; kappa^2/4)
        x = kappa * kappa / 4
        log_f0 = _log_hyp0f1(nu + 1, x)
        mean_cos = kappa / (2 * (nu + 1)) * math.exp(_log_hyp0f1(nu + 2, x) - log_f0)
        return kappa * mean_cos - log_f0
    # kappa - log E[e^{kappa cos}] = -lgamma(d/2) - nu log(2/kappa) - log ive(nu, kappa): no cancellation
    if kappa >= 100 * (nu + 1) ** 2:  # Hankel (SciPy's ive also gives NaN beyond kappa ~ 1e9)
        k_ratio_minus_one, log_ive0 = _hankel(nu, kappa)
    else:
        ive0 = float(special.ive(nu, kappa))
        k_ratio_minus_one, log_ive0 = kappa * (float(special.ive(nu + 1, kappa)) - ive0) / ive0, math.log(ive0)
    rest = -math.lgamma(nu + 1) - nu * math.log(2 / kappa) - log_ive0
    return k_ratio_minus_one + rest  # kappa E[cos] - log E[e^{kappa cos}]


def vmf_kl_to_uniform(dim, kappa, *, method: str = "quadrature", grid: int = _DEFAULT_GRID) -> float:
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
        :math:`\sin^{d-2}\theta` underflow. Range: ``2 <= d <= 1024`` and
        ``κ <= 1e5 (grid/200001)^2`` (the peak of width :math:`\sim 1/\sqrt\kappa` must span many
        grid points); there the error is below ``1e-7 max(1, KL)`` (tested against mpmath).
        ``"bessel"``: the closed form, :math:`\log\mathbb E[e^{\kappa\cos\theta}] =
        \log {}_0F_1(;\tfrac d2;\tfrac{\kappa^2}4) = \log\Gamma(\tfrac d2)+(\tfrac d2-1)\log\tfrac2\kappa
        +\log I_{d/2-1}(\kappa)` and :math:`\mathbb E[\cos\theta]=I_{d/2}(\kappa)/I_{d/2-1}(\kappa)`,
        evaluated without overflow or cancellation: the hypergeometric series in log space for
        :math:`\kappa \le d - 2 + 50`; above, SciPy's scaled ``ive`` with
        :math:`\kappa - \log\mathbb E[e^{\kappa\cos\theta}]` and :math:`\kappa(\mathbb E\cos\theta - 1)`
        formed separately, the latter from Hankel's large-κ expansion for :math:`\kappa \ge 100(d/2)^2`.
        Range: ``2 <= d <= 4096``, ``κ <= 1e12``, relative error below 1e-10 (tested against mpmath).
        An independent oracle, not in the post.
    grid : int
        Number of quadrature points (>= 1000).

    Returns
    -------
    float
        The divergence in nats, >= 0 (0 at κ = 0; a rounding below 0 at tiny κ is returned as 0).

    Raises
    ------
    ValueError
        ``dim < 2``, ``kappa < 0``, a NaN or infinite argument, an unknown method, a too-small grid,
        or ``dim``/``kappa`` outside the method's range (the message names the other method).
    TypeError
        A non-numeric ``dim`` or ``kappa``.

    Notes
    -----
    Source: https://kexue.fm/archives/7695 (definition of :math:`h_n`, table), https://kexue.fm/archives/8823.
    """
    d = _check_dim(dim)
    kappa = check_positive_real(kappa, "kappa", allow_zero=True)
    if method == "bessel":
        if d > BESSEL_MAX_DIM:
            raise ValueError(f"method='bessel' is tested for dim <= {BESSEL_MAX_DIM}, got {d}")
        if kappa > BESSEL_MAX_KAPPA:
            raise ValueError(f"method='bessel' is tested for kappa <= {BESSEL_MAX_KAPPA:g}, got {kappa:g}")
        return max(0.0, float(_kl_bessel(d, kappa))) if kappa > 0 else 0.0
    if method != "quadrature":
        raise ValueError(f"method must be 'quadrature' or 'bessel', got {method!r}")
    grid = check_positive_int(grid, "grid", minimum=1000)
    if d > QUADRATURE_MAX_DIM:
        raise ValueError(f"method='quadrature' is tested for dim <= {QUADRATURE_MAX_DIM}, got {d}; "
                         "use method='bessel'")
    kappa_max = QUADRATURE_MAX_KAPPA * (grid / _DEFAULT_GRID) ** 2
    if kappa > kappa_max:
        raise ValueError(f"method='quadrature' with grid={grid} resolves kappa <= {kappa_max:.4g}, got "
                         f"kappa={kappa:g}; use method='bessel' (or a finer grid)")
    if kappa == 0:
        return 0.0
    cos, log_sin = _midpoint_grid(grid)
    log_base = (d - 2) * log_sin  # log sin^{d-2}θ
    log_tilted = log_base + kappa * cos  # log [sin^{d-2}θ e^{κ cosθ}]
    log_norm = _logsumexp(log_tilted)
    log_mgf = log_norm - _logsumexp(log_base)  # log E_p[e^{κ cosθ}]
    mean_cos = float(np.dot(np.exp(log_tilted - log_norm), cos))  # E_vMF[cosθ]
    return max(0.0, float(kappa * mean_cos - log_mgf))


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

    Infinite logits are defined by their limits: ``-inf`` is a zero probability; if some logits are
    ``+inf`` the softmax puts all its mass, uniformly, on them, so :math:`H = \log(\#\{+\infty\})`;
    a slice whose logits are all ``-inf`` has no mass and gets :math:`H = 0` (the ``0 log 0 = 0``
    convention of an empty sum). All branches are ``torch.where`` (no data-dependent control flow).

    logits : floating tensor, no NaN. Returns the tensor with ``dim`` reduced.
    Raises ``TypeError``/``ValueError`` for bad input. Source: https://kexue.fm/archives/7695.
    """
    check_tensor(logits, "logits", min_dim=1)
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    pos_inf = logits == math.inf
    any_inf = pos_inf.amax(dim=dims, keepdim=True)  # slices with a +inf logit
    # the +inf limit: logits 0 on the +inf entries and -inf elsewhere (a uniform softmax on them)
    zero, minus_inf = torch.zeros_like(logits), torch.full_like(logits, -math.inf)
    logits = torch.where(any_inf, torch.where(pos_inf, zero, minus_inf), logits)
    log_z = torch.logsumexp(logits, dim=dims, keepdim=True)
    log_z = torch.where(torch.isfinite(log_z), log_z, torch.zeros_like(log_z))  # all -inf: no mass
    log_p = logits - log_z
    p = log_p.exp()
    return 0.0 - (p * torch.where(p > 0, log_p, torch.zeros_like(log_p))).sum(dim=dims)  # 0 - 0 = +0, not -0


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
