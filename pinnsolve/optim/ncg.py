"""Nonlinear conjugate gradient on a flat parameter vector.

The iteration (Nocedal & Wright 2006, Sec. 5.2) is

.. math::  d_0 = -g_0, \\qquad \\theta_{k+1} = \\theta_k + a_k d_k, \\qquad
           d_{k+1} = -g_{k+1} + \\beta_k d_k,

with ``a_k`` from the shared strong-Wolfe line search (``c2 = 0.1`` by default, the
usual choice for CG: N&W Sec. 5.2 and Lemma 5.6 need ``c2 < 1/2`` for
Fletcher-Reeves to produce descent directions).  With :math:`y_k = g_{k+1} - g_k`
the variants of :math:`\\beta_k` are

* ``"fr"`` Fletcher-Reeves (1964):
  :math:`\\beta = g_{k+1}^\\top g_{k+1} / g_k^\\top g_k`;
* ``"pr"`` Polak-Ribiere (1969) with the PR+ truncation of Gilbert & Nocedal (1992):
  :math:`\\beta = \\max(0,\\ g_{k+1}^\\top y_k / g_k^\\top g_k)` (the default; the same
  formula as ``scipy.optimize.minimize(method="CG")``);
* ``"hs"`` Hestenes-Stiefel (1952):
  :math:`\\beta = g_{k+1}^\\top y_k / d_k^\\top y_k`;
* ``"dy"`` Dai-Yuan (1999):
  :math:`\\beta = g_{k+1}^\\top g_{k+1} / d_k^\\top y_k`.

On a strongly convex quadratic with exact line searches all four coincide with linear
CG and terminate in at most ``n`` iterations (N&W Sec. 5.2).

Restarts (:math:`d = -g`)
-------------------------
* **periodic**: every ``restart`` iterations since the last restart (default: ``n``,
  the number of parameters, capped at 1000 so that large models still restart now
  and then; ``restart=0`` disables);
* **Powell** (1977): when :math:`|g_{k+1}^\\top g_k| \\ge \\nu\\, \\|g_{k+1}\\|^2`,
  i.e. successive gradients are far from orthogonal (``powell=0.2`` is ``nu``;
  ``None`` disables);
* **descent**: when the new direction is not a descent direction,
  :math:`g^\\top d \\ge 0` (or it, or :math:`\\beta`, is not finite); checked when the
  direction is formed and again, on the actual dot product, before the line search;
* **line search**: when the line search fails it is retried once from scratch along
  :math:`-g` with the safe trial step; if that fails too the step returns
  ``failed="line_search_failed"`` leaving ``theta`` and the state untouched.

Every restart increments ``state["restarts"]`` and the matching entry of
``state["restart_counts"]`` (``"periodic"``, ``"powell"``, ``"descent"``,
``"line_search"``).

Trial step
----------
The first iteration (and the line-search retry) tries :math:`\\min(1, 1/\\|g\\|_1)` as
``torch.optim.LBFGS`` does; later iterations assume the first-order change along the
direction stays the same as in the previous iteration (N&W eq. 3.60):
:math:`a^{(0)}_k = a_{k-1}\\, g_{k-1}^\\top d_{k-1} / g_k^\\top d_k`, with the ratio
:math:`g_{k-1}^\\top d_{k-1} / g_k^\\top d_k` capped at ``max_step_growth`` (default 10)
so that one nearly flat direction cannot ask for a huge first trial; the line search
extrapolates from there when needed.

Other conventions are those of :class:`~pinnsolve.optim.quasi_newton.QuasiNewton`:
trial points with non-finite loss or gradient are rejected by the line search and the
accepted point is checked again; a weak point (sufficient decrease without the
curvature condition) is accepted only if it strictly lowers the loss (counted in
``state["weak_steps"]``); ``theta`` and the state change together, inside
:func:`~pinnsolve.optim.base.interrupt_guard`, only after acceptance.

References
----------
* M. R. Hestenes and E. Stiefel, "Methods of conjugate gradients for solving linear
  systems", J. Res. Nat. Bur. Standards 49 (1952) 409-436.
* R. Fletcher and C. M. Reeves, "Function minimization by conjugate gradients",
  Computer J. 7 (1964) 149-154.
* E. Polak and G. Ribiere, "Note sur la convergence de methodes de directions
  conjuguees", Rev. Francaise Informat. Recherche Operationnelle 16 (1969) 35-43.
* M. J. D. Powell, "Restart procedures for the conjugate gradient method", Math.
  Programming 12 (1977) 241-254.
* J. C. Gilbert and J. Nocedal, "Global convergence properties of conjugate gradient
  methods for optimization", SIAM J. Optim. 2 (1992) 21-42.
* Y. H. Dai and Y. Yuan, "A nonlinear conjugate gradient method with a strong global
  convergence property", SIAM J. Optim. 10 (1999) 177-182.
* J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer 2006,
  Sec. 5.2 and eq. 3.60.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .base import Method, Objective, StepInfo, interrupt_guard
from .linesearch import LineSearchResult, make_line_search, safe_step, search_along

__all__ = [
    "NonlinearCG",
    "NCGFletcherReeves",
    "NCGPolakRibiere",
    "NCGHestenesStiefel",
    "NCGDaiYuan",
    "BETAS",
]

#: The beta variants by key, with their registry names.
BETAS = {"fr": "ncg-fr", "pr": "ncg-pr", "hs": "ncg-hs", "dy": "ncg-dy"}

#: Largest number of iterations between periodic restarts when ``restart=None``.
MAX_DEFAULT_RESTART = 1000

_RESTART_KINDS = ("periodic", "powell", "descent", "line_search")


class NonlinearCG(Method):
    """Nonlinear conjugate gradient (see the module docstring for the formulas).

    Parameters
    ----------
    beta:
        ``"pr"`` (PR+, default), ``"fr"``, ``"hs"`` or ``"dy"``.
    line_search:
        ``"strong_wolfe"`` (default), ``"armijo"`` or a callable with the signature of
        :func:`~pinnsolve.optim.linesearch.strong_wolfe`.  CG needs the curvature
        condition; with Armijo only, the descent check restarts more often.
    c1, c2:
        Wolfe constants; ``c2 = 0.1`` by default (CG wants accurate line searches).
    max_ls_evals:
        evaluation budget of one line search.
    restart:
        iterations between periodic restarts; ``None`` (default) means ``min(n, 1000)``
        with ``n`` the number of parameters, ``0`` disables periodic restarts.
    powell:
        threshold ``nu`` of Powell's restart test
        :math:`|g_{k+1}^\\top g_k| \\ge \\nu \\|g_{k+1}\\|^2`; ``None`` disables it.
    max_step_growth:
        cap on the ratio :math:`g_{k-1}^\\top d_{k-1} / g_k^\\top d_k` in the initial
        trial step (N&W eq. 3.60).
    line_search_options:
        extra keyword arguments for the line search.

    State (``self.state``, round-tripped by ``state_dict``)
    -------------------------------------------------------
    ``loss``, ``grad`` at the current iterate; ``d`` the direction for the next
    iteration; ``step`` (last accepted step length, 0.0 before the first) and
    ``last_gtd`` (:math:`g^\\top d` at the start of the last iteration) for the trial
    step; counters ``iteration``, ``since_restart`` (iterations since ``d`` was last
    reset to ``-g``), ``restarts``, ``restart_counts`` (by kind), ``weak_steps``.

    Host syncs per iteration: ``g'd`` (descent test), one per line-search evaluation,
    one for the scalars of ``beta`` and the restart tests.
    """

    name = "ncg-pr"

    def __init__(
        self,
        beta: str = "pr",
        line_search: str | Callable[..., LineSearchResult] = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.1,
        max_ls_evals: int = 25,
        restart: int | None = None,
        powell: float | None = 0.2,
        max_step_growth: float = 10.0,
        line_search_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if beta not in BETAS:
            raise ValueError(f"unknown beta {beta!r}; choose from: {', '.join(BETAS)}")
        if restart is not None and restart < 0:
            raise ValueError(f"restart must be >= 0 or None, got {restart}")
        if powell is not None and not powell > 0.0:
            raise ValueError(f"powell must be > 0 or None, got {powell}")
        if not max_step_growth > 0.0:
            raise ValueError(f"max_step_growth must be > 0, got {max_step_growth}")
        self.beta = beta
        self.name = BETAS[beta]
        self.restart = restart
        self.powell = powell
        self.max_step_growth = float(max_step_growth)
        self.line_search = make_line_search(
            line_search, c1=c1, c2=c2, max_evals=max_ls_evals, **(line_search_options or {})
        )

    # ---- state ---------------------------------------------------------------------------
    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        if theta.dim() != 1:
            raise ValueError(f"theta must be a flat 1-D tensor, got shape {tuple(theta.shape)}")
        loss, grad = objective.loss_and_grad(theta)
        self.state = {
            "loss": loss,
            "grad": grad,
            "d": grad.neg(),
            "step": 0.0,
            "last_gtd": math.nan,
            "iteration": 0,
            "since_restart": 0,
            "restarts": 0,
            "restart_counts": dict.fromkeys(_RESTART_KINDS, 0),
            "weak_steps": 0,
        }
        return StepInfo(loss=loss, grad=grad, evals=1)

    def refresh(self, objective: Objective, theta: Tensor) -> StepInfo:
        """Re-evaluate at ``theta``; the conjugacy is lost, so ``d`` restarts at ``-g``."""
        if not self.state:
            return self.start(objective, theta)
        loss, grad = objective.loss_and_grad(theta)
        with interrupt_guard():
            self.state.update(loss=loss, grad=grad, d=grad.neg(), step=0.0,
                              last_gtd=math.nan, since_restart=0)
        return StepInfo(loss=loss, grad=grad, evals=1)

    def restart_every(self, n: int) -> int:
        """Iterations between periodic restarts for ``n`` parameters (0: never)."""
        return min(n, MAX_DEFAULT_RESTART) if self.restart is None else self.restart

    # ---- beta ----------------------------------------------------------------------------
    def _beta(self, dots: dict[str, float]) -> float:
        """``beta_k`` from the scalars ``gg1 = g1'g1``, ``gg0 = g0'g0``, ``g1g0 = g1'g0``,
        ``g1y = g1'y``, ``dy = d'y`` and ``g1d = g1'd`` (``y = g1 - g0``, ``d = d_k``).

        A zero denominator gives a non-finite beta, which triggers a restart.
        """
        gg1, gg0, g1y, dy = dots["gg1"], dots["gg0"], dots["g1y"], dots["dy"]
        if self.beta == "fr":
            num, den = gg1, gg0
        elif self.beta == "pr":
            num, den = g1y, gg0
        elif self.beta == "hs":
            num, den = g1y, dy
        else:  # "dy"
            num, den = gg1, dy
        if den == 0.0:
            return math.nan
        beta = num / den
        return max(beta, 0.0) if self.beta == "pr" else beta

    # ---- one iteration -------------------------------------------------------------------
    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        evals = 0
        if not self.state:
            evals += self.start(objective, theta).evals
        st = self.state
        f, g, d = st["loss"], st["grad"], st["d"]

        steepest = False  # True: d = -g is used in this iteration
        restart_kind: str | None = None
        gtd = float(torch.dot(g, d))
        if not gtd < 0.0:  # not a descent direction (or non-finite): steepest descent
            d, gtd = g.neg(), -float(torch.dot(g, g))
            if gtd == 0.0:  # zero gradient: a stationary point, nothing to do
                return StepInfo(loss=f, grad=g, evals=evals)
            steepest, restart_kind = True, "descent"
        safe = safe_step(g)
        step0 = self._trial_step(gtd, safe)
        res, x_new = search_along(self.line_search, objective, theta, f, d, gtd, step0)
        evals += res.evals
        if x_new is None and not (steepest and step0 == safe):
            # retry once along -g with the safe trial step
            d, gtd = g.neg(), -float(torch.dot(g, g))
            steepest, restart_kind = True, "line_search"
            res, x_new = search_along(self.line_search, objective, theta, f, d, gtd, safe)
            evals += res.evals
        if x_new is None:
            return StepInfo(loss=f, grad=g, evals=evals, failed="line_search_failed")

        f_new, g_new = res.f_new, res.g_new
        y = g_new - g
        f_t = torch.as_tensor(f_new).reshape(())
        dots_t = torch.stack((torch.dot(g_new, g_new), torch.dot(g, g), torch.dot(g_new, g),
                              torch.dot(g_new, y), torch.dot(d, y), torch.dot(g_new, d)))
        f_val, *vals = torch.cat(
            (f_t.reshape(1).to(dots_t.dtype), dots_t)
        ).tolist()
        if not (math.isfinite(f_val) and all(math.isfinite(v) for v in vals)):
            # only a custom line search can get here: never accept a non-finite point
            return StepInfo(loss=f, grad=g, evals=evals, failed="line_search_failed")
        dots = dict(zip(("gg1", "gg0", "g1g0", "g1y", "dy", "g1d"), vals, strict=True))

        # the direction of the next iteration
        since = 1 if steepest else st["since_restart"] + 1
        every = self.restart_every(theta.numel())
        next_kind: str | None = None
        beta = math.nan
        if every > 0 and since >= every:
            next_kind = "periodic"
        elif self.powell is not None and abs(dots["g1g0"]) >= self.powell * dots["gg1"]:
            next_kind = "powell"
        else:
            beta = float(self._beta(dots))
            if not (math.isfinite(beta) and -dots["gg1"] + beta * dots["g1d"] < 0.0):
                next_kind = "descent"
        d_next = g_new.neg() if next_kind is not None else torch.add(g_new.neg(), d, alpha=beta)

        with interrupt_guard():
            for kind in (restart_kind, next_kind):
                if kind is not None:
                    st["restarts"] += 1
                    st["restart_counts"][kind] += 1
            if not res.success:
                st["weak_steps"] += 1
            theta.copy_(x_new)
            st["loss"], st["grad"], st["d"] = f_new, g_new, d_next
            st["step"] = float(res.step)
            st["last_gtd"] = gtd
            st["since_restart"] = 0 if next_kind is not None else since
            st["iteration"] += 1
        return StepInfo(loss=f_new, grad=g_new, evals=evals)

    def _trial_step(self, gtd: float, safe_step: float) -> float:
        """N&W eq. 3.60 ``a_{k-1} g_{k-1}'d_{k-1} / g_k'd_k``; the safe step at the start."""
        prev_step, prev_gtd = self.state["step"], self.state["last_gtd"]
        if not (prev_step > 0.0 and prev_gtd < 0.0 and math.isfinite(prev_step)):
            return safe_step
        ratio = min(prev_gtd / gtd, self.max_step_growth)
        step0 = prev_step * ratio
        return step0 if step0 > 0.0 and math.isfinite(step0) else safe_step



class NCGFletcherReeves(NonlinearCG):
    """:class:`NonlinearCG` with the Fletcher-Reeves beta (``"ncg-fr"``)."""

    name = "ncg-fr"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(beta="fr", **kwargs)


class NCGPolakRibiere(NonlinearCG):
    """:class:`NonlinearCG` with the PR+ beta (``"ncg-pr"``)."""

    name = "ncg-pr"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(beta="pr", **kwargs)


class NCGHestenesStiefel(NonlinearCG):
    """:class:`NonlinearCG` with the Hestenes-Stiefel beta (``"ncg-hs"``)."""

    name = "ncg-hs"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(beta="hs", **kwargs)


class NCGDaiYuan(NonlinearCG):
    """:class:`NonlinearCG` with the Dai-Yuan beta (``"ncg-dy"``)."""

    name = "ncg-dy"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(beta="dy", **kwargs)
