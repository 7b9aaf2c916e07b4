import numpy as np
import pytest

from pinnsolve.io import save_run
from pinnsolve.plot import plot_history, plot_run, plot_solution

PNG = b"\x89PNG\r\n\x1a\n"


def burgers_like(nx=32, nt=100):
    x = np.linspace(-1, 1, nx)
    t = np.linspace(0, 1, nt)
    exact = -np.sin(np.pi * x)[:, None] * np.exp(-t)[None, :]
    pred = exact + 1e-3 * np.cos(3 * x)[:, None]
    pred[0, 0] = exact[0, 0]  # an exact zero error must not break the log scale
    return x, t, pred, exact


def slice_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title().startswith("t = ")]


def test_plot_solution(tmp_path):
    x, t, pred, exact = burgers_like()
    path = tmp_path / "sol.png"
    fig = plot_solution(x, t, pred, exact, path=path, title="test")
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    # 3 maps + 3 colorbars + 3 slices
    assert len(fig.axes) == 9
    assert slice_titles(fig) == ["t = 0.25", "t = 0.50", "t = 0.75"]
    # markers are subsampled, the exact line is not
    ax = next(ax for ax in fig.axes if ax.get_title() == "t = 0.50")
    assert sorted(len(line.get_xdata()) for line in ax.get_lines()) == [32, 32]
    assert [p.name for p in tmp_path.iterdir()] == ["sol.png"]


def test_plot_solution_options(tmp_path):
    x, t, pred, exact = burgers_like(nx=200, nt=11)
    fig = plot_solution(x, 2 * t, pred, None, slices=(0.0, 2.0))
    assert slice_titles(fig) == ["t = 0.00", "t = 2.00"]
    assert len(fig.axes) == 1 + 1 + 2  # prediction map + colorbar + slices
    fig = plot_solution(x, t, pred, exact)
    ax = next(ax for ax in fig.axes if ax.get_title() == "t = 0.50")
    assert min(len(line.get_xdata()) for line in ax.get_lines()) == 40
    plot_solution(x, t, pred, exact, path=tmp_path / "sol.pdf")
    assert (tmp_path / "sol.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="transposed"):
        plot_solution(x, t, pred.T, exact)
    with pytest.raises(ValueError, match="outside"):
        plot_solution(x, t, pred, exact, slices=(1.5,))
    with pytest.raises(ValueError, match="format"):
        plot_solution(x, t, pred, exact, path=tmp_path / "sol.xyz")
    with pytest.raises(FileNotFoundError):
        plot_solution(x, t, pred, exact, path=tmp_path / "missing" / "sol.png")


def test_plot_run(tmp_path):
    x, t, pred, exact = burgers_like(nx=16, nt=100)
    run = {"problem": "burgers", "config": {"nu": 0.01}, "grid": {"x": x, "t": t},
           "fields": {"u": {"pred": pred, "exact": exact}}, "metrics": {"rel_l2_error": 1.2e-3}}
    save_run(tmp_path / "run.h5", run)
    out = tmp_path / "run.png"
    fig = plot_run(tmp_path / "run.h5", out)
    assert out.read_bytes().startswith(PNG)
    assert fig.get_suptitle() == "burgers, nu = 0.01: rel L2 error 1.20e-03"
    assert slice_titles(fig) == ["t = 0.25", "t = 0.50", "t = 0.75"]
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        plot_run(tmp_path / "nothere.h5", out)


def test_plot_history(tmp_path):
    histories = {
        "adam": {"time": [0.0, 1.0, 2.0, 3.0], "loss": [1.0, 0.5, 0.2, 0.1],
                 "rel_l2_error": [1.0, 0.8, 0.5, 0.3]},
        "lbfgs": {"time": np.array([0.0, 0.5, 1.0]), "loss": np.array([1.0, 1e-3, 0.0]),
                  "rel_l2_error": np.array([1.0, 0.1, 0.01])},
    }
    path = tmp_path / "hist.png"
    fig = plot_history(histories, path=path)
    assert path.read_bytes().startswith(PNG)
    assert len(fig.axes) == 2
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
    with pytest.raises(ValueError, match="iteration"):
        plot_history(histories, x="iteration")


def test_plot_history_accuracy_on_a_linear_axis(tmp_path):
    hist = {"time": [0.0, 1.0, 2.0], "loss": [1.0, 0.5, 0.1], "test_accuracy": [10.0, 80.0, 90.0]}
    fig = plot_history({"lbfgs": hist, "gd": hist}, path=tmp_path / "h.png",
                       ys=("loss", "test_accuracy"))
    loss_ax, acc_ax = fig.axes[:2]
    assert loss_ax.get_yscale() == "log" and acc_ax.get_yscale() == "linear"
    assert len(acc_ax.get_lines()) == 2
    assert (tmp_path / "h.png").stat().st_size > 0
