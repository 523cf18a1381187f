"""Tests of kexue_core.attention.rotary (RoPE)."""
import math

import pytest
import torch

from kexue_core.attention import rotary_embedding


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_matches_complex_multiplication():
    # RoPE = multiply the complex number x_{2i} + i x_{2i+1} by e^{i m θ_i}
    x = torch.randn(3, 7, 8, generator=_gen(), dtype=torch.float64)
    pos = torch.arange(7, dtype=torch.float64)
    theta = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    z = torch.complex(x[..., 0::2], x[..., 1::2]) * torch.polar(torch.ones(7, 4, dtype=torch.float64), pos[:, None] * theta)
    want = torch.stack((z.real, z.imag), -1).flatten(-2)
    torch.testing.assert_close(rotary_embedding(x), want, rtol=0, atol=1e-12)


def test_norm_preserved_and_position_zero_is_identity():
    x = torch.randn(2, 5, 16, generator=_gen(1), dtype=torch.float64)
    y = rotary_embedding(x)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-13, atol=0)
    torch.testing.assert_close(y[:, 0], x[:, 0], rtol=0, atol=0)


def test_scores_depend_only_on_relative_position():
    g = _gen(2)
    q = torch.randn(16, generator=g, dtype=torch.float64)
    k = torch.randn(16, generator=g, dtype=torch.float64)

    def score(m, n):
        qm = rotary_embedding(q.view(1, 16), torch.tensor([float(m)]))
        kn = rotary_embedding(k.view(1, 16), torch.tensor([float(n)]))
        return (qm * kn).sum().item()

    assert score(5, 2) == pytest.approx(score(103, 100), abs=1e-10)
    assert score(0, 7) == pytest.approx(score(40, 47), abs=1e-10)
    assert abs(score(5, 2) - score(5, 3)) > 1e-6  # and it does depend on m - n


def test_batched_positions_and_float32():
    x = torch.randn(2, 4, 6, 8, generator=_gen(3))
    pos = torch.tensor([[3.0], [9.0]]).view(2, 1, 1).expand(2, 4, 6)
    y = rotary_embedding(x, pos)
    assert y.shape == x.shape and y.dtype == torch.float32
    torch.testing.assert_close(y[1], rotary_embedding(x[1], torch.full((6,), 9.0)))


@pytest.mark.parametrize(
    "x, pos, kw, err",
    [
        (torch.zeros(4, 5), None, {}, ValueError),  # odd d
        (torch.zeros(4), None, {}, ValueError),  # too few dims
        (torch.zeros(4, 6, dtype=torch.int64), None, {}, TypeError),
        ([[0.0, 1.0]], None, {}, TypeError),
        (torch.full((4, 6), math.nan), None, {}, ValueError),
        (torch.zeros(4, 6), torch.zeros(5), {}, ValueError),  # wrong length
        (torch.zeros(4, 6), [0, 1, 2, 3], {}, TypeError),
        (torch.zeros(4, 6), torch.tensor([0.0, math.nan, 1.0, 2.0]), {}, ValueError),
        (torch.zeros(4, 6), None, {"base": 0.0}, ValueError),
    ],
)
def test_bad_input(x, pos, kw, err):
    with pytest.raises(err):
        rotary_embedding(x, pos, **kw)
