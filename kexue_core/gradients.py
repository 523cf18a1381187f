r"""Per-sample gradients of an MLP and the input-gradient / parameter-gradient penalty inequality.

For the MLP of post 8796 (:class:`kexue_core.nn.MLP`: ``h^{(1)} = x``,
``z^{(t+1)} = W^{(t)} h^{(t)} + b^{(t)}``, ``h^{(t+1)} = g^{(t)}(z^{(t+1)})``, ``t = 1..l``) and a scalar
``f`` of its output, the post proves, for every single input ``x``,

.. math::

    \|\nabla_x f\|^2 \sum_{t=1}^{l} \frac{1 + \|h^{(t)}\|^2}{\|W^{(t)}\|^2\,\|\nabla_x h^{(t)}\|^2}
    \le \|\nabla_\theta f\|^2                                                   \qquad\text{(f)}

by summing, over the layers, the weight part (w) and the bias part (b):

.. math::

    \|\nabla_x f\|^2 \frac{\|h^{(t)}\|^2}{\|W^{(t)}\|^2 \|\nabla_x h^{(t)}\|^2} \le \|\nabla_{W^{(t)}} f\|^2,
    \qquad
    \|\nabla_x f\|^2 \frac{1}{\|W^{(t)}\|^2 \|\nabla_x h^{(t)}\|^2} \le \|\nabla_{b^{(t)}} f\|^2 .

``‖∇_x f‖``, ``‖∇_θ f‖``, ``‖h‖`` are Euclidean norms; ``‖W‖`` and ``‖∇_x h‖`` are spectral norms
(``norm="spectral"``) or, for the weaker version, Frobenius norms (``norm="frobenius"``).

Conventions shared by every function here
-----------------------------------------
* ``x: (B, d_1)`` is a batch of ``B`` independent inputs; every quantity is *per sample*.
* ``f`` is a callable mapping the model output ``(B, d_{l+1})`` to per-sample scalars ``(B,)``, where
  row ``b`` of the result depends only on row ``b`` of the output (e.g.
  ``lambda out: out.log_softmax(-1)[torch.arange(B), y]``). A batch-mean loss does **not** qualify:
  the inequality is per input, and the parameter gradient of a mean is not a per-sample gradient.
  The row-independence is the caller's promise; it is what makes the row ``b`` of each batched
  gradient below the gradient of sample ``b`` alone.
* Layouts are PyTorch's: ``∇_{W^{(t)}} f`` has the weight's shape ``(d_{t+1}, d_t)`` (out × in, the
  transpose of the post's layout) and ``∇_x h^{(t)}`` is the Jacobian ``(d_t, d_1)`` with entry
  ``[k, i] = ∂h_k/∂x_i`` (the post's layout).
* Returned tensors carry no autograd graph (they are values for checking and reporting, not
  penalties to back-propagate through).

Source: Su Jianlin, https://kexue.fm/archives/8796, eq. (f), (w), (b); Dherin, Munn & Barrett,
"The Geometric Occam's Razor Implicit in Deep Learning", arXiv:2111.15090.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import functional_call, jacrev, vmap

from ._validation import check_tensor
from .nn import MLP

__all__ = [
    "NORMS",
    "GradientPenaltyTerms",
    "input_gradients",
    "input_jacobians",
    "per_sample_grads",
    "gradient_penalty_terms",
    "gradient_penalty_inequality",
]

#: accepted values of ``norm``: the matrix norm used for ``W^{(t)}`` and ``∇_x h^{(t)}``.
NORMS = ("spectral", "frobenius")

ScalarFn = Callable[[torch.Tensor], torch.Tensor]


# -- validation ---------------------------------------------------------------------------------
def _check_model_and_x(model, x) -> None:
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a kexue_core.nn.MLP, got {type(model).__name__}")
    check_tensor(x, "x")
    if x.dim() != 2:
        raise ValueError(f"x must be a batch of shape (B, d_1), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one sample")
    if x.shape[1] != model.dims[0]:
        raise ValueError(f"x must have {model.dims[0]} columns (the model's input width), got {x.shape[1]}")
    if torch.isinf(x).any():
        raise ValueError("x contains inf")
    dtype = next(model.parameters()).dtype
    if x.dtype != dtype:
        raise TypeError(f"x has dtype {x.dtype} but the model's parameters are {dtype}")


def _check_f(f, out: torch.Tensor) -> torch.Tensor:
    if not callable(f):
        raise TypeError(f"f must be a callable mapping the output (B, d_out) to (B,), got {type(f).__name__}")
    val = f(out)
    if not isinstance(val, torch.Tensor):
        raise TypeError(f"f must return a tensor, got {type(val).__name__}")
    if val.shape != (out.shape[0],):
        raise ValueError(
            f"f must map the output {tuple(out.shape)} to per-sample scalars of shape ({out.shape[0]},), "
            f"got shape {tuple(val.shape)}"
        )
    if not torch.isfinite(val).all():
        raise ValueError("f returned NaN or inf")
    return val


def _check_norm(norm) -> str:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def _matrix_norm_sq(a: torch.Tensor, norm: str) -> torch.Tensor:
    """Squared spectral or Frobenius norm over the last two dims: ``(..., m, n) -> (...)``."""
    return torch.linalg.matrix_norm(a, ord=2 if norm == "spectral" else "fro") ** 2


# -- per-sample gradients -----------------------------------------------------------------------
def input_gradients(model: MLP, x: torch.Tensor, f: ScalarFn) -> torch.Tensor:
    r"""Per-sample input gradients :math:`\nabla_x f`.

    Parameters
    ----------
    model : :class:`kexue_core.nn.MLP`.
    x : ``(B, d_1)`` inputs (floating, same dtype as the model, no NaN/inf).
    f : callable ``(B, d_{l+1}) -> (B,)``, row ``b`` depending only on output row ``b``.

    Returns
    -------
    ``(B, d_1)``: row ``b`` is ``∂f_b/∂x_b`` (units of ``f`` per unit of ``x``). Computed as
    ``torch.func.grad`` of ``Σ_b f_b``, which equals the per-sample gradient because of the
    row-independence of ``f`` and of the MLP.

    Raises
    ------
    TypeError
        ``model`` not an MLP, ``f`` not callable or not returning a tensor, non-float ``x`` or a
        dtype different from the model's.
    ValueError
        ``x`` not 2-D, empty, of the wrong width or with NaN/inf; ``f`` not returning shape ``(B,)``
        or returning NaN/inf.

    Source: https://kexue.fm/archives/8796 (the ``∇_x f`` of eq. (f)).
    """
    _check_model_and_x(model, x)
    with torch.no_grad():  # the transform ignores an outer no_grad; the result carries no graph
        _check_f(f, model._hidden_states(x)[-1])
        return torch.func.grad(lambda xx: f(model._hidden_states(xx)[-1]).sum())(x.detach())


def input_jacobians(model: MLP, x: torch.Tensor) -> list[torch.Tensor]:
    r"""Per-sample Jacobians :math:`\nabla_x h^{(t)}` of every hidden state, ``t = 1..l+1``.

    Parameters
    ----------
    model : :class:`kexue_core.nn.MLP` with widths ``d_1..d_{l+1}``.
    x : ``(B, d_1)`` inputs.

    Returns
    -------
    list of ``l + 1`` tensors; entry ``t - 1`` has shape ``(B, d_t, d_1)`` with
    ``[b, k, i] = ∂h^{(t)}_k/∂x_i`` at sample ``b`` (entry 0 is the identity, since ``h^{(1)} = x``).
    Computed with ``torch.func.vmap(torch.func.jacrev(...))`` over the samples.

    Raises
    ------
    TypeError, ValueError
        As :func:`input_gradients` for a bad ``model`` or ``x``.

    Source: https://kexue.fm/archives/8796 (the ``∇_x h^{(t)}`` of eq. (f)).
    """
    _check_model_and_x(model, x)
    # one sample x_b: (d_1,) -> tuple of h^{(t)}: (d_t,); jacrev gives (d_t, d_1) each
    jac_one = jacrev(lambda xb: tuple(model._hidden_states(xb)))
    with torch.no_grad():  # the transforms ignore an outer no_grad; the result carries no graph
        return list(vmap(jac_one)(x.detach()))


def per_sample_grads(model: MLP, x: torch.Tensor, f: ScalarFn) -> dict[str, torch.Tensor]:
    r"""Per-sample parameter gradients :math:`\nabla_\theta f(x_b)` for every named parameter.

    Parameters
    ----------
    model : :class:`kexue_core.nn.MLP`.
    x : ``(B, d_1)`` inputs.
    f : callable ``(B, d_{l+1}) -> (B,)``, row ``b`` depending only on output row ``b``.

    Returns
    -------
    ``{name: (B, *param.shape)}`` for every parameter of ``model`` (``"layers.{t-1}.weight"``:
    ``(B, d_{t+1}, d_t)``, PyTorch's out × in layout; ``"layers.{t-1}.bias"``: ``(B, d_{t+1})``).
    Computed with ``torch.func.functional_call`` and ``torch.func.jacrev`` of the batched
    per-sample values ``f: θ -> (B,)`` (a ``vmap`` of vector-Jacobian products with one-hot
    cotangents); row ``b`` of the Jacobian is the gradient of ``f_b`` alone because ``f_b`` depends
    on sample ``b`` only. Cost: ``B`` backward passes through the batch.

    Raises
    ------
    TypeError, ValueError
        As :func:`input_gradients`.

    Source: https://kexue.fm/archives/8796 (the ``∇_θ f`` of eq. (f)).
    """
    _check_model_and_x(model, x)
    params = {k: v.detach() for k, v in model.named_parameters()}
    xd = x.detach()

    def values(p):  # θ -> (B,) per-sample scalars
        return f(functional_call(model, p, (xd,)))

    with torch.no_grad():  # the transform ignores an outer no_grad; the result carries no graph
        _check_f(f, model._hidden_states(xd)[-1])
        return jacrev(values)(params)


# -- the inequality -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GradientPenaltyTerms:
    r"""Every per-sample, per-layer factor of eq. (f), (w), (b) of post 8796.

    ``B`` samples, ``l`` layers; column ``t - 1`` is layer ``t``. All norms squared.

    Attributes
    ----------
    grad_x_sq : ``(B,)``, ``‖∇_x f‖²`` (Euclidean).
    h_sq : ``(B, l)``, ``‖h^{(t)}‖²`` (Euclidean), the input of layer ``t``.
    weight_norm_sq : ``(l,)``, ``‖W^{(t)}‖²`` (spectral or Frobenius, see ``norm``).
    jacobian_norm_sq : ``(B, l)``, ``‖∇_x h^{(t)}‖²`` (spectral or Frobenius).
    grad_weight_sq : ``(B, l)``, ``‖∇_{W^{(t)}} f‖²`` (Frobenius = Euclidean over entries).
    grad_bias_sq : ``(B, l)``, ``‖∇_{b^{(t)}} f‖²`` (zeros for a bias-free model).
    has_bias : whether the model has biases (if not, the ``1 +`` of eq. (f) is dropped).
    norm : ``"spectral"`` or ``"frobenius"``.
    """

    grad_x_sq: torch.Tensor
    h_sq: torch.Tensor
    weight_norm_sq: torch.Tensor
    jacobian_norm_sq: torch.Tensor
    grad_weight_sq: torch.Tensor
    grad_bias_sq: torch.Tensor
    has_bias: bool
    norm: str

    def _scaled(self, numerator: torch.Tensor) -> torch.Tensor:
        # ‖∇_x f‖² · numerator / (‖W‖² ‖J‖²), (B, l). Where ‖W‖‖J‖ = 0 (e.g. a layer whose input no
        # longer depends on x, as behind all-dead ReLUs), ∇_x f = 0 exactly and the term is taken
        # as 0, the value of the undivided form ‖h‖²‖∇_x f‖ <= ‖h‖‖∇_W f‖‖W‖‖J‖ of the proof.
        denom = self.weight_norm_sq[None, :] * self.jacobian_norm_sq
        num = self.grad_x_sq[:, None] * numerator
        safe = torch.where(denom > 0, denom, torch.ones_like(denom))
        return torch.where(denom > 0, num / safe, torch.zeros_like(num))

    @property
    def weight_lhs(self) -> torch.Tensor:
        """``(B, l)``: left side of eq. (w), ``‖∇_x f‖² ‖h‖² / (‖W‖² ‖∇_x h‖²)``; bounded by
        :attr:`grad_weight_sq`."""
        return self._scaled(self.h_sq)

    @property
    def bias_lhs(self) -> torch.Tensor:
        """``(B, l)``: left side of eq. (b), ``‖∇_x f‖² / (‖W‖² ‖∇_x h‖²)``; bounded by
        :attr:`grad_bias_sq` (zeros for a bias-free model, where eq. (b) does not apply)."""
        out = self._scaled(torch.ones_like(self.h_sq))
        return out if self.has_bias else torch.zeros_like(out)

    @property
    def lhs(self) -> torch.Tensor:
        """``(B,)``: left side of eq. (f), ``‖∇_x f‖² Σ_t (1 + ‖h^{(t)}‖²)/(‖W^{(t)}‖² ‖∇_x h^{(t)}‖²)``
        (without the ``1 +`` for a bias-free model)."""
        return (self.weight_lhs + self.bias_lhs).sum(dim=1)

    @property
    def rhs(self) -> torch.Tensor:
        """``(B,)``: right side of eq. (f), ``‖∇_θ f‖²`` over all weights and biases."""
        return (self.grad_weight_sq + self.grad_bias_sq).sum(dim=1)


def gradient_penalty_terms(model: MLP, x: torch.Tensor, f: ScalarFn, *, norm: str = "spectral") -> GradientPenaltyTerms:
    r"""All per-sample, per-layer factors of eq. (f), (w), (b) of post 8796.

    Parameters
    ----------
    model : :class:`kexue_core.nn.MLP` with ``l`` layers.
    x : ``(B, d_1)`` inputs (floating, the model's dtype; float64 for tight comparisons).
    f : callable ``(B, d_{l+1}) -> (B,)``, row ``b`` depending only on output row ``b``.
    norm : ``"spectral"`` (the post's statement) or ``"frobenius"`` (the weaker version: Frobenius
        norms for ``W^{(t)}`` and ``∇_x h^{(t)}``, which are >= the spectral ones).

    Returns
    -------
    :class:`GradientPenaltyTerms`; ``.lhs``/``.rhs`` are the two sides of eq. (f), ``.weight_lhs``
    vs ``.grad_weight_sq`` eq. (w), ``.bias_lhs`` vs ``.grad_bias_sq`` eq. (b).

    Raises
    ------
    TypeError, ValueError
        As :func:`input_gradients`; ``ValueError`` also for an unknown ``norm``.

    Source: https://kexue.fm/archives/8796, eq. (f), (w), (b).
    """
    norm = _check_norm(norm)
    _check_model_and_x(model, x)
    l = model.num_layers
    with torch.no_grad():
        hs = model._hidden_states(x.detach())
    gx = input_gradients(model, x, f)  # (B, d_1)
    jacs = input_jacobians(model, x)[:l]  # t = 1..l, each (B, d_t, d_1)
    grads = per_sample_grads(model, x, f)
    layers = list(model.layers)
    zeros = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    return GradientPenaltyTerms(
        grad_x_sq=(gx**2).sum(dim=1),
        h_sq=torch.stack([(h**2).sum(dim=1) for h in hs[:l]], dim=1),
        weight_norm_sq=torch.stack([_matrix_norm_sq(layer.weight.detach(), norm) for layer in layers]),
        jacobian_norm_sq=torch.stack([_matrix_norm_sq(j, norm) for j in jacs], dim=1),
        grad_weight_sq=torch.stack([(grads[f"layers.{t}.weight"] ** 2).flatten(1).sum(1) for t in range(l)], dim=1),
        grad_bias_sq=torch.stack(
            [(grads[f"layers.{t}.bias"] ** 2).sum(1) if model.has_bias else zeros for t in range(l)], dim=1
        ),
        has_bias=model.has_bias,
        norm=norm,
    )


def gradient_penalty_inequality(
    model: MLP, x: torch.Tensor, f: ScalarFn, *, norm: str = "spectral"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Both sides of the input-gradient / parameter-gradient penalty inequality, eq. (f) of post 8796.

    .. math::

        \underbrace{\|\nabla_x f\|^2 \sum_{t=1}^{l}
        \frac{1 + \|h^{(t)}\|^2}{\|W^{(t)}\|^2\,\|\nabla_x h^{(t)}\|^2}}_{\text{lhs}}
        \;\le\; \underbrace{\|\nabla_\theta f\|^2}_{\text{rhs}}

    Parameters
    ----------
    model : :class:`kexue_core.nn.MLP` (biases optional; without them the ``1 +`` is dropped).
    x : ``(B, d_1)`` inputs.
    f : callable mapping the output ``(B, d_{l+1})`` to per-sample scalars ``(B,)``, row ``b``
        depending only on row ``b`` (e.g. ``lambda out: out.log_softmax(-1)[torch.arange(B), y]``).
    norm : ``"spectral"`` (default, the post) or ``"frobenius"`` for ``‖W^{(t)}‖`` and
        ``‖∇_x h^{(t)}‖``; ``‖∇_x f‖``, ``‖h‖`` and ``‖∇_θ f‖`` are always Euclidean.

    Returns
    -------
    ``(lhs, rhs)``, each ``(B,)``: per-sample left and right sides, in units of ``f²`` per unit of
    parameter². ``rhs`` is the squared Euclidean norm of the full parameter gradient (all weights and
    biases). ``lhs <= rhs`` up to round-off for every sample.

    Raises
    ------
    TypeError
        ``model`` not a :class:`~kexue_core.nn.MLP`; ``f`` not callable; non-float ``x`` or a dtype
        different from the model's.
    ValueError
        ``x`` not 2-D, empty, of the wrong width, or with NaN/inf; ``f`` output not ``(B,)`` or not
        finite; unknown ``norm``.

    Source: https://kexue.fm/archives/8796, eq. (f); Dherin et al., arXiv:2111.15090.
    """
    terms = gradient_penalty_terms(model, x, f, norm=norm)
    return terms.lhs, terms.rhs
