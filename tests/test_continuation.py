"""Homotopy continuation: the path, the budget split, and a Burgers run that ends at the
target viscosity (through the Trainer, with resampling)."""

from __future__ import annotations

import math

import pytest
import torch

from pinnsolve import MLP
from pinnsolve.continuation import (
    budget_shares,
    continuation_stages,
    parameter_path,
    parse_continuation,
)
from pinnsolve.optim import StopCriteria, make_method
from pinnsolve.problems.burgers import make_problem
from pinnsolve.train import Stage, Trainer, set_parameters


def test_geometric_path_has_equal_ratios_and_exact_ends():
    path = parameter_path(0.1, 0.01 / math.pi, 4)
    assert len(path) == 5 and path[0] == 0.1 and path[-1] == 0.01 / math.pi
    ratios = [b / a for a, b in zip(path, path[1:])]
    assert max(ratios) - min(ratios) < 1e-12
    assert parameter_path(1.0, 3.0, 2, "linear") == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="same sign"):
        parameter_path(-1.0, 1.0, 3)
    with pytest.raises(ValueError, match="at least 1"):
        parameter_path(1.0, 2.0, 0)


def test_budget_shares_and_parse():
    assert budget_shares(5) == [0.125] * 4 + [0.5]
    assert math.isclose(sum(budget_shares(3, 0.6)), 1.0)
    assert parse_continuation("nu:0.1/pi") == ("nu", 0.1 / math.pi)
    for bad in ("nu", "nu:", ":0.1", "nu:abc", "1x:0.1"):
        with pytest.raises(ValueError):
            parse_continuation(bad)


def test_stages_split_the_budget():
    stages = continuation_stages(lambda: make_method("lbfgs"), "nu", 0.1, 0.01, steps=3,
                                 stop=StopCriteria(max_iter=600), max_time=60.0)
    assert [s.parameters["nu"] for s in stages] == pytest.approx([0.1, 0.1 / 10 ** (1 / 3),
                                                                  0.1 / 10 ** (2 / 3), 0.01])
    assert [s.stop.max_iter for s in stages] == [100, 100, 100, 300]
    assert [s.stop.max_time for s in stages[:-1]] == pytest.approx([10.0] * 3)
    assert stages[-1].stop.max_time is None  # the Trainer's budget bounds the last one
    assert len({id(s.method) for s in stages}) == 4  # a fresh method per stage


def test_unknown_parameter_is_a_clear_error():
    problem = make_problem(nu=0.1, points=16, boundary_points=4, initial_points=4)
    obj = problem.compile(MLP(2, 1, (4,), lows=[-1, 0], highs=[1, 1], seed=0))
    with pytest.raises(ValueError, match="unknown problem parameter.*mu.*known: nu"):
        set_parameters(obj, {"mu": 1.0})


def test_burgers_continuation_reaches_the_target_problem():
    """nu: 0.1 -> 0.01 in 3 steps with resampling: each stage's loss is that of its own
    nu, and at the end the objective is the target problem (loss recomputed there)."""
    torch.set_num_threads(1)
    target = 0.01
    problem = make_problem(nu=target, points=128, boundary_points=32, initial_points=32)
    obj = problem.compile(MLP(2, 1, (10, 10), lows=[-1, 0], highs=[1, 1], seed=0))
    seen = []

    def record(theta, progress, method):
        seen.append(obj.parameters["nu"])

    stages = continuation_stages(lambda: make_method("lbfgs", history=20), "nu", 0.1, target,
                                 steps=3, stop=StopCriteria(max_iter=120))
    result = Trainer(obj, stages, callbacks=[record], resample_every=20, seed=0,
                     progress_bar=False).fit()
    assert obj.parameters["nu"] == target
    assert sorted(set(seen), reverse=True) == pytest.approx(parameter_path(0.1, target, 3))
    assert len(result.stages) == 4 and result.iterations == 120
    # the reported final loss is the target problem's loss at the final theta
    assert result.final_loss == pytest.approx(float(obj.loss(result.theta)), rel=1e-9)
    plain = make_problem(nu=target, points=128, boundary_points=32, initial_points=32)
    plain_obj = plain.compile(MLP(2, 1, (10, 10), lows=[-1, 0], highs=[1, 1], seed=0))
    plain_obj.resample(result.iterations // 20)  # the points of the last block
    assert float(plain_obj.loss(result.theta)) == pytest.approx(result.final_loss, rel=1e-9)
    assert result.rel_l2_error < 0.5


def test_stage_parameters_through_the_trainer_without_continuation():
    problem = make_problem(nu=0.05, points=32, boundary_points=8, initial_points=8)
    obj = problem.compile(MLP(2, 1, (4,), lows=[-1, 0], highs=[1, 1], seed=0))
    stages = [Stage(make_method("gd"), StopCriteria(max_iter=2), parameters={"nu": 0.2}),
              Stage(make_method("gd"), StopCriteria(max_iter=2), parameters={"nu": 0.05})]
    Trainer(obj, stages, progress_bar=False).fit()
    assert obj.parameters == {"nu": 0.05}
