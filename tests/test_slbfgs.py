"""S-LBFGS: linear convergence on a finite-sum strongly convex problem, beats SGD at equal
work, pairs with positive curvature, exact resume (including the batch generator)."""

from __future__ import annotations

import math

import pytest
import torch
from objectives import LogisticRegression, Quadratic

from pinnsolve.io import load_checkpoint, save_checkpoint
from pinnsolve.optim import SGD, SLBFGS, StopCriteria, make_method, minimize


@pytest.fixture(scope="module")
def problem():
    return LogisticRegression(n_samples=400, dim=10, lam=1e-2, seed=0)


def run_until(problem, method, samples, record=None):
    """Run from 0 until ``method`` has computed ``samples`` per-sample gradients."""
    x = torch.zeros(problem.dim, dtype=torch.float64)

    def cb(theta, progress, m):
        if record is not None:
            record.append((m.state.get("epoch"), float((theta - problem.xstar).norm())))
        return m.state["sample_grads"] >= samples

    res = minimize(problem, x, method, StopCriteria(max_iter=10**6), [cb])
    return x, res


def test_converges_linearly_per_epoch(problem):
    record = []
    method = SLBFGS(lr=0.2, batch_size=50, hessian_batch_size=50)
    x, _ = run_until(problem, method, 400 * 40, record)
    # distance to the optimum at the end of every epoch (M = 2N/b = 16 inner steps)
    ends = [d for (e, d), (e2, _) in zip(record, record[1:]) if e2 != e]
    assert len(ends) >= 6
    # linear rate: every epoch shrinks the error, by 3x or more on average
    # (measured: 2.8, 1.0, 0.21, 0.029, 4.8e-3, 1.5e-3, 2.4e-4)
    assert all(b < a for a, b in zip(ends[:-1], ends[1:]))
    rates = [math.log10(b / a) for a, b in zip(ends[:-1], ends[1:])]
    assert sum(rates) / len(rates) < -math.log10(3)
    assert ends[-1] < 1e-3 * ends[0]
    assert method.state["hist"]["count"] == 10 and method.state["skipped"] == 0


def test_beats_sgd_at_equal_gradient_evaluations(problem):
    budget = 400 * 40  # 40 passes over the data
    x, _ = run_until(problem, SLBFGS(lr=0.2, batch_size=64), budget)
    err = float((x - problem.xstar).norm())
    # SGD (batch 64, with and without momentum) at the best of its step sizes
    best_sgd = min(
        float((run_until(problem, SGD(lr=lr, momentum=mom, batch_size=64), budget)[0]
               - problem.xstar).norm())
        for lr, mom in ((0.05, 0.9), (0.2, 0.9), (1.0, 0.0), (0.2, 0.0))
    )
    assert err < 1e-3  # measured 1.6e-4; SGD 0.16
    assert err < 1e-2 * best_sgd


def test_pairs_have_positive_curvature_and_the_right_count(problem):
    method = SLBFGS(lr=0.2, history=5, batch_size=20, update_every=7)
    run_until(problem, method, 400 * 10)
    hist = method.state["hist"]
    t = method.state["t"]
    assert hist["count"] == min(5, t // 7 - 1)  # the first average only starts the chain
    assert bool((hist["SY"].diagonal() > 0).all())


def test_first_inner_steps_are_svrg_steps(problem):
    """Before the first pair, x+ = x - lr v, v the SVRG gradient (checked by hand)."""
    method = SLBFGS(lr=0.1, batch_size=8, seed=5)
    x = torch.full((problem.dim,), 0.3, dtype=torch.float64)
    method.start(problem, x)
    gen = torch.Generator().manual_seed(5)
    idx = problem.sample_batch(8, gen)
    w = x.clone()
    v = (problem.batch_loss_and_grad(w, idx)[1] - problem.batch_loss_and_grad(w, idx)[1]
         + problem.loss_and_grad(w)[1])
    method.step(problem, x)
    assert torch.allclose(x, w - 0.1 * v, rtol=0, atol=1e-15)


def test_state_dict_round_trip_continues_bit_identically(problem, tmp_path):
    kw = dict(lr=0.2, batch_size=16, hessian_batch_size=32, update_every=3, inner_steps=11)
    a = SLBFGS(**kw)
    xa = torch.zeros(problem.dim, dtype=torch.float64)
    minimize(problem, xa, a, StopCriteria(max_iter=37))  # mid-epoch, with pairs
    path = tmp_path / "ck.h5"
    save_checkpoint(path, {"state": a.state_dict(), "theta": xa})
    b = SLBFGS(**kw)
    loaded = load_checkpoint(path)
    b.load_state_dict(loaded["state"])
    xb = loaded["theta"]
    for _ in range(30):
        a.step(problem, xa)
        b.step(problem, xb)
    assert torch.equal(xa, xb)
    assert a.state["sample_grads"] == b.state["sample_grads"]


def test_needs_a_stochastic_objective_and_valid_options():
    q = Quadratic(n=4)
    with pytest.raises(TypeError, match="S-LBFGS needs a mini-batch objective"):
        minimize(q, torch.zeros(4, dtype=torch.float64), SLBFGS(), StopCriteria(max_iter=2))
    with pytest.raises(ValueError, match="lr must be positive"):
        SLBFGS(lr=0)
    with pytest.raises(ValueError, match="hessian_batch_size must be a positive integer"):
        make_method("slbfgs", hessian_batch_size=0)
    with pytest.raises(ValueError, match="inner_steps"):
        SLBFGS(inner_steps=-1)


def test_trainer_runs_slbfgs_on_a_pinn_and_resumes_exactly(tmp_path):
    from test_train import assert_same_run, trainer

    from pinnsolve.train import Stage

    def stage(n):
        return Stage(make_method("slbfgs", lr=0.05, batch_size=24, hessian_batch_size=24),
                     StopCriteria(max_iter=n))

    straight = trainer([stage(30)], config={"optimizer": "slbfgs"}).fit()
    assert straight.final_loss < 0.1 * straight.stages[0].loss_history[0]
    ck = tmp_path / "ck.h5"
    trainer([stage(13)], checkpoint=ck, config={"optimizer": "slbfgs"}).fit()
    resumed = trainer([stage(30)], config={"optimizer": "slbfgs"}).fit(resume=ck)
    assert_same_run(straight, resumed)


def test_on_a_nonconvex_pinn_only_well_aligned_pairs_are_stored():
    from test_train import make_objective

    obj = make_objective(layers=(8, 8))
    method = SLBFGS(lr=0.02, batch_size=24, hessian_batch_size=24, update_every=3, history=50)
    theta = obj.initial_theta()
    minimize(obj, theta, method, StopCriteria(max_iter=60))
    hist = method.state["hist"]
    k = hist["count"]
    assert k + method.state["skipped"] == 60 // 3 - 1
    s, y = hist["pairs"][0, :k], hist["pairs"][1, :k]
    cos = (s * y).sum(1) / (s.norm(dim=1) * y.norm(dim=1))
    assert bool((cos >= 0.01).all())


def test_fused_gradient_pair_gives_the_same_run_as_two_calls():
    """The inner step's batch gradients at x and w come from one fused evaluation
    (``batch_loss_and_grad_many``); the run equals the two-call version to round-off."""
    from pinnsolve import MLP
    from pinnsolve.problems.burgers import make_problem

    obj = make_problem(nu=0.05, points=200, boundary_points=20, initial_points=20).compile(
        MLP(2, 1, (8, 8), lows=[-1, 0], highs=[1, 1], seed=1))

    class TwoCalls:  # the same objective without the fused method
        def __getattr__(self, name):
            if name == "batch_loss_and_grad_many":
                raise AttributeError(name)
            return getattr(obj, name)

    thetas, losses = [], []
    for o in (obj, TwoCalls()):
        x = obj.initial_theta()
        m = SLBFGS(lr=0.05, batch_size=32, hessian_batch_size=32, inner_steps=15, seed=3)
        res = minimize(o, x, m, StopCriteria(max_iter=40))
        assert res.iterations == 40 and m.state["hist"]["count"] >= 2
        thetas.append(x)
        losses.append(float(obj.loss(x)))
    assert losses[0] < 0.9 * float(obj.loss(obj.initial_theta()))  # it did optimize
    assert float((thetas[0] - thetas[1]).abs().max()) <= 1e-10
    assert abs(losses[0] - losses[1]) <= 1e-12 * losses[1]


def test_torch_optim_facade_converges_on_closures(problem):
    """SLBFGSOptimizer: one inner step per step(closure) on the closure's batch, the
    snapshot from the full closure; on the strongly convex finite sum it converges to
    the optimum (which constant-step SGD cannot) and its finite-difference batch HVP
    matches the exact one."""
    from pinnsolve.optim import SLBFGSOptimizer
    from pinnsolve.optim.torch_optim import _ClosureBatchObjective, _ClosureObjective

    x = torch.zeros(problem.dim, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(0)

    def closure_of(idx):
        def closure():
            opt.zero_grad()
            loss = problem._f(x, idx)
            loss.backward()
            return loss
        return closure

    opt = SLBFGSOptimizer([x], closure_of(None), problem.n_samples, lr=0.2, batch_size=50,
                          hessian_batch_size=50)
    for _ in range(16 * 40):  # 40 epochs of M = 2N/b = 16 inner steps
        opt.step(closure_of(torch.randperm(problem.n_samples, generator=gen)[:50]))
    err = float((x.detach() - problem.xstar).norm())
    st = opt.state_dict()["state"][0]["method"]
    print(f"facade: |x - x*| = {err:.2e}")
    assert err < 1e-8 * float(problem.xstar.norm()), err
    assert st["hist"]["count"] >= 5 and st["epoch"] >= 40
    # the central-difference HVP of the facade against torch.func's exact product
    idx = torch.arange(50)
    obj = _ClosureBatchObjective([x], closure_of(idx), _ClosureObjective([x], closure_of(None)),
                                 problem.n_samples)
    v = torch.randn(problem.dim, generator=gen, dtype=torch.float64)
    u = problem.xstar + 0.1
    exact = problem.batch_hvp(u, v, idx)
    assert float((obj.batch_hvp(u, v, idx) - exact).norm()) <= 1e-8 * float(exact.norm())
    with pytest.raises(ValueError, match="n_samples"):
        SLBFGSOptimizer([x], closure_of(None), 0)
