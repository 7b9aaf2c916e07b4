"""Viscous Burgers' equation on x in [-1, 1], t in [0, 1], with its exact solution.

.. math::  u_t + u u_x = \\nu u_{xx}, \\qquad u(x, 0) = -a \\sin(\\pi x), \\qquad
           u(\\pm 1, t) = 0.

``a = 1`` (default) is the standard benchmark (Raissi et al. 2019; a shock forms at
x = 0 for small nu); the exact solution is the Cole-Hopf formula of
:func:`pinnsolve.exact.burgers_cole_hopf`.  With ``hard=True`` the network output ``N``
is mapped to ``u = -a sin(pi x) + t (1 - x^2) N(x, t)``, which satisfies the initial
and boundary conditions exactly, so only the PDE residual is trained.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinnsolve import Dirichlet, Initial, Interval, Problem, TimeInterval
from pinnsolve.exact import burgers_cole_hopf


def make_problem(
    nu: float = 0.01 / math.pi,
    amplitude: float = 1.0,
    points: int = 2540,
    boundary_points: int = 160,
    initial_points: int = 160,
    hard: bool = False,
) -> Problem:
    """Burgers' problem with viscosity ``nu`` > 0 and initial amplitude ``a``."""
    if not (isinstance(nu, int | float) and math.isfinite(nu) and nu > 0):
        raise ValueError(f"viscosity nu must be a positive number, got {nu!r}")

    def exact(z: np.ndarray) -> np.ndarray:
        return burgers_cole_hopf(z[:, 0], z[:, 1], nu, amplitude)[:, None]

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, t = z[:, :1], z[:, 1:]
        return -amplitude * torch.sin(math.pi * x) + t * (1 - x * x) * n

    problem = Problem(
        Interval(-1.0, 1.0, "x") * TimeInterval(0.0, 1.0, "t"),
        fields="u",
        parameters={"nu": nu},
        name="burgers",
        solution=exact,
        grid={"x": 256, "t": 100},
        transform=constrained if hard else None,
    )
    problem.pde(lambda u, nu: u.t + u * u.x - nu * u.xx, n=points)
    if not hard:
        problem.add(
            Initial(lambda x: -amplitude * torch.sin(math.pi * x), n=initial_points),
            Dirichlet(0.0, n=boundary_points),
        )
    return problem
