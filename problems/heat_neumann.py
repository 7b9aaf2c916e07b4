r"""Heat equation in 1-D with Neumann (insulated) ends; exact solution by cosine series.

.. math::  u_t = k\,u_{xx}, \quad x \in [0, 1],\ t \in [0, T], \qquad
           u(x, 0) = 3x^2 - 2x^3, \qquad u_x(0, t) = u_x(1, t) = 0.

The initial profile (a smooth step, :math:`u_0'(0) = u_0'(1) = 0`) has the cosine series
:math:`u_0 = \tfrac12 - \sum_{n\ \mathrm{odd}} \tfrac{48}{(n\pi)^4}\cos(n\pi x)`, so

.. math::  u(x, t) = \frac12 - \sum_{n\ \mathrm{odd}} \frac{48}{(n\pi)^4}\,
           e^{-k n^2 \pi^2 t} \cos(n \pi x),

which tends to the mean :math:`1/2` (the insulated rod conserves heat).  Summed as in
:mod:`pinnsolve.problems.heat` (terms while :math:`k n^2\pi^2 t < 40`, at most 2001 odd
terms, tail below :math:`16/(\pi^4 N^3)`; the profile itself at :math:`t = 0`).  The
Neumann condition is a loss term (``du/dn = 0`` with the outward normal); ``hard=True``
imposes only the initial condition, :math:`u = u_0(x) + t N`.
"""

from __future__ import annotations

import numpy as np
import torch

from pinnsolve import Initial, Interval, Neumann, Problem, TimeInterval

from ._common import count, number

DESCRIPTION = "heat equation u_t = k u_xx, Neumann ends, cosine-series exact solution"
PARAMETERS = {
    "k": "diffusivity k > 0",
    "t_end": "final time T > 0",
    "hard": "impose the initial condition exactly, u = 3x^2 - 2x^3 + t N",
    "boundary_points": "points for the Neumann condition",
    "initial_points": "points for the initial condition",
}
RECIPE = {"layers": "20,20,20", "points": 1000, "max_time": 60.0, "resample_every": 100}

MAX_TERMS = 2001


def cosine_series(x: np.ndarray, t: np.ndarray, k: float) -> np.ndarray:
    """The cosine series above at points ``x``, ``t`` (1-D arrays of equal length)."""
    out = np.empty_like(x)
    for tj in np.unique(t):
        sel = t == tj
        if tj == 0.0:
            out[sel] = 3 * x[sel] ** 2 - 2 * x[sel] ** 3
            continue
        n_max = min(MAX_TERMS, int(np.sqrt(40.0 / (k * np.pi**2 * tj))) + 3)
        n = np.arange(1, n_max + 1, 2, dtype=np.float64)
        coef = -48.0 / (n * np.pi) ** 4 * np.exp(-k * (n * np.pi) ** 2 * tj)
        out[sel] = 0.5 + np.cos(np.pi * np.outer(x[sel], n)) @ coef
    return out


def make_problem(
    k: float = 0.1,
    t_end: float = 1.0,
    points: int = 1000,
    boundary_points: int = 100,
    initial_points: int = 100,
    hard: bool = False,
) -> Problem:
    """The insulated-rod problem above with diffusivity ``k`` up to time ``t_end``."""
    k = number("k", k, positive=True)
    t_end = number("t_end", t_end, positive=True)
    points, boundary_points = count("points", points), count("boundary_points", boundary_points)
    initial_points = count("initial_points", initial_points)

    def exact(z: np.ndarray) -> np.ndarray:
        return cosine_series(z[:, 0], z[:, 1], k)[:, None]

    def u0(x):
        return 3 * x**2 - 2 * x**3

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return u0(z[:, :1]) + z[:, 1:] * n

    problem = Problem(Interval(0.0, 1.0) * TimeInterval(0.0, t_end), fields="u",
                      parameters={"k": k}, name="heat-neumann", solution=exact,
                      transform=constrained if hard else None)
    problem.pde(lambda u, k: u.t - k * u.xx, n=points)
    problem.add(Neumann(0.0, n=boundary_points))
    if not hard:
        problem.add(Initial(u0, n=initial_points))
    return problem
