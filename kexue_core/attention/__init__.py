"""Attention: softmax, entropy-invariant, linear, Performer and talking-heads attention, and masks.

Every function takes ``(..., n, d)`` tensors with batch and head dimensions leading; boolean masks are
``(..., n, m)`` with ``True`` = may attend. The submodules group the methods by family; everything
public is re-exported here, so ``from kexue_core.attention import softmax_attention`` works.
"""
from .softmax import (
    attention_entropy,
    entropy_invariant_attention,
    entropy_invariant_scale,
    mean_field_entropy_lower_bound,
    softmax_attention,
)
from .rotary import rotary_embedding
from .performer import (
    chi_quantile_norms,
    draw_random_features,
    performer_attention,
    positive_random_features,
    random_feature_relative_variance,
    softmax_kernel_estimate,
    trigonometric_random_features,
)
from .heads import multi_head_attention, talking_heads_attention, talking_heads_logits
from .masks import causal_mask, no_self_attention_mask
from .linear import (
    causal_linear_attention,
    causal_linear_attention_recurrent,
    cosine_feature_map,
    efficient_attention,
    elu_feature_map,
    general_attention,
    linear_attention,
    linformer_attention,
    resolve_feature_maps,
    softmax_feature_map,
)

__all__ = [
    "softmax_attention",
    "attention_entropy",
    "entropy_invariant_scale",
    "entropy_invariant_attention",
    "mean_field_entropy_lower_bound",
    "rotary_embedding",
    "draw_random_features",
    "chi_quantile_norms",
    "positive_random_features",
    "trigonometric_random_features",
    "softmax_kernel_estimate",
    "random_feature_relative_variance",
    "performer_attention",
    "multi_head_attention",
    "talking_heads_logits",
    "talking_heads_attention",
    "no_self_attention_mask",
    "causal_mask",
    "elu_feature_map",
    "softmax_feature_map",
    "cosine_feature_map",
    "resolve_feature_maps",
    "general_attention",
    "linear_attention",
    "causal_linear_attention",
    "causal_linear_attention_recurrent",
    "efficient_attention",
    "linformer_attention",
]
