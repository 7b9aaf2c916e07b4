r"""Viscous Burgers with a sine-series initial condition; exact by Cole-Hopf.

.. math::  u_t + u u_x = \nu u_{xx}, \quad x \in [-1, 1],\ t \in [0, 1], \qquad
           u(x, 0) = -\sum_{m=1}^{M} a_m \sin(m \pi x), \qquad u(\pm 1, t) = 0.

Any odd, 2-periodic initial condition keeps the Cole-Hopf potential even and periodic,
so the boundary values stay zero and the whole-line heat-kernel formula applies; the
exact solution is :func:`pinnsolve.exact.burgers_cole_hopf_series`.  ``modes`` lists
:math:`a_1, \dots, a_M` (default ``"0.5,0.5"``: two modes, an asymmetric profile whose
two fronts move).  ``hard=True``: :math:`u = u_0(x) + t (1 - x^2) N`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinnsolve import Dirichlet, Initial, Interval, Problem, TimeInterval
from pinnsolve.exact import burgers_cole_hopf_series

from ._common import count, number

DESCRIPTION = "Burgers u_t + u u_x = nu u_xx with u0 = -sum a_m sin(m pi x), Cole-Hopf exact"
PARAMETERS = {
    "nu": "viscosity nu > 0",
    "modes": "coefficients a_1,a_2,... of u0 = -sum a_m sin(m pi x)",
    "hard": "impose the initial/boundary conditions exactly, u = u0 + t (1 - x^2) N",
    "boundary_points": "points for the boundary condition",
    "initial_points": "points for the initial condition",
}
RECIPE = {"layers": "20,20,20", "points": 2000, "max_time": 90.0, "resample_every": 100}


def parse_modes(modes: str | list[float]) -> list[float]:
    """``"0.5,0.5"`` -> ``[0.5, 0.5]``; a ValueError naming the text otherwise."""
    try:
        values = [float(v) for v in modes.split(",")] if isinstance(modes, str) else list(
            map(float, modes))
    except (TypeError, ValueError):
        raise ValueError(
            f"parameter modes must be comma-separated numbers, got {modes!r}") from None
    if not values or len(values) > 8 or not all(math.isfinite(v) and abs(v) <= 2 for v in values):
        raise ValueError(f"parameter modes must be 1 to 8 numbers in [-2, 2], got {modes!r}")
    return values


def make_problem(
    nu: float = 0.01,
    modes: str = "0.5,0.5",
    points: int = 2000,
    boundary_points: int = 160,
    initial_points: int = 160,
    hard: bool = False,
) -> Problem:
    """The Burgers problem above with viscosity ``nu`` and sine coefficients ``modes``."""
    nu = number("nu", nu, positive=True)
    if nu < 1e-3 / math.pi:
        raise ValueError(f"parameter nu must be >= 0.001/pi (exact solution's range), got {nu!r}")
    a = parse_modes(modes)
    points, boundary_points = count("points", points), count("boundary_points", boundary_points)
    initial_points = count("initial_points", initial_points)

    def u0(x):
        return -sum(am * torch.sin((m + 1) * math.pi * x) for m, am in enumerate(a))

    def exact(z: np.ndarray) -> np.ndarray:
        return burgers_cole_hopf_series(z[:, 0], z[:, 1], nu, a)[:, None]

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, t = z[:, :1], z[:, 1:]
        return u0(x) + t * (1 - x * x) * n

    problem = Problem(Interval(-1.0, 1.0) * TimeInterval(0.0, 1.0), fields="u",
                      parameters={"nu": nu}, name="burgers-modes", solution=exact,
                      grid={"x": 256, "t": 100}, transform=constrained if hard else None)
    problem.pde(lambda u, nu: u.t + u * u.x - nu * u.xx, n=points)
    if not hard:
        problem.add(Initial(u0, n=initial_points), Dirichlet(0.0, n=boundary_points))
    return problem
