"""Loss weighting schemes: fixed weights and learning-rate annealing, as Trainer adaptations.

The PINN loss is :math:`L = \\sum_k \\lambda_k L_k` (``objective.weights``, by term name,
:math:`L_k` the mean squared residual of term ``k``).  A weighting scheme owns the
:math:`\\lambda_k`; like the point strategies of :mod:`pinnsolve.resampling` it is an
:class:`~pinnsolve.train.Adaptation` with one signature, so schemes are interchangeable
(``Trainer(..., adapt=[Annealing(every=100)])``), their state (the current weights) goes
into checkpoints, and the optimizer re-evaluates at the current point after each change.
The design follows the loss aggregators of PhysicsNeMo-Sym.

:class:`FixedWeights`
    constant :math:`\\lambda_k` set when training starts.
:class:`Annealing` (learning-rate annealing; Wang, Teng & Perdikaris 2021, Eqs. 40-41)
    every ``every`` iterations, for every term ``k`` that is not a PDE residual,

    .. math::  \\hat\\lambda_k = \\frac{\\max_\\theta |\\nabla_\\theta L_r|}
                                     {\\operatorname{mean}_\\theta |\\nabla_\\theta L_k|},
               \\qquad \\lambda_k \\leftarrow (1 - \\alpha) \\lambda_k + \\alpha \\hat\\lambda_k,

    where :math:`L_r = \\sum_{j \\in \\mathrm{PDE}} \\lambda_j L_j` (the PDE weights stay
    fixed).  It balances the gradient magnitudes of the terms, so a boundary term whose
    gradient is swamped by the residual's gets a larger weight.

Reference: S. Wang, Y. Teng, P. Perdikaris, "Understanding and mitigating gradient flow
pathologies in physics-informed neural networks", SIAM J. Sci. Comput. 43 (2021) A3055.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .train import Adaptation

__all__ = ["FixedWeights", "Annealing", "WEIGHTINGS"]


def _check_names(objective: Any, names: Any, who: str) -> None:
    unknown = [n for n in names if n not in objective.weights]
    if unknown:
        raise ValueError(
            f"{who}: no term named {', '.join(map(repr, unknown))}; terms: "
            f"{', '.join(objective.weights)}"
        )


class FixedWeights(Adaptation):
    """Constant weights ``{term name: lambda}`` (terms not named keep theirs), set at the
    start of training; never updated."""

    name = "fixed"

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        super().__init__(2**62)  # never due
        self.weights = {}
        for k, w in (weights or {}).items():
            if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
                raise ValueError(f"weight of {k!r} must be a finite number >= 0, got {w!r}")
            self.weights[k] = float(w)

    def update(self, objective: Any, theta: Tensor, block: int) -> None:
        pass

    def restore(self, objective: Any, state: dict[str, Any] | None, block: int) -> None:
        _check_names(objective, self.weights, "weights")
        objective.weights.update(self.weights)


class Annealing(Adaptation):
    """Learning-rate annealing of the non-PDE term weights (see the module docstring):
    every ``every`` iterations, ``lambda_k <- (1 - alpha) lambda_k + alpha lambda_hat_k``."""

    name = "annealing"

    def __init__(self, every: int = 100, alpha: float = 0.1) -> None:
        super().__init__(every)
        if not (isinstance(alpha, int | float) and 0 < alpha <= 1):
            raise ValueError(f"annealing: alpha must be in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self._initial: dict[str, float] | None = None
        self._weights: dict[str, float] = {}  # the objective's (live) weights

    def restore(self, objective: Any, state: dict[str, Any] | None, block: int) -> None:
        if not getattr(objective, "pde_terms", list)():
            raise ValueError("annealing needs an objective with a PDE residual term")
        if self._initial is None:
            self._initial = dict(objective.weights)
        self._weights = objective.weights
        saved = (state or {}).get("weights")
        objective.weights.update(self._initial if not saved else
                                 {k: float(v) for k, v in saved.items()})

    def estimates(self, objective: Any, theta: Tensor) -> dict[str, float]:
        """The instantaneous ratios ``lambda_hat_k`` at ``theta``."""
        grads = objective.term_gradients(theta)
        pde = objective.pde_terms()
        ref = sum(objective.weights[n] * grads[n] for n in pde)
        top = float(torch.as_tensor(ref).abs().max())
        out = {}
        for name, g in grads.items():
            if name in pde:
                continue
            mean = float(g.abs().mean())
            if mean > 0 and math.isfinite(mean) and math.isfinite(top):
                out[name] = top / mean
        return out

    def update(self, objective: Any, theta: Tensor, block: int) -> None:
        for name, hat in self.estimates(objective, theta).items():
            w = objective.weights[name]
            objective.weights[name] = (1 - self.alpha) * w + self.alpha * hat

    def state_dict(self) -> dict[str, Any]:
        return {"weights": dict(self._weights)} if self._weights else {}


#: Weighting schemes by name (``--weighting`` on the command line).
WEIGHTINGS: dict[str, type[Adaptation]] = {"fixed": FixedWeights, "annealing": Annealing}
