"""Small helpers shared by the catalog modules: parameter checks and the Coons patch."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def number(name: str, value: object, *, positive: bool = False, nonnegative: bool = False,
           low: float | None = None, high: float | None = None) -> float:
    """``value`` as a finite float, or a ValueError naming the parameter and the bound."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"parameter {name} must be a finite number, got {value!r}")
    v = float(value)
    if positive and v <= 0:
        raise ValueError(f"parameter {name} must be > 0, got {value!r}")
    if nonnegative and v < 0:
        raise ValueError(f"parameter {name} must be >= 0, got {value!r}")
    if low is not None and v < low:
        raise ValueError(f"parameter {name} must be >= {low:g}, got {value!r}")
    if high is not None and v > high:
        raise ValueError(f"parameter {name} must be <= {high:g}, got {value!r}")
    return v


def count(name: str, value: object, low: int = 1) -> int:
    """``value`` as an integer >= ``low``, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"parameter {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def coons_patch(
    g: Callable[[Tensor, Tensor], Tensor], x0: float, x1: float, y0: float, y1: float
) -> Callable[[Tensor, Tensor], Tensor]:
    r"""The transfinite (Coons) interpolant of boundary data ``g`` on a rectangle.

    With :math:`\xi = (x - x_0)/(x_1 - x_0)`, :math:`\eta = (y - y_0)/(y_1 - y_0)`,

    .. math::  B = (1-\xi) g(x_0, y) + \xi g(x_1, y) + (1-\eta) g(x, y_0) + \eta g(x, y_1)
               - \big[(1-\xi)(1-\eta) g_{00} + \xi(1-\eta) g_{10} + (1-\xi)\eta g_{01}
               + \xi\eta g_{11}\big]

    equals ``g`` on all four sides (for ``g`` continuous at the corners), so
    ``u = B + (x - x0)(x1 - x)(y - y0)(y1 - y) N`` satisfies the Dirichlet condition
    exactly for any network output ``N`` (Gordon & Hall 1973).
    """

    def patch(x: Tensor, y: Tensor) -> Tensor:
        xi, eta = (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)
        full = lambda v, like: torch.full_like(like, v)  # noqa: E731
        X0, X1, Y0, Y1 = full(x0, x), full(x1, x), full(y0, y), full(y1, y)
        edges = (1 - xi) * g(X0, y) + xi * g(X1, y) + (1 - eta) * g(x, Y0) + eta * g(x, Y1)
        corners = ((1 - xi) * (1 - eta) * g(X0, Y0) + xi * (1 - eta) * g(X1, Y0)
                   + (1 - xi) * eta * g(X0, Y1) + xi * eta * g(X1, Y1))
        return edges - corners

    return patch
