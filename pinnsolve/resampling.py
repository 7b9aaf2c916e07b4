"""Collocation point strategies: uniform resampling, RAR and RAD, as Trainer adaptations.

Each strategy is an :class:`~pinnsolve.train.Adaptation`: every ``every`` iterations the
Trainer calls ``update(objective, theta, block)`` and the optimizer re-evaluates at the
current point on the new points.  They are interchangeable (``Trainer(..., adapt=[RAD(100)])``)
and act on the PDE-residual terms (:meth:`PINNObjective.pde_terms`); the other terms are
redrawn uniformly by :class:`Resample` and :class:`RAD`, and kept by :class:`RAR`.

:class:`Resample`
    fresh points for every term at block ``k`` from the seed ``seed + k``: regenerated on
    resume from the seed alone (nothing stored).
:class:`RAR` (residual-based adaptive refinement; Lu et al. 2021, Wu et al. 2023 "RAR-G")
    evaluate the residual on ``candidates`` random points and *add* the ``add`` points
    with the largest ``|r|`` to the PDE term; the points added so far are stored in the
    checkpoint, the base set is regenerated from ``seed``.
:class:`RAD` (residual-based adaptive distribution; Wu et al. 2023)
    *redraw* the PDE points from a dense random candidate set ``S`` with probability

    .. math::  p(z) \\propto \\frac{|r(z)|^k}{\\operatorname{mean}_{S} |r|^k} + c,

    without replacement (``k = 1, c = 1`` is the paper's robust default; ``c -> inf`` is
    uniform resampling, ``c = 0`` follows the residual only); the drawn points are stored
    in the checkpoint.

For a system, ``|r|`` is the Euclidean norm of the residual components at a point.

Reference: C. Wu, M. Zhu, Q. Tan, Y. Kartha, L. Lu, "A comprehensive study of non-adaptive
and residual-based adaptive sampling for physics-informed neural networks", CMAME 403
(2023) 115671.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .train import Adaptation

__all__ = ["Resample", "RAR", "RAD", "STRATEGIES", "residual_magnitude"]

_TAG = 7919  # mixed into candidate seeds so they differ from the training points' streams


def residual_magnitude(r: Tensor) -> Tensor:
    """``|r|`` per point: absolute value of an ``(n,)`` residual, row norm of ``(n, k)``."""
    return r.abs() if r.ndim == 1 else r.norm(dim=1)


def _check_objective(objective: Any, name: str) -> None:
    if not hasattr(objective, "pde_terms") or not objective.pde_terms():
        raise ValueError(f"{name} needs an objective with a PDE residual term")


class Resample(Adaptation):
    """Fresh points for every term every ``every`` iterations: block ``k`` uses ``seed + k``
    (block 0 keeps the points the objective was compiled with)."""

    name = "resample"
    moves_points = True

    def __init__(self, every: int, seed: int = 0) -> None:
        super().__init__(every)
        self.seed = int(seed)

    def update(self, objective: Any, theta: Tensor, block: int) -> None:
        objective.resample(self.seed + block)

    def restore(self, objective: Any, state: dict[str, Any] | None, block: int) -> None:
        if block > 0:
            objective.resample(self.seed + block)


class RAR(Adaptation):
    """Residual-based adaptive refinement: every ``every`` iterations add the ``add``
    candidates (out of ``candidates`` uniform random interior points) with the largest
    ``|r|`` to each PDE term.  The base points are those of ``objective.resample(seed)``.
    """

    name = "rar"
    moves_points = True

    def __init__(self, every: int, add: int = 10, candidates: int = 10000, seed: int = 0):
        super().__init__(every)
        for label, v in (("add", add), ("candidates", candidates)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"rar: {label} must be a positive integer, got {v!r}")
        if add > candidates:
            raise ValueError(f"rar: cannot add {add} of only {candidates} candidates")
        self.add, self.candidates, self.seed = add, candidates, int(seed)
        self.added: dict[str, Tensor] = {}
        self._base: dict[str, Tensor] = {}

    def _apply(self, objective: Any) -> None:
        for name, base in self._base.items():
            extra = self.added.get(name)
            pts = base if extra is None or extra.shape[0] == 0 else torch.cat([base, extra])
            objective.set_points(name, pts)

    def restore(self, objective: Any, state: dict[str, Any] | None, block: int) -> None:
        _check_objective(objective, "RAR")
        objective.resample(self.seed)
        self._base = {n: objective.points(n) for n in objective.pde_terms()}
        added = (state or {}).get("added", {})
        self.added = {n: added[n].to(self._base[n]) for n in self._base if n in added}
        self._apply(objective)

    def update(self, objective: Any, theta: Tensor, block: int) -> None:
        rng = np.random.default_rng([self.seed, block, _TAG])
        cand = objective.problem.domain.interior(self.candidates, "uniform", rng)
        for name in self._base:
            mag = residual_magnitude(objective.pointwise_residual(theta, name, cand))
            top = torch.topk(mag, self.add).indices.sort().values.cpu().numpy()
            new = torch.as_tensor(cand[top], dtype=self._base[name].dtype,
                                  device=self._base[name].device)
            old = self.added.get(name)
            self.added[name] = new if old is None else torch.cat([old, new])
        self._apply(objective)

    def state_dict(self) -> dict[str, Any]:
        return {"added": {n: t.detach().clone() for n, t in self.added.items()}}


class RAD(Adaptation):
    """Residual-based adaptive distribution: every ``every`` iterations redraw each PDE
    term's ``n`` points from ``candidates`` uniform random points (default ``10 n``) with
    probability ``|r|^k / mean|r|^k + c`` (normalised), without replacement; the other
    terms get fresh uniform points from ``seed + block`` as with :class:`Resample`."""

    name = "rad"
    moves_points = True

    def __init__(
        self, every: int, k: float = 1.0, c: float = 1.0, candidates: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(every)
        if not (np.isfinite(k) and k >= 0):
            raise ValueError(f"rad: the exponent k must be >= 0, got {k!r}")
        if not (np.isfinite(c) and c >= 0):
            raise ValueError(f"rad: the constant c must be >= 0, got {c!r}")
        if candidates is not None and (not isinstance(candidates, int) or candidates <= 0):
            raise ValueError(f"rad: candidates must be a positive integer, got {candidates!r}")
        self.k, self.c, self.candidates, self.seed = float(k), float(c), candidates, int(seed)
        self.points: dict[str, Tensor] = {}

    def density(self, r: Tensor) -> np.ndarray:
        """The normalised sampling probabilities for residuals ``r`` on the candidates."""
        e = residual_magnitude(r).double().pow(self.k)
        mean = e.mean()
        p = (e / mean if mean > 0 else torch.zeros_like(e)) + self.c
        if not bool(torch.isfinite(p).all()) or float(p.sum()) <= 0:
            p = torch.ones_like(e)  # degenerate residual: uniform
        p = p.cpu().numpy()
        return p / p.sum()

    def update(self, objective: Any, theta: Tensor, block: int) -> None:
        _check_objective(objective, "RAD")
        objective.resample(self.seed + block)
        rng = np.random.default_rng([self.seed, block, _TAG])
        for name in objective.pde_terms():
            n = objective.points(name).shape[0]
            m = max(self.candidates or 10 * n, n)
            cand = objective.problem.domain.interior(m, "uniform", rng)
            p = self.density(objective.pointwise_residual(theta, name, cand))
            if np.count_nonzero(p) < n:  # c = 0 and too few points with a residual
                p = (p + 1.0 / m) / (p + 1.0 / m).sum()
            idx = np.sort(rng.choice(m, size=n, replace=False, p=p))
            objective.set_points(name, cand[idx])
            self.points[name] = objective.points(name)

    def restore(self, objective: Any, state: dict[str, Any] | None, block: int) -> None:
        self.points = {}
        if block == 0:
            return
        objective.resample(self.seed + block)
        for name, pts in (state or {}).get("points", {}).items():
            objective.set_points(name, pts)
            self.points[name] = objective.points(name)

    def state_dict(self) -> dict[str, Any]:
        return {"points": {n: t.detach().clone() for n, t in self.points.items()}}


#: Point strategies by name (``--adaptive`` on the command line; ``uniform`` = Resample).
STRATEGIES: dict[str, type[Adaptation]] = {"uniform": Resample, "rar": RAR, "rad": RAD}
