r"""Gaussian random projections (Johnson–Lindenstrauss), sign-bit hashing (SimHash) and the randomised SVD.

Sources: Su Jianlin, "让人惊叹的Johnson-Lindenstrauss引理：理论篇", https://kexue.fm/archives/8679
(2021-09-17) and "……：应用篇", https://kexue.fm/archives/8706 (2021-09-24); Dasgupta & Gupta (2003);
Charikar (2002) for SimHash; Halko, Martinsson & Tropp (2011) for the randomised SVD.
"""
from __future__ import annotations

import math
import numbers

import torch

from ._validation import check_positive_int, check_tensor

__all__ = [
    "gaussian_projection_matrix",
    "jl_min_dim",
    "pairwise_sq_distance_ratios",
    "simhash",
    "simhash_cosine",
    "randomized_svd",
]


def gaussian_projection_matrix(
    n_components: int, n_features: int, *, generator: torch.Generator | None = None, dtype=torch.float64
) -> torch.Tensor:
    r"""A random matrix :math:`A` of shape ``(n_components, n_features)`` with i.i.d. entries
    :math:`\mathcal N(0, 1/n)`, ``n = n_components`` (the *target* dimension), so that
    :math:`\mathbb E\|Av\|^2=\|v\|^2` (post 8679, JL lemma). Project points ``X`` (N, n_features) with
    ``X @ A.T``.

    Raises ``TypeError``/``ValueError`` if a size is not a positive integer or ``dtype`` is not floating.
    """
    n_components = check_positive_int(n_components, "n_components")
    n_features = check_positive_int(n_features, "n_features")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
    return torch.randn(n_components, n_features, generator=generator, dtype=dtype) / math.sqrt(n_components)


def jl_min_dim(n_samples: int, eps: float, *, constant: float = 24.0) -> int:
    r"""The smallest integer :math:`n>\mathrm{constant}\cdot\log N/\varepsilon^2` (natural log).

    With the default ``constant=24`` this is the dimension of post 8679's JL lemma, for which the union
    bound :math:`N(N-1)e^{-\varepsilon^2 n/8}\le N(N-1)N^{-3}` gives success probability at least
    :math:`(N-1)/N`; ``constant=16`` gives the post's existence version (probability at least
    :math:`1/N`). Compare ``sklearn.random_projection.johnson_lindenstrauss_min_dim``, which uses the
    sharper :math:`4\log N/(\varepsilon^2/2-\varepsilon^3/3)`.

    Raises ``ValueError`` if ``eps`` is not in (0, 1), ``n_samples < 2`` or ``constant <= 0``;
    ``TypeError`` for non-numbers.
    """
    n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, got {type(eps).__name__}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps}")
    if isinstance(constant, bool) or not isinstance(constant, numbers.Real) or not constant > 0:
        raise ValueError(f"constant must be a positive number, got {constant!r}")
    return math.floor(constant * math.log(n_samples) / eps**2) + 1


def pairwise_sq_distance_ratios(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    r"""Ratios :math:`r_{ij}=\|y_i-y_j\|^2/\|x_i-x_j\|^2` over all pairs :math:`i<j` (row-major upper
    triangle), accumulated in float64.

    Parameters
    ----------
    X : Tensor (N, m), the original points (pairwise distinct).
    Y : Tensor (N, n), their images.

    Returns
    -------
    Tensor (N(N-1)/2,), float64.

    Raises
    ------
    TypeError, ValueError
        If not floating 2-D tensors with the same number of rows >= 2, or two points of ``X`` coincide.
    """
    for t, name in ((X, "X"), (Y, "Y")):
        check_tensor(t, name, min_dim=2)
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D (N, dim), got shape {tuple(t.shape)}")
    if X.shape[0] != Y.shape[0] or X.shape[0] < 2:
        raise ValueError(f"X and Y need the same number N >= 2 of rows, got {X.shape[0]} and {Y.shape[0]}")

    def sq(z):
        z = z.to(torch.float64)
        g = z @ z.T
        d = torch.diagonal(g)
        full = d[:, None] + d[None, :] - 2 * g
        i, j = torch.triu_indices(z.shape[0], z.shape[0], 1)
        return full[i, j]

    dx = sq(X)
    if (dx <= 0).any():
        raise ValueError("X has two coincident points (a zero distance)")
    return sq(Y) / dx


def simhash(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    r"""Sign bits :math:`\operatorname{sign}(xA^\top)\in\{-1,+1\}` with :math:`\operatorname{sign}(0)=+1`
    (post 8706, "locality-sensitive hashing"; Charikar 2002).

    Parameters
    ----------
    x : Tensor (N, m) floating.
    A : Tensor (n, m) floating, e.g. :func:`gaussian_projection_matrix` (the scale is irrelevant).

    Returns
    -------
    Tensor (N, n), dtype of ``x``, entries ±1.

    Raises ``TypeError``/``ValueError`` for non-floating input or mismatched feature dims.
    """
    check_tensor(x, "x", min_dim=2)
    check_tensor(A, "A", min_dim=2)
    if A.dim() != 2 or x.shape[-1] != A.shape[1]:
        raise ValueError(f"A must be (n, m) with m = x.shape[-1] = {x.shape[-1]}, got {tuple(A.shape)}")
    proj = x @ A.to(x.dtype).T
    return torch.where(proj >= 0, torch.ones((), dtype=x.dtype), -torch.ones((), dtype=x.dtype))


def simhash_cosine(bits_a: torch.Tensor, bits_b: torch.Tensor) -> torch.Tensor:
    r"""Estimate :math:`\cos\theta` from two sign-bit codes: :math:`\cos(\pi(1-a))`, where :math:`a` is the
    fraction of agreeing bits over the last dim.

    For Gaussian hyperplanes :math:`P(\text{bits differ})=\theta/\pi`, so :math:`\pi(1-a)` is unbiased for
    :math:`\theta` (the angle). The post's direct :math:`\cos(\operatorname{sign}(Av_i),\operatorname{sign}(Av_j))=2a-1`
    estimates :math:`1-2\theta/\pi=\tfrac2\pi\arcsin\cos\theta` instead.

    Parameters
    ----------
    bits_a, bits_b : Tensors (..., n) of ±1, broadcastable.

    Returns
    -------
    Tensor (...), floating.

    Raises ``TypeError``/``ValueError`` if not floating, the last dims differ, or an entry is not ±1.
    """
    check_tensor(bits_a, "bits_a", min_dim=1)
    check_tensor(bits_b, "bits_b", min_dim=1)
    if bits_a.shape[-1] != bits_b.shape[-1]:
        raise ValueError(f"bits_a and bits_b need the same number of bits, got {bits_a.shape[-1]} and {bits_b.shape[-1]}")
    for t, name in ((bits_a, "bits_a"), (bits_b, "bits_b")):
        if not ((t == 1) | (t == -1)).all():
            raise ValueError(f"{name} must contain only +1 and -1")
    agree = (bits_a == bits_b).to(torch.promote_types(bits_a.dtype, bits_b.dtype)).mean(-1)
    return torch.cos(math.pi * (1 - agree))


def randomized_svd(
    M: torch.Tensor,
    rank: int,
    *,
    oversample: int = 10,
    n_iter: int = 2,
    generator: torch.Generator | None = None,
):
    r"""Truncated SVD by the randomised range finder of Halko, Martinsson & Tropp (2011).

    :math:`Y=(MM^\top)^{q}M\Omega` with Gaussian :math:`\Omega` of shape (n, rank + oversample), re-orthonormalised
    by QR after every product; :math:`Q=\mathrm{orth}(Y)`; SVD of the small :math:`B=Q^\top M=\hat U\Sigma V^\top`;
    :math:`U=Q\hat U`. Unlike post 8706's recipe :math:`U_B\Sigma_B(QV_B)^\top` it never needs
    :math:`QQ^\top\approx I`, which no (n, k) matrix with k < n satisfies.

    Parameters
    ----------
    M : Tensor (m, n), floating.
    rank : int, 1 <= rank <= min(m, n).
    oversample : int >= 0, extra sketch columns.
    n_iter : int >= 0, power iterations ``q``.
    generator : torch.Generator, optional.

    Returns
    -------
    U : (m, rank), S : (rank,), Vh : (rank, n), dtype of ``M``; ``M ≈ U @ diag(S) @ Vh``.

    Raises
    ------
    TypeError, ValueError
        If ``M`` is not a floating 2-D tensor or a size is out of range.
    """
    check_tensor(M, "M", min_dim=2)
    if M.dim() != 2:
        raise ValueError(f"M must be 2-D, got shape {tuple(M.shape)}")
    rank = check_positive_int(rank, "rank")
    if rank > min(M.shape):
        raise ValueError(f"rank must be <= min(M.shape) = {min(M.shape)}, got {rank}")
    oversample = check_positive_int(oversample, "oversample", minimum=0)
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    k = min(rank + oversample, min(M.shape))
    omega = torch.randn(M.shape[1], k, generator=generator, dtype=M.dtype)
    Q = torch.linalg.qr(M @ omega).Q
    for _ in range(n_iter):
        Q = torch.linalg.qr(M.T @ Q).Q
        Q = torch.linalg.qr(M @ Q).Q
    Ub, S, Vh = torch.linalg.svd(Q.T @ M, full_matrices=False)
    return (Q @ Ub)[:, :rank], S[:rank], Vh[:rank]
