import numpy as np
import pytest
import scipy.optimize
import torch
from objectives import AutogradObjective, Quadratic, rosenbrock, rosenbrock_start
from test_lbfgs import exact_quadratic_search, stop_when_grad_below

from pinnsolve.optim import BFGS, SSBFGS, Progress, StopCriteria, make_method, minimize


def test_exact_line_search_terminates_in_n_iterations_and_recovers_the_inverse_hessian():
    """BFGS with exact line searches on a quadratic: finite termination, H_n = A^-1."""
    n = 12
    q = Quadratic(n=n, cond=100.0, seed=3)
    theta = q.x0()
    method = BFGS(line_search=exact_quadratic_search)
    res = minimize(q, theta, method, StopCriteria(max_iter=3 * n),
                   callbacks=[stop_when_grad_below(1e-7)])
    assert res.iterations <= n
    assert torch.allclose(theta, q.xstar, atol=1e-8, rtol=0)
    H = method.inverse_hessian()
    err = torch.linalg.matrix_norm(H - torch.linalg.inv(q.A)) / torch.linalg.matrix_norm(H)
    assert res.iterations < n or float(err) < 1e-6


@pytest.mark.parametrize("name", ["bfgs", "ssbfgs"])
@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_against_scipy_bfgs(name, n):
    theta = rosenbrock_start(n)
    obj = AutogradObjective(rosenbrock)
    res = minimize(obj, theta, make_method(name), StopCriteria(gtol=1e-9, max_iter=2000))

    def fun(x):
        t = torch.from_numpy(x).requires_grad_(True)
        v = rosenbrock(t)
        (g,) = torch.autograd.grad(v, t)
        return float(v.detach()), g.numpy()

    ref = scipy.optimize.minimize(fun, rosenbrock_start(n).numpy(), jac=True, method="BFGS",
                                  options={"gtol": 1e-9, "maxiter": 2000})
    print(f"Rosenbrock n={n} {name}: {res.iterations} it / {res.function_evals} evals; "
          f"scipy BFGS {ref.nit} it / {ref.nfev} evals")
    assert res.stop_reason == "gtol"
    assert torch.allclose(theta, torch.ones(n, dtype=torch.float64), atol=1e-6, rtol=0)
    assert res.iterations <= 1.5 * ref.nit + 5


def test_self_scaling_helps_on_an_ill_conditioned_quadratic():
    """Eigenvalues in [1, 1e4] with H_0 badly scaled: self-scaling needs no more iterations."""
    q = Quadratic(n=40, cond=1e4, seed=2)
    counts = {}
    for name in ("bfgs", "ssbfgs"):
        theta = q.x0()
        res = minimize(q, theta, make_method(name), StopCriteria(max_iter=1000),
                       callbacks=[stop_when_grad_below(1e-6)])
        assert res.stop_reason == "callback", (name, res.stop_reason, res.iterations)
        counts[name] = res.iterations
    print(counts)
    assert counts["ssbfgs"] <= counts["bfgs"] * 1.1


def test_inverse_hessian_stays_symmetric_positive_definite():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(6)
    method = SSBFGS()
    minimize(obj, theta, method, StopCriteria(max_iter=40))
    H = method.inverse_hessian()
    assert torch.allclose(H, H.T, atol=1e-12 * float(H.abs().max()))
    assert float(torch.linalg.eigvalsh(H).min()) > 0


def test_resume_is_bit_for_bit():
    obj = AutogradObjective(rosenbrock)
    straight = rosenbrock_start(4)
    minimize(obj, straight, SSBFGS(), StopCriteria(max_iter=20))
    first = rosenbrock_start(4)
    m1 = SSBFGS()
    p = Progress()
    minimize(obj, first, m1, StopCriteria(max_iter=10), progress=p)
    m2 = SSBFGS()
    m2.load_state_dict(m1.state_dict())
    minimize(obj, first, m2, StopCriteria(max_iter=20), progress=p)
    assert torch.equal(first, straight)


def test_too_many_parameters_is_refused_clearly():
    obj = AutogradObjective(lambda x: (x**2).sum())
    with pytest.raises(ValueError, match="use a limited-memory method"):
        minimize(obj, torch.zeros(30000, dtype=torch.float64), BFGS(), StopCriteria(max_iter=1))


def test_float32_keeps_dtype():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(3, dtype=torch.float32)
    minimize(obj, theta, SSBFGS(), StopCriteria(max_iter=5))
    assert theta.dtype == torch.float32 and np.isfinite(theta.numpy()).all()


@pytest.mark.parametrize("name", ["bfgs", "ssbfgs", "lbfgs", "ldfp", "lbroyden"])
def test_host_round_trips_are_only_line_search_scalars(monkeypatch, name):
    """Per iteration: phi(0), phi'(0), and one (phi(a), phi'(a)) per trial point -- no
    other device-to-host transfer (counted by patching every Tensor -> Python scalar path)."""
    class Plain:  # an objective that never syncs itself
        def loss_and_grad(self, theta):
            with torch.enable_grad():
                x = theta.detach().requires_grad_(True)
                f = rosenbrock(x)
                (g,) = torch.autograd.grad(f, x)
            return f.detach(), g

        def loss(self, theta):
            return rosenbrock(theta)

    obj = Plain()
    theta = rosenbrock_start(10)
    method = make_method(name)
    minimize(obj, theta, method, StopCriteria(max_iter=8))  # past the first, fresh steps
    syncs = {"n": 0}
    for attr in ("tolist", "item", "__float__", "__bool__", "__int__", "__index__"):
        original = getattr(torch.Tensor, attr)

        def counting(self, *a, _original=original, **k):
            syncs["n"] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, attr, counting)
    checked = 0
    for _ in range(6):
        syncs["n"] = 0
        resets = method.state["resets"]
        info = method.step(obj, theta)
        if method.state["resets"] != resets or method.state["weak_steps"]:
            continue  # a fallback step (extra |g|_1) or a weak step: not the fast path
        assert syncs["n"] == 2 + info.evals, (name, syncs["n"], info.evals)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name", ["bfgs", "ssbfgs", "ssbroyden1", "ssbroyden2"])
def test_carried_direction_matches_the_direct_product(name):
    """The delayed updates and the carried H g (no pass over the matrix) give the
    direction -H_k g_k of the one-at-a-time matrix, at every iteration, across folds
    (fold_every=3) and refreshes (refresh_every=7)."""
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(12)
    method = make_method(name, fold_every=3, refresh_every=7)
    carried = 0
    method.start(obj, theta)
    for _ in range(40):
        assert method.step(obj, theta).failed is None
        st = method.state
        if st["Hg"] is not None and st["Hg_iter"] == st["iteration"]:
            carried += 1
        d = method.direction(st["grad"])
        direct = -(method.inverse_hessian() @ st["grad"])
        assert torch.allclose(d, direct, rtol=1e-9, atol=1e-12 * float(direct.abs().max()))
    assert carried >= 25  # most directions came from the recurrence


def test_refresh_drops_the_carried_product():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(6)
    method = SSBFGS()
    minimize(obj, theta, method, StopCriteria(max_iter=5))
    assert method.state["Hg"] is not None
    method.refresh(AutogradObjective(lambda x: 2.0 * rosenbrock(x)), theta)
    d = method.direction(method.state["grad"])
    assert torch.allclose(d, -(method.inverse_hessian() @ method.state["grad"]), rtol=1e-12)
