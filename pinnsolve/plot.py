"""Validation figures: solution maps, time slices and convergence histories.

Figures are plain :class:`matplotlib.figure.Figure` objects with an Agg canvas, not
registered with pyplot: nothing is shown, no global state changes, and they need not be
closed (they are freed like any object). Files are written atomically
(:func:`pinnsolve.io.atomic_write`) in the format given by the suffix (default PNG).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .io import atomic_write, check_writable, load_run

__all__ = ["plot_history", "plot_run", "plot_solution", "save_figure"]

ERROR_FLOOR = 1e-16
"""Errors are floored here for the log colour scale (exact zeros would be log(0))."""

ERROR_DECADES = 8
"""The error colour scale spans at most this many decades below the largest error."""

MAX_MARKERS = 40
"""At most this many prediction markers per slice panel."""

DPI = 150


def _new_figure(**kwargs: Any) -> Figure:
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Atomically save ``fig`` to ``path`` in the format named by its suffix (default png)."""
    path = check_writable(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"cannot save a figure as {path}: unknown format {fmt!r} "
            f"(use one of {', '.join(sorted(supported))})"
        )
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


def _range(*arrays: np.ndarray | None) -> tuple[float, float]:
    """Finite (min, max) over ``arrays``, widened if degenerate."""
    values = [a[np.isfinite(a)] for a in arrays if a is not None]
    values = [v for v in values if v.size]
    if not values:
        return 0.0, 1.0
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    if lo == hi:
        pad = abs(lo) * 1e-3 or 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _check_shapes(x: np.ndarray, t: np.ndarray, **arrays: np.ndarray | None) -> None:
    if x.ndim != 1 or t.ndim != 1:
        raise ValueError(f"x and t must be 1-D, got shapes {x.shape} and {t.shape}")
    want = (len(x), len(t))
    for name, a in arrays.items():
        if a is not None and a.shape != want:
            hint = " (transposed? u[i, j] is u(x_i, t_j))" if a.shape == want[::-1] else ""
            raise ValueError(f"{name} has shape {a.shape}, expected (len(x), len(t)) = {want}"
                             f"{hint}")


def plot_solution(
    x: Sequence[float] | np.ndarray,
    t: Sequence[float] | np.ndarray,
    u_pred: np.ndarray,
    u_exact: np.ndarray | None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    slices: Sequence[float] | None = None,
    labels: tuple[str, str] = ("x", "t"),
) -> Figure:
    """Prediction vs exact solution of a 1-D time-dependent problem.

    Top row: the predicted and exact ``u(x, t)`` (``t`` horizontal, ``x`` vertical, one
    colour scale) and the pointwise error ``|u_pred - u_exact|`` on a log scale (floored at
    :data:`ERROR_FLOOR`, at most :data:`ERROR_DECADES` decades shown). Bottom row: one
    panel per slice time, exact as a line and the prediction as markers, at the grid column
    nearest that time (titled with the slice time; the grid time is noted in the panel when
    it differs by more than 0.5% of the t range).

    ``u_pred`` and ``u_exact`` have shape ``(len(x), len(t))``; ``u_exact`` may be ``None``
    (then only the prediction is drawn). ``slices`` are times inside the ``t`` range
    (default: 1/4, 1/2 and 3/4 of the way through it, i.e. 0.25, 0.5, 0.75 on [0, 1]).
    ``labels`` names the two coordinates. If ``path`` is given the figure is saved there
    (atomically, dpi 150). Returns the figure.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    pred = np.asarray(u_pred, dtype=np.float64)
    exact = None if u_exact is None else np.asarray(u_exact, dtype=np.float64)
    _check_shapes(x, t, u_pred=pred, u_exact=exact)
    t_lo, t_hi = float(t.min()), float(t.max())
    if slices is None:
        slices = [t_lo + f * (t_hi - t_lo) for f in (0.25, 0.5, 0.75)]
    tol = 1e-9 * max(t_hi - t_lo, 1.0)
    for s in slices:
        if not t_lo - tol <= s <= t_hi + tol:
            raise ValueError(f"slice time {s:g} is outside the t range [{t_lo:g}, {t_hi:g}]")
    xl, tl = labels

    top = 3 if exact is not None else 1
    ncols = max(top, len(slices), 1)
    fig = _new_figure(figsize=(4.2 * ncols, 7.6))
    upper, lower = fig.subfigures(2, 1, height_ratios=(1.0, 0.9))
    axes = upper.subplots(1, top, squeeze=False)[0]
    vmin, vmax = _range(pred, exact)
    images = [("prediction", pred)] + ([("exact", exact)] if exact is not None else [])
    for ax, (name, u) in zip(axes, images):
        mesh = ax.pcolormesh(t, x, np.ma.masked_invalid(u), shading="nearest", cmap="viridis",
                             vmin=vmin, vmax=vmax, rasterized=True)
        upper.colorbar(mesh, ax=ax, label=f"u({xl}, {tl})")
        ax.set(title=name, xlabel=tl, ylabel=xl)
    if exact is not None:
        err = np.maximum(np.abs(pred - exact), ERROR_FLOOR)
        lo, hi = _range(err)
        hi = max(hi, 10 * ERROR_FLOOR)
        lo = min(max(lo, ERROR_FLOOR, hi / 10**ERROR_DECADES), hi / 10)
        ax = axes[2]
        mesh = ax.pcolormesh(t, x, np.ma.masked_invalid(err), shading="nearest", cmap="magma",
                             norm=LogNorm(vmin=lo, vmax=hi), rasterized=True)
        upper.colorbar(mesh, ax=ax, label="|error|")
        ax.set(title="|prediction - exact|", xlabel=tl, ylabel=xl)

    if slices:
        slice_axes = lower.subplots(1, len(slices), squeeze=False, sharey=True)[0]
        marks = np.unique(np.linspace(0, len(x) - 1, min(len(x), MAX_MARKERS)).round().astype(int))
        for k, (ax, s) in enumerate(zip(slice_axes, slices)):
            j = int(np.argmin(np.abs(t - s)))
            if exact is not None:
                ax.plot(x, exact[:, j], "k-", lw=1.5, label="exact")
                ax.plot(x[marks], pred[marks, j], "o", color="tab:red", mfc="none", ms=4,
                        label="prediction")
            else:
                ax.plot(x, pred[:, j], "-", color="tab:red", label="prediction")
            ax.set_title(f"{tl} = {s:.2f}")
            if not np.isclose(t[j], s, rtol=0, atol=5e-3 * max(t_hi - t_lo, 1e-300)):
                ax.text(0.02, 0.03, f"grid {tl} = {t[j]:.4g}", transform=ax.transAxes,
                        fontsize=7, color="0.35")
            ax.set_xlabel(xl)
            if k == 0:
                ax.set_ylabel(f"u({xl}, {tl})")
                ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_history(
    histories: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike | None = None,
    x: str = "time",
    ys: Sequence[str] = ("loss", "rel_l2_error"),
    linear: Sequence[str] = ("train_accuracy", "test_accuracy"),
) -> Figure:
    """Convergence of one or several runs: each of ``ys`` against ``x`` on a log y-axis.

    Series named in ``linear`` (by default the accuracies in percent of a classifier)
    get a linear y-axis instead.

    ``histories`` maps a run label to its history (series name -> values, e.g. a
    :class:`~pinnsolve.train.Trainer`'s ``history`` or a results file's ``history``).
    ``x`` is ``"time"`` (wall-clock seconds), ``"iteration"`` or any other series. A run
    lacking one of ``ys`` is left out of that panel; non-positive values are not drawn.
    Saved to ``path`` if given. Returns the figure.
    """
    if not histories:
        raise ValueError("plot_history needs at least one history")
    xlabels = {"time": "wall time [s]", "iteration": "iteration"}
    fig = _new_figure(figsize=(5.0 * max(len(ys), 1), 4.0))
    axes = fig.subplots(1, max(len(ys), 1), squeeze=False)[0]
    for ax, y in zip(axes, ys):
        drawn = 0
        for label, hist in histories.items():
            if y not in hist:
                continue
            if x not in hist:
                raise ValueError(f"history {label!r} has no {x!r} series to plot against")
            xs = np.asarray(hist[x], dtype=np.float64).reshape(-1)
            vs = np.asarray(hist[y], dtype=np.float64).reshape(-1)
            if xs.shape != vs.shape:
                raise ValueError(
                    f"history {label!r}: {x!r} has {xs.size} values but {y!r} has {vs.size}"
                )
            ax.plot(xs, vs if y in linear else np.where(vs > 0, vs, np.nan), label=str(label))
            drawn += 1
        ax.set(xlabel=xlabels.get(x, x), ylabel=y, title=y)
        if drawn:
            if y not in linear:
                ax.set_yscale("log")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
        ax.grid(True, which="major", alpha=0.3)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_run(
    h5_path: str | os.PathLike, out_path: str | os.PathLike, field: str | None = None
) -> Figure:
    """Redraw the solution figure of a results file written by :func:`pinnsolve.io.save_run`.

    Draws ``field`` (default: the first one) on the file's 2-D grid, titled with the
    problem and its relative L2 error, and writes it to ``out_path``. Returns the figure.
    """
    check_writable(out_path)
    run = load_run(h5_path)
    names = list(run["grid"])
    if len(names) != 2:
        raise ValueError(
            f"{h5_path}: plot_run draws 2-D (x, t) results; this grid has coordinates {names}"
        )
    if not run["fields"]:
        raise ValueError(f"{h5_path} holds no fields")
    field = field if field is not None else next(iter(run["fields"]))
    if field not in run["fields"]:
        raise ValueError(f"{h5_path} has no field {field!r} (it has {list(run['fields'])})")
    f = run["fields"][field]
    pred, exact = f["pred"], f["exact"]
    xn, tn = names
    if xn == "t":  # keep time on the horizontal axis
        xn, tn = tn, xn
        pred = pred.T
        exact = None if exact is None else exact.T
    return plot_solution(run["grid"][xn], run["grid"][tn], pred, exact, path=out_path,
                         title=_title(run, field), labels=(xn, tn))


def _title(run: dict[str, Any], field: str) -> str:
    head = run.get("problem") or "results"
    nu = (run.get("config") or {}).get("nu")
    if isinstance(nu, (int, float)):
        head += f", nu = {nu:.4g}"
    if len(run["fields"]) > 1:
        head += f" ({field})"
    err = (run.get("metrics") or {}).get("rel_l2_error")
    if isinstance(err, (int, float)):
        head += f": rel L2 error {err:.2e}"
    return head
