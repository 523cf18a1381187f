"""Boolean attention masks, ``True`` = may attend (PyTorch's ``scaled_dot_product_attention`` convention).

A mask of shape ``(n, m)`` broadcasts against the ``(..., n, m)`` logits of
:func:`kexue_core.attention.softmax_attention`. Note that ``torch.nn.MultiheadAttention``'s boolean
``attn_mask`` uses the *opposite* convention (``True`` = masked out): pass ``~mask`` there.
"""
from __future__ import annotations

import torch

from .._validation import check_positive_int

__all__ = ["no_self_attention_mask", "causal_mask"]


def no_self_attention_mask(n: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The T-TA ("self-blind") mask: every query may attend to every key except its own position.

    .. math:: M_{ij} = [\,i \neq j\,],\qquad i, j = 1..n

    With it, the attention output at position ``i`` is
    :math:`\sum_{j\ne i} a_{ij} v_j`, so ``k_i`` and ``v_i`` drop out ("sim(q_i, k_i) = 0" in the post).

    Parameters
    ----------
    n : sequence length (int >= 2).
    device : where to allocate the mask.

    Returns
    -------
    BoolTensor (n, n), ``False`` exactly on the diagonal.

    Raises
    ------
    TypeError
        ``n`` not an integer.
    ValueError
        ``n < 2``: with a single position its only key is masked, the softmax row is empty
        (all ``-inf``, NaN), and :math:`p(x_1 \mid \varnothing)` needs no attention at all.

    Source: https://kexue.fm/archives/7661 (the T-TA attention mask figure); Shin et al. (2020).
    """
    n = check_positive_int(n, "n")
    if n < 2:
        raise ValueError("no_self_attention_mask needs n >= 2: with n = 1 the only key is masked")
    return ~torch.eye(n, dtype=torch.bool, device=device)


def causal_mask(n: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The causal (left-to-right language model) mask :math:`M_{ij} = [\,j \le i\,]`.

    n : sequence length (int >= 1). Returns BoolTensor (n, n), lower triangular incl. the diagonal.
    Raises ``TypeError`` for a non-integer ``n``, ``ValueError`` for ``n < 1``.
    Source: Vaswani et al. (2017); the GPT baseline of https://kexue.fm/archives/7661.
    """
    n = check_positive_int(n, "n")
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()
