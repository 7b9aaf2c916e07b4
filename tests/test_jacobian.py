"""PINNObjective.jacobian (per-point gradients), jvp/vjp/linearize and jacobian_diagonal
against generic jacrev; J'J; LM uses it."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch.func import jacrev

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
from pinnsolve.optim import StopCriteria, minimize
from pinnsolve.optim.levenberg import LevenbergMarquardt, normal_matrix
from problems import burgers

TOL = 1e-10


def reference(obj, theta):
    return jacrev(obj.residuals)(theta)


def check(obj, theta=None, **kw):
    theta = obj.initial_theta() if theta is None else theta
    torch.manual_seed(1)
    theta = theta + 0.1 * torch.randn_like(theta)  # away from any special initialisation
    J = obj.jacobian(theta, **kw)
    J0 = reference(obj, theta)
    assert J.shape == J0.shape == (obj.residuals(theta).numel(), obj.n_params)
    err = float((J - J0).abs().max())
    assert float(J0.abs().max()) > 1e-3  # not trivially zero
    assert err <= TOL * max(1.0, float(J0.abs().max())), err
    check_products(obj, theta, J0, kw.get("chunk_size", 4096))
    return J


def check_products(obj, theta, J0, chunk_size):
    """The matrix-free products and diag(J'J) of the Levenberg-Marquardt cg path."""
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(J0.shape[1], generator=gen, dtype=J0.dtype)
    u = torch.randn(J0.shape[0], generator=gen, dtype=J0.dtype)
    lin = obj.linearize(theta)
    assert torch.equal(lin.residuals, obj.residuals(theta))
    for _ in range(2):  # reused linearization: same answers
        jv, jtu = lin.jvp(v), lin.vjp(u)
        assert float((jv - J0 @ v).abs().max()) <= TOL * max(1.0, float((J0 @ v).abs().max()))
        assert float((jtu - J0.T @ u).abs().max()) <= TOL * max(1.0, float(
            (J0.T @ u).abs().max()))
    assert torch.allclose(obj.jvp(theta, v), jv, rtol=0, atol=1e-13)
    assert torch.allclose(obj.vjp(theta, u), jtu, rtol=0, atol=1e-13)
    d0 = J0.pow(2).sum(0)
    d = obj.jacobian_diagonal(theta, chunk_size=chunk_size)
    assert float((d - d0).abs().max()) <= TOL * max(1.0, float(d0.max()))


def test_burgers_pde_initial_boundary_and_chunks():
    obj = burgers.make_problem(points=30, boundary_points=8, initial_points=7).compile(
        MLP(2, 1, (8, 8), lows=[-1, 0], highs=[1, 1], seed=0))
    J = check(obj)
    # chunks (3 does not divide the term sizes) and one pass per term give the same J
    torch.manual_seed(1)
    theta = obj.initial_theta() + 0.1 * torch.randn(obj.n_params, dtype=torch.float64)
    assert torch.allclose(obj.jacobian(theta, chunk_size=3), J, rtol=0, atol=1e-14)
    assert torch.allclose(obj.jacobian(theta, chunk_size=None), J, rtol=0, atol=1e-14)


def test_hard_constraints_and_inverse_unknown():
    pts, vals = burgers.make_observations(n=12, seed=0)
    problem = burgers.make_problem(points=20, hard=True, nu_init=0.05, data=(pts, vals))
    obj = problem.compile(MLP(2, 1, (6,), lows=[-1, 0], highs=[1, 1], seed=0))
    assert obj.unknowns == ["nu"]
    J = check(obj)
    assert float(J[:, -1].abs().max()) > 0  # the unknown's column is filled


def test_two_field_system_with_weights():
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), fields=("u", "v"))
    p.pde(lambda u, v, x: (u.t - v + u.xx, v.t + u * v.x - x), n=15)  # (N, 2) rows
    p.add(Initial(0.0, field="u", n=5), Initial(1.0, field="v", n=6, weight=3.0),
          Dirichlet(0.0, field="v", n=4, weight=0.0))
    obj = p.compile(MLP(2, 2, (7, 5), seed=0), weights={"pde": 2.0})
    J = check(obj)
    assert J.shape[0] == 2 * 15 + 5 + 6 + 4
    assert float(J[-4:].abs().max()) == 0.0  # the zero-weight term


def test_neumann_robin_periodic_data():
    def dudn(x, y):
        return x + y

    p = Problem(Rectangle((0, 0), (1, 1), ("x", "y")))
    p.pde(lambda u: u.xx + u.yy - 1.0, n=12)
    p.add(Neumann(dudn, n=10), Robin(2.0, 3.0, lambda x, y: x * y, n=9))
    obj = p.compile(MLP(2, 1, (6, 6), seed=0))
    check(obj, chunk_size=4)

    q = Problem(Interval(-1, 1) * TimeInterval(0, 1))
    pts = np.array([[0.5, 0.1], [-0.5, 0.2], [0.1, 0.9]])
    q.pde(lambda u: u.t - 0.1 * u.xx, n=10)
    q.add(Periodic("x", derivatives=("x",), n=7), Data(pts, np.sin(np.pi * pts[:, 0])),
          Initial(lambda x: torch.sin(np.pi * x), n=5))
    obj = q.compile(MLP(2, 1, (6,), seed=0))
    J = check(obj)
    assert J.shape[0] == 10 + 7 * 2 + 3 + 5  # periodic rows have (value, u_x) components


def test_model_that_vmap_cannot_batch_falls_back_with_a_warning():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1, dtype=torch.float64)

        def forward(self, z):
            if bool((z[:, 0] > 2.0).any()):  # data-dependent control flow: not vmappable
                return self.lin(z) * 2
            return torch.tanh(self.lin(z))

    p = Problem(Interval(0, 1) * TimeInterval(0, 1))
    p.pde(lambda u: u.t - u.xx, n=8)
    obj = p.compile(Branchy())
    with pytest.warns(RuntimeWarning, match="per-point Jacobian failed"):
        check(obj)


def test_bad_arguments():
    obj = burgers.make_problem(points=10, boundary_points=4, initial_points=4).compile(
        MLP(2, 1, (4,), seed=0))
    theta = obj.initial_theta()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            obj.jacobian(theta, chunk_size=bad)
    with pytest.raises(ValueError, match="theta must have shape"):
        obj.jacobian(theta[:-1])


def test_normal_matrix_matches_matmul_and_is_symmetric():
    torch.manual_seed(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-4)):
        J = torch.randn(50, 13, dtype=dtype)
        A = normal_matrix(J)
        assert A.dtype == dtype and torch.equal(A, A.T)
        assert torch.allclose(A, J.T @ J, rtol=tol, atol=tol)
    J = torch.randn(7, 5, dtype=torch.float64)[:, ::2]  # a non-contiguous view
    assert torch.allclose(normal_matrix(J), J.T @ J, rtol=0, atol=1e-13)


def test_lm_uses_the_objective_jacobian_and_matches_the_generic_path():
    def make():
        return burgers.make_problem(points=25, boundary_points=6, initial_points=6).compile(
            MLP(2, 1, (6,), lows=[-1, 0], highs=[1, 1], seed=0))

    obj_fast, obj_generic = make(), make()
    calls = []
    own = obj_fast.jacobian
    obj_fast.jacobian = lambda th: calls.append(1) or own(th)
    t_fast, t_gen = obj_fast.initial_theta(), obj_generic.initial_theta()
    r1 = minimize(obj_fast, t_fast, LevenbergMarquardt(), StopCriteria(max_iter=15))
    r2 = minimize(obj_generic, t_gen, LevenbergMarquardt(jacobian="rev"),
                  StopCriteria(max_iter=15))
    assert len(calls) >= 1 + r1.iterations // 2  # one per accepted step (and the start)
    assert r1.loss_history[-1] < 0.05 * r1.loss_history[0]
    # the same iterates up to rounding
    assert abs(r1.loss_history[-1] - r2.loss_history[-1]) <= 1e-8 * r2.loss_history[0]
    assert torch.allclose(t_fast, t_gen, rtol=0, atol=1e-6)


def test_per_point_jacobian_is_much_cheaper_than_jacrev():
    """The point of the per-point path: a few loss-and-gradient costs, not m of them."""
    torch.set_num_threads(1)
    obj = burgers.make_problem(points=300, boundary_points=30, initial_points=30).compile(
        MLP(2, 1, (10, 10), lows=[-1, 0], highs=[1, 1], seed=0))
    theta = obj.initial_theta()

    def best(fn, k=3):
        out = math.inf
        for _ in range(k):
            t = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t)
        return out

    t_fast = best(lambda: obj.jacobian(theta))
    t_rev = best(lambda: reference(obj, theta), k=1)
    print(f"per-point {t_fast * 1e3:.1f} ms, jacrev {t_rev * 1e3:.1f} ms")
    assert t_fast < t_rev / 5
