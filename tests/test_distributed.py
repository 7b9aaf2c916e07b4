"""pinnsolve.distributed: a 2-process gloo run on localhost against one process.

The two ranks are started once per module (torch.multiprocessing.spawn, free port) by
:func:`two_ranks`; see ``tests/dist_worker.py`` for what each rank computes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import dist_worker
import pytest
import torch
import torch.multiprocessing as mp

from pinnsolve import distributed
from pinnsolve.distributed import ShardedObjective, block_partition, shard_range


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    # fork: the ranks inherit the imported torch (spawn would re-import it, seconds each)
    mp.start_processes(dist_worker.run, args=(2, free_port(), str(out)), nprocs=2,
                       join=True, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def single():
    torch.set_num_threads(1)
    obj = dist_worker.make_objective()
    theta = obj.initial_theta()
    res = {"start": dist_worker.probe(obj, theta),
           "history": dist_worker.lbfgs_history(obj, theta),
           "others": dist_worker.other_histories(obj, theta)}
    obj.resample(7)
    res["resampled"] = dist_worker.probe(obj, theta)
    res.update(dist_worker.adapted(obj, theta))
    return res


def rel(a, b) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float((a - b).abs().max() / b.abs().max())


def test_points_are_split_not_repeated(two_ranks):
    assert two_ranks[0]["shard"] == [128, 20, 20]
    assert two_ranks[1]["shard"] == [128, 20, 20]


@pytest.mark.parametrize("when", ["start", "resampled", "rar", "rad"])
def test_reduced_values_equal_one_process(two_ranks, single, when):
    one = single[when]
    for r in two_ranks:
        two = r[when]
        assert rel(two["loss"], one["loss"]) < 1e-14
        assert rel(two["loss_only"], one["loss"]) < 1e-14
        assert rel(two["grad"], one["grad"]) < 1e-13
        assert rel(two["hvp"], one["hvp"]) < 1e-12
        for name, value in one["terms"].items():
            assert abs(two["terms"][name] - value) <= 1e-14 * value
    # the same bits on both ranks: every rank takes the same decisions
    assert torch.equal(two_ranks[0][when]["grad"], two_ranks[1][when]["grad"])


def test_rar_and_rad_choose_the_same_global_points_on_every_rank(two_ranks, single):
    assert single["rar_points"].shape[0] == 256 + 5
    for key in ("rar_points", "rad_points"):
        for r in two_ranks:
            assert torch.equal(r[key], single[key])
    assert [r["shard_after_rad"] for r in two_ranks] == [[128, 20, 20], [128, 20, 20]]


def test_resampling_changes_the_points(single):
    assert abs(float(single["resampled"]["loss"]) - float(single["start"]["loss"])) > 1e-6


def test_lbfgs_history_equals_one_process(two_ranks, single):
    one = single["history"]
    assert len(one) == dist_worker.ITERATIONS + 1 and one[-1] < 0.5 * one[0]
    for r in two_ranks:
        assert len(r["history"]) == len(one)
        assert max(abs(a - b) / abs(b) for a, b in zip(r["history"], one)) < 1e-10
    assert two_ranks[0]["history"] == two_ranks[1]["history"]


@pytest.mark.parametrize("name", [n for n, _ in dist_worker.OTHERS] + ["newton-cg"])
def test_other_methods_run_unchanged_on_two_ranks(two_ranks, single, name):
    one = single["others"][name]
    assert len(one) > 2 and one[-1] < one[0]
    for r in two_ranks:
        two = r["others"][name]
        assert len(two) == len(one)
        assert max(abs(a - b) / abs(b) for a, b in zip(two, one)) < 1e-10


def test_stop_vote_reaches_every_rank(two_ranks):
    assert [r["stop_after_vote"] for r in two_ranks] == [True, True]
    assert [r["stop_without_vote"] for r in two_ranks] == [False, False]


def test_only_rank_zero_prints(two_ranks):
    assert [r["printed"] for r in two_ranks] == ["only rank 0\n", ""]


# -- single process ------------------------------------------------------------------


def test_one_rank_sharded_objective_is_the_objective():
    torch.set_num_threads(1)
    plain, sharded = dist_worker.make_objective(), ShardedObjective(dist_worker.make_objective())
    theta = plain.initial_theta()
    a, b = dist_worker.probe(plain, theta), dist_worker.probe(sharded, theta)
    assert rel(b["loss"], a["loss"]) < 1e-14 and rel(b["grad"], a["grad"]) < 1e-13
    assert rel(b["hvp"], a["hvp"]) < 1e-12
    assert sharded.n_params == plain.n_params  # the rest is the wrapped objective's
    with pytest.raises(TypeError, match="residuals"):
        sharded.residuals(theta)
    with pytest.raises(TypeError, match="PINNObjective"):
        ShardedObjective(object())


def test_shard_ranges_cover_once():
    for n in (5, 16, 2540):
        for world in (1, 2, 3, 8):
            if n < world:
                continue
            parts = [shard_range(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
    assert block_partition(10, 3) == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError, match="rank 2"):
        shard_range(10, 2, 2)


def test_not_under_torchrun_is_one_rank(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    info = distributed.init_distributed("cpu")
    assert (info.rank, info.world, info.backend) == (0, 1, None)
    assert distributed.is_main() and distributed.world_size() == 1


def test_nproc_relaunches_through_torchrun(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 0)
    argv = ["burgers", "--nu", "0.1", "--nproc", "2", "--quiet", "--nproc=2"]
    assert distributed.relaunch(argv, 2, None) == 0
    cmd, env = calls[0]
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in cmd
    assert cmd[cmd.index("pinnsolve"):] == ["pinnsolve", "--", "burgers", "--nu", "0.1",
                                            "--quiet"]
    assert env["OMP_NUM_THREADS"] == "1"


@pytest.mark.slow  # three fresh interpreters importing torch: ~5 s quiet, ~30 s under load
def test_cli_under_torchrun_prints_and_writes_on_rank_zero_only(tmp_path):
    """``torchrun -m pinnsolve burgers ...`` on 2 ranks: one summary, the files, and the
    same final loss as one process (both runs in this test, same arguments)."""
    args = ["burgers", "--nu", "0.1", "--points", "128", "--layers", "8", "--max-iter", "8",
            "--optimizer", "lbfgs", "--json", "--quiet", "--out", "run.h5",
            "--checkpoint", "ck.h5"]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node=2", "-m", "pinnsolve", "--", *args],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert two.returncode == 0, two.stderr[-2000:]
    lines = two.stdout.strip().splitlines()
    assert sum(line.startswith("burgers:") for line in lines) == 1
    assert sum(line.startswith("results written") for line in lines) == 1
    assert (tmp_path / "run.h5").is_file() and (tmp_path / "ck.h5").is_file()
    summary = json.loads(lines[-1])
    from pinnsolve.cli import main

    (tmp_path / "one").mkdir()
    monkey_args = [*args[:-5], "--threads", "1"]
    import contextlib
    import io
    import os

    cwd = os.getcwd()
    try:
        os.chdir(tmp_path / "one")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(monkey_args) == 0
    finally:
        os.chdir(cwd)
    one = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert summary["iterations"] == one["iterations"] == 8
    assert abs(summary["final_loss"] - one["final_loss"]) <= 1e-10 * one["final_loss"]
