"""Unit tests of kexue_core.nn.MLP (the model of post 8796)."""
import pytest
import torch
from torch import nn

from kexue_core.nn import ACTIVATIONS, MLP

DT = torch.float64


def _model(dims=(5, 4, 3, 2), activation="tanh", bias=True, seed=0):
    torch.manual_seed(seed)
    return MLP(list(dims), activation, bias=bias).to(DT)


def test_hidden_shapes_and_first_is_input():
    m = _model()
    x = torch.randn(7, 5, dtype=DT)
    hs = m.forward_with_hidden(x)
    assert [tuple(h.shape) for h in hs] == [(7, 5), (7, 4), (7, 3), (7, 2)]
    assert hs[0] is x  # h^{(1)} = x
    assert m.num_layers == 3
    assert torch.equal(m(x), hs[-1])


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "sigmoid", "identity"])
def test_matches_nn_sequential(activation):
    """Same weights in a plain torch nn.Sequential give the same output (peer implementation)."""
    m = _model(activation=activation)
    act = {"tanh": nn.Tanh(), "relu": nn.ReLU(), "gelu": nn.GELU(), "sigmoid": nn.Sigmoid(), "identity": nn.Identity()}
    seq = nn.Sequential(m.layers[0], act[activation], m.layers[1], act[activation], m.layers[2])
    x = torch.randn(6, 5, dtype=DT)
    torch.testing.assert_close(m(x), seq(x), rtol=0, atol=1e-15)


def test_hidden_states_by_hand():
    m = _model()
    x = torch.randn(3, 5, dtype=DT)
    W1, b1 = m.layers[0].weight, m.layers[0].bias
    W2, b2 = m.layers[1].weight, m.layers[1].bias
    h2 = torch.tanh(x @ W1.T + b1)  # h^{(2)} = g(W^{(1)} h^{(1)} + b^{(1)}), weight is (out, in)
    h3 = torch.tanh(h2 @ W2.T + b2)
    hs = m.forward_with_hidden(x)
    torch.testing.assert_close(hs[1], h2, rtol=0, atol=1e-15)
    torch.testing.assert_close(hs[2], h3, rtol=0, atol=1e-15)
    for t in range(1, 5):
        torch.testing.assert_close(m.hidden(x, t), hs[t - 1], rtol=0, atol=0)


def test_per_layer_activations_and_last_layer_linear():
    m = _model(activation=["relu", "tanh"])
    assert m.activations == ["relu", "tanh", "identity"]
    x = torch.randn(4, 5, dtype=DT)
    hs = m.forward_with_hidden(x)
    assert (hs[1] >= 0).all()  # ReLU output
    torch.testing.assert_close(hs[3], m.layers[2](hs[2]), rtol=0, atol=0)  # last layer: no activation


def test_bias_free():
    m = _model(bias=False)
    assert not m.has_bias and _model().has_bias
    assert all(layer.bias is None for layer in m.layers)
    assert [n for n, _ in m.named_parameters()] == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    assert torch.equal(m(torch.zeros(2, 5, dtype=DT)), torch.zeros(2, 2, dtype=DT))  # linear+odd g: 0 -> 0


def test_single_vector_input():
    m = _model()
    x = torch.randn(5, dtype=DT)
    assert m(x).shape == (2,)
    assert set(ACTIVATIONS) >= {"tanh", "relu", "gelu", "sigmoid", "identity"}


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(dims=[5]), ValueError),
        (dict(dims=[5, 0, 2]), ValueError),
        (dict(dims=[5, -1, 2]), ValueError),
        (dict(dims=[5, 2.0, 2]), TypeError),
        (dict(dims=[5, 4, 2], activation="swishy"), ValueError),
        (dict(dims=[5, 4, 2], activation=["tanh", "tanh"]), ValueError),
    ],
)
def test_bad_construction(kwargs, err):
    with pytest.raises(err):
        MLP(**kwargs)


def test_bad_inputs():
    m = _model()
    with pytest.raises(ValueError):
        m(torch.randn(3, 4, dtype=DT))  # wrong width
    with pytest.raises(ValueError):
        m(torch.full((3, 5), float("nan"), dtype=DT))
    with pytest.raises(TypeError):
        m(torch.ones(3, 5, dtype=torch.int64))
    with pytest.raises(TypeError):
        m([[0.0] * 5])
    x = torch.randn(3, 5, dtype=DT)
    with pytest.raises(ValueError):
        m.hidden(x, 0)
    with pytest.raises(ValueError):
        m.hidden(x, 5)
    with pytest.raises(TypeError):
        m.hidden(x, 1.0)


def test_works_under_vmap_and_grad():
    """The standard per-sample-gradient recipe (functional_call + vmap(grad)) runs through MLP.forward."""
    m = _model()
    x = torch.randn(4, 5, dtype=DT)
    params = {k: v.detach() for k, v in m.named_parameters()}

    def loss_one(p, xo):
        return torch.func.functional_call(m, p, (xo[None],)).sum()

    g = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0))(params, x)
    for b in range(4):
        ref = torch.autograd.grad(m(x[b]).sum(), list(m.parameters()))
        for name, r in zip(params, ref):
            torch.testing.assert_close(g[name][b], r, rtol=0, atol=1e-14)
    with pytest.raises(ValueError):  # the width check still applies inside vmap
        torch.func.vmap(m)(torch.randn(4, 3, dtype=DT))


def test_single_layer_mlp_and_vector_input():
    # dims of length 2 is one linear layer with no activation; a single (d,) vector is accepted
    torch.manual_seed(0)
    model = MLP([3, 2]).to(DT)
    assert model.num_layers == 1
    x = torch.randn(3, dtype=DT)
    lin = model.layers[0]
    torch.testing.assert_close(model(x), lin.weight @ x + lin.bias, rtol=0, atol=1e-15)
