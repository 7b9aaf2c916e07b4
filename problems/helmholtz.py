r"""Helmholtz equation in 2-D with a manufactured solution (Wang, Teng & Perdikaris 2021).

.. math::  \Delta u + \kappa^2 u = f \ \text{ in } [-1, 1]^2, \qquad u = 0 \text{ on the boundary},

.. math::  u^*(x, y) = \sin(a_1\pi x)\sin(a_2\pi y), \qquad
           f = \big(\kappa^2 - (a_1^2 + a_2^2)\pi^2\big)\,u^* .

The published benchmark has :math:`a_1 = 1, a_2 = 4` and is hard for plain PINNs; the
default here is :math:`a_2 = 2`, which a 3 x 20 network on 1000 points fits to a
relative L2 error of 6.6e-5 in 792 iterations (54 s, 1 thread, loaded machine; a
3 x 30 network on 1500 points reached only 8e-3 in the same time).  Integer
:math:`a_1, a_2` make the boundary values zero; for others they are :math:`u^*` on the
boundary.  By default (``hard=True``; with a soft boundary term the first recipe
diverged to an O(1) error) :math:`u = B + (1 - x^2)(1 - y^2) N`, :math:`B` the Coons
patch of the boundary values.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinnsolve import Dirichlet, Problem, Rectangle

from ._common import coons_patch, count, number

DESCRIPTION = "Helmholtz lap u + kappa^2 u = f on [-1, 1]^2, manufactured sin(a1 pi x) sin(a2 pi y)"
PARAMETERS = {
    "kappa": "wave number kappa",
    "a1": "frequency a1 in sin(a1 pi x)",
    "a2": "frequency a2 in sin(a2 pi y)",
    "hard": "(default) impose the boundary values exactly (Coons patch + (1-x^2)(1-y^2) N)",
    "boundary_points": "points for the boundary condition",
}
RECIPE = {"layers": "20,20,20", "points": 1000, "max_time": 90.0, "resample_every": 100}


def make_problem(
    kappa: float = 1.0,
    a1: float = 1.0,
    a2: float = 2.0,
    points: int = 1000,
    boundary_points: int = 200,
    hard: bool = True,
) -> Problem:
    """The Helmholtz problem above."""
    kappa = number("kappa", kappa, nonnegative=True)
    a1 = number("a1", a1, low=-20, high=20)
    a2 = number("a2", a2, low=-20, high=20)
    points, boundary_points = count("points", points), count("boundary_points", boundary_points)
    pi = math.pi

    def g(x, y):
        return torch.sin(a1 * pi * x) * torch.sin(a2 * pi * y)

    def exact(z: np.ndarray) -> np.ndarray:
        return g(torch.from_numpy(z[:, 0]), torch.from_numpy(z[:, 1])).numpy()[:, None]

    patch = coons_patch(g, -1.0, 1.0, -1.0, 1.0)

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, y = z[:, :1], z[:, 1:]
        return patch(x, y) + (1 - x * x) * (1 - y * y) * n

    problem = Problem(Rectangle((-1.0, -1.0), (1.0, 1.0)), fields="u", name="helmholtz",
                      parameters={"kappa": kappa, "c": kappa**2 - (a1 * a1 + a2 * a2) * pi * pi},
                      solution=exact, transform=constrained if hard else None)
    problem.pde(lambda u, x, y, kappa, c: u.xx + u.yy + kappa**2 * u
                - c * torch.sin(a1 * pi * x) * torch.sin(a2 * pi * y), n=points)
    if not hard:
        problem.add(Dirichlet(g, n=boundary_points))
    return problem
