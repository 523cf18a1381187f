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
import torch.nn.functional as F

from .._validation import (
    check_key_padding_mask,
    check_positive_int,
    check_positive_real,
    check_qkv,
    check_result_no_nan,
    check_tensor,
)
from .linear import DEFAULT_CHUNK_SIZE, linear_attention

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
      ``(..., n, m)`` slice, i.e. per batch/head). Safe for queries and for **keys** in non-causal
      attention: the same factor multiplies every key and cancels in every attention row. Not for
      causal attention: the maximum then includes future keys, and a large future key, through
      underflow, changes past outputs (:func:`performer_attention` uses a running maximum there).

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


_identity.position_wise = True


def _causal_prefix_stabilised(fq, kt, s, v, eps: float, chunk: int) -> torch.Tensor:
    r"""Causal linear attention with key features :math:`\tilde k_j e^{s_j}` given as a bounded part
    :math:`\tilde k_j = e^{\ell_j - s_j} \le 1` and a log-scale :math:`s_j` (``-inf`` = no weight),
    without ever forming :math:`e^{s_j}`: query ``i`` uses the reference :math:`r_i = \max_{j\le i}
    s_j` (a running max, so only past keys set it), which cancels between numerator and denominator.

    Chunk-wise: inside chunk ``c`` the weights are :math:`(\phi_i\cdot\tilde k_j) e^{s_j - r_i}`,
    ``j <= i``; the chunks before ``c`` enter through their states :math:`L_{c'} = \sum_{j\in c'}
    e^{s_j - R_{c'}} \tilde k_j [v_j, 1]^\top` (``R_c`` = the running max at the end of chunk ``c``),
    carried to the reference :math:`R_{c-1}` by the factors :math:`e^{R_{c'} - R_{c-1}} \le 1`, and
    to query ``i`` by :math:`e^{R_{c-1} - r_i} \le 1`. Every exponent is <= 0, nothing overflows, and
    output ``i`` depends on keys ``j <= i`` only. Extra cost O((n/C)^2 D dv) for the chunk factors.

    fq : (..., n, D) query features; kt : (..., n, D); s : (..., n); v : (..., n, dv).
    """
    *batch, n, D = fq.shape
    dv = v.shape[-1]
    batch = torch.broadcast_shapes(tuple(batch), kt.shape[:-2], s.shape[:-1], v.shape[:-2])
    r = torch.cummax(s, dim=-1).values  # (..., n): running max r_i
    r = torch.where(torch.isfinite(r), r, torch.zeros_like(r))  # no real key yet: any finite reference
    s = torch.where(torch.isfinite(s), s, torch.full_like(s, -math.inf))
    C = min(chunk, n)
    N = -(-n // C)
    pad = N * C - n
    v1 = F.pad(v, (0, 1), value=1.0)  # [v | 1]: the last column gives the denominator
    if pad:
        fq, kt, v1 = F.pad(fq, (0, 0, 0, pad)), F.pad(kt, (0, 0, 0, pad)), F.pad(v1, (0, 0, 0, pad))
        s = F.pad(s, (0, pad), value=-math.inf)  # padded rows: zero weight
        r = torch.cat([r, r[..., -1:].expand(*r.shape[:-1], pad)], dim=-1)  # keep r_i >= R_{c-1}
    fq = fq.expand(*batch, N * C, D).reshape(*batch, N, C, D)
    kt = kt.expand(*batch, N * C, D).reshape(*batch, N, C, D)
    v1 = v1.expand(*batch, N * C, dv + 1).reshape(*batch, N, C, dv + 1)
    s = s.expand(*batch, N * C).reshape(*batch, N, C)
    r = r.expand(*batch, N * C).reshape(*batch, N, C)
    # inside a chunk: A_ij = (phi_i . kt_j) exp(s_j - r_i), j <= i  (s_j <= r_i there)
    decay = (s.unsqueeze(-2) - r.unsqueeze(-1)).tril().exp()  # (..., N, C, C); tril zeroes j > i first
    A = (fq @ kt.mT) * decay.tril()
    out = A @ v1  # (..., N, C, dv+1)
    if N > 1:
        R = r[..., -1]  # (..., N): reference at the end of each chunk
        L = (kt * (s - R.unsqueeze(-1)).exp().unsqueeze(-1)).mT @ v1  # (..., N, D, dv+1), factors <= 1
        # P_c = sum_{c' < c} exp(R_c' - R_{c-1}) L_c'  (reference R_{c-1}), as one (N x N) matrix
        Rprev = F.pad(R[..., :-1], (1, 0), value=-math.inf)  # R_{c-1}; chunk 0 has no prior (factor 0)
        G = (R.unsqueeze(-2) - Rprev.unsqueeze(-1)).tril(-1).exp().tril(-1)  # (..., N, N): c' < c
        P = (G @ L.flatten(-2)).unflatten(-1, (D, dv + 1))  # (..., N, D, dv+1)
        to_query = (Rprev.unsqueeze(-1) - r).exp()  # (..., N, C): exp(R_{c-1} - r_i) <= 1
        out = out + (fq @ P) * to_query.unsqueeze(-1)
    out = out.reshape(*batch, N * C, dv + 1)[..., :n, :]
    return out[..., :dv] / (out[..., dv:] + eps)


def performer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    W: torch.Tensor,
    *,
    scale: float | None = None,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""FAVOR+ attention: the linear-time random-feature approximation of
    :math:`\mathrm{softmax}(\lambda QK^\top)V`.

    q and k are multiplied by :math:`\sqrt\lambda` (``λ = scale``, default :math:`1/\sqrt d`, i.e. by
    :math:`d^{-1/4}` as in performer-pytorch) and mapped to positive random features
    (:func:`positive_random_features`); the output is :math:`\phi(Q)(\phi(K)^\top V)` over the row
    sums :math:`\phi(Q)\phi(K)^\top\mathbf 1`. The queries are stabilised per row
    (``stabilize="row"``). The keys:

    * non-causal: one maximum over the real keys of each ``(n_k, m)`` slice is subtracted
      (``stabilize="all"``); it cancels in every row;
    * ``causal=True``: query ``i`` sees keys ``j <= i``, and its stabiliser is the running maximum
      over keys ``j <= i`` only, so no future key can change a past output, not even by rounding or
      underflow (one maximum over all positions let a large future key move past outputs by 1.7 in
      float32). Chunk-wise, without a loop over positions; see ``_causal_prefix_stabilised``.

    All constants cancel exactly: the result equals the unstabilised formula (float64, 1e-12).

    q : (..., n, d), k : (..., n_k, d), v : (..., n_k, dv), W : (m, d) from
    :func:`draw_random_features`. ``key_padding_mask`` : optional (..., n_k) bool, ``True`` = a real
    key; padded keys get zero features and do not enter the stabiliser (a query that sees no real
    key gets output 0). Returns (..., n, dv) in q's dtype (float16/bfloat16 computed in float32).
    Causal needs ``n == n_k``.

    Raises ``ValueError`` for NaN (outside torch.func transforms), mismatched shapes, a bad mask or a
    non-positive or infinite scale; ``TypeError`` for non-floating tensors, a non-boolean mask or a
    non-real scale. Source: https://kexue.fm/archives/7921; arXiv:2009.14794, Alg. 1.
    """
    check_qkv(q, k, v, causal=causal, values=False)  # values: one NaN check of the result below
    mask = check_key_padding_mask(key_padding_mask, k.shape[:-2], k.shape[-2])
    dtype = q.dtype
    q32, k32, v32 = (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x for x in (q, k, v))
    W32 = W.to(q32.dtype) if isinstance(W, torch.Tensor) and W.dtype in (torch.float16, torch.bfloat16) else W
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else check_positive_real(scale, "scale")
    r = math.sqrt(scale)
    fq = positive_random_features(q32 * r, W32, stabilize="row")  # (..., n, m)
    _check_x_w(k32, W32)
    m = W32.shape[0]
    kr = k32 * r
    logits = kr @ W32.T - 0.5 * (kr * kr).sum(-1, keepdim=True) - 0.5 * math.log(m)  # (..., n_k, m)
    if mask is not None:
        logits = logits.masked_fill(~mask.unsqueeze(-1), -math.inf)  # padded keys: zero features
        v32 = v32.masked_fill(~mask.unsqueeze(-1), 0.0)
    # eps = the smallest normal float of the dtype only guards 0/0 (a query that sees no real key);
    # the stabilised features have max 1, so every other denominator is far above it.
    eps = torch.finfo(fq.dtype).tiny
    if not causal:
        c = logits.detach().amax(dim=(-1, -2), keepdim=True)  # one constant per slice, real keys only
        c = torch.where(torch.isfinite(c), c, torch.zeros_like(c))
        fk = torch.exp(logits - c)
        out = linear_attention(fq, fk, v32, feature_map=_identity, eps=eps)
    else:
        s = logits.detach().amax(dim=-1)  # (..., n_k): each key's own log-scale
        s_fin = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
        kt = torch.exp(logits - s_fin.unsqueeze(-1))  # bounded part, entries <= 1
        out = _causal_prefix_stabilised(fq, kt, s, v32, eps, DEFAULT_CHUNK_SIZE)
    return check_result_no_nan(out.to(dtype), {"q": q, "k": k, "v": v})
