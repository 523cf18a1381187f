"""Performer (FAVOR+): random-feature estimates of the softmax kernel and linear-time attention.

The softmax kernel :math:`e^{q\\cdot k}` is the Gaussian expectation

.. math:: e^{q\\cdot k} = \\mathbb E_{\\omega\\sim\\mathcal N(0, I_d)}
          \\big[e^{\\omega\\cdot q-\\|q\\|^2/2}\\,e^{\\omega\\cdot k-\\|k\\|^2/2}\\big],

so ``m`` draws :math:`\\omega_1..\\omega_m` (the rows of ``W``) give ``m``-dimensional positive features
:math:`\\phi(x) = e^{Wx-\\|x\\|^2/2}/\\sqrt m` with :math:`\\phi(q)\\cdot\\phi(k)\\approx e^{q\\cdot k}`, and
softmax attention becomes linear attention with feature size ``m``.

Shapes: ``x: (..., n, d)``, ``W: (m, d)``, features ``(..., n, m)`` (``2m`` for trigonometric ones).
Sources: https://kexue.fm/archives/7921 (eq. "core"); Choromanski et al., *Rethinking Attention with
Performers*, ICLR 2021 (arXiv:2009.14794), Lemmas 1-2 and Sec. 2.4 (orthogonal features).
"""
from __future__ import annotations

import math
from typing import Literal

import torch

from .._validation import check_positive_int, check_positive_real, check_qkv, check_tensor
from .linear import causal_linear_attention, linear_attention

__all__ = [
    "draw_random_features",
    "chi_quantile_norms",
    "positive_random_features",
    "trigonometric_random_features",
    "softmax_kernel_estimate",
    "random_feature_relative_variance",
    "performer_attention",
]

_KINDS = ("iid", "orthogonal", "orthogonal_quantile")


def chi_quantile_norms(m: int, d: int, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    r"""Deterministic norms :math:`R_i` with :math:`P_d(r\le R_i) = i/(m+1)`, :math:`i = 1..m`.

    :math:`P_d` is the law of :math:`\|\omega\|` for :math:`\omega\sim\mathcal N(0, I_d)`, the chi
    distribution with ``d`` degrees of freedom (density :math:`\propto r^{d-1}e^{-r^2/2}`).

    m, d : positive ints. Returns ``(m,)``, increasing. Raises ``ValueError``/``TypeError`` for
    non-positive or non-integer ``m``, ``d``. Uses ``scipy.stats.chi(d).ppf``.
    Source: the author's suggestion at the end of "orthogonalisation", https://kexue.fm/archives/7921.
    """
    m = check_positive_int(m, "m")
    d = check_positive_int(d, "d")
    from scipy.stats import chi

    probs = [i / (m + 1) for i in range(1, m + 1)]
    return torch.tensor(chi(df=d).ppf(probs), dtype=dtype or torch.get_default_dtype())


def _orthogonal_blocks(n_blocks: int, d: int, generator, dtype) -> torch.Tensor:
    # n_blocks independent Haar-distributed d x d orthogonal matrices (one batched QR): QR of Gaussian
    # matrices with the signs of diag(R) moved into Q (without the sign fix the law of Q depends on
    # the QR convention).                                                       (n_blocks, d, d)
    g = torch.randn(n_blocks, d, d, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q.transpose(-2, -1)  # rows orthonormal


def draw_random_features(
    m: int,
    d: int,
    *,
    kind: Literal["iid", "orthogonal", "orthogonal_quantile"] = "orthogonal",
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Draw the projection matrix ``W`` (rows :math:`\omega_i`) of Performer's random features.

    Sources: https://kexue.fm/archives/7921 ("orthogonalisation"); arXiv:2009.14794 Sec. 2.4;
    Yu et al. (2016) and arXiv:1703.00864 for orthogonal random features.

    Parameters
    ----------
    m : int
        Number of features (>= 1). May exceed ``d``.
    d : int
        Input dimension (>= 1).
    kind : {"iid", "orthogonal", "orthogonal_quantile"}
        ``"iid"``: rows i.i.d. :math:`\mathcal N(0, I_d)`. ``"orthogonal"`` (FAVOR+): rows come in
        independent blocks of ``d`` exactly orthogonal, Haar-distributed directions (the last block
        truncated when ``d`` does not divide ``m``), each row rescaled by its own independent chi(``d``)
        norm, so each row is still marginally :math:`\mathcal N(0, I_d)` and the kernel estimate stays
        unbiased. ``"orthogonal_quantile"``: the same directions with the deterministic norms of
        :func:`chi_quantile_norms` (the author's suggestion), assigned to rows in a random order; only
        approximately unbiased.
    generator : torch.Generator, optional
        Source of randomness, for reproducibility.
    dtype : torch.dtype, optional
        Floating dtype of the result (default: ``torch.get_default_dtype()``).

    Returns
    -------
    W : (m, d) tensor.

    Raises
    ------
    ValueError
        ``m < 1``, ``d < 1`` or an unknown ``kind``.
    TypeError
        Non-integer sizes.
    """
    m = check_positive_int(m, "m")
    d = check_positive_int(d, "d")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    dtype = dtype or torch.get_default_dtype()
    if kind == "iid":
        return torch.randn(m, d, generator=generator, dtype=dtype)
    n_blocks = -(-m // d)
    directions = _orthogonal_blocks(n_blocks, d, generator, dtype).reshape(n_blocks * d, d)[:m]  # (m, d)
    if kind == "orthogonal":
        # chi(d) norms: the norm of an independent standard Gaussian d-vector per row
        norms = torch.randn(m, d, generator=generator, dtype=dtype).norm(dim=1)
    else:
        perm = torch.randperm(m, generator=generator)
        norms = chi_quantile_norms(m, d, dtype=dtype)[perm]
    return directions * norms.unsqueeze(1)


def _check_x_w(x, W):
    check_tensor(x, "x", min_dim=1)
    check_tensor(W, "W", min_dim=2)
    if W.dim() != 2:
        raise ValueError(f"W must have shape (m, d), got {tuple(W.shape)}")
    if x.shape[-1] != W.shape[1]:
        raise ValueError(f"x has last dimension {x.shape[-1]} but W has d = {W.shape[1]}")
    if x.dtype != W.dtype:
        raise TypeError(f"x and W must have the same dtype, got {x.dtype} and {W.dtype}")


def positive_random_features(
    x: torch.Tensor,
    W: torch.Tensor,
    *,
    stabilize: Literal["row", "all"] | None = None,
) -> torch.Tensor:
    r"""Performer's positive random features :math:`\phi(x) = e^{Wx - \|x\|^2/2}/\sqrt m`.

    With ``W`` from :func:`draw_random_features`, :math:`\phi(q)\cdot\phi(k)` is an unbiased estimate
    of :math:`e^{q\cdot k}` with relative variance :math:`(e^{\|q+k\|^2}-1)/m` for i.i.d. rows
    (:func:`random_feature_relative_variance`). No scale is applied: for attention logits
    :math:`\lambda q\cdot k` pass :math:`\sqrt\lambda\,x` (as :func:`performer_attention` does).

    The exponent :math:`\ell = Wx - \|x\|^2/2 - \tfrac12\log m` is formed first and exponentiated once
    ("log space"), so :math:`e^{Wx}` is never formed on its own. ``stabilize`` subtracts a maximum of
    :math:`\ell` before the exponential:

    * ``None``: nothing subtracted; the features are the exact ones and :math:`\phi(q)\cdot\phi(k)`
      estimates the unnormalised kernel value :math:`e^{q\cdot k}` (may overflow for large norms).
    * ``"row"``: subtract :math:`\max_j \ell_j` separately for each row (each token). Safe for
      **queries**: a positive factor per query cancels between numerator and denominator of that
      query's attention row. Not safe for keys: a different factor per key re-weights the keys.
    * ``"all"``: subtract one maximum over the last two dimensions (all tokens and features of one
      ``(..., n, m)`` slice, i.e. per batch/head). Safe for queries and for **keys**: the same factor
      multiplies every key and cancels in every attention row.

    In both stabilised modes the normalised attention output is unchanged (exactly, up to
    round-off), but :math:`\phi(q)\cdot\phi(k)` no longer estimates :math:`e^{q\cdot k}`: it is
    scaled by :math:`e^{-c}` with the subtracted constant(s) ``c``.

    x : (..., n, d). W : (m, d), same dtype. Returns (..., n, m), entries > 0 (or underflowed 0).

    Raises ``ValueError`` for NaN, shape mismatch or an unknown ``stabilize``; ``TypeError`` for
    non-floating tensors or different dtypes. Source: https://kexue.fm/archives/7921, eq. "core";
    arXiv:2009.14794, Lemma 1 (positive random features).
    """
    _check_x_w(x, W)
    if stabilize not in (None, "row", "all"):
        raise ValueError(f"stabilize must be None, 'row' or 'all', got {stabilize!r}")
    m = W.shape[0]
    # ℓ = ω_i·x - ‖x‖²/2 - log(m)/2                              (..., n, m)
    logits = x @ W.T - 0.5 * (x * x).sum(-1, keepdim=True) - 0.5 * math.log(m)
    if stabilize == "row":
        logits = logits - logits.amax(dim=-1, keepdim=True).detach()
    elif stabilize == "all":
        dims = (-1, -2) if logits.dim() >= 2 else (-1,)
        logits = logits - logits.amax(dim=dims, keepdim=True).detach()
    return torch.exp(logits)


def trigonometric_random_features(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Trigonometric ("trig") random features :math:`e^{\|x\|^2/2}[\cos(Wx), \sin(Wx)]/\sqrt m`.

    :math:`\phi(q)\cdot\phi(k) = e^{(\|q\|^2+\|k\|^2)/2}\frac1m\sum_i\cos(\omega_i\cdot(q-k))` is an
    unbiased estimate of :math:`e^{q\cdot k}` (random Fourier features of the Gaussian kernel
    :math:`e^{-\|q-k\|^2/2}`, Rahimi & Recht 2007) with relative variance
    :math:`(e^{\|q-k\|^2}(1-e^{-\|q-k\|^2})^2)/(2m)`; it can be negative.
    No stabilisation is offered: the factor :math:`e^{\|x\|^2/2}` overflows for ``‖x‖² > ~1400``
    in float64.

    x : (..., n, d). W : (m, d). Returns (..., n, 2m) (cosines first, then sines).
    Raises as :func:`positive_random_features`. Source: https://kexue.fm/archives/7921 (the Fourier
    route); arXiv:2009.14794, Sec. 2.3 and Lemma 2.
    """
    _check_x_w(x, W)
    m = W.shape[0]
    proj = x @ W.T  # (..., n, m): ω_i·x
    amp = torch.exp(0.5 * (x * x).sum(-1, keepdim=True)) / math.sqrt(m)  # (..., n, 1)
    return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1) * amp


def softmax_kernel_estimate(
    q: torch.Tensor,
    k: torch.Tensor,
    W: torch.Tensor,
    *,
    features: Literal["positive", "trigonometric"] = "positive",
) -> torch.Tensor:
    r"""Random-feature estimate :math:`\phi(Q)\phi(K)^\top` of the kernel matrix :math:`e^{QK^\top}`.

    q : (..., n, d), k : (..., n_k, d), W : (m, d). Returns (..., n, n_k). Unnormalised (no
    stabilisation, no scale): compare with ``torch.exp(q @ k.T)``.
    Raises as :func:`positive_random_features`, and ``ValueError`` for an unknown ``features``.
    Source: https://kexue.fm/archives/7921, eq. "core".
    """
    if features == "positive":
        fq, fk = positive_random_features(q, W), positive_random_features(k, W)
    elif features == "trigonometric":
        fq, fk = trigonometric_random_features(q, W), trigonometric_random_features(k, W)
    else:
        raise ValueError(f"features must be 'positive' or 'trigonometric', got {features!r}")
    return fq @ fk.transpose(-2, -1)


def random_feature_relative_variance(
    q: torch.Tensor,
    k: torch.Tensor,
    m: int = 1,
    *,
    features: Literal["positive", "trigonometric"] = "positive",
) -> torch.Tensor:
    r"""Relative variance :math:`\mathrm{Var}[\hat S]/S^2` of the ``m``-feature estimate of
    :math:`S = e^{q\cdot k}` with i.i.d. Gaussian ``W``.

    positive : :math:`(e^{\|q+k\|^2} - 1)/m`; trigonometric : :math:`e^{\|q-k\|^2}(1-e^{-\|q-k\|^2})^2/(2m)`
    (each of the ``m`` trig features uses one :math:`\omega` for both its cos and sin).
    Orthogonal features have a smaller variance (not given by this formula).

    q, k : (..., d), broadcastable. Returns (...). Dimensionless.
    Raises ``ValueError`` for mismatched ``d``, NaN, ``m < 1`` or unknown ``features``.
    Source: arXiv:2009.14794, Lemma 2 (MSE divided by :math:`SM(q,k)^2`); derived in the chapter.
    """
    check_tensor(q, "q", min_dim=1)
    check_tensor(k, "k", min_dim=1)
    m = check_positive_int(m, "m")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last dimension, got {q.shape[-1]} and {k.shape[-1]}")
    if features == "positive":
        return torch.expm1(((q + k) ** 2).sum(-1)) / m
    if features == "trigonometric":
        z = ((q - k) ** 2).sum(-1)
        return torch.exp(z) * (-torch.expm1(-z)) ** 2 / (2 * m)
    raise ValueError(f"features must be 'positive' or 'trigonometric', got {features!r}")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def performer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    W: torch.Tensor,
    *,
    scale: float | None = None,
    causal: bool = False,
) -> torch.Tensor:
    r"""FAVOR+ attention: the linear-time random-feature approximation of
    :math:`\mathrm{softmax}(\lambda QK^\top)V`.

    q and k are multiplied by :math:`\sqrt\lambda` (``λ = scale``, default :math:`1/\sqrt d`, i.e. by
    :math:`d^{-1/4}` as in performer-pytorch), mapped by :func:`positive_random_features` (queries
    with ``stabilize="row"``, keys with ``stabilize="all"``; both constants cancel), and combined as
    linear attention :math:`\phi(Q)(\phi(K)^\top V)` over the row sums :math:`\phi(Q)\phi(K)^\top\mathbf 1`.
    With ``causal=True`` query ``i`` sees keys ``j <= i`` (prefix sums, via
    :func:`kexue_core.attention.linear.causal_linear_attention` on the features; the non-causal
    case uses :func:`kexue_core.attention.linear.linear_attention`).

    q : (..., n, d), k : (..., n_k, d), v : (..., n_k, dv), W : (m, d) from
    :func:`draw_random_features`. Returns (..., n, dv). Causal needs ``n == n_k``.

    Raises ``ValueError`` for NaN, mismatched shapes or a non-positive or infinite scale; ``TypeError``
    for non-floating tensors or a non-real scale. Source: https://kexue.fm/archives/7921;
    arXiv:2009.14794, Alg. 1.
    """
    check_qkv(q, k, v, causal=causal)
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else check_positive_real(scale, "scale")
    r = math.sqrt(scale)
    fq = positive_random_features(q * r, W, stabilize="row")  # (..., n, m)
    fk = positive_random_features(k * r, W, stabilize="all")  # (..., n_k, m)
    # The features are already mapped: pass them through linear attention with the identity map.
    # eps = the smallest normal float of the dtype only guards 0/0 and changes nothing else (the
    # stabilised features have max 1, so the denominators are far above it).
    eps = torch.finfo(fq.dtype).tiny
    if not causal:
        return linear_attention(fq, fk, v, feature_map=_identity, eps=eps)
    return causal_linear_attention(fq, fk, v, feature_map=_identity, eps=eps)
