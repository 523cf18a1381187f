"""Span extraction for reading comprehension and cloze tasks: sliding windows, centre truncation,
GlobalPointer span scores and their decoding.

These are the pieces of the CLUE baselines of https://kexue.fm/archives/8739 (code:
github.com/bojone/CLUE-bert4keras, ``src/cmrc2018.py`` and ``src/chid.py``) that do not need a
pretrained model:

- :func:`stride_split`: BERT's sliding-window split of a long context (the CMRC2018 baseline);
- :func:`center_truncate`: the CHID rule that truncates a passage around the blank to be filled;
- :class:`GlobalPointer`: span scores ``s(i, j) = <q_i, k_j> / sqrt(head_size)`` for every start ``i`` and
  end ``j`` (inclusive), with RoPE so that a score depends on positions only through ``j - i``
  (https://kexue.fm/archives/8373);
- :func:`valid_spans`, :func:`decode_best_span`, :func:`span_cross_entropy`: the mask of admissible
  spans, the argmax over the flattened score matrix and the softmax cross-entropy over it.

The assignment decoding of CHID (distinct answers for the blanks of one sample) is
:func:`scipy.optimize.linear_sum_assignment`; nothing here re-implements it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._validation import check_positive_int, check_tensor
from .attention.rotary import rotary_embedding

__all__ = [
    "stride_split",
    "center_truncate",
    "GlobalPointer",
    "valid_spans",
    "decode_best_span",
    "span_cross_entropy",
]


def _check_nonneg_int(n, name: str) -> int:
    return check_positive_int(n, name, minimum=0)


def stride_split(context_length, question_length, answer=None, *, maxlen: int = 512, stride: int = 128):
    """Cut a long context into overlapping windows, BERT's sliding-window scheme (CMRC2018 baseline).

    The model input is ``[CLS] question [SEP] window [SEP]``, so a window holds
    ``W = maxlen - question_length - 3`` context tokens. Window ``n`` covers ``[n*stride, n*stride + W)``
    (clipped to the context); windows are added until one reaches the end of the context. An answer
    ``[start, end)`` is kept in a window ``[l, r)`` iff ``l <= start < end <= r``; otherwise that window is
    labelled "no answer" (the baseline then points it at ``[CLS]``, position ``(0, 0)``).

    Parameters
    ----------
    context_length : int
        Number of context tokens (characters for Chinese BERT), ``>= 0``.
    question_length : int
        Number of question tokens, ``>= 0``.
    answer : tuple of int (start, end) or None
        Half-open answer span in context coordinates, ``0 <= start < end <= context_length``.
    maxlen : int
        Model input length in tokens (512 in the baseline).
    stride : int
        Step between window starts (128 in the baseline), ``1 <= stride <= W``. This is the *step*;
        Hugging Face tokenizers' ``stride`` is the *overlap* ``W - stride``.

    Returns
    -------
    list of tuple (l, r, rel_start, rel_end)
        One per window: its half-open range ``[l, r)`` in the context and the answer's half-open span
        relative to ``l``, or ``(-1, -1)`` if the window does not contain the whole answer (as in the
        author's code).

    Raises
    ------
    TypeError
        Non-integer lengths, ``maxlen`` or ``stride``.
    ValueError
        Negative lengths, ``W < 1`` (question too long for ``maxlen``), ``stride`` outside ``[1, W]``, or an
        ``answer`` that is empty or outside the context.

    Notes
    -----
    Source: https://kexue.fm/archives/8739 ("Reading comprehension"), code ``src/cmrc2018.py``
    (``stride_split``).
    """
    n = _check_nonneg_int(context_length, "context_length")
    q = _check_nonneg_int(question_length, "question_length")
    maxlen = check_positive_int(maxlen, "maxlen")
    stride = check_positive_int(stride, "stride")
    width = maxlen - q - 3
    if width < 1:
        raise ValueError(f"question_length={q} leaves no room for context in maxlen={maxlen} (needs <= {maxlen - 4})")
    if stride > width:
        raise ValueError(f"stride must be <= the window length {width}, got {stride} (windows would leave gaps)")
    if answer is not None:
        if len(answer) != 2:
            raise ValueError(f"answer must be a (start, end) pair, got {answer!r}")
        s, e = (_check_nonneg_int(a, "answer") for a in answer)
        if not s < e <= n:
            raise ValueError(f"answer must satisfy 0 <= start < end <= context_length={n}, got {answer!r}")
    results = []
    k = 0
    while True:
        left, right = k * stride, k * stride + width
        if answer is not None and left <= s and e <= right:
            results.append((left, min(right, n), s - left, e - left))
        else:
            results.append((left, min(right, n), -1, -1))
        if right >= n:
            return results
        k += 1


def center_truncate(texts: Sequence[str], blank: int, maxlen: int, *, fixed: int = 8, per_blank: int = 4):
    """Truncate a cloze passage around one blank, keeping the blank as central as possible (CHID).

    A passage with ``m`` blanks is the list of its ``m + 1`` text pieces; the blank to be filled lies
    between ``texts[blank]`` and ``texts[blank + 1]``. The model input costs ``fixed`` tokens (the
    baseline's ``[CLS]``, two ``[SEP]``, a 4-character candidate idiom and the ``[unused1]`` marker: 8) plus
    ``per_blank`` ``[MASK]`` tokens for every *other* blank kept, plus one token per character. While the
    total exceeds ``maxlen``, one character is removed from the outer end of the longer side (the right side
    on ties); a piece that is down to one character (or empty) is dropped whole, together with the blank
    next to it.

    Parameters
    ----------
    texts : sequence of str
        The pieces between blanks (at least two).
    blank : int
        Index of the blank to keep, ``0 <= blank < len(texts) - 1``.
    maxlen : int
        Token budget (64 in the CHID baseline), ``> fixed``.
    fixed, per_blank : int
        Cost of the special tokens and candidate, and of each other blank's ``[MASK]`` run.

    Returns
    -------
    (left, right) : tuple of list of str
        The kept pieces left of the blank (the last one ends at the blank) and right of it (the first one
        starts at the blank). ``sum(map(len, left + right)) + fixed + per_blank * (other blanks kept)``
        is at most ``maxlen``.

    Raises
    ------
    TypeError
        ``texts`` not a sequence of str, or non-integer ``blank``/``maxlen``/``fixed``/``per_blank``.
    ValueError
        Fewer than two pieces, ``blank`` out of range, or ``maxlen <= fixed``.

    Notes
    -----
    Source: https://kexue.fm/archives/8739 ("Idiom understanding"), code ``src/chid.py``
    (``sample_split``). The author's code keeps a running budget and subtracts ``per_blank`` whenever a piece
    is dropped, also when the dropped piece is the one next to the target blank, where no ``[MASK]`` run goes
    away; here the cost of the other blanks is recounted from the pieces kept, so the budget is exact.
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str")
    if len(texts) < 2:
        raise ValueError(f"texts must have at least two pieces (one blank), got {len(texts)}")
    blank = _check_nonneg_int(blank, "blank")
    if blank >= len(texts) - 1:
        raise ValueError(f"blank must be < len(texts) - 1 = {len(texts) - 1}, got {blank}")
    maxlen = check_positive_int(maxlen, "maxlen")
    fixed = _check_nonneg_int(fixed, "fixed")
    per_blank = _check_nonneg_int(per_blank, "per_blank")
    if maxlen <= fixed:
        raise ValueError(f"maxlen must exceed fixed={fixed}, got {maxlen}")
    left, right = list(texts[: blank + 1]), list(texts[blank + 1 :])

    def cost() -> int:
        others = max(len(left) - 1, 0) + max(len(right) - 1, 0)
        return fixed + per_blank * others + sum(map(len, left)) + sum(map(len, right))

    while cost() > maxlen:
        l_a, l_b = sum(map(len, left)), sum(map(len, right))
        if l_a > l_b or not right:  # the longer side loses a character (the right side on ties)
            if len(left[0]) > 1:
                left[0] = left[0][1:]
            else:
                left = left[1:]
        else:
            if len(right[-1]) > 1:
                right[-1] = right[-1][:-1]
            else:
                right = right[:-1]
    return left, right


class GlobalPointer(nn.Module):
    r"""GlobalPointer span scorer: one score per (start, end) pair and head.

    .. math::
       s_\alpha(i, j) = \frac{\langle R_i q_{i,\alpha}, R_j k_{j,\alpha}\rangle}{\sqrt{d_h}},\qquad
       q_{i,\alpha}, k_{i,\alpha} = \text{linear}(h_i),

    with :math:`R_i` the RoPE rotation of position :math:`i` (:func:`kexue_core.attention.rotary_embedding`),
    so that :math:`s_\alpha(i,j)` depends on positions only through :math:`j-i`. Scores of padded positions
    and (with ``tril_mask``) of spans with start after end are ``-inf``.

    Parameters
    ----------
    d_in : int
        Width of the encoder output.
    heads : int
        Number of span types (1 for CMRC2018, the number of entity types for NER).
    head_size : int
        Width ``d_h`` of ``q`` and ``k`` (even when ``use_rope``); 64 (BERT's head size) in the baseline.
    use_rope : bool
        Apply RoPE to ``q`` and ``k``.
    tril_mask : bool
        Mask spans with ``start > end``.
    bias : bool
        Bias in the linear map (the CMRC2018 baseline uses none).

    Notes
    -----
    Source: https://kexue.fm/archives/8373 (GlobalPointer), used by https://kexue.fm/archives/8739 for
    CMRC2018 and CLUENER.
    """

    def __init__(self, d_in: int, heads: int, head_size: int, *, use_rope: bool = True, tril_mask: bool = True,
                 bias: bool = True):
        super().__init__()
        self.d_in = check_positive_int(d_in, "d_in")
        self.heads = check_positive_int(heads, "heads")
        self.head_size = check_positive_int(head_size, "head_size")
        if use_rope and head_size % 2:
            raise ValueError(f"head_size must be even with use_rope=True, got {head_size}")
        self.use_rope = bool(use_rope)
        self.tril_mask = bool(tril_mask)
        self.dense = nn.Linear(d_in, heads * head_size * 2, bias=bias)

    def forward(self, h, mask=None):
        """Span scores.

        Parameters
        ----------
        h : (B, L, d_in) floating tensor
            Encoder output.
        mask : (B, L) bool tensor, optional
            True at positions a span may start or end at (default: all).

        Returns
        -------
        (B, heads, L, L) tensor of ``h``'s dtype: entry ``[b, a, i, j]`` scores the span from token ``i`` to
        token ``j`` (inclusive) for head ``a``; ``-inf`` where masked.

        Raises
        ------
        TypeError, ValueError
            ``h`` not a floating (B, L, d_in) tensor, or ``mask`` not a bool tensor of shape (B, L).
        """
        check_tensor(h, "h", min_dim=3)
        if h.dim() != 3 or h.shape[-1] != self.d_in:
            raise ValueError(f"h must have shape (B, L, {self.d_in}), got {tuple(h.shape)}")
        b, n, _ = h.shape
        if mask is None:
            mask = torch.ones(b, n, dtype=torch.bool, device=h.device)
        _check_mask(mask, "mask", (b, n))
        qk = self.dense(h).view(b, n, self.heads, 2, self.head_size)
        q, k = qk[..., 0, :].transpose(1, 2), qk[..., 1, :].transpose(1, 2)  # (B, heads, L, d_h)
        if self.use_rope:
            q, k = rotary_embedding(q), rotary_embedding(k)
        scores = q @ k.transpose(-1, -2) / self.head_size**0.5
        valid = valid_spans(mask, tril_mask=self.tril_mask)[:, None]  # (B, 1, L, L)
        return scores.masked_fill(~valid, float("-inf"))


def _check_mask(mask, name, shape):
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool torch.Tensor")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}")


def valid_spans(mask, *, tril_mask: bool = True):
    """Admissible spans: both ends unmasked and (with ``tril_mask``) start <= end.

    Parameters
    ----------
    mask : (B, L) bool tensor
        True at positions a span may start or end at.
    tril_mask : bool
        Exclude spans with start > end.

    Returns
    -------
    (B, L, L) bool tensor: ``[b, i, j]`` is True iff the span ``i..j`` is admissible.

    Raises
    ------
    TypeError, ValueError
        ``mask`` not a 2-D bool tensor.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a bool torch.Tensor")
    if mask.dim() != 2:
        raise ValueError(f"mask must have shape (B, L), got {tuple(mask.shape)}")
    valid = mask[:, :, None] & mask[:, None, :]
    if tril_mask:
        n = mask.shape[1]
        valid = valid & torch.ones(n, n, dtype=torch.bool, device=mask.device).triu()
    return valid


def _check_scores(scores):
    check_tensor(scores, "scores", min_dim=3)
    if scores.dim() != 3 or scores.shape[1] != scores.shape[2]:
        raise ValueError(f"scores must have shape (B, L, L), got {tuple(scores.shape)}")


def decode_best_span(scores, valid=None):
    """Best span per example: the argmax of the flattened (L x L) score matrix over admissible spans.

    Parameters
    ----------
    scores : (B, L, L) floating tensor
        Span scores (one head of :class:`GlobalPointer`).
    valid : (B, L, L) bool tensor, optional
        Admissible spans (default: all finite scores). Each example needs at least one.

    Returns
    -------
    spans : (B, 2) long tensor
        ``(start, end)``, end inclusive (ties: the first in row-major order).
    best : (B,) tensor
        Their scores (what the baseline compares across the windows of one question).

    Raises
    ------
    TypeError, ValueError
        Bad shapes or dtypes, or an example with no admissible span.

    Notes
    -----
    Source: code of https://kexue.fm/archives/8739, ``src/cmrc2018.py`` (``Evaluator.evaluate``), where row
    and column 0 (``[CLS]``, "no answer") are excluded at prediction time.
    """
    _check_scores(scores)
    if valid is None:
        valid = torch.isfinite(scores)
    else:
        _check_mask(valid, "valid", scores.shape)
    if not valid.flatten(1).any(1).all():
        raise ValueError("valid must admit at least one span per example")
    b, n, _ = scores.shape
    flat = scores.masked_fill(~valid, float("-inf")).flatten(1)
    best, idx = flat.max(dim=1)
    return torch.stack((idx // n, idx % n), dim=1), best


def span_cross_entropy(scores, target):
    """Softmax cross-entropy over all L*L spans, the CMRC2018 loss of the GlobalPointer baseline.

    ``mean_b [ logsumexp(vec(scores_b)) - scores_b[start_b, end_b] ]``; entries equal to ``-inf`` (masked
    spans) drop out of the normaliser.

    Parameters
    ----------
    scores : (B, L, L) floating tensor
    target : (B, 2) integer tensor
        ``(start, end)`` of the gold span (``(0, 0)``: no answer in this window); its score must be finite.

    Returns
    -------
    0-dim tensor (nats).

    Raises
    ------
    TypeError, ValueError
        Bad shapes or dtypes, targets out of range, or a target whose score is ``-inf``.

    Notes
    -----
    Source: code of https://kexue.fm/archives/8739, ``src/cmrc2018.py`` (``globalpointer_crossentropy``:
    target index ``start * L + end``).
    """
    _check_scores(scores)
    if not isinstance(target, torch.Tensor) or target.dtype.is_floating_point or target.dtype == torch.bool:
        raise TypeError("target must be an integer torch.Tensor")
    b, n, _ = scores.shape
    if tuple(target.shape) != (b, 2):
        raise ValueError(f"target must have shape ({b}, 2), got {tuple(target.shape)}")
    if (target < 0).any() or (target >= n).any():
        raise ValueError(f"target entries must lie in [0, {n})")
    flat_target = target[:, 0] * n + target[:, 1]
    flat = scores.flatten(1)
    if not torch.isfinite(flat.gather(1, flat_target[:, None])).all():
        raise ValueError("target points at a masked (-inf) span")
    return nn.functional.cross_entropy(flat, flat_target)
