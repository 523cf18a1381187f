"""Unit tests of kexue_core.losses.info_nce_loss against sentence-transformers' MultipleNegativesRankingLoss."""
from __future__ import annotations

import math

import pytest
import torch
from sentence_transformers.losses import MultipleNegativesRankingLoss

from kexue_core.losses import info_nce_loss


def _oracle(a, b, scale):
    return MultipleNegativesRankingLoss(torch.nn.Identity(), scale=scale).compute_loss_from_embeddings([a, b], None)


@pytest.mark.parametrize("seed, n, d", [(0, 8, 16), (1, 32, 4), (2, 5, 64)])
@pytest.mark.parametrize("temperature", [0.05, 0.3, 1.0])
def test_equals_multiple_negatives_ranking_loss(seed, n, d, temperature):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = a + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)  # a noisy "second view"
    got = info_nce_loss(a, b, temperature=temperature)
    assert got.item() == pytest.approx(_oracle(a, b, 1 / temperature).item(), abs=1e-10)


def test_default_temperature_is_scale_20():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(10, 8, generator=g), torch.randn(10, 8, generator=g)
    assert info_nce_loss(a, b).item() == pytest.approx(_oracle(a, b, 20.0).item(), abs=1e-5)


def test_by_hand_two_rows():
    # a1 = b1 = e1, a2 = b2 = e2: diagonal cos 1, off-diagonal 0
    a = torch.eye(2, dtype=torch.float64)
    tau = 0.5
    want = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0.0)))
    assert info_nce_loss(a, a.clone(), temperature=tau).item() == pytest.approx(want, rel=1e-12)


def test_target_is_the_diagonal():
    # perfectly matched views score below the same views paired with the wrong partner
    g = torch.Generator().manual_seed(4)
    a = torch.randn(6, 12, generator=g, dtype=torch.float64)
    matched = info_nce_loss(a, a.clone())
    shuffled = info_nce_loss(a, a.roll(1, 0))
    assert matched.item() < 0.1 < shuffled.item()


def test_not_symmetric_in_general_but_scale_invariant_rows():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    scaled = a * torch.rand(7, 1, generator=g, dtype=torch.float64).add(0.1)
    assert info_nce_loss(scaled, b).item() == pytest.approx(info_nce_loss(a, b).item(), abs=1e-12)


def test_gradient_half_and_func():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(8, 16, generator=g, requires_grad=True)
    b = torch.randn(8, 16, generator=g)
    info_nce_loss(a, b).backward()
    grad = torch.func.grad(lambda x: info_nce_loss(x, b))(a.detach())
    assert torch.allclose(grad, a.grad, atol=1e-6)
    assert torch.isfinite(info_nce_loss(a.detach().half(), b.half())).item()


@pytest.mark.parametrize("temperature", [0.0, -0.05])
def test_bad_temperature(temperature):
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(a, a, temperature=temperature)


def test_bad_shapes_and_types():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="b must have the shape of a"):
        info_nce_loss(a, torch.randn(5, 3))
    with pytest.raises(ValueError, match="a must have shape"):
        info_nce_loss(torch.randn(2, 4, 3), torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="a must have at least 2"):
        info_nce_loss(torch.randn(3), torch.randn(3))
    with pytest.raises(ValueError, match="a is empty"):
        info_nce_loss(torch.randn(0, 3), torch.randn(0, 3))
    with pytest.raises(TypeError, match="b must be a floating"):
        info_nce_loss(a, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="temperature"):
        info_nce_loss(a, a, temperature="0.05")
