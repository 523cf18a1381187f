"""Small reusable models: an MLP that exposes its hidden states, and (later) tiny transformer blocks.

Notation follows post 8796: ``h^{(1)} = x``, ``z^{(t+1)} = W^{(t)} h^{(t)} + b^{(t)}``,
``h^{(t+1)} = g^{(t)}(z^{(t+1)})`` for ``t = 1..l``, the last ``g`` being the identity.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._validation import check_positive_int, check_tensor
from .attention import no_self_attention_mask, softmax_attention

__all__ = [
    "MLP",
    "ACTIVATIONS",
    "TransformerEncoderLayer",
    "TinyTransformer",
    "TTAEncoder",
    "BertLikeEncoder",
    "input_leakage",
    "mlm_mask",
    "token_conditional_log_probs",
]

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}


class MLP(nn.Module):
    r"""Multi-layer perceptron with ``l = len(dims) - 1`` linear layers; the last layer is linear.

    Parameters
    ----------
    dims : ``[d_1, d_2, ..., d_{l+1}]``, layer widths including input and output (each int >= 1,
        at least two entries).
    activation : name of the activation ``g`` after every layer but the last: one of
        ``"tanh"``, ``"relu"``, ``"gelu"``, ``"sigmoid"``, ``"identity"``; or a sequence of
        ``l - 1`` names, one per hidden layer.
    bias : whether the layers have biases ``b^{(t)}``.

    ``forward(x: (B, d_1)) -> (B, d_{l+1})``; :meth:`forward_with_hidden` returns all
    ``h^{(1)} = x, ..., h^{(l+1)}``. Layer ``t`` (1-based, as in the post) is ``self.layers[t-1]``,
    with ``weight`` of shape ``(d_{t+1}, d_t)`` (PyTorch's out × in).

    Raises ``ValueError`` for fewer than two dims, a non-positive width, an unknown activation or a
    wrong number of activations; ``TypeError`` for non-integer widths. The forward pass works under
    ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``, ``functional_call``) and ``torch.compile``;
    there the NaN check on the input is skipped (``vmap`` forbids data-dependent control flow; found
    with public API, see ``kexue_core._validation.values_checkable``), the shape and dtype checks stay.
    Source: https://kexue.fm/archives/8796 (the model of the post).
    """

    def __init__(self, dims: Sequence[int], activation: str | Sequence[str] = "tanh", *, bias: bool = True):
        super().__init__()
        dims = [check_positive_int(d, "dims entry") for d in dims]
        if len(dims) < 2:
            raise ValueError(f"dims needs at least input and output widths, got {dims}")
        n_hidden = len(dims) - 2
        acts = [activation] * n_hidden if isinstance(activation, str) else list(activation)
        if len(acts) != n_hidden:
            raise ValueError(f"need {n_hidden} activations (one per hidden layer), got {len(acts)}")
        for a in acts:
            if a not in ACTIVATIONS:
                raise ValueError(f"unknown activation {a!r}; choose from {sorted(ACTIVATIONS)}")
        self.dims = dims
        self.has_bias = bool(bias)
        self.activations = acts + ["identity"]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:]))

    @property
    def num_layers(self) -> int:
        """``l``, the number of linear layers."""
        return len(self.layers)

    def _check_input(self, x):
        check_tensor(x, "x", min_dim=1)  # the NaN check runs only outside transforms and compile
        if x.shape[-1] != self.dims[0]:
            raise ValueError(f"x must have last dimension {self.dims[0]}, got shape {tuple(x.shape)}")

    def forward_with_hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[h^{(1)} = x, h^{(2)}, ..., h^{(l+1)}]``, each ``(..., d_t)``. Raises ``ValueError`` for a
        wrong input width or NaN input, ``TypeError`` for a non-float tensor."""
        self._check_input(x)
        return self._hidden_states(x)

    def _hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Unvalidated forward pass (no data-dependent checks), so that torch.func transforms
        # (vmap, jacrev, grad) can trace it; callers validate ``x`` first.
        hs = [x]
        for layer, act in zip(self.layers, self.activations):
            hs.append(ACTIVATIONS[act](layer(hs[-1])))  # h^{(t+1)} = g(W^{(t)} h^{(t)} + b^{(t)})
        return hs

    def hidden(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """``h^{(t)}: (..., d_t)`` for ``t`` in ``1..l+1`` (1-based as in the post): the input of layer
        ``t``. Raises ``TypeError`` for a non-integer ``t``, ``ValueError`` for ``t`` out of range, and
        as :meth:`forward_with_hidden` for a bad ``x``."""
        t = check_positive_int(t, "t")
        if not 1 <= t <= self.num_layers + 1:
            raise ValueError(f"t must be in 1..{self.num_layers + 1}, got {t}")
        self._check_input(x)
        h = x
        for layer, act in list(zip(self.layers, self.activations))[: t - 1]:
            h = ACTIVATIONS[act](layer(h))  # h^{(s+1)} = g(W^{(s)} h^{(s)} + b^{(s)}), s < t
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[-1]


# ---------------------------------------------------------------------------------------------------
# Tiny transformer encoders: a BERT-like encoder and T-TA (https://kexue.fm/archives/7661).
# Symbols: B batch, n sequence length, d d_model, h heads, hs = d/h head size, V vocabulary.
# ---------------------------------------------------------------------------------------------------


class TransformerEncoderLayer(nn.Module):
    r"""One post-LN transformer block whose query stream ``h`` attends to a key/value stream ``x``.

    .. math::
        h' = \mathrm{LN}\big(h + \mathrm{MHA}(h W_Q,\; x W_K,\; x W_V;\ M)\,W_O\big),\qquad
        \mathrm{out} = \mathrm{LN}\big(h' + \mathrm{FFN}(h')\big)

    ``x = h`` gives ordinary self-attention (BERT); a fixed ``x`` for every layer gives T-TA.
    The residual and the FFN act on the query stream only, and LayerNorm normalises each position
    separately, so position ``i`` of the output depends on the inputs only through ``h_i`` and the
    rows ``x_j`` with ``M_{ij} = True``. Attention is :func:`kexue_core.attention.softmax_attention`
    (scale ``1/sqrt(hs)``), as in BERT and in the T-TA reference code (joongbo/tta).

    Parameters
    ----------
    d_model : width ``d`` (int >= 1, divisible by ``n_heads``).
    n_heads : number of heads ``h`` (int >= 1).
    ffn_mult : FFN hidden width is ``ffn_mult * d`` (int >= 1); activation GELU.

    ``forward(h: (B, n, d), x: (B, m, d) | None = None, *, mask: (n, m) | (B, n, m) bool | None)``
    returns ``(B, n, d)``. Raises ``ValueError`` for a wrong width, mismatched batch or mask shape,
    NaN inputs, ``TypeError`` for non-float inputs or a non-boolean mask (via ``softmax_attention``).
    Source: Vaswani et al. (2017); Shin et al. (2020), Fig. 2; https://kexue.fm/archives/7661.
    """

    def __init__(self, d_model: int, n_heads: int, *, ffn_mult: int = 4):
        super().__init__()
        d_model = check_positive_int(d_model, "d_model")
        n_heads = check_positive_int(n_heads, "n_heads")
        ffn_mult = check_positive_int(ffn_mult, "ffn_mult")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads = d_model, n_heads
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)
        self.ln_attn = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_mult * d_model), nn.GELU(), nn.Linear(ffn_mult * d_model, d_model))
        self.ln_ffn = nn.LayerNorm(d_model)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.n_heads, -1)).transpose(-3, -2)  # (B, n, d) -> (B, h, n, hs)

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None, *, mask: torch.Tensor | None = None):
        x = h if x is None else x
        for t, name in ((h, "h"), (x, "x")):
            check_tensor(t, name, min_dim=3)
            if t.shape[-1] != self.d_model:
                raise ValueError(f"{name} must have last dimension {self.d_model}, got shape {tuple(t.shape)}")
        if h.shape[:-2] != x.shape[:-2]:
            raise ValueError(f"h and x must share batch dimensions, got {tuple(h.shape)} and {tuple(x.shape)}")
        if mask is not None and (mask.dim() < 2 or mask.shape[-2:] != (h.shape[-2], x.shape[-2])):
            raise ValueError(f"mask must end in ({h.shape[-2]}, {x.shape[-2]}), got {tuple(mask.shape)}")
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(-3)  # (B, n, m) -> (B, 1, n, m), shared by the heads
        q, k, v = self._heads(self.w_q(h)), self._heads(self.w_k(x)), self._heads(self.w_v(x))  # (B, h, n|m, hs)
        out, _ = softmax_attention(q, k, v, mask=mask)  # (B, h, n, hs): sum_j a_ij v_j over allowed j
        h = self.ln_attn(h + self.w_o(out.transpose(-3, -2).flatten(-2)))  # residual on the query stream
        return self.ln_ffn(h + self.ffn(h))  # position-wise FFN, residual on the query stream


class TinyTransformer(nn.Module):
    r"""A small transformer encoder with a language-model head, in the BERT or the T-TA layout.

    With token embeddings ``E``, position embeddings ``P`` and ``X = LN(E + P)`` (the embedding
    layer of BERT), layer ``l = 1..L`` computes ``Q_l = Layer_l(Q_{l-1}, KV_l; M)`` and the logits are
    ``Q_L W_out + b``:

    - ``query_input="tokens"``: ``Q_0 = X`` (BERT); ``"positions"``: ``Q_0 = LN(P)``, no token
      content (T-TA).
    - ``kv_input="previous"``: ``KV_1 = X`` and ``KV_l = Q_{l-1}`` for ``l >= 2`` (BERT);
      ``"embeddings"``: ``KV_l = X`` for every layer (T-TA).

    and ``M = no_self_attention_mask(n)`` if ``no_self_attention`` else no mask. T-TA is
    ``("positions", "embeddings", True)`` (:class:`TTAEncoder`); BERT is ``("tokens", "previous",
    False)`` (:class:`BertLikeEncoder`); ``("positions", "previous", True)`` is the layout the post
    warns about, which leaks token ``i`` into output ``i`` from layer 2 on.

    Parameters
    ----------
    vocab_size : number of output classes ``V`` (int >= 1).
    d_model, n_heads, ffn_mult : as in :class:`TransformerEncoderLayer`.
    n_layers : ``L`` (int >= 1).
    max_len : largest ``n`` (int >= 1); positions are learned embeddings.
    query_input : ``"tokens"`` or ``"positions"``.
    kv_input : ``"previous"`` or ``"embeddings"``.
    no_self_attention : mask the diagonal (requires ``n >= 2``).
    input_vocab_size : size of the input embedding table (default ``V``; ``V + 1`` leaves room for a
        ``[MASK]`` id ``V`` for MLM).

    ``forward(tokens: LongTensor (B, n)) -> logits (B, n, V)``;
    :meth:`embed` gives ``E: (B, n, d)``; :meth:`forward_embeddings` and :meth:`hidden_states` start
    from ``E`` (for Jacobians with respect to the token embeddings).

    Raises ``ValueError`` for bad sizes, unknown layouts, ``n > max_len``, ``n < 2`` with the diagonal
    mask, token ids out of range, wrong shapes or NaN; ``TypeError`` for non-integer tokens.
    Source: https://kexue.fm/archives/7661 (the BERT and T-TA schematics); Shin et al. (2020).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        max_len: int,
        *,
        query_input: str = "tokens",
        kv_input: str = "previous",
        no_self_attention: bool = False,
        input_vocab_size: int | None = None,
        ffn_mult: int = 4,
    ):
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.input_vocab_size = self.vocab_size if input_vocab_size is None else check_positive_int(
            input_vocab_size, "input_vocab_size")
        self.max_len = check_positive_int(max_len, "max_len")
        n_layers = check_positive_int(n_layers, "n_layers")
        if query_input not in ("tokens", "positions"):
            raise ValueError(f"query_input must be 'tokens' or 'positions', got {query_input!r}")
        if kv_input not in ("previous", "embeddings"):
            raise ValueError(f"kv_input must be 'previous' or 'embeddings', got {kv_input!r}")
        self.query_input, self.kv_input, self.no_self_attention = query_input, kv_input, bool(no_self_attention)
        self.tok = nn.Embedding(self.input_vocab_size, d_model)  # E
        self.pos = nn.Embedding(self.max_len, d_model)  # P
        self.ln_emb = nn.LayerNorm(d_model)  # X = LN(E + P), per position
        self.ln_query = nn.LayerNorm(d_model) if query_input == "positions" else None  # Q_0 = LN(P)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, n_heads, ffn_mult=ffn_mult) for _ in range(n_layers))
        self.head = nn.Linear(d_model, self.vocab_size)

    @property
    def d_model(self) -> int:
        return self.tok.embedding_dim

    def attention_mask(self, n: int) -> torch.Tensor | None:
        """The boolean ``(n, n)`` mask used by every layer (``None`` = attend everywhere)."""
        return no_self_attention_mask(n, device=self.pos.weight.device) if self.no_self_attention else None

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``E = tok[tokens]``: ``(B, n) -> (B, n, d)``. Raises ``TypeError`` for
        non-integer tokens, ``ValueError`` for a wrong rank or an id outside ``[0, input_vocab_size)``."""
        if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.dtype == torch.bool:
            raise TypeError("tokens must be an integer tensor")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, n), got {tuple(tokens.shape)}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.input_vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.input_vocab_size})")
        return self.tok(tokens)

    def hidden_states(self, e: torch.Tensor) -> list[torch.Tensor]:
        """``[Q_0, Q_1, ..., Q_L]``, each ``(B, n, d)``, from token embeddings ``e: (B, n, d)``."""
        check_tensor(e, "e", min_dim=3)
        n = e.shape[-2]
        if e.dim() != 3 or e.shape[-1] != self.d_model:
            raise ValueError(f"e must have shape (B, n, {self.d_model}), got {tuple(e.shape)}")
        if not 1 <= n <= self.max_len:
            raise ValueError(f"sequence length must be in 1..{self.max_len}, got {n}")
        p = self.pos.weight[:n]  # (n, d)
        x = self.ln_emb(e + p)  # X = LN(E + P): (B, n, d)
        q = x if self.query_input == "tokens" else self.ln_query(p).expand_as(x)  # Q_0
        mask = self.attention_mask(n)
        hs = [q]
        for layer in self.layers:
            kv = x if (self.kv_input == "embeddings" or len(hs) == 1) else hs[-1]
            hs.append(layer(hs[-1], kv, mask=mask))  # Q_l = Layer_l(Q_{l-1}, KV_l; M)
        return hs

    def forward_embeddings(self, e: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n, V)`` from token embeddings ``e: (B, n, d)``."""
        return self.head(self.hidden_states(e)[-1])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_embeddings(self.embed(tokens))


class TTAEncoder(TinyTransformer):
    r"""T-TA (Transformer-based Text Autoencoder): ``Q_0 = LN(P)``, every layer attends to the same
    ``X = LN(E + P)``, the diagonal is masked. Output ``i`` then never depends on token ``i``, so
    ``softmax(logits[:, i])`` models :math:`p(x_i \mid x_{\setminus i})` for all ``i`` in one pass.
    Arguments as :class:`TinyTransformer`. Source: https://kexue.fm/archives/7661; Shin et al. (2020).
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int, *,
                 ffn_mult: int = 4):
        super().__init__(vocab_size, d_model, n_layers, n_heads, max_len, query_input="positions",
                         kv_input="embeddings", no_self_attention=True, ffn_mult=ffn_mult)


class BertLikeEncoder(TinyTransformer):
    r"""A BERT-like encoder: ``Q_0 = X = LN(E + P)``, ``Q_l = Layer_l(Q_{l-1}, Q_{l-1})``.
    ``no_self_attention=True`` adds the T-TA diagonal mask (which does *not* stop the leak here).
    Use ``input_vocab_size = vocab_size + 1`` for a ``[MASK]`` id. Arguments as :class:`TinyTransformer`.
    Source: Devlin et al. (2019); https://kexue.fm/archives/7661 (the BERT schematic).
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int, *,
                 no_self_attention: bool = False, input_vocab_size: int | None = None, ffn_mult: int = 4):
        super().__init__(vocab_size, d_model, n_layers, n_heads, max_len, query_input="tokens",
                         kv_input="previous", no_self_attention=no_self_attention,
                         input_vocab_size=input_vocab_size, ffn_mult=ffn_mult)


def input_leakage(model: TinyTransformer, tokens: torch.Tensor, *, layer: int | None = None) -> torch.Tensor:
    r"""Leakage matrix :math:`L_{ij} = \lVert \partial\, \mathrm{out}_i / \partial e_j \rVert_F`.

    ``out`` is the logits (``layer=None``) or the query stream ``Q_layer`` (``0..L``); ``e_j`` is the
    token embedding of position ``j``. ``L_{ii} = 0`` for every ``i`` means output ``i`` cannot see
    token ``i`` (to first order everywhere, hence exactly, since the map is smooth).

    tokens : LongTensor (n,). Returns ``(n, n)`` in the model's dtype, computed with
    ``torch.func.jacrev``. Raises ``ValueError`` for a layer out of range or bad tokens.
    Source: the no-leak requirement of https://kexue.fm/archives/7661.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1:
        raise ValueError("tokens must be a 1-D LongTensor (n,)")
    if layer is not None and not 0 <= layer <= len(model.layers):
        raise ValueError(f"layer must be in 0..{len(model.layers)}, got {layer}")
    e = model.embed(tokens[None]).detach()  # (1, n, d)

    def out(e_):
        return model.forward_embeddings(e_) if layer is None else model.hidden_states(e_)[layer]

    jac = torch.func.jacrev(out)(e)  # (1, n, D, 1, n, d)
    n = tokens.shape[0]
    jac = jac.reshape(n, -1, n, e.shape[-1])  # (n, D, n, d): d out_i / d e_j
    return jac.detach().pow(2).sum(dim=(1, 3)).sqrt()  # (n, n)


def mlm_mask(
    tokens: torch.Tensor, *, mask_id: int, vocab_size: int, prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""BERT's masking: choose each position with probability ``prob``; of the chosen, 80 % become
    ``mask_id``, 10 % a uniformly random token in ``[0, vocab_size)``, 10 % stay.

    tokens : LongTensor (B, n). Returns ``(inputs, targets)``, both (B, n): ``targets`` holds the
    original id at chosen positions and ``-100`` (``cross_entropy``'s ignore index) elsewhere.
    Raises ``ValueError`` for ``prob`` outside ``(0, 1]`` or a ``mask_id`` inside the vocabulary,
    ``TypeError`` for non-integer tokens. Source: Devlin et al. (2019), Sec. 3.1.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point():
        raise TypeError("tokens must be an integer tensor")
    if not 0 < prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {prob}")
    if 0 <= mask_id < vocab_size:
        raise ValueError("mask_id must not be a vocabulary id")
    u = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    chosen = u < prob
    r = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    rand_tok = torch.randint(0, vocab_size, tokens.shape, generator=generator, device=tokens.device)
    inputs = torch.where(chosen & (r < 0.8), torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(chosen & (r >= 0.8) & (r < 0.9), rand_tok, inputs)
    targets = torch.where(chosen, tokens, torch.full_like(tokens, -100))
    return inputs, targets


def token_conditional_log_probs(
    model: TinyTransformer, tokens: torch.Tensor, *, mode: str, mask_id: int | None = None
) -> torch.Tensor:
    r""":math:`\log p(x_i \mid x_{\setminus i})` for every position, in nats: ``(B, n)``.

    ``mode="tta"``: one forward pass of the ``B`` sequences (the model must never let output ``i`` see
    token ``i``, e.g. :class:`TTAEncoder`). ``mode="mlm"``: ``n`` masked copies of each sequence, copy
    ``i`` with ``x_i`` replaced by ``mask_id``, i.e. ``B n`` sequences through the model (``n`` times
    the work). Summing over the last axis gives the pseudo-log-likelihood.

    Raises ``ValueError`` for an unknown mode or a missing ``mask_id`` with ``mode="mlm"``.
    Source: https://kexue.fm/archives/7661 (eq. 2); Salazar et al. (2020) for the PLL.
    """
    if mode == "tta":
        logp = torch.log_softmax(model(tokens), dim=-1)  # (B, n, V)
        return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if mode != "mlm":
        raise ValueError(f"mode must be 'tta' or 'mlm', got {mode!r}")
    if mask_id is None:
        raise ValueError("mode='mlm' needs mask_id")
    b, n = tokens.shape
    eye = torch.eye(n, dtype=torch.bool, device=tokens.device)
    copies = torch.where(eye, mask_id, tokens[:, None, :])  # (B, n copies, n): copy i masks x_i
    logits = model(copies.reshape(b * n, n)).reshape(b, n, n, -1)  # (B, copy, position, V)
    diag = logits.diagonal(dim1=1, dim2=2).transpose(-1, -2)  # (B, n, V): copy i at position i
    return torch.log_softmax(diag, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
