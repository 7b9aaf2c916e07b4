"""Mistakes users make when writing a problem: each gets an error naming the problem."""

from __future__ import annotations

import math

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
    TimeInterval,
)


def heat(residual=None, **kw):
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), parameters={"k": 0.1}, **kw)
    p.pde(residual or (lambda u, k: u.t - k * u.xx), n=20)
    return p


def compile_(p, out=1):
    return p.compile(MLP(p.domain.dim, out, (4,), seed=0))


@pytest.mark.parametrize("residual, match", [
    (lambda u: u.t - u.yy, r"term 'pde': 'yy' is not a derivative: coordinates are x, t"),
    (lambda u, y: u.t - y, r"argument 'y' is not a field \(u\), a coordinate \(x, t\) or a "
                           r"parameter \(k\)"),
    (lambda u, nu: u.t - nu * u.xx, r"argument 'nu' is not a field"),
])
def test_unknown_coordinate_or_argument(residual, match):
    with pytest.raises((ValueError, TypeError), match=match):
        compile_(heat(residual))


@pytest.mark.parametrize("residual, match", [
    (lambda u, x: u.t[:, None] - x, r"term 'pde' returns 2 columns on 2 points but 3 on 3"),
    (lambda u: u.t.sum(), r"residual 'pde' returned shape \(\) on 2 points"),
    (lambda u: 3.0, r"residual 'pde' must return a tensor, got float"),
])
def test_wrong_shape(residual, match):
    with pytest.raises((ValueError, TypeError), match=match):
        compile_(heat(residual))


def test_nan_at_initialisation_names_the_term_and_a_point():
    with pytest.raises(ValueError, match=r"term 'pde' is not finite at the initial parameters "
                                         r"at \d+ of 20 points, e.g. at x="):
        compile_(heat(lambda u: u.t - torch.log(u - 1e3)))


@pytest.mark.parametrize("domain, condition, match", [
    (Interval(0, 1), Initial(0.0), r"Initial condition 'ic' needs an initial time"),
    (TimeInterval(0, 1), Dirichlet(0.0), r"Dirichlet condition 'bc' needs a spatial boundary"),
    (Interval(0, 1) * TimeInterval(0, 1), Periodic("t"), r"Periodic condition 'periodic' is "
                                                         r"in coordinate 't'; the domain's "
                                                         r"spatial coordinates are x"),
    (Interval(0, 1) * TimeInterval(0, 1), Periodic("y"), r"coordinates are x"),
    (Rectangle((0, 0), (1, 1)), Dirichlet(0.0, field="v"), r"is on field 'v'; the problem's "
                                                            r"fields are u"),
    (Interval(0, 1), Initial(0.0, derivative="t"), r"needs an initial time"),
    (Interval(0, 1) * TimeInterval(0, 1), Neumann(0.0, derivative="y"),
     r"derivative 'y' is not made of the coordinates x, t"),
    (Interval(0, 1) * TimeInterval(0, 1), Data([[0.5, 0.5, 0.5]], [1.0]),
     r"data points have 3 coordinates; the domain has 2"),
])
def test_condition_on_a_part_the_domain_lacks(domain, condition, match):
    with pytest.raises(ValueError, match=match):
        Problem(domain).add(condition)


def test_float32_values_in_a_float64_run_are_converted():
    """An initial condition computed in float32 (or numpy) is converted to the run's dtype."""
    p = heat()
    p.add(Initial(lambda x: torch.sin(math.pi * x).float(), n=10),
          Dirichlet(lambda t: np.zeros(t.shape[0]), n=10))
    obj = compile_(p)
    assert obj.term("ic").aux["target"].dtype == torch.float64
    assert obj.term("bc").aux["target"].dtype == torch.float64
    # an (N, 1) value is one field, not broadcast against (N,) into (N, N)
    p2 = heat()
    p2.add(Initial(lambda x: torch.sin(math.pi * x)[:, None], n=10))
    assert obj.term("ic").aux["target"].shape == (10,)
    assert compile_(p2).term("ic").aux["target"].shape == (10,)


@pytest.mark.parametrize("residual, error, match", [
    (lambda u: (u.t - u.xx).float(), TypeError,
     r"term 'pde' gives torch.float32 values in a torch.float64 run"),
    (lambda u: torch.zeros(u.shape, dtype=torch.float64, device="meta"), ValueError,
     r"term 'pde' gives values on device meta in a run on cpu"),
])
def test_residual_of_another_dtype_or_device(residual, error, match):
    with pytest.raises(error, match=match):
        compile_(heat(residual))


def test_model_with_the_wrong_number_of_outputs():
    with pytest.raises(ValueError, match=r"the problem has 1 field\(s\) \('u',\), so expected"):
        compile_(heat(), out=2)
