"""Gradient descent: line-search and fixed-step variants."""

from __future__ import annotations

import pytest
import torch
from objectives import AutogradObjective, Quadratic, rosenbrock, rosenbrock_start

from pinnsolve.optim import GradientDescent, Progress, StopCriteria, minimize


@pytest.mark.parametrize("options", [{}, {"line_search": "strong_wolfe"}, {"lr": 0.015}])
def test_gd_solves_quadratic(options):
    q = Quadratic(n=20, cond=10.0, seed=1)
    theta = q.x0()
    res = minimize(q, theta, GradientDescent(**options), StopCriteria(gtol=1e-6, max_iter=3000))
    print(f"gd {options}: {res.iterations} iterations, {res.function_evals} evaluations")
    assert res.stop_reason == "gtol"
    assert res.loss - q.fstar < 1e-10
    assert torch.allclose(theta, q.xstar, atol=1e-5, rtol=0)
    if "lr" in options:
        assert res.function_evals == res.iterations + 1
    else:
        assert res.function_evals <= 2 * res.iterations + 1


def test_gd_is_monotone_with_line_search():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(2)
    res = minimize(obj, theta, GradientDescent(), StopCriteria(max_iter=200))
    hist = res.loss_history
    assert all(b < a for a, b in zip(hist, hist[1:], strict=False))
    assert hist[-1] < 0.1 * hist[0]


def test_initial_step_doubles_previous():
    q = Quadratic(n=5, cond=4.0, seed=2)
    theta = q.x0()
    method = GradientDescent(growth=2.0)
    steps0 = []
    real = method.line_search

    def spy(phi, f0, gtd0, step0, *, d=None):
        steps0.append(step0)
        return real(phi, f0, gtd0, step0, d=d)

    method.line_search = spy
    accepted = []
    minimize(q, theta, method, StopCriteria(max_iter=5),
             callbacks=[lambda t, p, m: accepted.append(m.state["step"])])
    g0 = q.loss_and_grad(q.x0())[1]
    assert steps0[0] == pytest.approx(min(1.0, 1.0 / float(g0.abs().sum())))
    for trial, previous in zip(steps0[1:], accepted, strict=False):
        assert trial == 2.0 * previous


def test_fixed_step_divergence_is_caught():
    q = Quadratic(n=5, cond=10.0, seed=0)
    theta = q.x0() + 1.0
    res = minimize(q, theta, GradientDescent(lr=1.0), StopCriteria(max_iter=10_000))
    assert res.stop_reason == "non_finite"
    assert torch.isfinite(theta).all()  # the non-finite step was not taken


def test_gd_resume_and_float32():
    q = Quadratic(n=8, cond=5.0, seed=4, dtype=torch.float32)
    full = q.x0()
    minimize(q, full, GradientDescent(), StopCriteria(max_iter=12))
    theta = q.x0()
    method = GradientDescent()
    progress = Progress()
    minimize(q, theta, method, StopCriteria(max_iter=6), progress=progress)
    fresh = GradientDescent()
    fresh.load_state_dict(method.state_dict())
    minimize(q, theta, fresh, StopCriteria(max_iter=12), progress=progress)
    assert torch.equal(theta, full)
    assert theta.dtype == torch.float32 and fresh.state["grad"].dtype == torch.float32


def test_gd_validation():
    with pytest.raises(ValueError):
        GradientDescent(lr=0.0)
    with pytest.raises(ValueError):
        GradientDescent(growth=0.5)
