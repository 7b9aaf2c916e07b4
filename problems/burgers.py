"""Viscous Burgers' equation on x in [-1, 1], t in [0, 1], with its exact solution.

.. math::  u_t + u u_x = \\nu u_{xx}, \\qquad u(x, 0) = -a \\sin(\\pi x), \\qquad
           u(\\pm 1, t) = 0.

``a = 1`` (default) is the standard benchmark (Raissi et al. 2019; a shock forms at
x = 0 for small nu); the exact solution is the Cole-Hopf formula of
:func:`pinnsolve.exact.burgers_cole_hopf`.  With ``hard=True`` the network output ``N``
is mapped to ``u = -a sin(pi x) + t (1 - x^2) N(x, t)``, which satisfies the initial
and boundary conditions exactly, so only the PDE residual is trained.

The inverse problem (``nu_init`` given): nu is an :class:`~pinnsolve.Unknown` learned
together with the network (as ``log nu``) from pointwise observations ``data = (points,
values)`` of u, e.g. those of :func:`make_observations` (the exact solution plus noise).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinnsolve import Data, Dirichlet, Initial, Interval, Problem, TimeInterval, Unknown
from pinnsolve.exact import burgers_cole_hopf


def make_problem(
    nu: float = 0.01 / math.pi,
    amplitude: float = 1.0,
    points: int = 2540,
    boundary_points: int = 160,
    initial_points: int = 160,
    hard: bool = False,
    nu_init: float | None = None,
    data: tuple[np.ndarray, np.ndarray] | None = None,
) -> Problem:
    """Burgers' problem with viscosity ``nu`` > 0 and initial amplitude ``a``.

    With ``nu_init`` the viscosity is unknown (learned from ``data``, starting at
    ``nu_init``); ``nu`` is then the true value, used only for the exact solution the
    errors are measured against.
    """
    if not (isinstance(nu, int | float) and math.isfinite(nu) and nu > 0):
        raise ValueError(f"viscosity nu must be a positive number, got {nu!r}")
    if nu_init is not None and data is None:
        raise ValueError("inferring nu needs observations (data=(points, values))")

    def exact(z: np.ndarray) -> np.ndarray:
        return burgers_cole_hopf(z[:, 0], z[:, 1], nu, amplitude)[:, None]

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, t = z[:, :1], z[:, 1:]
        return -amplitude * torch.sin(math.pi * x) + t * (1 - x * x) * n

    problem = Problem(
        Interval(-1.0, 1.0, "x") * TimeInterval(0.0, 1.0, "t"),
        fields="u",
        parameters={"nu": nu if nu_init is None else Unknown(nu_init)},
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
    if data is not None:
        problem.add(Data(data[0], data[1]))
    return problem


def make_observations(
    nu: float = 0.01 / math.pi,
    amplitude: float = 1.0,
    n: int = 2000,
    noise: float = 0.01,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy observations of the exact solution: ``(points (n, 2), values (n, 1))``.

    Points are uniform random in ``[-1, 1] x [0, 1]``; values are
    ``u(x, t) + noise * std(u) * e`` with ``e ~ N(0, 1)`` i.i.d. (noise relative to the
    standard deviation of the clean values, as in Raissi et al. 2019).
    """
    if not (isinstance(n, int) and n > 0):
        raise ValueError(f"number of observations must be a positive integer, got {n!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(-1.0, 1.0, n), rng.uniform(0.0, 1.0, n)])
    u = burgers_cole_hopf(points[:, 0], points[:, 1], nu, amplitude)
    values = u + noise * u.std() * rng.standard_normal(n)
    return points, values[:, None]
