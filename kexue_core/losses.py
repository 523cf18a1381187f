r"""Classification losses for imbalanced classes and for retrieval: focal loss, logit adjustment,
the F1-weighted cross-entropy and the additive-margin (AM-)softmax.

Every loss here takes **logits** (or un-normalised embeddings), never probabilities, and is computed
in a numerically stable form (``logsigmoid``, ``cross_entropy``). Losses are in **nats**.

Sources:

- focal loss: Lin et al., *Focal Loss for Dense Object Detection* (2017), with the exact conventions
  of ``torchvision.ops.sigmoid_focal_loss``;
- smooth accuracy, smooth F1 and the F1-weighted cross-entropy: https://kexue.fm/archives/7708;
- logit adjustment: Menon et al., *Long-tail learning via logit adjustment* (2020),
  https://kexue.fm/archives/7615 and https://kexue.fm/archives/7708;
- AM-softmax: Wang et al., *Additive Margin Softmax for Face Verification* (2018),
  https://kexue.fm/archives/8656.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import check_positive_real, check_real, check_tensor

__all__ = [
    "sigmoid_focal_loss",
    "smooth_accuracy",
    "smooth_f1",
    "f1_weighted_bce",
    "logit_adjusted_cross_entropy",
    "am_softmax_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _check_binary_pair(logits, targets, name_logits: str, name_targets: str) -> None:
    check_tensor(logits, name_logits)
    check_tensor(targets, name_targets)
    if logits.shape != targets.shape:
        raise ValueError(
            f"{name_targets} must have the shape of {name_logits}, got {tuple(targets.shape)} and {tuple(logits.shape)}"
        )
    if logits.numel() == 0:
        raise ValueError(f"{name_logits} is empty")
    t = targets.detach()
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"{name_targets} must lie in [0, 1]")


def sigmoid_focal_loss(logits, targets, *, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"):
    r"""Sigmoid focal loss, with the same arguments and values as ``torchvision.ops.sigmoid_focal_loss``.

    With :math:`p = \sigma(x)`, :math:`p_t = p\,t + (1-p)(1-t)` and
    :math:`\alpha_t = \alpha t + (1-\alpha)(1-t)`,

    .. math:: \mathrm{FL}(x, t) = -\alpha_t\,(1 - p_t)^{\gamma}\,\big[t\log p + (1-t)\log(1-p)\big].

    Parameters
    ----------
    logits : Tensor, any shape, floating
        Logits :math:`x` (before the sigmoid).
    targets : Tensor, shape of ``logits``, floating, values in [0, 1]
        Binary labels (soft labels are allowed, as in torchvision).
    alpha : float
        Weight of the positive class, in [0, 1]; a negative value (torchvision's convention, e.g. -1)
        switches the :math:`\alpha_t` factor off.
    gamma : float
        Focusing exponent :math:`\gamma \ge 0`; ``gamma=0`` (with ``alpha<0``) is plain binary
        cross-entropy.
    reduction : {"none", "mean", "sum"}
        ``"none"`` returns the elementwise loss (shape of ``logits``).

    Returns
    -------
    Tensor
        Loss in nats, elementwise or reduced, dtype of ``logits``.

    Raises
    ------
    TypeError
        If ``logits``/``targets`` are not floating tensors or ``alpha``/``gamma`` are not numbers.
    ValueError
        If the shapes differ, ``targets`` leave [0, 1], ``alpha > 1``, ``gamma < 0`` or
        ``reduction`` is unknown.

    Notes
    -----
    Lin et al. (2017), eq. (5); used in https://kexue.fm/archives/7708 (background). torchvision
    computes the cross-entropy with ``binary_cross_entropy_with_logits`` and :math:`p_t` from
    ``sigmoid(logits)``; so do we.
    """
    _check_binary_pair(logits, targets, "logits", "targets")
    alpha = check_real(alpha, "alpha")
    gamma = check_positive_real(gamma, "gamma", allow_zero=True)
    if alpha > 1:
        raise ValueError(f"alpha must be <= 1 (or negative to disable it), got {alpha}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def smooth_accuracy(probs, targets):
    r"""Smooth accuracy :math:`\mathbb E[y p + (1-y)(1-p)]` of binary probabilities (post 7708, eq. 1).

    probs, targets : Tensors of shape (N,), floating, values in [0, 1]. Returns a 0-dim tensor.
    Raises ``TypeError``/``ValueError`` (naming the argument) on non-floating input, a shape
    mismatch, an empty batch or values outside [0, 1]. Source: https://kexue.fm/archives/7708.
    """
    _check_binary_pair(probs, targets, "probs", "targets")
    if bool(((probs.detach() < 0) | (probs.detach() > 1)).any()):
        raise ValueError("probs must lie in [0, 1]")
    return (targets * probs + (1 - targets) * (1 - probs)).mean()


def smooth_f1(probs, targets):
    r"""Smooth F1 :math:`2\,\mathbb E[y p] / \mathbb E[y + p]` of binary probabilities (post 7708, eq. 5).

    probs, targets : Tensors of shape (N,), floating, values in [0, 1]. Returns a 0-dim tensor (0 when
    there are no positives and no predicted mass). Differentiable; detach it for the stop-gradient of
    :func:`f1_weighted_bce`. Raises as :func:`smooth_accuracy`. Source: https://kexue.fm/archives/7708.
    """
    _check_binary_pair(probs, targets, "probs", "targets")
    if bool(((probs.detach() < 0) | (probs.detach() > 1)).any()):
        raise ValueError("probs must lie in [0, 1]")
    num = 2 * (targets * probs).sum()
    den = (targets + probs).sum()
    return num / den.clamp_min(torch.finfo(probs.dtype).tiny)


def f1_weighted_bce(logits, targets):
    r"""The F1-weighted binary cross-entropy of post 7708, eq. (9).

    .. math:: -\frac1N\sum_i \Big[y_i\big(1 - \tfrac{F_1}{2}\big)\log p_i + (1-y_i)\,\tfrac{F_1}{2}\log(1-p_i)\Big],
       \qquad p_i = \sigma(x_i),

    with :math:`F_1` the smooth F1 (:func:`smooth_f1`) of the **whole batch**, held constant
    (``detach``: the stop-gradient of the post). Its gradient is the post's "p → log p" image of the
    gradient of :math:`-F_1`.

    Parameters
    ----------
    logits : Tensor (N,), floating
    targets : Tensor (N,), floating, values in {0, 1} (or [0, 1])

    Returns
    -------
    Tensor
        0-dim, mean over the batch, in nats.

    Raises
    ------
    TypeError, ValueError
        As :func:`sigmoid_focal_loss` (non-floating, shape mismatch, empty, targets outside [0, 1]).

    Notes
    -----
    Equals :math:`\tfrac{F_1}{2}` times ``BCEWithLogitsLoss(pos_weight=(2 - F_1)/F_1)``. With few
    positives per batch, :math:`F_1` is noisy; use full batches. Source: https://kexue.fm/archives/7708.
    """
    _check_binary_pair(logits, targets, "logits", "targets")
    if logits.dim() != 1:
        raise ValueError(f"logits must have shape (N,), got {tuple(logits.shape)}")
    f1 = smooth_f1(torch.sigmoid(logits), targets).detach()
    w_pos = 1 - f1 / 2
    w_neg = f1 / 2
    loss = -(targets * w_pos * F.logsigmoid(logits) + (1 - targets) * w_neg * F.logsigmoid(-logits))
    return loss.mean()


def _check_class_target(logits, target, name_logits="logits"):
    check_tensor(logits, name_logits, min_dim=2)
    if logits.dim() != 2:
        raise ValueError(f"{name_logits} must have shape (N, C), got {tuple(logits.shape)}")
    if not isinstance(target, torch.Tensor) or target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError("target must be an integer tensor of class indices")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")
    if logits.shape[0] == 0:
        raise ValueError(f"{name_logits} is empty")
    if bool(((target < 0) | (target >= logits.shape[1])).any()):
        raise ValueError(f"target must be class indices in [0, {logits.shape[1]})")


def logit_adjusted_cross_entropy(logits, target, prior, *, tau: float = 1.0):
    r"""Logit-adjusted cross-entropy: the cross-entropy of ``logits + tau * log(prior)``.

    .. math:: \ell(x, y) = -\log\frac{e^{x_y + \tau\log\pi_y}}{\sum_i e^{x_i + \tau\log\pi_i}}
       = \log\Big(1 + \sum_{i\ne y} e^{x_i - x_y + \tau\log(\pi_i/\pi_y)}\Big),

    mean over the batch. Rare classes (small :math:`\pi_y`) get a larger pairwise margin
    :math:`\tau\log(\pi_i/\pi_y)` against frequent ones.

    Parameters
    ----------
    logits : Tensor (N, C), floating
    target : Tensor (N,), integer class indices in [0, C)
    prior : Tensor (C,), floating
        Class prior :math:`\pi` (e.g. training frequencies): positive entries summing to 1
        (tolerance 1e-6).
    tau : float
        Temperature :math:`\tau \ge 0`; ``tau=0`` is plain cross-entropy.

    Returns
    -------
    Tensor
        0-dim, mean over the batch, nats.

    Raises
    ------
    TypeError
        Non-floating ``logits``/``prior``, non-integer ``target``.
    ValueError
        Shape mismatch, target out of range, ``prior`` not positive or not summing to 1, ``tau < 0``.

    Notes
    -----
    Menon et al. (2020), eq. (10); https://kexue.fm/archives/7615 and https://kexue.fm/archives/7708
    (last equation).
    """
    _check_class_target(logits, target)
    check_tensor(prior, "prior")
    tau = check_positive_real(tau, "tau", allow_zero=True)
    if prior.shape != logits.shape[1:]:
        raise ValueError(f"prior must have shape ({logits.shape[1]},), got {tuple(prior.shape)}")
    if bool((prior.detach() <= 0).any()):
        raise ValueError("prior must be strictly positive")
    if abs(float(prior.detach().double().sum()) - 1.0) > 1e-6:
        raise ValueError(f"prior must sum to 1, got {float(prior.detach().double().sum()):.8g}")
    adjusted = logits + tau * torch.log(prior.to(logits.dtype))
    return F.cross_entropy(adjusted, target.long())


def am_softmax_loss(embeddings, class_weights, target, *, scale: float = 30.0, margin: float = 0.35):
    r"""Additive-margin softmax (AM-softmax, CosFace) loss.

    Embeddings and class vectors are L2-normalised inside; with :math:`c_i = \cos(z, w_i)`,

    .. math:: \ell(z, y) = -\log\frac{e^{s(c_y - m)}}{e^{s(c_y - m)} + \sum_{i\ne y} e^{s c_i}}
       = \log\Big(1 + \sum_{i\ne y} e^{s(c_i + m - c_y)}\Big),

    mean over the batch (post 8656, last equation).

    Parameters
    ----------
    embeddings : Tensor (N, D), floating
        Features :math:`z` (need not be normalised; a zero row is normalised with eps 1e-12).
    class_weights : Tensor (C, D), floating
        Class vectors :math:`w_i`.
    target : Tensor (N,), integer class indices in [0, C)
    scale : float
        :math:`s > 0`, the inverse temperature.
    margin : float
        Additive cosine margin :math:`m \ge 0` (``margin=0``: normalised softmax).

    Returns
    -------
    Tensor
        0-dim, mean over the batch, nats.

    Raises
    ------
    TypeError
        Non-floating tensors or non-integer ``target``.
    ValueError
        Shape mismatch (``D`` or ``N``), target out of range, ``scale <= 0``, ``margin < 0``.

    Notes
    -----
    Wang et al. (2018); https://kexue.fm/archives/8656 derives the margin from the triangle
    inequality of :math:`\sqrt{1-\cos}`.
    """
    check_tensor(embeddings, "embeddings", min_dim=2)
    check_tensor(class_weights, "class_weights", min_dim=2)
    if embeddings.dim() != 2 or class_weights.dim() != 2:
        raise ValueError("embeddings must be (N, D) and class_weights (C, D)")
    if embeddings.shape[1] != class_weights.shape[1]:
        raise ValueError(
            f"embeddings and class_weights must share D, got {embeddings.shape[1]} and {class_weights.shape[1]}"
        )
    scale = check_positive_real(scale, "scale")
    margin = check_positive_real(margin, "margin", allow_zero=True)
    cos = F.normalize(embeddings, dim=1) @ F.normalize(class_weights, dim=1).T
    _check_class_target(cos, target, "embeddings")
    onehot = F.one_hot(target.long(), cos.shape[1]).to(cos.dtype)
    return F.cross_entropy(scale * (cos - margin * onehot), target.long())


__all__ += ["cosent_loss"]


def cosent_loss(cos_sim, labels, *, scale: float = 20.0):
    r"""CoSENT loss: a ranking loss that asks every pair with a higher label for a higher cosine.

    .. math::
       \mathcal L = \log\Bigl(1 + \sum_{i,j:\ \text{labels}_i > \text{labels}_j}
       e^{\lambda(\cos_j - \cos_i)}\Bigr),\qquad \lambda = \text{scale},

    computed as a ``logsumexp`` over :math:`\{0\}\cup\{\lambda(\cos_j-\cos_i)\}` (stable for any
    :math:`\lambda`). Only the order of the cosines enters: adding a constant to all of them leaves the
    loss unchanged. With binary labels it is the Circle-loss form
    :math:`\log(1+\sum_{\text{pos }p,\ \text{neg }q} e^{\lambda(\cos_q-\cos_p)})`.

    Parameters
    ----------
    cos_sim : (N,) floating tensor
        Cosine similarities of the N sentence pairs (any score works; the scale assumes [-1, 1]).
    labels : (N,) real tensor
        Binary or graded labels of the pairs; only their order matters (ties give no term).
    scale : float
        :math:`\lambda > 0`; 20 in the post and in sentence-transformers' ``CoSENTLoss``.

    Returns
    -------
    Tensor
        0-dim, of ``cos_sim``'s dtype, nats; ``log 1 = 0`` when all labels are equal.

    Raises
    ------
    TypeError
        Non-tensor ``cos_sim``/``labels``, non-floating ``cos_sim``, non-real ``scale``.
    ValueError
        ``cos_sim`` not 1-D, ``labels`` of another shape, NaN, or ``scale <= 0``.

    Notes
    -----
    Source: https://kexue.fm/archives/8847 (CoSENT (I)), the equation with :math:`\lambda = 20`, and its
    code github.com/bojone/CoSENT; the same loss as ``sentence_transformers.losses.CoSENTLoss``.
    """
    check_tensor(cos_sim, "cos_sim", min_dim=1)
    if cos_sim.dim() != 1:
        raise ValueError(f"cos_sim must have shape (N,), got {tuple(cos_sim.shape)}")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.shape != cos_sim.shape:
        raise ValueError(
            f"labels must have the shape of cos_sim, got {tuple(labels.shape)} and {tuple(cos_sim.shape)}"
        )
    if labels.is_floating_point() and bool(torch.isnan(labels).any()):
        raise ValueError("labels contains NaN")
    scale = check_positive_real(scale, "scale")
    diff = scale * (cos_sim[None, :] - cos_sim[:, None])  # [i, j] = λ (cos_j - cos_i)
    higher = labels[:, None] > labels[None, :]  # pair i should rank above pair j
    terms = diff.masked_fill(~higher, float("-inf")).flatten()
    return torch.logsumexp(torch.cat([terms.new_zeros(1), terms]), dim=0)


__all__ += ["info_nce_loss"]


def info_nce_loss(a, b, *, temperature: float = 0.05):
    r"""InfoNCE with in-batch negatives: the unsupervised SimCSE loss when ``b`` is a second dropout view of ``a``.

    With :math:`s_{ij} = \cos(a_i, b_j)/\tau`,

    .. math:: \mathcal L = -\frac1N\sum_{i=1}^N \log\frac{e^{s_{ii}}}{\sum_{j=1}^N e^{s_{ij}}},

    the mean cross-entropy of the :math:`N\times N` cosine matrix against its diagonal: row :math:`i`'s
    positive is :math:`b_i`, its negatives the other rows of ``b``. This is the SimCSE paper's form
    (one direction, cross-view negatives only) and equals sentence-transformers'
    ``MultipleNegativesRankingLoss(scale=1/temperature)`` (cosine similarity). The form of post 8348 adds
    the same-view negatives :math:`a_j,\ j\ne i`; see the chapter *simcse-chinese-experiments*.

    Parameters
    ----------
    a : Tensor (N, D), floating
        Anchors (first dropout view). Rows need not be normalised; a zero row is normalised with eps 1e-8.
    b : Tensor (N, D), floating, same shape as ``a``
        Positives (second view); row ``i`` is the positive of ``a[i]``.
    temperature : float
        :math:`\tau > 0`; 0.05 (scale 20) in the post's code and in the SimCSE paper.

    Returns
    -------
    Tensor
        0-dim, of ``a``'s dtype, in nats.

    Raises
    ------
    TypeError
        Non-tensor or non-floating ``a``/``b``, non-real ``temperature``.
    ValueError
        ``a`` not 2-D or empty, ``b`` of another shape, NaN input, or ``temperature <= 0``.

    Notes
    -----
    Source: https://kexue.fm/archives/8348 (the loss equation; the author's code github.com/bojone/SimCSE
    multiplies the cosines by 20); Gao, Yao, Chen (2021), *SimCSE*, eq. (1).
    """
    check_tensor(a, "a", min_dim=2)
    check_tensor(b, "b", min_dim=2)
    if a.dim() != 2:
        raise ValueError(f"a must have shape (N, D), got {tuple(a.shape)}")
    if b.shape != a.shape:
        raise ValueError(f"b must have the shape of a, got {tuple(b.shape)} and {tuple(a.shape)}")
    if a.shape[0] == 0:
        raise ValueError("a is empty")
    temperature = check_positive_real(temperature, "temperature")
    sim = F.normalize(a, dim=1, eps=1e-8) @ F.normalize(b, dim=1, eps=1e-8).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(sim, target)
