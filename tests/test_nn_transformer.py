"""Tests for the tiny transformers of kexue_core.nn (T-TA and BERT-like) and the MLM helpers."""
import pytest
import torch

import kexue_core.nn as knn
from kexue_core.attention import softmax_attention
from kexue_core.nn import (
    BertLikeEncoder,
    TinyTransformer,
    TransformerEncoderLayer,
    TTAEncoder,
    input_leakage,
    mlm_mask,
    token_conditional_log_probs,
)

torch.set_num_threads(1)
V, D, H, N = 11, 16, 2, 7


def _tokens(seed=0, n=N, b=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if b is None else (b, n)
    return torch.randint(0, V, shape, generator=g)


def _model(cls, layers=3, **kw):
    torch.manual_seed(0)
    return cls(V, D, layers, H, 10, ffn_mult=2, **kw).double()


def test_shapes():
    m = _model(TTAEncoder)
    tok = _tokens(b=3)
    assert m(tok).shape == (3, N, V)
    hs = m.hidden_states(m.embed(tok))
    assert len(hs) == 4 and all(h.shape == (3, N, D) for h in hs)
    layer = TransformerEncoderLayer(D, H).double()
    assert layer(torch.randn(2, 5, D, dtype=torch.float64), torch.randn(2, 4, D, dtype=torch.float64)).shape == (2, 5, D)


def test_tta_no_leak_any_depth():
    """d out_i / d e_i == 0 exactly (float64) for logits and every layer; off-diagonal nonzero."""
    m = _model(TTAEncoder)
    tok = _tokens()
    for layer in (1, 2, 3, None):
        L = input_leakage(m, tok, layer=layer)
        assert torch.all(L.diagonal() == 0)
        off = L[~torch.eye(N, dtype=torch.bool)]
        assert off.min() > 1e-8


@pytest.mark.parametrize("diag", [False, True])
def test_bert_like_leaks_from_layer_one(diag):
    m = _model(BertLikeEncoder, no_self_attention=diag)
    for layer in (1, 3, None):
        L = input_leakage(m, _tokens(), layer=layer)
        assert L.diagonal().min() > 1e-3


def test_reusing_outputs_as_kv_leaks_from_layer_two():
    """The post's warning: position-only queries + diagonal mask, but K = V = previous outputs."""
    m = _model(TinyTransformer, query_input="positions", kv_input="previous", no_self_attention=True)
    tok = _tokens()
    assert torch.all(input_leakage(m, tok, layer=1).diagonal() == 0)
    assert input_leakage(m, tok, layer=2).diagonal().min() > 1e-8
    assert input_leakage(m, tok).diagonal().min() > 1e-8


def test_changing_the_mask_diagonal_breaks_tta(monkeypatch):
    """If the T-TA mask allowed the diagonal, the no-leak property must fail (the test has teeth)."""
    monkeypatch.setattr(knn, "no_self_attention_mask", lambda n, device=None: torch.ones(n, n, dtype=torch.bool))
    m = _model(TTAEncoder)
    assert input_leakage(m, _tokens(), layer=1).diagonal().min() > 1e-6


def test_tta_output_unchanged_by_own_token():
    """Changing token i changes every logit row except row i (bit-identical)."""
    m = _model(TTAEncoder)
    tok = _tokens(b=1)
    base = m(tok)
    for i in range(N):
        t2 = tok.clone()
        t2[0, i] = (t2[0, i] + 1) % V
        out = m(t2)
        assert torch.equal(out[0, i], base[0, i])
        assert not torch.allclose(out[0, (i + 1) % N], base[0, (i + 1) % N])


def test_layer_matches_torch_transformer_encoder_layer():
    """Our post-LN block with x = h equals torch.nn.TransformerEncoderLayer (norm_first=False, gelu)."""
    torch.manual_seed(1)
    ours = TransformerEncoderLayer(D, H, ffn_mult=2).double()
    ref = torch.nn.TransformerEncoderLayer(D, H, dim_feedforward=2 * D, dropout=0.0, activation="gelu",
                                           batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        ref.self_attn.out_proj.weight.copy_(ours.w_o.weight)
        ref.self_attn.out_proj.bias.copy_(ours.w_o.bias)
        ref.linear1.load_state_dict(ours.ffn[0].state_dict())
        ref.linear2.load_state_dict(ours.ffn[2].state_dict())
        ref.norm1.load_state_dict(ours.ln_attn.state_dict())
        ref.norm2.load_state_dict(ours.ln_ffn.state_dict())
    ref.eval()
    x = torch.randn(2, N, D, dtype=torch.float64)
    mask = ~torch.eye(N, dtype=torch.bool)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(ours(x, mask=mask), ref(x, src_mask=~mask), rtol=0, atol=1e-12)


def test_bad_input():
    m = _model(TTAEncoder)
    with pytest.raises(TypeError):
        m(torch.rand(2, N))
    with pytest.raises(ValueError):
        m(torch.tensor([[0, V]]))  # id out of range
    with pytest.raises(ValueError):
        m(torch.tensor([[0, -1]]))
    with pytest.raises(ValueError):
        m(_tokens(n=11, b=1))  # longer than max_len = 10
    with pytest.raises(ValueError):
        m(_tokens(n=1, b=1))  # n = 1: the only key is masked
    with pytest.raises(ValueError):
        m(_tokens())  # missing batch dimension
    e = m.embed(_tokens(b=1))
    with pytest.raises(ValueError):
        m.forward_embeddings(torch.full_like(e, float("nan")))
    with pytest.raises(ValueError):
        m.forward_embeddings(e[..., :-1])
    layer = TransformerEncoderLayer(D, H).double()
    x = torch.randn(2, 5, D, dtype=torch.float64)
    with pytest.raises(ValueError):
        layer(x, torch.randn(3, 5, D, dtype=torch.float64))
    with pytest.raises(ValueError):
        layer(x, mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(TypeError):
        layer(x, mask=torch.ones(5, 5))
    with pytest.raises(ValueError):
        TransformerEncoderLayer(10, 3)
    with pytest.raises(ValueError):
        TinyTransformer(V, D, 1, H, 8, query_input="both")
    with pytest.raises(ValueError):
        TinyTransformer(V, D, 1, H, 8, kv_input="all")
    with pytest.raises(ValueError):
        TinyTransformer(V, D, 0, H, 8)
    with pytest.raises(ValueError):
        input_leakage(m, _tokens(), layer=4)


def test_mlm_mask_80_10_10():
    g = torch.Generator().manual_seed(0)
    tok = torch.randint(0, V, (400, 50), generator=g)
    inp, tgt = mlm_mask(tok, mask_id=V, vocab_size=V, generator=g)
    chosen = tgt != -100
    assert torch.equal(tgt[chosen], tok[chosen]) and torch.equal(inp[~chosen], tok[~chosen])
    frac = chosen.float().mean().item()
    assert abs(frac - 0.15) < 0.01  # 20000 draws: sd 0.0025
    masked = (inp[chosen] == V).float().mean().item()
    assert abs(masked - 0.8) < 0.03  # ~3000 chosen: sd 0.007
    kept = (inp[chosen] == tok[chosen]).float().mean().item()
    assert abs(kept - (0.1 + 0.1 / V)) < 0.03  # 10 % kept + random draws that hit the same id
    with pytest.raises(ValueError):
        mlm_mask(tok, mask_id=3, vocab_size=V)
    with pytest.raises(ValueError):
        mlm_mask(tok, mask_id=V, vocab_size=V, prob=0.0)
    with pytest.raises(TypeError):
        mlm_mask(tok.double(), mask_id=V, vocab_size=V)


def test_token_conditional_log_probs():
    tok = _tokens(b=2)
    tta = _model(TTAEncoder, layers=1)
    lp = token_conditional_log_probs(tta, tok, mode="tta")
    ref = torch.log_softmax(tta(tok), -1).gather(-1, tok[..., None])[..., 0]
    torch.testing.assert_close(lp, ref, rtol=0, atol=0)
    bert = _model(BertLikeEncoder, layers=1, input_vocab_size=V + 1)
    lp = token_conditional_log_probs(bert, tok, mode="mlm", mask_id=V)
    assert lp.shape == (2, N) and torch.all(lp < 0)
    i = 3
    masked = tok.clone()
    masked[:, i] = V
    ref = torch.log_softmax(bert(masked)[:, i], -1).gather(-1, tok[:, i:i + 1])[:, 0]
    torch.testing.assert_close(lp[:, i], ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        token_conditional_log_probs(bert, tok, mode="mlm")
    with pytest.raises(ValueError):
        token_conditional_log_probs(bert, tok, mode="gpt")


def test_layer_uses_softmax_attention_mask_convention():
    """Bypass check: the block's attention is softmax_attention with True = may attend."""
    layer = TransformerEncoderLayer(D, 1).double()
    x = torch.randn(1, 4, D, dtype=torch.float64)
    mask = torch.tensor([[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]], dtype=torch.bool)
    q, k, v = layer.w_q(x), layer.w_k(x), layer.w_v(x)
    att, _ = softmax_attention(q, k, v, mask=mask)
    h = layer.ln_attn(x + layer.w_o(att))
    torch.testing.assert_close(layer(x, mask=mask), layer.ln_ffn(h + layer.ffn(h)), rtol=0, atol=1e-12)
