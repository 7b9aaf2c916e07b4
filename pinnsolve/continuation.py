"""Homotopy (parameter) continuation: solve a sequence of problems along a parameter path.

To solve a hard problem :math:`F(\\theta; \\mu^*) = 0` (here: minimize the PINN loss at
the target value :math:`\\mu^*` of a named problem parameter, e.g. a small viscosity),
solve the easy problem :math:`\\mu_0` first and follow the path
:math:`\\mu_0, \\mu_1, \\dots, \\mu_K = \\mu^*`, starting each solve from the solution of
the previous one (warm start; Allgower & Georg 1990, Ch. 1 "embedding" / natural
parameter continuation).  For Burgers, continuation in the viscosity from ``nu = 0.1``
down to ``0.01/pi`` lets the network learn the smooth solution first and sharpen the
front gradually.

The driver is the :class:`~pinnsolve.train.Trainer` itself: :func:`continuation_stages`
returns one :class:`~pinnsolve.train.Stage` per parameter value, each carrying its value
in ``Stage.parameters`` (set on the objective before the stage runs) and its share of the
budget; the parameters ``theta`` pass from stage to stage as for any multi-stage run, so
checkpoints, resume, resampling and the history all work unchanged.

Path: geometric steps :math:`\\mu_j = \\mu_0 (\\mu^*/\\mu_0)^{j/K}` (both ends positive;
equal ratios suit a viscosity, whose effect scales like :math:`1/\\mu`), or linear.
Budget: the ``K`` earlier stages share ``1 - final_share`` (default 1/2) of the time
and iteration budgets equally; the last stage (the target problem) gets
``final_share`` of the iterations and all the time that is left (earlier stages that
stop early leave it more).

Reference: E. L. Allgower and K. Georg, *Numerical Continuation Methods: An
Introduction*, Springer 1990.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .optim.base import Method, StopCriteria
from .train import Stage

__all__ = ["parameter_path", "parse_continuation", "continuation_stages", "budget_shares"]


def parse_continuation(text: str) -> tuple[str, float]:
    """``"nu:0.1"`` -> ``("nu", 0.1)`` (the value may be an expression like ``0.1/pi``)."""
    from .cli import parse_number

    name, sep, value = text.partition(":")
    if not sep or not name.strip().isidentifier() or not value.strip():
        raise ValueError(f"continuation must look like NAME:START (e.g. nu:0.1), got {text!r}")
    try:
        start = parse_number(value)
    except Exception as exc:  # argparse.ArgumentTypeError from parse_number
        raise ValueError(f"continuation start {value!r}: {exc}") from None
    return name.strip(), start


def parameter_path(start: float, target: float, steps: int,
                   spacing: str = "geometric") -> list[float]:
    """``steps + 1`` values from ``start`` to ``target`` (both included, exact ends)."""
    if int(steps) < 1:
        raise ValueError(f"continuation needs at least 1 step, got {steps}")
    steps = int(steps)
    if spacing == "geometric":
        if not (start > 0 and target > 0) and not (start < 0 and target < 0):
            raise ValueError(
                f"geometric continuation needs start and target of the same sign, "
                f"got {start:g} -> {target:g}"
            )
        ratio = target / start
        values = [start * ratio ** (j / steps) for j in range(steps + 1)]
    elif spacing == "linear":
        values = [start + (target - start) * j / steps for j in range(steps + 1)]
    else:
        raise ValueError(f"spacing must be 'geometric' or 'linear', got {spacing!r}")
    values[0], values[-1] = float(start), float(target)
    return values


def budget_shares(stages: int, final_share: float = 0.5) -> list[float]:
    """Fractions of the budget per stage: ``final_share`` for the last, the rest equally."""
    if stages == 1:
        return [1.0]
    if not 0.0 < final_share < 1.0:
        raise ValueError(f"final_share must be in (0, 1), got {final_share}")
    return [(1.0 - final_share) / (stages - 1)] * (stages - 1) + [final_share]


def continuation_stages(
    make_method: Callable[[], Method],
    name: str,
    start: float,
    target: float,
    steps: int = 4,
    stop: StopCriteria | None = None,
    max_time: float | None = None,
    final_share: float = 0.5,
    spacing: str = "geometric",
) -> list[Stage]:
    """Stages solving the problem at each value of ``name`` from ``start`` to ``target``.

    ``make_method()`` builds a fresh method per stage.  ``stop`` holds the rules of the
    whole run; ``stop.max_iter`` and ``max_time`` (the overall wall-time budget, if
    any) are split by :func:`budget_shares`.  The Trainer's own ``max_time`` still
    bounds the total.
    """
    stop = stop or StopCriteria()
    values = parameter_path(start, target, steps, spacing)
    shares = budget_shares(len(values), final_share)
    stages = []
    used = 0
    for j, (value, share) in enumerate(zip(values, shares)):
        max_iter = None if stop.max_iter is None else max(1, math.floor(stop.max_iter * share))
        if j == len(values) - 1:  # the target problem: the iterations and time left
            if stop.max_iter is not None:
                max_iter = max(1, stop.max_iter - used)
            limit = stop.max_time
        else:
            limit = None if max_time is None else max_time * share
            if stop.max_time is not None:
                capped = stop.max_time * share
                limit = capped if limit is None else min(limit, capped)
        rules = StopCriteria(stop.gtol, stop.ftol, stop.patience, max_iter, stop.max_evals,
                             limit)
        stages.append(Stage(make_method(), rules, parameters={name: value}))
        used += max_iter or 0
    return stages
