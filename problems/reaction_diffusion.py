r"""A coupled pair: two species diffusing and converting into each other (A <-> B).

.. math::  u_t = D_u u_{xx} - \alpha u + \beta v, \qquad
           v_t = D_v v_{xx} + \alpha u - \beta v,

on :math:`x \in [0, 1],\ t \in [0, T]` with :math:`u = v = 0` at both ends,
:math:`u(x, 0) = \sin(\pi x)`, :math:`v(x, 0) = \sin(2\pi x)`.  One residual function
returns both equations (a system of two fields).

Exact solution: every sine mode evolves on its own, :math:`(U_n, V_n)' = M_n (U_n, V_n)`
with :math:`M_n = \begin{pmatrix} -D_u n^2\pi^2 - \alpha & \beta \\
\alpha & -D_v n^2\pi^2 - \beta\end{pmatrix}`, so

.. math::  \begin{pmatrix}u\\v\end{pmatrix} = \sin(\pi x)\, e^{M_1 t}
           \begin{pmatrix}1\\0\end{pmatrix} + \sin(2\pi x)\, e^{M_2 t}
           \begin{pmatrix}0\\1\end{pmatrix},

evaluated with the eigen-decomposition of :math:`M_n` (real, distinct eigenvalues for
:math:`\alpha, \beta > 0`).  ``hard=True`` maps the two network outputs to
:math:`u = \sin(\pi x) + t\,x(1-x) N_u`, :math:`v = \sin(2\pi x) + t\,x(1-x) N_v`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinnsolve import Dirichlet, Initial, Interval, Problem, TimeInterval

from ._common import count, number

DESCRIPTION = "coupled reaction-diffusion pair u, v (A <-> B), Dirichlet, exact by modes"
PARAMETERS = {
    "du": "diffusivity D_u > 0 of u",
    "dv": "diffusivity D_v > 0 of v",
    "alpha": "rate alpha > 0 of u -> v",
    "beta": "rate beta > 0 of v -> u",
    "t_end": "final time T > 0",
    "hard": "impose the initial/boundary conditions exactly",
    "boundary_points": "points for each boundary condition",
    "initial_points": "points for each initial condition",
}
RECIPE = {"layers": "20,20,20", "points": 1000, "max_time": 90.0, "resample_every": 100}


def mode_matrix(n: int, du: float, dv: float, alpha: float, beta: float) -> np.ndarray:
    """The 2 x 2 matrix :math:`M_n` of the docstring."""
    k2 = (n * math.pi) ** 2
    return np.array([[-du * k2 - alpha, beta], [alpha, -dv * k2 - beta]])


def modal_solution(
    x: torch.Tensor, t: torch.Tensor, du: float, dv: float, alpha: float, beta: float
) -> torch.Tensor:
    """``(N, 2)`` values of (u, v) at points ``x``, ``t`` (torch, differentiable)."""
    out = 0
    for n, start in ((1, np.array([1.0, 0.0])), (2, np.array([0.0, 1.0]))):
        lam, P = np.linalg.eig(mode_matrix(n, du, dv, alpha, beta))
        lam, P = lam.real, P.real
        c = np.linalg.solve(P, start)  # (U, V)(t) = sum_j c_j exp(lam_j t) P[:, j]
        amp = sum(c[j] * torch.exp(lam[j] * t)[:, None] * torch.as_tensor(P[:, j], dtype=t.dtype)
                  for j in range(2))
        out = out + torch.sin(n * math.pi * x)[:, None] * amp
    return out


def make_problem(
    du: float = 0.1,
    dv: float = 0.05,
    alpha: float = 1.0,
    beta: float = 0.5,
    t_end: float = 1.0,
    points: int = 1000,
    boundary_points: int = 100,
    initial_points: int = 100,
    hard: bool = False,
) -> Problem:
    """The reaction-diffusion pair above."""
    du, dv = number("du", du, positive=True), number("dv", dv, positive=True)
    alpha, beta = number("alpha", alpha, positive=True), number("beta", beta, positive=True)
    t_end = number("t_end", t_end, positive=True)
    points, boundary_points = count("points", points), count("boundary_points", boundary_points)
    initial_points = count("initial_points", initial_points)
    pi = math.pi

    def exact(z: np.ndarray) -> np.ndarray:
        return modal_solution(torch.from_numpy(z[:, 0]), torch.from_numpy(z[:, 1]),
                              du, dv, alpha, beta).numpy()

    def constrained(z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x, t = z[:, :1], z[:, 1:]
        start = torch.cat([torch.sin(pi * x), torch.sin(2 * pi * x)], dim=1)
        return start + t * x * (1 - x) * n

    def residual(u, v, du, dv, alpha, beta):
        return (u.t - du * u.xx + alpha * u - beta * v,
                v.t - dv * v.xx - alpha * u + beta * v)

    problem = Problem(Interval(0.0, 1.0) * TimeInterval(0.0, t_end), fields=("u", "v"),
                      parameters={"du": du, "dv": dv, "alpha": alpha, "beta": beta},
                      name="reaction-diffusion", solution=exact,
                      transform=constrained if hard else None)
    problem.pde(residual, n=points)
    if not hard:
        problem.add(
            Initial(lambda x: torch.sin(pi * x), field="u", n=initial_points, name="ic_u"),
            Initial(lambda x: torch.sin(2 * pi * x), field="v", n=initial_points, name="ic_v"),
            Dirichlet(0.0, field="u", n=boundary_points, name="bc_u"),
            Dirichlet(0.0, field="v", n=boundary_points, name="bc_v"),
        )
    return problem
