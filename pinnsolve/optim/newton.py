"""Hessian-free (truncated, inexact) Newton methods with a line search.

Each iteration approximately solves the Newton equations

.. math::  H_k p = -g_k, \\qquad H_k = \\nabla^2 f(\\theta_k),\\ g_k = \\nabla f(\\theta_k),

with a matrix-free Krylov method that touches :math:`H_k` only through
Hessian-vector products ``objective.hvp(theta, v)`` (:math:`H v` by forward-over-reverse
automatic differentiation, ``jvp(grad(f))`` in torch.func: about 2-3 times the cost of
one gradient, and no Hessian is ever formed).  The inner iteration stops as soon as

.. math::  \\|H_k p + g_k\\| \\le \\eta_k \\|g_k\\|

with the forcing term :math:`\\eta_k = \\min(0.5, \\sqrt{\\|g_k\\|})` (N&W eq. 7.3,
Eisenstat-Walker style), which makes the outer iteration locally superlinear, or after
``max_cg`` inner iterations.  Then

.. math::  \\theta_{k+1} = \\theta_k + a_k p_k,

with ``a_k`` from one of the shared line searches of :mod:`pinnsolve.optim.linesearch`
(strong Wolfe by default, first trial step 1, the Newton step).

Two Krylov solvers (:meth:`HessianFreeNewton._krylov`):

* :class:`NewtonCG` (``"newton-cg"``): conjugate gradients with negative-curvature
  detection, N&W Alg. 7.1 ("line search Newton-CG").
* :class:`NewtonCR` (``"newton-cr"``): the conjugate residual method, which minimizes
  :math:`\\|H p + g\\|` over the Krylov space and is well defined on symmetric
  indefinite :math:`H` (Dahito & Orban 2019).

Safeguards (shared)
-------------------
* **Descent**: a direction with :math:`g^\\top p \\ge 0` is replaced (see each solver),
  in the end by steepest descent :math:`-g`.
* **Non-finite** Hessian-vector products (or a non-finite direction): the Krylov
  result is dropped and :math:`-g` is used (``state["fallbacks"]``).
* **Trial step**: 1 for a Krylov direction; :math:`\\min(1, 1/\\|g\\|_1)` for the
  steepest-descent fallback (no curvature information to scale it), as in
  :mod:`pinnsolve.optim.quasi_newton`.
* **Line-search failure**: retried once along :math:`-g`; if that fails too the step
  returns ``failed="line_search_failed"`` and leaves ``theta`` and the state untouched.
  A point with sufficient decrease but without the curvature condition is accepted if
  its loss is strictly lower (``state["weak_steps"]``).
* **Atomic commit**: ``theta`` and the state change together, only after acceptance,
  inside :func:`~pinnsolve.optim.base.interrupt_guard`.

Counters
--------
``StepInfo.evals`` (and hence ``Result.function_evals``) counts ``loss_and_grad`` calls
only.  The state keeps ``hvps`` (Hessian-vector products) and ``cg_iterations`` (inner
Krylov iterations) of all accepted iterations; the work of a step that failed is in
:attr:`HessianFreeNewton.last_step` (not in the state, which a failed step must not touch).

References
----------
* J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer 2006, Ch. 7
  (Sec. 7.1: inexact Newton, eq. 7.3, Alg. 7.1 line search Newton-CG).
* R. S. Dembo, S. C. Eisenstat and T. Steihaug, "Inexact Newton methods", SIAM J.
  Numer. Anal. 19 (1982) 400-408.
* S. C. Eisenstat and H. F. Walker, "Choosing the forcing terms in an inexact Newton
  method", SIAM J. Sci. Comput. 17 (1996) 16-32.
* J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.
* M.-A. Dahito and D. Orban, "The conjugate residual method in linesearch and
  trust-region methods", SIAM J. Optim. 29 (2019) 1988-2025.
* E. Stiefel, "Relaxationsmethoden bester Strategie zur Lösung linearer
  Gleichungssysteme", Comment. Math. Helv. 29 (1955) 157-179 (conjugate residuals).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .base import Method, Objective, StepInfo, interrupt_guard, is_finite
from .linesearch import LineSearchResult, make_line_search, safe_step, search_along

__all__ = ["HessianFreeNewton", "NewtonCG", "NewtonCR"]

_COUNTERS = ("iteration", "hvps", "cg_iterations", "negative_curvature", "fallbacks",
             "reversals", "weak_steps")


class HessianFreeNewton(Method):
    """Base class: the line-search inexact Newton iteration (see the module docstring).

    Subclasses implement :meth:`_krylov`.

    Parameters
    ----------
    max_cg:
        the largest number of inner Krylov iterations (= Hessian-vector products) per
        outer iteration.
    forcing:
        ``None`` (default): :math:`\\eta_k = \\min(0.5, \\sqrt{\\|g_k\\|_2})`, superlinear
        local convergence (N&W Thm. 7.2).  A float: a fixed :math:`\\eta`
        (e.g. ``1e-12`` to solve the Newton equations essentially exactly).
    line_search, c1, c2, max_ls_evals, line_search_options:
        the shared line search (:func:`~pinnsolve.optim.linesearch.make_line_search`).
    curvature_eps:
        a direction ``d`` has "non-positive curvature" when
        :math:`d^\\top H d \\le \\epsilon \\|d\\|^2`; ``None`` = machine epsilon of
        ``theta``'s dtype.
    """

    name = "hessian-free-newton"

    def __init__(
        self,
        max_cg: int = 50,
        forcing: float | None = None,
        line_search: str | Callable[..., LineSearchResult] = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.9,
        max_ls_evals: int = 25,
        curvature_eps: float | None = None,
        line_search_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if int(max_cg) < 1:
            raise ValueError(f"max_cg must be >= 1, got {max_cg}")
        if forcing is not None and not 0.0 <= float(forcing) < 1.0:
            raise ValueError(f"forcing must be in [0, 1), got {forcing}")
        self.max_cg = int(max_cg)
        self.forcing = None if forcing is None else float(forcing)
        self.curvature_eps = None if curvature_eps is None else float(curvature_eps)
        self.line_search = make_line_search(
            line_search, c1=c1, c2=c2, max_evals=max_ls_evals, **(line_search_options or {})
        )
        #: what the last call of :meth:`step` did (direction kind, work), for inspection
        self.last_step: dict[str, Any] = {}

    # ---- hook ----------------------------------------------------------------------------
    def _krylov(self, objective: Objective, theta: Tensor, g: Tensor) -> tuple[Tensor, dict]:
        """Approximately solve ``H p = -g``; return ``p`` and an info dict.

        The info dict has ``iterations`` and ``hvps`` (ints), ``reason`` (one of
        ``"converged"``, ``"max_cg"``, ``"negative_curvature"``, ``"breakdown"``,
        ``"non_finite"``), and optionally ``negative_curvature`` / ``reversed`` (bool)
        and ``steepest`` (True when ``p`` is ``-g``).  On ``"non_finite"`` the caller
        uses ``-g``.
        """
        raise NotImplementedError

    # ---- helpers -------------------------------------------------------------------------
    def _tolerance(self, gnorm: float) -> float:
        """``eta_k ||g_k||``: the inner stopping tolerance on ``||H p + g||``."""
        eta = min(0.5, math.sqrt(gnorm)) if self.forcing is None else self.forcing
        return eta * gnorm

    def _eps(self, g: Tensor) -> float:
        if self.curvature_eps is not None:
            return self.curvature_eps
        return torch.finfo(g.dtype).eps if g.is_floating_point() else 2.2e-16

    @staticmethod
    def _hvp(objective: Objective, theta: Tensor, v: Tensor) -> Tensor:
        return objective.hvp(theta, v)  # type: ignore[attr-defined]

    # ---- state ---------------------------------------------------------------------------
    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        if theta.dim() != 1:
            raise ValueError(f"theta must be a flat 1-D tensor, got shape {tuple(theta.shape)}")
        if not callable(getattr(objective, "hvp", None)):
            raise TypeError(f"{type(self).__name__} needs an objective with hvp(theta, v)")
        loss, grad = objective.loss_and_grad(theta)
        self.state = {"loss": loss, "grad": grad, **dict.fromkeys(_COUNTERS, 0), "step": 0.0}
        return StepInfo(loss=loss, grad=grad, evals=1)

    # ---- one iteration -------------------------------------------------------------------
    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        evals = 0
        if not self.state:
            evals += self.start(objective, theta).evals
        st = self.state
        f, g = st["loss"], st["grad"]
        gg = float(torch.dot(g, g))
        self.last_step = {"hvps": 0, "iterations": 0}
        if gg == 0.0:  # a stationary point: nothing to do
            return StepInfo(loss=f, grad=g, evals=evals)
        if not math.isfinite(gg):
            return StepInfo(loss=f, grad=g, evals=evals, failed="non_finite")

        p, info = self._krylov(objective, theta, g)
        self.last_step = info
        steepest = bool(info.get("steepest", False))
        gtd = math.nan
        if info["reason"] != "non_finite":
            gtd = float(torch.dot(g, p))
        if not gtd < 0.0:  # non-finite Krylov result or not a descent direction
            p, gtd, steepest = g.neg(), -gg, True
        info["steepest"] = steepest
        safe = safe_step(g)
        step0 = safe if steepest else 1.0
        res, x_new = search_along(self.line_search, objective, theta, f, p, gtd, step0)
        evals += res.evals
        if x_new is None and not steepest:  # retry once along -g
            p, gtd, steepest = g.neg(), -gg, True
            info["steepest"] = info["retried"] = True
            res, x_new = search_along(self.line_search, objective, theta, f, p, gtd, safe)
            evals += res.evals
        if x_new is None:
            return StepInfo(loss=f, grad=g, evals=evals, failed="line_search_failed")
        f_new, g_new = res.f_new, res.g_new
        if not is_finite(torch.as_tensor(f_new), g_new):
            # only a custom line search can get here: never accept a non-finite point
            return StepInfo(loss=f, grad=g, evals=evals, failed="line_search_failed")

        with interrupt_guard():
            theta.copy_(x_new)
            st["loss"], st["grad"] = f_new, g_new
            st["hvps"] += int(info["hvps"])
            st["cg_iterations"] += int(info["iterations"])
            st["negative_curvature"] += int(bool(info.get("negative_curvature", False)))
            st["reversals"] += int(bool(info.get("reversed", False)) and not steepest)
            st["fallbacks"] += int(steepest)
            st["weak_steps"] += int(not res.success)
            st["step"] = float(res.step)
            st["iteration"] += 1
        return StepInfo(loss=f_new, grad=g_new, evals=evals)



class NewtonCG(HessianFreeNewton):
    """Line search Newton-CG (Hessian-free Newton with conjugate gradients).

    CG on :math:`H p = -g` from :math:`p_0 = 0` (N&W Alg. 7.1): with
    :math:`r_0 = g`, :math:`d_0 = -g`,

    .. math::

        \\alpha_j = \\frac{r_j^\\top r_j}{d_j^\\top H d_j},\\quad
        p_{j+1} = p_j + \\alpha_j d_j,\\quad r_{j+1} = r_j + \\alpha_j H d_j,\\quad
        d_{j+1} = -r_{j+1} + \\frac{r_{j+1}^\\top r_{j+1}}{r_j^\\top r_j} d_j,

    (``r_j = H p_j + g``), stopping when :math:`\\|r_{j+1}\\| \\le \\eta_k \\|g\\|` or after
    ``max_cg`` iterations.  **Negative curvature**: if
    :math:`d_j^\\top H d_j \\le \\epsilon \\|d_j\\|^2`, CG stops and returns :math:`-g`
    when ``j = 0`` and :math:`p_j` otherwise.  Every CG iterate :math:`p_j` (j >= 1)
    is a descent direction, :math:`g^\\top p_j < 0`, because it minimizes the quadratic
    model over a Krylov space on which :math:`H` is positive definite.
    """

    name = "newton-cg"

    def _krylov(self, objective: Objective, theta: Tensor, g: Tensor) -> tuple[Tensor, dict]:
        eps = self._eps(g)
        tol = self._tolerance(math.sqrt(float(torch.dot(g, g))))
        p = torch.zeros_like(g)
        r = g.clone()
        d = g.neg()
        rr = float(torch.dot(r, r))
        info: dict[str, Any] = {"hvps": 0, "iterations": 0, "reason": "max_cg"}
        for j in range(self.max_cg):
            hd = self._hvp(objective, theta, d)
            info["hvps"] += 1
            # h'h is non-finite iff some entry of Hd is (or it overflows): one host sync
            dhd, dd, hh = torch.stack((torch.dot(d, hd), torch.dot(d, d), torch.dot(hd, hd))
                                      ).tolist()
            if not (math.isfinite(dhd) and math.isfinite(hh)):
                info["reason"] = "non_finite"
                return g.neg(), info
            if dhd <= eps * dd:
                info["reason"] = "negative_curvature"
                info["negative_curvature"] = True
                if j == 0:
                    info["steepest"] = True
                    return g.neg(), info
                return p, info
            alpha = rr / dhd
            p.add_(d, alpha=alpha)
            r.add_(hd, alpha=alpha)
            info["iterations"] += 1
            rr_new = float(torch.dot(r, r))
            if math.sqrt(rr_new) <= tol:
                info["reason"] = "converged"
                return p, info
            d = d.mul_(rr_new / rr).sub_(r)  # d = -r + beta d
            rr = rr_new
        return p, info


class NewtonCR(HessianFreeNewton):
    """Hessian-free Newton with the conjugate residual (CR) method as inner solver.

    CR on :math:`H p = b`, :math:`b = -g`, from :math:`p_0 = 0`: with
    :math:`r_0 = b` (here :math:`r = b - H p = -(H p + g)`), :math:`d_0 = r_0`,

    .. math::

        \\alpha_j = \\frac{r_j^\\top H r_j}{\\|H d_j\\|^2},\\quad
        p_{j+1} = p_j + \\alpha_j d_j,\\quad r_{j+1} = r_j - \\alpha_j H d_j,\\quad
        \\beta_j = \\frac{r_{j+1}^\\top H r_{j+1}}{r_j^\\top H r_j},\\quad
        d_{j+1} = r_{j+1} + \\beta_j d_j,\\quad H d_{j+1} = H r_{j+1} + \\beta_j H d_j,

    one Hessian-vector product per iteration.  :math:`p_j` minimizes :math:`\\|H p + g\\|`
    over :math:`\\mathcal K_j(H, g)` and :math:`\\|r_j\\|` decreases monotonically, also on
    symmetric indefinite :math:`H`.  CR stops when :math:`\\|r_{j+1}\\| \\le \\eta_k\\|g\\|`,
    after ``max_cg`` iterations, or at a breakdown (:math:`r^\\top H r \\approx 0` or
    :math:`H d = 0`), returning the current iterate.

    **Direction rule** (after Dahito & Orban 2019, who show that CR iterates are
    descent directions while the curvature met stays positive): if the result ``p``
    satisfies :math:`g^\\top p < 0` it is used; otherwise :math:`-p` is used if
    :math:`g^\\top p > 0` (then :math:`-p` descends: on an indefinite ``H`` the Newton
    step can point uphill, towards a saddle or maximizer, and its reverse moves away
    from it; counted in ``state["reversals"]``); otherwise (:math:`g^\\top p = 0`,
    ``p = 0`` after an immediate breakdown) :math:`-g`.  Curvature
    :math:`d_j^\\top H d_j \\le \\epsilon\\|d_j\\|^2` met along the way is counted in
    ``state["negative_curvature"]`` but does not stop CR.
    """

    name = "newton-cr"

    def _krylov(self, objective: Objective, theta: Tensor, g: Tensor) -> tuple[Tensor, dict]:
        eps = self._eps(g)
        tol = self._tolerance(math.sqrt(float(torch.dot(g, g))))
        tol2 = tol * tol
        info: dict[str, Any] = {"hvps": 0, "iterations": 0, "reason": "max_cg"}
        p = torch.zeros_like(g)
        vecs = torch.empty((3, g.numel()), dtype=g.dtype, device=g.device)
        r, d, hd = vecs.unbind(0)  # rows of one buffer: all their products in one matmul
        torch.neg(g, out=r)
        hr = self._hvp(objective, theta, r)
        info["hvps"] += 1
        d.copy_(r)
        hd.copy_(hr)
        rhr = float(torch.dot(r, hr))
        neg = False
        for j in range(self.max_cg):
            (rr, _, rhd), (_, dd, dhd), (_, _, hdhd) = (vecs @ vecs.T).tolist()
            if not (math.isfinite(hdhd) and math.isfinite(rhr)):
                info["reason"] = "non_finite"
                return g.neg(), info
            neg = neg or dhd <= eps * dd
            if hdhd == 0.0 or abs(rhr) <= eps * rr * math.sqrt(hdhd / max(dd, 1e-300)):
                info["reason"] = "breakdown"
                break
            alpha = rhr / hdhd
            p.add_(d, alpha=alpha)
            r.add_(hd, alpha=-alpha)
            info["iterations"] += 1
            # ||r_new||^2 from the products at hand; checked exactly only when close
            if rr - alpha * (2.0 * rhd - alpha * hdhd) <= 4.0 * tol2 and float(
                    torch.dot(r, r)) <= tol2:
                info["reason"] = "converged"
                break
            if j + 1 == self.max_cg:
                break
            hr = self._hvp(objective, theta, r)
            info["hvps"] += 1
            rhr_new = float(torch.dot(r, hr))
            beta = rhr_new / rhr
            torch.add(r, d, alpha=beta, out=d)
            torch.add(hr, hd, alpha=beta, out=hd)
            rhr = rhr_new
        info["negative_curvature"] = neg
        if not is_finite(p):
            info["reason"] = "non_finite"
            return g.neg(), info
        gtp = float(torch.dot(g, p))
        if gtp > 0.0:
            info["reversed"] = True
            return p.neg(), info
        if not gtp < 0.0:
            info["steepest"] = True
            return g.neg(), info
        return p, info

