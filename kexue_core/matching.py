r"""Post-processing of sentence embeddings for semantic matching: BERT-whitening.

Sources: Su Jianlin, *你可能不需要BERT-flow：一个线性变换媲美BERT-flow* (BERT-whitening),
https://kexue.fm/archives/8069, and Su, Cao, Liu, Ou, *Whitening Sentence Representations for Better
Semantics and Faster Retrieval* (arXiv 2103.15316), eqs. (2)-(7); used as baseline in
https://kexue.fm/archives/8321 and https://kexue.fm/archives/8348.
"""
from __future__ import annotations

import torch

from ._validation import check_positive_int, check_tensor

__all__ = ["whitening"]


def whitening(embeddings, *, n_components: int | None = None):
    r"""Fit the BERT-whitening transform: ``(x - mu) @ W`` has zero mean and identity covariance.

    With :math:`\mu` the mean of the rows and :math:`\Sigma = U\Lambda U^\top` the covariance
    (``ddof=1``, as ``numpy.cov`` in the author's code), :math:`W = U\Lambda^{-1/2}`; keeping the
    first ``n_components`` columns (largest eigenvalues) is the post's dimension reduction.

    Parameters
    ----------
    embeddings : Tensor (M, D), floating
        Sentence vectors of the fitting set, ``M >= 2``. Half precision is upcast to float32 for the
        eigendecomposition.
    n_components : int or None
        :math:`k`, the number of output dimensions, ``1 <= k <= D``; ``None`` keeps all ``D``.

    Returns
    -------
    mu : Tensor (D,)
        Mean vector, dtype of ``embeddings``.
    W : Tensor (D, k)
        Whitening matrix, dtype of ``embeddings``; columns ordered by decreasing variance. Apply as
        ``(x - mu) @ W``. Unique up to the sign of each column.

    Raises
    ------
    TypeError
        ``embeddings`` not a floating tensor, ``n_components`` not an int.
    ValueError
        ``embeddings`` not 2-D, fewer than two rows, or NaN; ``n_components`` outside [1, D]; or a kept
        direction with zero variance (rank-deficient data, e.g. ``M <= D``: pass a smaller
        ``n_components``).

    Notes
    -----
    Source: https://kexue.fm/archives/8069 (the equations for :math:`\mu` and :math:`W`) and the code of
    arXiv 2103.15316 (``compute_kernel_bias``: SVD of the covariance, ``W = U diag(1/sqrt(s))``).
    """
    check_tensor(embeddings, "embeddings", min_dim=2)
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape (M, D), got {tuple(embeddings.shape)}")
    m, d = embeddings.shape
    if m < 2:
        raise ValueError(f"embeddings must have at least two rows to whiten, got {m}")
    k = d if n_components is None else check_positive_int(n_components, "n_components")
    if k > d:
        raise ValueError(f"n_components must be <= D = {d}, got {k}")
    x = embeddings.detach()
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    mu = work.mean(0)
    xc = work - mu
    cov = xc.T @ xc / (m - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
    tol = evals.new_tensor(torch.finfo(work.dtype).eps) * max(d, m) * evals[0].clamp_min(0)
    if not bool(evals[0] > 0) or bool((evals <= tol).any()):
        raise ValueError(
            f"n_components={k} keeps a direction of (numerically) zero variance; the data have rank below {k} "
            f"(M = {m} rows, D = {d}): pass a smaller n_components"
        )
    w = evecs * evals.rsqrt()
    return mu.to(embeddings.dtype), w.to(embeddings.dtype)
