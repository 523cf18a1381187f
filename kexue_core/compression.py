"""Model compression by module replacement (BERT-of-Theseus).

Source: Su Jianlin, "BERT-of-Theseus：基于模块替换的模型压缩方法", https://kexue.fm/archives/7575 (2020-07-17),
and Xu et al., "BERT-of-Theseus: Compressing BERT by Progressive Module Replacing", arXiv:2002.02925.

The large fine-tuned model (the *predecessor*) is cut into ``n`` modules of consecutive layers; the small
model (the *successor*) has ``n`` layers. In training, module ``l`` is, at random, either the frozen
predecessor module or the trainable successor layer (the post's eq.)::

    eps_l ~ Bernoulli(1 - replace_rate),   x_l = eps_l * F_p^l(x_{l-1}) + (1 - eps_l) * F_s^l(x_{l-1})

so a gate ``eps_l = 1`` keeps the predecessor module and ``eps_l = 0`` uses the successor layer. Only the
downstream task loss is used. At inference the successor alone is used.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import torch
from torch import nn

from ._validation import check_tensor

__all__ = ["theseus_mix", "LayerGroup", "split_into_modules", "TheseusEncoder", "linear_replace_rate"]


def _check_rate(rate, name: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(rate).__name__}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {rate}")
    return float(rate)


def theseus_mix(x_pred: torch.Tensor, x_succ: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """The post's switch ``gate * x_pred + (1 - gate) * x_succ`` for binary gates.

    Parameters
    ----------
    x_pred, x_succ : Tensor, same shape ``(batch, ...)``, floating
        Outputs of the predecessor module and of the successor layer.
    gate : Tensor
        Values in ``{0, 1}`` (bool or any dtype), broadcastable to ``x_pred``: a 0-d tensor for one gate per
        batch, or shape ``(batch, 1, ..., 1)`` for one gate per example.

    Returns
    -------
    Tensor, shape of ``x_pred``: ``x_pred`` where the gate is 1, ``x_succ`` where it is 0. Computed with
    ``torch.where`` so that it is exact (no ``0 * inf``) and the switched-off branch receives zero gradient,
    as the product form gives.

    Raises
    ------
    TypeError
        If an argument is not a tensor or ``x_pred``/``x_succ`` are not floating.
    ValueError
        If shapes differ, ``gate`` does not broadcast, or ``gate`` holds a value other than 0 or 1.
    """
    check_tensor(x_pred, "x_pred", values=False)
    check_tensor(x_succ, "x_succ", values=False)
    if not isinstance(gate, torch.Tensor):
        raise TypeError(f"gate must be a torch.Tensor, got {type(gate).__name__}")
    if x_pred.shape != x_succ.shape:
        raise ValueError(f"x_pred and x_succ must have the same shape, got {tuple(x_pred.shape)} and {tuple(x_succ.shape)}")
    try:
        torch.broadcast_shapes(gate.shape, x_pred.shape)
    except RuntimeError as err:
        raise ValueError(f"gate of shape {tuple(gate.shape)} does not broadcast to {tuple(x_pred.shape)}") from err
    if gate.dtype != torch.bool:
        if not bool(((gate == 0) | (gate == 1)).all()):
            raise ValueError("gate must hold only 0 and 1 (binary Bernoulli gates)")
        gate = gate == 1
    return torch.where(gate, x_pred, x_succ)


class LayerGroup(nn.Module):
    """Consecutive layers run as one module: ``x -> layer_k(... layer_1(x, *args, **kwargs) ...)``.

    Every layer gets the same extra arguments (e.g. an attention mask). Layers that return a tuple (as
    ``transformers``' ``BertLayer`` does) have their first element taken as the hidden states.

    Parameters
    ----------
    layers : sequence of nn.Module
        At least one layer; each maps a tensor ``(batch, ..., d)`` to the same shape.
    """

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one module")
        for i, layer in enumerate(layers):
            if not isinstance(layer, nn.Module):
                raise TypeError(f"layers[{i}] must be an nn.Module, got {type(layer).__name__}")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, *args, **kwargs)
            if isinstance(x, tuple):
                x = x[0]
        return x


def split_into_modules(layers: Sequence[nn.Module], n_modules: int) -> nn.ModuleList:
    """Cut ``layers`` into ``n_modules`` groups of ``len(layers) // n_modules`` consecutive layers.

    The post's example: 6 predecessor layers, 3 successor layers -> 3 modules of 2 layers; the author's
    code: 12 layers into 3 modules of 4. The layers are shared, not copied.

    Returns
    -------
    nn.ModuleList of :class:`LayerGroup`, length ``n_modules``.

    Raises
    ------
    TypeError
        If ``n_modules`` is not an integer.
    ValueError
        If ``n_modules < 1`` or it does not divide ``len(layers)``.
    """
    if isinstance(n_modules, bool) or not isinstance(n_modules, numbers.Integral):
        raise TypeError(f"n_modules must be an integer, got {type(n_modules).__name__}")
    layers = list(layers)
    if n_modules < 1:
        raise ValueError(f"n_modules must be >= 1, got {n_modules}")
    if len(layers) % n_modules:
        raise ValueError(f"n_modules={n_modules} must divide the number of layers ({len(layers)})")
    k = len(layers) // n_modules
    return nn.ModuleList(LayerGroup(layers[i * k:(i + 1) * k]) for i in range(n_modules))


def linear_replace_rate(step: int, base_rate: float, slope: float) -> float:
    """Curriculum replacement rate ``min(1, base_rate + slope * step)`` (Xu et al., sec. 3.3).

    The probability that a module is replaced by its successor layer grows linearly with the training step
    until every module is the successor. ``slope = 0`` gives the post's constant rate (0.5).

    Raises
    ------
    TypeError
        If ``step`` is not an integer.
    ValueError
        If ``step < 0``, ``base_rate`` is outside ``[0, 1]`` or ``slope < 0``.
    """
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an integer, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    base_rate = _check_rate(base_rate, "base_rate")
    if isinstance(slope, bool) or not isinstance(slope, numbers.Real) or not slope >= 0:
        raise ValueError(f"slope must be a non-negative real number, got {slope!r}")
    return min(1.0, base_rate + float(slope) * step)


class TheseusEncoder(nn.Module):
    """A stack of ``n`` switchable modules: frozen predecessor modules and trainable successor layers.

    Parameters
    ----------
    predecessor_modules, successor_modules : nn.ModuleList
        Same length ``n``; module ``l`` of each maps hidden states ``(batch, ..., d)`` to the same shape and
        takes the same extra arguments (see :class:`LayerGroup`, :func:`split_into_modules`).
    replace_rate : float in [0, 1]
        Probability that a module is the successor (gate 0). The post uses 0.5.
    granularity : {"batch", "example"}
        One gate per module per forward pass (the author's code) or per module per example (a variant).
    generator : torch.Generator, optional
        Source of the gates, for reproducible runs.

    Notes
    -----
    On construction the predecessor modules are frozen (``requires_grad=False``) and are always run in eval
    mode (no dropout), so that they stay bit-identical while the successor trains. In ``eval()`` mode, or
    with ``gates`` all zero, the output is the successor stack's. In ``"batch"`` mode only the chosen branch
    is computed; this equals the post's "run both, zero one" (the zeroed branch gets zero gradient).
    Source: https://kexue.fm/archives/7575, the switch equation.
    """

    def __init__(
        self,
        predecessor_modules: nn.ModuleList,
        successor_modules: nn.ModuleList,
        *,
        replace_rate: float = 0.5,
        granularity: str = "batch",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        for name, mods in (("predecessor_modules", predecessor_modules), ("successor_modules", successor_modules)):
            if not isinstance(mods, nn.ModuleList):
                raise TypeError(f"{name} must be an nn.ModuleList, got {type(mods).__name__}")
            if len(mods) == 0:
                raise ValueError(f"{name} must not be empty")
        if len(predecessor_modules) != len(successor_modules):
            raise ValueError(
                f"predecessor_modules and successor_modules must have the same length, got "
                f"{len(predecessor_modules)} and {len(successor_modules)}"
            )
        if granularity not in ("batch", "example"):
            raise ValueError(f"granularity must be 'batch' or 'example', got {granularity!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.predecessor = predecessor_modules
        self.successor = successor_modules
        self.replace_rate = replace_rate
        self.granularity = granularity
        self.generator = generator
        self.predecessor.requires_grad_(False)
        self.predecessor.eval()

    @property
    def replace_rate(self) -> float:
        return self._replace_rate

    @replace_rate.setter
    def replace_rate(self, value: float) -> None:
        self._replace_rate = _check_rate(value, "replace_rate")

    @property
    def n_modules(self) -> int:
        return len(self.successor)

    def train(self, mode: bool = True):
        super().train(mode)
        self.predecessor.eval()  # frozen modules never run dropout
        return self

    def sample_gates(self, batch_size: int = 1) -> torch.Tensor:
        """Draw gates: shape ``(n_modules,)`` (``"batch"``) or ``(n_modules, batch_size)`` (``"example"``),
        dtype float, 1 = predecessor with probability ``1 - replace_rate``."""
        shape = (self.n_modules,) if self.granularity == "batch" else (self.n_modules, batch_size)
        u = torch.rand(shape, generator=self.generator)
        return (u >= self.replace_rate).float()

    def forward(self, x: torch.Tensor, *args, gates: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Run the hybrid stack on hidden states ``x`` of shape ``(batch, ..., d)``.

        ``gates`` (optional): ``(n_modules,)`` or ``(n_modules, batch)`` in {0, 1}; by default sampled in
        training mode and all zero (successor only) in eval mode. Extra arguments go to every module.

        Raises ``ValueError`` if ``gates`` has the wrong shape or a value other than 0 or 1.
        """
        check_tensor(x, "x", min_dim=1, values=False)
        if gates is None:
            gates = self.sample_gates(x.shape[0]) if self.training else torch.zeros(self.n_modules)
        elif not isinstance(gates, torch.Tensor):
            raise TypeError(f"gates must be a torch.Tensor, got {type(gates).__name__}")
        if gates.shape not in ((self.n_modules,), (self.n_modules, x.shape[0])):
            raise ValueError(
                f"gates must have shape ({self.n_modules},) or ({self.n_modules}, {x.shape[0]}), got {tuple(gates.shape)}"
            )
        if not bool(((gates == 0) | (gates == 1)).all()):
            raise ValueError("gates must hold only 0 and 1")
        for l in range(self.n_modules):
            g = gates[l]
            if g.dim() == 0:  # one gate for the whole batch: compute only the chosen branch
                x = self.predecessor[l](x, *args, **kwargs) if bool(g == 1) else self.successor[l](x, *args, **kwargs)
            else:
                g = g.reshape((-1,) + (1,) * (x.dim() - 1))
                x = theseus_mix(self.predecessor[l](x, *args, **kwargs), self.successor[l](x, *args, **kwargs), g)
        return x
