"""The engine loop: stop reasons, interrupts, registry, resume counters, dtypes."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from objectives import AutogradObjective, Quadratic

from pinnsolve.optim import (
    LBFGS,
    METHODS,
    STOP_REASONS,
    Adam,
    GradientDescent,
    Method,
    Progress,
    StopCriteria,
    interrupt_guard,
    make_method,
    minimize,
)


def test_stop_gtol():
    q = Quadratic(n=10)
    res = minimize(q, q.x0(), LBFGS(), StopCriteria(gtol=1e-6))
    assert res.stop_reason == "gtol" and res.grad_norm <= 1e-6
    assert res.message == STOP_REASONS["gtol"]


def test_stop_ftol():
    q = Quadratic(n=10, cond=1e3)
    res = minimize(q, q.x0(), GradientDescent(lr=1e-3), StopCriteria(ftol=1e-3, patience=3))
    assert res.stop_reason == "ftol" and res.iterations < 1000
    h = res.loss_history
    for a, b in zip(h[-3:], h[-2:], strict=False):
        assert abs(a - b) <= 1e-3 * max(abs(a), abs(b))


def test_stop_max_iter():
    q = Quadratic(n=10)
    res = minimize(q, q.x0(), GradientDescent(), StopCriteria(max_iter=7))
    assert res.stop_reason == "max_iter" and res.iterations == 7
    assert len(res.loss_history) == 8


def test_stop_max_evals():
    q = Quadratic(n=10)
    res = minimize(q, q.x0(), LBFGS(), StopCriteria(max_evals=6, max_iter=None))
    assert res.stop_reason == "max_evals" and res.function_evals >= 6
    assert res.function_evals == q.evals


def test_stop_max_time():
    q = Quadratic(n=5, cond=1e4)

    class Slow:
        def loss(self, theta):
            return q.loss(theta)

        def loss_and_grad(self, theta):
            time.sleep(0.01)
            return q.loss_and_grad(theta)

    res = minimize(Slow(), q.x0(), GradientDescent(lr=1e-5),
                   StopCriteria(max_time=0.15, max_iter=None))
    assert res.stop_reason == "max_time"
    assert 0.15 <= res.wall_time_s < 1.0 and 0 < res.iterations < 15


def test_stop_callback_and_non_finite_start():
    q = Quadratic(n=4)
    res = minimize(q, q.x0(), LBFGS(), callbacks=[lambda t, p, m: p.iteration >= 2])
    assert res.stop_reason == "callback" and res.iterations == 2
    nan = AutogradObjective(lambda x: (x**2).sum() * torch.nan)
    res = minimize(nan, torch.ones(3, dtype=torch.float64), LBFGS())
    assert res.stop_reason == "non_finite" and res.iterations == 0


@pytest.mark.parametrize("name", ["lbfgs", "gd", "adam"])
def test_keyboard_interrupt_from_objective(name):
    q = Quadratic(n=6, seed=1)
    obj = AutogradObjective(q.loss, raise_at=6)
    theta = q.x0()
    method = make_method(name)
    accepted = [theta.clone()]
    res = minimize(obj, theta, method, StopCriteria(max_iter=100),
                   callbacks=[lambda t, p, m: accepted.append(t.clone())])
    assert res.stop_reason == "interrupted"
    assert torch.equal(theta, accepted[-1])  # the last accepted iterate
    assert res.iterations == len(accepted) - 1
    if name != "adam":  # Adam's state holds values at the previous point, by design
        loss, grad = AutogradObjective(q.loss).loss_and_grad(theta)
        assert torch.equal(method.state["grad"], grad)


def test_interrupt_guard_defers_sigint():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt_guard():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            done.append(1)  # still runs: the interrupt waits for the end of the block
    assert done == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupt_guard():  # no signal: nothing happens
        done.append(2)
    assert done == [1, 2]


def test_progress_counts_continue_on_resume():
    q = Quadratic(n=8)
    theta = q.x0()
    method = LBFGS()
    progress = Progress()
    minimize(q, theta, method, StopCriteria(max_iter=3), progress=progress)
    evals = progress.function_evals
    res = minimize(q, theta, method, StopCriteria(max_iter=6), progress=progress)
    assert res.iterations == 6 and len(res.loss_history) == 7
    assert res.function_evals == q.evals and res.function_evals > evals


def test_registry_and_make_method():
    assert {"lbfgs": LBFGS, "gd": GradientDescent, "adam": Adam}.items() <= METHODS.items()
    m = make_method("lbfgs", history=7)
    assert isinstance(m, LBFGS) and m.history == 7 and m.name == "lbfgs"
    assert make_method("adam", lr=0.1).lr == 0.1
    known = ", ".join(sorted(METHODS))
    with pytest.raises(ValueError) as err:
        make_method("xyz")
    assert str(err.value) == f"unknown optimizer 'xyz'; choose from: {known}"
    with pytest.raises(TypeError):
        make_method("gd", history=3)


@pytest.mark.parametrize("name", ["lbfgs", "gd", "adam"])
def test_float32_runs_and_keeps_dtype(name):
    q = Quadratic(n=10, cond=10.0, dtype=torch.float32)
    theta = q.x0()
    method = make_method(name)
    res = minimize(q, theta, method, StopCriteria(max_iter=20))
    assert res.stop_reason in ("max_iter", "gtol")
    assert theta.dtype == torch.float32
    assert method.state["loss"].dtype == torch.float32
    assert method.state["grad"].dtype == torch.float32
    assert res.loss < res.loss_history[0]


def test_refresh_keeps_state():
    q = Quadratic(n=5)
    theta = q.x0()
    method = LBFGS()
    minimize(q, theta, method, StopCriteria(max_iter=3))
    count = method.state["count"]
    info = method.refresh(q, theta)
    assert info.evals == 1 and method.state["count"] == count
    fresh = Method()
    info = fresh.refresh(q, theta)  # no state: falls back to start()
    assert torch.equal(fresh.state["grad"], q.loss_and_grad(theta)[1])
