"""Stochastic gradient descent with (heavy-ball or Nesterov) momentum, on mini-batches.

Iteration ``k`` draws a batch :math:`B_k` (``batch_size`` samples of a
:class:`~pinnsolve.optim.base.StochasticObjective`; ``None``: the full loss) and, with
the gradient estimate :math:`g_k = \\nabla f_{B_k}(\\theta_k)`,

.. math::
    b_k = \\mu b_{k-1} + g_k \\ (b_0 = g_0), \\qquad
    \\theta_{k+1} = \\theta_k - \\eta\\, (g_k + \\mu b_k \\text{ (Nesterov) or } b_k)

-- the update of ``torch.optim.SGD`` (Sutskever, Martens, Dahl & Hinton, "On the
importance of initialization and momentum in deep learning", ICML 2013).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Method, Objective, StepInfo, StochasticMethod, interrupt_guard, is_finite
from .schedule import Schedule, ScheduledStep, check_schedule

__all__ = ["SGD"]


class SGD(ScheduledStep, StochasticMethod, Method):
    """Mini-batch SGD with momentum on the flat vector ``theta``.

    Parameters
    ----------
    lr:
        the step size :math:`\\eta` (constant; ``lr`` is an attribute, so the
        ``torch.optim`` facade's schedulers can change it).
    momentum:
        :math:`\\mu` in ``[0, 1)`` (0: plain SGD).  Default 0.9.
    nesterov:
        Nesterov momentum instead of heavy ball.
    batch_size:
        samples per iteration (``None``: the full loss, i.e. gradient descent with
        momentum; also the mode of the ``torch.optim`` facade, where the closure
        chooses its batch).
    seed:
        seed of the batch generator (its state is saved with the method's state).
    lr_schedule:
        a :class:`~pinnsolve.optim.schedule.Schedule`: iteration ``k`` steps with
        :math:`\\eta\\,\\sigma(k)` (``None``: constant ``lr``).

    **Reported loss**: like :class:`~pinnsolve.optim.adam.Adam`, iteration ``k`` reports
    the batch loss and gradient at :math:`\\theta_k`, where they were taken (noisy
    estimates: prefer ``max_iter``/``max_time`` to ``ftol``/``gtol`` with batches).
    State: ``loss``, ``grad``, ``buf`` (momentum buffer), ``iteration``,
    ``sample_grads`` (per-sample gradients computed so far), and the RNG state.
    """

    name = "sgd"

    def __init__(
        self,
        lr: float = 1e-3,
        momentum: float = 0.9,
        nesterov: bool = False,
        batch_size: int | None = None,
        seed: int = 0,
        lr_schedule: Schedule | None = None,
    ) -> None:
        super().__init__()
        if not lr > 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.seed = int(seed)
        self.lr_schedule = check_schedule(lr_schedule)

    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        loss, grad = objective.loss_and_grad(theta)
        self.state = {"loss": loss, "grad": grad, "iteration": 0,
                      "sample_grads": int(getattr(objective, "n_samples", 1))}
        return StepInfo(loss=loss, grad=grad, evals=1)

    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        st = self.state
        f, g, n = self.batch_grad(objective, theta, self.batch_size)
        if not is_finite(f, g):
            return StepInfo(loss=f, grad=g, evals=1, failed="non_finite")
        with interrupt_guard(), torch.no_grad():
            buf = st.get("buf")
            if self.momentum > 0.0:
                buf = g.clone() if buf is None else buf.mul_(self.momentum).add_(g)
                d = g.add(buf, alpha=self.momentum) if self.nesterov else buf
            else:
                d = g
            theta.add_(d, alpha=-self.step_size(st.get("iteration", 0)))
            st.update(loss=f, grad=g, buf=buf, iteration=st.get("iteration", 0) + 1,
                      sample_grads=st.get("sample_grads", 0) + n)
        return StepInfo(loss=f, grad=g, evals=1)
