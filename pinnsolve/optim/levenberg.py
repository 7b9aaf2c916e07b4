"""Damped Gauss-Newton: the Levenberg and Levenberg-Marquardt methods.

For objectives of least-squares form :math:`f(\\theta) = \\|r(\\theta)\\|^2` (no 1/2: the
convention of :meth:`pinnsolve.objective.PINNObjective.residuals`), with the Jacobian
:math:`J = \\partial r / \\partial \\theta` (``m x n``), the gradient is
:math:`\\nabla f = 2 J^\\top r` and each iteration solves the damped normal equations

.. math::  (J^\\top J + \\lambda D)\\, p = -J^\\top r

* Levenberg (1944), ``"levenberg"``: :math:`D = I`;
* Marquardt (1963), ``"lm"``: :math:`D = \\operatorname{diag}(J^\\top J)`, floored at
  ``diag_floor`` times its largest entry (and at the dtype's ``tiny``) so that it stays
  positive definite when a parameter has no influence on the residuals.

The step is judged by the gain ratio of the actual to the predicted reduction, the latter
from the linear model :math:`L(p) = \\|r + J p\\|^2`:

.. math::
    \\varrho = \\frac{f(\\theta) - f(\\theta + p)}{L(0) - L(p)}, \\qquad
    L(0) - L(p) = p^\\top J^\\top J p + 2 \\lambda\\, p^\\top D p \\;(> 0),

where the second form follows from the normal equations and is free of cancellation.
The step is accepted iff the actual reduction is positive (:math:`\\varrho > 0`), and the
damping follows Nielsen's rule (Madsen, Nielsen & Tingleff 2004, eq. 3.16):

* success: :math:`\\lambda \\leftarrow \\lambda \\max(1/3, 1 - (2\\varrho - 1)^3)`,
  :math:`\\nu \\leftarrow 2`;
* failure: :math:`\\lambda \\leftarrow \\nu \\lambda`, :math:`\\nu \\leftarrow 2 \\nu`.

The initial damping is :math:`\\lambda_0 = \\tau \\max_i (J^\\top J)_{ii}` for Levenberg
(:math:`D = I`) and :math:`\\lambda_0 = \\tau` for Marquardt, whose :math:`D` already
carries the scale of :math:`J^\\top J` (so :math:`\\lambda D` is relative to it in both
cases); ``tau = 1e-3`` is MNT's recommendation for a starting point believed not close
to the solution (use ``tau = 1e-6`` for a good one).

Changing objectives
-------------------
:meth:`~Levenberg.refresh` (called by the Trainer after it resamples the collocation
points, and by continuation after a parameter change) recomputes the residuals, the
Jacobian and :math:`J^\\top J` at the current point for the changed objective, keeping
:math:`\\lambda` and :math:`\\nu`; a stale :math:`J^\\top J` from the old points would
make the model and the gain ratio wrong.

Linear algebra
--------------
Two paths, chosen by ``solver``: ``"dense"``, ``"cg"`` (matrix-free) or ``"auto"`` (the
default: dense up to ``auto_max`` = 2,500 parameters, cg above -- the crossover measured
on Burgers below; an explicit ``"dense"`` above ``dense_max`` = 5,000 raises
``ValueError``).

**Dense.** The Jacobian comes from ``objective.jacobian(theta)``
when the objective has one (``jacobian="auto"``): :meth:`PINNObjective.jacobian
<pinnsolve.objective.PINNObjective.jacobian>` builds it from per-point gradients (each
residual row depends on the network at its own point only), at about 3 loss-and-gradient
evaluations on Burgers (921 parameters x 2,860 residuals; ``benchmarks/jacobian.py``).
Otherwise it is formed with :mod:`torch.func` (``jacfwd`` costs ``n`` forward-mode
passes, ``jacrev`` ``m`` reverse-mode passes over the whole residual vector -- ~1,700
loss-and-gradient evaluations for that Burgers problem; ``"auto"`` picks ``jacfwd`` when
``n_params < n_residuals`` and ``jacrev`` otherwise, ``"fwd"``/``"rev"`` force them).
:math:`J^\\top J` (``n x n``) is formed by :func:`normal_matrix` (one BLAS ``syrk`` on
the CPU: half the flops of ``J.T @ J``, ~3.7 loss-and-gradient evaluations for Burgers)
and kept in the state, and the system is solved by a Cholesky factorization
(:func:`torch.linalg.cholesky_ex`, ~4.5 evaluations for ``n = 921``); if the factorization
fails, :math:`\\lambda` is increased (failure rule) and it is retried.

**Matrix-free (cg).** :math:`J` is never formed.  Each point is *linearized* once
(``objective.linearize(theta)`` -- :meth:`PINNObjective.linearize
<pinnsolve.objective.PINNObjective.linearize>` -- or, for any objective with
``residuals``, a :class:`ResidualLinearization`): one forward pass keeps the autograd
graph of :math:`r`, after which :math:`J^\\top u` is one reverse pass and :math:`J v` one
reverse pass of the (once recorded) graph of :math:`w \\mapsto J^\\top w`; on Burgers
0.27 loss-and-gradient evaluations per product and ~1.2 per linearization (forward mode,
``torch.func.jvp``, measured 0.76 per product).  The step solves, inexactly,

.. math::  \\min_p \\|J p + r\\|^2 + \\lambda\\, p^\\top D p
           \\iff (J^\\top J + \\lambda D) p = -J^\\top r

by :func:`cgls` on the stacked system :math:`[J D^{-1/2};\\ \\sqrt\\lambda I]\\, y =
[-r;\\ 0]`, :math:`p = D^{-1/2} y`.  CGLS has the iterates of CG on the normal
equations in exact arithmetic (so its convergence is governed by
:math:`\\kappa(J)^2`), but it is the numerically stable form of that method: the step
lengths use :math:`\\|J d\\|^2` instead of :math:`d^\\top (J^\\top J d)` and the
least-squares residual :math:`s = -r - Jp` is carried explicitly, so rounding behaves as
for the stacked least-squares problem (Björck 1996, Sec. 7.4; LSQR is equivalent in
exact arithmetic and was not needed here); :math:`D^{-1/2}` acts as a Jacobi
preconditioner.  One CGLS iteration costs one
:math:`J v` and one :math:`J^\\top u`.  It stops at the forcing-term rule of
:mod:`~pinnsolve.optim.newton`, relative normal-equations residual
:math:`\\le \\eta_k = \\min(0.5, \\sqrt{\\|g_k\\|})` (or a fixed ``forcing``), or after
``max_cg`` iterations.  As the solution is inexact, the predicted reduction for the gain
ratio is the model difference itself, :math:`L(0) - L(p) = -(Jp)^\\top (2 r + J p)`,
with :math:`Jp = -r - s` from the recurrence (no extra product).  (The normal-equations
shortcut above assumes :math:`p^\\top((J^\\top J + \\lambda D) p + J^\\top r) = 0`; a CG
iterate satisfies that too in exact arithmetic -- the Galerkin condition on its Krylov
space, checked in the tests -- but a general inexact :math:`p` does not, and rounding
erodes it, so the direct form is used.)  Every CGLS iterate lowers the damped
model from :math:`p = 0`, so :math:`L(0) - L(p) > \\lambda p^\\top D p > 0`.

Marquardt's :math:`D = \\operatorname{diag}(J^\\top J)` on this path:
``objective.jacobian_diagonal(theta)`` if the objective offers it (exact; for a PINN the
squared column norms accumulated over chunks of per-point gradients, costing about one
Jacobian build but holding only one chunk of :math:`J`), else a Hutchinson estimate
:math:`\\frac1k\\sum_j (J^\\top z_j)^2` with ``diag_samples`` Rademacher probes (unbiased;
~40% median relative error with 8 probes on Burgers).  Because it is that expensive,
:math:`D` is recomputed at the start, on :meth:`~Levenberg.refresh` and after every
``diag_every``-th accepted step, and kept in between (any fixed positive diagonal
scaling is admissible, Moré 1978).  Levenberg (:math:`D = I`) uses the diagonal only once,
for :math:`\\lambda_0`.

The state then holds the residual vector and :math:`D` instead of :math:`J^\\top J`, and
counts ``jvps``, ``vjps`` (including the gradient :math:`2 J^\\top r` of every accepted
point and Hutchinson probes) and ``cg_iterations`` of all steps, accepted or not.  The
linearization of the current point is cached outside the state (it is recomputed, at one
evaluation, after :meth:`~pinnsolve.optim.base.Method.load_state_dict`; the iterates are
the same).

Iterations and evaluations
--------------------------
Every call of :meth:`~Levenberg.step` is one iteration, accepted or not: a rejected step
leaves ``theta`` unchanged, increases :math:`\\lambda` and reports the unchanged loss and
gradient.  ``StepInfo.evals`` counts **residual evaluations plus Jacobian builds**: a trial
point costs 1 (``objective.residuals``), and an accepted point 1 more for its Jacobian;
:meth:`~Levenberg.start` costs 2 (residuals, Jacobian).  On the cg path it counts
linearizations (a trial point costs 1, :meth:`~Levenberg.start` 1), the Jacobian products
being in the state.  The reported loss is
:math:`r^\\top r` and the gradient :math:`2 J^\\top r`, at the current point.

Safeguards
----------
* Non-finite residuals at a trial point, or a non-finite Jacobian at an otherwise
  acceptable one, count as a failed step (:math:`\\lambda` increases).  After
  ``max_failures`` consecutive failed steps the method gives up with
  ``failed="non_finite"`` if the last failure was non-finite, else
  ``failed="damping_failed"`` (no decrease found however large the damping: usually the
  loss is at its rounding floor).
* ``theta`` and the state are committed together inside
  :func:`~pinnsolve.optim.base.interrupt_guard`; the state is a plain dict (loss, grad,
  :math:`J^\\top J`, :math:`\\lambda`, :math:`\\nu`, counters), so a resumed run from
  :meth:`~pinnsolve.optim.base.Method.state_dict` is bit-for-bit identical.

Measured on Burgers nu = 0.01/pi (3 x 20 tanh, 921 parameters, 2,860 residuals,
``python validation/lm.py``, one thread, shared machine under load): one LM iteration
took 0.16-0.23 s (~5 ``ssbroyden`` iterations); at equal wall time the relative L2
error was 4.3e-2 vs 2.1e-2 for ``ssbroyden`` at 20 s, 7.1e-3 vs 3.1e-4 at 60 s and
2.4e-3 vs 3.1e-4 at 180 s.  LM reached far lower losses (3.6e-10 vs 1.3e-8 at 180 s),
yet larger errors (presumably it fits each set of collocation points more closely than
the solution between them).  So on that PINN it is not competitive at these budgets; it is fast and
accurate for small least-squares fits and tiny PINNs.

Dense vs matrix-free at equal wall time, same problem (``python validation/lm.py --budget
20 --budget 50 --only lm --only "lm, --lm-solver cg" --only levenberg --only "levenberg,
--lm-solver cg"``, ``validation/results/lm_cg.md``, under load): relative L2 error at 20 s
``lm`` 6.2e-2 (dense) vs 4.3e-1 (cg), ``levenberg`` 3.6e-2 vs 4.4e-1; at 50 s ``lm``
1.9e-2 vs 2.8e-1, ``levenberg`` 2.5e-3 vs 2.7e-1 -- iterations of similar cost, but
6-20 CGLS iterations resolve little of this ill-conditioned Gauss-Newton system (tighter
forcing with up to 200 iterations did not help).  With wider networks the dense linear
algebra grows as :math:`m n^2` and the products as :math:`m n`: at 50 s ``levenberg``
on 3 x 30 (1,981 parameters) 2.8e-1 dense vs 4.1e-1 cg, on 3 x 40 (3,441 parameters)
5.0e-1 dense (16 iterations) vs 4.6e-1 cg (67) (``validation/results/lm_cg_sizes.md``),
hence ``auto_max = 2500``.  Per-iteration cost beyond the objective's calls
(``python validation/optimizers.py --budget 60 --threads 1``, quiet machine): dense
402% (Levenberg) and 398% (LM) of one loss-and-gradient evaluation, of which forming
:math:`J^\\top J` (2.43 GFLOP by syrk, 52.7 ms) is 3.0 evaluations and the Cholesky
factorization 0.9; cg 17.8% and 16.3%, the cache refill after each of the two Jacobian
products of a CGLS iteration (a small vector step costs ~120 us right after a large
autograd pass, ~30 us in a warm loop).  At 60 s dense ``levenberg`` reached 1.1e-3, the
fourth-lowest error of all optimizers on that table.

References
----------
* K. Levenberg, A method for the solution of certain non-linear problems in least
  squares, Quart. Appl. Math. 2 (1944) 164-168.
* D. W. Marquardt, An algorithm for least-squares estimation of nonlinear parameters,
  J. SIAM 11 (1963) 431-441.
* J. J. Moré, The Levenberg-Marquardt algorithm: implementation and theory, in
  Numerical Analysis, Lecture Notes in Math. 630, Springer (1978) 105-116.
* K. Madsen, H. B. Nielsen, O. Tingleff, Methods for non-linear least squares problems,
  2nd ed., IMM, DTU (2004).
* Å. Björck, Numerical Methods for Least Squares Problems, SIAM (1996), Sec. 7.4 (CGLS).
* C. C. Paige, M. A. Saunders, LSQR: an algorithm for sparse linear equations and sparse
  least squares, ACM TOMS 8 (1982) 43-71.
* M. F. Hutchinson, A stochastic estimator of the trace of the influence matrix,
  Comm. Statist. Simul. Comput. 18 (1989) 1059-1076.
* S. C. Eisenstat, H. F. Walker, Choosing the forcing terms in an inexact Newton
  method, SIAM J. Sci. Comput. 17 (1996) 16-32.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import jacfwd, jacrev

from .base import STOP_REASONS, Method, Objective, StepInfo, interrupt_guard

__all__ = ["Levenberg", "LevenbergMarquardt", "ResidualLinearization", "normal_matrix",
           "cgls"]

SOLVERS = ("dense", "cg", "auto")

# the one stop reason this module adds (idempotent; the lead may also list it in base)
STOP_REASONS.setdefault("damping_failed", "no decrease found however large the damping")


def normal_matrix(J: Tensor) -> Tensor:
    """:math:`J^\\top J` (``n x n``, symmetric) of an ``m x n`` Jacobian.

    On the CPU in float32/float64 this is one BLAS ``syrk`` (:mod:`scipy.linalg.blas`),
    which computes one triangle only: half the ``2 m n^2`` flops of ``J.T @ J``, and the
    dominant cost of a Levenberg-Marquardt iteration when ``m > n``; elsewhere
    ``J.T @ J``.
    """
    if J.device.type == "cpu" and J.dtype in (torch.float64, torch.float32) and J.numel():
        from scipy.linalg import blas

        syrk = blas.dsyrk if J.dtype == torch.float64 else blas.ssyrk
        A = J.detach().resolve_conj().numpy().T  # (n, m), Fortran-ordered view: no copy
        upper = torch.from_numpy(syrk(1.0, A, trans=0, lower=0))
        return torch.triu(upper) + torch.triu(upper, 1).T
    return J.T @ J


class ResidualLinearization:
    """The residuals ``r(theta)`` with their autograd graph, for repeated Jacobian products.

    Built once per point (one forward pass that records the graph), then

    * :meth:`vjp`: :math:`J^\\top u` is one reverse pass through the kept graph
      (``torch.autograd.grad(r, theta, u, retain_graph=True)``);
    * :meth:`jvp`: :math:`J v` by the double-reverse ("transpose") trick: the first call
      records :math:`g(w) = J^\\top w` with ``create_graph=True`` at a dummy ``w = 0``
      (linear in ``w``, so the point does not matter), and every product is then one
      reverse pass of :math:`g` with cotangent ``v``: :math:`\\partial (v^\\top J^\\top w)
      / \\partial w = J v`.

    Neither re-runs the forward pass, and :math:`J` is never formed.  Forward mode
    (:func:`torch.func.jvp`) was measured slower for PINN residuals, which are themselves
    double-reverse derivatives in the inputs: on Burgers (921 parameters, 2,860
    residuals, one thread) ``torch.func.jvp`` of the residuals cost 0.76 loss-and-gradient
    evaluations per product, :func:`torch.func.linearize` 39 to build and 0.50 per
    product, this class 1.2 to build (forward with graph + the ``create_graph`` pass) and
    0.27 per :math:`J v` and 0.27 per :math:`J^\\top u`.

    Works for any residual function differentiable by ``torch.autograd`` (including the
    :mod:`torch.func` input derivatives of :mod:`pinnsolve.fields`).
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], theta: Tensor) -> None:
        with torch.enable_grad():
            self._x = theta.detach().requires_grad_(True)
            r = fn(self._x)
            if not isinstance(r, Tensor):
                raise TypeError(f"residuals must return a tensor, got {type(r).__name__}")
            self._r = r.reshape(-1)
        #: the residual vector at ``theta`` (detached)
        self.residuals = self._r.detach()
        self._w: Tensor | None = None
        self._jtw: Tensor | None = None

    def vjp(self, u: Tensor) -> Tensor:
        """:math:`J^\\top u` (``u`` of length ``m``)."""
        if not self._r.requires_grad:  # residuals independent of theta
            return torch.zeros_like(self._x.detach())
        (g,) = torch.autograd.grad(self._r, self._x, u, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self._x.detach()) if g is None else g

    def jvp(self, v: Tensor) -> Tensor:
        """:math:`J v` (``v`` of length ``n``)."""
        if self._jtw is None:
            if not self._r.requires_grad:
                return torch.zeros_like(self.residuals)
            with torch.enable_grad():
                self._w = torch.zeros_like(self.residuals, requires_grad=True)
                (self._jtw,) = torch.autograd.grad(self._r, self._x, self._w, create_graph=True,
                                                    allow_unused=True)
            if self._jtw is None or not self._jtw.requires_grad:
                self._jtw = torch.zeros_like(self._x.detach())
        if not self._jtw.requires_grad:
            return torch.zeros_like(self.residuals)
        (jv,) = torch.autograd.grad(self._jtw, self._w, v, retain_graph=True,
                                    allow_unused=True)
        return torch.zeros_like(self.residuals) if jv is None else jv


def linearize(objective: Objective, theta: Tensor):
    """``objective.linearize(theta)`` if it has one, else a
    :class:`ResidualLinearization` of ``objective.residuals``."""
    own = getattr(objective, "linearize", None)
    if callable(own):
        return own(theta.detach())
    fn = getattr(objective, "residuals", None)
    if fn is None:
        raise TypeError(
            f"{type(objective).__name__} has no residuals(theta): Levenberg(-Marquardt) "
            "needs a least-squares objective"
        )
    return ResidualLinearization(fn, theta)


def cgls(
    jvp: Callable[[Tensor], Tensor],
    vjp: Callable[[Tensor], Tensor],
    r: Tensor,
    lam: float,
    scale: Tensor,
    rtol: float,
    max_iter: int,
) -> tuple[Tensor, Tensor, dict]:
    """Inexact solution of :math:`\\min_p \\|J p + r\\|^2 + \\lambda\\, p^\\top D p` by CGLS.

    In the scaled variable :math:`y = D^{1/2} p` (``scale`` = :math:`D^{-1/2}` as a
    vector, i.e. Jacobi preconditioning by :math:`D`) this is the damped least-squares
    problem :math:`\\min_y \\|A y + r\\|^2 + \\lambda \\|y\\|^2`,
    :math:`A = J D^{-1/2}`, solved by CGLS (Hestenes-Stiefel CG on its normal equations
    with the residual :math:`s = -r - A y` carried explicitly; Björck 1996, Alg. 7.4.1;
    Paige & Saunders 1982).  One iteration = one :math:`J v` and one :math:`J^\\top u`.
    Stops when the scaled normal-equations residual
    :math:`z = A^\\top s - \\lambda y` satisfies :math:`\\|z\\| \\le` ``rtol``
    :math:`\\|z_0\\|` or after ``max_iter`` iterations.  The iterates decrease the damped
    model monotonically from :math:`y = 0`, so every iterate is a descent step whose
    predicted reduction :math:`L(0) - L(p) > \\lambda p^\\top D p > 0`.

    Returns ``p``, ``J p`` (:math:`= -r - s` from the recurrence for :math:`s`, no extra
    product) and an info dict (``iterations``, ``jvps``,
    ``vjps``, ``relres``).
    """
    # All vector updates are in place on buffers allocated once: between Jacobian products
    # (large autograd passes that allocate and free much memory) a fresh small allocation
    # was measured at 40-200 us on CPU, i.e. ~1.5% of a Burgers loss-and-gradient per
    # CGLS iteration; in place, the vector work is a few us per operation.
    unit = bool((scale == 1).all())
    y = torch.zeros_like(scale)
    s = r.neg()
    z = torch.empty_like(scale)
    sd = None if unit else torch.empty_like(scale)
    if unit:
        z.copy_(vjp(s))
    else:
        torch.mul(vjp(s), scale, out=z)
    vjps, jvps = 1, 0
    gamma = float(z.dot(z))
    z0 = gamma ** 0.5
    d = z.clone()
    it = 0
    relres = 0.0 if z0 == 0 else 1.0
    while it < max_iter and z0 > 0:
        q = jvp(d if unit else torch.mul(scale, d, out=sd))
        jvps += 1
        delta = float(q.dot(q)) + lam * float(d.dot(d))
        if not delta > 0:  # breakdown (d = 0 or non-finite)
            break
        alpha = gamma / delta
        y.add_(d, alpha=alpha)
        s.sub_(q, alpha=alpha)
        if unit:
            torch.sub(vjp(s), y, alpha=lam, out=z)
        else:
            torch.mul(vjp(s), scale, out=z).sub_(y, alpha=lam)
        vjps += 1
        it += 1
        gamma_new = float(z.dot(z))
        relres = gamma_new ** 0.5 / z0
        if not relres > rtol:  # converged (or non-finite: the caller checks p)
            break
        d.mul_(gamma_new / gamma).add_(z)
        gamma = gamma_new
    jp = -(r + s)  # s = -r - J p by the recurrence
    return scale * y, jp, {"iterations": it, "jvps": jvps, "vjps": vjps, "relres": relres}


class Levenberg(Method):
    """Levenberg's damped Gauss-Newton method, :math:`D = I` (see the module docstring).

    Parameters
    ----------
    tau
        Initial damping relative to the largest diagonal entry of :math:`J^\\top J`.
    solver
        ``"dense"`` (form :math:`J`, :math:`J^\\top J`, Cholesky), ``"cg"`` (matrix-free
        CGLS with Jacobian-vector products, :math:`J` never formed) or ``"auto"``:
        dense when ``n_params <= min(auto_max, dense_max)``, else cg.
    dense_max
        Largest number of parameters for ``solver="dense"`` (else ``ValueError``).
    auto_max
        Largest number of parameters for which ``"auto"`` picks the dense path.
    jacobian
        Dense path: ``"auto"`` (``objective.jacobian`` if the objective has it, else
        ``jacfwd`` if ``n_params < n_residuals`` else ``jacrev``), ``"fwd"`` or ``"rev"``
        (generic torch.func paths, ignoring ``objective.jacobian``).
    chunk_size
        Passed to ``jacrev`` to bound memory (``None``: all rows at once).
    max_failures
        Consecutive failed steps (rejections or failed factorizations) before giving up.
    diag_floor
        Only for ``"lm"``: relative floor of the scaling :math:`D`.
    max_cg
        cg path: the most CGLS iterations per step (each one :math:`J v` and one
        :math:`J^\\top u`).
    forcing
        cg path: ``None`` (default) for :math:`\\eta_k = \\min(0.5, \\sqrt{\\|g_k\\|})` as in
        :mod:`~pinnsolve.optim.newton`, or a fixed :math:`\\eta \\in [0, 1)`; CGLS stops at
        relative normal-equations residual :math:`\\eta_k`.
    diag_samples
        cg path, objectives without ``jacobian_diagonal``: Rademacher probes of the
        Hutchinson estimate of :math:`\\operatorname{diag}(J^\\top J)`.
    diag_every
        cg path, ``"lm"`` only: :math:`D` is recomputed at the start, on
        :meth:`refresh` and after every ``diag_every``-th accepted step, and kept in
        between (it costs about one dense Jacobian build on a PINN).
    """

    name = "levenberg"
    marquardt = False

    def __init__(
        self,
        tau: float = 1e-3,
        solver: str = "auto",
        dense_max: int = 5000,
        auto_max: int = 2500,
        jacobian: str = "auto",
        chunk_size: int | None = None,
        max_failures: int = 30,
        diag_floor: float = 1e-12,
        max_cg: int = 20,
        forcing: float | None = None,
        diag_samples: int = 8,
        diag_every: int = 10,
    ) -> None:
        super().__init__()
        if solver not in SOLVERS:
            raise ValueError(f"solver must be 'dense', 'cg' or 'auto', got {solver!r}")
        if jacobian not in ("auto", "fwd", "rev"):
            raise ValueError(f"jacobian must be 'auto', 'fwd' or 'rev', got {jacobian!r}")
        if not tau > 0:
            raise ValueError(f"tau must be positive, got {tau}")
        for key, val in (("max_cg", max_cg), ("diag_samples", diag_samples),
                         ("diag_every", diag_every)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{key} must be a positive integer, got {val!r}")
        if forcing is not None and not 0.0 <= float(forcing) < 1.0:
            raise ValueError(f"forcing must be in [0, 1) or None, got {forcing!r}")
        self.tau = float(tau)
        self.solver = solver
        self.dense_max = int(dense_max)
        self.auto_max = int(auto_max)
        self.jacobian = jacobian
        self.chunk_size = chunk_size
        self.max_failures = int(max_failures)
        self.diag_floor = float(diag_floor)
        self.max_cg = int(max_cg)
        self.forcing = None if forcing is None else float(forcing)
        self.diag_samples = int(diag_samples)
        self.diag_every = int(diag_every)
        self._lin: tuple | None = None  # (objective, theta, linearization): not state

    # ---- pieces ------------------------------------------------------------------------
    @staticmethod
    def _residuals(objective: Objective, theta: Tensor) -> Tensor:
        fn = getattr(objective, "residuals", None)
        if fn is None:
            raise TypeError(
                f"{type(objective).__name__} has no residuals(theta): Levenberg(-Marquardt) "
                "needs a least-squares objective"
            )
        with torch.no_grad():
            r = fn(theta.detach())
        if r.dim() != 1:
            r = r.reshape(-1)
        return r

    def _jacobian(self, objective: Objective, theta: Tensor, m: int) -> Tensor:
        n = theta.numel()
        mode = self.jacobian
        own = getattr(objective, "jacobian", None)
        if mode == "auto" and callable(own):  # e.g. PINNObjective's per-point gradients
            J = own(theta.detach())
            if tuple(J.shape) != (m, n):
                raise ValueError(f"{type(objective).__name__}.jacobian returned shape "
                                 f"{tuple(J.shape)}, expected ({m}, {n})")
            return J.detach()
        if mode == "auto":
            mode = "fwd" if n < m else "rev"
        fn = objective.residuals  # type: ignore[attr-defined]

        def flat(x: Tensor) -> Tensor:
            return fn(x).reshape(-1)

        if mode == "fwd":
            J = jacfwd(flat)(theta.detach())
        else:
            J = jacrev(flat, chunk_size=self.chunk_size)(theta.detach())
        return J.detach()

    def _floored(self, d: Tensor) -> Tensor:
        floor = max(float(d.max()) * self.diag_floor, torch.finfo(d.dtype).tiny)
        return d.clamp(min=floor)

    def _scaling(self, jtj: Tensor) -> Tensor:
        """The diagonal of D as a vector."""
        if not self.marquardt:
            return torch.ones(jtj.shape[0], dtype=jtj.dtype, device=jtj.device)
        return self._floored(jtj.diagonal())

    def _evaluate(self, objective: Objective, theta: Tensor, r: Tensor):
        """J'J, loss and gradient at theta from its residuals ``r`` (one Jacobian build)."""
        J = self._jacobian(objective, theta, r.numel())
        jtj = normal_matrix(J)
        grad = 2.0 * (J.T @ r)
        return r @ r, grad, jtj

    def _use_cg(self, n: int) -> bool:
        if self.solver == "cg":
            return True
        if self.solver == "auto":
            return n > min(self.auto_max, self.dense_max)
        if n > self.dense_max:
            raise ValueError(
                f"{self.name}: {n} parameters exceed dense_max={self.dense_max} for "
                "solver='dense'; use solver='cg' (matrix-free) or raise dense_max if J'J "
                "fits in memory"
            )
        return False

    # ---- cg path: linearization, diagonal ----------------------------------------------
    def _linearization(self, objective: Objective, theta: Tensor):
        """The cached linearization at ``theta`` (same objective, same point), or None."""
        if self._lin is not None:
            obj, at, lin = self._lin
            if obj is objective and at.shape == theta.shape and torch.equal(at, theta):
                return lin
        return None

    def _cache(self, objective: Objective, theta: Tensor, lin) -> None:
        self._lin = (objective, theta.detach().clone(), lin)

    def _diagonal(self, objective: Objective, theta: Tensor, lin) -> tuple[Tensor, int]:
        """:math:`\\operatorname{diag}(J^\\top J)` without forming J: exact from
        ``objective.jacobian_diagonal`` if it has one, else a Hutchinson estimate
        :math:`\\frac1k \\sum_j (J^\\top z_j)^2` (Rademacher :math:`z_j`, a generator
        seeded by the iteration count so that resumed runs repeat it).  Returns the
        diagonal and the number of ``J' u`` products spent."""
        own = getattr(objective, "jacobian_diagonal", None)
        if callable(own):
            d = own(theta.detach()).detach()
            if tuple(d.shape) != (theta.numel(),):
                raise ValueError(f"{type(objective).__name__}.jacobian_diagonal returned "
                                 f"shape {tuple(d.shape)}, expected ({theta.numel()},)")
            return d, 0
        r = lin.residuals
        gen = torch.Generator().manual_seed(int(self.state.get("iteration", 0)) + 1)
        acc = torch.zeros_like(theta)
        for _ in range(self.diag_samples):
            z = torch.randint(0, 2, r.shape, generator=gen).to(r) * 2 - 1
            acc += lin.vjp(z) ** 2
        return acc / self.diag_samples, self.diag_samples

    def _cg_point(self, objective: Objective, theta: Tensor, lin, need_diag: bool):
        """Loss, gradient 2 J'r, scaling D (and products spent) at a linearized point."""
        r = lin.residuals
        grad = 2.0 * lin.vjp(r)
        vjps, d = 1, None
        if need_diag:
            d, k = self._diagonal(objective, theta, lin)
            vjps += k
        return r @ r, grad, d, vjps

    def _start_cg(self, objective: Objective, theta: Tensor, keep: dict | None) -> StepInfo:
        lin = linearize(objective, theta)
        loss, grad, d, vjps = self._cg_point(objective, theta, lin,
                                             need_diag=self.marquardt or keep is None)
        self._cache(objective, theta, lin)
        if keep is None:  # a fresh start
            dmax = float(d.max()) if d.numel() else 0.0
            lam = self.tau
            if not self.marquardt and math.isfinite(dmax) and dmax > 0:
                lam = self.tau * dmax
            self.state = {
                "loss": loss, "grad": grad, "lambda": lam, "nu": 2.0, "iteration": 0,
                "accepted": 0, "rejected": 0, "failures": 0, "gain": math.nan,
                "jvps": 0, "vjps": 0, "cg_iterations": 0,
            }
        scale = self._floored(d) if self.marquardt else torch.ones_like(grad)
        with interrupt_guard():
            self.state.update(loss=loss, grad=grad, resid=lin.residuals, scale=scale,
                              failures=0)
            self.state["vjps"] += vjps
        return StepInfo(loss=loss, grad=grad, evals=1)

    # ---- state -------------------------------------------------------------------------
    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        if theta.dim() != 1:
            raise ValueError(f"theta must be a flat 1-D tensor, got shape {tuple(theta.shape)}")
        self._lin = None
        if self._use_cg(theta.numel()):
            return self._start_cg(objective, theta, None)
        r = self._residuals(objective, theta)
        loss, grad, jtj = self._evaluate(objective, theta, r)
        dmax = float(jtj.diagonal().max()) if jtj.numel() else 0.0
        lam = self.tau
        if not self.marquardt and math.isfinite(dmax) and dmax > 0:
            lam = self.tau * dmax
        self.state = {
            "loss": loss,
            "grad": grad,
            "jtj": jtj,
            "lambda": lam,
            "nu": 2.0,
            "iteration": 0,
            "accepted": 0,
            "rejected": 0,
            "failures": 0,  # consecutive failed steps
            "gain": math.nan,  # the last gain ratio
        }
        return StepInfo(loss=loss, grad=grad, evals=2)

    def refresh(self, objective: Objective, theta: Tensor) -> StepInfo:
        """Re-evaluate at ``theta`` for a changed objective, keeping the damping: dense
        path residuals, Jacobian and J'J (2 evaluations); cg path a new linearization,
        gradient and D (1 evaluation)."""
        if not self.state:
            return self.start(objective, theta)
        self._lin = None
        if "jtj" not in self.state:
            return self._start_cg(objective, theta, self.state)
        r = self._residuals(objective, theta)
        loss, grad, jtj = self._evaluate(objective, theta, r)
        with interrupt_guard():
            self.state.update(loss=loss, grad=grad, jtj=jtj, failures=0)
        return StepInfo(loss=loss, grad=grad, evals=2)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._lin = None

    # ---- one iteration -----------------------------------------------------------------
    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        evals = 0
        if not self.state:
            evals += self.start(objective, theta).evals
        if "jtj" not in self.state:
            info = self._step_cg(objective, theta)
            info.evals += evals
            return info
        st = self.state
        f, g, jtj = st["loss"], st["grad"], st["jtj"]
        lam, nu = float(st["lambda"]), float(st["nu"])
        if not bool((g != 0).any()):  # a stationary point (e.g. zero residual): nothing to do
            return StepInfo(loss=f, grad=g, evals=evals)
        d = self._scaling(jtj)
        failures = int(st["failures"])

        # factorize J'J + lambda D, increasing lambda while it is not positive definite
        p = None
        while failures < self.max_failures:
            chol, info = torch.linalg.cholesky_ex(jtj + torch.diag(lam * d))
            if int(info) == 0:
                p = torch.cholesky_solve((-0.5 * g).unsqueeze(1), chol).squeeze(1)
                if bool(torch.isfinite(p).all()):
                    break
                p = None
            lam, nu, failures = lam * nu, nu * 2.0, failures + 1
        if p is None:
            self._commit_failure(lam, nu, failures)
            return StepInfo(loss=f, grad=g, evals=evals, failed="damping_failed")

        predicted = p @ (jtj @ p) + 2.0 * lam * (p @ (d * p))
        x_new = theta + p
        r_new = self._residuals(objective, x_new)
        evals += 1
        f_new = r_new @ r_new
        f_val, f_old, pred = torch.stack((f_new, f, predicted)).tolist()
        non_finite = not math.isfinite(f_val)
        if not non_finite and f_old - f_val > 0.0 and pred > 0.0:
            gain = (f_old - f_val) / pred
            loss_n, grad_n, jtj_n = self._evaluate(objective, x_new, r_new)
            evals += 1
            finite = bool(torch.isfinite(grad_n).all()) and bool(torch.isfinite(jtj_n).all())
            if finite:
                lam_new = lam * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3)
                with interrupt_guard():
                    theta.copy_(x_new)
                    st["loss"], st["grad"], st["jtj"] = loss_n, grad_n, jtj_n
                    st["lambda"], st["nu"] = lam_new, 2.0
                    st["gain"] = gain
                    st["failures"] = 0
                    st["accepted"] += 1
                    st["iteration"] += 1
                return StepInfo(loss=loss_n, grad=grad_n, evals=evals)
            non_finite = True

        # failed step: theta unchanged, more damping
        lam, nu, failures = lam * nu, nu * 2.0, failures + 1
        self._commit_failure(lam, nu, failures)
        failed = None
        if failures >= self.max_failures:
            failed = "non_finite" if non_finite else "damping_failed"
        return StepInfo(loss=f, grad=g, evals=evals, failed=failed)

    def _step_cg(self, objective: Objective, theta: Tensor) -> StepInfo:
        """One iteration of the matrix-free path (see "Matrix-free path" above)."""
        st = self.state
        f, g, r, scale = st["loss"], st["grad"], st["resid"], st["scale"]
        lam, nu = float(st["lambda"]), float(st["nu"])
        if not bool((g != 0).any()):
            return StepInfo(loss=f, grad=g, evals=0)
        evals = 0
        lin = self._linearization(objective, theta)
        if lin is None:  # e.g. after load_state_dict: the same point, linearized again
            lin = linearize(objective, theta)
            self._cache(objective, theta, lin)
            evals += 1
        if not lam * float(scale.max()) < torch.finfo(r.dtype).max:  # damping overflowed
            self._commit_failure(lam, nu, int(st["failures"]) + 1)
            return StepInfo(loss=f, grad=g, evals=evals, failed="damping_failed")
        gnorm = float(g.norm())
        eta = min(0.5, math.sqrt(gnorm)) if self.forcing is None else self.forcing
        p, jp, info = cgls(lin.jvp, lin.vjp, r, lam, scale.rsqrt(), eta, self.max_cg)
        jvps, vjps, cgit = info["jvps"], info["vjps"], info["iterations"]
        # predicted reduction of the undamped model from J p (valid for an inexact p):
        # L(0) - L(p) = ||r||^2 - ||r + J p||^2 = -(J p)'(2 r + J p)
        predicted = -(jp @ (2.0 * r + jp))
        non_finite = not bool(torch.isfinite(p).all())
        if not non_finite:
            x_new = theta + p
            lin_new = linearize(objective, x_new)
            evals += 1
            r_new = lin_new.residuals
            f_val, f_old, pred = torch.stack((r_new @ r_new, f, predicted)).tolist()
            non_finite = not math.isfinite(f_val)
            if not non_finite and f_old - f_val > 0.0 and pred > 0.0:
                gain = (f_old - f_val) / pred
                need_diag = self.marquardt and (st["accepted"] + 1) % self.diag_every == 0
                loss_n, grad_n, d_n, k = self._cg_point(objective, x_new, lin_new, need_diag)
                vjps += k
                finite = bool(torch.isfinite(grad_n).all()) and (
                    d_n is None or bool(torch.isfinite(d_n).all()))
                if finite:
                    lam_new = lam * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3)
                    with interrupt_guard():
                        theta.copy_(x_new)
                        st["loss"], st["grad"], st["resid"] = loss_n, grad_n, r_new
                        if d_n is not None:
                            st["scale"] = self._floored(d_n)
                        st["lambda"], st["nu"] = lam_new, 2.0
                        st["gain"] = gain
                        st["failures"] = 0
                        st["accepted"] += 1
                        st["iteration"] += 1
                        self._count(jvps, vjps, cgit)
                        self._cache(objective, theta, lin_new)
                    return StepInfo(loss=loss_n, grad=grad_n, evals=evals)
                non_finite = True

        lam, nu, failures = lam * nu, nu * 2.0, int(st["failures"]) + 1
        self._commit_failure(lam, nu, failures)
        self._count(jvps, vjps, cgit)
        failed = None
        if failures >= self.max_failures:
            failed = "non_finite" if non_finite else "damping_failed"
        return StepInfo(loss=f, grad=g, evals=evals, failed=failed)

    def _count(self, jvps: int, vjps: int, cg_iterations: int) -> None:
        st = self.state
        with interrupt_guard():
            st["jvps"] += jvps
            st["vjps"] += vjps
            st["cg_iterations"] += cg_iterations

    def _commit_failure(self, lam: float, nu: float, failures: int) -> None:
        st = self.state
        with interrupt_guard():
            st["lambda"], st["nu"], st["failures"] = lam, nu, failures
            st["rejected"] += 1
            st["iteration"] += 1


class LevenbergMarquardt(Levenberg):
    """Levenberg-Marquardt: :math:`D = \\operatorname{diag}(J^\\top J)` (floored)."""

    name = "lm"
    marquardt = True
