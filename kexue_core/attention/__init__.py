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

__all__ = [
    "softmax_attention",
    "attention_entropy",
    "entropy_invariant_scale",
    "entropy_invariant_attention",
    "mean_field_entropy_lower_bound",
]
