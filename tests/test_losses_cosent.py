"""Unit tests of kexue_core.losses.cosent_loss against sentence-transformers' CoSENTLoss."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from sentence_transformers.losses import CoSENTLoss

from kexue_core.losses import cosent_loss


def _oracle(u, v, labels, scale=20.0):
    loss = CoSENTLoss(torch.nn.Identity(), scale=scale)
    return loss.compute_loss_from_embeddings([u, v], labels)


@pytest.mark.parametrize("seed, graded", [(0, False), (1, False), (2, True), (3, True)])
def test_equals_sentence_transformers(seed, graded):
    g = torch.Generator().manual_seed(seed)
    u, v = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    labels = torch.randint(0, 5 if graded else 2, (32,), generator=g).float()
    cos = torch.nn.functional.cosine_similarity(u, v)
    assert torch.allclose(cosent_loss(cos, labels), _oracle(u, v, labels), atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 7.5, 20.0, 50.0])
def test_scale_matches_oracle(scale):
    g = torch.Generator().manual_seed(4)
    u, v = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g)
    labels = torch.randint(0, 2, (20,), generator=g).float()
    cos = torch.nn.functional.cosine_similarity(u, v)
    assert torch.allclose(cosent_loss(cos, labels, scale=scale), _oracle(u, v, labels, scale), atol=1e-5)


def test_default_scale_is_20():
    cos = torch.tensor([0.1, 0.3, -0.2, 0.5], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0, 1])
    # by hand: pos {0.1, 0.5}, neg {0.3, -0.2}
    terms = [20 * (cq - cp) for cp in (0.1, 0.5) for cq in (0.3, -0.2)]
    want = math.log(1 + sum(math.exp(t) for t in terms))
    assert cosent_loss(cos, labels).item() == pytest.approx(want, rel=1e-12)


def test_shift_invariance_and_ties():
    cos = torch.tensor([0.2, 0.9, -0.4], dtype=torch.float64)
    labels = torch.tensor([2.0, 1.0, 1.0])
    assert torch.allclose(cosent_loss(cos, labels), cosent_loss(cos + 0.3, labels), atol=1e-12)
    assert cosent_loss(cos, torch.ones(3)).item() == 0.0


def test_gradient_and_half_precision():
    cos = torch.tensor([0.2, 0.9, -0.4, 0.1], requires_grad=True)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    cosent_loss(cos, labels).backward()
    assert cos.grad[0] < 0 and cos.grad[1] > 0  # raise positives, lower negatives
    assert torch.isfinite(cosent_loss(cos.detach().half(), labels.half())).item()
    grads = torch.func.grad(lambda c: cosent_loss(c, labels))(cos.detach())
    assert torch.allclose(grads, cos.grad)


@pytest.mark.parametrize(
    "args, kwargs, exc, name",
    [
        ((torch.randn(4), torch.ones(3)), {}, ValueError, "labels"),
        ((torch.randn(4, 1), torch.ones(4, 1)), {}, ValueError, "cos_sim"),
        ((torch.randn(4), [1, 0, 1, 0]), {}, TypeError, "labels"),
        ((torch.tensor([1, 0, 1]), torch.ones(3)), {}, TypeError, "cos_sim"),
        ((torch.randn(4), torch.ones(4)), {"scale": 0.0}, ValueError, "scale"),
        ((torch.randn(3), torch.tensor([1.0, float("nan"), 0.0])), {}, ValueError, "labels"),
    ],
)
def test_bad_input(args, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        cosent_loss(*args, **kwargs)
