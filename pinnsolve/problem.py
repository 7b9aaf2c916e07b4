"""Problems: a domain, named fields, a PDE residual, conditions and the weight of each term.

A :class:`Problem` is declarative; compiling it with a model (:meth:`Problem.compile`)
samples the points and gives an :class:`~pinnsolve.objective.PINNObjective`.  Its loss is
the weighted composite

.. math::  L(\\theta) = \\sum_k w_k \\frac{1}{N_k} \\sum_{i=1}^{N_k} \\| r_k(z_i; \\theta) \\|^2

over the terms ``k`` (the PDE residual and every condition), each with its own points.

Residuals and condition values are plain functions whose *argument names* say what
they need: field names (``u``, ``v``; a :class:`~pinnsolve.fields.Field` with derivatives
``u.x``, ``u.xx`` ...), coordinate names (``x``, ``t``; tensors of shape ``(N,)``) and
problem parameters (``nu``)::

    problem = Problem(Interval(-1, 1) * TimeInterval(0, 1), parameters={"nu": 0.01})
    problem.pde(lambda u, nu: u.t + u * u.x - nu * u.xx, n=2000)
    problem.add(Initial(lambda x: -torch.sin(math.pi * x), n=200))
    problem.add(Dirichlet(0.0, n=200))

A parameter given as :class:`Unknown` (``parameters={"nu": Unknown(init=0.05)}``) is
learned with the network (an inverse problem; observations come as a :class:`Data`
term).  Conditions are checked against the problem when added (:meth:`Condition.check`):
a part the domain lacks, an unknown field or derivative, data outside the domain are
errors naming the term.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .fields import Field, FieldSet, parse_derivative
from .geometry import SpaceTime
from .sampling import SAMPLERS

if TYPE_CHECKING:
    from .objective import PINNObjective

__all__ = [
    "Problem",
    "Condition",
    "PDE",
    "Initial",
    "Dirichlet",
    "Neumann",
    "Robin",
    "Periodic",
    "Data",
    "Unknown",
]

Value = Callable[..., Tensor] | float | int


@dataclass(frozen=True)
class Unknown:
    """A problem parameter learned from data (an inverse problem): ``Unknown(init=0.05)``.

    It becomes part of theta.  ``positive=True`` (default) trains ``s = log(value)``, so the
    value ``exp(s)`` stays positive whatever step the optimizer takes, and a relative change
    of a small coefficient (a viscosity) costs the same as of a large one; ``positive=False``
    trains the value itself.
    """

    init: float
    positive: bool = True

    def __post_init__(self) -> None:
        ok = isinstance(self.init, int | float) and math.isfinite(self.init)
        if not ok or (self.positive and self.init <= 0):
            need = "a positive number" if self.positive else "a finite number"
            raise ValueError(f"Unknown(init=...) must be {need}, got {self.init!r}")

    def raw(self) -> float:
        """The entry of theta that encodes ``init``."""
        return math.log(self.init) if self.positive else float(self.init)

    def value(self, raw: Tensor) -> Tensor:
        """The parameter value encoded by the entry ``raw`` of theta."""
        return raw.exp() if self.positive else raw


class Condition:
    """A term of the loss: where its points lie and what vanishes there.

    Subclasses set ``part`` (``"interior"``, ``"boundary"``, ``"initial"``, ``"periodic"``
    or ``"data"``) and implement :meth:`residual`.  ``n`` points are drawn with ``sampler``
    (``None``: the problem's default) unless the condition carries its own points.
    """

    part: str = "interior"
    default_name: str = "term"

    def __init__(
        self,
        n: int = 200,
        weight: float = 1.0,
        sampler: str | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(n, int | np.integer) or n <= 0:
            raise ValueError(f"number of points must be a positive integer, got {n!r}")
        if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
        if sampler is not None and sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose from: {', '.join(SAMPLERS)}")
        self.n = int(n)
        self.weight = float(weight)
        self.sampler = sampler
        self.name = name or self.default_name

    def sample(self, domain: Any, sampler: str, seed: np.random.Generator) -> list[np.ndarray]:
        """The point set(s) of this term, each ``(n, d)``."""
        return [getattr(domain, self.part)(self.n, sampler=self.sampler or sampler, seed=seed)]

    def prepare(self, problem: Problem, points: list[Tensor]) -> dict[str, Tensor]:
        """Constant tensors the residual needs on these points (targets, normals)."""
        return {}

    def residual(self, sets: list[FieldSet], aux: dict[str, Tensor], params: Mapping) -> Tensor:
        raise NotImplementedError

    def check(self, problem: Problem) -> None:
        """Raise a ValueError naming what this condition needs that ``problem`` lacks."""
        domain = problem.domain
        if self.part in ("interior", "boundary", "initial", "periodic"):
            method = "periodic_pairs" if self.part == "periodic" else self.part
            if not hasattr(domain, method):
                what = {"interior": "an interior", "boundary": "a spatial boundary",
                        "initial": "an initial time (use space * TimeInterval(t0, t1))",
                        "periodic": "a spatial coordinate"}[self.part]
                raise ValueError(
                    f"{type(self).__name__} condition {self.name!r} needs {what}, but the "
                    f"domain {domain!r} has none"
                )
        field_name = getattr(self, "field", None)
        if field_name is not None and field_name not in problem.fields:
            raise ValueError(
                f"{type(self).__name__} condition {self.name!r} is on field {field_name!r}; "
                f"the problem's fields are {', '.join(problem.fields)}"
            )
        derivative = getattr(self, "derivative", None)
        for d in ([derivative] if derivative else []) + list(getattr(self, "derivatives", ())):
            try:
                parse_derivative(d, problem.coords)
            except AttributeError:
                raise ValueError(
                    f"{type(self).__name__} condition {self.name!r}: derivative {d!r} is not "
                    f"made of the coordinates {', '.join(problem.coords)}"
                ) from None


@functools.lru_cache(maxsize=256)
def _arg_names(fn: Callable) -> tuple[str, ...]:
    return tuple(inspect.signature(fn).parameters)


def _call_by_name(fn: Callable, what: str, sets: FieldSet, params: Mapping) -> Any:
    """Call ``fn`` with the fields, coordinates and parameters its argument names ask for."""
    args = []
    for arg in _arg_names(fn):
        if arg in sets.fields:
            args.append(sets[arg])
        elif arg in sets.coords:
            args.append(sets.coordinate(arg))
        elif arg in params:
            args.append(params[arg])
        else:
            raise TypeError(
                f"{what}: argument {arg!r} is not a field ({', '.join(sets.fields)}), "
                f"a coordinate ({', '.join(sets.coords)}) or a parameter "
                f"({', '.join(params) or 'none'})"
            )
    return fn(*args)


def _target(value: Value, what: str, problem: Problem, Z: Tensor) -> Tensor:
    """Evaluate a condition's value (a number or a function of coordinates) at ``Z``."""
    if callable(value):
        coords = {c: Z[:, i] for i, c in enumerate(problem.coords)}
        args = []
        for arg in _arg_names(value):
            if arg in coords:
                args.append(coords[arg])
            elif arg in problem.parameters:
                if isinstance(problem.parameters[arg], Unknown):
                    raise TypeError(
                        f"{what}: argument {arg!r} is an unknown (learned) parameter; only "
                        f"residuals may use it, condition values must be known"
                    )
                args.append(problem.parameters[arg])
            else:
                raise TypeError(
                    f"{what}: argument {arg!r} is not a coordinate ({', '.join(problem.coords)})"
                    f" or a parameter ({', '.join(problem.parameters) or 'none'})"
                )
        out = value(*args)
        if isinstance(out, Tensor | np.ndarray | float | int):
            # A float32 (or numpy, or other-device) value is converted to the run's dtype.
            out = torch.as_tensor(out, dtype=Z.dtype, device=Z.device)
    else:
        out = torch.full((Z.shape[0],), float(value), dtype=Z.dtype, device=Z.device)
    if isinstance(out, Tensor) and out.ndim == 0:
        out = out.expand(Z.shape[0])
    out = _check_shape(out, what, Z.shape[0])
    if out.ndim == 2:  # a value of one field: (N, 1) -> (N,), never broadcast to (N, N)
        if out.shape[1] != 1:
            raise ValueError(f"{what} returned shape {tuple(out.shape)}; expected "
                             f"({Z.shape[0]},) for one field")
        out = out[:, 0]
    return out


def _check_shape(r: Any, what: str, n: int) -> Tensor:
    if isinstance(r, Field):
        r = r.value
    if not isinstance(r, Tensor):
        raise TypeError(f"{what} must return a tensor, got {type(r).__name__}")
    if r.ndim == 2 and r.shape[0] == n:
        return r
    if r.shape != (n,):
        raise ValueError(
            f"{what} returned shape {tuple(r.shape)} on {n} points; expected ({n},) or ({n}, k)"
        )
    return r


class PDE(Condition):
    """The PDE residual ``f(fields, coords, params) = 0`` on interior points.

    A system returns a tuple/list of residuals (or an ``(N, k)`` tensor).
    """

    part = "interior"
    default_name = "pde"

    def __init__(self, residual: Callable, n: int = 2000, **kw: Any) -> None:
        super().__init__(n, **kw)
        if not callable(residual):
            raise TypeError(f"the PDE residual must be a function, got {residual!r}")
        self.fn = residual

    def residual(self, sets, aux, params):
        (fs,) = sets
        r = _call_by_name(self.fn, f"residual {self.name!r}", fs, params)
        if isinstance(r, tuple | list):
            n = fs.Z.shape[0]
            r = torch.stack([_check_shape(x, f"residual {self.name!r}", n) for x in r], dim=1)
        return _check_shape(r, f"residual {self.name!r}", fs.Z.shape[0])


class _ValueCondition(Condition):
    """``D field - g = 0`` where ``D`` is the identity or a derivative."""

    def __init__(
        self, value: Value = 0.0, field: str = "u", derivative: str | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.value = value
        self.field = field
        self.derivative = derivative

    def prepare(self, problem, points):
        return {"target": _target(self.value, f"value of {self.name!r}", problem, points[0])}

    def _operator(self, f: Field, aux: dict[str, Tensor]) -> Tensor:
        return f.value if self.derivative is None else getattr(f, self.derivative)

    def residual(self, sets, aux, params):
        (fs,) = sets
        return self._operator(fs[self.field], aux) - aux["target"]


class Initial(_ValueCondition):
    """``u(z, t0) = g(z)`` (or ``u_t(z, t0) = g(z)`` with ``derivative="t"``)."""

    part = "initial"
    default_name = "ic"


class Dirichlet(_ValueCondition):
    """``u = g`` on the spatial boundary."""

    part = "boundary"
    default_name = "bc"


class Neumann(_ValueCondition):
    """``du/dn = n . grad_x u = g`` on the spatial boundary (``n`` the outward normal)."""

    part = "boundary"
    default_name = "neumann"

    def prepare(self, problem, points):
        aux = super().prepare(problem, points)
        normals = problem.domain.boundary_normals(points[0].detach().cpu().numpy())
        aux["normals"] = torch.as_tensor(normals, dtype=points[0].dtype, device=points[0].device)
        return aux

    def _operator(self, f, aux):
        n = aux["normals"]
        return sum(n[:, i] * f.d(c) for i, c in enumerate(f._set.coords) if bool(n[:, i].any()))


class Robin(Neumann):
    """``a u + b du/dn = g`` on the spatial boundary."""

    default_name = "robin"

    def __init__(self, a: float, b: float, value: Value = 0.0, field: str = "u", **kw: Any):
        super().__init__(value, field, **kw)
        self.a, self.b = float(a), float(b)

    def _operator(self, f, aux):
        return self.a * f.value + self.b * super()._operator(f, aux)


class Periodic(Condition):
    """``D u(.., low, ..) = D u(.., high, ..)`` in coordinate ``coord`` for ``D`` in derivatives.

    ``derivatives`` lists the derivative names to match besides the value (``("x",)``
    also matches ``u_x``); the default matches the value only.
    """

    part = "periodic"
    default_name = "periodic"

    def __init__(
        self, coord: str = "x", field: str = "u", derivatives: Sequence[str] = (), **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.coord, self.field, self.derivatives = coord, field, tuple(derivatives)

    def check(self, problem):
        super().check(problem)
        spatial = [problem.coords[i] for i in problem.domain.space_dims]
        if self.coord not in spatial:
            raise ValueError(
                f"Periodic condition {self.name!r} is in coordinate {self.coord!r}; the "
                f"domain's spatial coordinates are {', '.join(spatial)}"
            )

    def sample(self, domain, sampler, seed):
        left, right = domain.periodic_pairs(self.n, self.coord, sampler=self.sampler or sampler,
                                            seed=seed)
        return [left, right]

    def residual(self, sets, aux, params):
        left, right = sets[0][self.field], sets[1][self.field]
        parts = [left.value - right.value]
        parts += [getattr(left, d) - getattr(right, d) for d in self.derivatives]
        return parts[0] if len(parts) == 1 else torch.stack(parts, dim=1)


class Data(Condition):
    """Observations ``u(z_i) = y_i`` at given points (``points`` of shape ``(n, d)``)."""

    part = "data"
    default_name = "data"

    def __init__(self, points: Any, values: Any, field: str = "u", **kw: Any) -> None:
        points = np.asarray(points, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if points.ndim != 2 or points.shape[0] != values.shape[0] or points.shape[0] == 0:
            raise ValueError(
                f"data points must have shape (n, d) with n = len(values) > 0, got "
                f"{points.shape} points and {values.shape[0]} values"
            )
        super().__init__(n=points.shape[0], **kw)
        self.points, self.values, self.field = points, values, field

    def check(self, problem):
        super().check(problem)
        domain = problem.domain
        if self.points.shape[1] != domain.dim:
            raise ValueError(
                f"data points have {self.points.shape[1]} coordinates; the domain has "
                f"{domain.dim} ({', '.join(domain.names)})"
            )
        if not (np.isfinite(self.points).all() and np.isfinite(self.values).all()):
            raise ValueError(f"data {self.name!r} holds non-finite points or values")
        outside = ~domain.contains(self.points)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} data point(s) of {self.name!r} lie outside the domain, "
                f"e.g. {self.points[outside][0].tolist()} ({', '.join(domain.names)} in "
                f"{list(zip(domain.lows.tolist(), domain.highs.tolist()))})"
            )

    def sample(self, domain, sampler, seed):
        return [self.points]

    def prepare(self, problem, points):
        return {"target": torch.as_tensor(self.values, dtype=points[0].dtype,
                                          device=points[0].device)}

    def residual(self, sets, aux, params):
        return sets[0][self.field].value - aux["target"]


@dataclass
class Problem:
    """A PDE problem: domain, output fields, parameters, terms, and optionally its solution.

    ``solution``, if known, maps an ``(N, d)`` numpy array of points to the ``(N, m)``
    exact values (used to report errors; never used in training); ``grid`` gives the
    points per coordinate of the evaluation grid those errors are measured on (default
    101 each).  ``transform(z, n)`` turns the network output ``n`` into the fields,
    imposing conditions exactly (see :class:`~pinnsolve.models.OutputTransform`).
    """

    domain: Any
    fields: Sequence[str] = ("u",)
    parameters: dict[str, Any] = field(default_factory=dict)
    sampler: str = "sobol"
    name: str = "problem"
    solution: Callable[[np.ndarray], np.ndarray] | None = None
    transform: Callable[[Tensor, Tensor], Tensor] | None = None
    grid: dict[str, int] | None = None
    conditions: list[Condition] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.fields, str):
            self.fields = (self.fields,)
        self.fields = tuple(self.fields)
        if not self.fields or len(set(self.fields)) != len(self.fields):
            raise ValueError(f"fields must be distinct names, got {self.fields!r}")
        clash = set(self.fields) & set(self.coords)
        if clash:
            raise ValueError(f"field names clash with coordinate names: {sorted(clash)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"unknown sampler {self.sampler!r}; choose from: {', '.join(SAMPLERS)}"
            )

    @property
    def coords(self) -> tuple[str, ...]:
        return tuple(self.domain.names)

    def evaluation_grid(self) -> np.ndarray:
        """The ``(N, d)`` points errors are measured on (tensor grid, first name slowest)."""
        counts = self.grid or {}
        return self.domain.grid(tuple(int(counts.get(c, 101)) for c in self.coords))

    @property
    def is_time_dependent(self) -> bool:
        return isinstance(self.domain, SpaceTime)

    def add(self, *conditions: Condition) -> Problem:
        """Add terms to the loss; names must be unique (a suffix is added if needed)."""
        for c in conditions:
            if not isinstance(c, Condition):
                raise TypeError(f"expected a Condition, got {c!r}")
            c.check(self)
            names = {t.name for t in self.conditions}
            base, k = c.name, 2
            while c.name in names:
                c.name = f"{base}{k}"
                k += 1
            self.conditions.append(c)
        return self

    def pde(self, residual: Callable, n: int = 2000, **kw: Any) -> Problem:
        """Add the PDE residual on ``n`` interior points (shorthand for ``add(PDE(...))``)."""
        return self.add(PDE(residual, n=n, **kw))

    def compile(self, model: torch.nn.Module, **kw: Any) -> PINNObjective:
        """Sample the points and build the objective; see :class:`PINNObjective`."""
        from .objective import PINNObjective

        return PINNObjective(self, model, **kw)
