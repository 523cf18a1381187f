"""Small reusable models: an MLP that exposes its hidden states, and (later) tiny transformer blocks.

Notation follows post 8796: ``h^{(1)} = x``, ``z^{(t+1)} = W^{(t)} h^{(t)} + b^{(t)}``,
``h^{(t+1)} = g^{(t)}(z^{(t+1)})`` for ``t = 1..l``, the last ``g`` being the identity.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._validation import check_positive_int, check_tensor

__all__ = ["MLP", "ACTIVATIONS"]

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
    wrong number of activations; ``TypeError`` for non-integer widths.
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
        self.activations = acts + ["identity"]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:]))

    @property
    def num_layers(self) -> int:
        """``l``, the number of linear layers."""
        return len(self.layers)

    def _check_input(self, x):
        check_tensor(x, "x", min_dim=1)
        if x.shape[-1] != self.dims[0]:
            raise ValueError(f"x must have last dimension {self.dims[0]}, got shape {tuple(x.shape)}")

    def forward_with_hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[h^{(1)} = x, h^{(2)}, ..., h^{(l+1)}]``, each ``(..., d_t)``. Raises ``ValueError`` for a
        wrong input width or NaN input, ``TypeError`` for a non-float tensor."""
        self._check_input(x)
        hs = [x]
        for layer, act in zip(self.layers, self.activations):
            hs.append(ACTIVATIONS[act](layer(hs[-1])))  # h^{(t+1)} = g(W h^{(t)} + b)
        return hs

    def hidden(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """``h^{(t)}`` for ``t`` in ``1..l+1`` (1-based as in the post): the input of layer ``t``."""
        if not 1 <= t <= self.num_layers + 1:
            raise ValueError(f"t must be in 1..{self.num_layers + 1}, got {t}")
        self._check_input(x)
        h = x
        for layer, act in list(zip(self.layers, self.activations))[: t - 1]:
            h = ACTIVATIONS[act](layer(h))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[-1]
