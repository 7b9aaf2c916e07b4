"""Stochastic L-BFGS with variance reduction (S-LBFGS).

P. Moritz, R. Nishihara and M. I. Jordan, "A linearly-convergent stochastic L-BFGS
algorithm", AISTATS 2016 (Algorithm 1), which combines the SVRG gradient of Johnson &
Zhang (NIPS 2013) with the stable curvature pairs of R. H. Byrd, S. L. Hansen,
J. Nocedal and Y. Singer, "A stochastic quasi-Newton method for large-scale
optimization", SIAM J. Optim. 26 (2016) (SQN).

For :math:`f = \\frac1N \\sum_i f_i` (a :class:`~pinnsolve.optim.base.StochasticObjective`):

* **outer loop** (epoch ``k``): the snapshot :math:`w_k = x` and its full gradient
  :math:`\\mu_k = \\nabla f(w_k)`;
* **inner loop** (``t = 0 .. M-1``): a batch :math:`S_t` of size ``b`` and the
  variance-reduced gradient

  .. math:: v_t = \\nabla f_{S_t}(x_t) - \\nabla f_{S_t}(w_k) + \\mu_k ,\\qquad
            x_{t+1} = x_t - \\eta H_r v_t

  (:math:`H_r = I` until the first pair), :math:`H_r v` by the L-BFGS compact form /
  two-loop recursion (:func:`~pinnsolve.optim.lbfgs.compact_direction`);
* **curvature pairs**, every ``L`` inner steps (counted across epochs): the average
  :math:`u_r = \\frac1L \\sum_{j=t-L+1}^{t} x_j` of the last ``L`` iterates and, with a
  separate batch :math:`T_r` of size :math:`b_H`,

  .. math:: s_r = u_r - u_{r-1}, \\qquad y_r = \\nabla^2 f_{T_r}(u_r)\\, s_r

  (a Hessian-vector product, torch.func forward-over-reverse), stored when
  :math:`s_r^\\top y_r > \\varepsilon\\, y_r^\\top y_r` and
  :math:`s_r^\\top y_r \\ge c_{\\min} \\|s_r\\| \\|y_r\\|` (always for a well-conditioned
  convex ``f``; on a nonconvex PINN loss pairs with negative or nearly orthogonal
  curvature are skipped and counted -- the second test is our guard, not the papers':
  without a line search, a pair with a tiny :math:`\\cos(s, y)` inflates :math:`H` by
  up to :math:`1/\\cos^2` and the fixed step diverges).

**One** :meth:`~SLBFGS.step` **is one inner step** (cheap, so the progress bar, the
time budget and Ctrl-C act at the granularity of a mini-batch); the step that starts
an epoch also computes the snapshot's full gradient.  Its reported loss and gradient
are the variance-reduced estimates at :math:`x_t` (where :math:`v_t` was taken):
:math:`f_{S_t}(x_t) - f_{S_t}(w_k) + f(w_k)` and :math:`v_t`, unbiased, with a
variance that vanishes as the iterates and the snapshot converge, so ``gtol`` and
``ftol`` become meaningful near a minimum (they are noisy early on).

Cost of an inner step: two batch gradients (at :math:`x_t` and :math:`w_k`) plus the
``O(mn)`` direction; every ``L`` steps one batch HVP; every ``M`` steps one full
gradient.  How the two batch gradients are computed depends on what the objective
offers (the results agree to round-off):

* ``svrg_snapshot(theta)`` / ``batch_svrg_difference(theta, idx, cache)`` (the
  classification objective with an MLP): the snapshot's full pass also keeps per-sample
  quantities (per-layer back-propagated errors and layer inputs, ``N x`` the sum of the
  widths), from which the snapshot's batch gradient is a linear function of
  :math:`\\theta`; the difference :math:`\\nabla f_{S_t}(x_t) - \\nabla f_{S_t}(w_k)` then
  costs one forward/backward pass at :math:`x_t`, the first layer taking both terms in
  one product.  The cache is not part of the state (a resumed run rebuilds it from
  :math:`w_k` by the same pass);
* otherwise one fused evaluation, :func:`~pinnsolve.optim.base.batch_loss_and_grad_many`
  (the objective's ``batch_loss_and_grad_many``: for the PINN objective the two
  parameter sets are stacked and share one batched forward/backward pass; two calls
  of ``batch_loss_and_grad`` for objectives without it).

Measured with ``python validation/stochastic.py --cost-only`` (one thread, beside another
one-thread job, medians of interleaved rounds): on the Burgers PINN (batch 256) the
fused pair costs 0.64x two calls and an inner step 1.3-1.4x an SGD step with the same
batch (2.14x with two calls: the PINN's small per-point work is dominated by per-call
overhead); on the MNIST 784-128-10 classifier (batch 512, float32), whose batch work is
compute-bound (the fused pair costs 0.77-0.90x two calls), the cached difference costs
6.3 ms against 9.0 ms for the fused pair and an inner step 1.35x an SGD step (1.97x
with the fused pair).  ``state["sample_grads"]`` counts per-sample gradient evaluations
as the algorithm defines them (two per batch sample of an inner step, also when the
snapshot's come from the cache; a full gradient counts ``N``, an HVP ``b_H``) for
comparisons at equal work.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .base import (
    Method,
    Objective,
    StepInfo,
    StochasticMethod,
    batch_loss_and_grad_many,
    interrupt_guard,
    is_finite,
    require_stochastic,
)
from .lbfgs import history_direction, new_history, push_pair
from .schedule import Schedule, ScheduledStep, check_schedule

__all__ = ["SLBFGS"]


class SLBFGS(ScheduledStep, StochasticMethod, Method):
    """Variance-reduced stochastic L-BFGS (Moritz, Nishihara & Jordan 2016).

    Parameters (defaults from the paper and the authors' code unless noted)
    ----------
    lr:
        the constant step size :math:`\\eta` (the papers tune it per problem; the
        default 0.05 is this project's choice for unit-scaled losses, as the
        quasi-Newton matrix already carries the scale of the inverse Hessian).
    history:
        ``m``, pairs kept (10, as in the authors' code).
    batch_size:
        ``b``, samples per inner step (default 64).
    hessian_batch_size:
        :math:`b_H`, samples of the HVP batch (default 64, inside the 20-100 of the
        authors' code; Byrd et al.'s SQN uses 10-20 ``b``).
    update_every:
        ``L``, inner steps between curvature pairs (10).
    inner_steps:
        ``M``, inner steps per epoch (default ``None``: ``ceil(2 N / b)``, two
        passes over the data in gradient evaluations as in SVRG and the authors' code).
    curvature_eps:
        pairs with :math:`s^\\top y \\le \\varepsilon\\, y^\\top y` are skipped.
    min_cos:
        :math:`c_{\\min}`: pairs with :math:`\\cos(s, y) < c_{\\min}` are skipped (default
        0.01; 0 disables the guard).
    seed:
        seed of the batch generator (saved in the state: resumes are exact).
    lr_schedule:
        a :class:`~pinnsolve.optim.schedule.Schedule`: inner step ``t`` uses
        :math:`\\eta\\,\\sigma(t)` (``None``: constant).

    State (round-tripped by ``state_dict``): ``hist`` (the pair history, layout of
    :func:`~pinnsolve.optim.lbfgs.new_history`), ``w``, ``mu``, ``f_w`` (snapshot),
    ``inner``/``need_snapshot`` (position in the epoch), ``t`` (inner steps in all),
    ``u_sum``/``u_prev`` (iterate averages), ``epoch``, ``iteration``, ``skipped``,
    ``sample_grads``, ``loss``, ``grad``, and ``rng`` (the generator).

    Needs a mini-batch objective, so there is no closure-based ``torch.optim`` facade.
    """

    name = "slbfgs"

    def __init__(
        self,
        lr: float = 0.05,
        history: int = 10,
        batch_size: int = 64,
        hessian_batch_size: int = 64,
        update_every: int = 10,
        inner_steps: int | None = None,
        curvature_eps: float = 1e-10,
        min_cos: float = 1e-2,
        seed: int = 0,
        lr_schedule: Schedule | None = None,
    ) -> None:
        super().__init__()
        if not lr > 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        for name, value in (("history", history), ("batch_size", batch_size),
                            ("hessian_batch_size", hessian_batch_size),
                            ("update_every", update_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if inner_steps is not None and (not isinstance(inner_steps, int) or inner_steps < 1):
            raise ValueError(f"inner_steps must be a positive integer or None, got {inner_steps!r}")
        self.lr = float(lr)
        self.history = history
        self.batch_size = batch_size
        self.hessian_batch_size = hessian_batch_size
        self.update_every = update_every
        self.inner_steps = inner_steps
        self.curvature_eps = float(curvature_eps)
        if not 0.0 <= min_cos < 1.0:
            raise ValueError(f"min_cos must be in [0, 1), got {min_cos}")
        self.min_cos = float(min_cos)
        self.seed = int(seed)
        self.lr_schedule = check_schedule(lr_schedule)
        self._svrg: tuple[Any, Any] | None = None  # (objective, snapshot cache)

    def epoch_length(self, objective: Any) -> int:
        """``M``: inner steps per epoch."""
        if self.inner_steps is not None:
            return self.inner_steps
        return max(1, math.ceil(2 * objective.n_samples / self.batch_size))

    # -- outer loop --------------------------------------------------------------------

    def _snapshot(self, objective: Objective, theta: Tensor) -> StepInfo:
        snapshot = getattr(objective, "svrg_snapshot", None)
        out = snapshot(theta) if callable(snapshot) else None
        if out is None:
            f, g = objective.loss_and_grad(theta)
            self._svrg = None
        else:
            f, g, cache = out
            self._svrg = (objective, cache)
        st = self.state
        with interrupt_guard():
            st.update(w=theta.detach().clone(), mu=g, f_w=f, inner=0, need_snapshot=False,
                      epoch=st.get("epoch", 0) + 1, loss=f, grad=g,
                      sample_grads=st.get("sample_grads", 0) + int(objective.n_samples))
        return StepInfo(loss=f, grad=g, evals=1)

    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        require_stochastic(objective, "S-LBFGS", hvp=True)
        self.state = {
            "hist": new_history(self.history, theta),
            "t": 0, "iteration": 0, "skipped": 0, "sample_grads": 0, "epoch": 0,
            "u_sum": torch.zeros_like(theta), "u_prev": None,
        }
        info = self._snapshot(objective, theta)
        if not is_finite(info.loss, info.grad):
            info.failed = "non_finite"
        return info

    def refresh(self, objective: Objective, theta: Tensor) -> StepInfo:
        """A new snapshot at ``theta`` (the objective may have changed, e.g. resampled
        collocation points); the curvature pairs and averages are kept."""
        if not self.state:
            return self.start(objective, theta)
        return self._snapshot(objective, theta)

    def _svrg_cache(self, objective: Objective) -> Any:
        """The snapshot's cache for ``objective.batch_svrg_difference`` (``None`` when the
        objective has no such method).  Not part of the state: after a resume it is
        rebuilt from the snapshot ``w`` by the same deterministic pass."""
        if not callable(getattr(objective, "batch_svrg_difference", None)):
            return None
        if self._svrg is None or self._svrg[0] is not objective:
            out = objective.svrg_snapshot(self.state["w"])
            self._svrg = None if out is None else (objective, out[2])
        return None if self._svrg is None else self._svrg[1]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._svrg = None

    # -- inner loop --------------------------------------------------------------------

    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        require_stochastic(objective, "S-LBFGS", hvp=True)
        if not self.state:
            self.start(objective, theta)
        st = self.state
        evals, samples = 0, 0
        if st["need_snapshot"]:
            info = self._snapshot(objective, theta)
            evals += 1
            if not is_finite(info.loss, info.grad):
                return StepInfo(loss=info.loss, grad=info.grad, evals=evals, failed="non_finite")
        gen = self.generator
        idx = objective.sample_batch(self.batch_size, gen)
        cache = self._svrg_cache(objective)
        if cache is not None:
            df, dg = objective.batch_svrg_difference(theta, idx, cache)
        else:
            fs, gs = batch_loss_and_grad_many(objective, torch.stack([theta, st["w"]]), idx)
            df, dg = fs[0] - fs[1], gs[0] - gs[1]
        evals += 2
        samples += 2 * int(idx.numel())
        v = dg.add_(st["mu"])
        f_est = df + st["f_w"]
        d = history_direction(st["hist"], v)
        if not is_finite(f_est, d):
            return StepInfo(loss=f_est, grad=v, evals=evals, failed="non_finite")
        x_new = theta.add(d, alpha=self.step_size(st["iteration"]))
        t = st["t"] + 1
        u_sum = st["u_sum"] + x_new
        pair = None
        u_prev = st["u_prev"]
        skipped = st["skipped"]
        if t % self.update_every == 0:
            u = u_sum / self.update_every
            u_sum.zero_()
            if u_prev is not None:
                s = u - u_prev
                idx_h = objective.sample_batch(self.hessian_batch_size, gen)
                y = objective.batch_hvp(u, s, idx_h)
                evals += 1
                samples += int(idx_h.numel())
                sy, yy = torch.dot(s, y), torch.dot(y, y)
                ok = (sy > self.curvature_eps * yy) & (sy >= self.min_cos * (yy * s.dot(s)).sqrt())
                if bool(torch.isfinite(yy) & ok):
                    pair = (s, y)
                else:
                    skipped += 1
            u_prev = u
        inner = st["inner"] + 1
        with interrupt_guard(), torch.no_grad():
            theta.copy_(x_new)
            if pair is not None:
                push_pair(st["hist"], *pair)
            st.update(t=t, u_sum=u_sum, u_prev=u_prev, skipped=skipped, loss=f_est, grad=v,
                      inner=inner, need_snapshot=inner >= self.epoch_length(objective),
                      iteration=st["iteration"] + 1,
                      sample_grads=st["sample_grads"] + samples)
        return StepInfo(loss=f_est, grad=v, evals=evals)
