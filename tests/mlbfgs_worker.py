"""Worker for tests/test_mlbfgs_distributed.py: one rank of block-wise mL-BFGS on gloo.

``run(rank, world, port, out_dir)`` joins a ``world``-rank gloo group on 127.0.0.1:port,
runs mL-BFGS on the sharded small Burgers objective of ``dist_worker.make_objective``
(blocks per layer: 30, 110, 11 parameters) and writes to ``out_dir/rank<r>.pt`` what the
test compares with one process: the loss history and iterate, this rank's history
(shape, owned blocks, its blocks' pairs), a run resumed from a per-rank state file, the
refusal of another rank's state, a Trainer run resumed from per-rank checkpoint files,
and the checkpoint vote.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from dist_worker import make_objective

from pinnsolve.io import load_checkpoint, save_checkpoint
from pinnsolve.optim import MLBFGS, StopCriteria, minimize
from pinnsolve.optim.base import Progress

ITERATIONS = 30  # 10 pairs with update_every 3: the ring of 4 wraps
SPLIT = 12  # the resumed runs stop here and continue


def method() -> MLBFGS:
    return MLBFGS(lr=0.02, history=4, update_every=3)


def straight(objective, iterations=ITERATIONS):
    """``(loss history, final theta, method)`` of an uninterrupted run."""
    theta = objective.initial_theta()
    m = method()
    res = minimize(objective, theta, m, StopCriteria(max_iter=iterations))
    return res.loss_history, theta, m


def trainer(objective, iterations, path, resume=None):
    from pinnsolve.train import Stage, Trainer

    t = Trainer(objective, [Stage(method(), StopCriteria(max_iter=iterations))],
                validate_every=1000, checkpoint=path, progress_bar=False,
                config={"problem": "burgers-small", "optimizer": "mlbfgs"})
    return t.fit(resume=resume)


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    from pinnsolve.distributed import ShardedObjective, rank_path

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        obj = ShardedObjective(make_objective())
        out: dict = {}
        history, theta, m = straight(obj)
        st = m.state
        out.update(history=history, theta=theta, owned=st["owned"], spans=st["spans"],
                   pairs_shape=tuple(st["hist"]["pairs"].shape),
                   blocks={b: {k: v.clone() for k, v in m.block_history(b).items()
                               if isinstance(v, torch.Tensor)}
                           for b in range(*st["owned"])},
                   counters=(st["pairs_stored"], st["skipped"], st["damped"]))
        try:
            m.block_history(1 - rank if rank < 2 else 0)
        except ValueError as exc:
            out["foreign_block"] = str(exc)

        # per-rank state files: stop at SPLIT, save, load into a fresh method, continue
        theta = obj.initial_theta()
        a = method()
        first = minimize(obj, theta, a, StopCriteria(max_iter=SPLIT))
        path = os.path.join(out_dir, f"state.rank{rank}.h5")
        save_checkpoint(path, a.state_dict())
        dist.barrier()
        b = method()
        b.load_state_dict(load_checkpoint(path))
        progress = Progress(first.iterations, first.function_evals, first.wall_time_s,
                            first.loss, first.grad_norm, list(first.loss_history))
        out["resumed"] = minimize(obj, theta, b, StopCriteria(max_iter=ITERATIONS),
                                  progress=progress).loss_history
        out["resumed_theta"] = theta.clone()
        # another rank's state is refused (before any collective, so on both ranks)
        c = method()
        c.load_state_dict(load_checkpoint(os.path.join(out_dir,
                                                       f"state.rank{(rank + 1) % world}.h5")))
        try:
            c.step(obj, theta.clone())
        except ValueError as exc:
            out["foreign_state"] = str(exc)

        # the Trainer: per-rank checkpoint files, a resumed run continues identically
        ck = os.path.join(out_dir, "ck.h5")
        full = trainer(obj, 20, os.path.join(out_dir, "full.h5"))
        trainer(obj, 8, ck)
        out["rank_file"] = os.path.isfile(rank_path(ck, rank)) if rank else None
        resumed = trainer(obj, 20, os.path.join(out_dir, "again.h5"), resume=ck)
        out["trainer"] = (full.stages[-1].loss_history, full.theta,
                          resumed.stages[-1].loss_history, resumed.theta)

        # the checkpoint vote: only rank 1's clock is due, every rank agrees one step later
        th = obj.initial_theta()
        votes = [obj.agree_checkpoint(rank == 1)]
        obj.loss_and_grad(th)
        votes.append(obj.agree_checkpoint(False))
        obj.loss_and_grad(th)
        votes.append(obj.agree_checkpoint(False))
        out["votes"] = votes
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
