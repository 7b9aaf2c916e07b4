"""``torch.optim.Optimizer`` facades over the engine's methods.

For code written around the standard training loop::

    opt = pinnsolve.optim.LBFGSOptimizer(model.parameters(), history=20)
    for _ in range(500):
        def closure():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss
        opt.step(closure)

Like ``torch.optim.LBFGS``, :meth:`MethodOptimizer.step` needs a closure that zeroes
the gradients, computes the loss, calls ``backward()`` and returns the loss; it runs
``max_iter`` iterations (default 1) of the wrapped :class:`~pinnsolve.optim.base.Method`
and returns the loss at the point where the call started.

The parameters are flattened into one vector ``theta``; the objective seen by the
method writes a trial ``theta`` into the parameters, calls the closure with grad
enabled and gathers the gradients into a flat vector.  Unlike ``torch.optim.LBFGS``,
the loss and gradient at the current point are kept between calls, so with
``max_iter=1`` an iteration costs the line search's evaluations only (~1), not one
more for re-evaluating the starting point.  This assumes a deterministic closure
(full batch); pass ``reevaluate=True`` when the closure changes between calls
(mini-batches, resampled collocation points) -- the method's history is kept and
only the loss and gradient at the current point are recomputed.  The facade notices
parameters changed from outside (e.g. ``model.load_state_dict``) and re-evaluates.

State: the method's state (a plain dict) lives in ``self.state[first_param]``
(``torch.optim.LBFGS`` does the same), so the inherited ``state_dict()`` /
``load_state_dict()`` round-trip it, with the usual dtype/device casting;
``param_groups`` keep ``lr`` and ``max_iter`` so schedulers can attach.

Stochastic methods: ``MethodOptimizer(params, "sgd", lr=0.1, momentum=0.9)`` and
``MethodOptimizer(params, "mlbfgs", lr=0.05)`` run on whatever batch the closure
evaluates (leave their ``batch_size`` at ``None``); mL-BFGS then keeps one block, or
one per parameter tensor with ``blocks="tensor"``, or the sizes it is given.
S-LBFGS needs gradients of the *same* batch at two points, a batch Hessian-vector
product and, every epoch, the full gradient: :class:`SLBFGSOptimizer` calls the
closure at both points (the batch is whatever the closure evaluates, so it must be the
same on every call of one :meth:`~MethodOptimizer.step`), takes the Hessian-vector
product as a central difference of two closure gradients, and the full gradient from a
second closure over all samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .base import Method, _copy
from .gd import GradientDescent
from .lbfgs import LBFGS
from .linesearch import LineSearchResult
from .slbfgs import SLBFGS

__all__ = ["MethodOptimizer", "LBFGSOptimizer", "GDOptimizer", "SLBFGSOptimizer"]


class _ClosureObjective:
    """The objective ``theta -> (closure loss, flat gradient)`` over a list of parameters."""

    def __init__(self, params: list[Tensor], closure: Callable[[], Any]) -> None:
        self.params = params
        self.numels = [p.numel() for p in params]
        self.closure = closure

    def write(self, theta: Tensor) -> None:
        """Copy ``theta`` into the parameters."""
        with torch.no_grad():
            for p, v in zip(self.params, theta.split(self.numels), strict=True):
                p.copy_(v.view_as(p))

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        self.write(theta)
        with torch.enable_grad():
            loss = self.closure()
        grads = [
            p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1)
            for p in self.params
        ]
        flat = torch.cat(grads).to(theta.dtype)
        loss = torch.as_tensor(loss).detach().reshape(()).to(device=theta.device)
        return loss, flat

    def loss(self, theta: Tensor) -> Tensor:
        return self.loss_and_grad(theta)[0]

    def block_sizes(self, by: str = "layer") -> list[int]:
        """Blocks for block-wise methods (mL-BFGS): one per parameter tensor for
        ``"tensor"``; for ``"layer"`` a single block, as bare parameter tensors do not say
        which layer they belong to (pass ``blocks=[sizes]`` to the method instead)."""
        return list(self.numels) if by == "tensor" else [sum(self.numels)]


class MethodOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` running a :class:`~pinnsolve.optim.base.Method`.

    Parameters
    ----------
    params:
        the parameters (one parameter group; same dtype and device, real).
    method:
        a method instance or a name from :data:`pinnsolve.optim.METHODS` (then
        ``options`` are passed to its constructor).
    max_iter:
        method iterations per :meth:`step` call.
    tolerance_grad:
        a :meth:`step` call stops early when ``||g||_inf <= tolerance_grad``.
    reevaluate:
        recompute the loss and gradient at the current point at the start of every
        :meth:`step` call (for closures that change between calls).
    lr:
        the learning rate in ``param_groups``; it is handed to methods that have an
        ``lr`` attribute (fixed-step GD, Adam) before every call, so LR schedulers
        work with them.  L-BFGS ignores it.

    After a call, :attr:`stop_reason` is ``None`` or why the method stopped early
    (``"gtol"``, ``"line_search_failed"``, ``"non_finite"``); :attr:`last_evals` is
    the number of closure calls it made.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        method: Method | str = "lbfgs",
        *,
        max_iter: int = 1,
        tolerance_grad: float = 0.0,
        reevaluate: bool = False,
        lr: float | None = None,
        **options: Any,
    ) -> None:
        if isinstance(method, str):
            from . import make_method

            method = make_method(method, **options)
        elif options:
            raise TypeError("options are only accepted with a method name")
        if lr is None:
            lr = getattr(method, "lr", None)
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        super().__init__(params, {"lr": 1.0 if lr is None else lr, "max_iter": int(max_iter)})
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} doesn't support parameter groups")
        self._params: list[Tensor] = list(self.param_groups[0]["params"])
        if not self._params:
            raise ValueError("no parameters to optimize")
        p0 = self._params[0]
        for p in self._params:
            if p.dtype != p0.dtype or p.device != p0.device or torch.is_complex(p):
                raise ValueError("all parameters must be real and share one dtype and device")
        self.method = method
        self.tolerance_grad = float(tolerance_grad)
        self.reevaluate = bool(reevaluate)
        self._sync_lr = lr is not None and hasattr(method, "lr")
        self.stop_reason: str | None = None
        self.last_evals = 0

    def _flat_params(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self._params])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Tensor:  # type: ignore[override]
        """Run ``max_iter`` iterations; return the loss at the starting point.

        ``closure`` must zero the gradients, compute the loss, call ``backward()``
        and return the loss.  The parameters hold the last accepted iterate after
        the call (its gradients are those of the last closure call, possibly at a
        rejected trial point).
        """
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure")
        return self._run(_ClosureObjective(self._params, closure))

    def _run(self, objective: _ClosureObjective) -> Tensor:
        """:meth:`step` on the objective built from the closure."""
        group = self.param_groups[0]
        if self._sync_lr:
            self.method.lr = group["lr"]
        box = self.state[self._params[0]]
        method = self.method
        if "method" in box and box["method"] is not method.state:
            method.state = box["method"]  # loaded by load_state_dict
        theta = self._flat_params()
        evals = 0
        if not method.state:
            evals += method.start(objective, theta).evals
        elif self.reevaluate or not torch.equal(theta, box["theta"]):
            evals += method.refresh(objective, theta).evals
        first_loss = method.state["loss"]
        self.stop_reason = None
        iterations = 0
        try:
            for _ in range(group["max_iter"]):
                grad = method.state.get("grad")
                if (self.tolerance_grad > 0.0 and grad is not None
                        and float(grad.abs().max()) <= self.tolerance_grad):
                    self.stop_reason = "gtol"
                    break
                info = method.step(objective, theta)
                evals += info.evals
                if info.failed is not None:
                    self.stop_reason = info.failed
                    break
                iterations += 1
        finally:  # also on Ctrl-C: the parameters hold the last accepted iterate
            objective.write(theta)
            box["method"] = method.state
            box["theta"] = theta
            box["func_evals"] = box.get("func_evals", 0) + evals
            box["n_iter"] = box.get("n_iter", 0) + iterations
            self.last_evals = evals
        return first_loss

    def state_dict(self) -> dict[str, Any]:
        """The standard optimizer state dict; the method state is copied, not shared."""
        sd = super().state_dict()
        sd["state"] = _copy(sd["state"])
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        state_dict["state"] = _copy(state_dict["state"])
        super().load_state_dict(state_dict)
        box = self.state[self._params[0]]
        if "method" in box:
            self.method.state = box["method"]


class LBFGSOptimizer(MethodOptimizer):
    """:class:`~pinnsolve.optim.lbfgs.LBFGS` as a ``torch.optim.Optimizer``.

    ``LBFGSOptimizer(params, history=10, line_search="strong_wolfe", max_iter=1,
    **lbfgs_options)``; see :class:`MethodOptimizer` for the facade's behaviour and
    :class:`~pinnsolve.optim.lbfgs.LBFGS` for the options.  ``max_iter=20`` mimics the
    default of ``torch.optim.LBFGS`` (iterations per ``step`` call).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        history: int = 10,
        line_search: str | Callable[..., LineSearchResult] = "strong_wolfe",
        *,
        max_iter: int = 1,
        tolerance_grad: float = 0.0,
        reevaluate: bool = False,
        **options: Any,
    ) -> None:
        method = LBFGS(history=history, line_search=line_search, **options)
        super().__init__(params, method, max_iter=max_iter, tolerance_grad=tolerance_grad,
                         reevaluate=reevaluate)


class GDOptimizer(MethodOptimizer):
    """:class:`~pinnsolve.optim.gd.GradientDescent` as a ``torch.optim.Optimizer``.

    With ``lr`` given it takes fixed steps (and follows LR schedulers through
    ``param_groups[0]["lr"]``); without, it uses the line search.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | None = None,
        line_search: str | Callable[..., LineSearchResult] = "armijo",
        *,
        max_iter: int = 1,
        tolerance_grad: float = 0.0,
        reevaluate: bool = False,
        **options: Any,
    ) -> None:
        method = GradientDescent(lr=lr, line_search=line_search, **options)
        super().__init__(params, method, max_iter=max_iter, tolerance_grad=tolerance_grad,
                         reevaluate=reevaluate, lr=lr)


class _ClosureBatchObjective(_ClosureObjective):
    """The mini-batch protocol over closures: ``closure`` evaluates the current batch,
    ``full`` the whole training set (``loss_and_grad``, the SVRG snapshots); the batch
    indices the method draws only count samples."""

    def __init__(self, params: list[Tensor], closure: Callable[[], Any],
                 full: _ClosureObjective, n_samples: int) -> None:
        super().__init__(params, closure)
        self.full = full
        self.n_samples = n_samples

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        return self.full.loss_and_grad(theta)

    def sample_batch(self, size: int, generator: torch.Generator) -> Tensor:
        return torch.arange(int(size))  # the closure decides which samples

    def batch_loss_and_grad(self, theta: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        return super().loss_and_grad(theta)

    def batch_hvp(self, theta: Tensor, v: Tensor, idx: Tensor) -> Tensor:
        """:math:`(g(\\theta + h v) - g(\\theta - h v)) / 2h` with
        :math:`h = \\epsilon^{1/3} (1 + \\|\\theta\\|) / \\|v\\|`: the central
        difference of two closure gradients (truncation error :math:`O(h^2)`)."""
        vnorm = float(torch.linalg.vector_norm(v))
        if vnorm == 0.0:
            return torch.zeros_like(v)
        eps = torch.finfo(theta.dtype).eps
        h = eps ** (1.0 / 3.0) * (1.0 + float(torch.linalg.vector_norm(theta))) / vnorm
        _, g_plus = super().loss_and_grad(theta + h * v)
        _, g_minus = super().loss_and_grad(theta - h * v)
        return (g_plus - g_minus) / (2.0 * h)


class SLBFGSOptimizer(MethodOptimizer):
    """:class:`~pinnsolve.optim.slbfgs.SLBFGS` as a ``torch.optim.Optimizer``.

    ``SLBFGSOptimizer(params, full_closure, n_samples, lr=0.05, batch_size=64,
    **slbfgs_options)``; every :meth:`step` call is one inner step on the mini-batch the
    ``closure`` evaluates (the step that begins an epoch also takes the snapshot's full
    gradient from ``full_closure``).  Both closures zero the gradients, compute the
    mean loss (over the batch, resp. over all ``n_samples`` samples), call
    ``backward()`` and return the loss.  Per inner step the closure is called at the
    iterate and at the snapshot (so it must evaluate the same batch every time it is
    called within one step), and every ``update_every`` steps twice more for the
    curvature pair's Hessian-vector product, here a central difference of two closure
    gradients (see :meth:`_ClosureBatchObjective.batch_hvp`; the mini-batch objective
    path of :func:`~pinnsolve.optim.minimize` uses the exact torch.func product).
    ``batch_size`` (and ``hessian_batch_size``) should be the closure's batch size:
    they count samples and set the epoch length ``2 n_samples / batch_size`` (or give
    ``inner_steps``).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        full_closure: Callable[[], Any],
        n_samples: int,
        **options: Any,
    ) -> None:
        if not callable(full_closure):
            raise TypeError("full_closure must be callable (the loss over all samples)")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        super().__init__(params, SLBFGS(**options))
        self.full_closure = full_closure
        self.n_samples = n_samples

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Tensor:  # type: ignore[override]
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure")
        full = _ClosureObjective(self._params, self.full_closure)
        batch = _ClosureBatchObjective(self._params, closure, full, self.n_samples)
        return self._run(batch)
