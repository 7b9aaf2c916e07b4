import pytest
import torch

from pinnsolve.models import MLP, OutputTransform, parse_layers


def test_parse_layers():
    assert parse_layers("20, 20,20") == (20, 20, 20)
    assert parse_layers([5]) == (5,)
    for bad in ("", "20,x", "20,-1", "0"):
        with pytest.raises(ValueError, match="layers"):
            parse_layers(bad)


def test_mlp_shapes_init_and_seed():
    a = MLP(2, 3, (7, 5), seed=3)
    b = MLP(2, 3, (7, 5), seed=3)
    z = torch.rand(11, 2, dtype=torch.float64)
    assert a(z).shape == (11, 3)
    assert torch.equal(a(z), b(z))
    assert sum(p.numel() for p in a.parameters()) == 2 * 7 + 7 + 7 * 5 + 5 + 5 * 3 + 3
    assert all(float(m.bias.detach().abs().max()) == 0 for m in a.layers if hasattr(m, "bias"))


def test_mlp_input_scaling_maps_box_to_unit_cube():
    m = MLP(2, 1, (4,), lows=[-1, 0], highs=[1, 2])
    z = torch.tensor([[-1.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(z * m.scale + m.shift, torch.tensor([[-1.0, -1.0], [1.0, 1.0]],
                                                                   dtype=torch.float64))


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        MLP(1, 1, (3,), activation="relu6")


def test_output_transform():
    net = MLP(2, 1, (4,), seed=0)
    hard = OutputTransform(net, lambda z, n: z[:, 1:] * n + 1.0)
    z = torch.tensor([[0.3, 0.0], [0.1, 0.5]], dtype=torch.float64)
    out = hard(z)
    assert float(out[0, 0].detach()) == 1.0
    torch.testing.assert_close(out[1], 0.5 * net(z[1:])[0] + 1.0)


@pytest.mark.parametrize("shared", [True, False])
def test_stacked_forward_equals_one_call_per_parameter_set(shared):
    from torch.func import functional_call

    from pinnsolve.models import stacked_forward
    from pinnsolve.objective import flatten_parameters

    net = MLP(2, 3, (5, 4), lows=[-1.0, 0.0], highs=[1.0, 2.0], seed=0)
    model = OutputTransform(net, lambda z, u: z[:, :1] * u + torch.sin(z[:, 1:]))
    gen = torch.Generator().manual_seed(0)
    for m in (net, model):
        base = flatten_parameters(m)
        thetas = base + torch.randn(3, base.numel(), generator=gen, dtype=torch.float64)
        z = torch.rand(3, 7, 2, generator=gen, dtype=torch.float64)
        if shared:
            z = z[0]
        out = stacked_forward(m)(thetas, z)
        assert out.shape == (3, 7, 3)
        names = [n for n, _ in m.named_parameters()]
        for i in range(3):
            chunks = thetas[i].split([p.numel() for p in m.parameters()])
            params = {n: c.view(p.shape) for n, c, p in zip(names, chunks, m.parameters())}
            ref = functional_call(m, params, (z if shared else z[i],))
            torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-14)


def test_stacked_forward_is_none_without_a_batched_forward():
    from pinnsolve.models import stacked_forward

    plain = torch.nn.Sequential(torch.nn.Linear(2, 3))
    assert stacked_forward(plain) is None
    assert stacked_forward(OutputTransform(plain, lambda z, u: u)) is None
    assert stacked_forward(MLP(2, 1, (3,))) is not None


def test_forward_layers_records_each_linear_layer():
    net = MLP(3, 2, (5, 4), seed=0)
    params = dict(net.named_parameters())
    z = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out, linear = net.forward_layers(params, z)
    assert torch.equal(out, net(z)) and len(linear) == 3
    for (a, W, b, zl), width in zip(linear, (5, 4, 2), strict=True):
        assert zl.shape == (7, width) and torch.allclose(zl, a @ W.T + b, rtol=1e-14)
    assert torch.equal(linear[1][0], torch.tanh(linear[0][3]))
