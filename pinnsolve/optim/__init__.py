"""The optimization engine: methods on one flat parameter vector, and the loop driving them.

* :func:`minimize` runs any :class:`Method` on an :class:`Objective` under
  :class:`StopCriteria` (see :mod:`pinnsolve.optim.base`).
* Methods: :class:`LBFGS` (``"lbfgs"``), :class:`BFGS` (``"bfgs"``), :class:`SSBFGS`
  (``"ssbfgs"``), :class:`SSBroyden2` (``"ssbroyden"``, ``"ssbroyden2"``),
  :class:`SSBroyden1` (``"ssbroyden1"``), :class:`GradientDescent` (``"gd"``),
  :class:`Adam` (``"adam"``); nonlinear CG (``"ncg-fr"``, ``"ncg-pr"``, ``"ncg-hs"``,
  ``"ncg-dy"``); Hessian-free Newton :class:`NewtonCG`, :class:`NewtonCR`
  (``"newton-cg"``, ``"newton-cr"``); :class:`Levenberg`, :class:`LevenbergMarquardt`
  (``"levenberg"``, ``"lm"``); limited-memory :class:`LDFP`, :class:`LSR1`,
  :class:`LBroyden` (``"ldfp"``, ``"lsr1"``, ``"lbroyden"``); build one by name with
  :func:`make_method`.
* Stochastic (mini-batch) methods on a :class:`StochasticObjective`: :class:`SGD`
  (``"sgd"``), :class:`SLBFGS` (``"slbfgs"``), :class:`MLBFGS` (``"mlbfgs"``), and
  :class:`Adam` with ``batch_size``.
* Learning-rate schedules of the step-size methods (``lr_schedule=``):
  :func:`make_schedule` (:data:`SCHEDULES`: constant, step, exponential, cosine, linear).
* Line searches: :func:`strong_wolfe`, :func:`armijo` (:data:`LINE_SEARCHES`).
* ``torch.optim`` facades: :class:`LBFGSOptimizer`, :class:`GDOptimizer`,
  :class:`MethodOptimizer`.
"""

from __future__ import annotations

from typing import Any

from .adam import Adam
from .base import (
    STOP_REASONS,
    Callback,
    Method,
    Objective,
    Progress,
    Result,
    StepInfo,
    StochasticObjective,
    StopCriteria,
    interrupt_guard,
    minimize,
)
from .bfgs import BFGS, SSBFGS
from .broyden import SSBroyden, SSBroyden1, SSBroyden2
from .gd import GradientDescent
from .lbfgs import LBFGS
from .levenberg import Levenberg, LevenbergMarquardt
from .limited_memory import LDFP, LSR1, LBroyden
from .linesearch import LINE_SEARCHES, LineSearchResult, armijo, strong_wolfe
from .mlbfgs import MLBFGS
from .ncg import (
    NCGDaiYuan,
    NCGFletcherReeves,
    NCGHestenesStiefel,
    NCGPolakRibiere,
    NonlinearCG,
)
from .newton import NewtonCG, NewtonCR
from .schedule import SCHEDULES, Schedule, make_schedule
from .sgd import SGD
from .slbfgs import SLBFGS
from .torch_optim import GDOptimizer, LBFGSOptimizer, MethodOptimizer, SLBFGSOptimizer

__all__ = [
    "Objective",
    "Method",
    "StepInfo",
    "StopCriteria",
    "Result",
    "Progress",
    "Callback",
    "STOP_REASONS",
    "minimize",
    "interrupt_guard",
    "LBFGS",
    "BFGS",
    "SSBFGS",
    "SSBroyden",
    "SSBroyden1",
    "SSBroyden2",
    "GradientDescent",
    "NonlinearCG",
    "Adam",
    "StochasticObjective",
    "SGD",
    "SLBFGS",
    "MLBFGS",
    "NewtonCG",
    "NewtonCR",
    "Levenberg",
    "LevenbergMarquardt",
    "LDFP",
    "LSR1",
    "LBroyden",
    "strong_wolfe",
    "armijo",
    "LineSearchResult",
    "LINE_SEARCHES",
    "MethodOptimizer",
    "LBFGSOptimizer",
    "GDOptimizer",
    "SLBFGSOptimizer",
    "METHODS",
    "make_method",
    "Schedule",
    "SCHEDULES",
    "make_schedule",
]

#: The methods by name (other modules register more here).
METHODS: dict[str, type[Method]] = {
    "lbfgs": LBFGS,
    "bfgs": BFGS,
    "ssbfgs": SSBFGS,
    "ssbroyden": SSBroyden2,
    "ssbroyden1": SSBroyden1,
    "ssbroyden2": SSBroyden2,
    "ncg-fr": NCGFletcherReeves,
    "ncg-pr": NCGPolakRibiere,
    "ncg-hs": NCGHestenesStiefel,
    "ncg-dy": NCGDaiYuan,
    "gd": GradientDescent,
    "adam": Adam,
    "sgd": SGD,
    "slbfgs": SLBFGS,
    "mlbfgs": MLBFGS,
    "newton-cg": NewtonCG,
    "newton-cr": NewtonCR,
    "levenberg": Levenberg,
    "lm": LevenbergMarquardt,
    "ldfp": LDFP,
    "lsr1": LSR1,
    "lbroyden": LBroyden,
}


def make_method(name: str, **options: Any) -> Method:
    """A new method by its registry name, e.g. ``make_method("lbfgs", history=20)``.

    Raises ``ValueError`` for an unknown name (listing the known ones) and
    ``TypeError`` for an option the method does not take.
    """
    try:
        cls = METHODS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(METHODS))
        raise ValueError(f"unknown optimizer {name!r}; choose from: {known}") from None
    return cls(**options)
