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
