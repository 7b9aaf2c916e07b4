"""L-BFGS: finite termination on quadratics, Rosenbrock vs scipy, guards, resume."""

from __future__ import annotations

import copy

import pytest
import torch
from objectives import AutogradObjective, Quadratic, rosenbrock, rosenbrock_start, scipy_lbfgsb

from pinnsolve.optim import LBFGS, Progress, StopCriteria, minimize
from pinnsolve.optim.linesearch import LineSearchResult


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


@pytest.mark.parametrize("recursion", ["compact", "two_loop"])
def test_exact_line_search_terminates_in_n_iterations(recursion):
    """With exact line searches and m >= n, L-BFGS = BFGS = CG on a quadratic."""
    n = 20
    q = Quadratic(n=n, cond=100.0, seed=3)
    theta = q.x0()
    method = LBFGS(history=n, line_search=exact_quadratic_search, recursion=recursion)
    res = minimize(q, theta, method, StopCriteria(max_iter=3 * n),
                   callbacks=[stop_when_grad_below(1e-8)])
    print(f"exact line search ({recursion}): {res.iterations} iterations for n = {n}")
    assert res.stop_reason == "callback"
    assert res.iterations <= n
    assert torch.allclose(theta, q.xstar, atol=1e-7, rtol=0)


@pytest.mark.parametrize(("cond", "c2"), [(10.0, 0.9), (100.0, 0.1)])
def test_strong_wolfe_on_quadratic_within_2n(cond, c2):
    """Inexact line searches lose finite termination; still <= 2n iterations here.

    (With c2 = 0.9 and cond = 100, L-BFGS -- like scipy's L-BFGS-B -- needs ~3n.)
    """
    n = 20
    q = Quadratic(n=n, cond=cond, seed=3)
    theta = q.x0()
    res = minimize(q, theta, LBFGS(history=n, c2=c2), StopCriteria(max_iter=10 * n),
                   callbacks=[stop_when_grad_below(1e-8)])
    print(f"strong Wolfe (cond {cond:g}, c2 {c2}): {res.iterations} iterations, "
          f"{res.function_evals} evaluations, n = {n}")
    assert res.stop_reason == "callback"
    assert res.iterations <= 2 * n


@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_against_scipy(n):
    m = 10
    gtol = 1e-9
    theta = rosenbrock_start(n)
    obj = AutogradObjective(rosenbrock)
    res = minimize(obj, theta, LBFGS(history=m), StopCriteria(gtol=gtol, max_iter=2000))
    ref = scipy_lbfgsb(rosenbrock, rosenbrock_start(n), maxcor=m, gtol=gtol)
    print(f"Rosenbrock n={n}: pinnsolve {res.iterations} it / {res.function_evals} evals, "
          f"scipy L-BFGS-B {ref.nit} it / {ref.nfev} evals")
    assert res.stop_reason == "gtol"
    assert torch.allclose(theta, torch.ones(n, dtype=torch.float64), atol=1e-6, rtol=0)
    assert res.iterations <= 1.5 * ref.nit
    assert res.function_evals <= 1.5 * ref.nfev
    assert theta.dtype == torch.float64


def test_unit_step_accepted_most_of_the_time():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(10)
    res = minimize(obj, theta, LBFGS(), StopCriteria(gtol=1e-8))
    assert res.function_evals / res.iterations < 1.3


def nonconvex(x):
    """Double well in every coordinate plus a coupling: negative curvature near 0."""
    return (x**4 / 4 - x**2 / 2).sum() + 0.5 * (x[0] - x[1]) ** 2


def test_curvature_pairs_are_skipped():
    eps = 1e-10
    method = LBFGS(line_search="armijo", curvature_eps=eps)
    theta = torch.tensor([0.05, -0.02, 0.01], dtype=torch.float64)
    seen = []

    def check(theta, progress, m):
        s, y = m.pairs()
        sy, yy = (s * y).sum(1), (y * y).sum(1)
        assert bool((sy > eps * yy).all())
        stored = m.state["SY"].diagonal()[m._order()]
        assert torch.allclose(stored, sy, rtol=1e-12, atol=0)
        seen.append(len(sy))

    res = minimize(AutogradObjective(nonconvex), theta, method,
                   StopCriteria(gtol=1e-10, max_iter=200), callbacks=[check])
    assert res.stop_reason == "gtol"
    assert method.state["skipped"] >= 1  # negative curvature was met and refused
    assert seen and max(seen) <= method.history
    assert torch.allclose(theta.abs(), torch.ones(3, dtype=torch.float64), atol=1e-6)


def huber_nan(x):
    """sum sqrt(1 + x_i^2), with NaN loss and gradient once any x_i > 3."""
    f = torch.sqrt(1 + x**2).sum()
    return f * torch.where(x.max() > 3.0, torch.nan, 1.0)


@pytest.mark.parametrize("line_search", ["strong_wolfe", "armijo"])
def test_non_finite_trials_are_never_accepted(line_search):
    obj = AutogradObjective(huber_nan)
    theta = torch.linspace(-20, -5, 4, dtype=torch.float64)
    method = LBFGS(line_search=line_search)
    accepted = []

    def check(theta, progress, m):
        accepted.append(theta.clone())
        st = m.state
        for key in ("pairs", "SY", "YY", "gamma", "grad", "loss"):
            assert bool(torch.isfinite(st[key]).all()), key

    res = minimize(obj, theta, method, StopCriteria(gtol=1e-9, max_iter=200), callbacks=[check])
    assert obj.non_finite_evals > 0  # the guard was exercised
    assert res.stop_reason == "gtol"
    assert all(float(t.max()) <= 3.0 for t in accepted)
    assert all(x == x for x in res.loss_history)  # no NaN in the history
    assert float(theta.abs().max()) < 1e-6


def test_not_a_descent_direction_resets_history():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(4)
    method = LBFGS()
    minimize(obj, theta, method, StopCriteria(max_iter=5))
    assert method.state["count"] == 5
    loss = float(method.state["loss"])
    method.direction = lambda g: g.clone()  # an ascent direction
    info = method.step(obj, theta)
    assert info.failed is None
    assert method.state["resets"] == 1 and method.state["count"] == 1
    assert float(info.loss) < loss


def test_line_search_failure_retries_with_steepest_descent():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(4)
    method = LBFGS()
    minimize(obj, theta, method, StopCriteria(max_iter=5))
    real = method.line_search
    calls = []

    def flaky(phi, f0, gtd0, step0, *, d=None):
        calls.append(step0)
        if len(calls) == 1:
            return LineSearchResult(0.0, None, None, 3, False, "max_evals")
        return real(phi, f0, gtd0, step0, d=d)

    method.line_search = flaky
    loss = float(method.state["loss"])
    info = method.step(obj, theta)
    assert info.failed is None and float(info.loss) < loss
    assert len(calls) == 2 and calls[0] == 1.0 and calls[1] < 1.0  # retry with a safe step
    assert method.state["resets"] == 1 and method.state["count"] == 1


def test_line_search_failure_is_reported_and_theta_untouched():
    x0 = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def only_x0_finite(x):
        return (x**2).sum() * torch.where((x != x0).any(), torch.nan, 1.0)

    theta = x0.clone()
    method = LBFGS(max_ls_evals=6)
    res = minimize(AutogradObjective(only_x0_finite), theta, method, StopCriteria(max_iter=10))
    assert res.stop_reason == "line_search_failed"
    assert res.iterations == 0 and torch.equal(theta, x0)
    assert method.state["count"] == 0


def test_stationary_point_needs_no_evaluation():
    q = Quadratic(n=3)
    theta = q.xstar.clone()
    method = LBFGS()
    method.start(q, theta)
    method.state["grad"] = torch.zeros(3, dtype=torch.float64)
    info = method.step(q, theta)
    assert info.evals == 0 and info.failed is None and torch.equal(theta, q.xstar)


def run(n_iter, method=None, theta=None, progress=None):
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(10) if theta is None else theta
    method = method or LBFGS(history=5)
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
    method.state["pairs"].fill_(7.0)  # the saved state is a copy, not a view
    fresh = LBFGS(history=5)
    fresh.load_state_dict(saved_state)
    theta2, _, res2 = run(20, method=fresh, theta=saved_theta, progress=saved_progress)
    assert res2.iterations == 20
    assert torch.equal(theta2, full)


def test_interrupt_leaves_last_accepted_iterate_and_resumes_exactly():
    full, _, _ = run(15)
    obj = AutogradObjective(rosenbrock, raise_at=12)
    theta = rosenbrock_start(10)
    method = LBFGS(history=5)
    accepted = []
    progress = Progress()
    res = minimize(obj, theta, method, StopCriteria(max_iter=15), progress=progress,
                   callbacks=[lambda t, p, m: accepted.append(t.clone())])
    assert res.stop_reason == "interrupted"
    assert 0 < res.iterations < 15
    assert torch.equal(theta, accepted[-1])
    loss, grad = AutogradObjective(rosenbrock).loss_and_grad(theta)
    assert torch.equal(method.state["loss"], loss) and torch.equal(method.state["grad"], grad)
    # continuing the interrupted run gives the uninterrupted iterates exactly
    obj.raise_at = None
    res = minimize(obj, theta, method, StopCriteria(max_iter=15), progress=progress)
    assert res.stop_reason == "max_iter"
    assert torch.equal(theta, full)


def test_float32_keeps_dtype():
    q = Quadratic(n=10, cond=10.0, dtype=torch.float32)
    theta = q.x0()
    method = LBFGS()
    res = minimize(q, theta, method, StopCriteria(gtol=1e-4, max_iter=100))
    assert res.stop_reason in ("gtol", "line_search_failed")
    assert theta.dtype == torch.float32
    assert method.state["pairs"].dtype == torch.float32
    assert method.state["SY"].dtype == torch.float64  # the small matrices stay float64
    assert torch.allclose(theta, q.xstar, atol=1e-3)


def test_history_validation_and_options():
    with pytest.raises(ValueError, match="history"):
        LBFGS(history=0)
    with pytest.raises(ValueError, match="unknown line search"):
        LBFGS(line_search="backtrack")
    m = LBFGS(history=3)
    q = Quadratic(n=6)
    theta = q.x0()
    minimize(q, theta, m, StopCriteria(max_iter=8))
    assert m.state["pairs"].shape == (2, 3, 6) and m.state["count"] == 3
    s, y = m.pairs()
    assert s.shape == (3, 6)


def reference_direction(S, Y, g):
    """N&W Alg. 7.4 in float64 with Python lists, oldest pair first."""
    S, Y, g = S.double(), Y.double(), g.double()
    rho = [1.0 / float(s @ y) for s, y in zip(S, Y, strict=True)]
    q = g.clone()
    alpha = [0.0] * len(S)
    for i in reversed(range(len(S))):
        alpha[i] = rho[i] * float(S[i] @ q)
        q -= alpha[i] * Y[i]
    r = q * float(S[-1] @ Y[-1]) / float(Y[-1] @ Y[-1])
    for i in range(len(S)):
        beta = rho[i] * float(Y[i] @ r)
        r += (alpha[i] - beta) * S[i]
    return -r


@pytest.mark.parametrize("recursion", ["compact", "two_loop"])
@pytest.mark.parametrize("n_iter", [3, 12])  # history partly filled / wrapped around
def test_direction_matches_reference_two_loop(recursion, n_iter):
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(10)
    method = LBFGS(history=5, recursion=recursion)
    minimize(obj, theta, method, StopCriteria(max_iter=n_iter))
    assert method.state["count"] == min(n_iter, 5)
    g = method.state["grad"]
    s, y = method.pairs()
    expected = reference_direction(s, y, g)
    assert torch.allclose(method.direction(g), expected, rtol=1e-9, atol=1e-12)


def test_compact_and_two_loop_take_the_same_path():
    paths = []
    for recursion in ("compact", "two_loop"):
        theta = rosenbrock_start(10)
        res = minimize(AutogradObjective(rosenbrock), theta, LBFGS(recursion=recursion),
                       StopCriteria(gtol=1e-9))
        paths.append((res.iterations, theta))
    assert abs(paths[0][0] - paths[1][0]) <= 3
    assert torch.allclose(paths[0][1], paths[1][1], atol=1e-8)


def test_carried_wg_matches_the_direct_direction():
    """W g carried from iterate to iterate (W g_{k+1} = W g_k + W y) gives the direction
    of a direct W g, also after the ring buffer wrapped around."""
    from pinnsolve.optim.lbfgs import compact_direction

    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(10)
    method = LBFGS(history=5)
    carried = 0
    method.start(obj, theta)
    for _ in range(30):
        assert method.step(obj, theta).failed is None
        st = method.state
        carried += st["Wg"] is not None and st["Wg_iter"] == st["iteration"]
        d = method.direction(st["grad"])
        direct = compact_direction(st["pairs"], st["SY"], st["YY"], st["gamma"],
                                   method._order_tensor(theta.device), st["grad"])
        assert torch.allclose(d, direct, rtol=1e-9, atol=1e-13 * float(direct.abs().max()))
    assert carried >= 20
