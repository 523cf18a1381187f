"""Tests for kexue_core.markov: exact token conditionals of an HMM / Markov chain."""
import itertools

import pytest
import torch

from kexue_core.markov import hmm_token_conditionals, markov_chain_token_conditionals, sample_hmm


def _hmm(k=3, v=4, seed=0):
    g = torch.Generator().manual_seed(seed)

    def stoch(*shape):
        p = torch.rand(*shape, generator=g, dtype=torch.float64) + 0.05
        return p / p.sum(-1, keepdim=True)

    return stoch(k), stoch(k, k), stoch(k, v)


def _brute(x, init, trans, emit):
    k, v = emit.shape
    n = len(x)

    def joint(seq):
        tot = 0.0
        for z in itertools.product(range(k), repeat=n):
            p = init[z[0]] * emit[z[0], seq[0]]
            for t in range(1, n):
                p = p * trans[z[t - 1], z[t]] * emit[z[t], seq[t]]
            tot = tot + p
        return tot

    out = torch.zeros(n, v, dtype=torch.float64)
    for i in range(n):
        ps = torch.stack([torch.as_tensor(joint(x[:i] + [s] + x[i + 1:])) for s in range(v)])
        out[i] = ps / ps.sum()
    return out


def test_hmm_conditionals_match_enumeration():
    init, trans, emit = _hmm()
    tok, states = sample_hmm(init, trans, emit, n_seq=2, length=5, generator=torch.Generator().manual_seed(1))
    assert tok.shape == states.shape == (2, 5)
    c = hmm_token_conditionals(tok, init, trans, emit)
    torch.testing.assert_close(c.sum(-1), torch.ones(2, 5, dtype=torch.float64), rtol=0, atol=1e-14)
    for b in range(2):
        torch.testing.assert_close(c[b], _brute(tok[b].tolist(), init, trans, emit), rtol=0, atol=1e-13)


def test_markov_chain_is_hmm_with_identity_emission():
    init, trans, _ = _hmm(k=5, v=5, seed=2)
    tok, _ = sample_hmm(init, trans, torch.eye(5, dtype=torch.float64), n_seq=4, length=9,
                        generator=torch.Generator().manual_seed(3))
    a = markov_chain_token_conditionals(tok, init, trans)
    b = hmm_token_conditionals(tok, init, trans, torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_markov_chain_small_enumeration():
    init, trans, _ = _hmm(k=3, v=3, seed=4)
    tok = torch.tensor([[0, 2, 1, 1]])
    ref = _brute(tok[0].tolist(), init, trans, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(markov_chain_token_conditionals(tok, init, trans)[0], ref, rtol=0, atol=1e-14)


def test_sampling_frequencies():
    init, trans, emit = _hmm(k=2, v=3, seed=5)
    tok, states = sample_hmm(init, trans, emit, n_seq=20000, length=2, generator=torch.Generator().manual_seed(0))
    f0 = torch.bincount(states[:, 0], minlength=2).double() / 20000
    assert torch.allclose(f0, init, atol=0.015)  # sd <= 0.0036


def test_bad_input():
    init, trans, emit = _hmm()
    tok = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError):
        hmm_token_conditionals(tok, init * 2, trans, emit)  # not a distribution
    with pytest.raises(ValueError):
        hmm_token_conditionals(tok, init, trans[:2], emit)  # wrong shape
    with pytest.raises(ValueError):
        hmm_token_conditionals(torch.full((1, 3), 4), init, trans, emit)  # id >= V
    with pytest.raises(TypeError):
        hmm_token_conditionals(tok.double(), init, trans, emit)
    bad = trans.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError):
        hmm_token_conditionals(tok, init, bad, emit)
    with pytest.raises(ValueError):
        sample_hmm(init, trans, emit, n_seq=0, length=3)
    with pytest.raises(ValueError):
        markov_chain_token_conditionals(tok, init, -trans)


def test_long_sequence_is_stable():
    # 3000 tokens: the unnormalised forward/backward messages would under- or overflow float64;
    # the normalised recursion must still equal the Markov chain's closed form
    init, trans, _ = _hmm(k=4, v=4, seed=6)
    eye = torch.eye(4, dtype=torch.float64)
    tok, _ = sample_hmm(init, trans, eye, n_seq=1, length=3000, generator=torch.Generator().manual_seed(7))
    c = hmm_token_conditionals(tok, init, trans, eye)
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c, markov_chain_token_conditionals(tok, init, trans), rtol=0, atol=1e-12)
