"""The command line, run in-process through ``pinnsolve.cli.main`` on tiny problems."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pinnsolve.cli import build_parser, main, parse_number
from pinnsolve.io import load_checkpoint, load_run
from pinnsolve.train import relative_errors

TINY = ["burgers", "--nu", "0.1", "--points", "64", "--layers", "8", "--json", "--quiet"]
SUMMARY_KEYS = {
    "rel_l2_error",
    "max_abs_error",
    "final_loss",
    "iterations",
    "function_evals",
    "wall_time_s",
    "stop_reason",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_warm(tmp_path_factory):
    """One torch thread (on a busy machine a second one makes these tiny problems ~20x
    slower), and the first training of the process (~1-2 s of set-up) paid up front."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("warm")
    main([*TINY, "--max-iter", "1", "--checkpoint", str(out / "ck.h5")])
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Relative paths (and the default interrupt checkpoint) land in a temporary dir."""
    monkeypatch.chdir(tmp_path)


def run(capsys, *args: str) -> tuple[dict, str, str]:
    """``main(args)`` must succeed; returns (JSON summary of the last line, stdout, stderr)."""
    assert main(list(args)) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return json.loads(lines[-1]), out, err


def fails(capsys, *args: str) -> str:
    """``main(args)`` must exit with code 2 and a clean message; returns stderr."""
    with pytest.raises(SystemExit) as excinfo:
        main(list(args))
    assert excinfo.value.code == 2
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    assert err.strip(), "no error message"
    return err


# -- a run ---------------------------------------------------------------------------------


def test_burgers_prints_a_json_summary_last(capsys):
    summary, out, _ = run(capsys, *TINY, "--max-iter", "5")
    assert SUMMARY_KEYS <= set(summary)
    assert summary["problem"] == "burgers"
    assert summary["iterations"] == 5
    assert summary["function_evals"] >= 6
    assert summary["stop_reason"] == "max_iter"
    for key in ("rel_l2_error", "max_abs_error", "final_loss", "wall_time_s"):
        assert isinstance(summary[key], float) and math.isfinite(summary[key]), key
    assert 0 < summary["rel_l2_error"] < 2
    assert summary["wall_time_s"] < 30
    # the human-readable line comes first and agrees
    assert "burgers: rel L2 error" in out.splitlines()[0]
    assert "5 iterations" in out.splitlines()[0]


def test_same_arguments_give_the_same_run(capsys):
    a, _, _ = run(capsys, *TINY, "--max-iter", "3")
    b, _, _ = run(capsys, *TINY, "--max-iter", "3")
    assert a["final_loss"] == b["final_loss"] and a["rel_l2_error"] == b["rel_l2_error"]


def test_warmup_adds_adam_iterations(capsys):
    summary, _, _ = run(capsys, *TINY, "--max-iter", "4", "--warmup", "3")
    assert summary["iterations"] == 7


@pytest.mark.parametrize(
    "text, value",
    [
        ("0.01/pi", 0.01 / math.pi),
        ("1e-3", 1e-3),
        ("2*pi", 2 * math.pi),
        ("2 ** 3", 8.0),
        ("-1", -1.0),
        ("(1 + 1) / e", 2 / math.e),
        ("7", 7.0),
    ],
)
def test_parse_number_accepts(text, value):
    result = parse_number(text)
    assert isinstance(result, float)
    assert result == value


@pytest.mark.parametrize(
    "text",
    ["import os", "nu", "1/0", "", "__import__('os')", "pi()", "1e400", "10**10**10", "[1]",
     "'1'", "2 if 1 else 3", "x.real"],
)
def test_parse_number_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="invalid number"):
        parse_number(text)


def test_nu_expression_reaches_the_run(capsys):
    parsed = build_parser().parse_args(["burgers", "--nu", "0.01/pi"])
    assert parsed.nu == 0.01 / math.pi
    assert build_parser().parse_args(["burgers"]).nu == 0.01 / math.pi  # the default
    summary, _, _ = run(capsys, *TINY[:1], "--nu", "0.01/pi", *TINY[3:], "--max-iter", "1",
                        "--out", "run.h5")
    assert summary["iterations"] == 1
    assert load_run("run.h5")["config"]["nu"] == 0.01 / math.pi


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, bad",
    [
        (["--nu", "-1"], "--nu -1"),
        (["--nu", "0"], "--nu 0"),
        (["--nu", "import os"], "import os"),
        (["--optimizer", "nosuch"], "nosuch"),
        (["--out", "/nonexistent_dir/x.h5"], "/nonexistent_dir/x.h5"),
        (["--plot", "/nonexistent_dir/x.png"], "/nonexistent_dir/x.png"),
        (["--checkpoint", "/nonexistent_dir/ck.h5"], "/nonexistent_dir/ck.h5"),
        (["--layers", "20,x"], "20,x"),
        (["--layers", "0"], "'0'"),
        (["--resume", "missing.h5"], "missing.h5"),
        (["--max-iter", "0"], "'0'"),
        (["--max-time", "-5"], "'-5'"),
        (["--points", "many"], "many"),
        (["--activation", "nosuch"], "nosuch"),
        (["--device", "nosuch"], "nosuch"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, args, bad):
    err = fails(capsys, "burgers", "--max-iter", "2", "--quiet", *args)
    last = err.strip().splitlines()[-1]
    assert last.startswith("pinnsolve") and "error:" in last
    assert bad in last
    if not last.startswith("pinnsolve burgers: error: argument"):
        # found after parsing: just the one line, no usage text
        assert len(err.strip().splitlines()) == 1


def test_resume_from_a_file_that_is_not_a_checkpoint(capsys):
    Path("junk.h5").write_text("not a checkpoint")
    err = fails(capsys, *TINY, "--max-iter", "2", "--resume", "junk.h5")
    assert len(err.strip().splitlines()) == 1 and "junk.h5" in err


def test_plot_of_a_missing_file(capsys):
    err = fails(capsys, "plot", "missing.h5")
    assert len(err.strip().splitlines()) == 1 and "missing.h5" in err


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "burgers" in capsys.readouterr().out


# -- results and figures -------------------------------------------------------------------


def test_out_and_plot_write_a_results_file_and_figures(capsys):
    summary, out, _ = run(capsys, *TINY, "--max-iter", "5", "--hard", "--out", "run.h5",
                          "--plot", "fig.png")
    for name in ("run.h5", "fig.png"):
        assert Path(name).is_file() and Path(name).stat().st_size > 0
    assert Path("fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "results written to run.h5" in out and "figure written to fig.png" in out

    assert main(["plot", "run.h5", "-o", "fig2.png"]) == 0
    assert "fig2.png" in capsys.readouterr().out
    assert Path("fig2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path("fig2.png").stat().st_size > 1000

    run_ = load_run("run.h5")
    x, t = run_["grid"]["x"], run_["grid"]["t"]
    assert x.shape == (256,) and t.shape == (100,)
    assert x[0] == -1.0 and x[-1] == 1.0 and np.all(np.diff(x) > 0)
    assert t[0] == 0.0 and t[-1] == 1.0 and np.all(np.diff(t) > 0)
    u = run_["fields"]["u"]
    assert u["pred"].shape == (256, 100) and u["exact"].shape == (256, 100)
    np.testing.assert_array_equal(u["error"], np.abs(u["pred"] - u["exact"]))
    # u[i, j] = u(x_i, t_j): at t = 0 both are the initial condition -sin(pi x) (the
    # prediction exactly, through the hard constraint), and the prediction is 0 at x = +-1
    np.testing.assert_allclose(u["exact"][:, 0], -np.sin(np.pi * x), atol=1e-8)
    np.testing.assert_allclose(u["pred"][:, 0], -np.sin(np.pi * x), atol=1e-12)
    np.testing.assert_allclose(u["pred"][[0, -1], :], 0.0, atol=1e-12)
    assert not np.allclose(u["pred"][:, -1], u["pred"][:, 0])

    assert run_["problem"] == "burgers"
    assert run_["config"]["nu"] == 0.1
    assert run_["config"]["layers"] == "8" and run_["config"]["max_iter"] == 5
    metrics = run_["metrics"]
    for key in SUMMARY_KEYS:
        assert metrics[key] == summary[key], key
    rel, worst = relative_errors(u["pred"], u["exact"])
    assert math.isclose(rel, summary["rel_l2_error"], rel_tol=1e-12)
    assert math.isclose(worst, summary["max_abs_error"], rel_tol=1e-12)
    assert run_["theta"].shape == (33,)  # 2*8 + 8 + 8 + 1
    assert run_["model_info"]["n_params"] == 33
    assert run_["history"]["loss"][-1] == summary["final_loss"]
    assert len(run_["history"]["loss_per_iteration"]) == 6


# -- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_then_resume_continues_exactly(capsys):
    first, _, _ = run(capsys, *TINY, "--max-iter", "5", "--checkpoint", "ck.h5")
    assert first["iterations"] == 5
    state = load_checkpoint("ck.h5")
    assert state["progress"]["iteration"] == 5 and state["config"]["layers"] == "8"

    resumed, _, _ = run(capsys, *TINY, "--max-iter", "10", "--resume", "ck.h5")
    straight, _, _ = run(capsys, *TINY, "--max-iter", "10")
    assert resumed["iterations"] == straight["iterations"] == 10
    assert resumed["function_evals"] == straight["function_evals"]
    assert resumed["final_loss"] == straight["final_loss"]
    assert resumed["rel_l2_error"] == straight["rel_l2_error"]
    assert not Path("burgers.ckpt.h5").exists()  # only written on Ctrl-C


@pytest.mark.parametrize(
    "changed, message",
    [
        (["--layers", "6"], "layers"),
        (["--optimizer", "bfgs"], "optimizer"),
        (["--dtype", "float32"], "dtype"),
        (["--warmup", "3"], "warmup=0, not 3"),
    ],
)
def test_resume_with_a_different_setup_exits_2(capsys, changed, message):
    run(capsys, *TINY, "--max-iter", "2", "--checkpoint", "ck.h5")
    err = fails(capsys, *TINY, "--max-iter", "4", "--resume", "ck.h5", *changed)
    assert len(err.strip().splitlines()) == 1
    assert "ck.h5" in err and message in err


def test_resume_with_a_different_history_exits_2(capsys):
    lbfgs = [*TINY, "--optimizer", "lbfgs"]
    run(capsys, *lbfgs, "--max-iter", "2", "--history", "5", "--checkpoint", "ck.h5")
    err = fails(capsys, *lbfgs, "--max-iter", "4", "--resume", "ck.h5", "--history", "7")
    assert len(err.strip().splitlines()) == 1 and "history" in err


def test_resume_a_warmup_checkpoint_without_warmup_exits_2(capsys):
    # the checkpoint is in the second stage (L-BFGS after 2 Adam iterations)
    run(capsys, *TINY, "--max-iter", "2", "--warmup", "2", "--checkpoint", "ck.h5")
    err = fails(capsys, *TINY, "--max-iter", "4", "--resume", "ck.h5")
    assert len(err.strip().splitlines()) == 1 and "warmup" in err


# -- help ----------------------------------------------------------------------------------


def test_help(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert "burgers" in out and "plot" in out and "COMMAND --help" in out

    with pytest.raises(SystemExit) as excinfo:
        main(["burgers", "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for option in ("--nu", "--optimizer", "--max-time", "--max-iter", "--resume", "--json"):
        assert option in out, option
    assert "0.01/pi" in out


def test_console_script_help():
    script = Path(sys.executable).with_name("pinnsolve")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "pinnsolve"]
    done = subprocess.run([*cmd, "burgers", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--nu", "--optimizer", "--max-time"):
        assert option in done.stdout
    assert "usage: pinnsolve burgers" in done.stdout


# -- stochastic optimizers -----------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "slbfgs", "mlbfgs"])
def test_stochastic_optimizers_take_batch_size_and_resume_exactly(capsys, optimizer):
    args = [*TINY, "--optimizer", optimizer, "--batch-size", "16", "--lr", "0.01"]
    run(capsys, *args, "--max-iter", "6", "--checkpoint", "ck.h5")
    state = load_checkpoint("ck.h5")
    assert state["config"]["batch_size"] == 16
    assert "rng" in state["method_state"]
    resumed, _, _ = run(capsys, *args, "--max-iter", "12", "--resume", "ck.h5")
    straight, _, _ = run(capsys, *args, "--max-iter", "12")
    assert resumed["final_loss"] == straight["final_loss"]
    assert resumed["rel_l2_error"] == straight["rel_l2_error"]


def test_batch_size_for_a_full_batch_optimizer_exits_2(capsys):
    err = fails(capsys, *TINY, "--optimizer", "lbfgs", "--batch-size", "16", "--max-iter", "2")
    assert "--batch-size applies to the stochastic optimizers, not 'lbfgs'" in err


# -- second-order methods and continuation (issue 3) ----------------------------------------


@pytest.mark.parametrize("name", ["newton-cg", "lm", "lsr1"])
def test_second_order_methods_run_with_resampling(capsys, name):
    """Tiny budgets through the Trainer, points redrawn every 2 iterations: the loss
    goes down and the reported loss is that of the final point on the final points."""
    first, _, _ = run(capsys, *TINY, "--optimizer", name, "--max-iter", "1")
    summary, _, _ = run(capsys, *TINY, "--optimizer", name, "--max-iter", "6",
                        "--resample-every", "2", "--adaptive", "none")
    assert summary["iterations"] == 6 and summary["stop_reason"] == "max_iter"
    assert math.isfinite(summary["final_loss"]) and summary["final_loss"] < first["final_loss"]
    assert math.isfinite(summary["rel_l2_error"])


def test_continuation_ends_at_the_target_viscosity(capsys, tmp_path):
    out = tmp_path / "c.h5"
    summary, _, _ = run(capsys, *TINY, "--nu", "0.02", "--continuation", "nu:0.2",
                        "--continuation-steps", "2", "--max-iter", "8", "--out", str(out))
    assert summary["iterations"] == 8
    config = json.loads(load_run(out)["config"]) if isinstance(load_run(out)["config"], str) \
        else load_run(out)["config"]
    assert config["continuation"] == "nu:0.2/2" and config["nu"] == 0.02
    err = fails(capsys, *TINY, "--continuation", "mu:0.1")
    assert "mu" in err and "nu" in err
    assert "NAME:START" in fails(capsys, *TINY, "--continuation", "nu")
