"""A compiled problem: loss, gradient, Hessian-vector products and residuals of a flat theta.

:class:`PINNObjective` turns a :class:`~pinnsolve.problem.Problem` and a ``torch.nn.Module``
into functions of one flat parameter vector ``theta`` (the concatenation of the model's
parameters), which is all the optimization engine sees:

* ``loss(theta)`` = :math:`\\sum_k w_k \\operatorname{mean}_i r_k(z_i)^2`,
* ``loss_and_grad(theta)``: the loss and :math:`\\nabla_\\theta L` (reverse mode),
* ``hvp(theta, v)`` = :math:`\\nabla^2_\\theta L\\, v` (forward-over-reverse with torch.func),
* ``residuals(theta)``: the vector :math:`\\rho` with :math:`L = \\|\\rho\\|^2`, i.e. the
  term residuals scaled by :math:`\\sqrt{w_k / n_k}` (``n_k`` entries of term ``k``),
* ``term_losses(theta)``: each term's unweighted mean square,
* ``term_gradients(theta)``: the gradient of each of those (for loss weighting).

Unknown problem parameters (:class:`~pinnsolve.problem.Unknown`, for inverse problems)
are trained with the network: ``theta = (network parameters, raw unknowns)``, the last
``len(objective.unknowns)`` entries holding ``log(value)`` for a positive unknown (so it
stays positive) or the value itself; :meth:`PINNObjective.parameter_values` decodes them.

Mini-batches (the :class:`~pinnsolve.optim.base.StochasticObjective` protocol, for
the stochastic methods): the ``n_samples`` samples are all points of all terms, term
``k`` owning the index range ``[o_k, o_k + n_k)``.  :meth:`PINNObjective.sample_batch`
draws a *stratified* batch, :math:`b_k` points from every term in proportion to
:math:`n_k` (largest remainders, at least one point per weighted term), and
:meth:`PINNObjective.batch_loss_and_grad` returns

.. math::  \\hat L_B = \\sum_k \\frac{w_k}{b_k} \\sum_{i \\in B_k} \\overline{r_k(z_i)^2},

(:math:`\\overline{\\cdot}` the mean over the components of a residual row), an unbiased
estimate of the full loss whenever the :math:`b_k` points of term ``k`` are drawn
uniformly without replacement with a fixed :math:`b_k`; averaged over the disjoint
batches of a permutation (equal :math:`b_k`) it *is* the full loss.

Device and dtype come from one place, the ``device``/``dtype`` arguments; the model,
points and targets are moved there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vjp, vmap

from .fields import FieldSet, Plan
from .models import OutputTransform, stacked_forward
from .problem import PDE, Condition, Problem, Unknown

__all__ = ["PINNObjective", "FunctionObjective", "flatten_parameters"]


def flatten_parameters(model: torch.nn.Module) -> Tensor:
    """The model's parameters concatenated into one detached 1-D tensor."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


class FunctionObjective:
    """An objective from a plain differentiable function ``f(theta) -> scalar tensor``.

    Gradients by ``torch.autograd`` (reverse mode: measured faster on CPU than
    ``torch.func.grad`` for PINN losses); Hessian-vector products by torch.func
    (forward-over-reverse), which needs ``f`` to be composable with torch.func.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn

    def loss(self, theta: Tensor) -> Tensor:
        with torch.no_grad():
            return self.fn(theta).detach()

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            value = self.fn(th)
            (g,) = torch.autograd.grad(value, th)
        return value.detach(), g

    def hvp(self, theta: Tensor, v: Tensor) -> Tensor:
        return jvp(grad(self.fn), (theta.detach(),), (v,))[1]


class _Term:
    """A condition with its points on the device, constant data and derivative plans."""

    def __init__(self, condition: Condition, points: list[Tensor], aux: dict[str, Tensor]):
        self.condition = condition
        self.points = points
        self.aux = aux
        self.plans = [Plan() for _ in points]

    @property
    def name(self) -> str:
        return self.condition.name


class PINNObjective(FunctionObjective):
    """The weighted composite PINN loss of ``problem`` with ``model``, on a flat theta.

    Parameters
    ----------
    problem, model
        The problem and a network mapping ``(N, d)`` coordinates to ``(N, m)`` fields.
    dtype, device
        Where everything lives (default float64 on CPU).
    seed
        Seeds the collocation sampling (and nothing else).
    sampler
        Overrides the problem's default sampler for terms that do not name their own.
    weights
        Overrides of term weights by term name.
    """

    def __init__(
        self,
        problem: Problem,
        model: torch.nn.Module,
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        seed: int = 0,
        sampler: str | None = None,
        weights: dict[str, float] | None = None,
    ) -> None:
        if not problem.conditions:
            raise ValueError("the problem has no terms: add a PDE residual or a condition")
        super().__init__(self._loss)
        self.problem = problem
        self.dtype = dtype
        self.device = torch.device(device)
        if problem.transform is not None:
            model = OutputTransform(model, problem.transform)
        self.model = model.to(device=self.device, dtype=dtype)
        self.parameters = dict(problem.parameters)
        self.unknowns = [k for k, v in self.parameters.items() if isinstance(v, Unknown)]
        self._names = [n for n, _ in self.model.named_parameters()]
        self._shapes = [p.shape for _, p in self.model.named_parameters()]
        self._sizes = [p.numel() for _, p in self.model.named_parameters()]
        self.weights = {c.name: c.weight for c in problem.conditions}
        for name, w in (weights or {}).items():
            if name not in self.weights:
                raise ValueError(f"no term named {name!r}; terms: {', '.join(self.weights)}")
            self.weights[name] = float(w)
        self.sampler = sampler or problem.sampler
        self.terms: list[_Term] = []
        self.resample(seed)
        self._check_outputs()
        self._discover_plans()
        self._check_finite()

    # -- parameters --------------------------------------------------------------------

    @property
    def n_params(self) -> int:
        """Length of theta: the network's parameters plus one per unknown parameter."""
        return sum(self._sizes) + len(self.unknowns)

    def initial_theta(self) -> Tensor:
        """The model's current parameters (and the unknowns' initial guesses) as a flat
        vector: the usual starting point."""
        net = flatten_parameters(self.model)
        if not self.unknowns:
            return net
        raw = [self.parameters[k].raw() for k in self.unknowns]
        return torch.cat([net, torch.tensor(raw, dtype=net.dtype, device=net.device)])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Views of ``theta`` shaped like the model's parameters, by name."""
        if theta.shape != (self.n_params,):
            raise ValueError(
                f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}"
            )
        chunks = theta[: sum(self._sizes)].split(self._sizes)
        return {n: c.view(s) for n, c, s in zip(self._names, chunks, self._shapes)}

    def parameter_values(self, theta: Tensor) -> dict[str, Any]:
        """The problem parameters with every unknown decoded from ``theta`` (a 0-dim
        tensor: ``exp(raw)`` for a positive unknown), differentiable in ``theta``."""
        if not self.unknowns:
            return self.parameters
        values = dict(self.parameters)
        base = sum(self._sizes)
        for i, name in enumerate(self.unknowns):
            values[name] = self.parameters[name].value(theta[base + i])
        return values

    def unknown_values(self, theta: Tensor) -> dict[str, float]:
        """The current values of the unknown parameters, as floats."""
        values = self.parameter_values(theta.detach())
        return {k: float(values[k]) for k in self.unknowns}

    def load_into_model(self, theta: Tensor) -> torch.nn.Module:
        """Copy the network part of ``theta`` into the model's parameters; return the model."""
        net = theta.detach()[: sum(self._sizes)]
        torch.nn.utils.vector_to_parameters(net, self.model.parameters())
        return self.model

    def network(self, theta: Tensor) -> Callable[[Tensor], Tensor]:
        """``Z -> model(Z)`` with the parameters ``theta`` (a pure function for torch.func)."""
        params = self.unflatten(theta)
        return lambda Z: functional_call(self.model, params, (Z,))

    # -- points ------------------------------------------------------------------------

    def resample(self, seed: int) -> None:
        """Draw fresh points for every term (data terms keep theirs)."""
        rng = np.random.default_rng(seed)
        problem = self.problem
        plans = {t.name: t.plans for t in self.terms}
        terms = []
        for c in problem.conditions:
            sets = c.sample(problem.domain, self.sampler, rng)
            pts = [torch.as_tensor(p, dtype=self.dtype, device=self.device) for p in sets]
            terms.append(_Term(c, pts, c.prepare(problem, pts)))
            terms[-1].plans = plans.get(c.name, terms[-1].plans)  # plans outlive the points
        self.terms = terms

    def term(self, name: str) -> _Term:
        """The compiled term called ``name`` (its points, constant data and plans)."""
        for t in self.terms:
            if t.name == name:
                return t
        raise ValueError(f"no term named {name!r}; terms: {', '.join(t.name for t in self.terms)}")

    def pde_terms(self) -> list[str]:
        """Names of the PDE-residual terms (those adaptive sampling acts on)."""
        return [t.name for t in self.terms if isinstance(t.condition, PDE)]

    def points(self, name: str) -> Tensor:
        """The ``(n, d)`` points of the one-set term ``name`` (on a sharded objective: all
        ranks' points, see :class:`~pinnsolve.distributed.ShardedObjective`)."""
        term = self.term(name)
        if len(term.points) != 1:
            raise ValueError(f"term {name!r} has paired point sets; points() needs one")
        return term.points[0]

    def set_points(self, name: str, points: Tensor | np.ndarray) -> None:
        """Replace the ``(n, d)`` points of the one-set term ``name`` (plans are kept)."""
        term = self.term(name)
        if len(term.points) != 1:
            raise ValueError(f"term {name!r} has paired point sets; set_points needs one")
        Z = torch.as_tensor(points, dtype=self.dtype, device=self.device)
        if Z.ndim != 2 or Z.shape[1] != len(self.problem.coords) or Z.shape[0] == 0:
            raise ValueError(
                f"points for term {name!r} must have shape (n, {len(self.problem.coords)}), "
                f"n > 0; got {tuple(Z.shape)}"
            )
        term.points = [Z]
        term.aux = term.condition.prepare(self.problem, [Z])

    def pointwise_residual(
        self, theta: Tensor, name: str, points: Tensor | np.ndarray, batch: int = 8192
    ) -> Tensor:
        """The residual of term ``name`` at arbitrary ``points`` (``(n,)`` or ``(n, k)``),
        evaluated in batches without a graph; the term's own points are not changed."""
        term = self.term(name)
        Z = torch.as_tensor(points, dtype=self.dtype, device=self.device)
        net = self.network(theta.detach())
        params = self.parameter_values(theta.detach())
        coords, fields = self.problem.coords, self.problem.fields
        out = []
        with torch.no_grad():
            for i in range(0, Z.shape[0], batch):
                chunk = Z[i:i + batch]
                aux = term.condition.prepare(self.problem, [chunk])
                sets = [FieldSet(net, chunk, coords, fields, term.plans[0])]
                out.append(term.condition.residual(sets, aux, params))
        return torch.cat(out)

    def _check_outputs(self) -> None:
        m = len(self.problem.fields)
        probe = self.terms[0].points[0][:2]
        with torch.no_grad():
            out = self.network(self.initial_theta())(probe)
        if out.ndim != 2 or out.shape[1] != m:
            raise ValueError(
                f"the model maps (2, {probe.shape[1]}) inputs to {tuple(out.shape)}; the problem "
                f"has {m} field(s) {self.problem.fields}, so expected (2, {m})"
            )

    def _discover_plans(self) -> None:
        """Run every residual on two and on three of its points.

        This checks what each residual returns (shape errors surface here, naming the
        term) and records which derivatives it asks for, so that every evaluation from
        then on takes the same planned path (bitwise reproducible, e.g. across resumes).
        """
        theta = self.initial_theta()
        net = self.network(theta)
        params = self.parameter_values(theta)
        coords, fields = self.problem.coords, self.problem.fields
        for term in self.terms:
            shapes = []
            rows = min(Z.shape[0] for Z in term.points)
            for k in sorted({min(2, rows), min(3, rows)}):  # two sizes reveal (N, N) broadcasts
                sets = [FieldSet(net, Z[:k], coords, fields, plan)
                        for Z, plan in zip(term.points, term.plans)]
                aux = {key: v[:k] for key, v in term.aux.items()}
                try:
                    r = term.condition.residual(sets, aux, params)
                except (AttributeError, IndexError, RuntimeError) as exc:
                    raise ValueError(f"term {term.name!r}: {exc}") from exc
                _check_residual(r, term.name, k, self.dtype, self.device)
                shapes.append(tuple(r.shape[1:]))
            if len(shapes) == 2 and shapes[0] != shapes[1]:
                raise ValueError(
                    f"term {term.name!r} returns {(shapes[0] or (1,))[0]} columns on 2 points "
                    f"but {(shapes[1] or (1,))[0]} on 3: a residual must be (N,) or (N, k) "
                    f"with k fixed; is a (N,) tensor broadcast against a (N, 1) one?"
                )

    def _check_finite(self) -> None:
        """Every term must be finite at the initial parameters (else name the term and a point)."""
        theta = self.initial_theta()
        with torch.no_grad():
            rs = self._term_residuals(theta)
        for term, r in zip(self.terms, rs):
            bad = ~torch.isfinite(r.reshape(r.shape[0], -1)).all(dim=1)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                where = ", ".join(f"{c}={float(v):.4g}" for c, v in
                                  zip(self.problem.coords, term.points[0][i]))
                raise ValueError(
                    f"term {term.name!r} is not finite at the initial parameters at "
                    f"{int(bad.sum())} of {r.shape[0]} points, e.g. at {where} (value "
                    f"{r.reshape(r.shape[0], -1)[i].tolist()}); check the residual for log, "
                    f"sqrt or division of quantities that can be <= 0"
                )

    # -- evaluation --------------------------------------------------------------------

    def _term_residuals(self, theta: Tensor, subsets: list[Tensor] | None = None,
                        copies: int = 1) -> list[Tensor]:
        """Each term's residual, on all its points or (``subsets``) on rows ``subsets[k]``.

        ``copies = k > 1`` (no unknowns): ``theta`` is ``(k, n)`` and every term's points
        are repeated ``k`` times, block ``i`` of the rows evaluated with ``theta[i]`` by
        the stacked network (:func:`~pinnsolve.models.stacked_forward`): the residual
        code runs once on ``k`` times the rows (it acts row by row).
        """
        if copies > 1:
            fwd = stacked_forward(self.model)
            net = lambda Z: fwd(theta, Z.reshape(copies, -1, Z.shape[-1])).flatten(0, 1)  # noqa: E731
            params = self.parameters
        else:
            net = self.network(theta)
            params = self.parameter_values(theta)
        coords, fields = self.problem.coords, self.problem.fields
        out = []
        for k, term in enumerate(self.terms):
            points, aux = term.points, term.aux
            if subsets is not None:
                rows = subsets[k]
                if rows.numel() == 0:
                    out.append(theta.new_zeros((0,)))
                    continue
                points = [Z.index_select(0, rows) for Z in points]
                aux = {key: v.index_select(0, rows) for key, v in aux.items()}
            if copies > 1:
                points = [Z.repeat(copies, 1) for Z in points]
                aux = {key: v.repeat(copies, *([1] * (v.dim() - 1))) for key, v in aux.items()}
            sets = [FieldSet(net, Z, coords, fields, plan) for Z, plan in zip(points,
                                                                               term.plans)]
            out.append(term.condition.residual(sets, aux, params))
        return out

    # -- mini-batches (StochasticObjective) --------------------------------------------

    @property
    def term_sizes(self) -> list[int]:
        """``n_k``: the number of points (samples) of every term, in term order."""
        return [int(t.points[0].shape[0]) for t in self.terms]

    @property
    def n_samples(self) -> int:
        """``N = sum_k n_k``: the samples a mini-batch draws from (all points of all terms)."""
        return sum(self.term_sizes)

    def batch_counts(self, size: int) -> list[int]:
        """``b_k``: points per term in a stratified batch of ``size`` (proportional to ``n_k``).

        Largest-remainder apportionment of ``size`` over the terms with a nonzero weight,
        each getting at least one point and at most all of its ``n_k``.
        """
        sizes = self.term_sizes
        active = [k for k, t in enumerate(self.terms) if self.weights[t.name] != 0]
        total = sum(sizes[k] for k in active)
        if isinstance(size, bool) or not isinstance(size, int) or size < len(active):
            raise ValueError(f"batch size must be an integer >= {len(active)} (one point per "
                             f"weighted term), got {size!r}")
        size = min(size, total)
        quota = {k: size * sizes[k] / total for k in active}
        counts = {k: max(1, int(quota[k])) for k in active}
        order = sorted(active, key=lambda k: quota[k] - int(quota[k]), reverse=True)
        while sum(counts.values()) < size:
            for k in order:
                if sum(counts.values()) < size and counts[k] < sizes[k]:
                    counts[k] += 1
        while sum(counts.values()) > size:  # the minimum of one point overshot
            k = max((j for j in active if counts[j] > 1), key=lambda j: counts[j] - quota[j])
            counts[k] -= 1
        return [counts.get(k, 0) for k in range(len(self.terms))]

    def sample_batch(self, size: int, generator: torch.Generator) -> Tensor:
        """A stratified batch: ``b_k`` distinct points of every term (see :meth:`batch_counts`).

        ``generator`` is a CPU generator (it alone decides the batch, so a run is
        reproducible from its state); the indices (int64, in ``[0, n_samples)``) are
        returned on the objective's device.
        """
        parts, offset = [], 0
        for n, b in zip(self.term_sizes, self.batch_counts(size)):
            if b > 0:
                parts.append(torch.randperm(n, generator=generator)[:b] + offset)
            offset += n
        return torch.cat(parts).to(self.device)

    def _split(self, idx: Tensor) -> tuple[list[Tensor], list[int]]:
        """Global sample indices -> per-term row indices and counts."""
        if not isinstance(idx, Tensor) or idx.ndim != 1 or idx.dtype != torch.int64:
            raise TypeError("batch indices must be a 1-D int64 tensor")
        idx = idx.to(self.device)
        subsets, counts, offset = [], [], 0
        for n in self.term_sizes:
            mask = (idx >= offset) & (idx < offset + n)
            rows = idx[mask] - offset
            subsets.append(rows)
            counts.append(int(rows.numel()))
            offset += n
        if sum(counts) != idx.numel():
            raise ValueError(f"batch indices must lie in [0, {self.n_samples})")
        return subsets, counts

    def _batch_loss(self, theta: Tensor, subsets: list[Tensor], counts: list[int]) -> Tensor:
        """``sum_k w_k / b_k sum_{i in B_k} mean_j r_k(z_i)_j^2`` (pure in theta)."""
        total = theta.new_zeros(())
        rs = self._term_residuals(theta, subsets)
        for term, r, b in zip(self.terms, rs, counts):
            w = self.weights[term.name]
            if w != 0 and b > 0:
                total = total + w * r.pow(2).mean()  # mean over b rows x components
        return total

    def batch_loss_and_grad(self, theta: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The stratified estimate of the loss and its gradient on the samples ``idx``."""
        subsets, counts = self._split(idx)
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            value = self._batch_loss(th, subsets, counts)
            (g,) = torch.autograd.grad(value, th)
        return value.detach(), g

    def batch_loss_and_grad_many(self, thetas: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """``(losses[k], grads[k, n])``: :meth:`batch_loss_and_grad` of the samples ``idx``
        at every row of ``thetas`` (``(k, n)``), fused.

        The ``k`` parameter sets share one evaluation: the batch's points are repeated
        ``k`` times and block ``i`` goes through the network with ``thetas[i]`` (one
        batched matmul per layer), so the field derivatives, the residuals and the
        backward pass run once, on ``k b`` rows; since loss ``i`` depends on
        ``thetas[i]`` only, the gradient of :math:`\\sum_i \\hat L_B(\\theta_i)` with
        respect to ``thetas`` is the ``k`` gradients.  Equal to ``k`` separate calls to
        round-off.  Objectives with unknown parameters, or a model without a stacked
        forward, fall back to ``k`` calls.
        """
        if not isinstance(thetas, Tensor) or thetas.dim() != 2 or thetas.shape[1] != self.n_params:
            raise ValueError(f"thetas must have shape (k, {self.n_params}), got "
                             f"{tuple(getattr(thetas, 'shape', ()))}")
        k = thetas.shape[0]
        if k == 1 or self.unknowns or stacked_forward(self.model) is None:
            from .optim.base import batch_loss_and_grad_each  # (import cycle via optim)

            return batch_loss_and_grad_each(self, thetas, idx)
        subsets, counts = self._split(idx)
        with torch.enable_grad():
            th = thetas.detach().requires_grad_(True)
            rs = self._term_residuals(th, subsets, copies=k)
            total = th.new_zeros(k)
            for term, r, b in zip(self.terms, rs, counts):
                w = self.weights[term.name]
                if w != 0 and b > 0:
                    total = total + w * r.reshape(k, -1).pow(2).mean(1)
            (g,) = torch.autograd.grad(total.sum(), th)
        return total.detach(), g

    def batch_hvp(self, theta: Tensor, v: Tensor, idx: Tensor) -> Tensor:
        """Hessian-vector product of the batch loss (forward-over-reverse, torch.func)."""
        subsets, counts = self._split(idx)
        return jvp(grad(lambda th: self._batch_loss(th, subsets, counts)),
                   (theta.detach(),), (v,))[1]

    def block_sizes(self, by: str = "layer") -> list[int]:
        """Sizes of contiguous blocks of theta: one per ``"tensor"`` (parameter tensor) or
        per ``"layer"`` (the parameter tensors of one module, e.g. weight and bias)."""
        if by == "tensor":
            return list(self._sizes)
        if by != "layer":
            raise ValueError(f"blocks by 'layer' or 'tensor', got {by!r}")
        sizes: list[int] = []
        last = None
        for name, n in zip(self._names, self._sizes):
            owner = name.rsplit(".", 1)[0] if "." in name else name
            if owner == last:
                sizes[-1] += n
            else:
                sizes.append(n)
            last = owner
        return sizes

    def _loss(self, theta: Tensor) -> Tensor:
        """The loss as a pure function of theta (composable with torch.func transforms)."""
        total = theta.new_zeros(())
        for term, r in zip(self.terms, self._term_residuals(theta)):
            w = self.weights[term.name]
            if w != 0:
                total = total + w * r.pow(2).mean()
        return total

    def residuals(self, theta: Tensor) -> Tensor:
        """The scaled residual vector ``rho`` with ``loss = ||rho||^2``."""
        parts = []
        for term, r in zip(self.terms, self._term_residuals(theta)):
            w = self.weights[term.name]
            parts.append(r.reshape(-1) * (w / r.numel()) ** 0.5)
        return torch.cat(parts)

    def jacobian(self, theta: Tensor, chunk_size: int | None = 4096) -> Tensor:
        """The ``(m, n)`` Jacobian :math:`J = \\partial \\rho / \\partial \\theta` of
        :meth:`residuals`, row ``i`` the gradient of :math:`\\rho_i` (for Gauss-Newton and
        Levenberg-Marquardt).

        Every residual row depends on the network only at its own point(s) (the premise of
        the row subsets of the mini-batches), so the rows are *per-point gradients*: each
        point ``i`` of a term gets its own copy :math:`\\theta_i = \\theta` of the network
        parameters (an ``expand``, no copy), the network is evaluated point by point with
        :func:`torch.func.vmap` over ``(theta_i, z_i)``, the residual code runs unchanged on
        the whole batch (input derivatives by :class:`~pinnsolve.fields.FieldSet`), and one
        reverse pass with a cotangent of ones gives

        .. math::  \\frac{\\partial}{\\partial \\theta_i} \\sum_j r_j(\\theta_j)
                   = \\frac{\\partial r_i}{\\partial \\theta}

        for every ``i`` at once (``k`` passes for a residual with ``k`` components per
        row).  A row then costs about what it costs in one loss-and-gradient evaluation,
        plus writing its ``n`` entries; generic ``jacrev`` instead runs one reverse pass
        over the *whole* batch per row.  The columns of unknown problem parameters (few)
        come from forward mode (:func:`torch.func.jacfwd`) over the whole residual vector.
        Rows are scaled like :meth:`residuals`: :math:`\\sqrt{w_k / (n_k c_k)}`.

        ``chunk_size`` bounds the points per pass (memory ``~ chunk_size x n`` per
        activation); ``None`` takes each term whole.  If the network cannot be vmapped,
        this falls back to :func:`torch.func.jacrev` of :meth:`residuals` (with a warning).
        """
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
                chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        theta = theta.detach()
        if theta.shape != (self.n_params,):
            raise ValueError(
                f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}"
            )
        if not self._pointwise_jacobian:
            return jacrev(lambda th: self.residuals(th))(theta).detach()
        try:
            J_net = self._network_jacobian(theta, chunk_size)
        except (RuntimeError, NotImplementedError) as exc:  # e.g. a model vmap cannot batch
            import warnings

            warnings.warn(f"per-point Jacobian failed ({exc}); using jacrev over all "
                          f"residuals (slow)", RuntimeWarning, stacklevel=2)
            self._pointwise_jacobian = False
            return jacrev(lambda th: self.residuals(th))(theta).detach()
        if not self.unknowns:
            return J_net
        base = sum(self._sizes)
        net, raw = theta[:base], theta[base:]
        J_unk = jacfwd(lambda u: self.residuals(torch.cat((net, u))))(raw)
        return torch.cat((J_net, J_unk.detach()), dim=1)

    _pointwise_jacobian = True

    def _network_jacobian(self, theta: Tensor, chunk_size: int | None) -> Tensor:
        """The network columns of :meth:`jacobian` by per-point gradients (see there)."""
        return torch.cat(list(self._network_jacobian_blocks(theta, chunk_size))).detach()

    def _network_jacobian_blocks(self, theta: Tensor, chunk_size: int | None):
        """The network columns of :meth:`jacobian`, scaled row blocks of at most
        ``chunk_size`` points (times components) each, in row order."""
        model = self.model
        names = self._names
        net_params = self.unflatten(theta)
        values = self.parameter_values(theta)
        coords, fields = self.problem.coords, self.problem.fields

        def point_net(p: dict[str, Tensor], z: Tensor) -> Tensor:
            return functional_call(model, p, (z.unsqueeze(0),)).squeeze(0)

        for term in self.terms:
            N = term.points[0].shape[0]
            step = N if chunk_size is None else chunk_size
            for s in range(0, N, step):
                pts = [Z[s:s + step] for Z in term.points]
                aux = {key: v[s:s + step] for key, v in term.aux.items()}
                b = pts[0].shape[0]
                copies = {k: net_params[k].expand(b, *net_params[k].shape) for k in names}

                def residual(ps: dict[str, Tensor], pts=pts, aux=aux, term=term) -> Tensor:
                    net = lambda Z: vmap(point_net)(ps, Z)  # noqa: E731
                    sets = [FieldSet(net, Z, coords, fields, plan)
                            for Z, plan in zip(pts, term.plans)]
                    return term.condition.residual(sets, aux, values)

                r, pull = vjp(residual, copies)
                if r.ndim == 1:
                    (g,) = pull(torch.ones_like(r))
                    J = torch.cat([g[k].reshape(b, -1) for k in names], dim=1)
                else:
                    c = r.shape[1]
                    eye = torch.eye(c, dtype=r.dtype, device=r.device)
                    (g,) = vmap(pull)(eye[:, None, :].expand(c, *r.shape))
                    J = torch.cat([g[k].reshape(c, b, -1) for k in names], dim=2)
                    J = J.transpose(0, 1).reshape(b * c, -1)  # row-major like r.reshape(-1)
                comps = 1 if r.ndim == 1 else r.shape[1]
                yield J.detach() * (self.weights[term.name] / (N * comps)) ** 0.5

    def jacobian_diagonal(self, theta: Tensor, chunk_size: int | None = 4096) -> Tensor:
        """:math:`\\operatorname{diag}(J^\\top J)`, the squared column norms of
        :meth:`jacobian`, accumulated over row blocks of ``chunk_size`` points so that no
        more than one block of :math:`J` is held (Levenberg-Marquardt's scaling on its
        matrix-free path); costs about what :meth:`jacobian` costs."""
        theta = theta.detach()
        if theta.shape != (self.n_params,):
            raise ValueError(
                f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}"
            )
        if not self._pointwise_jacobian:
            return self.jacobian(theta, chunk_size).pow(2).sum(0)
        base = sum(self._sizes)
        d = theta.new_zeros(self.n_params)
        try:
            for J in self._network_jacobian_blocks(theta, chunk_size):
                d[:base] += J.pow(2).sum(0)
        except (RuntimeError, NotImplementedError):
            return self.jacobian(theta, chunk_size).pow(2).sum(0)  # warns, falls back
        if self.unknowns:
            net, raw = theta[:base], theta[base:]
            J_unk = jacfwd(lambda u: self.residuals(torch.cat((net, u))))(raw)
            d[base:] = J_unk.detach().pow(2).sum(0)
        return d

    def linearize(self, theta: Tensor):
        """The :meth:`residuals` at ``theta`` with their graph kept, for repeated Jacobian
        products without forming :math:`J`: ``lin.residuals``, ``lin.jvp(v)`` =
        :math:`J v`, ``lin.vjp(u)`` = :math:`J^\\top u`
        (:class:`~pinnsolve.optim.levenberg.ResidualLinearization`: one forward pass
        with graph, then one reverse pass per product)."""
        from .optim.levenberg import ResidualLinearization

        theta = theta.detach()
        if theta.shape != (self.n_params,):
            raise ValueError(
                f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}"
            )
        return ResidualLinearization(self.residuals, theta)

    def jvp(self, theta: Tensor, v: Tensor) -> Tensor:
        """:math:`J v` of :meth:`residuals` at ``theta`` (one product; to reuse the
        forward pass across many, use :meth:`linearize`)."""
        return self.linearize(theta).jvp(v)

    def vjp(self, theta: Tensor, u: Tensor) -> Tensor:
        """:math:`J^\\top u` of :meth:`residuals` at ``theta`` (see :meth:`jvp`)."""
        return self.linearize(theta).vjp(u)

    def term_losses(self, theta: Tensor) -> dict[str, float]:
        """Each term's unweighted mean squared residual."""
        with torch.no_grad():
            rs = self._term_residuals(theta.detach())
        return {t.name: float(r.pow(2).mean()) for t, r in zip(self.terms, rs)}

    def term_gradients(self, theta: Tensor) -> dict[str, Tensor]:
        """``grad_theta L_k`` of each term's unweighted mean square ``L_k`` (one forward pass,
        one reverse pass per term)."""
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            rs = self._term_residuals(th)
            out = {}
            for i, (term, r) in enumerate(zip(self.terms, rs)):
                (g,) = torch.autograd.grad(r.pow(2).mean(), th, retain_graph=i < len(rs) - 1,
                                           allow_unused=True)
                out[term.name] = torch.zeros_like(th) if g is None else g
        return out

    def predict(self, theta: Tensor, points: Any, batch: int = 65536) -> np.ndarray:
        """Network outputs ``(N, m)`` at ``points`` (array-like ``(N, d)``), as numpy."""
        Z = torch.as_tensor(np.asarray(points), dtype=self.dtype, device=self.device)
        net = self.network(theta.detach())
        with torch.no_grad():
            out = torch.cat([net(Z[i:i + batch]) for i in range(0, Z.shape[0], batch)])
        return out.cpu().numpy()


def _check_residual(r: Any, name: str, n: int, dtype: torch.dtype, device: torch.device) -> None:
    """A term's residual on ``n`` points: a tensor of the run's dtype and device."""
    if not isinstance(r, Tensor):
        raise TypeError(f"term {name!r} must give a tensor, got {type(r).__name__}")
    if r.dtype != dtype:
        raise TypeError(
            f"term {name!r} gives {r.dtype} values in a {dtype} run: build constants with "
            f"the dtype of the inputs (e.g. torch.full_like(x, c)), not torch.tensor(c)"
        )
    if r.device != device:
        raise ValueError(
            f"term {name!r} gives values on device {r.device} in a run on {device}: build "
            f"constants on the inputs' device (e.g. torch.zeros_like(x))"
        )
    if r.shape[0] != n:
        raise ValueError(f"term {name!r} gives shape {tuple(r.shape)} on {n} points")
