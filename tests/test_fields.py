import math

import pytest
import torch

from pinnsolve.fields import FieldSet, Plan, parse_derivative


def analytic(Z):
    x, t = Z[:, 0], Z[:, 1]
    return torch.stack([torch.sin(2 * x) * torch.exp(t), x**3 * t**2 + x * t], dim=1)


@pytest.fixture
def fs():
    Z = torch.rand(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    return FieldSet(analytic, Z, ("x", "t"), ("u", "v")), Z[:, 0], Z[:, 1]


def test_derivatives_match_closed_forms(fs):
    s, x, t = fs
    u, v = s["u"], s["v"]
    cases = {
        (u, "x"): 2 * torch.cos(2 * x) * torch.exp(t),
        (u, "t"): torch.sin(2 * x) * torch.exp(t),
        (u, "xx"): -4 * torch.sin(2 * x) * torch.exp(t),
        (u, "xt"): 2 * torch.cos(2 * x) * torch.exp(t),
        (u, "tx"): 2 * torch.cos(2 * x) * torch.exp(t),
        (u, "xxx"): -8 * torch.cos(2 * x) * torch.exp(t),
        (u, "xxxx"): 16 * torch.sin(2 * x) * torch.exp(t),
        (v, "x"): 3 * x**2 * t**2 + t,
        (v, "xxt"): 12 * x * t,
        (v, "tt"): 2 * x**3,
        (v, "xt"): 6 * x**2 * t + 1,
    }
    for (f, name), expected in cases.items():
        torch.testing.assert_close(getattr(f, name), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(u.d("x", "t"), cases[(u, "xt")])


def test_field_acts_as_tensor(fs):
    s, x, t = fs
    u = s["u"]
    value = torch.sin(2 * x) * torch.exp(t)
    torch.testing.assert_close(u * u.x + 1 - u, value * u.x + 1 - value)
    torch.testing.assert_close(torch.sin(u), torch.sin(value))
    torch.testing.assert_close(2.0 * u, 2 * value)
    torch.testing.assert_close(u**2 / 2, value**2 / 2)
    assert u.shape == (50,)


def test_plan_learns_and_prefetches_once():
    calls = []

    def counted(Z):
        calls.append(1)
        return analytic(Z)

    Z = torch.rand(10, 2, dtype=torch.float64)
    plan = Plan()
    s = FieldSet(counted, Z, ("x", "t"), ("u", "v"), plan)
    s["u"].t, s["u"].xx, s["u"].x  # noqa: B018
    assert plan.keys == {(1,), (0, 0), (0,)}
    assert plan.chains() == [(0,)]
    calls.clear()
    s2 = FieldSet(counted, Z, ("x", "t"), ("u", "v"), plan)
    assert len(calls) == 1  # one nested pass evaluates the network once
    s2["u"].t, s2["u"].xx, s2["u"].x, s2["u"].value  # noqa: B018
    assert len(calls) == 1


def test_chains_cover_suffixes():
    plan = Plan()
    plan.keys = {(0, 0, 1), (0, 1), (1, 1), (0,), ()}
    chains = plan.chains()
    # (0, 0) serves (0, 0, 1) and, as its suffix, (0,) which serves (0, 1); (1,) is separate
    assert (0, 0) in chains and (1,) in chains and len(chains) == 2


def test_parse_derivative_names():
    assert parse_derivative("xxt", ("x", "t")) == (0, 0, 1)
    assert parse_derivative("x1x2x1", ("x1", "x2")) == (0, 0, 1)
    with pytest.raises(AttributeError, match="coordinates are x, t"):
        parse_derivative("y", ("x", "t"))


def test_unknown_derivative_is_a_clear_error(fs):
    s, _, _ = fs
    with pytest.raises(AttributeError, match="'z' is not a derivative"):
        s["u"].z  # noqa: B018


def test_network_derivative_matches_autograd():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    net = net.double()
    Z = torch.rand(20, 2, requires_grad=True, dtype=torch.float64)
    u = net(Z)[:, 0]
    g = torch.autograd.grad(u.sum(), Z, create_graph=True)[0]
    uxx = torch.autograd.grad(g[:, 0].sum(), Z)[0][:, 0]
    s = FieldSet(net, Z.detach(), ("x", "t"), ("u",))
    torch.testing.assert_close(s["u"].xx, uxx)
    torch.testing.assert_close(s["u"].t, g[:, 1].detach())
    assert math.isfinite(float(s["u"].value.detach().sum()))
