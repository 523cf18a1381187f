"""Input formats for training language models on multi-turn dialogues.

Source: https://kexue.fm/archives/7718 ("动手做个DialoGPT"), whose code (github.com/bojone/nezha_gpt_dialog,
``train.py``) concatenates a whole dialogue in BERT format and trains next-token prediction on all of it; and
CDial-GPT (Wang et al., 2020), which marks speakers with role tokens and trains the last reply only.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from ._validation import check_positive_int

__all__ = ["build_lm_inputs", "build_speaker_token_inputs"]


def _check_ids(x, name: str) -> list[int]:
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise TypeError(f"{name} must be a sequence of integer token ids")
    out = []
    for i in x:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"{name} must contain integer token ids, got {type(i).__name__}")
        if i < 0:
            raise ValueError(f"{name} contains a negative token id {i}")
        out.append(int(i))
    return out


def build_lm_inputs(
    utterances: Sequence[Sequence[int]], *, cls_id: int, sep_id: int, maxlen: int = 512
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One dialogue as one language-model sample, as in post 7718's code.

    ``token_ids = [CLS] u_1 [SEP] u_2 [SEP] ...``; utterance ``i`` (from 0) and its ``[SEP]`` get segment id
    ``i % 2`` (``[CLS]`` gets 0); utterances are appended while the total length stays ``<= maxlen`` (later
    ones are dropped whole); the loss covers every position from 1 on (each token is predicted from the ones
    before it, the first utterance included).

    Parameters
    ----------
    utterances : sequence of sequences of int
        The turns, alternating speakers, without special tokens; at least one.
    cls_id, sep_id : int
        Ids of ``[CLS]`` and ``[SEP]``.
    maxlen : int
        Maximum length of the sample (>= 3).

    Returns
    -------
    token_ids, segment_ids : torch.Tensor
        ``(L,)`` ``torch.long``.
    loss_mask : torch.Tensor
        ``(L,)`` bool: positions whose token is a training target (all but position 0).

    Raises
    ------
    TypeError
        Non-integer ids.
    ValueError
        No utterance, negative ids, ``maxlen < 3``, or a first utterance that does not fit.
    """
    maxlen = check_positive_int(maxlen, "maxlen", minimum=3)
    if isinstance(utterances, (str, bytes)) or not isinstance(utterances, Sequence) or len(utterances) == 0:
        raise ValueError("utterances must be a non-empty sequence of utterances")
    cls_id = _check_ids([cls_id], "cls_id")[0]
    sep_id = _check_ids([sep_id], "sep_id")[0]
    tokens, segments = [cls_id], [0]
    for i, u in enumerate(utterances):
        ids = _check_ids(u, f"utterances[{i}]")
        if len(tokens) + len(ids) + 1 > maxlen:
            if i == 0:
                raise ValueError(f"the first utterance ({len(ids)} tokens) does not fit in maxlen = {maxlen}")
            break
        tokens += ids + [sep_id]
        segments += [i % 2] * (len(ids) + 1)
    t = torch.tensor(tokens, dtype=torch.long)
    mask = torch.ones(len(tokens), dtype=torch.bool)
    mask[0] = False
    return t, torch.tensor(segments, dtype=torch.long), mask


def build_speaker_token_inputs(
    history: Sequence[Sequence[int]],
    reply: Sequence[int],
    *,
    speaker_ids: tuple[int, int],
    bos_id: int,
    sep_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CDial-GPT-style sample: ``[BOS] [s1] h_1 [s2] h_2 ... [s?] reply [SEP]``, loss on the reply only.

    Turns alternate between ``speaker_ids[0]`` and ``speaker_ids[1]`` starting with the first; the segment id
    of each token is the role token of its turn (as in CDial-GPT), ``[BOS]`` taking the first role's.

    Parameters
    ----------
    history : sequence of sequences of int
        Earlier turns (may be empty).
    reply : sequence of int
        The turn to train on (non-empty).
    speaker_ids : (int, int)
        Role-token ids ``[speaker1]``, ``[speaker2]``.
    bos_id, sep_id : int
        Start token and the end-of-reply token.

    Returns
    -------
    token_ids, segment_ids : torch.Tensor
        ``(L,)`` ``torch.long``.
    loss_mask : torch.Tensor
        ``(L,)`` bool: the reply's tokens and its final ``[SEP]``.

    Raises
    ------
    TypeError, ValueError
        Non-integer or negative ids, an empty reply, ``speaker_ids`` not a pair.
    """
    if len(speaker_ids) != 2:
        raise ValueError("speaker_ids must be a pair of ids")
    s = _check_ids(list(speaker_ids), "speaker_ids")
    bos_id = _check_ids([bos_id], "bos_id")[0]
    sep_id = _check_ids([sep_id], "sep_id")[0]
    reply = _check_ids(reply, "reply")
    if not reply:
        raise ValueError("reply must be non-empty")
    tokens, segments = [bos_id], [s[0]]
    turns = [_check_ids(h, f"history[{i}]") for i, h in enumerate(history)] + [reply]
    for i, u in enumerate(turns):
        role = s[i % 2]
        tokens += [role] + u
        segments += [role] * (len(u) + 1)
    tokens.append(sep_id)
    segments.append(s[(len(turns) - 1) % 2])
    mask = torch.zeros(len(tokens), dtype=torch.bool)
    mask[len(tokens) - len(reply) - 1 :] = True
    return torch.tensor(tokens), torch.tensor(segments), mask
