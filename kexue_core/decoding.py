r"""Decoding algorithms for autoregressive models: greedy search, beam search, top-k / nucleus filtering,
prefix-tree (trie) constraints, and the self-terminating output layer.

A *step function* maps the token ids generated so far, ``(B, t)`` ``torch.long``, to the log-probabilities
of the next token, ``(B, V)`` floating. Every algorithm here works for any such function, which is what the
termination and validity arguments of the posts are about:

- https://kexue.fm/archives/7500 (non-terminating decoding, the self-terminating layer of Welleck et al.,
  2020, "Consistency of a recurrent language model with respect to incomplete decoding");
- https://kexue.fm/archives/8802 (Seq2Seq + prefix tree: constrained decoding that can only emit database
  entries).

The greedy and beam searches follow the conventions of Hugging Face ``transformers``' ``generate``
(version 4.57; ``max_length`` counts the prefix, a finished sequence is padded with eos, beam scores are
divided by ``generated_length ** length_penalty``), and the unit tests check them token for token against it.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence

import torch

from ._validation import check_positive_int, check_tensor

__all__ = [
    "greedy_search",
    "beam_search",
    "ancestral_sampling",
    "top_k_top_p_filter",
    "PrefixTrie",
    "self_terminating_eos_lower_bound",
    "self_terminating_log_probs",
    "lookahead_reweight",
]

StepFn = Callable[[torch.Tensor], torch.Tensor]
AllowedFn = Callable[[int, torch.Tensor], Sequence[int]]


def _check_prefix(prefix) -> torch.Tensor:
    if not isinstance(prefix, torch.Tensor):
        raise TypeError(f"prefix must be a torch.Tensor of token ids, got {type(prefix).__name__}")
    if prefix.dtype != torch.long:
        raise TypeError(f"prefix must have dtype torch.long, got {prefix.dtype}")
    if prefix.dim() != 2 or prefix.shape[0] < 1 or prefix.shape[1] < 1:
        raise ValueError(f"prefix must have shape (B, t0) with B, t0 >= 1, got {tuple(prefix.shape)}")
    return prefix


def _check_eos(eos_id) -> int:
    if isinstance(eos_id, bool) or not isinstance(eos_id, numbers.Integral):
        raise TypeError(f"eos_id must be an integer, got {type(eos_id).__name__}")
    return int(eos_id)


def _check_decoding_args(prefix, eos_id, max_len) -> tuple[torch.Tensor, int, int]:
    """The checks every decoder shares: ``prefix`` (B, t0) long, an integer ``eos_id`` and
    ``max_len > t0``."""
    prefix = _check_prefix(prefix)
    eos_id = _check_eos(eos_id)
    max_len = check_positive_int(max_len, "max_len")
    if max_len <= prefix.shape[1]:
        raise ValueError(f"max_len = {max_len} must exceed the prefix length {prefix.shape[1]}")
    return prefix, eos_id, max_len


def _call_step(step_fn: StepFn, tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    out = step_fn(tokens)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise TypeError("step_fn must return a floating-point torch.Tensor of log-probabilities")
    if out.dim() != 2 or out.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"step_fn must return shape (B, V) = ({tokens.shape[0]}, V) for input of shape "
            f"{tuple(tokens.shape)}, got {tuple(out.shape)}"
        )
    if not 0 <= eos_id < out.shape[1]:
        raise ValueError(f"eos_id = {eos_id} is outside the vocabulary 0..{out.shape[1] - 1}")
    if torch.isnan(out).any():
        raise ValueError("step_fn returned NaN")
    return out


def _allowed_mask(allowed_tokens: AllowedFn, batch_id: int, rows: torch.Tensor, vocab: int) -> torch.Tensor:
    """Additive mask (0 on allowed ids, -inf elsewhere) for each row of ``rows`` (n, t)."""
    mask = torch.full((rows.shape[0], vocab), -math.inf)
    for i in range(rows.shape[0]):
        ids = list(allowed_tokens(batch_id, rows[i]))
        if len(ids) == 0:
            raise ValueError(f"allowed_tokens returned an empty list for batch {batch_id}: unsatisfiable")
        if min(ids) < 0 or max(ids) >= vocab:
            raise ValueError(f"allowed_tokens returned ids outside the vocabulary 0..{vocab - 1}")
        mask[i, ids] = 0.0
    return mask


def greedy_search(
    step_fn: StepFn,
    prefix: torch.Tensor,
    *,
    eos_id: int,
    max_len: int,
    allowed_tokens: AllowedFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding: append the arg-max token until every row has emitted eos or ``max_len`` is reached.

    Parameters
    ----------
    step_fn : callable
        ``(B', t) torch.long -> (B', V)`` log-probabilities (or logits: only the arg-max is used) of the
        next token. It is called with the rows of all sequences, finished ones included.
    prefix : torch.Tensor
        ``(B, t0)`` ``torch.long`` prompt (t0 >= 1).
    eos_id : int
        The end-of-sequence id, in ``0..V-1``.
    max_len : int
        Maximum **total** length, prefix included (``transformers``' ``max_length``); ``max_len > t0``.
    allowed_tokens : callable, optional
        ``allowed_tokens(batch_id, tokens) -> list of ids`` (the contract of ``transformers``'
        ``prefix_allowed_tokens_fn``); other ids are masked to ``-inf`` before the arg-max.

    Returns
    -------
    tokens : torch.Tensor
        ``(B, T)`` ``torch.long``, ``t0 < T <= max_len``; after its eos a row is padded with eos.
    finished : torch.Tensor
        ``(B,)`` bool: whether the row emitted eos (``False`` = stopped by ``max_len``).

    Raises
    ------
    TypeError
        ``prefix`` not a long tensor, ``eos_id``/``max_len`` not integers, ``step_fn`` returning a
        non-floating tensor.
    ValueError
        ``max_len <= t0``, ``eos_id`` outside the vocabulary, ``step_fn`` returning a wrong shape or NaN,
        ``allowed_tokens`` returning an empty list or out-of-range ids.

    Notes
    -----
    Ties go to the lowest id (``torch.argmax``), as in ``transformers``. Source: the greedy search of
    https://kexue.fm/archives/7500 (beam search with k = 1 in the post's words).
    """
    prefix, eos_id, max_len = _check_decoding_args(prefix, eos_id, max_len)
    tokens = prefix
    finished = torch.zeros(prefix.shape[0], dtype=torch.bool)
    while tokens.shape[1] < max_len:
        logp = _call_step(step_fn, tokens, eos_id)
        if allowed_tokens is not None:
            logp = logp + torch.cat(
                [_allowed_mask(allowed_tokens, b, tokens[b : b + 1], logp.shape[1]) for b in range(len(tokens))]
            ).to(logp.dtype)
        nxt = logp.argmax(dim=-1)
        nxt = torch.where(finished, torch.full_like(nxt, eos_id), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        finished = finished | (nxt == eos_id)
        if bool(finished.all()):
            break
    return tokens, finished


def beam_search(
    step_fn: StepFn,
    prefix: torch.Tensor,
    *,
    beam_size: int,
    eos_id: int,
    max_len: int,
    length_penalty: float = 0.0,
    allowed_tokens: AllowedFn | None = None,
) -> list[list[tuple[list[int], float]]]:
    r"""Beam search with ``transformers``' conventions (``generate(num_beams=k, early_stopping=False)``).

    At each step every live hypothesis is extended by every token; the ``2k`` best extensions by summed
    log-probability are ranked. An extension ending in eos (or reaching ``max_len``) among the first ``k``
    becomes a finished hypothesis with score

    .. math:: \text{score} = \frac{\sum_{i} \log p(y_i\mid y_{<i})}{L^{\text{length\_penalty}}},

    ``L`` = number of generated tokens (eos included); the best ``k`` non-finished extensions stay live.
    The search stops when ``k`` hypotheses are finished and the best live sum, divided by the current
    generated length to the power ``length_penalty``, cannot beat the worst of them; when every
    candidate hits ``max_len``; or when no live hypothesis is left.

    Parameters
    ----------
    step_fn : callable
        ``(n, t) torch.long -> (n, V)`` log-probabilities of the next token.
    prefix : torch.Tensor
        ``(B, t0)`` ``torch.long`` prompts, searched one at a time.
    beam_size : int
        ``k >= 1``.
    eos_id : int
        The end-of-sequence id, in ``0..V-1``.
    max_len : int
        Maximum total length, prefix included; ``max_len > t0``.
    length_penalty : float
        Exponent of the length normalisation (0: plain sum, 1: mean log-probability).
    allowed_tokens : callable, optional
        ``allowed_tokens(batch_id, tokens) -> list of ids`` (``prefix_allowed_tokens_fn``); the
        log-probabilities of other ids become ``-inf`` (not renormalised, as in ``transformers``).

    Returns
    -------
    list of list of (list of int, float)
        For each prompt, up to ``k`` finished hypotheses ``(tokens with prefix, score)``, best first.
        Hypotheses of score ``-inf`` (only reachable through forbidden tokens) are dropped.

    Raises
    ------
    TypeError, ValueError
        As :func:`greedy_search`; ``beam_size < 1`` or ``length_penalty`` not finite raise ``ValueError``.

    Notes
    -----
    Source: the beam search reviewed in https://kexue.fm/archives/7500 and used under a trie constraint in
    https://kexue.fm/archives/8802; conventions of ``transformers`` 4.57 ``GenerationMixin._beam_search``.
    """
    prefix, eos_id, max_len = _check_decoding_args(prefix, eos_id, max_len)
    beam_size = check_positive_int(beam_size, "beam_size")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real):
        raise TypeError("length_penalty must be a real number")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be finite, got {length_penalty}")
    k = beam_size
    t0 = prefix.shape[1]
    results = []
    for b in range(prefix.shape[0]):
        running = prefix[b : b + 1]
        run_scores = None
        finished: list[tuple[float, list[int]]] = []  # (score, tokens), best first, at most k
        cur_len = t0
        improvable = True
        while True:
            logp = _call_step(step_fn, running, eos_id)
            if run_scores is None:
                run_scores = torch.zeros(1, dtype=logp.dtype)
            if allowed_tokens is not None:
                logp = logp + _allowed_mask(allowed_tokens, b, running, logp.shape[1]).to(logp.dtype)
            vocab = logp.shape[1]
            cand = (logp + run_scores[:, None]).reshape(-1)
            n_keep = min(2 * k, cand.numel())
            top_scores, top_idx = torch.topk(cand, n_keep)
            hits_max = cur_len + 1 == max_len
            new_rows, new_scores, all_hit = [], [], True
            denom = (cur_len + 1 - t0) ** length_penalty
            for rank in range(n_keep):
                score = top_scores[rank]
                if score == -math.inf:
                    continue
                beam, tok = divmod(int(top_idx[rank]), vocab)
                seq = torch.cat([running[beam], top_idx.new_tensor([tok])])
                hit = hits_max or tok == eos_id
                all_hit = all_hit and hit
                if hit:
                    if rank < k and improvable:
                        finished.append((float(score / denom), seq.tolist()))
                elif len(new_rows) < k:
                    new_rows.append(seq)
                    new_scores.append(score)
            finished.sort(key=lambda sv: -sv[0])  # stable: earlier (older) hypotheses win ties
            del finished[k:]
            cur_len += 1
            if not new_rows or all_hit:
                break
            running = torch.stack(new_rows)
            run_scores = torch.stack(new_scores)
            if len(finished) == k:
                best_possible = float(run_scores[0] / (cur_len - t0) ** length_penalty)
                improvable = improvable and best_possible > finished[-1][0]
            if not improvable:
                break
        results.append([(seq, score) for score, seq in finished])
    return results


def ancestral_sampling(
    step_fn: StepFn,
    prefix: torch.Tensor,
    *,
    eos_id: int,
    max_len: int,
    top_k: int = 0,
    top_p: float = 1.0,
    keep_ids: Iterable[int] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample each next token from the (optionally top-k / nucleus filtered) model distribution.

    ``top_k = 0`` and ``top_p = 1`` give plain ancestral ("native random") sampling; ``keep_ids=[eos_id]``
    gives the *consistent* top-k / nucleus sampling of Welleck et al. (2020), which keeps eos in the support.

    Parameters
    ----------
    step_fn, prefix, eos_id, max_len
        As in :func:`greedy_search`.
    top_k, top_p, keep_ids
        As in :func:`top_k_top_p_filter`, applied to the step function's output at every step.
    generator : torch.Generator, optional
        Source of randomness (seed it for reproducible samples).

    Returns
    -------
    tokens : torch.Tensor
        ``(B, T)`` ``torch.long``, rows padded with eos after their eos.
    finished : torch.Tensor
        ``(B,)`` bool.

    Raises
    ------
    TypeError, ValueError
        As :func:`greedy_search` and :func:`top_k_top_p_filter`.

    Notes
    -----
    Source: the stochastic decoders reviewed in https://kexue.fm/archives/7500.
    """
    prefix, eos_id, max_len = _check_decoding_args(prefix, eos_id, max_len)
    tokens = prefix
    finished = torch.zeros(prefix.shape[0], dtype=torch.bool)
    while tokens.shape[1] < max_len:
        logp = _call_step(step_fn, tokens, eos_id)
        logp = top_k_top_p_filter(logp, top_k=top_k, top_p=top_p, keep_ids=keep_ids)
        nxt = torch.multinomial(torch.softmax(logp.double(), dim=-1), 1, generator=generator)[:, 0]
        nxt = torch.where(finished, torch.full_like(nxt, eos_id), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        finished = finished | (nxt == eos_id)
        if bool(finished.all()):
            break
    return tokens, finished


def top_k_top_p_filter(
    logits: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0, keep_ids: Iterable[int] | None = None
) -> torch.Tensor:
    r"""Top-k then nucleus (top-p) filtering: logits outside the kept set become ``-inf``.

    Top-k keeps every token whose logit is ``>=`` the k-th largest (ties at the k-th value are all kept).
    Nucleus keeps, in order of decreasing probability, every token whose *preceding* probability mass is
    ``< top_p``, i.e. the smallest head of the sorted distribution whose mass reaches ``top_p``; the most
    probable token is always kept. ``keep_ids`` (e.g. eos: the "consistent" variant of Welleck et al.) are
    kept whatever their rank.

    Parameters
    ----------
    logits : torch.Tensor
        ``(..., V)`` floating logits (or log-probabilities).
    top_k : int
        ``0`` = no top-k step, else ``1 <= top_k`` (values above V keep everything).
    top_p : float
        In ``(0, 1]``; ``1`` = no nucleus step.
    keep_ids : iterable of int, optional
        Ids always kept (their original logits restored).

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``logits``.

    Raises
    ------
    TypeError
        ``logits`` not a floating tensor, ``top_k`` not an integer.
    ValueError
        ``top_k < 0``, ``top_p`` outside ``(0, 1]``, ``keep_ids`` outside ``0..V-1``, NaN logits.

    Notes
    -----
    The sets are those of ``transformers``' ``TopKLogitsWarper`` followed by ``TopPLogitsWarper``
    (``min_tokens_to_keep = 1``), computed the same way: sort ascending, cumulative softmax mass, drop a
    token if the mass up to and including it is ``<= 1 - top_p``. Among tokens tied at the cut the sort
    order decides, as there. Source: https://kexue.fm/archives/7500 (top-k and nucleus sampling, and
    adding eos back to the candidate set).
    """
    check_tensor(logits, "logits", min_dim=1)
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise TypeError(f"top_k must be an integer, got {type(top_k).__name__}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p must be a real number in (0, 1], got {top_p!r}")
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    out = flat
    if top_k > 0:
        kth = torch.topk(out, min(int(top_k), vocab), dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= (1 - top_p)
        drop_sorted[..., -1:] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        out = out.masked_fill(drop, -math.inf)
    if keep_ids is not None:
        ids = torch.as_tensor(list(keep_ids), dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(f"keep_ids must lie in 0..{vocab - 1}, got {ids.tolist()}")
        out = out.clone()
        out[:, ids] = flat[:, ids]
    return out.reshape(logits.shape)


class PrefixTrie:
    """A prefix tree over token-id sequences (nested dicts), for constrained decoding.

    Each node is a dict ``{token_id: child}``; a stored sequence is marked at its last node. In the
    post's scheme every database entry ends with the end token, so that ``next_tokens`` offers the end
    token exactly where an entry is complete.

    Parameters
    ----------
    sequences : iterable of sequences of int
        Initial contents (each inserted with :meth:`insert`).

    Attributes
    ----------
    num_nodes : int
        Number of nodes, the root included (1 for an empty trie).

    Notes
    -----
    Source: https://kexue.fm/archives/8802 ("a trie is a nested dict"), after GENRE (De Cao et al., 2021).
    """

    _END = -1  # key of the end marker inside a node (never a token id: ids are >= 0)

    def __init__(self, sequences: Iterable[Sequence[int]] = ()):
        self._root: dict = {}
        self._len = 0
        self.num_nodes = 1
        for seq in sequences:
            self.insert(seq)

    @staticmethod
    def _as_ids(seq, name: str = "seq") -> list[int]:
        if isinstance(seq, torch.Tensor):
            seq = seq.tolist()
        if isinstance(seq, (str, bytes)):
            raise TypeError(f"{name} must be a sequence of integer token ids, not a string")
        ids = list(seq)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError(f"{name} must contain integer token ids, got {type(i).__name__}")
            if i < 0:
                raise ValueError(f"{name} contains a negative token id {i}")
        return [int(i) for i in ids]

    def insert(self, seq: Sequence[int]) -> None:
        """Store ``seq`` (non-empty sequence of ids >= 0); storing it twice has no effect.

        Raises
        ------
        TypeError, ValueError
            ``seq`` not a sequence of non-negative integers, or empty.
        """
        ids = self._as_ids(seq)
        if not ids:
            raise ValueError("seq must be non-empty")
        node = self._root
        for i in ids:
            if i not in node:
                node[i] = {}
                self.num_nodes += 1
            node = node[i]
        if self._END not in node:
            node[self._END] = True
            self._len += 1

    def _node(self, prefix) -> dict | None:
        node = self._root
        for i in self._as_ids(prefix, "prefix"):
            node = node.get(i)
            if node is None:
                return None
        return node

    def next_tokens(self, prefix: Sequence[int]) -> list[int]:
        """Sorted ids that extend ``prefix`` towards a stored sequence (``[]`` if none, or if ``prefix``
        is not a prefix of any stored sequence)."""
        node = self._node(prefix)
        if node is None:
            return []
        return sorted(i for i in node if i != self._END)

    def keys(self, prefix: Sequence[int] = ()) -> list[list[int]]:
        """All stored sequences that start with ``prefix`` (``prefix`` itself included if stored),
        in lexicographic order of ids."""
        node = self._node(prefix)
        if node is None:
            return []
        base = self._as_ids(prefix, "prefix")
        out = []
        stack = [(node, base)]
        while stack:
            cur, path = stack.pop()
            if self._END in cur:
                out.append(list(path))
            for i in sorted((i for i in cur if i != self._END), reverse=True):
                stack.append((cur[i], path + [i]))
        return out

    def __contains__(self, seq) -> bool:
        try:
            node = self._node(seq)
        except (TypeError, ValueError):
            return False
        return node is not None and self._END in node

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        yield from self.keys(())


def self_terminating_eos_lower_bound(t, eps):
    r"""Lower bound :math:`1-(1-\epsilon)^{t+1}` on :math:`p(\text{eos}\mid y_{<t})` under the
    self-terminating layer with :math:`\sigma\le 1-\epsilon` (steps counted from ``t = 0``).

    Parameters
    ----------
    t : int or torch.Tensor
        Step index (>= 0); a tensor gives an elementwise result (float64 for integer tensors).
    eps : float
        In ``(0, 1)``.

    Returns
    -------
    float or torch.Tensor

    Raises
    ------
    ValueError
        ``eps`` outside ``(0, 1)`` or a negative ``t``.

    Notes
    -----
    Source: https://kexue.fm/archives/7500, the inequality after the self-terminating recursion
    (Welleck et al., 2020, Theorem 4).
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < float(eps) < 1.0:
        raise ValueError(f"eps must be a real number in (0, 1), got {eps!r}")
    if isinstance(t, torch.Tensor):
        if (t < 0).any():
            raise ValueError("t must be >= 0")
        tt = t.double() if not t.is_floating_point() else t
        return 1.0 - (1.0 - float(eps)) ** (tt + 1)
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or t < 0:
        raise ValueError(f"t must be a number >= 0, got {t!r}")
    return 1.0 - (1.0 - float(eps)) ** (t + 1)


def self_terminating_log_probs(logits: torch.Tensor, *, eos_id: int, eps: float) -> torch.Tensor:
    r"""Log-probabilities of the self-terminating (ST) output layer along a sequence.

    With :math:`\sigma(z) = (1-\epsilon)\,\mathrm{sigmoid}(z)` and :math:`z_t` the eos logit at step t,

    .. math:: p(\text{eos}\mid y_{<t}) = 1-\prod_{i=0}^{t}\sigma(z_i),\qquad
              p(v\mid y_{<t}) = \Big(\prod_{i=0}^{t}\sigma(z_i)\Big)\,\mathrm{softmax}_{v\ne\text{eos}}(z)_v,

    computed in log space (:math:`\log\prod\sigma=\sum\log\sigma`) so long sequences do not underflow.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, T, V)`` floating; ``logits[..., eos_id]`` is the eos logit :math:`w_{eos}^\top h_t+b_{eos}`,
        the others are the ordinary token logits. Position ``t`` predicts token ``t`` (step index from 0).
    eos_id : int
        In ``0..V-1``.
    eps : float
        In ``(0, 1)``.

    Returns
    -------
    torch.Tensor
        ``(B, T, V)`` log-probabilities (each row sums to 1 in probability).

    Raises
    ------
    TypeError, ValueError
        ``logits`` not a 3-d floating tensor, ``eos_id`` out of range, ``eps`` outside ``(0, 1)``, V < 2.

    Notes
    -----
    Source: https://kexue.fm/archives/7500, the ST recursion (Welleck et al., 2020, Definition 4.3).
    """
    check_tensor(logits, "logits", min_dim=3)
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape (B, T, V), got {tuple(logits.shape)}")
    eos_id = _check_eos(eos_id)
    vocab = logits.shape[-1]
    if vocab < 2:
        raise ValueError("logits need V >= 2 (eos and at least one other token)")
    if not 0 <= eos_id < vocab:
        raise ValueError(f"eos_id = {eos_id} is outside the vocabulary 0..{vocab - 1}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < float(eps) < 1.0:
        raise ValueError(f"eps must be a real number in (0, 1), got {eps!r}")
    z = logits[..., eos_id]
    log_sigma = math.log1p(-float(eps)) + torch.nn.functional.logsigmoid(z)
    log_alpha = torch.cumsum(log_sigma, dim=1)  # log prod_{i<=t} sigma(z_i)
    others = logits.clone()
    others[..., eos_id] = -math.inf
    log_other = torch.log_softmax(others, dim=-1) + log_alpha[..., None]
    log_eos = torch.log(-torch.expm1(log_alpha))  # log(1 - alpha)
    out = log_other.clone()
    out[..., eos_id] = log_eos
    return out


def lookahead_reweight(
    probs: torch.Tensor,
    prefix: Sequence[int],
    trie: PrefixTrie,
    query: Sequence[int],
    *,
    end_id: int,
    lookahead: bool = True,
) -> torch.Tensor:
    r"""Trie-constrained next-token distribution with the "look-ahead" re-weighting of post 8802.

    Exactly as the post's code (``KgCLUE-bert4keras/baseline.py``, ``AutoQA.predict``): let ``A`` be the ids
    the trie allows after ``prefix``. If ``lookahead`` and ``|A| > 1``, every stored completion ``c`` of
    ``prefix`` gives its next id ``c[len(prefix)]`` the weight

    .. math:: w = \max\big(1,\ \max_c\,[\mathrm{LCS}(c, Q) - \mathrm{LCS}(\text{prefix}, Q) + 1]\big),

    and :math:`p \leftarrow p^{1/w}` (ids of no completion keep weight 1). Then everything outside ``A``
    is zeroed (``A`` empty: only ``end_id`` is allowed) and the result renormalised.

    Parameters
    ----------
    probs : torch.Tensor
        ``(V,)`` next-token probabilities (non-negative; need not sum to 1).
    prefix : sequence of int
        The ids decoded so far (the trie is walked from its root with them).
    trie : PrefixTrie
        The database of allowed outputs.
    query : sequence of int
        The question's ids, against which coverage (LCS) is measured.
    end_id : int
        The id allowed when the trie offers nothing.
    lookahead : bool
        False: constraint only (the code applies the look-ahead only once the subject S is decoded).

    Returns
    -------
    torch.Tensor
        ``(V,)`` probabilities, zero outside the allowed set, summing to 1.

    Raises
    ------
    TypeError, ValueError
        ``probs`` not a 1-d floating tensor, negative probabilities, an allowed id outside ``0..V-1``,
        or zero mass on the allowed set.

    Notes
    -----
    Source: https://kexue.fm/archives/8802, equations for :math:`\Delta^{(k)}` and
    :math:`p_k\leftarrow p_k^{1/(\Delta^{(k)}+1)}`. The code measures the gain on the whole decoded
    sequence and whole stored completions (subject, predicate and meaning), the post on the predicate alone.
    """
    from .text import lcs_length

    check_tensor(probs, "probs", min_dim=1)
    if probs.dim() != 1:
        raise ValueError(f"probs must have shape (V,), got {tuple(probs.shape)}")
    if (probs < 0).any():
        raise ValueError("probs must be non-negative")
    vocab = probs.shape[0]
    prefix = [int(i) for i in prefix]
    allowed = trie.next_tokens(prefix)
    p = probs.clone()
    if lookahead and len(allowed) > 1:
        weights = torch.ones_like(p)
        lcs0 = lcs_length(prefix, list(query))
        for c in trie.keys(prefix):
            if len(c) > len(prefix):
                w = lcs_length(c, list(query)) - lcs0
                weights[c[len(prefix)]] = max(w + 1, float(weights[c[len(prefix)]]))
        p = p ** (1.0 / weights)
    if not allowed:
        allowed = [_check_eos(end_id)]
    if max(allowed) >= vocab:
        raise ValueError(f"the trie allows id {max(allowed)} outside the vocabulary 0..{vocab - 1}")
    out = torch.zeros_like(p)
    out[allowed] = p[allowed]
    total = out.sum()
    if not total > 0:
        raise ValueError("probs has no mass on the allowed set")
    return out / total
