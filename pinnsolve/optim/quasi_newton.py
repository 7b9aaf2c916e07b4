"""The iteration every line-search quasi-Newton method shares.

A quasi-Newton method keeps an approximation :math:`H_k` of the inverse Hessian built
from curvature pairs :math:`s_k = \\theta_{k+1} - \\theta_k`,
:math:`y_k = g_{k+1} - g_k`, and iterates

.. math::  d_k = -H_k g_k, \\qquad \\theta_{k+1} = \\theta_k + a_k d_k,

with ``a_k`` from a line search (strong Wolfe by default, trying ``a = 1`` first).
:class:`QuasiNewton` implements that loop once, with its safeguards; a subclass only
says how to apply :math:`H_k` (:meth:`~QuasiNewton.direction`) and how to fold a new
pair into it (:meth:`~QuasiNewton._prepare` / :meth:`~QuasiNewton._store`).

Safeguards (shared by every subclass)
-------------------------------------
* **Initial trial step**: 1 whenever the direction uses curvature information; with
  none (first iteration, after a reset) the direction is :math:`-g` and the trial step
  :math:`\\min(1, 1/\\|g\\|_1)` as in ``torch.optim.LBFGS``.
* **Descent check**: if :math:`g^\\top d \\ge 0` (or is not finite) the curvature
  information is dropped and steepest descent is used.
* **Line-search failure**: retried once from scratch with the curvature information
  dropped (steepest descent, safe trial step); if that fails too the step returns
  ``failed="line_search_failed"`` leaving ``theta`` and the state untouched.  A point
  with sufficient decrease but without the curvature condition (strong Wolfe ran out
  of evaluations) is accepted if its loss is strictly lower.
* **Curvature test**: a pair is used only if :math:`s^\\top y > \\varepsilon\\, y^\\top y`
  (``curvature_eps``), which keeps :math:`H_k` positive definite; otherwise it is
  skipped (counted in ``state["skipped"]``).  After a step of a shared line search that
  met its curvature condition the test is :math:`s^\\top y = a\\,(\\phi'(a) - \\phi'(0))
  > 0`, from the search's own scalars (strong Wolfe guarantees it), so that no host
  round-trip is spent on it.  A subclass may reject a pair by its own rule by returning
  :data:`SKIP` from :meth:`~QuasiNewton._prepare` (counted as skipped too).
* **Host round-trips** per iteration: :math:`\\phi'(0) = g^\\top d` (with
  :math:`\\|g\\|_1` when the trial step needs it), one per line-search evaluation
  (:math:`\\phi(a), \\phi'(a)`), and none else on the fast path above; a weak step or
  a custom line search adds one (:math:`f, s^\\top y, y^\\top y`).  Everything else
  (directions, updates, dense or limited-memory) stays on the tensor's device.
* **Non-finite values**: trial points with NaN/inf loss or gradient are rejected by the
  line search; the accepted point is checked again before it enters the state.
* **Atomic commit**: ``theta`` and the curvature state change together, only after the
  line search accepted a point, inside :func:`~pinnsolve.optim.base.interrupt_guard`,
  so a Ctrl-C during the evaluations leaves both at the last accepted iterate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .base import Method, Objective, StepInfo, interrupt_guard
from .linesearch import LineSearchResult, make_line_search, search_along

__all__ = ["QuasiNewton", "SKIP"]

#: Returned by :meth:`QuasiNewton._prepare` to reject a pair by the method's own test.
SKIP = object()


class QuasiNewton(Method):
    """Base class: the line-search quasi-Newton iteration (see the module docstring).

    Subclasses implement :meth:`_init_curvature`, :meth:`direction`,
    :meth:`_has_curvature`, :meth:`_clear`, :meth:`_prepare` and :meth:`_store`.
    """

    def __init__(
        self,
        line_search: str | Callable[..., LineSearchResult] = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.9,
        max_ls_evals: int = 25,
        curvature_eps: float = 1e-10,
        line_search_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.curvature_eps = float(curvature_eps)
        self.line_search = make_line_search(
            line_search, c1=c1, c2=c2, max_evals=max_ls_evals, **(line_search_options or {})
        )
        #: a shared search (never returns a non-finite point): enables the sync-free test
        self._builtin_search = isinstance(line_search, str)

    # ---- hooks ---------------------------------------------------------------------------
    def _init_curvature(self, theta: Tensor) -> dict[str, Any]:
        """Fresh curvature state (tensors shaped for ``theta``)."""
        raise NotImplementedError

    def direction(self, grad: Tensor) -> Tensor:
        """``d = -H_k grad``."""
        raise NotImplementedError

    def _has_curvature(self) -> bool:
        raise NotImplementedError

    def _clear(self) -> None:
        """Drop the curvature information (``H_k = I``); called inside the commit guard."""
        raise NotImplementedError

    def _prepare(
        self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, fresh: bool, step: float
    ) -> Any:
        """The expensive part of an update, computed before the commit guard.

        ``fresh``: the pair will be the first after :meth:`_clear` (or the start);
        ``step``: the accepted step length ``a`` (``s = a d``).  The state is not yet
        changed (``self.state["grad"]`` is the gradient at the old point).
        """
        return None

    def _store(self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, prepared: Any) -> None:
        """Fold the pair into the state; called inside the commit guard, must be quick.

        ``self.state["grad"]`` is already the gradient at the new point."""
        raise NotImplementedError

    # ---- state ---------------------------------------------------------------------------
    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        if theta.dim() != 1:
            raise ValueError(f"theta must be a flat 1-D tensor, got shape {tuple(theta.shape)}")
        loss, grad = objective.loss_and_grad(theta)
        self.state = {
            "loss": loss,
            "grad": grad,
            **self._init_curvature(theta),
            "iteration": 0,
            "skipped": 0,
            "resets": 0,
            "weak_steps": 0,
            "step": 0.0,
        }
        return StepInfo(loss=loss, grad=grad, evals=1)

    # ---- one iteration -------------------------------------------------------------------
    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        evals = 0
        if not self.state:
            evals += self.start(objective, theta).evals
        st = self.state
        f, g = st["loss"], st["grad"]

        reset = not self._has_curvature()  # True: no curvature information is used
        d = self.direction(g)
        if reset:  # d = -g: phi'(0) and the safe trial step in one host sync
            gtd, safe = _descent_and_safe_step(g, d)
        else:
            gtd, safe = float(torch.dot(g, d)), None
        if not gtd < 0.0:  # not a descent direction (or non-finite): steepest descent
            reset, d = True, g.neg()
            gtd, safe = _descent_and_safe_step(g, d)
            if gtd == 0.0:  # zero gradient: a stationary point, nothing to do
                return StepInfo(loss=f, grad=g, evals=evals)
        step0 = safe if reset else 1.0
        res, x_new = search_along(self.line_search, objective, theta, f, d, gtd, step0)
        evals += res.evals
        if x_new is None and not reset:  # retry once with the curvature information dropped
            reset, d = True, g.neg()
            gtd, safe = _descent_and_safe_step(g, d)
            res, x_new = search_along(self.line_search, objective, theta, f, d, gtd, safe)
            evals += res.evals
        if x_new is None:
            return StepInfo(loss=f, grad=g, evals=evals, failed="line_search_failed")

        f_new, g_new = res.f_new, res.g_new
        s = x_new - theta
        y = g_new - g
        sy_t, yy_t = torch.dot(s, y), torch.dot(y, y)
        if res.success and self._builtin_search and math.isfinite(res.dderiv):
            # Fast path, no host sync: the shared searches never return a non-finite point,
            # and with the curvature condition s'y = a (phi'(a) - phi'(0)) >= a (1 - c2)
            # |phi'(0)| > 0 follows from the line search's own scalars.
            keep = float(res.step) * (res.dderiv - gtd) > 0.0
        else:
            f_t = torch.as_tensor(f_new).reshape(())
            f_val, sy, yy = torch.stack(
                (f_t if f_t.dtype == sy_t.dtype else f_t.to(sy_t.dtype), sy_t, yy_t)
            ).tolist()
            if not (math.isfinite(f_val) and math.isfinite(sy) and math.isfinite(yy)):
                # only a custom line search can get here: never accept a non-finite point
                return StepInfo(loss=f, grad=g, evals=evals, failed="line_search_failed")
            keep = sy > self.curvature_eps * yy
        fresh = reset or not self._has_curvature()
        prepared = self._prepare(s, y, sy_t, yy_t, fresh, float(res.step)) if keep else None
        if prepared is SKIP:  # the method's own pair test (e.g. the SR1 skip rule) failed
            keep, prepared = False, None

        with interrupt_guard():
            if reset and self._has_curvature():
                self._clear()
                st["resets"] += 1
            st["loss"], st["grad"] = f_new, g_new
            if keep:
                self._store(s, y, sy_t, yy_t, prepared)
            else:
                st["skipped"] += 1
            if not res.success:
                st["weak_steps"] += 1
            theta.copy_(x_new)
            st["step"] = float(res.step)
            st["iteration"] += 1
        return StepInfo(loss=f_new, grad=g_new, evals=evals)



def _descent_and_safe_step(g: Tensor, d: Tensor) -> tuple[float, float]:
    """``(g'd, min(1, 1/||g||_1))`` with one host sync (for ``d = -g``)."""
    gtd, g1 = torch.stack((torch.dot(g, d), g.abs().sum())).tolist()
    return gtd, (min(1.0, 1.0 / g1) if g1 > 0.0 and math.isfinite(g1) else 1.0)

