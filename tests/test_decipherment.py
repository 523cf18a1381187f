"""Unit tests for kexue_core.decipherment (exact on small constructed corpora)."""
from collections import Counter

import numpy as np
import pytest

from kexue_core import decipherment as dc


def test_cipher_is_bijection_onto_range():
    key = dc.substitution_cipher("abcdef", first_id=7, seed=0)
    assert sorted(key.values()) == list(range(7, 13))
    assert set(key) == set("abcdef")
    assert key == dc.substitution_cipher("abcdef", first_id=7, seed=0)  # deterministic
    assert key != dc.substitution_cipher("abcdef", first_id=7, seed=1)


def test_encipher_and_rank_alignment_exact():
    # plain counts a:5 b:3 c:2 d:1 ; cipher of a different text with the same frequency order
    key = {"a": 10, "b": 11, "c": 12, "d": 13}
    cipher = dc.encipher(["aaab", "bac", "aacd", "b"], key)
    assert cipher == [[10, 10, 10, 11], [11, 10, 12], [10, 10, 12, 13], [11]]
    cc = dc.char_counts(cipher)
    assert cc == Counter({10: 6, 11: 3, 12: 2, 13: 1})
    plain = Counter({"a": 5, "b": 3, "c": 2, "d": 1})
    al = dc.frequency_rank_alignment(cc, plain)
    assert al == {10: "a", 11: "b", 12: "c", 13: "d"}
    assert list(dc.alignment_correct_by_rank(al, key)) == [True] * 4
    # swap the plain frequencies of c and d: ranks 2, 3 become wrong
    al2 = dc.frequency_rank_alignment(cc, Counter({"a": 5, "b": 3, "d": 2, "c": 1}))
    assert list(dc.alignment_correct_by_rank(al2, key)) == [True, True, False, False]
    acc = dc.accuracy_at_ranks(dc.alignment_correct_by_rank(al2, key), [1, 2, 3, 4])
    np.testing.assert_allclose(acc, [1, 1, 2 / 3, 0.5])
    accm = dc.accuracy_at_ranks(dc.alignment_correct_by_rank(al2, key), [4], weights=[6, 3, 2, 1])
    np.testing.assert_allclose(accm, [9 / 12])


def test_ranking_ties_and_min_count():
    assert dc.frequency_ranking({"x": 2, "y": 5, "z": 2, "w": 1}) == ["y", "x", "z"] + ["w"]
    assert dc.frequency_ranking({"x": 2, "y": 5, "z": 2, "w": 1}, min_count=2) == ["y", "x", "z"]
    al = dc.frequency_rank_alignment({1: 9, 2: 4, 3: 1}, {"p": 3, "q": 7})
    assert al == {1: "q", 2: "p"}  # truncated to the shorter list


def test_rank_alignment_is_optimal_assignment():
    from scipy.optimize import linear_sum_assignment
    rng = np.random.default_rng(0)
    for _ in range(20):
        f = rng.integers(1, 1000, 12)
        g = rng.integers(1, 1000, 12)
        al = dc.frequency_rank_alignment(dict(enumerate(f)), dict(enumerate(g)))
        cost = (f[:, None] - g[None, :]).astype(float) ** 2
        r, c = linear_sum_assignment(cost)
        ours = sum(cost[i, j] for i, j in al.items())
        assert ours == cost[r, c].sum()


def test_mlm_random_mask_rule():
    ids = list(range(7, 7 + 20000))
    inp, tgt = dc.mlm_random_mask(ids, vocab_low=7, vocab_high=100, seed=3)
    # replay the same uniform draws: the rule is exactly the code's thresholds
    rng = np.random.default_rng(3)
    r = rng.random(len(ids))
    rand = rng.integers(7, 100, len(ids))
    for t, ri, x, y, z in zip(ids, r, inp, tgt, rand):
        if ri < 0.12:
            assert (x, y) == (dc.MASK_ID, t)
        elif ri < 0.135:
            assert (x, y) == (t, t)
        elif ri < 0.15:
            assert (x, y) == (z, t)
        else:
            assert (x, y) == (t, 0)
    frac = np.mean(np.array(tgt) != 0)
    assert abs(frac - 0.15) < 4 * np.sqrt(0.15 * 0.85 / len(ids))


def test_matching_example_layout():
    a, b = [7, 8, 9], [10, 11]
    tok, seg, tgt = dc.matching_example(a, b, 1, mask=False)
    assert tok == [2, 7, 8, 9, 3, 10, 11, 3]
    assert seg == [0] * 8
    assert tgt == [6, 0, 0, 0, 0, 0, 0, 0]
    assert dc.matching_example(a, b, 0, mask=False)[2][0] == 5
    assert dc.matching_example(a, b, None, mask=False)[2] == [0] * 8
    tok, _, tgt = dc.matching_example([7] * 10, [8] * 4, 1, mask=False, maxlen=10)
    assert tok == [2] + [7] * 3 + [3] + [8] * 4 + [3]  # 10+4 -> 4+4 -> a pops on ties -> 3+4
    tok, _, tgt = dc.matching_example(list(range(7, 57)), list(range(57, 107)), None, vocab_high=107, seed=0)
    for i in (0, 51, 102):  # [CLS], the two [SEP]
        assert tgt[i] == 0
    masked = [i for i, t in enumerate(tgt) if t]
    assert masked and all(tgt[i] == (list(range(7, 57)) + [0] + list(range(57, 107)))[i - 1] for i in masked)


@pytest.mark.parametrize("call,name", [
    (lambda: dc.substitution_cipher([]), "symbols"),
    (lambda: dc.substitution_cipher("aa"), "symbols"),
    (lambda: dc.substitution_cipher("ab", first_id=-1), "first_id"),
    (lambda: dc.encipher(["abz"], {"a": 1, "b": 2}), "texts"),
    (lambda: dc.encipher(["ab"], {"a": 1, "b": 1}), "key"),
    (lambda: dc.frequency_ranking({"a": -1}), "counts"),
    (lambda: dc.frequency_rank_alignment({}, {"a": 1}), "cipher_counts"),
    (lambda: dc.frequency_rank_alignment({1: 1}, {"a": 1}, min_count=2), "cipher_counts"),
    (lambda: dc.frequency_rank_alignment({1: 3}, {}), "plain_counts"),
    (lambda: dc.alignment_correct_by_rank({}, {}), "alignment"),
    (lambda: dc.accuracy_at_ranks([], [1]), "correct"),
    (lambda: dc.accuracy_at_ranks([True], [2]), "ks"),
    (lambda: dc.accuracy_at_ranks([True], [1], weights=[1, 2]), "weights"),
    (lambda: dc.mlm_random_mask([7], vocab_low=7, vocab_high=9, prob=0), "prob"),
    (lambda: dc.mlm_random_mask([7], vocab_low=9, vocab_high=9), "vocab_low"),
    (lambda: dc.mlm_random_mask([0, 7], vocab_low=7, vocab_high=9), "ids"),
    (lambda: dc.matching_example([7], [8], 2), "label"),
    (lambda: dc.matching_example([], [8], 1), "a must"),
    (lambda: dc.matching_example([7], [], 1), "b must"),
    (lambda: dc.matching_example([7], [3], 1, mask=False), "a and b"),
    (lambda: dc.matching_example([7], [8], 1, maxlen=4), "maxlen"),
    (lambda: dc.matching_example([7], [8], 1), "vocab_high"),
])
def test_bad_input_names_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_seed_type():
    with pytest.raises(TypeError, match="seed"):
        dc.substitution_cipher("ab", seed=1.5)
