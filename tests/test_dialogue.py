"""Tests of kexue_core.dialogue (post 7718's format and CDial-GPT's)."""
import pytest
import torch

from kexue_core.dialogue import build_lm_inputs, build_speaker_token_inputs

CLS, SEP = 101, 102


def test_lm_format_as_in_the_post_code():
    tok, seg, mask = build_lm_inputs([[5, 6], [7], [8, 9, 10]], cls_id=CLS, sep_id=SEP)
    assert tok.tolist() == [CLS, 5, 6, SEP, 7, SEP, 8, 9, 10, SEP]
    assert seg.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert mask.tolist() == [False] + [True] * 9
    # truncation drops whole later turns
    tok, seg, mask = build_lm_inputs([[5, 6], [7], [8, 9, 10]], cls_id=CLS, sep_id=SEP, maxlen=8)
    assert tok.tolist() == [CLS, 5, 6, SEP, 7, SEP]
    with pytest.raises(ValueError, match="first utterance"):
        build_lm_inputs([[1] * 10], cls_id=CLS, sep_id=SEP, maxlen=5)
    with pytest.raises(ValueError, match="utterances"):
        build_lm_inputs([], cls_id=CLS, sep_id=SEP)
    with pytest.raises(TypeError, match="utterances"):
        build_lm_inputs([[1.5]], cls_id=CLS, sep_id=SEP)
    with pytest.raises(ValueError, match="maxlen"):
        build_lm_inputs([[1]], cls_id=CLS, sep_id=SEP, maxlen=2)


def test_speaker_token_format():
    tok, seg, mask = build_speaker_token_inputs([[5, 6], [7]], [8, 9], speaker_ids=(1, 2), bos_id=0, sep_id=SEP)
    assert tok.tolist() == [0, 1, 5, 6, 2, 7, 1, 8, 9, SEP]
    assert seg.tolist() == [1, 1, 1, 1, 2, 2, 1, 1, 1, 1]
    assert mask.tolist() == [False] * 7 + [True] * 3
    with pytest.raises(ValueError, match="reply"):
        build_speaker_token_inputs([], [], speaker_ids=(1, 2), bos_id=0, sep_id=SEP)
    with pytest.raises(ValueError, match="speaker_ids"):
        build_speaker_token_inputs([], [3], speaker_ids=(1, 2, 3), bos_id=0, sep_id=SEP)
