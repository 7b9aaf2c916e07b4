r"""Heat equation in 1-D with Dirichlet conditions; exact solution by Fourier series.

.. math::  u_t = k\,u_{xx}, \quad x \in [0, 1],\ t \in [0, T], \qquad
           u(x, 0) = 4x(1 - x), \qquad u(0, t) = u(1, t) = 0.

The initial profile is not a finite sum of modes; its sine series gives

.. math::  u(x, t) = \sum_{n\ \mathrm{odd}} \frac{32}{(n\pi)^3}\,
           e^{-k n^2 \pi^2 t} \sin(n \pi x).

The series is summed up to the first ``n`` with :math:`k n^2\pi^2 t \ge 40` (the terms
after it are below :math:`e^{-40}` relative), at most 20001 terms (tail below
:math:`16/(\pi^3 N^2) \approx 1.3\times10^{-9}`); at :math:`t = 0` the profile itself is
returned.  With ``hard=True`` the network output :math:`N` is mapped to
:math:`u = x(1 - x)\,(4 + t N)`, which satisfies the initial and boundary conditions
exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from pinnsolve import Dirichlet, Initial, Interval, Problem, TimeInterval

from ._common import count, number

DESCRIPTION = "heat equation u_t = k u_xx, Dirichlet, Fourier-series exact solution"
PARAMETERS = {
    "k": "diffusivity k > 0",
    "t_end": "final time T > 0",
    "hard": "impose the initial/boundary conditions exactly, u = x (1 - x) (4 + t N)",
    "boundary_points": "points for the boundary condition",
    "initial_points": "points for the initial condition",
}
RECIPE = {"layers": "20,20,20", "points": 1000, "max_time": 60.0, "resample_every": 100}

#: Largest number of odd modes summed (tail bound 16 / (pi^3 N^2) at t -> 0).
MAX_TERMS = 20001


def sine_series(x: np.ndarray, t: np.ndarray, k: float) -> np.ndarray:
    """The Fourier series above at points ``x``, ``t`` (1-D arrays of equal length)."""
    out = np.empty_like(x)
    for tj in np.unique(t):
        sel = t == tj
        if tj == 0.0:
            out[sel] = 4 * x[sel] * (1 - x[sel])
            continue
        n_max = min(MAX_TERMS, int(np.sqrt(40.0 / (k * np.pi**2 * tj))) + 3)
        n = np.arange(1, n_max + 1, 2, dtype=np.float64)
        coef = 32.0 / (n * np.pi) ** 3 * np.exp(-k * (n * np.pi) ** 2 * tj)
        out[sel] = np.sin(np.pi * np.outer(x[sel], n)) @ coef
    return out


def make_problem(
    k: float = 0.1,
    t_end: float = 1.0,
    points: int = 1000,
    boundary_points: int = 100,
    initial_points: int = 100,
    hard: bool = False,
) -> Problem:
    """The heat problem above with diffusivity ``k`` up to time ``t_end``."""
    k = number("k", k, positive=True)
    t_end = number("t_end", t_end, positive=True)
    points, boundary_points = count("points", points), count("boundary_points", boundary_points)
    initial_points = count("initial_points", initial_points)

    def exact(z: np.ndarray) -> np.ndarray:
        return sine_series(z[:, 0], z[:, 1], k)[:, None]

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, t = z[:, :1], z[:, 1:]
        return x * (1 - x) * (4 + t * n)

    problem = Problem(Interval(0.0, 1.0) * TimeInterval(0.0, t_end), fields="u",
                      parameters={"k": k}, name="heat", solution=exact,
                      transform=constrained if hard else None)
    problem.pde(lambda u, k: u.t - k * u.xx, n=points)
    if not hard:
        problem.add(Initial(lambda x: 4 * x * (1 - x), n=initial_points),
                    Dirichlet(0.0, n=boundary_points))
    return problem
