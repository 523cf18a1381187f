"""Tests for kexue_core.attention.masks (T-TA no-self-attention mask, causal mask)."""
import pytest
import torch

from kexue_core.attention import causal_mask, no_self_attention_mask, softmax_attention


@pytest.mark.parametrize("n", [2, 3, 7])
def test_no_self_attention_mask_values(n):
    m = no_self_attention_mask(n)
    assert m.dtype == torch.bool and m.shape == (n, n)
    assert not m.diagonal().any()  # False exactly on the diagonal
    assert int(m.sum()) == n * n - n  # True everywhere else
    assert torch.equal(m, ~torch.eye(n, dtype=torch.bool))


def test_causal_mask_values():
    m = causal_mask(4)
    assert m.dtype == torch.bool
    assert torch.equal(m, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))
    assert torch.equal(causal_mask(1), torch.ones(1, 1, dtype=torch.bool))


def test_bad_input():
    for bad in (0, -3, 1):
        with pytest.raises(ValueError):
            no_self_attention_mask(bad)
    with pytest.raises(ValueError):
        causal_mask(0)
    for bad in (2.0, "3", True, None):
        with pytest.raises(TypeError):
            no_self_attention_mask(bad)
        with pytest.raises(TypeError):
            causal_mask(bad)


def test_masked_attention_ignores_own_key_and_value():
    """With the mask, output i is unchanged when k_i, v_i change (the post's sim(q_i, k_i) = 0)."""
    g = torch.Generator().manual_seed(0)
    n, d = 6, 4
    q, k, v = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3))
    mask = no_self_attention_mask(n)
    out, probs = softmax_attention(q, k, v, mask=mask)
    assert torch.all(probs.diagonal() == 0)
    for i in range(n):
        k2, v2 = k.clone(), v.clone()
        k2[i] += 5.0
        v2[i] -= 7.0
        out2, _ = softmax_attention(q, k2, v2, mask=mask)
        assert torch.equal(out2[i], out[i])  # bit-identical: position i never read k_i or v_i
        assert not torch.allclose(out2[[j for j in range(n) if j != i]], out[[j for j in range(n) if j != i]])


def test_matches_sdpa_and_multihead_attention_conventions():
    """SDPA takes True = may attend (same as ours); nn.MultiheadAttention takes True = masked (~mask)."""
    g = torch.Generator().manual_seed(1)
    n, d = 5, 8
    q, k, v = (torch.randn(1, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    mask = no_self_attention_mask(n)
    ours, _ = softmax_attention(q, k, v, mask=mask)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, sdpa, rtol=0, atol=1e-12)
    mha = torch.nn.MultiheadAttention(d, 1, bias=False, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([torch.eye(d)] * 3).double())
        mha.out_proj.weight.copy_(torch.eye(d).double())
    ref, w = mha(q, k, v, attn_mask=~mask)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    assert torch.all(w[0].diagonal() == 0)
