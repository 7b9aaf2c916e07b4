"""Steepest descent with a line search, or with a fixed learning rate.

.. math::  \\theta_{k+1} = \\theta_k - a_k \\nabla f(\\theta_k)

Mostly a baseline and a test of the engine (N&W 2006, Sec. 3.3: linear convergence
with rate governed by the condition number).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .base import Method, Objective, StepInfo, interrupt_guard, is_finite
from .linesearch import LineSearchResult, make_line_search, safe_step
from .schedule import Schedule, ScheduledStep, check_schedule

__all__ = ["GradientDescent"]


class GradientDescent(ScheduledStep, Method):
    """Gradient descent: ``theta <- theta - a_k g_k``.

    Parameters
    ----------
    lr:
        a fixed step ``a_k = lr`` without line search (one evaluation per iteration).
        A step landing on a non-finite loss or gradient is not taken; the iteration
        returns ``failed="non_finite"`` with ``theta`` unchanged.
    line_search:
        used when ``lr`` is None: ``"armijo"`` (default, backtracking with
        interpolation), ``"strong_wolfe"`` or a callable (see
        :func:`~pinnsolve.optim.linesearch.make_line_search`).
    c1, c2, max_ls_evals, line_search_options:
        line-search constants and budget.
    growth:
        the **initial trial step** of iteration ``k`` is ``growth * a_{k-1}`` (the
        previous accepted step, doubled by default), so the step can grow again after
        a backtracking; the first trial is ``min(1, 1/||g||_1)``.  (A Barzilai-Borwein
        step would often be better, but is not monotone with respect to the line
        search; the doubling rule keeps about 1-2 evaluations per iteration.)
    lr_schedule:
        with ``lr``: a :class:`~pinnsolve.optim.schedule.Schedule`, iteration ``k``
        steps with :math:`\\mathrm{lr}\\,\\sigma(k)` (without ``lr`` a ``ValueError``:
        the line search chooses the step).
    """

    name = "gd"

    def __init__(
        self,
        lr: float | None = None,
        line_search: str | Callable[..., LineSearchResult] = "armijo",
        c1: float = 1e-4,
        c2: float = 0.9,
        max_ls_evals: int = 30,
        growth: float = 2.0,
        line_search_options: dict[str, Any] | None = None,
        lr_schedule: Schedule | None = None,
    ) -> None:
        super().__init__()
        if lr is not None and not lr > 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not growth >= 1.0:
            raise ValueError(f"growth must be >= 1, got {growth}")
        self.lr = lr
        self.lr_schedule = check_schedule(lr_schedule)
        if self.lr_schedule is not None and lr is None:
            raise ValueError("lr_schedule needs a fixed lr (gd with a line search has none)")
        self.growth = float(growth)
        self.line_search = make_line_search(
            line_search, c1=c1, c2=c2, max_evals=max_ls_evals, **(line_search_options or {})
        )

    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        loss, grad = objective.loss_and_grad(theta)
        self.state = {"loss": loss, "grad": grad, "step": 0.0, "iteration": 0}
        return StepInfo(loss=loss, grad=grad, evals=1)

    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        evals = 0
        if not self.state:
            evals += self.start(objective, theta).evals
        st = self.state
        f, g = st["loss"], st["grad"]

        if self.lr is not None:
            step = self.step_size(st["iteration"])
            x = torch.add(theta, g, alpha=-step)
            f_new, g_new = objective.loss_and_grad(x)
            evals += 1
            if not is_finite(f_new, g_new):
                return StepInfo(loss=f, grad=g, evals=evals, failed="non_finite")
        else:
            gtd = -float(torch.dot(g, g))
            if gtd == 0.0:  # stationary point
                return StepInfo(loss=f, grad=g, evals=evals)
            d = g.neg()
            previous = st["step"]
            step0 = previous * self.growth if previous > 0.0 else safe_step(g)
            last: dict[str, Any] = {}

            def phi(a: float) -> tuple[Tensor, Tensor]:
                xa = torch.add(theta, d, alpha=a)
                last["a"], last["x"] = a, xa
                return objective.loss_and_grad(xa)

            res = self.line_search(phi, f, gtd, step0, d=d)
            evals += res.evals
            if not res.found or not (res.step > 0.0 and math.isfinite(res.step)):
                return StepInfo(loss=f, grad=g, evals=evals, failed="line_search_failed")
            f_new, g_new, step = res.f_new, res.g_new, float(res.step)
            x = last["x"] if last.get("a") == step else torch.add(theta, d, alpha=step)

        with interrupt_guard():
            theta.copy_(x)
            st["loss"], st["grad"] = f_new, g_new
            st["step"] = step
            st["iteration"] += 1
        return StepInfo(loss=f_new, grad=g_new, evals=evals)
