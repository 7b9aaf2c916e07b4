"""Hessian-free Newton (CG and CR inner solvers): Newton step on quadratics, Rosenbrock
vs scipy's Newton-CG, superlinear convergence, negative curvature, guards, resume."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from objectives import Quadratic, rosenbrock, rosenbrock_start

from pinnsolve.objective import FunctionObjective
from pinnsolve.optim import Progress, StopCriteria, minimize
from pinnsolve.optim.linesearch import LineSearchResult
from pinnsolve.optim.newton import HessianFreeNewton, NewtonCG, NewtonCR

SOLVERS = [NewtonCG, NewtonCR]


class Counting(FunctionObjective):
    """FunctionObjective counting loss_and_grad and hvp calls; optional NaN hvps."""

    def __init__(self, fn, nan_hvps: int = 0) -> None:
        super().__init__(fn)
        self.evals = 0
        self.hvps = 0
        self.nan_hvps = nan_hvps  # the first this many hvp calls return NaN

    def loss_and_grad(self, theta):
        self.evals += 1
        return super().loss_and_grad(theta)

    def hvp(self, theta, v):
        self.hvps += 1
        out = super().hvp(theta, v)
        return out * math.nan if self.hvps <= self.nan_hvps else out


def quadratic_fn(q: Quadratic):
    return lambda x: 0.5 * x @ (q.A @ x) - q.b @ x


@pytest.mark.parametrize("cls", SOLVERS)
def test_one_newton_step_solves_a_quadratic(cls):
    n = 20
    q = Quadratic(n=n, cond=100.0, seed=3)
    obj = Counting(quadratic_fn(q))
    theta = q.x0()
    method = cls(max_cg=3 * n, forcing=1e-12)  # rounding: exact arithmetic would need n
    res = minimize(obj, theta, method, StopCriteria(max_iter=1))
    print(f"{cls.name}: {method.state['cg_iterations']} inner iterations, "
          f"{method.state['hvps']} hvps, {res.function_evals} evaluations, n = {n}")
    assert res.iterations == 1
    assert torch.allclose(theta, q.xstar, atol=1e-8, rtol=0)
    assert method.state["step"] == 1.0 and res.function_evals == 2  # the unit step
    assert method.state["fallbacks"] == 0 and method.state["negative_curvature"] == 0
    assert method.state["hvps"] == obj.hvps <= 3 * n
    assert method.state["cg_iterations"] < 3 * n  # converged, not cut off


@pytest.mark.parametrize("cls", SOLVERS)
def test_loose_forcing_is_not_exact(cls):
    """The forcing term bounds the inner work: eta = 0.5 stops CG/CR early."""
    q = Quadratic(n=20, cond=100.0, seed=3)
    theta = q.x0()
    method = cls(max_cg=20, forcing=0.5)
    minimize(Counting(quadratic_fn(q)), theta, method, StopCriteria(max_iter=1))
    assert method.state["cg_iterations"] < 10
    assert not torch.allclose(theta, q.xstar, atol=1e-3, rtol=0)


def scipy_newton_cg(n: int):
    from scipy.optimize import minimize as sp_minimize

    obj = FunctionObjective(rosenbrock)

    def fun(x):
        f, g = obj.loss_and_grad(torch.from_numpy(x))
        return float(f), g.numpy().astype(np.float64)

    def hessp(x, v):
        return obj.hvp(torch.from_numpy(x), torch.from_numpy(np.asarray(v, float))).numpy()

    return sp_minimize(fun, rosenbrock_start(n).numpy(), jac=True, hessp=hessp,
                       method="Newton-CG", options={"xtol": 1e-12, "maxiter": 1000})


@pytest.mark.parametrize("cls", SOLVERS)
@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_against_scipy(cls, n):
    obj = Counting(rosenbrock)
    theta = rosenbrock_start(n)
    method = cls()
    res = minimize(obj, theta, method, StopCriteria(gtol=1e-9, max_iter=500))
    ref = scipy_newton_cg(n)
    print(f"Rosenbrock n={n} {cls.name}: {res.iterations} it / {res.function_evals} evals / "
          f"{method.state['hvps']} hvps; scipy Newton-CG {ref.nit} it / {ref.nfev} evals / "
          f"{ref.nhev} hvps")
    assert res.stop_reason == "gtol"
    assert torch.allclose(theta, torch.ones(n, dtype=torch.float64), atol=1e-6, rtol=0)
    assert res.iterations <= 2 * ref.nit + 5
    assert res.function_evals == obj.evals  # honest counting
    assert method.state["hvps"] == obj.hvps
    assert method.state["iteration"] == res.iterations


@pytest.mark.parametrize("cls", SOLVERS)
def test_local_superlinear_convergence(cls):
    """Rosenbrock n=10 (n=2 would not do: CG/CR solve a 2x2 system exactly anyway)."""
    norms = []

    def record(theta, progress, method):
        norms.append(float(torch.linalg.vector_norm(method.state["grad"])))

    theta = rosenbrock_start(10)
    res = minimize(FunctionObjective(rosenbrock), theta, cls(), StopCriteria(gtol=1e-11),
                   callbacks=[record])
    assert res.stop_reason == "gtol"
    tail = [n for n in norms if n < 1e-1]
    ratios = [b / a for a, b in zip(tail, tail[1:])]
    print(f"{cls.name}: ratios of successive gradient norms near the minimum "
          f"{[f'{r:.1e}' for r in ratios]}")
    assert len(ratios) >= 3
    # >= 100x per iteration at the end, with the ratio going to 0; a fixed forcing term
    # eta = 0.5 (linear convergence) gives ratios 0.02-0.4 here
    assert ratios[-2] < 1e-2 and ratios[-1] < 1e-2 * ratios[-2]


def double_well(x):
    """x^4/4 - x^2/2 + y^2: a saddle at 0, minimizers (+-1, 0)."""
    return x[0] ** 4 / 4 - x[0] ** 2 / 2 + x[1] ** 2


@pytest.mark.parametrize("cls", SOLVERS)
@pytest.mark.parametrize("start", [(0.1, 1.0), (0.1, 0.0), (-0.01, 0.5)])
def test_negative_curvature_escapes_the_saddle(cls, start):
    obj = Counting(double_well)
    theta = torch.tensor(start, dtype=torch.float64)
    method = cls()
    losses = []

    def record(theta, progress, m):
        losses.append(progress.loss)

    res = minimize(obj, theta, method, StopCriteria(gtol=1e-10, max_iter=100),
                   callbacks=[record])
    counts = {k: method.state[k] for k in ("negative_curvature", "fallbacks", "reversals")}
    print(f"{cls.name} from {start}: {res.iterations} it, {res.function_evals} evals, {counts}")
    assert res.stop_reason == "gtol"
    assert abs(abs(float(theta[0])) - 1.0) < 1e-8 and abs(float(theta[1])) < 1e-8
    assert res.loss < -0.25 + 1e-12  # the minimum value, not the saddle's 0
    assert losses[0] < double_well(torch.tensor(start, dtype=torch.float64))
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # every step descends
    assert method.state["negative_curvature"] >= 1  # the saddle region was met
    if start[1] == 0.0:  # g'Hg < 0: CG returns -g at once, CR reverses its uphill step
        key = "fallbacks" if cls is NewtonCG else "reversals"
        assert method.state[key] >= 1


@pytest.mark.parametrize("cls", SOLVERS)
def test_first_step_from_saddle_region_descends(cls):
    theta = torch.tensor([0.1, 1.0], dtype=torch.float64)
    obj = Counting(double_well)
    method = cls()
    method.start(obj, theta)
    f0 = float(method.state["loss"])
    info = method.step(obj, theta)
    assert info.failed is None and float(info.loss) < f0


def test_cr_reverses_an_uphill_newton_step():
    """Near the saddle the exact Newton step is uphill (g'p > 0): CR uses -p."""
    theta = torch.tensor([0.01, 0.0], dtype=torch.float64)
    obj = Counting(double_well)
    method = NewtonCR()
    method.start(obj, theta)
    info = method.step(obj, theta)
    assert method.last_step.get("reversed") and not method.last_step["steepest"]
    assert method.state["reversals"] == 1 and method.state["fallbacks"] == 0
    assert info.failed is None and float(theta[0]) > 0.01


@pytest.mark.parametrize("eta", [0.5, 1e-2, 1e-6, 1e-12])
def test_cr_stops_at_the_first_iterate_inside_the_tolerance(eta):
    """CR's stopping test (||r|| from the products at hand, formed exactly only when
    close) neither stops early (||H p + g|| <= eta ||g|| holds) nor late (one inner
    iteration fewer is still outside the tolerance)."""
    q = Quadratic(n=30, cond=1e4, seed=5)
    theta = q.x0()
    g = q.A @ theta - q.b
    tol = eta * float(g.norm())
    p, info = NewtonCR(max_cg=500, forcing=eta)._krylov(Counting(quadratic_fn(q)), theta, g)
    assert info["reason"] == "converged"
    assert float((q.A @ p + g).norm()) <= tol
    j = info["iterations"]
    if j > 1:
        p1, info1 = NewtonCR(max_cg=j - 1, forcing=eta)._krylov(
            Counting(quadratic_fn(q)), theta, g)
        assert info1["reason"] == "max_cg" and info1["iterations"] == j - 1
        assert float((q.A @ p1 + g).norm()) > tol


def huber_nan(x):
    """sum sqrt(1 + x_i^2), with NaN loss and gradient once any x_i > 3."""
    f = torch.sqrt(1 + x**2).sum()
    return f * torch.where(x.max() > 3.0, torch.nan, 1.0)


@pytest.mark.parametrize("cls", SOLVERS)
@pytest.mark.parametrize("line_search", ["strong_wolfe", "armijo"])
def test_non_finite_trials_are_never_accepted(cls, line_search):
    evaluated = []

    def fn(x):
        evaluated.append(bool(x.detach().max() > 3.0))
        return huber_nan(x)

    obj = FunctionObjective(fn)
    theta = torch.linspace(-20, -5, 4, dtype=torch.float64)
    accepted = []

    def check(theta, progress, m):
        accepted.append(theta.clone())
        assert bool(torch.isfinite(m.state["grad"]).all())
        assert math.isfinite(float(m.state["loss"]))

    res = minimize(obj, theta, cls(line_search=line_search),
                   StopCriteria(gtol=1e-9, max_iter=200), callbacks=[check])
    assert any(evaluated)  # the NaN region was probed
    assert res.stop_reason == "gtol"
    assert all(float(t.max()) <= 3.0 for t in accepted)
    assert all(x == x for x in res.loss_history)
    assert float(theta.abs().max()) < 1e-6


@pytest.mark.parametrize("cls", SOLVERS)
def test_non_finite_hvp_falls_back_to_steepest_descent(cls):
    obj = Counting(rosenbrock, nan_hvps=1)
    theta = rosenbrock_start(4)
    method = cls()
    method.start(obj, theta)
    f0 = float(method.state["loss"])
    info = method.step(obj, theta)
    assert method.last_step["reason"] == "non_finite"
    assert info.failed is None and float(info.loss) < f0
    assert method.state["fallbacks"] == 1
    assert bool(torch.isfinite(theta).all())


@pytest.mark.parametrize("cls", SOLVERS)
def test_line_search_failure_retries_with_steepest_descent(cls):
    obj = Counting(rosenbrock)
    theta = rosenbrock_start(4)
    method = cls()
    minimize(obj, theta, method, StopCriteria(max_iter=3))
    real = method.line_search
    calls = []

    def flaky(phi, f0, gtd0, step0, *, d=None):
        calls.append((step0, d.clone()))
        if len(calls) == 1:
            return LineSearchResult(0.0, None, None, 3, False, "max_evals")
        return real(phi, f0, gtd0, step0, d=d)

    method.line_search = flaky
    loss = float(method.state["loss"])
    g = method.state["grad"].clone()
    evals = obj.evals
    info = method.step(obj, theta)
    assert info.failed is None and float(info.loss) < loss
    assert len(calls) == 2 and calls[0][0] == 1.0 and torch.equal(calls[1][1], -g)
    assert method.state["fallbacks"] == 1 and method.state["iteration"] == 4
    assert info.evals == 3 + obj.evals - evals  # the failed search's reported 3 evals count


def test_line_search_failure_is_reported_and_state_untouched():
    x0 = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def only_x0_finite(x):
        return (x**2).sum() * torch.where((x != x0).any(), torch.nan, 1.0)

    for cls in SOLVERS:
        theta = x0.clone()
        method = cls(max_ls_evals=6)
        res = minimize(Counting(only_x0_finite), theta, method, StopCriteria(max_iter=10))
        assert res.stop_reason == "line_search_failed"
        assert res.iterations == 0 and torch.equal(theta, x0)
        assert method.state["iteration"] == 0 and method.state["hvps"] == 0
        assert method.last_step["hvps"] >= 1 and method.last_step["steepest"]


def run(n_iter, cls, method=None, theta=None, progress=None):
    theta = rosenbrock_start(10) if theta is None else theta
    method = method or cls()
    res = minimize(FunctionObjective(rosenbrock), theta, method, StopCriteria(max_iter=n_iter),
                   progress=progress)
    return theta, method, res


@pytest.mark.parametrize("cls", SOLVERS)
def test_resume_is_bit_for_bit(cls):
    full, full_method, _ = run(6, cls)
    progress = Progress()
    theta, method, res = run(3, cls, progress=progress)
    assert res.iterations == 3
    saved_state = method.state_dict()
    saved_progress = copy.deepcopy(progress)
    saved_theta = theta.clone()
    method.state["grad"].fill_(7.0)  # the saved state is a copy, not a view
    fresh = cls()
    fresh.load_state_dict(saved_state)
    theta2, _, res2 = run(6, cls, method=fresh, theta=saved_theta, progress=saved_progress)
    assert res2.iterations == 6
    assert torch.equal(theta2, full)
    assert fresh.state["hvps"] == full_method.state["hvps"]
    assert torch.equal(fresh.state["grad"], full_method.state["grad"])


@pytest.mark.parametrize("cls", SOLVERS)
def test_float32_keeps_dtype(cls):
    q = Quadratic(n=10, cond=10.0, dtype=torch.float32)
    theta = q.x0()
    method = cls()
    res = minimize(FunctionObjective(quadratic_fn(q)), theta, method,
                   StopCriteria(gtol=1e-4, max_iter=50))
    assert res.stop_reason in ("gtol", "line_search_failed")
    assert theta.dtype == torch.float32
    assert method.state["grad"].dtype == torch.float32
    assert method.state["loss"].dtype == torch.float32
    assert torch.allclose(theta, q.xstar, atol=1e-3)


def test_options_and_requirements():
    with pytest.raises(ValueError, match="max_cg"):
        NewtonCG(max_cg=0)
    with pytest.raises(ValueError, match="forcing"):
        NewtonCR(forcing=1.5)
    with pytest.raises(ValueError, match="unknown line search"):
        NewtonCG(line_search="backtrack")
    q = Quadratic(n=3)
    with pytest.raises(TypeError, match="hvp"):
        NewtonCG().start(q, q.x0())  # tests' Quadratic has no hvp
    assert NewtonCG.name == "newton-cg" and NewtonCR.name == "newton-cr"
    assert issubclass(NewtonCG, HessianFreeNewton) and issubclass(NewtonCR, HessianFreeNewton)


def test_stationary_point_needs_no_work():
    q = Quadratic(n=3)
    obj = Counting(quadratic_fn(q))
    theta = q.xstar.clone()
    method = NewtonCG()
    method.start(obj, theta)
    method.state["grad"] = torch.zeros(3, dtype=torch.float64)
    info = method.step(obj, theta)
    assert info.evals == 0 and info.failed is None and obj.hvps == 0
    assert torch.equal(theta, q.xstar)
