"""Fields and their derivatives by name (``u.x``, ``u.t``, ``u.xx``, ``u.xt``, ...), on torch.func.

Inside a residual, a field ``u`` stands for the network output on a batch of points
``Z`` (shape ``(N, d)``, one column per named coordinate).  Derivatives with respect
to the *inputs* are computed with torch.func transforms applied to the whole batch
(the network acts point-wise, so one batched transform gives the derivative at every
point at once; no per-point ``vmap`` is needed):

* first derivatives of every output in every coordinate come from one reverse pass,
  ``grad_Z sum_n u(Z)_n`` = a :func:`torch.func.vjp` with a cotangent of ones;
* a derivative of order ``k >= 2``, ``d^k u / dz_{a1} ... dz_{ak}`` (indices sorted), comes
  from nesting: the reverse pass along the *chain* ``(a2, ..., a(k-1))`` yields
  ``v = d^(k-1) u / dz_{a1} ... dz_{a(k-1)}`` for the whole batch, and one more
  :func:`torch.func.vjp` through ``v`` gives ``grad_Z v``, i.e. ``d v / dz_j`` for every
  ``j`` at once (reverse-over-reverse, the same graph as hand-written double
  ``torch.autograd.grad`` and measured to cost the same; forward-over-reverse with
  :func:`torch.func.jvp` was ~1.4x slower on CPU because the forward derivative of
  ``tanh_backward`` is decomposed into many small primitives).

A nested pass along a chain also returns every derivative along each suffix of it,
so one pass along ``(x,)`` gives ``u``, ``u_x``, ``u_t``, ``u_xx`` and ``u_xt``: for
Burgers the whole residual costs a single double-reverse evaluation.

Derivatives are computed lazily and cached for one evaluation.  Each term of an
objective keeps a :class:`Plan`: the derivatives its residual asked for the first
time it ran; later evaluations fetch the whole plan in the fewest nested passes, so
nothing is computed twice and nothing the residual does not use is computed at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor
from torch.func import vjp, vmap

__all__ = ["Field", "FieldSet", "Plan", "parse_derivative"]

Key = tuple[int, ...]  # sorted coordinate indices of a derivative; () is the value itself


@functools.lru_cache(maxsize=1024)
def parse_derivative(name: str, coords: tuple[str, ...]) -> Key:
    """Split a derivative name such as ``"xxt"`` into sorted coordinate indices.

    Coordinate names may be longer than one character (``"x1x2"`` with coordinates
    ``("x1", "x2")``); the split is greedy, longest name first, and must be unique.
    """
    names = sorted(coords, key=len, reverse=True)
    out: list[int] = []
    rest = name
    while rest:
        for c in names:
            if rest.startswith(c):
                out.append(coords.index(c))
                rest = rest[len(c):]
                break
        else:
            raise AttributeError(
                f"'{name}' is not a derivative: coordinates are {', '.join(coords)}"
            )
    return tuple(sorted(out))


class Plan:
    """The derivatives one residual needs, learned from its first evaluation."""

    def __init__(self) -> None:
        self.keys: set[Key] = set()

    def chains(self) -> list[Key]:
        """The fewest forward chains whose nested passes cover every planned key.

        A key of order ``k >= 2`` needs the chain ``key[:-1]``; a pass along a chain also
        serves every suffix of it, so chains that are suffixes of a kept one are dropped.
        """
        wanted = sorted({k[:-1] for k in self.keys if len(k) >= 2}, key=len, reverse=True)
        kept: list[Key] = []
        for c in wanted:
            if not any(k[len(k) - len(c):] == c for k in kept):
                kept.append(c)
        if not kept and any(len(k) == 1 for k in self.keys):
            kept.append(())
        return kept


class FieldSet:
    """The outputs of ``fn`` on the points ``Z`` with derivatives on demand.

    ``fn`` maps an ``(N, d)`` batch to ``(N, m)`` outputs; ``coords`` names the ``d``
    input columns and ``fields`` the ``m`` output columns.  ``cache[key]`` holds the
    ``(N, m)`` derivative of every output for a derivative key.
    """

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor],
        Z: Tensor,
        coords: Sequence[str],
        fields: Sequence[str],
        plan: Plan | None = None,
    ) -> None:
        self.fn = fn
        self.Z = Z
        self.coords = tuple(coords)
        self.fields = tuple(fields)
        self.plan = plan if plan is not None else Plan()
        self.cache: dict[Key, Tensor] = {}
        if self.plan.keys:
            self._compute(self.plan.keys)

    def __getitem__(self, name: str) -> Field:
        return Field(self, self.fields.index(name), name)

    def coordinate(self, name: str) -> Tensor:
        return self.Z[:, self.coords.index(name)]

    def derivative(self, key: Key) -> Tensor:
        """The ``(N, m)`` derivative for ``key``, computed (and planned) on first use."""
        self.plan.keys.add(key)
        if key not in self.cache:
            self._compute([key])
        return self.cache[key]

    # -- computation -----------------------------------------------------------------

    def _compute(self, keys: Iterable[Key]) -> None:
        plan = Plan()
        plan.keys = set(keys)
        chains = plan.chains()
        if not chains:
            self.cache[()] = self.fn(self.Z)
            return
        for chain in chains:
            for sub, (out, grad) in self._nested(self.Z, chain).items():
                self.cache[sub] = out
                for j in range(grad.shape[-1]):
                    self.cache.setdefault(tuple(sorted(sub + (j,))), grad[..., j])

    def _value_and_grad(self, Z: Tensor) -> tuple[Tensor, Tensor]:
        """``u(Z)`` of shape ``(N, m)`` and ``du/dZ`` of shape ``(N, m, d)`` by one reverse pass."""
        out, pull = vjp(self.fn, Z)
        return out, _pull_all(pull, out)

    def _nested(self, Z: Tensor, chain: Key) -> dict[Key, tuple[Tensor, Tensor]]:
        """Derivatives along every suffix of ``chain``: ``{sub: (d_sub u, d_sub grad u)}``.

        For ``chain = (a, *rest)``: ``d_rest grad u`` holds ``v = d_rest d_a u``, and one more
        reverse pass through ``v`` gives ``grad v = d_chain grad u``.
        """
        if not chain:
            return {(): self._value_and_grad(Z)}
        head, rest = chain[0], chain[1:]

        def inner(W: Tensor) -> tuple[Tensor, dict]:
            lower = self._nested(W, rest)
            return lower[rest][1][..., head], lower

        out, pull, lower = vjp(inner, Z, has_aux=True)
        result = dict(lower)
        result[chain] = (out, _pull_all(pull, out))
        return result


def _pull_all(pull: Callable, out: Tensor) -> Tensor:
    """``d out[:, k] / dZ`` for every output column k, shape ``(N, m, d)``, from a pullback."""
    if out.shape[1] == 1:
        (g,) = pull(torch.ones_like(out))
        return g.unsqueeze(1)
    eye = torch.eye(out.shape[1], dtype=out.dtype, device=out.device)
    (g,) = vmap(pull)(eye[:, None, :].expand(out.shape[1], *out.shape))  # (m, N, d)
    return g.permute(1, 0, 2)


class Field:
    """One output of the network on a batch, usable as a tensor of shape ``(N,)``.

    ``u.x``, ``u.xx``, ``u.xt`` ... (any order, any coordinate names; ``u.d("x1", "x2")``
    for names that do not concatenate unambiguously) are the partial derivatives.
    Arithmetic and ``torch`` functions act on the values: ``u.t + u * u.x - nu * u.xx``.
    """

    __slots__ = ("_set", "_col", "name")

    def __init__(self, fieldset: FieldSet, column: int, name: str) -> None:
        self._set = fieldset
        self._col = column
        self.name = name

    @property
    def value(self) -> Tensor:
        return self._set.derivative(())[:, self._col]

    def d(self, *coords: str) -> Tensor:
        """The partial derivative of this field in the named coordinates."""
        key = tuple(sorted(self._set.coords.index(c) for c in coords))
        return self._set.derivative(key)[:, self._col]

    def __getattr__(self, name: str) -> Tensor:
        if name.startswith("_"):
            raise AttributeError(name)
        key = parse_derivative(name, self._set.coords)
        return self._set.derivative(key)[:, self._col]

    def __repr__(self) -> str:
        return f"Field({self.name!r}, n={self._set.Z.shape[0]})"

    # -- behave like the tensor of values ---------------------------------------------

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        unwrap = lambda a: a.value if isinstance(a, Field) else a  # noqa: E731
        args = tuple(unwrap(a) for a in args)
        kwargs = {k: unwrap(v) for k, v in (kwargs or {}).items()}
        return func(*args, **kwargs)

    def __len__(self) -> int:
        return self._set.Z.shape[0]

    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    def __neg__(self) -> Tensor:
        return -self.value

    def __pos__(self) -> Tensor:
        return self.value

    def __abs__(self) -> Tensor:
        return self.value.abs()

    def __getitem__(self, index):
        return self.value[index]


def _binary(op: str) -> Callable:
    def forward(self: Field, other):
        other = other.value if isinstance(other, Field) else other
        return getattr(self.value, op)(other)

    forward.__name__ = op
    return forward


for _op in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__",
    "__lt__", "__le__", "__gt__", "__ge__",
):
    setattr(Field, _op, _binary(_op))
