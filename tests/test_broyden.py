import math

import pytest
import scipy.optimize
import torch
from objectives import AutogradObjective, Quadratic, rosenbrock, rosenbrock_start
from test_lbfgs import stop_when_grad_below

from pinnsolve.optim import (
    BFGS,
    Progress,
    SSBroyden,
    SSBroyden1,
    SSBroyden2,
    StopCriteria,
    make_method,
    minimize,
)
from pinnsolve.optim.broyden import ssbroyden_parameters

VARIANTS = ["ssbroyden1", "ssbroyden2"]


def test_registry_names():
    assert isinstance(make_method("ssbroyden"), SSBroyden2)
    assert isinstance(make_method("ssbroyden2"), SSBroyden2)
    assert isinstance(make_method("ssbroyden1"), SSBroyden1)
    with pytest.raises(ValueError, match="unknown SSBroyden variant 'x'"):
        SSBroyden(variant="x")


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameters_keep_the_update_in_the_positive_definite_range(variant):
    """phi in the Broyden class safe range (phi > -1/a), tau > 0, on a grid of (b, h)."""
    for b in (0.01, 0.3, 0.9, 1.0, 1.5, 10.0, 1e3):
        for h in (0.01, 0.5, 1.0, 2.0, 100.0):
            if b * h < 1.0:  # a = bh - 1 >= 0 by Cauchy-Schwarz for real pairs
                continue
            phi, tau = ssbroyden_parameters(b, h, n=500, variant=variant)
            a = b * h - 1.0
            assert math.isfinite(phi) and math.isfinite(tau) and tau > 0, (b, h, phi, tau)
            assert phi * a > -1.0 + 1e-12, (b, h, phi)


def test_a_zero_gives_scaled_bfgs():
    phi, tau = ssbroyden_parameters(2.0, 0.5, n=10)
    assert phi == 1.0 and tau == 0.5


@pytest.mark.parametrize("variant", VARIANTS)
def test_secant_equation_symmetry_and_positive_definiteness(variant):
    """After every update H y = s (to rounding), H = H' and H > 0, on Rosenbrock."""
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(8)
    method = SSBroyden(variant=variant)
    for _ in range(30):
        old = theta.clone()
        g_old = method.state["grad"].clone() if method.state else None
        minimize(obj, theta, method, StopCriteria(max_iter=1),
                 progress=None)
        if g_old is None or method.state["skipped"] or method.state["resets"]:
            continue
        s = theta - old
        y = method.state["grad"] - g_old
        H = method.inverse_hessian()
        assert torch.allclose(H @ y, s, rtol=1e-6, atol=1e-10 * float(s.abs().max()))
    H = method.inverse_hessian()
    assert torch.allclose(H, H.T, atol=1e-12 * float(H.abs().max()))
    assert float(torch.linalg.eigvalsh(H).min()) > 0


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_reaches_the_minimum(name, n):
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
    print(f"Rosenbrock n={n} {name}: {res.iterations} it; scipy BFGS {ref.nit} it")
    assert res.stop_reason == "gtol"
    assert torch.allclose(theta, torch.ones(n, dtype=torch.float64), atol=1e-6, rtol=0)
    assert res.iterations <= 2 * ref.nit + 10


@pytest.mark.parametrize("name", VARIANTS)
def test_ill_conditioned_quadratic(name):
    """Eigenvalues in [1, 1e4], ||g|| < 1e-5 (so ||x - x*|| < 1e-5 as lambda_min = 1);
    no more iterations than 1.2x BFGS."""
    q = Quadratic(n=40, cond=1e4, seed=2)
    counts = {}
    for m in ("bfgs", name):
        theta = q.x0()
        res = minimize(q, theta, make_method(m), StopCriteria(max_iter=2000),
                       callbacks=[stop_when_grad_below(1e-5)])
        assert res.stop_reason == "callback", (m, res.stop_reason, res.iterations)
        assert torch.allclose(theta, q.xstar, atol=1e-5, rtol=0)
        counts[m] = res.iterations
    print(counts)
    assert counts[name] <= 1.2 * counts["bfgs"] + 2


def test_resume_is_bit_for_bit():
    obj = AutogradObjective(rosenbrock)
    straight = rosenbrock_start(4)
    minimize(obj, straight, SSBroyden2(), StopCriteria(max_iter=20))
    first = rosenbrock_start(4)
    m1 = SSBroyden2()
    p = Progress()
    minimize(obj, first, m1, StopCriteria(max_iter=10), progress=p)
    m2 = SSBroyden2()
    m2.load_state_dict(m1.state_dict())
    minimize(obj, first, m2, StopCriteria(max_iter=20), progress=p)
    assert torch.equal(first, straight)


def test_float32_and_dense_limit():
    obj = AutogradObjective(rosenbrock)
    theta = rosenbrock_start(3, dtype=torch.float32)
    minimize(obj, theta, SSBroyden2(), StopCriteria(max_iter=5))
    assert theta.dtype == torch.float32 and torch.isfinite(theta).all()
    big = AutogradObjective(lambda x: (x**2).sum())
    with pytest.raises(ValueError, match="use a limited-memory method"):
        minimize(big, torch.zeros(30000, dtype=torch.float64), SSBroyden2(),
                 StopCriteria(max_iter=1))
    assert isinstance(SSBroyden2(), BFGS)
