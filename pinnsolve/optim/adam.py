"""Adam (Kingma & Ba 2015) as an engine method, wrapping ``torch.optim.Adam``.

One iteration takes the gradient :math:`g_k` at the current point and applies

.. math::
    m_k = \\beta_1 m_{k-1} + (1-\\beta_1) g_k, \\qquad
    v_k = \\beta_2 v_{k-1} + (1-\\beta_2) g_k^2, \\\\
    \\theta_{k+1} = \\theta_k - \\mathrm{lr}\\,
        \\frac{m_k / (1-\\beta_1^k)}{\\sqrt{v_k / (1-\\beta_2^k)} + \\varepsilon}

(elementwise; the arithmetic is torch's own, so results match ``torch.optim.Adam``
bit for bit).  Reference: D. P. Kingma and J. Ba, "Adam: A method for stochastic
optimization", ICLR 2015.

With ``batch_size`` set, :math:`g_k` is the gradient of a fresh mini-batch of a
:class:`~pinnsolve.optim.base.StochasticObjective` (stratified over the loss terms for
a PINN) and every iteration costs one batch evaluation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Method, Objective, StepInfo, StochasticMethod, interrupt_guard, is_finite
from .schedule import Schedule, ScheduledStep, check_schedule

__all__ = ["Adam"]

_MOMENTS = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


class Adam(ScheduledStep, StochasticMethod, Method):
    """Adam on the flat vector ``theta``, one ``torch.optim.Adam`` update per iteration.

    **Reported loss**: iteration ``k`` evaluates ``f`` and ``g`` at the current point
    ``theta_k`` and then moves to ``theta_{k+1}``; its ``StepInfo.loss``/``grad`` are
    the values at ``theta_k``, *where the gradient was taken* (Adam never evaluates at
    ``theta_{k+1}`` before the next iteration).  The values of :meth:`start` are
    reused by the first iteration (which then costs no evaluation), so the loss
    history reads ``f(theta_0), f(theta_0), f(theta_1), ...``; every other iteration
    costs exactly one evaluation.  Gradient-based stopping (``gtol``) therefore judges
    the point before the last update.

    A non-finite loss or gradient at the current point ends the run with
    ``failed="non_finite"`` (no update is made).

    The torch optimizer works on a private leaf copy of ``theta``; its moment tensors
    live in ``self.state`` (``step``, ``exp_avg``, ``exp_avg_sq`` and, with
    ``amsgrad``, ``max_exp_avg_sq``) together with ``loss``, ``grad``, ``cached`` and
    ``iteration``, so ``state_dict``/``load_state_dict`` resume exactly.

    ``batch_size`` (default ``None``: full batch) makes it mini-batch Adam: every
    iteration draws ``batch_size`` samples with a generator seeded by ``seed`` (its
    state is part of ``state_dict``) and reports the batch loss and gradient;
    ``state["sample_grads"]`` counts the per-sample gradients computed.

    ``lr_schedule`` (a :class:`~pinnsolve.optim.schedule.Schedule`) scales ``lr`` by
    :math:`\\sigma(k)` at iteration ``k``.
    """

    name = "adam"

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        batch_size: int | None = None,
        seed: int = 0,
        lr_schedule: Schedule | None = None,
    ) -> None:
        super().__init__()
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.seed = int(seed)
        self.lr_schedule = check_schedule(lr_schedule)
        if not lr > 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.options: dict[str, Any] = {
            "lr": float(lr),
            "betas": (float(betas[0]), float(betas[1])),
            "eps": float(eps),
            "weight_decay": float(weight_decay),
            "amsgrad": bool(amsgrad),
        }
        self._param: Tensor | None = None
        self._opt: torch.optim.Adam | None = None

    @property
    def lr(self) -> float:
        return self.options["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.options["lr"] = float(value)
        if self._opt is not None:
            self._opt.param_groups[0]["lr"] = float(value)

    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        loss, grad = objective.loss_and_grad(theta)
        self.state = {"loss": loss, "grad": grad, "cached": True, "iteration": 0}
        return StepInfo(loss=loss, grad=grad, evals=1)

    def refresh(self, objective: Objective, theta: Tensor) -> StepInfo:
        info = super().refresh(objective, theta)
        self.state["cached"] = True
        return info

    def _optimizer(self, theta: Tensor) -> tuple[Tensor, torch.optim.Adam]:
        p = self._param
        if (p is None or self._opt is None or p.shape != theta.shape or p.dtype != theta.dtype
                or p.device != theta.device):
            p = theta.detach().clone()
            self._param, self._opt = p, torch.optim.Adam([p], **self.options)
        return p, self._opt

    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        evals = 0
        st = self.state
        if self.batch_size is not None:
            f, g, n = self.batch_grad(objective, theta, self.batch_size)
            st["sample_grads"] = st.get("sample_grads", 0) + n
            evals += 1
        elif st.get("cached"):
            f, g = st["loss"], st["grad"]
        else:
            f, g = objective.loss_and_grad(theta)
            evals += 1
        if not is_finite(f, g):
            return StepInfo(loss=f, grad=g, evals=evals, failed="non_finite")

        p, opt = self._optimizer(theta)
        step_t = st.get("step")
        if isinstance(step_t, Tensor) and step_t.device.type != "cpu":
            st["step"] = step_t.cpu()  # torch keeps Adam's step count on the host
        with interrupt_guard(), torch.no_grad():
            p.copy_(theta)
            # the moments in self.state are the tensors torch updates in place
            opt.state[p] = {k: st[k] for k in _MOMENTS if k in st}
            p.grad = g
            opt.param_groups[0]["lr"] = self.step_size(st.get("iteration", 0))
            opt.step()
            p.grad = None
            for k in _MOMENTS:
                if k in opt.state[p]:
                    st[k] = opt.state[p][k]
            theta.copy_(p)
            st.update(loss=f, grad=g, cached=False, iteration=st.get("iteration", 0) + 1)
        return StepInfo(loss=f, grad=g, evals=evals)
