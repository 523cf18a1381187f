"""Argument checks shared by the public functions (raise clear ValueError/TypeError)."""
from __future__ import annotations

import numbers

import torch


def values_checkable(*tensors) -> bool:
    """True if value checks (NaN, signs, empty mask rows) may run on ``tensors``: not while
    ``torch.compile`` traces (``torch.compiler.is_compiling``) and not inside a ``torch.func``
    transform (``vmap``, ``grad``, ``jacrev``, ...: the tensors are then wrapped, which the public
    ``torch.func.debug_unwrap`` reveals). A value check is data-dependent control flow, which
    ``vmap`` forbids and which breaks a compiled graph; shapes and dtypes are checked always."""
    if torch.compiler.is_compiling():
        return False
    return all(torch.func.debug_unwrap(t, recurse=False) is t for t in tensors if isinstance(t, torch.Tensor))


def check_tensor(x, name: str, *, min_dim: int = 0, floating: bool = True, values: bool = True) -> torch.Tensor:
    """Return ``x`` if it is a tensor with at least ``min_dim`` dims, floating (if asked) and free of
    NaN; raise ``TypeError``/``ValueError`` naming the argument otherwise.

    The NaN check runs only if ``values`` and :func:`values_checkable` (outside torch.func transforms
    and torch.compile); pass ``values=False`` where the caller checks the result instead."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if floating and values and values_checkable(x):
        check_no_nan(x, name)
    return x


def check_no_nan(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN. Call only where :func:`values_checkable`."""
    # A NaN makes the sum NaN, so a finite sum proves there is none; one reduction is ~18x cheaper
    # than isnan(x).any() on a large tensor. A NaN sum (a NaN, or +inf and -inf) is then checked exactly.
    if torch.isnan(x.detach().sum()) and torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN")


def check_result_no_nan(out: torch.Tensor, inputs: dict) -> torch.Tensor:
    """Cheap value check after the fact: a NaN in any input reaches the output (every input entry
    enters some output through a sum), so one reduction over ``out`` replaces one per input; only
    when ``out`` has a NaN are the inputs searched, to name the one that holds it. Outside transforms
    only (see :func:`values_checkable`). Returns ``out``."""
    if values_checkable(out) and torch.isnan(out.detach().sum()) and torch.isnan(out).any():
        for name, x in inputs.items():
            if x is not None and x.is_floating_point() and torch.isnan(x).any():
                raise ValueError(f"{name} contains NaN")
    return out


def check_positive_int(n, name: str, *, minimum: int = 1) -> int:
    """Return ``int(n)`` if ``n`` is an integer >= ``minimum``; raise otherwise."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def check_real(x, name: str) -> float:
    """Return ``float(x)`` if ``x`` is a finite real number (not a bool); ``TypeError`` for a non-number,
    ``ValueError`` for NaN or infinity."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


def check_positive_real(x, name: str, *, allow_zero: bool = False) -> float:
    """Return ``float(x)`` if ``x`` is a finite real number > 0 (>= 0 if ``allow_zero``)."""
    x = check_real(x, name)
    if x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {x}")
    return x


def check_qkv(q, k, v, *, causal: bool = False, values: bool = True) -> None:
    """Check attention inputs ``q: (..., n, d)``, ``k: (..., m, d)``, ``v: (..., m, dv)`` (floating, no
    NaN unless ``values=False``, matching ``d`` and ``m``, non-empty, broadcastable batch dims;
    ``n == m`` if ``causal``); raise ``TypeError``/``ValueError`` naming the problem."""
    check_tensor(q, "q", min_dim=2, values=values)
    check_tensor(k, "k", min_dim=2, values=values)
    check_tensor(v, "v", min_dim=2, values=values)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last dimension d, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys m, got {k.shape[-2]} and {v.shape[-2]}")
    if q.shape[-1] == 0 or k.shape[-2] == 0 or v.shape[-1] == 0:
        raise ValueError("d, m and dv must be >= 1")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs as many queries as keys, got {q.shape[-2]} and {k.shape[-2]}")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(f"batch dimensions of q, k, v do not broadcast: {exc}") from None


def check_key_padding_mask(mask, batch_shape, m: int):
    """Check ``key_padding_mask``: a boolean ``(..., m)`` tensor, ``True`` = a real key, whose leading
    dims broadcast against ``batch_shape``. Returns it (or ``None``)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("key_padding_mask must be a boolean tensor of shape (..., m), True = a real key")
    if mask.dim() < 1 or mask.shape[-1] != m:
        raise ValueError(f"key_padding_mask must have shape (..., m={m}), got {tuple(mask.shape)}")
    try:
        torch.broadcast_shapes(mask.shape[:-1], tuple(batch_shape))
    except RuntimeError as exc:
        raise ValueError(f"key_padding_mask's batch dims {tuple(mask.shape[:-1])} do not broadcast "
                         f"against {tuple(batch_shape)}: {exc}") from None
    return mask
