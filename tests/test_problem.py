import numpy as np
import pytest
import torch

from pinnsolve import (
    MLP,
    Data,
    Dirichlet,
    Initial,
    Interval,
    Neumann,
    Periodic,
    Problem,
    Rectangle,
    Robin,
    TimeInterval,
)
from pinnsolve.problems.burgers import make_problem


def test_burgers_problem_terms_and_validation():
    p = make_problem(nu=0.01)
    assert [c.name for c in p.conditions] == ["pde", "ic", "bc"]
    assert p.coords == ("x", "t") and p.parameters == {"nu": 0.01}
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="viscosity nu must be a positive number"):
            make_problem(nu=bad)


def test_evaluation_grid_is_the_standard_one():
    grid = make_problem(nu=0.01).evaluation_grid()
    assert grid.shape == (256 * 100, 2)
    assert np.unique(grid[:, 0]).size == 256 and np.unique(grid[:, 1]).size == 100
    assert grid[:, 1].max() == 1.0 and grid[:, 0].min() == -1.0


def test_term_names_are_made_unique():
    p = Problem(Interval(0, 1) * TimeInterval(0, 1))
    p.add(Dirichlet(0.0), Dirichlet(1.0))
    assert [c.name for c in p.conditions] == ["bc", "bc2"]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Dirichlet(0.0, n=0), "positive integer"),
        (lambda: Dirichlet(0.0, weight=-1.0), "weight"),
        (lambda: Dirichlet(0.0, sampler="halton"), "unknown sampler 'halton'"),
        (lambda: Data(np.zeros((3, 2)), np.zeros(2)), "data points"),
        (lambda: Problem(Interval(0, 1), fields=("x",)), "clash"),
        (lambda: Problem(Interval(0, 1), fields=("u", "u")), "distinct"),
    ],
)
def test_bad_input_is_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_neumann_and_robin_use_outward_normals():
    # u = x^2 + y on the unit square: du/dn = 2x on x = 1, 0 on x = 0, 1 on y = 1, -1 on y = 0.
    class Exact(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, z):
            return (self.c * z[:, :1] ** 2 + z[:, 1:]).reshape(-1, 1)

    def dudn(x, y):
        return torch.where(x > 1 - 1e-12, 2 * x, torch.where(x < 1e-12, 0 * x,
                           torch.where(y > 1 - 1e-12, 1 + 0 * x, -1 + 0 * x)))

    p = Problem(Rectangle((0, 0), (1, 1), ("x", "y")))
    p.add(Neumann(dudn, n=40), Robin(2.0, 3.0, lambda x, y: 2 * (x**2 + y) + 3 * dudn(x, y), n=40))
    obj = p.compile(Exact())
    losses = obj.term_losses(obj.initial_theta())
    assert losses["neumann"] < 1e-28 and losses["robin"] < 1e-28


def test_periodic_and_data_terms():
    class Periodic1(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.k = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, z):
            return torch.sin(self.k * np.pi * z[:, :1]) * torch.exp(-z[:, 1:])

    p = Problem(Interval(-1, 1) * TimeInterval(0, 1))
    pts = np.array([[0.5, 0.0], [-0.5, 0.0]])
    p.add(Periodic("x", derivatives=("x",), n=16), Data(pts, np.sin(np.pi * pts[:, 0])),
          Initial(lambda x: torch.sin(np.pi * x), n=8))
    obj = p.compile(Periodic1())
    losses = obj.term_losses(obj.initial_theta())
    assert max(losses.values()) < 1e-28
    losses = obj.term_losses(torch.full((1,), 0.5, dtype=torch.float64))
    assert losses["periodic"] > 1e-3 and losses["data"] > 1e-3


def test_seeded_points_are_reproducible():
    p = make_problem(nu=0.1, points=50)
    a = p.compile(MLP(2, 1, (4,)), seed=3).terms[0].points[0]
    b = p.compile(MLP(2, 1, (4,)), seed=3).terms[0].points[0]
    c = p.compile(MLP(2, 1, (4,)), seed=4).terms[0].points[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
