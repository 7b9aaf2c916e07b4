"""The engine's contract: what an objective offers, what a method does, and the one loop.

Every optimizer in :mod:`pinnsolve.optim` works on a single flat parameter vector
``theta`` (a 1-D tensor carrying the device and dtype of the run) and talks to the
problem only through an :class:`Objective`.  A method implements one iteration in
:meth:`Method.step`; :func:`minimize` is the single loop that drives any method,
checks the stopping rules, calls the callbacks and reports why it stopped.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Objective",
    "StochasticObjective",
    "batch_loss_and_grad_many",
    "batch_loss_and_grad_each",
    "Method",
    "StepInfo",
    "StopCriteria",
    "Result",
    "Progress",
    "Callback",
    "minimize",
    "interrupt_guard",
    "STOP_REASONS",
]

#: Every reason a run can end with, as reported in ``Result.stop_reason``.
STOP_REASONS = {
    "gtol": "gradient norm below tolerance",
    "ftol": "relative loss change below tolerance",
    "max_iter": "iteration limit reached",
    "max_evals": "function evaluation limit reached",
    "max_time": "wall-time limit reached",
    "line_search_failed": "line search found no acceptable step",
    "non_finite": "loss or gradient is not finite at the current point",
    "interrupted": "interrupted by the user (Ctrl-C)",
    "callback": "stopped by a callback",
}


@runtime_checkable
class Objective(Protocol):
    """A differentiable scalar function of a flat parameter vector.

    Required: :meth:`loss` and :meth:`loss_and_grad`.  Optional, for the methods that
    need them: ``hvp(theta, v)`` (Hessian-vector product), ``residuals(theta)`` (the
    vector r with loss = sum of weighted squares of r).
    """

    def loss(self, theta: Tensor) -> Tensor:
        """The loss f(theta) as a 0-dim tensor (no graph attached)."""
        ...

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """f(theta) and its gradient, both detached."""
        ...


@runtime_checkable
class StochasticObjective(Objective, Protocol):
    """An objective that is an average (or sum) over ``n_samples`` samples, with mini-batches.

    ``loss``/``loss_and_grad`` stay the full-batch values (SVRG snapshots use them);
    the batch versions estimate them from a subset of the samples:

    * ``sample_batch(size, generator)``: 1-D int64 indices in ``[0, n_samples)`` on the
      objective's device, drawn with the (CPU) ``generator`` only, so a method's RNG
      state decides its batches;
    * ``batch_loss_and_grad(theta, idx)``: an unbiased estimate of ``(loss, grad)``
      from the samples ``idx`` (detached);
    * ``batch_hvp(theta, v, idx)``: the Hessian-vector product of that batch loss
      (torch.func forward-over-reverse).

    Optional: ``batch_loss_and_grad_many(thetas, idx)`` -> ``(losses[k], grads[k, n])``,
    the same batch at the ``k`` rows of ``thetas`` in one fused evaluation (SVRG
    gradients need the batch at two points); :func:`batch_loss_and_grad_many` falls
    back to ``k`` calls of ``batch_loss_and_grad`` without it.
    """

    n_samples: int

    def sample_batch(self, size: int, generator: torch.Generator) -> Tensor:
        ...

    def batch_loss_and_grad(self, theta: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        ...

    def batch_hvp(self, theta: Tensor, v: Tensor, idx: Tensor) -> Tensor:
        ...


def require_stochastic(objective: Any, who: str, hvp: bool = False) -> None:
    """Raise a ``TypeError`` naming ``who`` unless ``objective`` offers mini-batches."""
    needed = ["n_samples", "sample_batch", "batch_loss_and_grad"] + (["batch_hvp"] if hvp else [])
    missing = [a for a in needed if not hasattr(objective, a)]
    if missing:
        raise TypeError(
            f"{who} needs a mini-batch objective (StochasticObjective); "
            f"{type(objective).__name__} has no {', '.join(missing)}"
        )


def batch_loss_and_grad_many(
    objective: Any, thetas: Tensor, idx: Tensor
) -> tuple[Tensor, Tensor]:
    """``(losses[k], grads[k, n])``: the batch loss and gradient of the samples ``idx`` at
    each row of ``thetas`` (shape ``(k, n)``).

    One call of ``objective.batch_loss_and_grad_many`` if the objective has it (a fused
    evaluation: the ``k`` points share one batched forward and backward pass), else
    ``k`` calls of ``objective.batch_loss_and_grad``; both give the same values to
    round-off.
    """
    if not isinstance(thetas, Tensor) or thetas.dim() != 2:
        raise ValueError(f"thetas must be a (k, n) tensor, got "
                         f"{tuple(thetas.shape) if isinstance(thetas, Tensor) else type(thetas)}")
    fused = getattr(objective, "batch_loss_and_grad_many", None)
    if fused is not None:
        return fused(thetas, idx)
    return batch_loss_and_grad_each(objective, thetas, idx)


def batch_loss_and_grad_each(
    objective: Any, thetas: Tensor, idx: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`batch_loss_and_grad_many` by ``k`` calls of ``batch_loss_and_grad`` (the
    fallback, also for objectives whose fused path does not apply)."""
    pairs = [objective.batch_loss_and_grad(theta, idx) for theta in thetas]
    return torch.stack([f for f, _ in pairs]), torch.stack([g for _, g in pairs])


class StochasticMethod:
    """Mixin for methods drawing mini-batches: a seeded CPU generator saved in the state.

    ``state_dict()`` adds the generator state under ``"rng"`` and ``load_state_dict``
    restores it, so a resumed run draws the same batches as an uninterrupted one.
    """

    seed: int
    _generator: torch.Generator | None = None

    @property
    def generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(int(self.seed))
        return self._generator

    def batch_grad(
        self, objective: Any, theta: Tensor, size: int | None
    ) -> tuple[Tensor, Tensor, int]:
        """``(loss, grad, samples)`` on a fresh batch of ``size`` (``None``: the full loss,
        ``objective.loss_and_grad``, counted as ``n_samples`` or 1 sample)."""
        if size is None:
            f, g = objective.loss_and_grad(theta)
            return f, g, int(getattr(objective, "n_samples", 1))
        require_stochastic(objective, type(self).__name__)
        idx = objective.sample_batch(size, self.generator)
        f, g = objective.batch_loss_and_grad(theta, idx)
        return f, g, int(idx.numel())

    def state_dict(self) -> dict[str, Any]:
        state = _copy(self.state)  # type: ignore[attr-defined]
        if self._generator is not None:  # (an unused generator is the seeded one)
            state["rng"] = self._generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = _copy(dict(state))
        rng = state.pop("rng", None)
        if rng is not None:
            self.generator.set_state(rng.detach().to("cpu", torch.uint8))
        self.state = state  # type: ignore[attr-defined]


@dataclass
class StepInfo:
    """What one iteration of a method reports back to the loop."""

    loss: Tensor  #: f at the new iterate (0-dim tensor)
    grad: Tensor | None  #: gradient at the new iterate, if the method has it
    evals: int  #: objective evaluations spent in this iteration
    failed: str | None = None  #: a stop reason key if the method cannot go on


class Method:
    """One optimization algorithm on a flat parameter vector.

    Subclasses implement :meth:`start` (evaluate at the starting point, set up state)
    and :meth:`step` (one iteration).  All state lives in ``self.state``, a plain dict
    of tensors and Python numbers, so :meth:`state_dict` / :meth:`load_state_dict`
    round-trip it and a resumed run continues exactly where it stopped.
    """

    name: str = "method"

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        """Prepare to iterate from ``theta``; evaluates the objective there."""
        loss, grad = objective.loss_and_grad(theta)
        self.state.update(loss=loss, grad=grad)
        return StepInfo(loss=loss, grad=grad, evals=1)

    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        """Take one iteration, updating ``theta`` **in place**."""
        raise NotImplementedError

    def refresh(self, objective: Objective, theta: Tensor) -> StepInfo:
        """Re-evaluate at ``theta`` keeping the accumulated state (history, moments).

        For callers that changed ``theta`` or the objective between steps (e.g. the
        ``torch.optim`` facade with a new closure); falls back to :meth:`start` when
        there is no state yet.
        """
        if not self.state:
            return self.start(objective, theta)
        loss, grad = objective.loss_and_grad(theta)
        self.state.update(loss=loss, grad=grad)
        return StepInfo(loss=loss, grad=grad, evals=1)

    def state_dict(self) -> dict[str, Any]:
        return _copy(self.state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = _copy(dict(state))


def _copy(v: Any) -> Any:
    if isinstance(v, list):
        return [_copy(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_copy(x) for x in v)
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, Tensor):
        return v.clone()
    return v


@dataclass
class StopCriteria:
    """Stopping rules, checked after every iteration.

    * ``gtol``: stop when ``||g||_inf <= gtol``.
    * ``ftol``: stop when ``|f_k - f_{k+1}| <= ftol * max(|f_k|, |f_{k+1}|, 1e-300)``
      for ``patience`` consecutive iterations (0 disables).
    * ``max_iter``, ``max_evals``, ``max_time`` (seconds): budgets (``None`` = no limit).
    """

    gtol: float = 0.0
    ftol: float = 0.0
    patience: int = 10
    max_iter: int | None = 1000
    max_evals: int | None = None
    max_time: float | None = None


@dataclass
class Result:
    """The outcome of :func:`minimize`."""

    theta: Tensor
    loss: float
    grad_norm: float
    iterations: int
    function_evals: int
    wall_time_s: float
    stop_reason: str
    loss_history: list[float] = field(default_factory=list)

    @property
    def message(self) -> str:
        return STOP_REASONS.get(self.stop_reason, self.stop_reason)


@dataclass
class Progress:
    """Counters of a run, passed to callbacks and kept across resumes."""

    iteration: int = 0
    function_evals: int = 0
    elapsed: float = 0.0  #: wall time spent in previous sessions plus this one
    loss: float = math.nan
    grad_norm: float = math.nan
    loss_history: list[float] = field(default_factory=list)


#: A callback gets (theta, progress, method) after each iteration; returning True stops.
Callback = Callable[[Tensor, Progress, Method], "bool | None"]


def _grad_norm(grad: Tensor | None) -> float:
    return math.nan if grad is None else float(torch.linalg.vector_norm(grad, math.inf))


def minimize(
    objective: Objective,
    theta: Tensor,
    method: Method,
    stop: StopCriteria | None = None,
    callbacks: Sequence[Callback] = (),
    progress: Progress | None = None,
) -> Result:
    """Run ``method`` on ``objective`` from ``theta`` (updated in place) until a rule stops it.

    ``progress`` (and ``method`` with a loaded state) resumes an earlier run: pass the
    ``Progress`` saved with the checkpoint and the method will not re-evaluate the
    starting point.  Ctrl-C ends the run cleanly after the last completed iteration
    with ``stop_reason = "interrupted"``.
    """
    stop = stop or StopCriteria()
    resumed = progress is not None and bool(method.state)
    progress = progress or Progress()
    t0 = time.perf_counter() - progress.elapsed
    reason = None
    small_changes = 0
    try:
        if not resumed:
            info = method.start(objective, theta)
            progress.function_evals += info.evals
            progress.loss = float(info.loss)
            progress.grad_norm = _grad_norm(info.grad)
            progress.loss_history.append(progress.loss)
            if not math.isfinite(progress.loss) or not math.isfinite(progress.grad_norm):
                reason = "non_finite"
        while reason is None:
            if progress.grad_norm <= stop.gtol:
                reason = "gtol"
                break
            if stop.max_iter is not None and progress.iteration >= stop.max_iter:
                reason = "max_iter"
                break
            if stop.max_evals is not None and progress.function_evals >= stop.max_evals:
                reason = "max_evals"
                break
            if stop.max_time is not None and time.perf_counter() - t0 >= stop.max_time:
                reason = "max_time"
                break
            previous = progress.loss
            info = method.step(objective, theta)
            progress.function_evals += info.evals
            progress.elapsed = time.perf_counter() - t0
            if info.failed is not None:
                reason = info.failed
                break
            progress.iteration += 1
            progress.loss = float(info.loss)
            progress.grad_norm = _grad_norm(info.grad)
            progress.loss_history.append(progress.loss)
            if any(cb(theta, progress, method) for cb in callbacks):
                reason = "callback"
                break
            change = abs(previous - progress.loss)
            scale = max(abs(previous), abs(progress.loss), 1e-300)
            small_changes = small_changes + 1 if change <= stop.ftol * scale else 0
            if stop.ftol > 0 and small_changes >= max(stop.patience, 1):
                reason = "ftol"
    except KeyboardInterrupt:
        reason = "interrupted"
    progress.elapsed = time.perf_counter() - t0
    return Result(
        theta=theta,
        loss=progress.loss,
        grad_norm=progress.grad_norm,
        iterations=progress.iteration,
        function_evals=progress.function_evals,
        wall_time_s=progress.elapsed,
        stop_reason=reason,
        loss_history=progress.loss_history,
    )


@contextmanager
def interrupt_guard() -> Iterator[None]:
    """Defer Ctrl-C (SIGINT) until the end of the block.

    Methods wrap the few statements that commit an accepted iterate (``theta.copy_``,
    history and state updates) in it, so an interrupt can never leave ``theta`` and the
    method's state half-updated: a SIGINT received inside the block is delivered (to
    the previous handler, normally raising ``KeyboardInterrupt``) when it ends.  Outside
    the main thread, or where signals cannot be handled, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple[int, Any]] = []

    def _defer(signum: int, frame: Any) -> None:
        received.append((signum, frame))

    try:
        previous = signal.signal(signal.SIGINT, _defer)
    except (ValueError, TypeError, OSError):  # pragma: no cover - exotic embedding
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(*received[0])
            elif previous == signal.SIG_DFL:  # pragma: no cover
                raise KeyboardInterrupt


def flat_dtype_device(theta: Tensor) -> dict[str, Any]:
    """``dict(dtype=..., device=...)`` of ``theta``, for allocating state alongside it."""
    return {"dtype": theta.dtype, "device": theta.device}


def as_float(x: Tensor | float) -> float:
    return float(x.item()) if isinstance(x, Tensor) else float(x)


def is_finite(*xs: Tensor) -> bool:
    """True when every tensor holds only finite values (one host sync)."""
    return bool(torch.stack([torch.isfinite(x).all() for x in xs]).all())
