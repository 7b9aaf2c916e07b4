"""Block-wise mL-BFGS across 2 gloo ranks equals block-wise mL-BFGS in one process.

The two ranks are started once per module (fork, free port); see
``tests/mlbfgs_worker.py`` for what each rank computes.  The 1-process reference runs
the same code path (world size 1: the one rank owns every block).
"""

from __future__ import annotations

import dist_worker
import mlbfgs_worker
import pytest
import torch
import torch.multiprocessing as mp
from test_distributed import free_port

from pinnsolve.distributed import assign_blocks, block_partition, rank_path


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlbfgs_ranks")
    mp.start_processes(mlbfgs_worker.run, args=(2, free_port(), str(out)), nprocs=2,
                       join=True, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def single():
    torch.set_num_threads(1)
    history, theta, method = mlbfgs_worker.straight(dist_worker.make_objective())
    return {"history": history, "theta": theta, "method": method}


def rel_hist(a, b) -> float:
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))


def test_two_ranks_reproduce_one_process(two_ranks, single):
    one = single["history"]
    assert len(one) == mlbfgs_worker.ITERATIONS + 1
    assert one[-1] < 0.5 * one[0]  # it optimizes
    st = single["method"].state
    assert st["pairs_stored"] == 10 and st["skipped"] == 0 and st["damped"] > 0
    for r in two_ranks:
        assert rel_hist(r["history"], one) < 1e-10
        err = (r["theta"] - single["theta"]).abs().max() / single["theta"].abs().max()
        assert float(err) < 1e-10
        assert r["counters"] == (st["pairs_stored"], st["skipped"], st["damped"])
    # the assembled direction is the same on every rank: bitwise the same iterates
    assert torch.equal(two_ranks[0]["theta"], two_ranks[1]["theta"])


def test_each_rank_holds_only_its_blocks_history(two_ranks, single):
    m = 4  # history
    assert single["method"].state["hist"]["pairs"].shape == (2, m, 151)
    assert [r["owned"] for r in two_ranks] == [[0, 1], [1, 3]]  # blocks 30 | 110 + 11
    assert two_ranks[0]["spans"] == [[0, 30], [30, 151]]
    assert [r["pairs_shape"] for r in two_ranks] == [(2, m, 30), (2, m, 121)]
    # ... and those pairs are the 1-process run's pairs of the same blocks
    for r in two_ranks:
        for b, h in r["blocks"].items():
            ref = single["method"].block_history(b)
            for key in ("pairs", "SY", "YY", "gamma"):
                scale = ref[key].abs().max()
                assert float((h[key] - ref[key]).abs().max() / scale) < 1e-9, (b, key)
    assert "not held by rank 0" in two_ranks[0]["foreign_block"]
    assert "not held by rank 1" in two_ranks[1]["foreign_block"]


def test_per_rank_state_round_trips_and_resumes_identically(two_ranks):
    for r in two_ranks:
        assert r["resumed"] == r["history"]  # bit for bit, per rank
        assert torch.equal(r["resumed_theta"], r["theta"])
        assert "belongs to rank" in r["foreign_state"]


def test_trainer_resumes_from_per_rank_checkpoint_files(two_ranks):
    assert two_ranks[1]["rank_file"] is True
    for r in two_ranks:
        full_hist, full_theta, resumed_hist, resumed_theta = r["trainer"]
        assert len(full_hist) == 21 and resumed_hist == full_hist
        assert torch.equal(resumed_theta, full_theta)


def test_checkpoint_vote_is_agreed_by_every_rank(two_ranks):
    assert [r["votes"] for r in two_ranks] == [[False, True, False]] * 2


# -- one process ---------------------------------------------------------------------


def test_block_assignment_is_balanced_and_contiguous():
    assert assign_blocks([30, 110, 11], 2) == [(0, 1), (1, 3)]
    assert assign_blocks([60, 420, 420, 21], 3) == [(0, 1), (1, 2), (2, 4)]
    assert assign_blocks([1, 1, 1, 1], 2) == [(0, 2), (2, 4)]
    assert assign_blocks([5], 3) == [(0, 1), (1, 1), (1, 1)]  # idle ranks come last
    gen = torch.Generator().manual_seed(1)
    for world in (1, 2, 3, 5):
        sizes = torch.randint(1, 50, (9,), generator=gen).tolist()
        groups = assign_blocks(sizes, world)
        assert groups[0][0] == 0 and groups[-1][1] == 9
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
        load = max(sum(sizes[a:b]) for a, b in groups)
        # optimal: no contiguous split has a smaller maximum (brute force over cuts)
        import itertools

        best = min(max(sum(sizes[a:b]) for a, b in zip((0, *c), (*c, 9)))
                   for c in itertools.combinations_with_replacement(range(10), world - 1))
        assert load == best
    assert block_partition(151, 2, [30, 110, 11]) == [(0, 30), (30, 151)]
    with pytest.raises(ValueError, match="sum to 150"):
        block_partition(151, 2, [30, 110, 10])
    with pytest.raises(ValueError, match="world size"):
        assign_blocks([3], 0)
    assert rank_path("runs/ck.h5", 3).as_posix() == "runs/ck.rank3.h5"


def test_one_process_is_the_one_rank_case(single):
    st = single["method"].state
    assert (st["world"], st["rank"], st["owned"]) == (1, 0, [0, 3])
    assert single["method"].per_rank_state is False


def test_full_batch_only_on_several_ranks(monkeypatch):
    """With a (pretend) 2-rank group, a mini-batch mL-BFGS is refused with a clear error."""
    from pinnsolve.optim import MLBFGS

    obj = dist_worker.make_objective()
    theta = obj.initial_theta()
    method = MLBFGS(lr=0.02, batch_size=16)
    method.start(obj, theta)
    monkeypatch.setattr(MLBFGS, "_group", staticmethod(lambda objective: (None, 0, 2)))
    with pytest.raises(ValueError, match="rank 0 of 1"):
        method.step(obj, theta)
    method.state.update(world=2)
    with pytest.raises(ValueError, match="batch_size=16 is not sharded"):
        method.step(obj, theta)


@pytest.mark.slow  # three torchrun launches: ~15 s quiet, ~45 s under load
def test_cli_nproc_two_checkpoints_per_rank_and_resumes(tmp_path):
    """``pinnsolve burgers --optimizer mlbfgs --nproc 2``: the same final loss as one
    process, per-rank checkpoint files, and a 2-rank resume continuing identically."""
    import contextlib
    import io
    import json
    import os
    import subprocess
    import sys

    from pinnsolve.cli import main

    args = ["burgers", "--nu", "0.1", "--points", "128", "--layers", "8,8", "--optimizer",
            "mlbfgs", "--lr", "0.01", "--json", "--quiet", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def two(*extra):
        run = subprocess.run([sys.executable, "-m", "pinnsolve", *args, "--nproc", "2", *extra],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        return json.loads(run.stdout.strip().splitlines()[-1])

    full = two("--max-iter", "40")
    two("--max-iter", "20", "--checkpoint", "half.h5")
    assert (tmp_path / "half.h5").is_file() and (tmp_path / "half.rank1.h5").is_file()
    resumed = two("--max-iter", "40", "--resume", "half.h5")
    assert resumed["iterations"] == full["iterations"] == 40
    assert resumed["final_loss"] == full["final_loss"]
    buf, cwd = io.StringIO(), os.getcwd()
    try:
        os.chdir(tmp_path)
        with contextlib.redirect_stdout(buf):
            assert main([*args, "--max-iter", "40"]) == 0
        with contextlib.redirect_stderr(io.StringIO()) as err, \
                pytest.raises(SystemExit) as exit_:  # 1 rank cannot resume it
            main([*args, "--max-iter", "40", "--resume", "half.h5"])
        assert exit_.value.code == 2
    finally:
        os.chdir(cwd)
    one = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert abs(full["final_loss"] - one["final_loss"]) <= 1e-10 * one["final_loss"]
    assert "split across 2 ranks" in err.getvalue()
