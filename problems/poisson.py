r"""Poisson's equation on a rectangle with a manufactured solution.

.. math::  -\Delta u = f \ \text{ in } [0, W] \times [0, H], \qquad u = g \text{ on the boundary},

with the manufactured solution

.. math::  u^*(x, y) = \sin(a\pi x)\,\sin(b\pi y) + \tfrac14\,x\,y ,

so :math:`f = (a^2 + b^2)\pi^2 \sin(a\pi x)\sin(b\pi y)` (the harmonic part :math:`xy/4`
only enters through the boundary data :math:`g = u^*|_{\partial\Omega}`, which is
nonzero).  By default (``hard=True``; measured ~300x more accurate than the soft
boundary term at equal iterations) the Dirichlet condition holds exactly:
:math:`u = B + x (W - x) y (H - y) N` with :math:`B` the Coons patch of :math:`g`
(built from the boundary data only, see ``problems/_common.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinnsolve import Dirichlet, Problem, Rectangle

from ._common import coons_patch, count, number

DESCRIPTION = "Poisson -lap u = f on a W x H rectangle, manufactured solution, Dirichlet"
PARAMETERS = {
    "width": "side W > 0 of the rectangle in x",
    "height": "side H > 0 of the rectangle in y",
    "a": "frequency a in sin(a pi x)",
    "b": "frequency b in sin(b pi y)",
    "hard": "(default) impose the boundary values exactly (Coons patch + bubble times N)",
    "boundary_points": "points for the boundary condition",
}
RECIPE = {"layers": "20,20,20", "points": 1000, "max_time": 60.0, "resample_every": 100}


def make_problem(
    width: float = 2.0,
    height: float = 1.0,
    a: float = 1.0,
    b: float = 2.0,
    points: int = 1000,
    boundary_points: int = 200,
    hard: bool = True,
) -> Problem:
    """The Poisson problem above on ``[0, width] x [0, height]``."""
    W = number("width", width, positive=True)
    H = number("height", height, positive=True)
    a = number("a", a, low=-20, high=20)
    b = number("b", b, low=-20, high=20)
    points, boundary_points = count("points", points), count("boundary_points", boundary_points)
    pi = math.pi

    def g(x, y):
        return torch.sin(a * pi * x) * torch.sin(b * pi * y) + 0.25 * x * y

    def exact(z: np.ndarray) -> np.ndarray:
        return g(torch.from_numpy(z[:, 0]), torch.from_numpy(z[:, 1])).numpy()[:, None]

    patch = coons_patch(g, 0.0, W, 0.0, H)

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, y = z[:, :1], z[:, 1:]
        return patch(x, y) + x * (W - x) * y * (H - y) * n

    problem = Problem(Rectangle((0.0, 0.0), (W, H)), fields="u", name="poisson",
                      parameters={"c": (a * a + b * b) * pi * pi}, solution=exact,
                      transform=constrained if hard else None)
    problem.pde(lambda u, x, y, c: -(u.xx + u.yy) - c * torch.sin(a * pi * x)
                * torch.sin(b * pi * y), n=points)
    if not hard:
        problem.add(Dirichlet(g, n=boundary_points))
    return problem
