"""Tests of kexue_core.decoding: greedy / beam search against transformers' generate on a tiny random GPT-2
(no download: built from a GPT2Config), beam search against brute force, the top-k/top-p filter against
transformers' warpers, the prefix trie, and the self-terminating layer."""
import itertools
import math

import pytest
import torch

from kexue_core.decoding import (
    PrefixTrie,
    beam_search,
    greedy_search,
    self_terminating_eos_lower_bound,
    self_terminating_log_probs,
    top_k_top_p_filter,
)

VOCAB, EOS = 50, 7


@pytest.fixture(scope="module")
def gpt2():
    """A 1-layer GPT-2 with random weights (initializer_range 0.5 so logits are well separated: no
    near-ties that float round-off between a cached and an uncached forward could flip)."""
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=64, initializer_range=0.5,
        bos_token_id=0, eos_token_id=EOS, pad_token_id=EOS,
    )
    model = transformers.GPT2LMHeadModel(cfg).eval()

    @torch.no_grad()
    def step_fn(tokens):
        return model(tokens).logits[:, -1].float().log_softmax(-1)

    return model, step_fn


@torch.no_grad()
def _hf(model, prefix, **kw):
    return model.generate(
        prefix, attention_mask=torch.ones_like(prefix), eos_token_id=EOS, pad_token_id=EOS, do_sample=False,
        use_cache=False, **kw,
    )


def _allowed(batch_id, tokens):
    """A constraint that depends on the batch row and the last token (a stand-in for a trie)."""
    last = int(tokens[-1])
    return sorted({(last * 3 + batch_id) % VOCAB, (last + 11) % VOCAB, (last * 7 + 1) % VOCAB, EOS})


@pytest.mark.parametrize("max_new", [1, 5, 12])
@pytest.mark.parametrize("constrained", [False, True])
def test_greedy_equals_transformers(gpt2, max_new, constrained):
    model, step_fn = gpt2
    g = torch.Generator().manual_seed(max_new)
    prefix = torch.randint(0, VOCAB, (4, 3), generator=g)
    kw = {"prefix_allowed_tokens_fn": _allowed} if constrained else {}
    ref = _hf(model, prefix, max_new_tokens=max_new, num_beams=1, **kw)
    ours, finished = greedy_search(
        step_fn, prefix, eos_id=EOS, max_len=3 + max_new, allowed_tokens=_allowed if constrained else None
    )
    assert ours.shape[1] <= ref.shape[1]
    # transformers pads to its own length; ours stops when all rows finished: compare on our length
    assert torch.equal(ours, ref[:, : ours.shape[1]])
    assert (ref[:, ours.shape[1]:] == EOS).all()
    assert torch.equal(finished, (ours[:, 3:] == EOS).any(dim=1))


@pytest.mark.parametrize("beam_size,max_new,lp", [(2, 4, 1.0), (3, 8, 0.0), (5, 10, 1.0), (4, 6, 2.0)])
@pytest.mark.parametrize("constrained", [False, True])
def test_beam_equals_transformers(gpt2, beam_size, max_new, lp, constrained):
    model, step_fn = gpt2
    g = torch.Generator().manual_seed(100 + beam_size)
    prefix = torch.randint(0, VOCAB, (2, 2), generator=g)
    kw = {"prefix_allowed_tokens_fn": _allowed} if constrained else {}
    out = _hf(
        model, prefix, max_new_tokens=max_new, num_beams=beam_size, num_return_sequences=beam_size,
        length_penalty=lp, early_stopping=False, return_dict_in_generate=True, output_scores=True, **kw,
    )
    ours = beam_search(
        step_fn, prefix, beam_size=beam_size, eos_id=EOS, max_len=2 + max_new, length_penalty=lp,
        allowed_tokens=_allowed if constrained else None,
    )
    for b in range(2):
        hf_seqs = out.sequences[b * beam_size : (b + 1) * beam_size]
        hf_scores = out.sequences_scores[b * beam_size : (b + 1) * beam_size]
        real = [i for i in range(beam_size) if hf_scores[i] > -1e8]
        assert len(ours[b]) == len(real)
        for (seq, score), i in zip(ours[b], real):
            hf = hf_seqs[i].tolist()
            # strip transformers' padding after the first generated eos
            gen = hf[2:]
            if EOS in gen:
                hf = hf[: 2 + gen.index(EOS) + 1]
            assert seq == hf
            assert score == pytest.approx(float(hf_scores[i]), rel=1e-5, abs=1e-5)


def _table_step(vocab, seed):
    """A step function whose next-token distribution depends on the last two tokens (a random table)."""
    table = torch.randn(vocab, vocab, vocab, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def step(tokens):
        return (2.0 * table[tokens[:, -2], tokens[:, -1]]).log_softmax(-1)

    return step


def _brute_force(step, prefix, vocab, eos, n_new, lp):
    """Every completion of length <= n_new (ending in eos, or of length n_new), scored exactly."""
    out = []
    for length in range(1, n_new + 1):
        for tail in itertools.product(range(vocab), repeat=length):
            if eos in tail[:-1] or (length < n_new and tail[-1] != eos):
                continue
            seq = list(prefix) + list(tail)
            s = sum(float(step(torch.tensor([seq[: len(prefix) + i]]))[0, tail[i]]) for i in range(length))
            out.append((seq, s / length**lp))
    return sorted(out, key=lambda x: -x[1])


@pytest.mark.parametrize("lp", [0.0, 1.0, 0.5])
def test_wide_beam_is_brute_force_optimum(lp):
    vocab, eos, n_new = 4, 3, 4
    step = _table_step(vocab, seed=1)
    prefix = [0, 1]
    brute = _brute_force(step, prefix, vocab, eos, n_new, lp)
    ours = beam_search(
        step, torch.tensor([prefix]), beam_size=vocab**n_new, eos_id=eos, max_len=2 + n_new, length_penalty=lp
    )[0]
    assert len(ours) == len(brute)
    assert [s for s, _ in ours] == [s for s, _ in brute]
    assert [v for _, v in ours] == pytest.approx([v for _, v in brute], rel=1e-12)


def test_narrow_beam_is_not_always_optimal():
    """A control for the test above: beam 1 misses the optimum on this table (so the test can fail)."""
    vocab, eos, n_new = 4, 3, 4
    step = _table_step(vocab, seed=1)
    brute = _brute_force(step, [0, 1], vocab, eos, n_new, 0.0)
    misses = 0
    for seed in range(10):
        step = _table_step(vocab, seed=seed)
        brute = _brute_force(step, [0, 1], vocab, eos, n_new, 0.0)
        best = beam_search(step, torch.tensor([[0, 1]]), beam_size=1, eos_id=eos, max_len=6)[0][0]
        misses += best[1] < brute[0][1] - 1e-12
    assert misses >= 1


def _hf_filter(logits, top_k, top_p):
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    out = logits
    if top_k > 0:
        out = TopKLogitsWarper(top_k)(None, out)
    if top_p < 1.0:
        out = TopPLogitsWarper(top_p)(None, out)
    return out


@pytest.mark.parametrize("top_k,top_p", [(0, 0.3), (0, 0.9), (5, 1.0), (3, 0.5), (1, 0.99), (20, 0.7), (60, 0.8)])
@pytest.mark.parametrize("ties", [False, True])
def test_filter_sets_equal_transformers_warpers(gpt2, top_k, top_p, ties):
    g = torch.Generator().manual_seed(top_k * 100 + int(100 * top_p))
    if ties:
        logits = torch.randint(-3, 3, (64, 30), generator=g).float()  # many exact ties
    else:
        logits = 3 * torch.randn(64, 30, generator=g)
    ours = top_k_top_p_filter(logits, top_k=top_k, top_p=top_p)
    ref = _hf_filter(logits, top_k, top_p)
    assert torch.equal(torch.isfinite(ours), torch.isfinite(ref))
    assert torch.equal(ours[torch.isfinite(ours)], logits[torch.isfinite(ours)])


def test_nucleus_is_smallest_head_reaching_p():
    """Definition, independent of transformers: uniform over 4 tokens (masses exactly 1/4)."""
    logits = torch.zeros(1, 4)
    for p, n in [(0.25, 1), (0.5, 2), (0.5000001, 3), (0.75, 3), (1.0, 4)]:
        assert int(torch.isfinite(top_k_top_p_filter(logits, top_p=p)).sum()) == n, p
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 17, generator=g, dtype=torch.float64)
    for p in (0.1, 0.5, 0.9):
        kept = torch.isfinite(top_k_top_p_filter(x, top_p=p))
        probs, order = x.softmax(-1).sort(descending=True)
        before = probs.cumsum(-1) - probs  # mass strictly before each sorted token
        expect = torch.zeros_like(kept).scatter(1, order, before < p)
        assert torch.equal(kept, expect)


def test_topk_keeps_ties_and_keep_ids():
    logits = torch.tensor([[3.0, 1.0, 1.0, 0.0, -2.0]])
    assert torch.isfinite(top_k_top_p_filter(logits, top_k=2)).tolist() == [[True, True, True, False, False]]
    kept = top_k_top_p_filter(logits, top_k=1, keep_ids=[4])
    assert torch.isfinite(kept).tolist() == [[True, False, False, False, True]]
    assert kept[0, 4] == -2.0
    kept = top_k_top_p_filter(logits, top_p=0.5, keep_ids=[4])
    assert torch.isfinite(kept).tolist() == [[True, False, False, False, True]]


def test_trie():
    t = PrefixTrie([[1, 2, 3], [1, 2, 4], [1, 5], [6]])
    assert len(t) == 4
    assert t.num_nodes == 1 + 1 + 1 + 2 + 1 + 1  # root, 1, 2, {3,4}, 5, 6
    assert t.next_tokens([]) == [1, 6]
    assert t.next_tokens([1]) == [2, 5]
    assert t.next_tokens([1, 2]) == [3, 4]
    assert t.next_tokens([1, 2, 3]) == []
    assert t.next_tokens([9]) == []
    assert [1, 2, 3] in t and [1, 2] not in t and [7] not in t
    t.insert([1, 2, 3])
    assert len(t) == 4 and t.num_nodes == 7
    t.insert([1, 2])
    assert len(t) == 5 and t.num_nodes == 7 and [1, 2] in t
    assert sorted(t) == sorted([[1, 2, 3], [1, 2, 4], [1, 5], [6], [1, 2]])


def test_trie_constrained_beam_outputs_are_entries():
    vocab, eos = 6, 5
    db = [[0, 1, 2, eos], [0, 1, 3, eos], [4, 2, eos], [0, 2, eos], [3, eos]]
    trie = PrefixTrie(db)
    for seed in range(5):
        step = _table_step(vocab, seed)
        for k in (1, 2, 3):
            res = beam_search(
                step, torch.tensor([[eos, eos]]), beam_size=k, eos_id=eos, max_len=8,
                allowed_tokens=lambda b, toks: trie.next_tokens(toks[2:].tolist()),
            )[0]
            assert res and all(seq[2:] in trie for seq, _ in res)
        toks, fin = greedy_search(
            step, torch.tensor([[eos, eos]]), eos_id=eos, max_len=8,
            allowed_tokens=lambda b, toks: trie.next_tokens(toks[2:].tolist()),
        )
        assert bool(fin[0]) and toks[0, 2:].tolist() in trie


def test_self_terminating_bound_and_layer():
    assert self_terminating_eos_lower_bound(0, 0.1) == pytest.approx(0.1, abs=1e-15)
    assert self_terminating_eos_lower_bound(6, 0.1) == pytest.approx(1 - 0.9**7, abs=1e-15)
    t = torch.arange(5)
    assert torch.allclose(self_terminating_eos_lower_bound(t, 0.5), 1 - 0.5 ** (t.double() + 1))
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(3, 40, 9, generator=g, dtype=torch.float64)
    lp = self_terminating_log_probs(logits, eos_id=2, eps=0.1)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 40, dtype=torch.float64), atol=1e-12)
    p_eos = lp[..., 2].exp()
    # the bound is attained when every sigmoid saturates at 1
    sat = self_terminating_log_probs(torch.full((1, 10, 3), 50.0, dtype=torch.float64), eos_id=0, eps=0.1)
    assert torch.allclose(sat[0, :, 0].exp(), self_terminating_eos_lower_bound(torch.arange(10), 0.1), atol=1e-12)
    assert (p_eos >= self_terminating_eos_lower_bound(torch.arange(40), 0.1) - 1e-12).all()
    assert (p_eos.diff(dim=1) >= -1e-12).all()
    # explicit recursion of the post: p_t = 1 - sigma(z_t) (1 - p_{t-1})
    s = 0.9 * torch.sigmoid(logits[..., 2])
    p = 1 - s[:, 0]
    for i in range(1, 40):
        p = 1 - s[:, i] * (1 - p)
        assert torch.allclose(p_eos[:, i], p, atol=1e-12)


def test_bad_input():
    step = _table_step(4, 0)
    pre = torch.tensor([[0, 1]])
    with pytest.raises(ValueError, match="eos_id"):
        greedy_search(step, pre, eos_id=4, max_len=5)
    with pytest.raises(ValueError, match="eos_id"):
        beam_search(step, pre, beam_size=2, eos_id=-1, max_len=5)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(step, pre, beam_size=0, eos_id=3, max_len=5)
    with pytest.raises(ValueError, match="max_len"):
        greedy_search(step, pre, eos_id=3, max_len=2)
    with pytest.raises(ValueError, match="step_fn"):
        greedy_search(lambda t: torch.zeros(t.shape[0], 4, 1), pre, eos_id=3, max_len=5)
    with pytest.raises(ValueError, match="step_fn"):
        beam_search(lambda t: torch.zeros(t.shape[0] + 1, 4), pre, beam_size=2, eos_id=3, max_len=5)
    with pytest.raises(TypeError, match="prefix"):
        greedy_search(step, pre.float(), eos_id=3, max_len=5)
    with pytest.raises(ValueError, match="top_p"):
        top_k_top_p_filter(torch.zeros(2, 4), top_p=0.0)
    with pytest.raises(ValueError, match="top_p"):
        top_k_top_p_filter(torch.zeros(2, 4), top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        top_k_top_p_filter(torch.zeros(2, 4), top_k=-1)
    with pytest.raises(ValueError, match="keep_ids"):
        top_k_top_p_filter(torch.zeros(2, 4), top_k=1, keep_ids=[4])
    with pytest.raises(ValueError, match="eps"):
        self_terminating_eos_lower_bound(3, 1.0)
    with pytest.raises(ValueError, match="eps"):
        self_terminating_log_probs(torch.zeros(1, 2, 3), eos_id=0, eps=0.0)
    with pytest.raises(ValueError, match="seq"):
        PrefixTrie([[]])
    with pytest.raises(TypeError, match="seq"):
        PrefixTrie(["abc"])
    with pytest.raises(ValueError, match="allowed_tokens"):
        greedy_search(step, pre, eos_id=3, max_len=5, allowed_tokens=lambda b, t: [])


def test_ancestral_sampling():
    from kexue_core.decoding import ancestral_sampling

    step = _table_step(5, 3)
    pre = torch.tensor([[0, 1]] * 6)
    # top-1 sampling is greedy search
    s, f = ancestral_sampling(step, pre, eos_id=4, max_len=12, top_k=1, generator=torch.Generator().manual_seed(0))
    g, fg = greedy_search(step, pre, eos_id=4, max_len=12)
    assert torch.equal(s, g) and torch.equal(f, fg)
    # a constant distribution: the first sampled token has the model's frequencies (4 standard errors)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    const = lambda t: probs.log().expand(t.shape[0], 4)  # noqa: E731
    n = 20000
    toks, _ = ancestral_sampling(const, torch.zeros(n, 1, dtype=torch.long), eos_id=3, max_len=2,
                                 generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(toks[:, 1], minlength=4).double() / n
    se = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert ((freq - probs.double()).abs() < 4 * se).all()
    # nucleus 0.5 keeps {0}; with eos kept the support is {0, 3}
    toks, _ = ancestral_sampling(const, torch.zeros(n, 1, dtype=torch.long), eos_id=3, max_len=2, top_p=0.5,
                                 keep_ids=[3], generator=torch.Generator().manual_seed(2))
    assert set(toks[:, 1].tolist()) == {0, 3}
    with pytest.raises(ValueError, match="top_p"):
        ancestral_sampling(const, pre, eos_id=3, max_len=5, top_p=0.0)


def test_lookahead_reweight_as_in_the_post_code():
    from kexue_core.decoding import lookahead_reweight

    chars = "张三主讲课程要成就什么[]"
    ids = {c: i for i, c in enumerate(chars)}
    enc = lambda s: [ids[c] for c in s]  # noqa: E731
    trie = PrefixTrie([enc("张三]主讲课程"), enc("张三]主要成就")])
    q = enc("张三主要讲什么课程")
    probs = torch.full((len(chars),), 0.01, dtype=torch.float64)
    probs[ids["要"]], probs[ids["讲"]] = 0.6, 0.3
    out = lookahead_reweight(probs, enc("张三]主"), trie, q, end_id=ids["]"])
    # LCS(prefix, Q) = 3 (张三主); completions reach 6 (张三主讲课程) and 4 (张三主要): weights 4 and 2
    w_jiang, w_yao = 0.3 ** (1 / 4), 0.6 ** (1 / 2)
    assert float(out[ids["讲"]]) == pytest.approx(w_jiang / (w_jiang + w_yao), rel=1e-12)
    assert float(out.sum()) == pytest.approx(1.0) and int((out > 0).sum()) == 2
    plain = lookahead_reweight(probs, enc("张三]主"), trie, q, end_id=ids["]"], lookahead=False)
    assert float(plain[ids["讲"]]) == pytest.approx(1 / 3, rel=1e-12)
    end = lookahead_reweight(probs, enc("张三]主讲课程"), trie, q, end_id=ids["]"])
    assert float(end[ids["]"]]) == 1.0
    with pytest.raises(ValueError, match="probs"):
        lookahead_reweight(-probs, enc("张三]主"), trie, q, end_id=ids["]"])
    assert trie.keys(enc("张三]主")) == sorted([enc("张三]主讲课程"), enc("张三]主要成就")])
