"""The Trainer: runs optimizer stages on an objective with callbacks.

A run is a list of :class:`Stage` (a method and its stopping rules, e.g. an Adam
warm-up then L-BFGS) driven by :func:`pinnsolve.optim.minimize`.  Around it the
trainer keeps

* a **history**: every iteration's loss, and every ``validate_every`` iterations the
  loss of every term, the wall time, the evaluation count and, when the problem has an
  exact solution, the relative L2 and max abs error on its evaluation grid;
* a **progress bar** (tqdm) with the loss and the current error;
* **checkpoints**: the parameters, the method's state, the counters and the history,
  written atomically to HDF5 every ``checkpoint_every`` seconds and when the run ends
  or is interrupted (Ctrl-C); :meth:`Trainer.fit` with ``resume=path`` continues from
  one exactly where it stopped (bit-for-bit for the deterministic methods);
* **adaptations**: objects that change the objective every ``every`` iterations (fresh
  collocation points, residual-based refinement, loss weights; see :class:`Adaptation`).
  After a change the method re-evaluates at the current point keeping its curvature
  history (:meth:`~pinnsolve.optim.base.Method.refresh`); each adaptation's state goes
  into the checkpoint, so a resumed run sees the same objective as the one that stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .io import load_checkpoint, save_checkpoint
from .optim.base import Callback, Method, Progress, Result, StopCriteria, minimize

__all__ = ["Adaptation", "Stage", "Trainer", "TrainResult", "relative_errors", "set_parameters"]

#: Configuration entries a resumed run may change (budgets and where it runs).
RESUMABLE_CHANGES = frozenset({"max_iter", "max_time", "device"})


class Adaptation:
    """Something that changes the objective during training, every ``every`` iterations.

    One signature for every kind (collocation points: :mod:`pinnsolve.resampling`; loss
    weights: :mod:`pinnsolve.weighting`), so they are interchangeable and combine:

    * :meth:`update` ``(objective, theta, block)`` at iterations ``block * every``,
      ``block = 1, 2, ...`` (counted over all stages), from the current ``theta``;
    * :meth:`state_dict` returns what is needed to rebuild the objective as it is now
      (tensors and numbers; empty when a seed regenerates it), stored in checkpoints;
    * :meth:`restore` ``(objective, state, block)`` rebuilds it on resume (``state`` is
      ``None`` for a fresh run, ``block`` the block the run is in).

    An update must be a deterministic function of ``(theta, block)`` and the adaptation's
    own settings (seeds), so runs are reproducible and resumes bit-for-bit.
    """

    name = "adaptation"

    def __init__(self, every: int) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every <= 0:
            raise ValueError(f"{self.name}: 'every' must be a positive integer, got {every!r}")
        self.every = every

    def update(self, objective: Any, theta: Tensor, block: int) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def restore(self, objective: Any, state: dict[str, Any] | None, block: int) -> None:
        """Default: nothing to rebuild."""


@dataclass
class Stage:
    """One optimizer run within a training: ``method`` until ``stop`` says so."""

    method: Method
    stop: StopCriteria = field(default_factory=StopCriteria)
    #: problem parameters set on the objective before the stage runs (continuation)
    parameters: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: final parameters, counters, errors, history."""

    theta: Tensor
    final_loss: float
    iterations: int
    function_evals: int
    wall_time_s: float
    stop_reason: str
    rel_l2_error: float = math.nan
    max_abs_error: float = math.nan
    history: dict[str, list[float]] = field(default_factory=dict)
    stages: list[Result] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The scalar results (the ``--json`` output)."""
        return {
            "rel_l2_error": self.rel_l2_error,
            "max_abs_error": self.max_abs_error,
            "final_loss": self.final_loss,
            "iterations": self.iterations,
            "function_evals": self.function_evals,
            "wall_time_s": self.wall_time_s,
            "stop_reason": self.stop_reason,
        }


def relative_errors(pred: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """``(||pred - exact||_2 / ||exact||_2, max |pred - exact|)`` over all entries."""
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(exact, dtype=np.float64)
    return float(np.linalg.norm(diff) / np.linalg.norm(exact)), float(np.abs(diff).max())


class Trainer:
    """Train ``objective`` through ``stages``; see the module docstring.

    Parameters
    ----------
    objective
        A compiled problem (anything with ``loss_and_grad``; validation needs
        ``problem.solution`` and ``predict``).  If it has ``metrics(theta) -> dict``
        (e.g. a classifier's accuracies), those values join every history row.
    stages
        The optimizer stages, run in order, each from where the last one stopped.
    max_time
        Overall wall-time budget in seconds across all stages (``None``: none).
    validate_every
        Iterations between history rows (term losses and errors).
    checkpoint, checkpoint_every
        Where to write checkpoints and how often (seconds); ``None`` path: only on
        interruption, to ``interrupt_path``.
    progress_bar
        Show a tqdm bar (``None``: only on a terminal).
    callbacks
        Extra callbacks ``(theta, progress, method) -> stop?`` run every iteration.
    config
        The run's configuration, stored in checkpoints and checked on resume.
    resample_every, seed
        Shorthand for ``adapt=[Resample(resample_every, seed)]``: fresh collocation
        points every ``resample_every`` iterations (counted over all stages), with seed
        ``seed + k`` for the k-th block.  Resampling keeps an optimizer from fitting the
        residual only at a fixed set of points (a loss near zero with a large error
        between the points).
    adapt
        :class:`Adaptation` objects (point strategies, loss weightings), applied in
        order; at most one may change the points.
    """

    def __init__(
        self,
        objective: Any,
        stages: list[Stage],
        *,
        max_time: float | None = None,
        validate_every: int = 100,
        checkpoint: str | Path | None = None,
        checkpoint_every: float = 60.0,
        interrupt_path: str | Path | None = None,
        progress_bar: bool | None = None,
        callbacks: list[Callback] | None = None,
        config: dict[str, Any] | None = None,
        resample_every: int | None = None,
        seed: int = 0,
        adapt: list[Adaptation] | None = None,
    ) -> None:
        if not stages:
            raise ValueError("a training needs at least one stage")
        if validate_every <= 0:
            raise ValueError(f"validate_every must be positive, got {validate_every}")
        self.objective = objective
        self.stages = stages
        self.max_time = max_time
        self.validate_every = int(validate_every)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = float(checkpoint_every)
        self.interrupt_path = Path(interrupt_path) if interrupt_path is not None else None
        self.progress_bar = progress_bar
        self.callbacks = list(callbacks or [])
        self.config = dict(config or {})
        if resample_every is not None and resample_every <= 0:
            raise ValueError(f"resample_every must be positive, got {resample_every}")
        if resample_every and not hasattr(objective, "resample"):
            raise ValueError("resampling needs an objective with collocation points")
        self.resample_every = resample_every
        self.seed = int(seed)
        self.adapt = list(adapt or [])
        if resample_every:
            from .resampling import Resample

            self.adapt.insert(0, Resample(int(resample_every), seed=self.seed))
        for a in self.adapt:
            if not isinstance(a, Adaptation):
                raise TypeError(f"adapt entries must be Adaptation objects, got {a!r}")
        movers = [a.name for a in self.adapt if getattr(a, "moves_points", False)]
        if len(movers) > 1:
            raise ValueError(f"at most one point strategy per run, got {', '.join(movers)}")
        self.history: dict[str, list[float]] = {}
        self._reference = self._exact_on_grid()

    # -- validation --------------------------------------------------------------------

    def _exact_on_grid(self) -> tuple[np.ndarray, np.ndarray] | None:
        problem = getattr(self.objective, "problem", None)
        if problem is None or problem.solution is None:
            return None
        points = problem.evaluation_grid()
        return points, np.asarray(problem.solution(points)).reshape(points.shape[0], -1)

    def _restore(self, iteration: int, states: list[Any] | None) -> None:
        """Rebuild every adaptation's objective changes for the block ``iteration`` is in."""
        for i, a in enumerate(self.adapt):
            state = states[i] if states is not None and i < len(states) else None
            a.restore(self.objective, state, iteration // a.every)

    def _adapt(self, theta: Tensor, iteration: int) -> bool:
        """Run the adaptations due at ``iteration``; True if any ran."""
        due = [a for a in self.adapt if iteration > 0 and iteration % a.every == 0]
        for a in due:
            a.update(self.objective, theta, iteration // a.every)
        return bool(due)

    def errors(self, theta: Tensor) -> tuple[float, float]:
        """Relative L2 and max abs error against the exact solution (NaN if unknown)."""
        if self._reference is None:
            return math.nan, math.nan
        points, exact = self._reference
        return relative_errors(self.objective.predict(theta, points), exact)

    def _record(self, theta: Tensor, stage: int, p: Progress, offset: tuple[int, int, float]):
        row: dict[str, float] = {
            "stage": stage,
            "iteration": offset[0] + p.iteration,
            "function_evals": offset[1] + p.function_evals,
            "time": offset[2] + p.elapsed,
            "loss": p.loss,
        }
        if hasattr(self.objective, "term_losses"):
            for name, value in self.objective.term_losses(theta).items():
                row[f"loss_{name}"] = value
        row["rel_l2_error"], row["max_abs_error"] = self.errors(theta)
        if hasattr(self.objective, "metrics"):  # e.g. accuracies of a classifier
            row.update(self.objective.metrics(theta))
        for k, v in row.items():
            self.history.setdefault(k, []).append(float(v))
        return row

    # -- checkpoints -------------------------------------------------------------------

    def _state(self, theta: Tensor, stage: int, p: Progress, done: list[Result]) -> dict:
        return {
            "config": self.config,
            "theta": theta.detach().clone(),
            "stage": stage,
            "method": self.stages[stage].method.name,
            "method_state": self.stages[stage].method.state_dict(),
            "progress": {
                "iteration": p.iteration,
                "function_evals": p.function_evals,
                "elapsed": p.elapsed,
                "loss": p.loss,
                "grad_norm": p.grad_norm,
                "loss_history": list(p.loss_history),
            },
            "finished": [_result_dict(r) for r in done],
            "history": self.history,
            "adapt": [a.state_dict() for a in self.adapt],
        }

    def save(self, path: Path, theta: Tensor, stage: int, p: Progress, done: list[Result]):
        """Write the checkpoint: ``path`` on rank 0 and, for a method whose state is split
        across ranks (``method.per_rank_state``, e.g. mL-BFGS's block-wise history),
        ``FILE.rankK.h5`` next to it on every rank ``K > 0`` (each file atomically, each
        rank's full checkpoint with its own method state); other ranks write nothing."""
        from .distributed import rank, rank_path, world_size

        state = self._state(theta, stage, p, done)
        if getattr(self.stages[stage].method, "per_rank_state", False):
            state["rank_files"] = world_size()
            if rank() > 0:
                path = rank_path(path, rank())
        elif rank() > 0:
            return
        save_checkpoint(path, state)

    # -- the run -----------------------------------------------------------------------

    def fit(self, theta: Tensor | None = None, resume: str | Path | None = None) -> TrainResult:
        """Run the stages from ``theta`` (default: the model's parameters) or a checkpoint."""
        obj = self.objective
        if theta is None:
            theta = obj.initial_theta()
        theta = theta.detach().clone()
        first, progress, done = 0, None, []
        if resume is not None:
            first, progress, done, states = self._resume(Path(resume), theta)
            self._restore(sum(r.iterations for r in done) + progress.iteration, states)
        else:
            self._restore(0, None)
        bar = tqdm(
            total=None,
            disable=(not self.progress_bar) if self.progress_bar is not None else None,
            unit="it",
            dynamic_ncols=True,
        )
        last_save = time.perf_counter()
        reason = "max_iter"
        try:
            for index in range(first, len(self.stages)):
                stage = self.stages[index]
                offset = (
                    sum(r.iterations for r in done),
                    sum(r.function_evals for r in done),
                    sum(r.wall_time_s for r in done),
                )
                stop = _with_budget(stage.stop, self.max_time, offset[2])
                bar.set_description(stage.method.name)
                if stage.parameters:
                    set_parameters(obj, stage.parameters)

                def every(th: Tensor, p: Progress, method: Method, index=index, offset=offset):
                    nonlocal last_save
                    bar.update(1)
                    if p.iteration % self.validate_every == 0:
                        row = self._record(th, index, p, offset)
                        bar.set_postfix(_postfix(p.loss, row))
                    total = offset[0] + p.iteration
                    if self._adapt(th, total):
                        info = method.refresh(obj, th)
                        p.function_evals += info.evals
                        p.loss, p.grad_norm = float(info.loss), float(info.grad.abs().max())
                    now = time.perf_counter()
                    due = bool(self.checkpoint) and now - last_save >= self.checkpoint_every
                    agree = getattr(obj, "agree_checkpoint", None)  # across ranks
                    if agree is not None:
                        due = agree(due)
                    if due:
                        self.save(self.checkpoint, th, index, p, done)
                        last_save = now
                    return any(cb(th, p, method) for cb in self.callbacks)

                p = progress if index == first and progress is not None else Progress()
                result = minimize(obj, theta, stage.method, stop, [every], progress=p)
                reason = result.stop_reason
                if reason == "interrupted":
                    path = self.checkpoint or self.interrupt_path
                    if path is not None:
                        self.save(path, theta, index, p, done)
                        bar.write(f"interrupted: checkpoint saved to {path}")
                    done.append(result)
                    break
                done.append(result)
                if _out_of_time(self.max_time, sum(r.wall_time_s for r in done)):
                    break
                progress = None
        finally:
            bar.close()
        final = done[-1]
        if reason != "interrupted" and self.checkpoint is not None:
            p = Progress(final.iterations, final.function_evals, final.wall_time_s, final.loss,
                         final.grad_norm, final.loss_history)
            self.save(self.checkpoint, theta, len(done) - 1, p, done[:-1])
        offset = (
            sum(r.iterations for r in done[:-1]),
            sum(r.function_evals for r in done[:-1]),
            sum(r.wall_time_s for r in done[:-1]),
        )
        if self.history.get("iteration", [None])[-1] == offset[0] + final.iterations:
            row = {k: v[-1] for k, v in self.history.items()}  # this iteration has its row
        else:
            row = self._record(theta, len(done) - 1, _progress_of(final), offset)
        return TrainResult(
            theta=theta,
            final_loss=final.loss,
            iterations=sum(r.iterations for r in done),
            function_evals=sum(r.function_evals for r in done),
            wall_time_s=sum(r.wall_time_s for r in done),
            stop_reason=reason,
            rel_l2_error=row["rel_l2_error"],
            max_abs_error=row["max_abs_error"],
            history=self.history,
            stages=done,
        )

    def _resume(self, path: Path, theta: Tensor) -> tuple[int, Progress, list[Result], Any]:
        state = load_checkpoint(path, device=theta.device)
        state = _rank_checkpoint(path, state, theta.device)
        for key in sorted(set(state["config"]) | set(self.config)):
            if key in RESUMABLE_CHANGES:
                continue
            a, b = state["config"].get(key), self.config.get(key)
            if a is not None and b is not None and a != b:
                raise ValueError(f"checkpoint {path} was made with {key}={a!r}, not {b!r}")
        saved = state.get("theta")
        if saved is None or saved.shape != theta.shape:
            raise ValueError(
                f"checkpoint {path} holds {None if saved is None else tuple(saved.shape)} "
                f"parameters; this run has {tuple(theta.shape)}"
            )
        stage = int(state["stage"])
        if stage >= len(self.stages):
            raise ValueError(
                f"checkpoint {path} is in stage {stage + 1}; this run has only "
                f"{len(self.stages)} stage(s)"
            )
        method = self.stages[stage].method
        if state["method"] != method.name:
            raise ValueError(
                f"checkpoint {path} is at a {state['method']!r} stage; this run's stage "
                f"{stage} is {method.name!r}"
            )
        theta.copy_(saved.to(theta.dtype))
        method.load_state_dict(state["method_state"])
        pr = state["progress"]
        progress = Progress(
            int(pr["iteration"]), int(pr["function_evals"]), float(pr["elapsed"]),
            float(pr["loss"]), float(pr["grad_norm"]), [float(x) for x in pr["loss_history"]],
        )
        self.history = {k: [float(x) for x in v] for k, v in state["history"].items()}
        done = [Result(theta=theta, **r) for r in state["finished"]]
        return stage, progress, done, state.get("adapt")


def _rank_checkpoint(path: Path, state: dict[str, Any], device: torch.device) -> dict:
    """This rank's checkpoint: ``state`` (rank 0's, from ``path``) or, when the method's
    state was split across ranks, ``FILE.rankK.h5``, checked against rank 0's."""
    from .distributed import rank, rank_path, world_size

    saved_world = int(state.get("rank_files", 1))
    if saved_world == 1:
        return state
    if saved_world != world_size():
        raise ValueError(
            f"checkpoint {path} holds a {state['method']!r} state split across "
            f"{saved_world} ranks (files {path} and {rank_path(path, 1).name}, ...); "
            f"resume it on {saved_world} ranks, not {world_size()}")
    if rank() == 0:
        return state
    own = rank_path(path, rank())
    if not own.is_file():
        raise ValueError(f"checkpoint {path} needs its rank file {own}, which is missing")
    mine = load_checkpoint(own, device=device)
    where = ("stage", "method")
    if any(mine.get(k) != state.get(k) for k in where) or (
        mine["progress"]["iteration"] != state["progress"]["iteration"]
    ):
        raise ValueError(
            f"checkpoint files {path} and {own} are from different iterations "
            f"({state['progress']['iteration']} and {mine['progress']['iteration']}); "
            f"they were not written together")
    return mine


def set_parameters(objective: Any, values: dict[str, float]) -> None:
    """Set named problem parameters (``objective.parameters``), checking the names."""
    params = getattr(objective, "parameters", None)
    if not isinstance(params, dict):
        raise ValueError("this objective has no named problem parameters to set")
    unknown = sorted(set(values) - set(params))
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise ValueError(f"unknown problem parameter(s) {', '.join(unknown)}; known: {known}")
    params.update({k: float(v) for k, v in values.items()})


def _result_dict(r: Result) -> dict[str, Any]:
    return {
        "loss": r.loss,
        "grad_norm": r.grad_norm,
        "iterations": r.iterations,
        "function_evals": r.function_evals,
        "wall_time_s": r.wall_time_s,
        "stop_reason": r.stop_reason,
        "loss_history": list(r.loss_history),
    }


def _postfix(loss: float, row: dict[str, float]) -> dict[str, str]:
    """Progress-bar fields: the loss, the error if known, else an accuracy if there is one."""
    out = {"loss": f"{loss:.3e}"}
    if math.isfinite(row["rel_l2_error"]) or "test_accuracy" not in row:
        out["err"] = f"{row['rel_l2_error']:.2e}"
    else:
        out["test_acc"] = f"{row['test_accuracy']:.2f}%"
    return out


def _progress_of(r: Result) -> Progress:
    return Progress(r.iterations, r.function_evals, r.wall_time_s, r.loss, r.grad_norm)


def _out_of_time(budget: float | None, spent: float) -> bool:
    return budget is not None and spent >= budget


def _with_budget(stop: StopCriteria, budget: float | None, spent: float) -> StopCriteria:
    if budget is None:
        return stop
    left = max(budget - spent, 0.0)
    limit = left if stop.max_time is None else min(stop.max_time, left)
    return StopCriteria(stop.gtol, stop.ftol, stop.patience, stop.max_iter, stop.max_evals, limit)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
