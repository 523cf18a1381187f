"""Tests for kexue_core.compression (BERT-of-Theseus module replacement, https://kexue.fm/archives/7575)."""
import copy

import pytest
import torch
from torch import nn

from kexue_core.compression import LayerGroup, TheseusEncoder, linear_replace_rate, split_into_modules, theseus_mix


def _layers(n, d=8, seed=0):
    torch.manual_seed(seed)
    return nn.ModuleList(nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Dropout(0.5)) for _ in range(n))


def _encoder(**kw):
    pred = split_into_modules(_layers(6, seed=0), 3)
    succ = split_into_modules(_layers(3, seed=1), 3)
    return TheseusEncoder(pred, succ, **kw), pred, succ


def _run(mods, x):
    for m in mods:
        x = m(x)
    return x


def test_mix_exact_and_nan_safe():
    a, b = torch.randn(4, 5), torch.full((4, 5), float("inf"))
    assert torch.equal(theseus_mix(a, b, torch.tensor(1.0)), a)
    assert torch.equal(theseus_mix(b, a, torch.tensor(0)), a)
    g = torch.tensor([1, 0, 1, 0.0]).reshape(4, 1)
    out = theseus_mix(a, -a, g)
    assert torch.equal(out[0], a[0]) and torch.equal(out[1], -a[1])


def test_all_ones_is_predecessor_all_zeros_is_successor():
    enc, pred, succ = _encoder(generator=torch.Generator().manual_seed(0))
    enc.train()
    x = torch.randn(7, 8)
    with torch.no_grad():
        pred.eval()
        assert torch.equal(enc(x, gates=torch.ones(3)), _run(pred, x))
        succ.eval()
        y_succ = _run(succ, x)
        enc.eval()
        assert torch.equal(enc(x, gates=torch.zeros(3)), y_succ)
        assert torch.equal(enc(x), y_succ)  # eval mode: successor only
        mixed = succ[2](pred[1](succ[0](x)))
        assert torch.equal(enc(x, gates=torch.tensor([0.0, 1.0, 0.0])), mixed)
        # per-example gates equal the per-batch ones example by example
        g = torch.tensor([[1, 0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 0, 0, 1], [1, 1, 1, 0, 0, 0, 0]]).float()
        out = enc(x, gates=g)
        for i in range(7):
            assert torch.allclose(out[i], enc(x[i:i + 1], gates=g[:, i])[0], atol=1e-6)


def test_frozen_parameters_bit_identical_after_step():
    enc, pred, succ = _encoder(generator=torch.Generator().manual_seed(1))
    before_p = copy.deepcopy(pred.state_dict())
    before_s = copy.deepcopy(succ.state_dict())
    enc.train()
    assert not any(p.requires_grad for p in pred.parameters())
    opt = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randn(5, 8)
    loss = enc(x, gates=torch.tensor([0.0, 1.0, 0.0])).pow(2).sum()
    loss.backward()
    opt.step()
    assert all(torch.equal(v, pred.state_dict()[k]) for k, v in before_p.items())
    assert not all(torch.equal(v, succ.state_dict()[k]) for k, v in before_s.items())
    assert succ[1].layers[0][0].weight.grad is None  # switched-off successor layer gets no gradient


def test_predecessor_runs_without_dropout_in_train_mode():
    enc, pred, _ = _encoder()
    enc.train()
    assert not pred.training and all(not m.training for m in pred.modules())
    x = torch.randn(3, 8)
    assert torch.equal(enc(x, gates=torch.ones(3)), enc(x, gates=torch.ones(3)))


def test_sampled_gate_rate():
    enc, _, _ = _encoder(replace_rate=0.25, generator=torch.Generator().manual_seed(0))
    g = torch.stack([enc.sample_gates() for _ in range(4000)])
    # P(gate = 1) = 1 - replace_rate; 4 s.e. of a proportion over 12000 draws is 0.016
    assert abs(g.mean().item() - 0.75) < 0.016
    ex, _, _ = _encoder(granularity="example")
    assert ex.sample_gates(5).shape == (3, 5)


def test_linear_replace_rate_schedule():
    assert linear_replace_rate(0, 0.3, 0.0) == 0.3
    assert linear_replace_rate(10, 0.3, 0.01) == pytest.approx(0.4)
    assert linear_replace_rate(1000, 0.3, 0.01) == 1.0
    rates = [linear_replace_rate(t, 0.3, 0.002) for t in range(500)]
    assert all(b >= a for a, b in zip(rates, rates[1:])) and rates[-1] == 1.0


def test_split_into_modules():
    layers = _layers(6)
    mods = split_into_modules(layers, 3)
    assert len(mods) == 3 and all(len(m.layers) == 2 for m in mods)
    assert mods[1].layers[0] is layers[2]


class _TupleLayer(nn.Module):
    def forward(self, x, scale):
        return (x * scale, "extra")


def test_layer_group_unpacks_tuples_and_passes_args():
    g = LayerGroup([_TupleLayer(), _TupleLayer()])
    assert torch.equal(g(torch.ones(2), 3.0), torch.full((2,), 9.0))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: split_into_modules(_layers(6), 4), "n_modules"),
        (lambda: split_into_modules(_layers(6), 0), "n_modules"),
        (lambda: TheseusEncoder(split_into_modules(_layers(6), 3), split_into_modules(_layers(2), 2)), "same length"),
        (lambda: _encoder(replace_rate=1.5), "replace_rate"),
        (lambda: _encoder(granularity="token"), "granularity"),
        (lambda: _encoder()[0](torch.randn(2, 8), gates=torch.ones(2)), "gates"),
        (lambda: _encoder()[0](torch.randn(2, 8), gates=torch.tensor([1.0, 0.5, 0.0])), "gates"),
        (lambda: theseus_mix(torch.ones(2), torch.ones(3), torch.tensor(1)), "x_pred and x_succ"),
        (lambda: theseus_mix(torch.ones(2), torch.ones(2), torch.tensor(2)), "gate"),
        (lambda: linear_replace_rate(-1, 0.5, 0.1), "step"),
        (lambda: linear_replace_rate(1, 0.5, -0.1), "slope"),
        (lambda: LayerGroup([]), "layers"),
    ],
)
def test_bad_input_raises_value_error(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="n_modules"):
        split_into_modules(_layers(6), 2.0)
    with pytest.raises(TypeError, match="predecessor_modules"):
        TheseusEncoder([nn.Linear(2, 2)], nn.ModuleList([nn.Linear(2, 2)]))
    with pytest.raises(TypeError, match="gate"):
        theseus_mix(torch.ones(2), torch.ones(2), 1)


def test_half_precision():
    enc, pred, succ = _encoder()
    enc = enc.to(torch.bfloat16).eval()
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    with torch.no_grad():
        out = enc(x, gates=torch.tensor([1.0, 0.0, 1.0]))
        assert out.dtype == torch.bfloat16
        assert torch.equal(out, pred[2](succ[1](pred[0](x))))
    a, b = torch.randn(3, dtype=torch.float16), torch.randn(3, dtype=torch.float16)
    assert torch.equal(theseus_mix(a, b, torch.tensor([True, False, True])), torch.stack([a[0], b[1], a[2]]))
