"""Limited-memory DFP, SR1 and Broyden: compact forms vs the dense recursions, secant
equations, convergence to known minima, skip rule, descent fallback, resume."""

from __future__ import annotations

import copy

import pytest
import torch
from objectives import AutogradObjective, Quadratic, rosenbrock, rosenbrock_start

from pinnsolve.optim import METHODS, Progress, StopCriteria, make_method, minimize
from pinnsolve.optim.limited_memory import LDFP, LSR1, LBroyden, LimitedMemoryQN
from pinnsolve.optim.quasi_newton import SKIP

VARIANTS = [("ldfp", {}), ("lsr1", {}), ("lbroyden", {"update": "bad"}),
            ("lbroyden", {"update": "good"})]
IDS = ["ldfp", "lsr1", "lbroyden-bad", "lbroyden-good"]


def dense_update(kind: str, H: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One textbook inverse update (N&W eq. 6.15 DFP, 6.25 SR1; Broyden 1965)."""
    Hy = H @ y
    if kind == "ldfp":
        return H - torch.outer(Hy, Hy) / (y @ Hy) + torch.outer(s, s) / (s @ y)
    if kind == "lsr1":
        u = s - Hy
        return H + torch.outer(u, u) / (u @ y)
    if kind == "bad":
        return H + torch.outer(s - Hy, y) / (y @ y)
    return H + torch.outer(s - Hy, s @ H) / (s @ Hy)  # good Broyden (Sherman-Morrison)


def store_pairs(method: LimitedMemoryQN, pairs) -> None:
    method.state = method._init_curvature(pairs[0][0])
    for s, y in pairs:
        prepared = LimitedMemoryQN._prepare(method, s, y, s @ y, y @ y, True, 1.0)
        method._store(s, y, s @ y, y @ y, prepared)


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_compact_form_equals_dense_recursion(name, options):
    """H g from the compact form = m textbook updates of gamma I (after wrap-around)."""
    n, m = 9, 4
    gen = torch.Generator().manual_seed(1)
    Q = torch.randn(n, n, generator=gen, dtype=torch.float64)
    A = Q @ Q.T + n * torch.eye(n, dtype=torch.float64)
    pairs = []
    for _ in range(7):  # more than m: the ring buffer wraps
        s = torch.randn(n, generator=gen, dtype=torch.float64)
        pairs.append((s, A @ s + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)))
    method = make_method(name, history=m, **options)
    store_pairs(method, pairs)
    gamma = float(method.state["gamma"])
    s_last, y_last = pairs[-1]
    scale = getattr(method, "gamma_scale", 1.0)
    assert gamma == pytest.approx(scale * float(s_last @ y_last / (y_last @ y_last)), rel=1e-14)
    H = gamma * torch.eye(n, dtype=torch.float64)
    kind = options.get("update", name)
    for s, y in pairs[-m:]:
        H = dense_update(kind, H, s, y)
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    assert torch.allclose(method.apply(g), H @ g, rtol=1e-10, atol=1e-12)
    assert torch.allclose(method.direction(g), -(H @ g), rtol=1e-10, atol=1e-12)
    # the secant equation of the newest pair holds for every variant
    assert torch.allclose(method.apply(y_last), s_last, rtol=1e-10, atol=1e-12)
    S, Y = method.pairs()
    assert torch.equal(S, torch.stack([s for s, _ in pairs[-m:]]))
    assert torch.equal(Y, torch.stack([y for _, y in pairs[-m:]]))


def test_dfp_matrix_is_symmetric_and_broyden_is_not():
    n = 6
    gen = torch.Generator().manual_seed(2)
    A = torch.diag(torch.linspace(1, 10, n, dtype=torch.float64))
    pairs = [(s, A @ s + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64))
             for s in torch.randn(3, n, generator=gen, dtype=torch.float64)]
    eye = torch.eye(n, dtype=torch.float64)
    mats = {}
    for name, options in VARIANTS:
        method = make_method(name, history=5, **options)
        store_pairs(method, pairs)
        mats[name + options.get("update", "")] = torch.stack([method.apply(e) for e in eye], 1)
    for key in ("ldfp", "lsr1"):
        assert torch.allclose(mats[key], mats[key].T, atol=1e-12)
    assert not torch.allclose(mats["lbroydenbad"], mats["lbroydenbad"].T, atol=1e-3)
    assert torch.linalg.eigvalsh(mats["ldfp"]).min() > 0  # DFP keeps H positive definite


# iterations measured (gtol 1e-9): Rosenbrock n=2: ldfp 54, lsr1 37, lbroyden bad 94 /
# good 55; n=10: lsr1 123, lbroyden bad 808 / good 1549 (ldfp: not in 5000 iterations)
@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_rosenbrock_2d(name, options):
    theta = rosenbrock_start(2)
    method = make_method(name, **options)
    res = minimize(AutogradObjective(rosenbrock), theta, method,
                   StopCriteria(gtol=1e-9, max_iter=400))
    assert res.stop_reason == "gtol"
    assert torch.allclose(theta, torch.ones(2, dtype=torch.float64), atol=1e-7, rtol=0)


@pytest.mark.parametrize("name, options, max_iter",
                         [("lsr1", {}, 300), ("lbroyden", {"update": "bad"}, 1500)],
                         ids=["lsr1", "lbroyden-bad"])
def test_rosenbrock_10d(name, options, max_iter):
    theta = rosenbrock_start(10)
    res = minimize(AutogradObjective(rosenbrock), theta, make_method(name, **options),
                   StopCriteria(gtol=1e-9, max_iter=max_iter))
    assert res.stop_reason == "gtol"
    assert torch.allclose(theta, torch.ones(10, dtype=torch.float64), atol=1e-7, rtol=0)


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_quadratic(name, options):
    q = Quadratic(n=20, cond=100.0)
    theta = q.x0()
    res = minimize(q, theta, make_method(name, **options), StopCriteria(gtol=1e-10,
                                                                         max_iter=1000))
    assert res.stop_reason == "gtol"
    assert torch.allclose(theta, q.xstar, atol=1e-8, rtol=0)
    assert abs(res.loss - q.fstar) <= 1e-12 * max(1.0, abs(q.fstar))


T = torch.linspace(0.0, 2.0, 30, dtype=torch.float64)
TRUE = torch.tensor([2.5, -1.3, 0.5], dtype=torch.float64)


def exp_fit_loss(th: torch.Tensor) -> torch.Tensor:
    """||th0 exp(th1 t) + th2 - y||^2: a zero-residual nonlinear least-squares problem."""
    r = th[0] * torch.exp(th[1] * T) + th[2] - (TRUE[0] * torch.exp(TRUE[1] * T) + TRUE[2])
    return r @ r


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_nonlinear_least_squares(name, options):
    theta = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    res = minimize(AutogradObjective(exp_fit_loss), theta, make_method(name, **options),
                   StopCriteria(gtol=1e-11, max_iter=2000))
    assert res.stop_reason == "gtol", res.stop_reason
    assert torch.allclose(theta, TRUE, atol=1e-6, rtol=0)


def test_sr1_skip_rule():
    """A pair with s'(y - Bs) = 0 is skipped; a generic one is not."""
    method = LSR1()
    n = 4
    theta = torch.zeros(n, dtype=torch.float64)
    method.state = {**method._init_curvature(theta), "grad": torch.ones(n, dtype=torch.float64)}
    s = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    step = 0.5
    bs = -step * method.state["grad"]  # B s = -a g
    w = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)  # s'w = 0
    y = bs + w
    assert method._prepare(s, y, s @ y, y @ y, False, step) is SKIP
    assert method._prepare(s, y, s @ y, y @ y, True, step) is not SKIP  # fresh: no B yet
    y2 = bs + torch.tensor([0.3, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert method._prepare(s, y2, s @ y2, y2 @ y2, False, step) is not SKIP


def test_non_descent_direction_falls_back_to_steepest_descent():
    """A Broyden matrix with g'Hg < 0: the shared iteration drops it and descends along -g."""
    obj = AutogradObjective(lambda x: 0.5 * (x @ x))
    theta = torch.tensor([1.0, 0.0], dtype=torch.float64)
    method = LBroyden(update="bad")
    method.start(obj, theta)
    # H = gamma I + (S - gamma Y) N^-1 Y' with one pair chosen so that H g points uphill
    s = torch.tensor([-1.0, 0.0], dtype=torch.float64)
    y = torch.tensor([1.0, 0.1], dtype=torch.float64)
    prepared = LimitedMemoryQN._prepare(method, s, y, s @ y, y @ y, True, 1.0)
    method._store(s, y, s @ y, y @ y, prepared)
    g = method.state["grad"]
    assert float(g @ method.direction(g)) > 0  # not a descent direction
    info = method.step(obj, theta)
    assert info.failed is None and float(info.loss) < 0.5
    assert method.state["resets"] == 1


def test_registered_and_options():
    assert METHODS["ldfp"] is LDFP and METHODS["lsr1"] is LSR1 and METHODS["lbroyden"] is LBroyden
    assert LBroyden().update == "good"
    with pytest.raises(ValueError, match="update"):
        LBroyden(update="ugly")
    with pytest.raises(ValueError, match="history"):
        LDFP(history=0)
    with pytest.raises(ValueError, match="skip_r"):
        LSR1(skip_r=2.0)
    with pytest.raises(ValueError, match="gamma_scale"):
        LSR1(gamma_scale=1.0)


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_resume_is_bit_for_bit(name, options):
    def run(n_iter, method, theta, progress=None):
        return minimize(AutogradObjective(rosenbrock), theta, method,
                        StopCriteria(max_iter=n_iter), progress=progress)

    full = rosenbrock_start(6)
    run(12, make_method(name, **options), full)
    theta = rosenbrock_start(6)
    progress = Progress()
    method = make_method(name, **options)
    run(5, method, theta, progress)
    fresh = make_method(name, **options)
    fresh.load_state_dict(method.state_dict())
    res = run(12, fresh, theta.clone(), copy.deepcopy(progress))
    assert res.iterations == 12
    assert torch.equal(res.theta, full)


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_float32_keeps_dtype(name, options):
    q = Quadratic(n=10, cond=10.0, dtype=torch.float32)
    theta = q.x0()
    method = make_method(name, **options)
    minimize(q, theta, method, StopCriteria(gtol=1e-4, max_iter=200))
    assert theta.dtype == torch.float32 and method.state["grad"].dtype == torch.float32
    assert torch.allclose(theta, q.xstar, atol=1e-3)
