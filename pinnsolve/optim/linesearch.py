"""Line searches shared by every method that needs one.

A line search looks along a descent direction ``d`` from the current point ``theta``
for a step length ``a > 0`` that makes enough progress on

.. math::  \\phi(a) = f(\\theta + a d), \\qquad \\phi'(a) = \\nabla f(\\theta + a d)^\\top d .

Both searches take the same arguments and return a :class:`LineSearchResult`:

``phi(a) -> (f(a), grad(a))``
    evaluates the objective at the trial point ``theta + a d`` and returns the loss
    and the **full** gradient there (so the caller can reuse it for the next
    iteration).  The search forms ``phi'(a) = grad(a)' d`` itself from ``d``.
``f0``, ``g0_dot_d``
    :math:`\\phi(0)` and :math:`\\phi'(0)`, which must be negative.
``step0``
    the first trial step.

Trial points whose loss or gradient is not finite (NaN or inf, e.g. a network that
overflows far along ``d``) are treated as "step too long": the search shrinks the
step and never returns such a point.

References
----------
* J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer 2006,
  Sec. 3.1 (Wolfe conditions), 3.5 (interpolation, Alg. 3.5 and 3.6).
* J. J. Moré and D. J. Thuente, "Line search algorithms with guaranteed sufficient
  decrease", ACM Trans. Math. Software 20 (1994) 286-307 (extrapolation bounds and
  safeguarding).
* W. W. Hager and H. Zhang, "A new conjugate gradient method with guaranteed
  descent and an efficient line search", SIAM J. Optim. 16 (2005) 170-192
  (approximate Wolfe conditions).
* scipy.optimize ``_linesearch.py`` (``scalar_search_wolfe2``) and
  ``torch.optim.lbfgs._strong_wolfe``, whose structure this module follows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = [
    "LineSearchResult",
    "LineSearch",
    "strong_wolfe",
    "armijo",
    "LINE_SEARCHES",
    "make_line_search",
    "search_along",
    "safe_step",
]

#: ``phi(a) -> (loss, gradient)`` at the trial point ``theta + a d``.
Phi = Callable[[float], tuple[Any, Any]]


@dataclass
class LineSearchResult:
    """The outcome of a line search.

    ``success`` is True when the search's conditions hold at ``step``.  On failure
    ``reason`` says why, and ``f_new``/``g_new`` are either the best evaluated point
    that satisfies the sufficient-decrease (Armijo) condition, or ``None`` when there
    is none (then ``step`` is 0).  :attr:`found` tells the two cases apart.
    """

    step: float  #: accepted step length (0.0 when nothing was found)
    f_new: Tensor | None  #: loss at ``theta + step * d`` as returned by ``phi``
    g_new: Tensor | None  #: gradient there, as returned by ``phi``
    evals: int  #: number of calls to ``phi``
    success: bool  #: all conditions of the search hold at ``step``
    reason: str | None = None  #: why the search failed (None on success)
    dderiv: float = math.nan  #: ``g_new' d`` when the search computed it

    @property
    def found(self) -> bool:
        """True when a finite point with sufficient decrease is returned."""
        return self.f_new is not None


class LineSearch(Protocol):
    """The signature shared by :func:`strong_wolfe`, :func:`armijo` and custom searches."""

    def __call__(
        self, phi: Phi, f0: float | Tensor, g0_dot_d: float | Tensor, step0: float, *,
        d: Tensor | None = None, **options: Any,
    ) -> LineSearchResult: ...


def _probe(phi: Phi, a: float, d: Tensor | None, need_dderiv: bool):
    """Evaluate ``phi(a)``; return (f tensor, g tensor, f float, g'd float) with one sync.

    Non-finite gradients make the returned ``g'd`` non-finite (NaN/inf propagate
    through the dot product; with ``need_dderiv`` False a finiteness flag is used).
    """
    f_t, g_t = phi(a)
    if d is None:
        # phi returns the directional derivative itself (scalar problems, tests)
        dd = g_t
    elif need_dderiv:
        dd = torch.dot(g_t.reshape(-1), d.reshape(-1))
    else:  # only finiteness matters: nan where g is not finite, 0 otherwise
        dd = torch.where(torch.isfinite(g_t).all(), 0.0, math.nan)
    if isinstance(f_t, Tensor) and isinstance(dd, Tensor):
        fv, dv = f_t.detach().reshape(()), dd.reshape(())
        if fv.dtype != dv.dtype:
            dtype = torch.promote_types(fv.dtype, dv.dtype)
            fv, dv = fv.to(dtype), dv.to(dtype)
        f, gd = torch.stack((fv, dv)).tolist()
    else:
        f, gd = float(f_t), float(dd)
    return f_t, g_t, f, gd


def _eps(x: Any) -> float:
    """Machine epsilon of ``x``'s dtype (float64 for Python numbers)."""
    dtype = x.dtype if isinstance(x, Tensor) and x.is_floating_point() else torch.float64
    return torch.finfo(dtype).eps


def _cubic_min(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float) -> float:
    """Minimizer of the cubic interpolating (f, f') at x1 and x2 (N&W eq. 3.59).

    Returns NaN when the cubic has no minimizer or the formula breaks down.
    """
    if x1 == x2:
        return math.nan
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if not disc >= 0.0:  # also catches NaN
        return math.nan
    d2 = math.copysign(math.sqrt(disc), x2 - x1)
    denom = g2 - g1 + 2.0 * d2
    if denom == 0.0:
        return math.nan
    return x2 - (x2 - x1) * (g2 + d2 - d1) / denom


def strong_wolfe(
    phi: Phi,
    f0: float | Tensor,
    g0_dot_d: float | Tensor,
    step0: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evals: int = 25,
    *,
    d: Tensor | None = None,
    xtol: float = 1e-9,
    step_max: float = math.inf,
    approx_eps: float | None = None,
) -> LineSearchResult:
    """Find a step satisfying the strong Wolfe conditions (N&W Alg. 3.5/3.6).

    The accepted step ``a`` satisfies, with :math:`\\phi'(0) = g_0^\\top d < 0`,

    * sufficient decrease (Armijo): :math:`f(a) \\le f_0 + c_1 a\\, g_0^\\top d`,
    * strong curvature: :math:`|g(a)^\\top d| \\le c_2\\, |g_0^\\top d|`,

    with :math:`0 < c_1 < c_2 < 1` (``c2 = 0.9`` for quasi-Newton methods, ``0.1`` for
    nonlinear CG).  For L-BFGS these guarantee :math:`s^\\top y > 0`, so the inverse
    Hessian approximation stays positive definite.

    **Bracketing** (Alg. 3.5): starting from ``step0``, trial steps grow until one of
    them brackets an acceptable step: the trial violates sufficient decrease, does not
    decrease ``f`` below the previous trial, or has :math:`\\phi' \\ge 0`.  Growth uses
    the cubic interpolating the last two trials, safeguarded to
    :math:`[a_i + 1.1 (a_i - a_{i-1}),\\ a_i + 4 (a_i - a_{i-1})]` (Moré & Thuente's
    extrapolation bounds), capped at ``step_max``.  A trial that is immediately
    acceptable is returned at once, so a good unit step costs one evaluation.

    **Approximate Wolfe** (Hager & Zhang 2005): close to a minimizer the loss
    differences drown in rounding and sufficient decrease cannot be verified.  A
    trial with :math:`|f(a) - f_0| \\le \\epsilon |f_0|` (``epsilon = approx_eps``,
    default ``100 * eps`` of the loss dtype) and
    :math:`\\phi'(a) \\le (2 c_1 - 1)\\, \\phi'(0)` -- the derivative form of sufficient
    decrease, exact for quadratics -- counts as sufficiently decreasing.  Without it
    L-BFGS stalls at gradients around ``sqrt(eps)`` of the scale.

    A trial satisfying both conditions is accepted as soon as it is evaluated.  Loss
    increases within the same tolerance :math:`\\epsilon |f_0|` do not count as an
    increase when comparing trials, so near a minimum the slope decides.

    **Zoom** (Alg. 3.6): the bracket :math:`[a_{lo}, a_{hi}]` (``a_lo`` the best
    point with sufficient decrease so far) shrinks using the minimizer of the cubic
    through both ends, safeguarded to lie at least 10 % of the bracket width away from
    either end (so the bracket shrinks by a factor <= 0.9 per evaluation) and replaced
    by bisection when the cubic is not usable.

    **Non-finite trials** (NaN/inf loss or gradient) count as "too long": in the
    bracketing phase they end it with the bracket ``[previous, trial]``; in the zoom
    they become the new upper end, and the next trial bisects (no interpolation
    through a non-finite value).  A non-finite point is never returned.

    **Failure modes** (``success=False``, ``reason``):

    * ``"not_descent"`` -- ``g0_dot_d`` is not negative (or ``f0``/``step0`` invalid);
    * ``"max_evals"`` -- ``max_evals`` evaluations without an acceptable step;
    * ``"interval_too_small"`` -- the bracket became narrower than
      ``xtol * a_hi`` (rounding dominates; typically at a minimum to machine precision);
    * ``"step_max"`` -- the step reached ``step_max`` with the slope still steep.

    In every failure case the best evaluated point with sufficient decrease (if any) is
    returned in ``step``/``f_new``/``g_new``; otherwise ``f_new is None`` and ``step = 0``.

    Parameters
    ----------
    phi:
        ``phi(a) -> (f(a), grad f(theta + a d))``.
    f0, g0_dot_d:
        loss and directional derivative at ``a = 0``.
    step0:
        first trial step (> 0).
    c1, c2:
        the Wolfe constants.
    max_evals:
        the largest number of calls to ``phi``.
    d:
        the search direction, used to form :math:`g(a)^\\top d`.  With ``d=None``
        ``phi`` must return the directional derivative itself as its second output
        (for scalar functions).
    xtol:
        relative bracket width at which the search gives up.
    step_max:
        largest step tried.
    approx_eps:
        relative loss tolerance of the approximate Wolfe test (0 disables it).
    """
    eps = _eps(f0)
    f0 = float(f0)
    f_tol = (100.0 * eps if approx_eps is None else approx_eps) * abs(f0)
    gtd0 = float(g0_dot_d)
    if not (gtd0 < 0.0 and math.isfinite(f0) and step0 > 0.0 and math.isfinite(step0)):
        return LineSearchResult(0.0, None, None, 0, False, "not_descent")
    c1_gtd0 = c1 * gtd0
    curv = -c2 * gtd0  # the strong-Wolfe bound on |g(a)'d|
    approx_gd = (2.0 * c1 - 1.0) * gtd0  # Hager-Zhang: phi'(a) <= (2 c1 - 1) phi'(0)
    evals = 0
    # best point with sufficient decrease: (step, f_tensor, g_tensor, f, gd)
    best: tuple[float, Any, Any, float, float] | None = None

    def record(a: float, f_t: Any, g_t: Any, f: float, gd: float) -> None:
        nonlocal best
        if f <= f0 + a * c1_gtd0 and (best is None or f < best[3]):
            best = (a, f_t, g_t, f, gd)

    def failure(reason: str) -> LineSearchResult:
        if best is None:
            return LineSearchResult(0.0, None, None, evals, False, reason)
        a, f_t, g_t, _, gd = best
        return LineSearchResult(a, f_t, g_t, evals, False, reason, gd)

    # ---- bracketing phase -------------------------------------------------------------
    a_prev, f_prev, gd_prev = 0.0, f0, gtd0
    a = min(step0, step_max)
    bracket: tuple[float, ...]  # (lo, f_lo, gd_lo, hi, f_hi, gd_hi); lo has sufficient decrease
    while True:
        if evals >= max_evals:
            return failure("max_evals")
        f_t, g_t, f, gd = _probe(phi, a, d, True)
        evals += 1
        finite = math.isfinite(f) and math.isfinite(gd)
        if not finite:
            bracket = (a_prev, f_prev, gd_prev, a, math.nan, math.nan)
            break
        record(a, f_t, g_t, f, gd)
        armijo_ok = f <= f0 + a * c1_gtd0 or (abs(f - f0) <= f_tol and gd <= approx_gd)
        if armijo_ok and abs(gd) <= curv:
            return LineSearchResult(a, f_t, g_t, evals, True, None, gd)
        if not armijo_ok or (evals > 1 and f > f_prev + f_tol):
            bracket = (a_prev, f_prev, gd_prev, a, f, gd)
            break
        if gd >= 0.0:
            bracket = (a, f, gd, a_prev, f_prev, gd_prev)
            break
        if a >= step_max:
            return failure("step_max")
        # extrapolate: the slope is still steeply negative
        lo_b = a + 1.1 * (a - a_prev)
        hi_b = a + 4.0 * (a - a_prev)
        a_new = _cubic_min(a_prev, f_prev, gd_prev, a, f, gd)
        if not math.isfinite(a_new):
            a_new = hi_b
        a_new = min(max(a_new, lo_b), hi_b, step_max)
        a_prev, f_prev, gd_prev = a, f, gd
        a = a_new

    # ---- zoom phase -------------------------------------------------------------------
    lo, f_lo, gd_lo, hi, f_hi, gd_hi = bracket
    while True:
        width = abs(hi - lo)
        if width <= xtol * max(lo, hi):
            return failure("interval_too_small")
        if evals >= max_evals:
            return failure("max_evals")
        left, right = min(lo, hi), max(lo, hi)
        a = math.nan
        if math.isfinite(f_hi) and math.isfinite(gd_hi):
            a = _cubic_min(lo, f_lo, gd_lo, hi, f_hi, gd_hi)
        if math.isfinite(a):
            a = min(max(a, left + 0.1 * width), right - 0.1 * width)
        else:
            a = 0.5 * (lo + hi)
        f_t, g_t, f, gd = _probe(phi, a, d, True)
        evals += 1
        if not (math.isfinite(f) and math.isfinite(gd)):
            hi, f_hi, gd_hi = a, math.nan, math.nan
            continue
        record(a, f_t, g_t, f, gd)
        armijo_ok = f <= f0 + a * c1_gtd0 or (abs(f - f0) <= f_tol and gd <= approx_gd)
        if armijo_ok and abs(gd) <= curv:
            return LineSearchResult(a, f_t, g_t, evals, True, None, gd)
        if not armijo_ok or f > f_lo + f_tol:
            hi, f_hi, gd_hi = a, f, gd
            continue
        if gd * (hi - lo) >= 0.0:
            hi, f_hi, gd_hi = lo, f_lo, gd_lo
        lo, f_lo, gd_lo = a, f, gd


def armijo(
    phi: Phi,
    f0: float | Tensor,
    g0_dot_d: float | Tensor,
    step0: float,
    c1: float = 1e-4,
    shrink: float = 0.5,
    max_evals: int = 30,
    *,
    d: Tensor | None = None,
    interpolate: bool = True,
) -> LineSearchResult:
    """Backtracking until sufficient decrease :math:`f(a) \\le f_0 + c_1 a\\, g_0^\\top d`.

    Starting from ``step0``, each rejected step ``a`` is replaced by (N&W Sec. 3.5)

    * after the first rejection, the minimizer of the quadratic through
      :math:`\\phi(0), \\phi'(0), \\phi(a)`:
      :math:`a_q = -\\phi'(0) a^2 / (2 (\\phi(a) - \\phi(0) - \\phi'(0) a))`;
    * later, the minimizer of the cubic through :math:`\\phi(0), \\phi'(0)` and the
      last two trials (N&W eq. 3.58);

    safeguarded to :math:`[0.1 a, \\text{shrink}\\cdot a]`.  With ``interpolate=False``
    (or when the interpolant is unusable, or the trial was not finite) the step is
    simply multiplied by ``shrink``.  Only the loss is needed per trial (one host
    sync); the gradient returned by ``phi`` is passed through for the caller and
    checked for finiteness.  No curvature condition is enforced.

    Failure modes: ``"not_descent"`` (``g0_dot_d >= 0``) and ``"max_evals"``; on
    failure ``f_new is None`` (every evaluated point lacked sufficient decrease).
    """
    f0 = float(f0)
    gtd0 = float(g0_dot_d)
    if not (gtd0 < 0.0 and math.isfinite(f0) and step0 > 0.0 and math.isfinite(step0)):
        return LineSearchResult(0.0, None, None, 0, False, "not_descent")
    lower = min(0.1, shrink)
    a = step0
    prev: tuple[float, float] | None = None  # previous finite trial (a, f)
    for evals in range(1, max_evals + 1):
        f_t, g_t, f, gd = _probe(phi, a, d, d is None)
        finite = math.isfinite(f) and math.isfinite(gd)
        if finite and f <= f0 + c1 * a * gtd0:
            return LineSearchResult(a, f_t, g_t, evals, True, None,
                                    gd if d is None else math.nan)
        a_new = math.nan
        if interpolate and finite:
            if prev is None:
                denom = 2.0 * (f - f0 - gtd0 * a)
                if denom > 0.0:
                    a_new = -gtd0 * a * a / denom
            else:
                a_new = _cubic_backtrack(f0, gtd0, prev[0], prev[1], a, f)
        if not math.isfinite(a_new):
            a_new = shrink * a
        a_new = min(max(a_new, lower * a), shrink * a)
        prev = (a, f) if finite else None
        a = a_new
    return LineSearchResult(0.0, None, None, max_evals, False, "max_evals")


def _cubic_backtrack(f0: float, g0: float, a0: float, f_a0: float, a1: float, f_a1: float):
    """Minimizer of the cubic through phi(0), phi'(0), phi(a0), phi(a1) (N&W eq. 3.58)."""
    if a0 == a1 or a0 == 0.0 or a1 == 0.0:
        return math.nan
    r1 = f_a1 - f0 - g0 * a1
    r0 = f_a0 - f0 - g0 * a0
    coef = 1.0 / (a0 * a0 * a1 * a1 * (a1 - a0))
    ca = coef * (a0 * a0 * r1 - a1 * a1 * r0)
    cb = coef * (-a0 * a0 * a0 * r1 + a1 * a1 * a1 * r0)
    if ca == 0.0:
        return -g0 / (2.0 * cb) if cb > 0.0 else math.nan
    disc = cb * cb - 3.0 * ca * g0
    if not disc >= 0.0:
        return math.nan
    return (-cb + math.sqrt(disc)) / (3.0 * ca)


#: The line searches by name, as accepted by ``line_search=`` options of the methods.
LINE_SEARCHES: dict[str, Callable[..., LineSearchResult]] = {
    "strong_wolfe": strong_wolfe,
    "armijo": armijo,
}


def make_line_search(
    line_search: str | Callable[..., LineSearchResult],
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evals: int = 25,
    **options: Any,
) -> Callable[..., LineSearchResult]:
    """Bind a line search (a name in :data:`LINE_SEARCHES` or a callable) to its options.

    Returns ``search(phi, f0, g0_dot_d, step0, d=d)``.  The named searches get the
    constants they use (``strong_wolfe``: ``c1, c2, max_evals``; ``armijo``: ``c1,
    max_evals``) plus ``options``; a custom callable gets only ``options``.
    """
    if callable(line_search):
        fn, bound = line_search, dict(options)
    elif line_search == "strong_wolfe":
        fn, bound = strong_wolfe, {"c1": c1, "c2": c2, "max_evals": max_evals, **options}
    elif line_search == "armijo":
        fn, bound = armijo, {"c1": c1, "max_evals": max_evals, **options}
    else:
        names = ", ".join(sorted(LINE_SEARCHES))
        raise ValueError(f"unknown line search {line_search!r}; choose from: {names}")
    if not 0.0 < c1 < 1.0 or (line_search == "strong_wolfe" and not c1 < c2 < 1.0):
        raise ValueError(f"need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")

    def search(phi: Phi, f0: Any, g0_dot_d: Any, step0: float, *, d: Tensor | None = None):
        return fn(phi, f0, g0_dot_d, step0, d=d, **bound)

    return search


def safe_step(g: Tensor) -> float:
    """``min(1, 1/||g||_1)``: the trial step along ``-g`` without curvature information
    (as in ``torch.optim.LBFGS``)."""
    g1 = float(g.abs().sum())
    return min(1.0, 1.0 / g1) if g1 > 0.0 and math.isfinite(g1) else 1.0


def search_along(
    line_search: Callable[..., LineSearchResult],
    objective: Any,
    theta: Tensor,
    f: Tensor,
    d: Tensor,
    gtd: float,
    step0: float,
) -> tuple[LineSearchResult, Tensor | None]:
    """Run a bound line search (see :func:`make_line_search`) from ``theta`` along ``d``.

    ``phi(a) = objective.loss_and_grad(theta + a d)``.  Returns the result and the
    accepted point (bitwise the point ``phi`` evaluated), or ``None`` when no step was
    found or a weak step (sufficient decrease without the curvature condition, e.g.
    when the evaluations ran out) does not lower ``f``: a step without progress is
    never taken.  Shared by every line-search method of the engine.
    """
    last: dict[str, Any] = {}

    def phi(a: float) -> tuple[Tensor, Tensor]:
        x = torch.add(theta, d, alpha=a)
        last["a"], last["x"] = a, x
        return objective.loss_and_grad(x)

    res = line_search(phi, f, gtd, step0, d=d)
    if not res.found or not res.step > 0.0:
        return res, None
    if not res.success and not float(res.f_new) < float(f):
        return res, None
    if last.get("a") == res.step:
        return res, last["x"]
    return res, torch.add(theta, d, alpha=res.step)
