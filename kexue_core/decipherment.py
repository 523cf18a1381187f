r"""Substitution ciphers, frequency-rank alignment, and the MLM + ``[CLS]`` matching format for
desensitised (ID-mapped) text.

Desensitised data replaces every character by an integer id through a one-to-one map (a simple
substitution cipher). A pretrained model's embedding rows can then be re-used by aligning the cipher
vocabulary with a plain-text vocabulary **by frequency rank**: the ``r``-th most frequent cipher id
takes the embedding of the ``r``-th most frequent plain character. The matching model of the same
post is a single masked language model whose ``[CLS]`` output predicts ``[YES]``/``[NO]``.

Source: Su Jianlin, https://kexue.fm/archives/8213 (2021-03-05), and its code
github.com/bojone/oppo-text-match (``baseline.py``: the special-token layout, the masking rule and
the target layout below).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from ._validation import check_positive_int

__all__ = [
    "PAD_ID", "UNK_ID", "CLS_ID", "SEP_ID", "MASK_ID", "NO_ID", "YES_ID", "N_SPECIAL",
    "substitution_cipher",
    "encipher",
    "frequency_ranking",
    "frequency_rank_alignment",
    "alignment_correct_by_rank",
    "accuracy_at_ranks",
    "mlm_random_mask",
    "matching_example",
    "char_counts",
]

#: special-token ids of the post's code (``baseline.py``); cipher tokens start at ``N_SPECIAL``
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID, NO_ID, YES_ID = range(7)
N_SPECIAL = 7


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, None or a numpy Generator, got {type(seed).__name__}")


def substitution_cipher(symbols: Iterable[Hashable], *, first_id: int = N_SPECIAL, seed=None) -> dict:
    """A random bijection from ``symbols`` onto the integers ``first_id, ..., first_id + n - 1``.

    Parameters
    ----------
    symbols : iterable of hashable
        The plain alphabet (e.g. characters); duplicates are an error.
    first_id : int
        Smallest cipher id (default 7: ids 0-6 are the special tokens of the post's code).
    seed : int, None or numpy.random.Generator
        Source of the random permutation (``numpy.random.default_rng``).

    Returns
    -------
    dict
        ``key[symbol] = id``; every id in the range is used exactly once.

    Raises
    ------
    ValueError
        If ``symbols`` is empty or has duplicates, or ``first_id < 0``.
    TypeError
        If ``seed`` is not an int, None or a Generator.

    Notes
    -----
    The post assumes desensitisation is one such character-to-id map; the organisers' exact scheme is
    not documented. Source: https://kexue.fm/archives/8213.
    """
    symbols = list(symbols)
    first_id = check_positive_int(first_id, "first_id", minimum=0)
    if not symbols:
        raise ValueError("symbols must not be empty")
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must not contain duplicates")
    perm = _rng(seed).permutation(len(symbols))
    return {s: first_id + int(p) for s, p in zip(symbols, perm)}


def encipher(texts: Iterable[Sequence[Hashable]], key: Mapping) -> list[list[int]]:
    """Apply a substitution ``key`` symbol by symbol: ``[[key[c] for c in t] for t in texts]``.

    Raises ``ValueError`` naming the first symbol of ``texts`` that ``key`` lacks, and ``ValueError``
    if ``key`` is not one-to-one (two symbols sharing an id cannot be deciphered).
    """
    if len(set(key.values())) != len(key):
        raise ValueError("key must be one-to-one (two symbols share an id)")
    out = []
    for t in texts:
        try:
            out.append([key[c] for c in t])
        except KeyError as err:
            raise ValueError(f"texts contains symbol {err.args[0]!r} that key does not map") from None
    return out


def frequency_ranking(counts: Mapping, *, min_count: int = 1) -> list:
    """Symbols sorted by descending count; ties keep the order of ``counts`` (a stable sort).

    Parameters
    ----------
    counts : mapping symbol -> int count (e.g. :class:`collections.Counter`)
    min_count : int
        Symbols with fewer occurrences are dropped (the post's code uses 5 for cipher tokens).

    Raises
    ------
    ValueError
        For a negative count or ``min_count < 1``.
    """
    min_count = check_positive_int(min_count, "min_count")
    for s, c in counts.items():
        if c < 0:
            raise ValueError(f"counts must be non-negative, got counts[{s!r}] = {c}")
    items = [(s, c) for s, c in counts.items() if c >= min_count]
    items.sort(key=lambda sc: -sc[1])  # stable: ties in insertion order
    return [s for s, _ in items]


def frequency_rank_alignment(cipher_counts: Mapping, plain_counts: Mapping, *, min_count: int = 1) -> dict:
    """Align two vocabularies by frequency rank: the ``r``-th most frequent cipher symbol maps to the
    ``r``-th most frequent plain symbol, ``r = 0, 1, ...`` (up to the shorter list).

    Parameters
    ----------
    cipher_counts, plain_counts : mapping symbol -> count
        Character (or id) frequencies of the ciphered and of any plain corpus; ranking by
        :func:`frequency_ranking` (ties in mapping order).
    min_count : int
        Drop symbols with fewer occurrences on either side before ranking.

    Returns
    -------
    dict
        ``cipher symbol -> plain symbol``, in rank order (length ``min`` of the two vocabularies).

    Raises
    ------
    ValueError
        If either mapping is empty after ``min_count``, or has a negative count.

    Notes
    -----
    For any convex cost ``c(f - g)`` of pairing frequencies this rank matching is an optimal
    one-to-one assignment (monotone rearrangement). Source: https://kexue.fm/archives/8213
    ("按照频率来对齐明文词表和加密词表").
    """
    rc = frequency_ranking(cipher_counts, min_count=min_count)
    rp = frequency_ranking(plain_counts, min_count=min_count)
    if not rc:
        raise ValueError("cipher_counts has no symbol with count >= min_count")
    if not rp:
        raise ValueError("plain_counts has no symbol with count >= min_count")
    return dict(zip(rc, rp))


def alignment_correct_by_rank(alignment: Mapping, key: Mapping) -> np.ndarray:
    """Which ranks the alignment deciphers correctly.

    Parameters
    ----------
    alignment : mapping cipher id -> plain symbol, in rank order (from :func:`frequency_rank_alignment`)
    key : mapping plain symbol -> cipher id (the true cipher, from :func:`substitution_cipher`)

    Returns
    -------
    numpy.ndarray of bool, shape (len(alignment),)
        Entry ``r`` is true iff the rank-``r`` cipher id is the true encryption of the rank-``r``
        plain symbol. A plain symbol the key does not contain counts as wrong.

    Raises
    ------
    ValueError
        If ``alignment`` is empty.
    """
    if len(alignment) == 0:
        raise ValueError("alignment must not be empty")
    return np.array([key.get(p, None) == c for c, p in alignment.items()], dtype=bool)


def accuracy_at_ranks(correct: np.ndarray, ks: Sequence[int], *, weights: np.ndarray | None = None) -> np.ndarray:
    """Top-``k`` accuracy of a per-rank correctness vector: ``mean(correct[:k])`` for each ``k`` in ``ks``,
    or with ``weights`` (e.g. token counts per rank) ``sum(w[:k] correct[:k]) / sum(w[:k])`` (accuracy by
    token mass).

    Raises ``ValueError`` naming ``correct`` (empty or not 1-D), ``ks`` (a ``k`` outside
    ``1..len(correct)``) or ``weights`` (wrong shape, negative, or zero mass).
    Returns a float64 array of shape ``(len(ks),)``.
    """
    correct = np.asarray(correct, dtype=float)
    if correct.ndim != 1 or correct.size == 0:
        raise ValueError(f"correct must be a non-empty 1-D array, got shape {correct.shape}")
    ks = [int(k) for k in ks]
    if any(not 1 <= k <= correct.size for k in ks):
        raise ValueError(f"ks must lie in 1..{correct.size}, got {ks}")
    w = np.ones_like(correct) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != correct.shape:
        raise ValueError(f"weights must have shape {correct.shape}, got {w.shape}")
    if (w < 0).any():
        raise ValueError("weights must be non-negative")
    cw, cm = np.cumsum(w * correct), np.cumsum(w)
    if any(cm[k - 1] == 0 for k in ks):
        raise ValueError("weights have zero mass in a top-k prefix")
    return np.array([cw[k - 1] / cm[k - 1] for k in ks])


def mlm_random_mask(ids: Sequence[int], *, vocab_low: int, vocab_high: int, mask_id: int = MASK_ID,
                    prob: float = 0.15, seed=None) -> tuple[list[int], list[int]]:
    """The masking rule of the post's code, per token with ``r ~ U[0, 1)``:
    ``r < 0.8 p`` -> ``[MASK]``; ``r < 0.9 p`` -> kept; ``r < p`` -> a uniform random id in
    ``[vocab_low, vocab_high)``; the target is the original id for these ``p`` and **0** (ignored,
    the code's convention, which is also ``[PAD]``) elsewhere.

    Parameters
    ----------
    ids : sequence of int, length L
    vocab_low, vocab_high : range of the random replacement (the cipher tokens)
    mask_id : the ``[MASK]`` id (default 4)
    prob : ``p`` in ``(0, 1]`` (default 0.15)
    seed : int, None or numpy Generator

    Returns
    -------
    (inputs, targets) : two lists of int of length L

    Raises
    ------
    ValueError
        For ``prob`` outside ``(0, 1]``, an empty range ``vocab_low >= vocab_high``, or an id 0 in
        ``ids`` (its target would be indistinguishable from "ignored").

    Notes
    -----
    Source: ``random_mask`` in github.com/bojone/oppo-text-match ``baseline.py``; BERT's 80/10/10.
    """
    if not 0 < prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {prob}")
    if vocab_low >= vocab_high:
        raise ValueError(f"vocab_low must be < vocab_high, got {vocab_low} >= {vocab_high}")
    ids = [int(t) for t in ids]
    if any(t == 0 for t in ids):
        raise ValueError("ids must not contain 0 (the ignored-target / [PAD] id)")
    rng = _rng(seed)
    r = rng.random(len(ids))
    rand = rng.integers(vocab_low, vocab_high, len(ids))
    inputs, targets = [], []
    for t, ri, ti in zip(ids, r, rand):
        if ri < prob * 0.8:
            inputs.append(mask_id); targets.append(t)
        elif ri < prob * 0.9:
            inputs.append(t); targets.append(t)
        elif ri < prob:
            inputs.append(int(ti)); targets.append(t)
        else:
            inputs.append(t); targets.append(0)
    return inputs, targets


def matching_example(a: Sequence[int], b: Sequence[int], label: int | None, *, maxlen: int | None = None,
                     mask: bool = True, vocab_low: int = N_SPECIAL, vocab_high: int | None = None,
                     prob: float = 0.15, seed=None) -> tuple[list[int], list[int], list[int]]:
    """One pair in the unified MLM + ``[CLS]`` format of the post: ``[CLS] a [SEP] b [SEP]``.

    With ``maxlen`` set, the longer of ``a``, ``b`` is truncated from the end, one token at a time,
    until ``len(a) + len(b) + 3 <= maxlen`` (the code's ``sample_convert`` does not truncate: default
    ``None``). With ``mask=True`` both sentences are masked by
    :func:`mlm_random_mask`; the special tokens are never masked and have target 0. The target at
    ``[CLS]`` is ``[YES]`` (6) for ``label == 1``, ``[NO]`` (5) for ``label == 0`` and 0 (ignored) for an
    unlabelled pair (``label=None``), so unlabelled pairs train the MLM part only.

    Parameters
    ----------
    a, b : sequences of cipher ids (>= ``vocab_low``, or ``[UNK]`` = 1 for rare symbols)
    label : 0, 1 or None
    maxlen : None or a total length bound (>= 5)
    mask : mask the sentences (training) or not (prediction: the targets are then 0 except at ``[CLS]``)
    vocab_low, vocab_high : range of random replacement ids (``vocab_high`` needed if ``mask``)
    prob, seed : as in :func:`mlm_random_mask`

    Returns
    -------
    (token_ids, segment_ids, targets) : three lists of int of equal length; segment ids are all 0 (as
    in the code). A loss averages the cross-entropy over positions with ``target != 0``.

    Raises
    ------
    ValueError
        For a label other than 0/1/None, ``maxlen < 5``, an empty sentence, a special id other than ``[UNK]``,
        or ``mask=True`` without ``vocab_high``.

    Notes
    -----
    Source: ``sample_convert`` in github.com/bojone/oppo-text-match ``baseline.py`` (the random
    order swap of the two sentences is left to the caller). https://kexue.fm/archives/8213.
    """
    if label not in (0, 1, None):
        raise ValueError(f"label must be 0, 1 or None, got {label!r}")
    if maxlen is not None:
        maxlen = check_positive_int(maxlen, "maxlen", minimum=5)
    a, b = [int(t) for t in a], [int(t) for t in b]
    if not a:
        raise ValueError("a must not be empty")
    if not b:
        raise ValueError("b must not be empty")
    if any(t != UNK_ID and t < vocab_low for t in a + b):
        raise ValueError(f"a and b must hold cipher ids >= vocab_low = {vocab_low} or [UNK] = {UNK_ID}")
    while maxlen is not None and len(a) + len(b) + 3 > maxlen:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    if mask:
        if vocab_high is None:
            raise ValueError("vocab_high is needed when mask=True")
        rng = _rng(seed)
        a_in, a_t = mlm_random_mask(a, vocab_low=vocab_low, vocab_high=vocab_high, prob=prob, seed=rng)
        b_in, b_t = mlm_random_mask(b, vocab_low=vocab_low, vocab_high=vocab_high, prob=prob, seed=rng)
    else:
        a_in, a_t, b_in, b_t = a, [0] * len(a), b, [0] * len(b)
    cls_target = 0 if label is None else (YES_ID if label == 1 else NO_ID)
    tokens = [CLS_ID] + a_in + [SEP_ID] + b_in + [SEP_ID]
    targets = [cls_target] + a_t + [0] + b_t + [0]
    return tokens, [0] * len(tokens), targets


def char_counts(texts: Iterable[Sequence[Hashable]]) -> Counter:
    """Symbol counts over ``texts`` (a :class:`collections.Counter`, insertion order = first occurrence)."""
    c: Counter = Counter()
    for t in texts:
        c.update(t)
    return c

