"""Nonlinear CG: linear-CG equivalence, Rosenbrock vs scipy, restarts, guards, resume."""

from __future__ import annotations

import copy

import pytest
import torch
from objectives import AutogradObjective, Quadratic, rosenbrock, rosenbrock_start

from pinnsolve.optim import Progress, StopCriteria, minimize
from pinnsolve.optim.linesearch import LineSearchResult
from pinnsolve.optim.ncg import (
    NCGDaiYuan,
    NCGFletcherReeves,
    NCGHestenesStiefel,
    NCGPolakRibiere,
    NonlinearCG,
)

BETAS = ["fr", "pr", "hs", "dy"]


def exact_quadratic_search(phi, f0, g0_dot_d, step0, *, d=None):
    """Exact minimizer along d for a quadratic: phi'(a) is linear in a (2 evaluations)."""
    _, g1 = phi(1.0)
    dad = float(g1 @ d) - float(g0_dot_d)  # d'Ad
    a = -float(g0_dot_d) / dad
    fa, ga = phi(a)
    return LineSearchResult(a, fa, ga, 2, True)


def stop_when_grad_below(tol):
    def callback(theta, progress, method):
        return bool(torch.linalg.vector_norm(method.state["grad"]) < tol)

    return callback


def test_names_and_subclasses():
    classes = {NCGFletcherReeves: ("ncg-fr", "fr"), NCGPolakRibiere: ("ncg-pr", "pr"),
               NCGHestenesStiefel: ("ncg-hs", "hs"), NCGDaiYuan: ("ncg-dy", "dy")}
    for cls, (name, beta) in classes.items():
        assert cls.name == name and cls().name == name and cls().beta == beta
        assert NonlinearCG(beta=beta).name == name
    assert NonlinearCG.name == "ncg-pr" and NonlinearCG().beta == "pr"
    with pytest.raises(ValueError):
        NonlinearCG(beta="xx")


@pytest.mark.parametrize("beta", BETAS)
def test_exact_line_search_is_linear_cg(beta):
    """With exact line searches every variant is linear CG: <= n iterations (+2 for rounding).

    Restarts are off: plain linear CG in float64 needs 16-17 iterations here (rounding
    spoils exact termination at n = 15), and a periodic restart at iteration n would
    throw away the conjugate directions just before the end (then ~25 iterations).
    """
    n = 15
    q = Quadratic(n=n, cond=100.0, seed=3)
    theta = q.x0()
    method = NonlinearCG(beta=beta, line_search=exact_quadratic_search, powell=None, restart=0)
    res = minimize(q, theta, method, StopCriteria(max_iter=5 * n),
                   callbacks=[stop_when_grad_below(1e-7)])
    print(f"exact line search ({beta}): {res.iterations} iterations for n = {n}")
    assert res.stop_reason == "callback"
    assert res.iterations <= n + 2
    assert torch.allclose(theta, q.xstar, atol=1e-6, rtol=0)


def test_steepest_descent_is_much_slower_on_the_quadratic():
    """The equivalence test can fail: restarting every iteration (= steepest descent) does."""
    n = 15
    q = Quadratic(n=n, cond=100.0, seed=3)
    method = NonlinearCG(line_search=exact_quadratic_search, restart=1, powell=None)
    res = minimize(q, q.x0(), method, StopCriteria(max_iter=n + 2),
                   callbacks=[stop_when_grad_below(1e-7)])
    assert res.stop_reason == "max_iter"


def scipy_cg(fn, x0, gtol):
    import numpy as np
    from scipy.optimize import minimize as scipy_minimize

    obj = AutogradObjective(fn)

    def fun(x):
        f, g = obj.loss_and_grad(torch.from_numpy(x))
        return float(f), g.numpy().astype(np.float64)

    return scipy_minimize(fun, x0.double().numpy(), jac=True, method="CG",
                          options={"gtol": gtol, "maxiter": 20000})


@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_against_scipy(n):
    gtol = 1e-8
    ref = scipy_cg(rosenbrock, rosenbrock_start(n), gtol)
    for beta in BETAS:
        theta = rosenbrock_start(n)
        res = minimize(AutogradObjective(rosenbrock), theta, NonlinearCG(beta=beta),
                       StopCriteria(gtol=gtol, max_iter=1000))
        print(f"Rosenbrock n={n} {beta}: pinnsolve {res.iterations} it / "
              f"{res.function_evals} evals, scipy CG {ref.nit} it / {ref.nfev} evals")
        assert res.stop_reason == "gtol", beta
        assert torch.allclose(theta, torch.ones(n, dtype=torch.float64), atol=1e-5, rtol=0)
        assert res.iterations <= 400
        if beta == "pr":  # scipy's CG is PR+
            assert res.iterations <= 3 * ref.nit
            assert res.function_evals <= 3 * ref.nfev


def test_non_descent_beta_restarts_with_steepest_descent(monkeypatch):
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(4)
    method = NonlinearCG(powell=None, restart=0)
    minimize(obj, theta, method, StopCriteria(max_iter=3))
    assert method.state["restarts"] == 0
    # beta = 2 g1'g1 / g1'd gives g1'(-g1 + beta d) = g1'g1 > 0: an ascent direction
    monkeypatch.setattr(method, "_beta", lambda dots: 2.0 * dots["gg1"] / dots["g1d"])
    loss = float(method.state["loss"])
    info = method.step(obj, theta)
    assert info.failed is None and float(info.loss) < loss
    st = method.state
    assert st["restarts"] == 1 and st["restart_counts"]["descent"] == 1
    assert torch.equal(st["d"], st["grad"].neg()) and st["since_restart"] == 0


def test_ascent_direction_in_state_falls_back_to_steepest_descent():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(4)
    method = NonlinearCG(powell=None)
    minimize(obj, theta, method, StopCriteria(max_iter=3))
    st = method.state
    st["d"] = st["grad"].clone()  # what a bad beta would leave behind
    g, before = st["grad"].clone(), theta.clone()
    info = method.step(obj, theta)
    assert info.failed is None
    assert st["restart_counts"]["descent"] == 1
    move = theta - before
    cos = float(torch.dot(move, -g) / (move.norm() * g.norm()))
    assert cos == pytest.approx(1.0, abs=1e-12)  # the step went along -g


def test_periodic_and_powell_restarts_are_counted():
    obj = AutogradObjective(rosenbrock)
    method = NonlinearCG(restart=3, powell=None)
    minimize(obj, rosenbrock_start(4), method, StopCriteria(max_iter=9))
    assert method.state["restart_counts"]["periodic"] == 3
    method = NonlinearCG(restart=0, powell=0.2)
    minimize(obj, rosenbrock_start(4), method, StopCriteria(max_iter=30))
    counts = method.state["restart_counts"]
    assert counts["periodic"] == 0 and counts["powell"] >= 1


def test_line_search_failure_retries_with_steepest_descent():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(4)
    method = NonlinearCG()
    minimize(obj, theta, method, StopCriteria(max_iter=5))
    real = method.line_search
    calls = []

    def flaky(phi, f0, gtd0, step0, *, d=None):
        calls.append(d.clone())
        if len(calls) == 1:
            return LineSearchResult(0.0, None, None, 3, False, "max_evals")
        return real(phi, f0, gtd0, step0, d=d)

    method.line_search = flaky
    g = method.state["grad"].clone()
    info = method.step(obj, theta)
    assert info.failed is None and len(calls) == 2
    assert torch.equal(calls[1], g.neg())
    assert method.state["restart_counts"]["line_search"] == 1


def test_line_search_failure_is_reported_and_theta_untouched():
    x0 = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def only_x0_finite(x):
        return (x**2).sum() * torch.where((x != x0).any(), torch.nan, 1.0)

    theta = x0.clone()
    method = NonlinearCG(max_ls_evals=6)
    res = minimize(AutogradObjective(only_x0_finite), theta, method, StopCriteria(max_iter=10))
    assert res.stop_reason == "line_search_failed"
    assert res.iterations == 0 and torch.equal(theta, x0)
    assert method.state["iteration"] == 0 and method.state["restarts"] == 0


def run(n_iter, method=None, theta=None, progress=None):
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(10) if theta is None else theta
    method = method or NonlinearCG()
    res = minimize(obj, theta, method, StopCriteria(max_iter=n_iter), progress=progress)
    return theta, method, res


def test_resume_is_bit_for_bit():
    full, _, _ = run(20)
    progress = Progress()
    theta, method, res = run(10, progress=progress)
    assert res.iterations == 10
    saved_state = method.state_dict()
    saved_progress = copy.deepcopy(progress)
    saved_theta = theta.clone()
    method.state["d"].fill_(7.0)  # the saved state is a copy, not a view
    method.state["restart_counts"]["powell"] = 99
    fresh = NonlinearCG()
    fresh.load_state_dict(saved_state)
    theta2, _, res2 = run(20, method=fresh, theta=saved_theta, progress=saved_progress)
    assert res2.iterations == 20
    assert torch.equal(theta2, full)
    assert not torch.equal(full, rosenbrock_start(10))


def nan_beyond(x):
    """A quadratic with its minimum at x0 = 3, NaN loss and gradient where x[0] > 1."""
    f = ((x - 3.0) ** 2).sum() + 0.5 * (x[0] - x[1]) ** 2
    return f * torch.where(x[0] > 1.0, torch.nan, 1.0)


@pytest.mark.parametrize("beta", BETAS)
def test_nan_region_is_never_accepted(beta):
    obj = AutogradObjective(nan_beyond)
    theta = torch.tensor([-2.0, 0.0, 1.0], dtype=torch.float64)
    accepted = []

    def check(theta, progress, m):
        accepted.append(theta.clone())
        for key in ("loss", "grad", "d"):
            assert bool(torch.isfinite(m.state[key]).all()), key

    res = minimize(obj, theta, NonlinearCG(beta=beta), StopCriteria(max_iter=50),
                   callbacks=[check])
    assert obj.non_finite_evals > 0  # the guard was exercised
    assert accepted and all(float(t[0]) <= 1.0 for t in accepted)
    assert all(x == x for x in res.loss_history)
    assert float(theta[0]) > 0.9  # pushed up against the boundary
    assert res.stop_reason in ("max_iter", "line_search_failed")


def test_float32_keeps_dtype():
    theta = rosenbrock_start(4, dtype=torch.float32)
    method = NonlinearCG()
    res = minimize(AutogradObjective(rosenbrock), theta, method,
                   StopCriteria(gtol=1e-3, max_iter=500))
    assert theta.dtype == torch.float32
    for key in ("loss", "grad", "d"):
        assert method.state[key].dtype == torch.float32, key
    assert res.stop_reason in ("gtol", "line_search_failed")
    assert float((theta - 1).abs().max()) < 1e-2


def test_stationary_point_needs_no_evaluation():
    q = Quadratic(n=3)
    theta = q.xstar.clone()
    method = NonlinearCG()
    method.start(q, theta)
    method.state["grad"] = torch.zeros(3, dtype=torch.float64)
    info = method.step(q, theta)
    assert info.evals == 0 and info.failed is None and torch.equal(theta, q.xstar)
