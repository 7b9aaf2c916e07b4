"""Random, quasi-random and grid point sets in axis-aligned boxes.

Everything here works on a box ``[lows[0], highs[0]] x ... x [lows[d-1], highs[d-1]]`` and
returns numpy ``float64`` arrays of shape ``(n, d)``, one point per row.  The samplers are

``"uniform"``
    i.i.d. uniform points, ``u ~ U[0, 1)^d`` from :meth:`numpy.random.Generator.random`.
``"lhs"``
    Latin hypercube (:class:`scipy.stats.qmc.LatinHypercube`): in every dimension each of the
    ``n`` strata ``[low + k h, low + (k + 1) h)``, ``h = (high - low) / n``, holds exactly one
    point.
``"sobol"``
    scrambled Sobol' sequence (:class:`scipy.stats.qmc.Sobol`); any ``n`` is accepted, although
    the balance properties are best when ``n`` is a power of two.
``"grid"``
    a deterministic tensor-product grid with about ``n`` points (see :func:`grid_counts`).

Unit-cube samples ``u`` are mapped affinely, ``x = low + u (high - low)``.  Random samplers are
reproducible: the same integer seed gives identical points, and a :class:`numpy.random.Generator`
may be passed instead (it is used, and advanced, in place).
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import qmc

__all__ = [
    "SAMPLERS",
    "Seed",
    "sample_box",
    "grid_counts",
    "grid_points",
    "make_rng",
    "validate_box",
    "check_n",
    "check_sampler",
]

SAMPLERS: tuple[str, ...] = ("uniform", "grid", "lhs", "sobol")

Seed = int | np.random.Generator | None

# scipy >= 1.15 takes ``rng=``; older versions only ``seed=``.
_QMC_RNG_KEYWORD = "rng" if "rng" in inspect.signature(qmc.LatinHypercube).parameters else "seed"

# Above this many dimensions grid_counts rounds instead of searching all floor/ceil choices.
_MAX_GRID_SEARCH_DIM = 12


def make_rng(seed: Seed = None) -> np.random.Generator:
    """Return a numpy Generator for ``seed``.

    A Generator is returned unchanged (so it is advanced by whoever uses it); a non-negative
    integer gives ``numpy.random.default_rng(seed)``; ``None`` gives fresh OS entropy.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {seed!r}")


def check_n(n: int) -> int:
    """Return ``n`` as an int if it is a positive integer, else raise ValueError."""
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1:
        return int(n)
    raise ValueError(f"number of points n must be a positive integer, got {n!r}")


def check_sampler(sampler: str) -> str:
    """Return ``sampler`` if it is one of :data:`SAMPLERS`, else raise ValueError."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid samplers are {', '.join(SAMPLERS)}")
    return sampler


def validate_box(
    lows: ArrayLike, highs: ArrayLike, names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Check a box and return ``(lows, highs)`` as 1-D float64 arrays.

    The bounds must be finite, of equal length ``d >= 1``, and satisfy ``lows < highs``
    elementwise.  ``names`` (one per dimension) are only used to make error messages clearer.
    """
    lo = np.atleast_1d(np.asarray(lows, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(highs, dtype=np.float64))
    if lo.ndim != 1 or hi.ndim != 1 or lo.shape != hi.shape:
        raise ValueError(
            f"lows and highs must be 1-D sequences of equal length, got {lo.tolist()} and "
            f"{hi.tolist()}"
        )
    if lo.size == 0:
        raise ValueError("a box needs at least one dimension, got empty lows and highs")
    for i, (a, b) in enumerate(zip(lo, hi)):
        where = f"dimension {i}" + (f" ({names[i]!r})" if names is not None else "")
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"box bounds must be finite: low {a} and high {b} in {where}")
        if a >= b:
            raise ValueError(f"empty box: low {a} >= high {b} in {where}")
    return lo, hi


def grid_counts(
    n: int, lows: ArrayLike, highs: ArrayLike, endpoints: bool = True
) -> tuple[int, ...]:
    """Points per dimension for a tensor-product grid of about ``n`` points in the box.

    The spacing is made nearly equal in all dimensions: with side lengths ``L_i`` and a common
    spacing ``h``, dimension ``i`` gets ``k_i(h) = L_i / h + 1`` points when the grid includes
    the endpoints, or ``k_i(h) = L_i / h`` cell midpoints when it does not.  ``h`` is chosen so
    that ``prod k_i(h) = n`` (with ``k_i >= 2``, resp. ``>= 1``), then each ``k_i`` is rounded
    down or up, picking the combination whose product is closest to ``n`` (ties: the most
    nearly equal spacings).  The product can therefore differ slightly from ``n``; with
    endpoints it is at least ``2**d``.
    """
    n = check_n(n)
    lo, hi = validate_box(lows, highs)
    lengths = hi - lo
    d = lengths.size
    offset, k_min = (1.0, 2) if endpoints else (0.0, 1)

    def continuous(h: float) -> np.ndarray:
        return np.maximum(lengths / h + offset, k_min)

    if k_min**d >= n:
        return (k_min,) * d
    # prod continuous(h) decreases in h; bracket the root and bisect in log h.
    log_lo, log_hi = math.log(lengths.min() / n), math.log(lengths.max())
    for _ in range(200):
        mid = 0.5 * (log_lo + log_hi)
        if np.sum(np.log(continuous(math.exp(mid)))) > math.log(n):
            log_lo = mid
        else:
            log_hi = mid
    k = continuous(math.exp(0.5 * (log_lo + log_hi)))

    if d > _MAX_GRID_SEARCH_DIM:
        return tuple(max(k_min, round(v)) for v in k)
    choices = [sorted({max(k_min, math.floor(v)), max(k_min, math.ceil(v))}) for v in k]

    def badness(counts: tuple[int, ...]) -> tuple[int, float]:
        spacing = lengths / (np.asarray(counts) - offset)
        return abs(math.prod(counts) - n), float(spacing.max() / spacing.min())

    return min(itertools.product(*choices), key=badness)


def grid_points(
    lows: ArrayLike, highs: ArrayLike, counts: Sequence[int], endpoints: bool = True
) -> np.ndarray:
    """Tensor-product grid with ``counts[i]`` points along dimension ``i``.

    With ``endpoints=True`` the axis values are ``linspace(low, high, k)`` (both ends included,
    ``k >= 2``); otherwise they are the ``k`` cell midpoints ``low + (j + 1/2)(high - low)/k``.
    Rows follow ``meshgrid(..., indexing="ij")`` order: the first dimension varies slowest.
    Returns an array of shape ``(prod(counts), d)``.
    """
    lo, hi = validate_box(lows, highs)
    counts = tuple(counts)
    if len(counts) != lo.size:
        raise ValueError(f"need one count per dimension ({lo.size}), got {counts}")
    k_min = 2 if endpoints else 1
    for c in counts:
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < k_min:
            raise ValueError(f"grid counts must be integers >= {k_min}, got {counts}")
    if endpoints:
        axes = [np.linspace(a, b, c) for a, b, c in zip(lo, hi, counts)]
    else:
        axes = [a + (np.arange(c) + 0.5) * (b - a) / c for a, b, c in zip(lo, hi, counts)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


def sample_box(
    n: int,
    lows: ArrayLike,
    highs: ArrayLike,
    sampler: str = "uniform",
    seed: Seed = None,
    *,
    endpoints: bool = True,
) -> np.ndarray:
    """Sample points in the box ``[lows, highs]``; returns a float64 array of shape ``(n, d)``.

    Args:
        n: number of points (a positive int).  The ``"grid"`` sampler returns
            ``prod(grid_counts(n, lows, highs))`` points instead, which may differ slightly.
        lows, highs: box bounds, sequences of length ``d`` with ``lows < highs``.
        sampler: one of :data:`SAMPLERS`.
        seed: an int, a :class:`numpy.random.Generator` or None (ignored by ``"grid"``).
        endpoints: only for ``"grid"``: include the box faces (``linspace`` axes) if True,
            else use cell midpoints, which lie strictly inside the box.

    Raises:
        ValueError: for a non-positive ``n``, an empty box or an unknown sampler.
    """
    n = check_n(n)
    lo, hi = validate_box(lows, highs)
    check_sampler(sampler)
    d = lo.size
    if sampler == "grid":
        return grid_points(lo, hi, grid_counts(n, lo, hi, endpoints), endpoints)
    rng = make_rng(seed)
    if sampler == "uniform":
        u = rng.random((n, d))
    elif sampler == "lhs":
        u = qmc.LatinHypercube(d, **{_QMC_RNG_KEYWORD: rng}).random(n)
    else:  # sobol
        engine = qmc.Sobol(d, scramble=True, **{_QMC_RNG_KEYWORD: rng})
        with warnings.catch_warnings():
            # scipy warns for n not a power of two; any n is allowed here (see module doc).
            warnings.filterwarnings("ignore", "The balance properties", UserWarning)
            u = engine.random(n)
    # Clip guards against rounding up to (or past) the faces in lo + u (hi - lo).
    return np.clip(lo + u * (hi - lo), lo, hi)
