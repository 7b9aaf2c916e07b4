"""The shared line searches: Wolfe / Armijo conditions, extrapolation, NaN handling."""

from __future__ import annotations

import math

import pytest
import torch

from pinnsolve.optim.linesearch import LINE_SEARCHES, armijo, make_line_search, strong_wolfe

C1, C2 = 1e-4, 0.9


def scalar(f, df):
    """phi(a) -> (f(a), f'(a)) as 0-dim float64 tensors, counting calls."""
    calls = []

    def phi(a):
        calls.append(a)
        t = torch.tensor(a, dtype=torch.float64)
        return f(t), df(t)

    phi.calls = calls
    return phi


def mt1(a, beta=2.0):  # Moré & Thuente (1994), function 1
    return -a / (a**2 + beta)


def dmt1(a, beta=2.0):
    return (a**2 - beta) / (a**2 + beta) ** 2


def mt2(a, beta=0.004):  # Moré & Thuente (1994), function 2
    return (a + beta) ** 5 - 2.0 * (a + beta) ** 4


def dmt2(a, beta=0.004):
    return 5.0 * (a + beta) ** 4 - 8.0 * (a + beta) ** 3


def nan_beyond(a):  # (a - 0.4)^2, NaN for a > 0.5
    return torch.where(a > 0.5, torch.nan, (a - 0.4) ** 2)


def dnan_beyond(a):
    return torch.where(a > 0.5, torch.nan, 2.0 * (a - 0.4))


CASES = {
    "quadratic": (lambda a: (a - 3.0) ** 2, lambda a: 2.0 * (a - 3.0), 1.0),
    "step_far_too_long": (lambda a: (a - 1e-3) ** 2, lambda a: 2.0 * (a - 1e-3), 1e3),
    "step_far_too_short": (lambda a: (a - 100.0) ** 2, lambda a: 2.0 * (a - 100.0), 1e-3),
    "sine": (lambda a: -torch.sin(a), lambda a: -torch.cos(a), 10.0),
    "mt1_small": (mt1, dmt1, 1e-3),
    "mt1_large": (mt1, dmt1, 1e3),
    "mt2_small": (mt2, dmt2, 1e-3),
    "mt2_large": (mt2, dmt2, 1e1),
    "nan_beyond_0.5": (nan_beyond, dnan_beyond, 10.0),
    "nan_beyond_0.5_huge_step": (nan_beyond, dnan_beyond, 1e8),
}


def check_wolfe(f, df, res, c1=C1, c2=C2):
    a0 = torch.tensor(0.0, dtype=torch.float64)
    f0, g0 = float(f(a0)), float(df(a0))
    a = torch.tensor(res.step, dtype=torch.float64)
    fa, ga = float(f(a)), float(df(a))
    assert math.isfinite(fa) and math.isfinite(ga)
    assert fa <= f0 + c1 * res.step * g0, "sufficient decrease violated"
    assert abs(ga) <= c2 * abs(g0), "strong curvature condition violated"
    assert float(res.f_new) == fa and float(res.g_new) == ga


@pytest.mark.parametrize("name", sorted(CASES))
def test_strong_wolfe_conditions(name):
    f, df, step0 = CASES[name]
    phi = scalar(f, df)
    a0 = torch.tensor(0.0, dtype=torch.float64)
    for c2 in (0.9, 0.1):
        res = strong_wolfe(phi, f(a0), df(a0), step0, c1=C1, c2=c2, max_evals=40)
        assert res.success, (name, res)
        assert res.found and res.step > 0.0
        check_wolfe(f, df, res, c2=c2)
        assert res.evals <= 40


def test_strong_wolfe_accepts_unit_step_in_one_evaluation():
    f, df, _ = CASES["quadratic"]
    phi = scalar(f, df)
    a0 = torch.tensor(0.0, dtype=torch.float64)
    res = strong_wolfe(phi, f(a0), df(a0), 2.5)  # |f'(2.5)| = 1 <= 0.9 * 6
    assert res.success and res.step == 2.5 and res.evals == 1


def test_strong_wolfe_never_returns_non_finite():
    """NaN beyond a tiny step: the search shrinks into the finite region."""
    f = lambda a: torch.where(a > 1e-6, torch.nan, -a)  # noqa: E731
    df = lambda a: torch.where(a > 1e-6, torch.nan, -torch.ones_like(a))  # noqa: E731
    phi = scalar(f, df)
    res = strong_wolfe(phi, 0.0, -1.0, 1.0, max_evals=25)
    if res.found:
        assert math.isfinite(float(res.f_new)) and res.step <= 1e-6
    assert not res.success  # slope is -1 everywhere: no curvature point exists
    # everything NaN: nothing is returned
    phi_nan = scalar(lambda a: a * torch.nan, lambda a: a * torch.nan)
    res = strong_wolfe(phi_nan, 0.0, -1.0, 1.0, max_evals=10)
    assert not res.found and res.f_new is None and res.step == 0.0
    assert res.reason in ("max_evals", "interval_too_small")


def test_strong_wolfe_failure_modes():
    f, df, _ = CASES["quadratic"]
    phi = scalar(f, df)
    res = strong_wolfe(phi, 9.0, 6.0, 1.0)  # ascent direction
    assert not res.success and res.reason == "not_descent" and res.evals == 0
    # linear function: never satisfies the curvature condition
    lin = scalar(lambda a: -a, lambda a: -torch.ones_like(a))
    res = strong_wolfe(lin, 0.0, -1.0, 1.0, max_evals=5)
    assert not res.success and res.reason == "max_evals" and res.evals == 5
    assert res.found and float(res.f_new) < 0.0  # best point with sufficient decrease
    res = strong_wolfe(lin, 0.0, -1.0, 1.0, max_evals=50, step_max=10.0)
    assert res.reason == "step_max" and res.step == 10.0


def test_strong_wolfe_vector_direction():
    """With d given, phi returns full gradients and the search forms g'd."""
    gen = torch.Generator().manual_seed(1)
    a_mat = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    a_mat = a_mat @ a_mat.T + 5 * torch.eye(5, dtype=torch.float64)
    x = torch.randn(5, generator=gen, dtype=torch.float64)

    def fg(z):
        return 0.5 * z @ a_mat @ z, a_mat @ z

    f0, g0 = fg(x)
    d = -g0
    res = strong_wolfe(lambda a: fg(x + a * d), f0, g0 @ d, 1.0, d=d)
    assert res.success
    f1, g1 = fg(x + res.step * d)
    assert float(f1) <= float(f0) + C1 * res.step * float(g0 @ d)
    assert abs(float(g1 @ d)) <= C2 * abs(float(g0 @ d))
    assert torch.equal(res.g_new, g1)
    assert res.dderiv == pytest.approx(float(g1 @ d))


@pytest.mark.parametrize("interpolate", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_armijo_sufficient_decrease(name, interpolate):
    f, df, step0 = CASES[name]
    phi = scalar(f, df)
    a0 = torch.tensor(0.0, dtype=torch.float64)
    f0, g0 = f(a0), df(a0)
    res = armijo(phi, f0, g0, step0, max_evals=60, interpolate=interpolate)
    assert res.success and res.found
    fa = float(f(torch.tensor(res.step, dtype=torch.float64)))
    assert math.isfinite(fa)
    assert fa <= float(f0) + C1 * res.step * float(g0)
    assert res.step <= step0


def test_armijo_interpolation_is_safeguarded():
    """Each backtrack lies in [0.1, 0.5] x the previous trial."""
    f, df, step0 = CASES["step_far_too_long"]
    phi = scalar(f, df)
    a0 = torch.tensor(0.0, dtype=torch.float64)
    res = armijo(phi, f(a0), df(a0), step0, max_evals=60)
    assert res.success
    calls = phi.calls
    for prev, cur in zip(calls, calls[1:], strict=False):
        assert 0.1 * prev * (1 - 1e-12) <= cur <= 0.5 * prev * (1 + 1e-12)
    # interpolation needs far fewer evaluations than halving here
    halving = scalar(f, df)
    res_h = armijo(halving, f(a0), df(a0), step0, max_evals=60, interpolate=False)
    assert res.evals < res_h.evals


def test_armijo_failure():
    phi = scalar(lambda a: a * torch.nan, lambda a: a * torch.nan)
    res = armijo(phi, 0.0, -1.0, 1.0, max_evals=7)
    assert not res.success and not res.found and res.evals == 7 and res.reason == "max_evals"
    res = armijo(phi, 0.0, 1.0, 1.0)
    assert res.reason == "not_descent" and res.evals == 0


def test_armijo_rejects_non_finite_gradient():
    """A finite loss with a NaN gradient is not acceptable either."""
    d = torch.ones(2, dtype=torch.float64)

    def phi(a):
        x = a * d
        g = 2 * x if a < 0.3 else torch.full_like(x, torch.nan)
        return (x**2).sum() - 2 * x.sum(), g - 2

    res = armijo(phi, 0.0, -4.0, 1.0, d=d)
    assert res.success and res.step < 0.3 and torch.isfinite(res.g_new).all()


def test_registry_and_binding():
    assert LINE_SEARCHES == {"strong_wolfe": strong_wolfe, "armijo": armijo}
    search = make_line_search("strong_wolfe", c1=1e-3, c2=0.5, max_evals=9)
    f, df, step0 = CASES["mt1_large"]
    res = search(scalar(f, df), f(torch.tensor(0.0)), df(torch.tensor(0.0)), step0)
    assert res.evals <= 9
    with pytest.raises(ValueError, match="unknown line search 'exact'"):
        make_line_search("exact")
    with pytest.raises(ValueError, match="0 < c1 < c2 < 1"):
        make_line_search("strong_wolfe", c1=0.5, c2=0.1)


def test_search_along_returns_the_evaluated_point_and_refuses_a_weak_step_uphill():
    from pinnsolve.objective import FunctionObjective
    from pinnsolve.optim.linesearch import (
        LineSearchResult,
        make_line_search,
        safe_step,
        search_along,
    )

    obj = FunctionObjective(lambda x: 0.5 * (x * x).sum())
    theta = torch.tensor([3.0, -4.0], dtype=torch.float64)
    f, g = obj.loss_and_grad(theta)
    d = -g
    res, x = search_along(make_line_search("strong_wolfe"), obj, theta, f, d,
                          float(g @ d), 1.0)
    assert res.success and torch.equal(x, theta + 1.0 * d)  # the exact minimizer
    assert safe_step(g) == 1.0 / 7.0 and safe_step(torch.zeros(2)) == 1.0

    def uphill(phi, f0, gtd, step0, d=None):  # claims a weak step that raises f
        fx, gx = phi(step0)
        return LineSearchResult(step=step0, f_new=fx, g_new=gx, evals=1, success=False,
                                reason="test")

    res, x = search_along(uphill, obj, theta, f, -d, float(g @ -d), 1.0)
    assert x is None
