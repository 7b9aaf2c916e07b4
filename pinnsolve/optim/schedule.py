"""Learning-rate schedules for the step-size methods (sgd, adam, slbfgs, mlbfgs, gd with lr).

A schedule is a factor :math:`\\sigma(k)` applied to a method's base step size: iteration
``k`` (0-based: the ``k``-th call of ``step`` since the method started) uses

.. math::  \\eta_k = \\eta\\, \\sigma(k), \\qquad \\sigma(0) = 1 ,

with every schedule defined by one horizon ``T`` (``decay_steps``), so a single number
fits them all (the CLI's ``--lr-decay-steps``, by default the iteration limit):

* ``constant``: :math:`\\sigma(k) = 1`;
* ``step``: :math:`\\sigma(k) = \\gamma^{j}`, :math:`j` the number of milestones
  :math:`\\lceil T/2 \\rceil, \\lceil 3T/4 \\rceil` passed (:math:`\\gamma = 0.1`, the
  classic multi-step decay at one half and three quarters of training);
* ``exponential``: :math:`\\sigma(k) = \\gamma^{\\min(k, T)/T}` (:math:`\\gamma = 0.01`:
  the step falls smoothly to 1 % at ``T``);
* ``cosine``: :math:`\\sigma(k) = \\sigma_\\infty + (1 - \\sigma_\\infty)\\,
  \\tfrac12\\big(1 + \\cos(\\pi \\min(k, T)/T)\\big)` (Loshchilov & Hutter, "SGDR",
  ICLR 2017, without restarts; :math:`\\sigma_\\infty` = ``final``, default 0);
* ``linear``: :math:`\\sigma(k) = 1 - (1 - \\sigma_\\infty) \\min(k, T)/T`.

After ``T`` the factor stays at its last value (``cosine``/``linear``: :math:`\\sigma_\\infty`).
A method takes a schedule through its ``lr_schedule`` option (:class:`ScheduledStep`
mixin); because the factor depends only on the method's own iteration counter, which
is part of its state, a resumed run continues the schedule exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["SCHEDULES", "Schedule", "ScheduledStep", "check_schedule", "make_schedule"]

#: The schedule names (see the module docstring).
SCHEDULES = ("constant", "step", "exponential", "cosine", "linear")

_DEFAULT_GAMMA = {"step": 0.1, "exponential": 0.01}


@dataclass(frozen=True)
class Schedule:
    """The factor :math:`\\sigma(k)` of schedule ``name`` with horizon ``decay_steps``.

    Build one with :func:`make_schedule`; calling it with an iteration ``k >= 0``
    returns the factor (a float in ``(0, 1]``, or ``[final, 1]``).
    """

    name: str
    decay_steps: int
    gamma: float
    final: float = 0.0

    def __call__(self, k: int) -> float:
        if k < 0:
            raise ValueError(f"iteration must be >= 0, got {k}")
        T = self.decay_steps
        frac = min(k, T) / T
        if self.name == "constant":
            return 1.0
        if self.name == "step":
            passed = (k >= math.ceil(T / 2)) + (k >= math.ceil(3 * T / 4))
            return self.gamma ** passed
        if self.name == "exponential":
            return self.gamma ** frac
        if self.name == "cosine":
            return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * frac))
        return 1.0 - (1.0 - self.final) * frac  # linear

    def describe(self) -> str:
        """A short text for reports, e.g. ``"cosine over 5000 iterations"``."""
        if self.name == "constant":
            return "constant"
        extra = {"step": f", x{self.gamma:g} at 1/2 and 3/4",
                 "exponential": f", to x{self.gamma:g}"}.get(self.name, "")
        if self.name in ("cosine", "linear") and self.final:
            extra = f", to x{self.final:g}"
        return f"{self.name} over {self.decay_steps} iterations{extra}"


def make_schedule(name: str, decay_steps: int, *, gamma: float | None = None,
                  final: float = 0.0) -> Schedule:
    """A :class:`Schedule` by name (one of :data:`SCHEDULES`) and horizon ``decay_steps``.

    ``gamma``: the decay factor of ``step`` (per milestone, default 0.1) and
    ``exponential`` (at ``T``, default 0.01); ``final``: the end factor of ``cosine`` and
    ``linear`` (default 0).  Raises ``ValueError`` naming a bad name or value.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; choose from: "
                         f"{', '.join(SCHEDULES)}")
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps < 1:
        raise ValueError(f"decay_steps must be a positive integer, got {decay_steps!r}")
    g = _DEFAULT_GAMMA.get(name, 1.0) if gamma is None else float(gamma)
    if not 0.0 < g <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    if not 0.0 <= final <= 1.0:
        raise ValueError(f"final must be in [0, 1], got {final!r}")
    return Schedule(name, decay_steps, g, float(final))


def check_schedule(value: Any) -> Schedule | None:
    """Validate a method's ``lr_schedule`` option: ``None`` or a :class:`Schedule`."""
    if value is None or isinstance(value, Schedule):
        return value
    raise TypeError(f"lr_schedule must be a Schedule (see make_schedule) or None, got "
                    f"{value!r}")


class ScheduledStep:
    """Mixin of the step-size methods: ``lr`` times the ``lr_schedule`` factor.

    The method keeps its base step in ``lr`` (which the ``torch.optim`` facade may
    change) and its iteration counter in ``state["iteration"]``.
    """

    lr: float
    lr_schedule: Schedule | None = None

    def step_size(self, iteration: int) -> float:
        """:math:`\\eta_k = \\eta\\, \\sigma(k)` for iteration ``k`` (0-based)."""
        if self.lr_schedule is None:
            return self.lr
        return self.lr * self.lr_schedule(int(iteration))
