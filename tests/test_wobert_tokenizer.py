"""Tests of the WoBERT vocabulary, tokenizer rule and initialisation in kexue_core.text (post 7758)."""
import pytest
import torch

from kexue_core.text import mean_compound_embeddings, wobert_tokenize, word_piece_vocabulary

CHARS = list("我们喜欢中国人民北京天安门")
FREQ = {"我们": 50, "中国": 40, "喜欢": 40, "人民": 30, "我": 100, "北京天安门": 5, "天安门": 10, "中国人民": 1}


def seg(text):
    """A fixed toy segmenter (longest match over FREQ), standing in for jieba."""
    out, i = [], 0
    while i < len(text):
        for j in range(len(text), i, -1):
            if text[i:j] in FREQ or j == i + 1:
                out.append(text[i:j])
                i = j
                break
    return out


def test_vocabulary_order_skip_and_compounds():
    vocab, comp = word_piece_vocabulary(CHARS, FREQ, num_words=3)
    assert list(vocab)[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # "我" (100) is already a base token and is skipped; ties keep dictionary order (中国 before 喜欢)
    assert list(vocab)[-3:] == ["我们", "中国", "喜欢"]
    assert comp[0] == [vocab["我"], vocab["们"]]
    assert sorted(vocab.values()) == list(range(len(vocab)))


def test_vocabulary_unknown_character_maps_to_unk():
    vocab, comp = word_piece_vocabulary(["中"], {"中华": 3}, num_words=1)
    assert comp == [[vocab["中"], vocab["[UNK]"]]]


def test_vocabulary_runs_out():
    vocab, comp = word_piece_vocabulary(CHARS, FREQ, num_words=100)
    assert len(comp) == len(FREQ) - 1  # all but the single character "我"


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_words=0), "num_words"),
        (dict(specials=("[PAD]",)), "specials"),
        (dict(word_freq={"中国": -1}), "word_freq"),
        (dict(word_freq={"中国": 1.5}), "word_freq"),
        (dict(base_tokens=["a b"]), "base_tokens"),
    ],
)
def test_vocabulary_bad_input(kwargs, name):
    args = dict(base_tokens=CHARS, word_freq=FREQ, num_words=3) | kwargs
    with pytest.raises(ValueError, match=name):
        word_piece_vocabulary(args.pop("base_tokens"), args.pop("word_freq"), **args)


def test_vocabulary_word_freq_type():
    with pytest.raises(TypeError, match="word_freq"):
        word_piece_vocabulary(CHARS, [("中国", 1)])


def test_tokenizer_rule():
    vocab, _ = word_piece_vocabulary(CHARS, FREQ, num_words=4)  # 我们 中国 喜欢 人民
    text = "我们喜欢中国人民"
    # the segmenter gives 中国人民 as one segment; it is not in the vocabulary -> characters, not 中国 + 人民
    assert seg(text) == ["我们", "喜欢", "中国人民"]
    assert wobert_tokenize(text, vocab, pre_tokenize=seg) == ["我们", "喜欢", "中", "国", "人", "民"]
    # without pre_tokenize the word vocabulary has no effect: plain BERT, one token per character
    assert wobert_tokenize(text, vocab) == list(text)


def test_tokenizer_depends_only_on_vocab():
    v1, _ = word_piece_vocabulary(CHARS, FREQ, num_words=4)
    v2, _ = word_piece_vocabulary(CHARS, FREQ, num_words=8)
    a = wobert_tokenize("北京天安门", v1, pre_tokenize=seg)
    b = wobert_tokenize("北京天安门", v2, pre_tokenize=seg)
    assert a == list("北京天安门") and b == ["北京天安门"]
    assert wobert_tokenize("北京天安门", v1, pre_tokenize=seg) == a  # no state carried over


def test_tokenizer_lower_case_and_wordpiece():
    vocab, _ = word_piece_vocabulary(CHARS + ["bert", "##s"], {}, num_words=1)
    assert wobert_tokenize("BERTs我", vocab, pre_tokenize=str.split) == ["bert", "##s", "我"]
    assert wobert_tokenize("BERTs", vocab, do_lower_case=False) == ["[UNK]"]


@pytest.mark.parametrize(
    "args, kwargs, exc, name",
    [
        ((b"x", {"[UNK]": 0}), {}, TypeError, "text"),
        (("x", [("[UNK]", 0)]), {}, TypeError, "vocab"),
        (("x", {"a": 0}), {}, ValueError, "vocab"),
        (("x", {"[UNK]": 0}), {"pre_tokenize": 3}, TypeError, "pre_tokenize"),
        (("x", {"[UNK]": 0}), {"pre_tokenize": lambda s: [1]}, ValueError, "pre_tokenize"),
    ],
)
def test_tokenizer_bad_input(args, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        wobert_tokenize(*args, **kwargs)


def test_mean_compound_embeddings_exact_and_differentiable():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    comp = [[1, 2], [3, 4, 5], [7]]
    out = mean_compound_embeddings(emb, comp)
    assert out.shape == (3, 4) and out.dtype == torch.float64
    torch.testing.assert_close(out[0], (emb[1] + emb[2]) / 2, rtol=0, atol=1e-15)
    torch.testing.assert_close(out[1], (emb[3] + emb[4] + emb[5]) / 3, rtol=0, atol=1e-15)
    torch.testing.assert_close(out[2], emb[7], rtol=0, atol=0)
    out.sum().backward()
    assert emb.grad[2, 0].item() == pytest.approx(0.5) and emb.grad[4, 0].item() == pytest.approx(1 / 3)
    half = mean_compound_embeddings(emb.detach().half(), comp)
    assert half.dtype == torch.float16


@pytest.mark.parametrize(
    "emb, comp",
    [
        (torch.zeros(3), [[0]]),
        (torch.zeros(3, 2, dtype=torch.long), [[0]]),
        (torch.zeros(3, 2), [[]]),
        (torch.zeros(3, 2), [[3]]),
        (torch.zeros(3, 2), [[-1]]),
    ],
)
def test_mean_compound_embeddings_bad_input(emb, comp):
    with pytest.raises(ValueError, match="char_embeddings|compound_tokens"):
        mean_compound_embeddings(emb, comp)
