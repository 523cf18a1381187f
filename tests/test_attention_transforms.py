"""Every attention function and MLP under torch.func (vmap, grad) and torch.compile (issue 9, item 5).

Shapes and dtypes are validated always; values (NaN, sign, mask rows) only outside transforms, found
with public API (``torch.compiler.is_compiling``, ``torch.func.debug_unwrap``).
"""
import math

import pytest
import torch

from kexue_core.attention import (
    attention_entropy,
    causal_linear_attention,
    causal_linear_attention_recurrent,
    cosine_feature_map,
    draw_random_features,
    efficient_attention,
    elu_feature_map,
    entropy_invariant_attention,
    general_attention,
    linear_attention,
    linformer_attention,
    mean_field_entropy_lower_bound,
    multi_head_attention,
    performer_attention,
    positive_random_features,
    random_feature_relative_variance,
    rotary_embedding,
    softmax_attention,
    softmax_feature_map,
    softmax_kernel_estimate,
    talking_heads_attention,
    talking_heads_logits,
    trigonometric_random_features,
)
from kexue_core.nn import MLP

H, N, D = 2, 6, 4
G = torch.Generator().manual_seed(0)
W = draw_random_features(16, D, generator=G, dtype=torch.float64)
PRE = torch.randn(H, H, generator=G, dtype=torch.float64)
POST = torch.randn(H, H, generator=G, dtype=torch.float64)
WQ, WK, WV, WO = (torch.randn(D, D, generator=G, dtype=torch.float64) for _ in range(4))
EF = torch.rand(3, N, generator=G, dtype=torch.float64)
KEEP = torch.tensor([True, True, False, True, True, False])
MASK = torch.ones(N, N, dtype=torch.bool).tril()


def _cast(t, dtype):
    return t.to(dtype)


# name -> f(q, k, v) with q, k, v of shape (H, N, D); one output tensor
CASES = {
    "softmax_attention": lambda q, k, v: softmax_attention(q, k, v, mask=MASK)[0],
    "softmax_attention_sdpa": lambda q, k, v: softmax_attention(q, k, v, mask=MASK, need_weights=False)[0],
    "attention_entropy": lambda q, k, v: attention_entropy(torch.softmax(q @ k.mT, -1)),
    "entropy_invariant_attention": lambda q, k, v: entropy_invariant_attention(q, k, v, causal=True, key_padding_mask=KEEP.clone().fill_(True))[0],
    "entropy_invariant_attention_padded": lambda q, k, v: entropy_invariant_attention(q, k, v, key_padding_mask=KEEP)[0],
    "mean_field_entropy_lower_bound": lambda q, k, v: mean_field_entropy_lower_bound(q @ k.mT, 0.5),
    "rotary_embedding": lambda q, k, v: rotary_embedding(q),
    "positive_random_features": lambda q, k, v: positive_random_features(q, _cast(W, q.dtype), stabilize="all"),
    "trigonometric_random_features": lambda q, k, v: trigonometric_random_features(q, _cast(W, q.dtype)),
    "softmax_kernel_estimate": lambda q, k, v: softmax_kernel_estimate(q, k, _cast(W, q.dtype)),
    "random_feature_relative_variance": lambda q, k, v: random_feature_relative_variance(0.1 * q, 0.1 * k, 4),
    "performer_attention": lambda q, k, v: performer_attention(q, k, v, _cast(W, q.dtype), key_padding_mask=KEEP),
    "performer_attention_causal": lambda q, k, v: performer_attention(q, k, v, _cast(W, q.dtype), causal=True),
    "multi_head_attention": lambda q, k, v: multi_head_attention(
        q, k, *(_cast(w, q.dtype) for w in (WQ, WK, WV, WO)), num_heads=2)[0],
    "talking_heads_logits": lambda q, k, v: talking_heads_logits(q, k, _cast(PRE, q.dtype)),
    "talking_heads_attention": lambda q, k, v: talking_heads_attention(q, k, v, _cast(PRE, q.dtype), _cast(POST, q.dtype), mask=MASK)[0],
    "elu_feature_map": lambda q, k, v: elu_feature_map(q),
    "softmax_feature_map": lambda q, k, v: softmax_feature_map(q, dim=-2),
    "cosine_feature_map": lambda q, k, v: cosine_feature_map(q),
    "general_attention": lambda q, k, v: general_attention(q, k, v, lambda a, b: torch.exp(a @ b.mT), causal=True),
    "linear_attention": lambda q, k, v: linear_attention(q, k, v, key_padding_mask=KEEP),
    "linear_attention_softmax": lambda q, k, v: linear_attention(q, k, v, feature_map="softmax", key_padding_mask=KEEP),
    "causal_linear_attention": lambda q, k, v: causal_linear_attention(q, k, v, chunk_size=4, key_padding_mask=KEEP),
    "causal_linear_attention_recurrent": lambda q, k, v: causal_linear_attention_recurrent(q, k, v),
    "efficient_attention": lambda q, k, v: efficient_attention(q, k, v),
    "linformer_attention": lambda q, k, v: linformer_attention(q, k, v, _cast(EF, q.dtype), _cast(EF, q.dtype)),
}


def _batch(dtype=torch.float64, b=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, H, N, D, generator=g, dtype=dtype) for _ in range(3))


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_equals_a_loop(name):
    f = CASES[name]
    q, k, v = _batch()
    got = torch.func.vmap(f)(q, k, v)
    want = torch.stack([f(q[i], k[i], v[i]) for i in range(q.shape[0])])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_grad_equals_autograd(name):
    f = CASES[name]
    q, k, v = (t[0] for t in _batch(seed=2))
    got = torch.func.grad(lambda qq: f(qq, k, v).sum())(q)
    qr = q.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(f(qr, k, v).sum(), qr)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_value_checks_only_outside_transforms():
    q, k, v = _batch()
    q[1, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="q contains NaN"):
        linear_attention(q, k, v)
    out = torch.func.vmap(linear_attention)(q, k, v)  # no data-dependent check inside vmap: NaN flows
    assert out[1].isnan().any() and not out[0].isnan().any()
    with pytest.raises(ValueError, match="last dimension"):  # shape checks still apply inside vmap
        torch.func.vmap(linear_attention)(q, k[..., :3], v)


def test_mlp_under_vmap_grad_and_compile_uses_public_api():
    import inspect

    import kexue_core.nn as nn_module

    assert "_functorch" not in inspect.getsource(nn_module)  # public API only (issue 9, item 5)
    torch.manual_seed(0)
    m = MLP([D, 5, 2]).double()
    x = torch.randn(3, D, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(m)(x), m(x), rtol=1e-14, atol=1e-14)
    g = torch.func.grad(lambda xx: m(xx).sum())(x[0])
    xr = x[0].clone().requires_grad_(True)
    torch.testing.assert_close(g, torch.autograd.grad(m(xr).sum(), xr)[0], rtol=1e-14, atol=1e-14)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), m(x), rtol=1e-12, atol=1e-12)


def test_compile_every_function_aot_eager():
    """torch.compile with the cheap "aot_eager" backend (Dynamo + AOTAutograd, no code generation),
    fullgraph=True so any graph break fails: checks tracing, functionalisation and the backward."""
    torch._dynamo.reset()
    q, k, v = (t[0].float().requires_grad_(True) for t in _batch(seed=3))
    for name, f in sorted(CASES.items()):
        compiled = torch.compile(f, backend="aot_eager", fullgraph=True, dynamic=False)
        got = compiled(q, k, v)
        want = f(q, k, v)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=name)
        (g_got,) = torch.autograd.grad(got.sum(), q)
        (g_want,) = torch.autograd.grad(want.sum(), q)
        torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5, msg=name)


def test_compile_inductor_causal_linear_attention():
    """One real (inductor) compile of the function the benchmark targets; small shapes, forward only,
    one compile worker (a worker pool costs more than it saves on 2 shared cores): ~25-70 s here."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, 2, 128, 16, generator=g) for _ in range(3))
    with inductor_config.patch(compile_threads=1):
        compiled = torch.compile(causal_linear_attention, fullgraph=True, dynamic=False)
        got = compiled(q, k, v)
    torch.testing.assert_close(got, causal_linear_attention(q, k, v), rtol=1e-5, atol=1e-5)
