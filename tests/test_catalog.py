"""The problem catalog (problems/*.py) and `pinnsolve list` / `pinnsolve run`.

Each problem compiles; its residual and conditions vanish on its exact solution (written
out independently here and plugged in as the "model"); exact solutions agree with an
independent computation (finite differences, matrix exponentials, a finer spectral run);
hard-constraint transforms satisfy the conditions they claim; bad parameters give a
ValueError naming them; the command line lists, runs and rejects as documented.
"""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from pinnsolve import MLP, OutputTransform
from pinnsolve.cli import main
from pinnsolve.problems import CATALOG, build, load, parameters

pi = math.pi
NEW = [n for n in CATALOG if n != "burgers"]


def make(name, **kw):
    return load(name).make_problem(**kw)


class ExactModel(torch.nn.Module):
    """A 'network' that returns a given function of the coordinates (one dummy parameter)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, z):
        return self.fn(z) + 0 * self.p


def odd(n_terms):
    return torch.arange(1, 2 * n_terms, 2, dtype=torch.float64)


def heat_exact(z, k=0.1):
    n = odd(1000)
    x, t = z[:, :1], z[:, 1:]
    return (32 / (n * pi) ** 3 * torch.exp(-k * (n * pi) ** 2 * t) * torch.sin(n * pi * x)).sum(
        1, keepdim=True)


def heat_neumann_exact(z, k=0.1):
    n = odd(1000)
    x, t = z[:, :1], z[:, 1:]
    return 0.5 - (48 / (n * pi) ** 4 * torch.exp(-k * (n * pi) ** 2 * t)
                  * torch.cos(n * pi * x)).sum(1, keepdim=True)


def poisson_exact(z):
    x, y = z[:, :1], z[:, 1:]
    return torch.sin(pi * x) * torch.sin(2 * pi * y) + 0.25 * x * y


def helmholtz_exact(z):
    return torch.sin(pi * z[:, :1]) * torch.sin(2 * pi * z[:, 1:])


def advection_exact(z):
    s = z[:, :1] - z[:, 1:]
    return torch.sin(s) + 0.5 * torch.cos(2 * s)


def wave_exact(z):
    x, t = z[:, :1], z[:, 1:]
    return torch.sin(pi * x) * torch.cos(pi * t) + 0.5 * torch.sin(2 * pi * x) * torch.sin(
        2 * pi * t)


def rd_exact(z):
    from pinnsolve.problems.reaction_diffusion import modal_solution

    return modal_solution(z[:, 0], z[:, 1], 0.1, 0.05, 1.0, 0.5)


EXACT = {
    "heat": (heat_exact, 1e-13),  # initial condition: series tail < 16 / (pi^3 2000^2)
    "heat-neumann": (heat_neumann_exact, 1e-20),
    "poisson": (poisson_exact, 1e-20),
    "helmholtz": (helmholtz_exact, 1e-20),
    "advection": (advection_exact, 1e-20),
    "wave": (wave_exact, 1e-20),
    "reaction-diffusion": (rd_exact, 1e-20),
}


# -- every problem ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CATALOG))
def test_problem_compiles_and_has_a_solution(name):
    problem = make(name, points=64)
    model = MLP(problem.domain.dim, len(problem.fields), (8,), lows=list(problem.domain.lows),
                highs=list(problem.domain.highs), seed=0)
    obj = problem.compile(model, seed=0)
    loss = obj.loss(obj.initial_theta())
    assert math.isfinite(float(loss)) and float(loss) > 0
    assert problem.solution is not None
    if name in ("allen-cahn", "burgers", "burgers-modes"):
        return  # their references are checked elsewhere (and cost seconds to compute)
    grid = problem.evaluation_grid()
    values = np.asarray(problem.solution(grid)).reshape(len(grid), -1)
    assert values.shape[1] == len(problem.fields) and np.isfinite(values).all()


@pytest.mark.parametrize("name", sorted(EXACT))
def test_residual_and_conditions_vanish_on_the_exact_solution(name):
    fn, tol = EXACT[name]
    problem = make(name, hard=False, points=400)
    obj = problem.compile(ExactModel(fn), seed=1)
    losses = obj.term_losses(obj.initial_theta())
    assert losses, "no terms"
    for term, value in losses.items():
        assert value < tol, f"{name}: term {term} has mean square {value:.3e} on the exact solution"
    # ... and the module's solution (numpy) is the same function
    grid = problem.evaluation_grid()
    ours = np.asarray(problem.solution(grid)).reshape(len(grid), -1)
    theirs = fn(torch.from_numpy(grid)).detach().numpy()
    # (heat's series here stops at n = 1999: at t = 0 its tail is up to 16 / (pi^3 2000^2))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-7 if name == "heat" else 1e-9)


def test_a_wrong_solution_leaves_a_residual():
    """The check above can fail: a slightly wrong diffusivity leaves a clear residual."""
    obj = make("heat", k=0.11, points=400).compile(ExactModel(heat_exact), seed=1)
    assert obj.term_losses(obj.initial_theta())["pde"] > 1e-6


def crank_nicolson(k, u0, bc, nx=401, nt=500, t_end=0.5):
    """Second-order finite differences for u_t = k u_xx on [0, 1] (Dirichlet or Neumann)."""
    x = np.linspace(0, 1, nx)
    h, dt = x[1] - x[0], t_end / nt
    A = np.diag(-2 * np.ones(nx)) + np.diag(np.ones(nx - 1), 1) + np.diag(np.ones(nx - 1), -1)
    if bc == "neumann":  # ghost points: u_{-1} = u_1
        A[0, 1] = A[-1, -2] = 2
    A *= k / h**2
    I = np.eye(nx)
    left, right = I - dt / 2 * A, I + dt / 2 * A
    if bc == "dirichlet":
        left[[0, -1]] = I[[0, -1]]
        right[[0, -1]] = 0
    step = np.linalg.solve(left, right)
    u = u0(x)
    for _ in range(nt):
        u = step @ u
    return x, u


@pytest.mark.parametrize("name,bc,u0", [
    ("heat", "dirichlet", lambda x: 4 * x * (1 - x)),
    ("heat-neumann", "neumann", lambda x: 3 * x**2 - 2 * x**3),
])
def test_fourier_series_agree_with_finite_differences(name, bc, u0):
    x, u_fd = crank_nicolson(0.1, u0, bc)
    z = np.stack([x, np.full_like(x, 0.5)], axis=1)
    u = make(name).solution(z)[:, 0]
    assert np.abs(u - u_fd).max() < 1e-5
    assert np.abs(u - u_fd).max() > 0  # genuinely two computations


def test_reaction_diffusion_modes_agree_with_the_matrix_exponential():
    from pinnsolve.problems.reaction_diffusion import mode_matrix

    problem = make("reaction-diffusion", du=0.2, dv=0.03, alpha=2.0, beta=0.7)
    x = np.linspace(0, 1, 7)
    for t in (0.0, 0.3, 1.0):
        z = np.stack([x, np.full_like(x, t)], axis=1)
        e1 = expm(mode_matrix(1, 0.2, 0.03, 2.0, 0.7) * t) @ [1.0, 0.0]
        e2 = expm(mode_matrix(2, 0.2, 0.03, 2.0, 0.7) * t) @ [0.0, 1.0]
        want = np.sin(pi * x)[:, None] * e1 + np.sin(2 * pi * x)[:, None] * e2
        np.testing.assert_allclose(problem.solution(z), want, rtol=0, atol=1e-13)


def test_allen_cahn_reference_satisfies_the_pde():
    from pinnsolve.problems.allen_cahn import spectral_reference

    ref = spectral_reference(0.01, 1.0, 1.0)
    rng = np.random.default_rng(0)
    x, t = rng.uniform(-1, 1, 300), rng.uniform(0.1, 0.99, 300)
    # finite-difference residual of the interpolated reference: error h^2/12 u_xxxx + ...
    h = 1e-3
    u = ref(x, t)
    u_t = (ref(x, t + h) - ref(x, t - h)) / (2 * h)
    u_xx = (ref(x + h, t) - 2 * u + ref(x - h, t)) / h**2  # x +- h wraps periodically

    def residual(d):
        return np.abs(u_t - d * u_xx + (u**3 - u)).max()

    assert residual(0.01) < 3e-5
    assert residual(0.011) > 1e-4  # the check can fail: a wrong d leaves a residual
    # periodic in x and the initial profile at t = 0
    np.testing.assert_allclose(ref(np.array([-1.0]), np.array([0.5])),
                               ref(np.array([1.0]), np.array([0.5])), atol=1e-12)
    np.testing.assert_allclose(ref(np.array([0.3]), np.array([0.0])), [0.09 * np.cos(0.3 * pi)])


@pytest.mark.slow
def test_allen_cahn_reference_agrees_with_a_finer_run():
    from pinnsolve.problems.allen_cahn import SpectralReference, spectral_reference

    ref = spectral_reference(0.01, 1.0, 1.0)
    fine = SpectralReference(0.01, 1.0, 1.0, modes=1024, steps=8000)
    rng = np.random.default_rng(0)
    x, t = rng.uniform(-1, 1, 500), rng.uniform(0.01, 1, 500)
    assert np.abs(ref(x, t) - fine(x, t)).max() < 1e-9


# hard constraints: the terms each transform imposes exactly
HARD = {
    "heat": ("ic", "bc"),
    "heat-neumann": ("ic",),
    "poisson": ("bc",),
    "helmholtz": ("bc",),
    "advection": ("ic",),
    "allen-cahn": ("ic",),
    "wave": ("ic", "ic_velocity", "bc"),
    "reaction-diffusion": ("ic_u", "ic_v", "bc_u", "bc_v"),
    "burgers": ("ic", "bc"),
    "burgers-modes": ("ic", "bc"),
}


@pytest.mark.parametrize("name", sorted(HARD))
def test_hard_transforms_satisfy_their_conditions(name):
    hard = make(name, hard=True, points=64)
    soft = make(name, hard=False, points=64)
    net = MLP(hard.domain.dim, len(hard.fields), (8,), lows=list(hard.domain.lows),
              highs=list(hard.domain.highs), seed=3)
    obj = soft.compile(OutputTransform(net, hard.transform), seed=2)
    losses = obj.term_losses(obj.initial_theta())
    for term in HARD[name]:
        assert losses[term] < 1e-24, f"{name}: {term} = {losses[term]:.2e}"
    assert losses["pde"] > 1e-8  # the random network does not solve the PDE
    assert {t.name for t in hard.conditions} == {t.name for t in soft.conditions} - set(HARD[name])


@pytest.mark.parametrize("name,bad", [
    ("heat", {"k": -1.0}), ("heat-neumann", {"t_end": 0.0}), ("poisson", {"width": -2.0}),
    ("advection", {"c": math.inf}), ("allen-cahn", {"d": 0.0}), ("helmholtz", {"a1": 100.0}),
    ("reaction-diffusion", {"alpha": -1.0}), ("wave", {"c": -1.0}), ("heat", {"points": 0}),
    ("burgers-modes", {"modes": "1,x"}), ("burgers-modes", {"nu": 0.0}),
])
def test_bad_parameters_are_named(name, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        make(name, **bad)


# -- command line ----------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fails(capsys, *args):
    with pytest.raises(SystemExit) as excinfo:
        main(list(args))
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    return err


def test_list_shows_every_problem_with_parameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in CATALOG:
        assert f"{name}: " in out
    assert "--k 0.1" in out and "--t-end 1.0" in out and "--gamma 1.0" in out


def test_run_reports_json_with_the_error(capsys, in_tmp):
    assert main(["run", "reaction-diffusion", "--du", "0.2", "--points", "64", "--layers", "8",
                 "--max-iter", "5", "--json", "--quiet", "--out", "rd.h5",
                 "--plot", "rd.png"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["problem"] == "reaction-diffusion"
    assert summary["iterations"] == 5 and 0 < summary["rel_l2_error"] < 10
    assert (in_tmp / "rd.h5").is_file() and (in_tmp / "rd.png").is_file()
    from pinnsolve.io import load_run

    run = load_run(in_tmp / "rd.h5")
    assert set(run["fields"]) == {"u", "v"} and run["config"]["du"] == 0.2


def test_run_trains_a_problem_to_a_small_error(capsys, in_tmp):
    """A real (short) training: heat with hard constraints gets well below 1e-2."""
    assert main(["run", "heat", "--hard", "--points", "200", "--layers", "10,10",
                 "--max-iter", "300", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rel_l2_error"] < 1e-2


@pytest.mark.parametrize("args,needle", [
    (["run", "heat", "--k", "-1"], "parameter k must be > 0"),
    (["run", "helmholtz", "--a2", "50"], "parameter a2"),
    (["run", "no-such-problem"], "unknown problem 'no-such-problem'"),
    (["run", "missing.py"], "no problem file"),
])
def test_run_bad_input_is_one_line_exit_2(capsys, in_tmp, args, needle):
    err = fails(capsys, *args)
    assert needle in err
    assert len(err.strip().splitlines()) == 1


USER_FILE = '''
"""Decay u' = -lam u on [0, 2] with u = exp(-lam s) at both ends, in a user's file."""
import numpy as np
import torch
from pinnsolve import Interval, Problem, Dirichlet

RECIPE = {"layers": "8", "points": 64}

def make_problem(lam: float = 1.0, points: int = 100):
    if lam <= 0:
        raise ValueError(f"lam must be positive, got {lam}")
    p = Problem(Interval(0.0, 2.0, "s"), fields="u", parameters={"lam": lam},
                solution=lambda z: np.exp(-lam * z))
    p.pde(lambda u, lam: u.s + lam * u, n=points)
    return p.add(Dirichlet(lambda s, lam: torch.exp(-lam * s), n=2))
'''


def test_run_a_users_file(capsys, in_tmp):
    path = in_tmp / "decay.py"
    path.write_text(USER_FILE)
    assert main(["run", str(path), "--lam", "0.5", "--max-iter", "200", "--json",
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rel_l2_error"] < 1e-2
    err = fails(capsys, "run", str(path), "--lam", "-1")
    assert "lam must be positive" in err
    assert "--plot draws problems with two coordinates" in fails(
        capsys, "run", str(path), "--plot", "decay.png")


def test_run_a_file_with_a_problem_object_or_nothing(capsys, in_tmp):
    good = in_tmp / "obj.py"
    good.write_text(textwrap.dedent('''
        import numpy as np
        from pinnsolve import Interval, Problem, Dirichlet
        problem = Problem(Interval(0.0, 1.0), fields="u", solution=lambda z: 1 + z)
        problem.pde(lambda u: u.xx, n=32)
        problem.add(Dirichlet(lambda x: 1 + x, n=2))
    '''))
    assert main(["run", str(good), "--layers", "4", "--max-iter", "50", "--json",
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["problem"] == str(good) and summary["rel_l2_error"] < 1e-2
    empty = in_tmp / "empty.py"
    empty.write_text("x = 1\n")
    assert "defines neither" in fails(capsys, "run", str(empty))
    broken = in_tmp / "broken.py"
    broken.write_text("import no_such_module_here\n")
    assert "ModuleNotFoundError" in fails(capsys, "run", str(broken))


def test_parameters_come_from_the_signature():
    names = [p.name for p in parameters(load("heat"))]
    assert names == ["k", "t_end", "boundary_points", "initial_points", "hard"]
    problem = build(load("heat"), {"k": 0.3}, points=50)
    assert problem.parameters["k"] == 0.3 and problem.conditions[0].n == 50


def test_burgers_series_solution_satisfies_the_pde_and_reduces_to_one_mode():
    from pinnsolve.exact import burgers_cole_hopf, burgers_cole_hopf_series

    rng = np.random.default_rng(0)
    x, t = rng.uniform(-0.99, 0.99, 300), rng.uniform(0.05, 0.95, 300)
    np.testing.assert_allclose(burgers_cole_hopf_series(x, t, 0.02, [0.8]),
                               burgers_cole_hopf(x, t, 0.02, 0.8), rtol=0, atol=1e-13)
    nu, a = 0.02, [0.5, 0.5, -0.3]

    def u(x, t):
        return burgers_cole_hopf_series(x, t, nu, a)

    h = 1e-4  # central differences, error ~ h^2 * derivatives
    v = u(x, t)
    r = ((u(x, t + h) - u(x, t - h)) / (2 * h) + v * (u(x + h, t) - u(x - h, t)) / (2 * h)
         - nu * (u(x + h, t) - 2 * v + u(x - h, t)) / h**2)
    assert np.abs(r).max() < 1e-4
    wrong = ((u(x, t + h) - u(x, t - h)) / (2 * h) + v * (u(x + h, t) - u(x - h, t)) / (2 * h)
             - 1.2 * nu * (u(x + h, t) - 2 * v + u(x - h, t)) / h**2)
    assert np.abs(wrong).max() > 1e-2
    ends = u(np.array([-1.0, 1.0]), np.array([0.5, 0.5]))
    np.testing.assert_allclose(ends, 0.0, atol=1e-12)
    x0 = np.array([0.3])
    np.testing.assert_allclose(u(x0, np.array([0.0])),
                               -(0.5 * np.sin(0.3 * pi) + 0.5 * np.sin(0.6 * pi)
                                 - 0.3 * np.sin(0.9 * pi)), atol=1e-14)
