"""Unit tests of kexue_core.spans (sliding windows, centre truncation, GlobalPointer decoding)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_core.attention import rotary_embedding
from kexue_core.spans import (
    GlobalPointer,
    center_truncate,
    decode_best_span,
    span_cross_entropy,
    stride_split,
    valid_spans,
)


# --- stride_split --------------------------------------------------------------------------------------
def test_stride_split_baseline_numbers():
    # maxlen 512, question of 13 tokens -> W = 496; context of 1000 -> windows start 0, 128, 256, 384, 512
    w = stride_split(1000, 13, (700, 720))
    assert [x[:2] for x in w] == [(0, 496), (128, 624), (256, 752), (384, 880), (512, 1000)]
    assert [x[2:] for x in w] == [(-1, -1), (-1, -1), (444, 464), (316, 336), (188, 208)]


def test_stride_split_short_context_one_window():
    assert stride_split(10, 5, (2, 4)) == [(0, 10, 2, 4)]
    assert stride_split(0, 5) == [(0, 0, -1, -1)]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 3000),
    q=st.integers(0, 60),
    maxlen=st.integers(70, 512),
    stride=st.integers(1, 400),
    data=st.data(),
)
def test_stride_split_covers_every_short_answer(n, q, maxlen, stride, data):
    width = maxlen - q - 3
    stride = min(stride, width)
    windows = stride_split(n, q, maxlen=maxlen, stride=stride)
    # count: smallest k with k*stride + W >= n, plus one
    assert len(windows) == max(1, math.ceil((n - width) / stride) + 1)
    assert windows[0][0] == 0 and windows[-1][1] == n
    if n == 0:
        return
    length = data.draw(st.integers(1, min(n, width - stride + 1)))
    start = data.draw(st.integers(0, n - length))
    got = stride_split(n, q, (start, start + length), maxlen=maxlen, stride=stride)
    hits = [(l, r, a, b) for l, r, a, b in got if a >= 0]
    assert hits, "an answer no longer than W - stride + 1 must lie inside some window"
    for l, r, a, b in hits:
        assert l + a == start and l + b == start + length and b <= r - l
    for l, r, a, b in got:
        assert (a, b) == (-1, -1) or not (start < l or start + length > l + width)


def test_stride_split_bound_is_tight():
    # W = 10, stride 4: an answer of length W - stride + 2 = 8 starting at 3 fits in no window
    got = stride_split(30, 0, (3, 11), maxlen=13, stride=4)
    assert all(a == -1 for _, _, a, _ in got)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(context_length=-1, question_length=3), "context_length"),
        (dict(context_length=10, question_length=600), "question_length"),
        (dict(context_length=10, question_length=3, stride=600), "stride"),
        (dict(context_length=10, question_length=3, answer=(5, 5)), "answer"),
        (dict(context_length=10, question_length=3, answer=(5, 11)), "answer"),
    ],
)
def test_stride_split_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        stride_split(**kwargs)


# --- center_truncate -----------------------------------------------------------------------------------
def _cost(left, right, fixed=8, per_blank=4):
    return fixed + per_blank * (max(len(left) - 1, 0) + max(len(right) - 1, 0)) + sum(map(len, left + right))


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="abcdefg", min_size=0, max_size=60), min_size=2, max_size=6),
    maxlen=st.integers(9, 100),
    data=st.data(),
)
def test_center_truncate_properties(texts, maxlen, data):
    blank = data.draw(st.integers(0, len(texts) - 2))
    left, right = center_truncate(texts, blank, maxlen)
    assert _cost(left, right) <= maxlen
    full_left, full_right = "|".join(texts[: blank + 1]), "|".join(texts[blank + 1 :])
    kept_left, kept_right = "|".join(left), "|".join(right)
    assert full_left.endswith(kept_left) and full_right.startswith(kept_right)  # the blank stays
    l_a, l_b = sum(map(len, left)), sum(map(len, right))
    o_a, o_b = sum(map(len, texts[: blank + 1])), sum(map(len, texts[blank + 1 :]))
    trimmed_a, trimmed_b = l_a < o_a, l_b < o_b
    if trimmed_a and trimmed_b:
        assert abs(l_a - l_b) <= 1  # centred
    elif trimmed_a:
        assert l_a >= l_b  # only the longer side was cut
    elif trimmed_b:
        assert l_b >= l_a - 1
    if _cost(texts[: blank + 1], texts[blank + 1 :]) <= maxlen:
        assert (left, right) == (list(texts[: blank + 1]), list(texts[blank + 1 :]))


def test_center_truncate_example():
    left, right = center_truncate(["a" * 30, "b" * 10], 0, 8 + 20)
    assert (left, right) == (["a" * 10], ["b" * 10])


@pytest.mark.parametrize(
    "args, exc, name",
    [
        ((["abc"], 0, 64), ValueError, "texts"),
        (("abc", 0, 64), TypeError, "texts"),
        ((["a", "b"], 1, 64), ValueError, "blank"),
        ((["a", "b"], 0, 8), ValueError, "maxlen"),
    ],
)
def test_center_truncate_bad_input(args, exc, name):
    with pytest.raises(exc, match=name):
        center_truncate(*args)


# --- GlobalPointer and decoding ------------------------------------------------------------------------
def _brute_force(scores, valid):
    best, arg = -math.inf, None
    for i, j in itertools.product(range(scores.shape[0]), repeat=2):
        if valid[i, j] and scores[i, j] > best:
            best, arg = scores[i, j].item(), (i, j)
    return arg, best


def test_decode_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    gp = GlobalPointer(16, 1, 8)
    for _ in range(20):
        h = torch.randn(3, 9, 16, generator=g)
        mask = torch.rand(3, 9, generator=g) > 0.3
        mask[:, 0] = True
        scores = gp(h, mask)[:, 0]
        valid = valid_spans(mask)
        spans, best = decode_best_span(scores, valid)
        for b in range(3):
            arg, val = _brute_force(scores[b], valid[b])
            assert tuple(spans[b].tolist()) == arg and best[b].item() == val


def test_global_pointer_masks_and_scale():
    torch.manual_seed(0)
    gp = GlobalPointer(6, 2, 4, bias=False)
    h = torch.randn(2, 5, 6)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    s = gp(h, mask)
    assert s.shape == (2, 2, 5, 5)
    assert torch.isneginf(s[:, :, 1, 0]).all()  # start after end
    assert torch.isneginf(s[1, :, 3:, :]).all() and torch.isneginf(s[1, :, :, 3:]).all()  # padding
    qk = gp.dense(h).view(2, 5, 2, 2, 4)
    q, k = rotary_embedding(qk[..., 0, :].transpose(1, 2)), rotary_embedding(qk[..., 1, :].transpose(1, 2))
    expected = q @ k.transpose(-1, -2) / 2.0  # sqrt(head_size = 4)
    assert torch.allclose(s[0][torch.isfinite(s[0])], expected[0][torch.isfinite(s[0])], atol=1e-6)


def test_global_pointer_rope_is_relative():
    torch.manual_seed(1)
    gp = GlobalPointer(8, 1, 8, tril_mask=False)
    h = torch.randn(1, 4, 8, dtype=torch.float64)
    gp = gp.double()
    s_a = gp(torch.cat([h, h], dim=1))[0, 0]  # same tokens at positions 0..3 and 4..7
    assert torch.allclose(s_a[:4, :4], s_a[4:, 4:], atol=1e-12)
    assert not torch.allclose(s_a[:4, 4:], s_a[:4, :4], atol=1e-3)  # the offset does matter


def test_span_cross_entropy_matches_formula_and_ignores_masked():
    torch.manual_seed(2)
    scores = torch.randn(2, 4, 4, dtype=torch.float64)
    target = torch.tensor([[1, 2], [0, 0]])
    got = span_cross_entropy(scores, target)
    flat = scores.flatten(1)
    want = (torch.logsumexp(flat, 1) - flat[[0, 1], [6, 0]]).mean()
    assert torch.allclose(got, want, atol=1e-12)
    masked = scores.clone()
    masked[0, 3, 0] = float("-inf")
    flat_m = masked.flatten(1)
    want_m = (torch.logsumexp(flat_m, 1) - flat_m[[0, 1], [6, 0]]).mean()
    assert torch.allclose(span_cross_entropy(masked, target), want_m, atol=1e-12)
    assert span_cross_entropy(masked, target) < got


def test_half_precision_forward():
    gp = GlobalPointer(8, 1, 8).half()
    s = gp(torch.randn(1, 5, 8).half())
    assert s.dtype == torch.float16
    spans, _ = decode_best_span(s[:, 0])
    assert spans[0, 0] <= spans[0, 1]


@pytest.mark.parametrize(
    "call, exc, name",
    [
        (lambda: GlobalPointer(8, 1, 7), ValueError, "head_size"),
        (lambda: GlobalPointer(8, 1, 8)(torch.randn(1, 5, 7)), ValueError, "h"),
        (lambda: GlobalPointer(8, 1, 8)(torch.randn(1, 5, 8), torch.ones(1, 4, dtype=torch.bool)), ValueError, "mask"),
        (lambda: GlobalPointer(8, 1, 8)(torch.randn(1, 5, 8), torch.ones(1, 5)), TypeError, "mask"),
        (lambda: decode_best_span(torch.randn(2, 3, 4)), ValueError, "scores"),
        (lambda: decode_best_span(torch.randn(1, 3, 3), torch.zeros(1, 3, 3, dtype=torch.bool)), ValueError, "valid"),
        (lambda: span_cross_entropy(torch.randn(1, 3, 3), torch.tensor([[0, 3]])), ValueError, "target"),
        (lambda: span_cross_entropy(torch.randn(1, 3, 3), torch.tensor([[0.0, 1.0]])), TypeError, "target"),
        (lambda: span_cross_entropy(torch.full((1, 3, 3), float("-inf")), torch.tensor([[0, 1]])), ValueError, "target"),
        (lambda: valid_spans(torch.ones(3, dtype=torch.bool)), ValueError, "mask"),
    ],
)
def test_bad_input(call, exc, name):
    with pytest.raises(exc, match=name):
        call()
