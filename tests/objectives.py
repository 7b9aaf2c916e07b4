"""Small test objectives for the optimization engine (quadratic, Rosenbrock, ...)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


class AutogradObjective:
    """``loss``/``loss_and_grad`` of a plain function by torch.autograd, counting calls.

    ``raise_at``: raise ``KeyboardInterrupt`` at that (1-based) ``loss_and_grad`` call.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], raise_at: int | None = None) -> None:
        self.fn = fn
        self.evals = 0
        self.non_finite_evals = 0
        self.raise_at = raise_at
        self.points: list[Tensor] = []  # every evaluated point, when record=True
        self.record = False

    def loss(self, theta: Tensor) -> Tensor:
        with torch.no_grad():
            return self.fn(theta).detach()

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        self.evals += 1
        if self.raise_at is not None and self.evals == self.raise_at:
            raise KeyboardInterrupt
        if self.record:
            self.points.append(theta.detach().clone())
        with torch.enable_grad():
            x = theta.detach().requires_grad_(True)
            value = self.fn(x)
            (g,) = torch.autograd.grad(value, x)
        if not (torch.isfinite(value) and torch.isfinite(g).all()):
            self.non_finite_evals += 1
        return value.detach(), g


class Quadratic:
    """``f(x) = 0.5 x'Ax - b'x`` with SPD ``A`` (eigenvalues log-spaced in [1, cond])."""

    def __init__(self, n: int = 20, cond: float = 100.0, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> None:
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
        eig = torch.logspace(0.0, math.log10(cond), n, dtype=torch.float64)
        self.A = ((q * eig) @ q.T).to(dtype)
        self.A = 0.5 * (self.A + self.A.T)
        self.b = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
        self.xstar = torch.linalg.solve(self.A.double(), self.b.double()).to(dtype)
        self.fstar = float(-0.5 * self.b.double() @ self.xstar.double())
        self.evals = 0
        self.n = n
        self.dtype = dtype

    def loss(self, theta: Tensor) -> Tensor:
        return 0.5 * theta @ (self.A @ theta) - self.b @ theta

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        self.evals += 1
        ax = self.A @ theta
        return 0.5 * theta @ ax - self.b @ theta, ax - self.b

    def x0(self) -> Tensor:
        return torch.zeros(self.n, dtype=self.dtype)


def rosenbrock(x: Tensor) -> Tensor:
    """The extended Rosenbrock function, minimum 0 at (1, ..., 1)."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def rosenbrock_start(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The standard start (-1.2, 1, -1.2, 1, ...)."""
    return torch.tensor([-1.2, 1.0] * (n // 2) + [-1.2] * (n % 2), dtype=dtype)


def scipy_lbfgsb(fn: Callable[[Tensor], Tensor], x0: Tensor, maxcor: int, gtol: float):
    """scipy's L-BFGS-B on ``fn`` (gradient by autograd): the OptimizeResult."""
    import numpy as np
    from scipy.optimize import minimize

    obj = AutogradObjective(fn)

    def fun(x: np.ndarray):
        f, g = obj.loss_and_grad(torch.from_numpy(x))
        return float(f), g.numpy().astype(np.float64)

    return minimize(fun, x0.double().numpy(), jac=True, method="L-BFGS-B",
                    options={"maxcor": maxcor, "gtol": gtol, "ftol": 0.0, "maxiter": 10000})
