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


class LogisticRegression:
    """Finite-sum, strongly convex: ``f(x) = mean_i log(1 + exp(-y_i a_i'x)) + lam/2 ||x||^2``.

    Synthetic data (``n_samples`` Gaussian features with unequal scales, labels from a
    noisy linear rule); implements the mini-batch protocol (``StochasticObjective``).
    The optimum ``xstar`` is computed by full-batch L-BFGS to ``||grad||_inf < 1e-13``.
    """

    def __init__(self, n_samples: int = 400, dim: int = 10, lam: float = 1e-2, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> None:
        gen = torch.Generator().manual_seed(seed)
        scales = torch.logspace(0.0, 1.0, dim, dtype=dtype)
        self.A = torch.randn(n_samples, dim, generator=gen, dtype=dtype) * scales / scales.max()
        w = torch.randn(dim, generator=gen, dtype=dtype)
        noise = 0.5 * torch.randn(n_samples, generator=gen, dtype=dtype)
        self.y = torch.sign(self.A @ w + noise)
        self.lam = lam
        self.n_samples = n_samples
        self.dim = dim
        self.device = torch.device("cpu")
        self.xstar = self._solve()
        self.fstar = float(self.loss(self.xstar))

    def _f(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        A, y = (self.A, self.y) if idx is None else (self.A[idx], self.y[idx])
        return torch.nn.functional.softplus(-y * (A @ x)).mean() + 0.5 * self.lam * x.dot(x)

    def loss(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self._f(x)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.batch_loss_and_grad(x, None)

    def sample_batch(self, size: int, generator: torch.Generator) -> Tensor:
        return torch.randperm(self.n_samples, generator=generator)[:size]

    def batch_loss_and_grad(self, x: Tensor, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            value = self._f(xx, idx)
            (g,) = torch.autograd.grad(value, xx)
        return value.detach(), g

    def batch_hvp(self, x: Tensor, v: Tensor, idx: Tensor) -> Tensor:
        return torch.func.jvp(torch.func.grad(lambda z: self._f(z, idx)), (x.detach(),), (v,))[1]

    def _solve(self) -> Tensor:
        from pinnsolve.optim import LBFGS, StopCriteria, minimize

        x = torch.zeros(self.dim, dtype=self.A.dtype)
        res = minimize(self, x, LBFGS(history=20), StopCriteria(gtol=1e-13, max_iter=1000))
        assert res.grad_norm < 1e-12, res
        return res.theta
