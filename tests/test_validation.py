"""Tests for kexue_core._validation, the argument checks every public function uses."""
import math

import pytest
import torch

from kexue_core._validation import check_positive_int, check_positive_real, check_qkv, check_tensor


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_check_tensor_finds_one_nan(dtype):
    x = torch.zeros(3, 1000, dtype=dtype)
    x[2, 777] = math.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        check_tensor(x, "x")


def test_check_tensor_accepts_infinities_whose_sum_is_nan():
    # +inf and -inf sum to NaN, but the tensor has no NaN: the exact check must let it through
    x = torch.tensor([math.inf, -math.inf, 1.0])
    assert check_tensor(x, "x") is x
    big = torch.full((10,), 6e4, dtype=torch.float16)  # the float16 sum overflows to inf: no NaN
    assert check_tensor(big, "big") is big


def test_check_tensor_types_and_dims():
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        check_tensor([1.0], "x")
    with pytest.raises(TypeError, match="floating-point"):
        check_tensor(torch.zeros(2, dtype=torch.int64), "x")
    ints = torch.zeros(2, dtype=torch.int64)
    assert check_tensor(ints, "x", floating=False) is ints
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        check_tensor(torch.zeros(3), "x", min_dim=2)
    x = torch.zeros(2, 2, requires_grad=True)
    assert check_tensor(x, "x", min_dim=2) is x
    empty = torch.zeros(0, 3)
    assert check_tensor(empty, "x") is empty  # empty: nothing to be NaN


def test_check_numbers():
    assert check_positive_int(3, "n") == 3
    with pytest.raises(TypeError):
        check_positive_int(True, "n")
    with pytest.raises(TypeError):
        check_positive_int(2.0, "n")
    with pytest.raises(ValueError, match=">= 2"):
        check_positive_int(1, "n", minimum=2)
    assert check_positive_real(0, "eps", allow_zero=True) == 0.0
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            check_positive_real(bad, "eps")


def test_check_qkv():
    q, k, v = torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.zeros(1, 5, 6)
    check_qkv(q, k, v)  # batch dims 2, 2, 1 broadcast
    with pytest.raises(ValueError, match="last dimension d"):
        check_qkv(q, torch.zeros(2, 5, 3), v)
    with pytest.raises(ValueError, match="number of keys"):
        check_qkv(q, k, torch.zeros(2, 4, 6))
    with pytest.raises(ValueError, match="as many queries as keys"):
        check_qkv(q, k, v, causal=True)
    with pytest.raises(ValueError, match="do not broadcast"):
        check_qkv(q, torch.zeros(3, 5, 4), torch.zeros(3, 5, 6))
    with pytest.raises(ValueError, match=">= 1"):
        check_qkv(torch.zeros(3, 0), torch.zeros(5, 0), torch.zeros(5, 2))
    with pytest.raises(ValueError, match=">= 1"):
        check_qkv(torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(5, 0))  # dv = 0
    check_qkv(torch.zeros(3, 1), torch.zeros(1, 1), torch.zeros(1, 1))  # d = m = dv = 1 is fine


def test_values_checkable_outside_and_inside_transforms():
    import torch

    from kexue_core._validation import values_checkable

    x = torch.randn(3, 2)
    assert values_checkable(x)
    seen = []

    def probe(t):
        seen.append(values_checkable(t))
        return t.sum()

    torch.func.vmap(probe)(x)
    torch.func.grad(probe)(x)
    assert seen == [False, False]
    assert values_checkable(x)  # back outside
