r"""Linear advection with a periodic boundary.

.. math::  u_t + c\,u_x = 0, \quad x \in [0, 2\pi],\ t \in [0, T], \qquad
           u(x, 0) = u_0(x) = \sin x + \tfrac12 \cos 2x, \qquad u(0, t) = u(2\pi, t),

exact solution :math:`u = u_0(x - c t)`.  The periodic condition matches the value and
:math:`u_x` at the two ends (a loss term on pairs of points ``(0, t)``, ``(2 pi, t)``).
``hard=True`` imposes the initial condition exactly, :math:`u = u_0(x) + t N`.
"""

from __future__ import annotations

import numpy as np
import torch

from pinnsolve import Initial, Interval, Periodic, Problem, TimeInterval

from ._common import count, number

DESCRIPTION = "advection u_t + c u_x = 0 on [0, 2 pi], periodic, exact u0(x - c t)"
PARAMETERS = {
    "c": "advection speed c (|c| <= 20)",
    "t_end": "final time T > 0",
    "hard": "impose the initial condition exactly, u = u0(x) + t N",
    "periodic_points": "point pairs for the periodic condition",
    "initial_points": "points for the initial condition",
}
RECIPE = {"layers": "20,20,20", "points": 1000, "max_time": 60.0, "resample_every": 100}


def make_problem(
    c: float = 1.0,
    t_end: float = 1.0,
    points: int = 1000,
    periodic_points: int = 100,
    initial_points: int = 200,
    hard: bool = False,
) -> Problem:
    """The advection problem above with speed ``c`` up to time ``t_end``."""
    c = number("c", c, low=-20, high=20)
    t_end = number("t_end", t_end, positive=True)
    points, periodic_points = count("points", points), count("periodic_points", periodic_points)
    initial_points = count("initial_points", initial_points)

    def u0(x):
        return torch.sin(x) + 0.5 * torch.cos(2 * x)

    def exact(z: np.ndarray) -> np.ndarray:
        return u0(torch.from_numpy(z[:, 0] - c * z[:, 1])).numpy()[:, None]

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return u0(z[:, :1]) + z[:, 1:] * n

    problem = Problem(Interval(0.0, 2 * np.pi) * TimeInterval(0.0, t_end), fields="u",
                      parameters={"c": c}, name="advection", solution=exact,
                      transform=constrained if hard else None)
    problem.pde(lambda u, c: u.t + c * u.x, n=points)
    problem.add(Periodic("x", derivatives=("x",), n=periodic_points))
    if not hard:
        problem.add(Initial(u0, n=initial_points))
    return problem
