"""Learning-rate schedules: factors at known steps, bad input, and their use by the methods."""

from __future__ import annotations

import math

import pytest
import torch
from objectives import LogisticRegression, Quadratic

from pinnsolve.optim import SCHEDULES, StopCriteria, make_method, make_schedule, minimize


@pytest.mark.parametrize("name, k, expected", [
    ("constant", 0, 1.0), ("constant", 10 ** 6, 1.0),
    ("step", 0, 1.0), ("step", 49, 1.0), ("step", 50, 0.1), ("step", 74, 0.1),
    ("step", 75, 0.01), ("step", 500, 0.01),
    ("exponential", 0, 1.0), ("exponential", 50, 0.1), ("exponential", 100, 0.01),
    ("exponential", 200, 0.01),
    ("cosine", 0, 1.0), ("cosine", 50, 0.5), ("cosine", 25, 0.5 * (1 + math.cos(math.pi / 4))),
    ("cosine", 100, 0.0), ("cosine", 150, 0.0),
    ("linear", 0, 1.0), ("linear", 25, 0.75), ("linear", 100, 0.0), ("linear", 101, 0.0),
])
def test_factors_at_known_steps(name, k, expected):
    assert make_schedule(name, 100)(k) == pytest.approx(expected, abs=1e-12)


def test_options_gamma_and_final():
    assert make_schedule("step", 8, gamma=0.5)(6) == pytest.approx(0.25)
    assert make_schedule("cosine", 10, final=0.1)(10) == pytest.approx(0.1)
    assert make_schedule("linear", 10, final=0.2)(5) == pytest.approx(0.6)
    assert make_schedule("exponential", 10, gamma=0.5)(10) == pytest.approx(0.5)
    assert "cosine over 10 iterations" in make_schedule("cosine", 10).describe()


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_starts_at_one_and_never_grows(name):
    s = make_schedule(name, 37)
    values = [s(k) for k in range(60)]
    assert values[0] == 1.0
    assert all(b <= a + 1e-15 for a, b in zip(values, values[1:]))
    assert all(0.0 <= v <= 1.0 for v in values)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="'cosinus'.*cosine"):
        make_schedule("cosinus", 10)
    with pytest.raises(ValueError, match="decay_steps.*0"):
        make_schedule("cosine", 0)
    with pytest.raises(ValueError, match="decay_steps"):
        make_schedule("cosine", 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma"):
        make_schedule("step", 10, gamma=1.5)
    with pytest.raises(ValueError, match="final"):
        make_schedule("cosine", 10, final=-0.1)
    with pytest.raises(ValueError, match="iteration"):
        make_schedule("cosine", 10)(-1)
    with pytest.raises(TypeError, match="lr_schedule"):
        make_method("sgd", lr_schedule="cosine")
    with pytest.raises(ValueError, match="fixed lr"):
        make_method("gd", lr_schedule=make_schedule("cosine", 10))


def test_sgd_follows_the_schedule_exactly():
    """Plain SGD on the full quadratic loss: theta_{k+1} = theta_k - lr sigma(k) grad."""
    q = Quadratic(n=4, seed=0)
    sched = make_schedule("step", 4, gamma=0.5)
    theta, ref = q.x0(), q.x0()
    minimize(q, theta, make_method("sgd", lr=0.05, momentum=0.0, lr_schedule=sched),
             StopCriteria(max_iter=6))
    for k in range(6):
        ref = ref - 0.05 * sched(k) * q.loss_and_grad(ref)[1]
    torch.testing.assert_close(theta, ref)


@pytest.mark.parametrize("name", ["sgd", "adam", "slbfgs", "mlbfgs", "gd"])
def test_a_zero_schedule_freezes_the_step_size_methods(name):
    """``linear`` over 1 step: sigma(k) = 0 from k = 1 on, so only the first step moves."""
    prob = LogisticRegression(n_samples=64, dim=4, lam=1e-2, seed=0)
    opts = {"lr": 0.05, "lr_schedule": make_schedule("linear", 1)}
    if name != "gd":
        opts["batch_size"] = 16
    if name == "slbfgs":
        opts["inner_steps"] = 100  # no snapshot step in between
    iterates = []
    theta = torch.zeros(prob.dim, dtype=torch.float64)
    minimize(prob, theta, make_method(name, **opts), StopCriteria(max_iter=5),
             callbacks=[lambda th, p, m: iterates.append(th.clone())])
    assert not torch.equal(iterates[0], torch.zeros_like(theta))
    for later in iterates[1:]:
        torch.testing.assert_close(later, iterates[0], rtol=0, atol=0)


def test_schedule_resumes_exactly():
    from pinnsolve.optim import Progress

    prob = LogisticRegression(n_samples=64, dim=4, lam=1e-2, seed=0)

    def method():
        return make_method("adam", lr=0.1, batch_size=8, lr_schedule=make_schedule("cosine", 10))

    a = torch.zeros(prob.dim, dtype=torch.float64)
    minimize(prob, a, method(), StopCriteria(max_iter=10))
    b = torch.zeros(prob.dim, dtype=torch.float64)
    m, progress = method(), Progress()
    minimize(prob, b, m, StopCriteria(max_iter=4), progress=progress)
    m2 = method()
    m2.load_state_dict(m.state_dict())
    minimize(prob, b, m2, StopCriteria(max_iter=10), progress=progress)
    assert progress.iteration == 10
    torch.testing.assert_close(a, b, rtol=0, atol=0)
