"""Axis-aligned domains with named coordinates, and the parts a PINN samples points from.

A domain is a box ``[lows[0], highs[0]] x ... x [lows[d-1], highs[d-1]]`` whose columns carry
names, e.g. ``("x", "y")`` or ``("x", "t")``.  Points are numpy float64 arrays of shape
``(n, dim)`` with columns in :attr:`Domain.names` order.

* :class:`Box` (with the shortcuts :class:`Interval` and :class:`Rectangle`) is a spatial
  domain; its boundary is the union of its ``2 d`` faces ``{x_i = low_i}`` and
  ``{x_i = high_i}``.
* :class:`TimeInterval` ``[t0, t1]`` is a time axis; ``Box * TimeInterval`` gives a
  :class:`SpaceTime` with coordinates ``space.names + (time.name,)``.  Its (spatial) boundary
  is ``boundary(space) x [t0, t1]`` and its initial slice is ``space x {t0}``.

Training points come from :meth:`Region.interior`, :meth:`Region.boundary`,
:meth:`SpaceTime.initial` and :meth:`Region.periodic_pairs`, each taking ``n``, a ``sampler``
from :data:`pinnsolve.sampling.SAMPLERS` and a ``seed``.  The same seed gives identical points;
each part mixes its own fixed tag into an integer seed so that, e.g., ``interior(n, seed=0)``
and ``boundary(n, seed=0)`` are not built from the same random numbers.  With
``sampler="grid"`` the parts use cell-midpoint grids (so interior points avoid the faces and
boundary points avoid the edges and corners) and return about ``n`` points (see
:func:`pinnsolve.sampling.grid_counts`); :meth:`Domain.grid` gives an evaluation grid that
includes the endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from pinnsolve.sampling import (
    Seed,
    check_n,
    check_sampler,
    grid_points,
    make_rng,
    sample_box,
    validate_box,
)

__all__ = ["Domain", "Region", "Box", "Interval", "Rectangle", "TimeInterval", "SpaceTime"]

# Per-part tags mixed into integer seeds (see the module docstring).
_PART_TAGS = {"interior": 1, "boundary": 2, "initial": 3, "periodic": 4}


def _part_rng(seed: Seed, part: str) -> np.random.Generator:
    """Generator for one part: a Generator is used as is, an int seed gets the part's tag."""
    rng = make_rng(seed)  # validates the seed
    if isinstance(seed, np.random.Generator) or seed is None:
        return rng
    return np.random.default_rng([int(seed), _PART_TAGS[part]])


class Domain:
    """A box of named coordinates: ``names``, ``dim``, ``lows``, ``highs``.

    Raises ValueError at construction for an empty or inverted box (``low >= high``),
    non-finite bounds, or empty/duplicate coordinate names.
    """

    def __init__(self, lows: ArrayLike, highs: ArrayLike, names: Sequence[str]) -> None:
        names = tuple(names)
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"coordinate names must be non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate coordinate names in {names!r}")
        lo, hi = validate_box(lows, highs, names if len(names) == np.size(lows) else None)
        if len(names) != lo.size:
            raise ValueError(f"need one name per dimension ({lo.size}), got {names!r}")
        self._names = names
        self._lows = tuple(float(v) for v in lo)
        self._highs = tuple(float(v) for v in hi)

    @property
    def names(self) -> tuple[str, ...]:
        """Coordinate names, in column order."""
        return self._names

    @property
    def dim(self) -> int:
        """Number of coordinates (columns of a point array)."""
        return len(self._names)

    @property
    def lows(self) -> np.ndarray:
        """Lower bounds, a new float64 array of shape ``(dim,)``."""
        return np.array(self._lows)

    @property
    def highs(self) -> np.ndarray:
        """Upper bounds, a new float64 array of shape ``(dim,)``."""
        return np.array(self._highs)

    def index(self, name: str) -> int:
        """Column of coordinate ``name``; ValueError listing the names if there is none."""
        try:
            return self._names.index(name)
        except ValueError:
            msg = f"unknown coordinate {name!r}; coordinates are {self._names}"
            raise ValueError(msg) from None

    def _as_points(self, points: ArrayLike) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.dim:
            raise ValueError(f"points must have shape (n, {self.dim}), got {p.shape}")
        return p

    def contains(self, points: ArrayLike, tol: float = 1e-9) -> np.ndarray:
        """Boolean array ``(n,)``: whether each point lies in the closed box.

        ``tol`` is relative to the side lengths: coordinate ``i`` may lie up to
        ``tol * (high_i - low_i)`` outside ``[low_i, high_i]``.
        """
        p = self._as_points(points)
        slack = tol * (self.highs - self.lows)
        return np.all((p >= self.lows - slack) & (p <= self.highs + slack), axis=1)

    def grid(self, counts: Mapping[str, int] | Sequence[int] | int) -> np.ndarray:
        """Tensor-product evaluation grid including the endpoints of every coordinate.

        ``counts`` gives the points per coordinate (each ``>= 2``): a mapping with every name, a
        sequence in :attr:`names` order, or one int for all coordinates.  Rows are in
        ``meshgrid(..., indexing="ij")`` order (the first name varies slowest); the result has
        shape ``(prod(counts), dim)``.
        """
        if isinstance(counts, Mapping):
            unknown = [k for k in counts if k not in self._names]
            missing = [k for k in self._names if k not in counts]
            if unknown or missing:
                raise ValueError(
                    f"grid counts need exactly the coordinates {self._names}; "
                    f"unknown {unknown}, missing {missing}"
                )
            counts = tuple(counts[k] for k in self._names)
        elif isinstance(counts, (int, np.integer)):
            counts = (counts,) * self.dim
        return grid_points(self.lows, self.highs, tuple(counts), endpoints=True)

    def _key(self) -> tuple:
        return (type(self), self._lows, self._highs, self._names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domain) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class Region(Domain):
    """A domain with spatial coordinates, from which training points are sampled.

    The spatial boundary consists of the faces ``{x_i = low_i}`` and ``{x_i = high_i}`` for the
    spatial columns ``i`` in :attr:`space_dims` (all columns for a :class:`Box`, all but time
    for a :class:`SpaceTime`).
    """

    @property
    def space_dims(self) -> tuple[int, ...]:
        """Columns of the spatial coordinates."""
        return tuple(range(self.dim))

    def _on_face(self, free_points: np.ndarray, i: int, value: float) -> np.ndarray:
        """Insert the constant column ``i`` = ``value`` into points of the other columns."""
        out = np.empty((free_points.shape[0], self.dim))
        out[:, [j for j in range(self.dim) if j != i]] = free_points
        out[:, i] = value
        return out

    def _sample_without(self, n: int, i: int, sampler: str, rng: np.random.Generator) -> np.ndarray:
        """Sample the box of all columns except ``i`` (``(n, 0)`` if there are none)."""
        free = [j for j in range(self.dim) if j != i]
        if not free:
            return np.empty((n, 0))
        lo, hi = self.lows[free], self.highs[free]
        return sample_box(n, lo, hi, sampler, rng, endpoints=False)

    def interior(self, n: int, sampler: str = "uniform", seed: Seed = None) -> np.ndarray:
        """``n`` points in the interior; ``(n, dim)``.

        Random samplers draw from the whole box (faces are hit with probability zero; for a
        :class:`SpaceTime` the time lies in ``(t0, t1]`` in that sense); ``"grid"`` gives cell
        midpoints, strictly inside.
        """
        rng = _part_rng(seed, "interior")
        return sample_box(n, self.lows, self.highs, sampler, rng, endpoints=False)

    def boundary(self, n: int, sampler: str = "uniform", seed: Seed = None) -> np.ndarray:
        """``n`` points on the spatial boundary; ``(n, dim)``.

        The points are split over the faces in proportion to face area, i.e. the faces
        ``x_i = low_i`` and ``x_i = high_i`` each get a share ``∝ 1 / (high_i - low_i)``:
        ``floor`` of the exact share, the leftover points going to the largest remainders
        (ties broken at random).  Each face is sampled with ``sampler`` in the box of the other
        coordinates (for a :class:`SpaceTime` these include time, over ``[t0, t1]``).  Rows are
        grouped by face, in order ``x_0 = low, x_0 = high, x_1 = low, ...``.

        For a 1-D space the faces are the two endpoints, so the points are split half/half
        (a pure :class:`Interval` returns only endpoint values, ``low`` rows first; with odd
        ``n`` a random end gets the extra point).
        """
        n = check_n(n)
        check_sampler(sampler)
        rng = _part_rng(seed, "boundary")
        lo, hi = self.lows, self.highs
        faces = [(i, value) for i in self.space_dims for value in (lo[i], hi[i])]
        weights = np.array([1.0 / (hi[i] - lo[i]) for i, _ in faces])
        pieces = [
            self._on_face(self._sample_without(k, i, sampler, rng), i, value)
            for (i, value), k in zip(faces, _split(n, weights, rng))
            if k > 0
        ]
        return np.concatenate(pieces, axis=0)

    def boundary_normals(self, points: ArrayLike, tol: float = 1e-6) -> np.ndarray:
        """Outward unit normals ``(n, dim)`` at points on the spatial boundary.

        Each point is assigned its nearest face (distances relative to the side length); the
        normal is ``-e_i`` on ``x_i = low_i`` and ``+e_i`` on ``x_i = high_i``, with a zero
        time component.  At edges and corners, where the normal is not defined, the first
        nearest face in the order of :meth:`boundary` wins.

        Raises:
            ValueError: if a point is not within ``tol`` (relative) of the spatial boundary.
        """
        p = self._as_points(points)
        dims = list(self.space_dims)
        lo, hi = self.lows[dims], self.highs[dims]
        length = hi - lo
        # Column 2k: distance to x_k = low_k, column 2k + 1: to x_k = high_k.
        dist = np.empty((p.shape[0], 2 * len(dims)))
        dist[:, 0::2] = np.abs(p[:, dims] - lo) / length
        dist[:, 1::2] = np.abs(p[:, dims] - hi) / length
        face = np.argmin(dist, axis=1)
        rows = np.arange(p.shape[0])
        off = (dist[rows, face] > tol) | ~self.contains(p, tol)
        if off.any():
            raise ValueError(
                f"{int(off.sum())} point(s) are not on the spatial boundary, "
                f"e.g. {p[off][0].tolist()} (coordinates {self.names})"
            )
        normals = np.zeros_like(p)
        normals[rows, np.asarray(dims)[face // 2]] = np.where(face % 2 == 0, -1.0, 1.0)
        return normals

    def periodic_pairs(
        self, n: int, name: str, sampler: str = "uniform", seed: Seed = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Matching points ``(left, right)``, each ``(n, dim)``, for a periodic condition.

        The other coordinates are sampled with ``sampler`` over their full ranges and shared;
        only the spatial coordinate ``name`` differs: it is ``low`` in ``left`` and ``high`` in
        ``right``.
        """
        n = check_n(n)
        check_sampler(sampler)
        i = self.index(name)
        if i not in self.space_dims:
            spatial = tuple(self.names[j] for j in self.space_dims)
            raise ValueError(
                f"periodic coordinate must be spatial, got {name!r}; spatial ones are {spatial}"
            )
        free = self._sample_without(n, i, sampler, _part_rng(seed, "periodic"))
        return self._on_face(free, i, self._lows[i]), self._on_face(free, i, self._highs[i])


def _split(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainders)."""
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    order = rng.permutation(len(weights))  # random tie-break among equal remainders
    order = order[np.argsort(-(exact - counts)[order], kind="stable")]
    counts[order[: n - counts.sum()]] += 1
    return counts


def _default_names(dim: int) -> tuple[str, ...]:
    return ("x", "y", "z")[:dim] if dim <= 3 else tuple(f"x{i}" for i in range(dim))


class Box(Region):
    """Spatial box ``[lows, highs]`` with coordinate ``names``.

    ``names`` defaults to ``("x",)``, ``("x", "y")``, ``("x", "y", "z")``, or ``x0, x1, ...``
    for more dimensions.  ``box * TimeInterval(...)`` gives a :class:`SpaceTime`.
    """

    def __init__(
        self, lows: ArrayLike, highs: ArrayLike, names: Sequence[str] | None = None
    ) -> None:
        if names is None:
            names = _default_names(np.size(lows))
        super().__init__(lows, highs, names)

    def __mul__(self, other: object) -> SpaceTime:
        if isinstance(other, TimeInterval):
            return SpaceTime(self, other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Box(lows={self._lows}, highs={self._highs}, names={self._names})"


class Interval(Box):
    """1-D spatial domain ``[low, high]`` with coordinate ``name``."""

    def __init__(self, low: float, high: float, name: str = "x") -> None:
        super().__init__((low,), (high,), (name,))

    @property
    def low(self) -> float:
        return self._lows[0]

    @property
    def high(self) -> float:
        return self._highs[0]

    @property
    def name(self) -> str:
        return self._names[0]

    def __repr__(self) -> str:
        return f"Interval({self.low}, {self.high}, name={self.name!r})"


class Rectangle(Box):
    """2-D spatial domain ``[lows[0], highs[0]] x [lows[1], highs[1]]``."""

    def __init__(
        self, lows: ArrayLike, highs: ArrayLike, names: Sequence[str] = ("x", "y")
    ) -> None:
        if np.size(lows) != 2 or np.size(highs) != 2:
            raise ValueError(f"a Rectangle needs 2 lows and 2 highs, got {lows} and {highs}")
        super().__init__(lows, highs, names)

    def __repr__(self) -> str:
        return f"Rectangle(lows={self._lows}, highs={self._highs}, names={self._names})"


class TimeInterval(Domain):
    """Time axis ``[t0, t1]`` with coordinate ``name``; combine with ``space * time``."""

    def __init__(self, t0: float, t1: float, name: str = "t") -> None:
        super().__init__((t0,), (t1,), (name,))

    @property
    def t0(self) -> float:
        return self._lows[0]

    @property
    def t1(self) -> float:
        return self._highs[0]

    @property
    def name(self) -> str:
        return self._names[0]

    def __repr__(self) -> str:
        return f"TimeInterval({self.t0}, {self.t1}, name={self.name!r})"


class SpaceTime(Region):
    """Product ``space x [t0, t1]``; coordinates ``space.names + (time.name,)``.

    Also obtained as ``space * time``.  Raises ValueError if the time name is also a space name.
    """

    def __init__(self, space: Box, time: TimeInterval) -> None:
        if not isinstance(space, Box):
            raise TypeError(f"space must be a Box, got {type(space).__name__}")
        if not isinstance(time, TimeInterval):
            raise TypeError(f"time must be a TimeInterval, got {type(time).__name__}")
        if time.name in space.names:
            raise ValueError(
                f"time coordinate name {time.name!r} clashes with the space coordinates "
                f"{space.names}"
            )
        super().__init__(
            np.append(space.lows, time.t0),
            np.append(space.highs, time.t1),
            space.names + time.names,
        )
        self.space = space
        self.time = time

    @property
    def space_dims(self) -> tuple[int, ...]:
        return tuple(range(self.space.dim))

    def initial(self, n: int, sampler: str = "uniform", seed: Seed = None) -> np.ndarray:
        """``n`` points ``(x, t0)`` with ``x`` in the space interior (as in :meth:`interior`)."""
        x = self.space.interior(n, sampler, _part_rng(seed, "initial"))
        return np.concatenate([x, np.full((x.shape[0], 1), self.time.t0)], axis=1)

    def _key(self) -> tuple:
        return (*super()._key(), self.space._key())

    def __repr__(self) -> str:
        return f"SpaceTime({self.space!r}, {self.time!r})"
