"""Worker for tests/test_distributed.py: one rank of a gloo run on localhost.

``run(rank, world, port, out_dir)`` joins a ``world``-rank gloo group on 127.0.0.1:port,
builds the small Burgers objective of :func:`make_objective`, sharded, and writes to
``out_dir/rank<r>.pt`` what the test compares with a single process: loss, gradient,
Hessian-vector product and term losses at the start (also after ``resample``), the
L-BFGS loss history, the same after RAR and RAD point updates, the stop vote, and what
rank 0 alone may print.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout

import torch
import torch.distributed as dist

from pinnsolve import MLP
from pinnsolve.optim import LBFGS, StopCriteria, make_method, minimize
from pinnsolve.problems.burgers import make_problem

ITERATIONS = 15


def make_objective(seed: int = 3):
    """A tiny Burgers PINN in float64 (151 parameters, 256 + 40 + 40 points)."""
    problem = make_problem(nu=0.05, points=256, boundary_points=40, initial_points=40)
    model = MLP(2, 1, (10, 10), lows=[-1.0, 0.0], highs=[1.0, 1.0], seed=0)
    return problem.compile(model, dtype=torch.float64, seed=seed)


def probe(objective, theta):
    """Loss, gradient, HVP along a fixed direction and term losses at ``theta``."""
    v = torch.linspace(-1.0, 1.0, theta.numel(), dtype=theta.dtype)
    loss, grad = objective.loss_and_grad(theta)
    return {"loss": loss.clone(), "grad": grad.clone(), "hvp": objective.hvp(theta, v),
            "loss_only": objective.loss(theta), "terms": objective.term_losses(theta)}


def lbfgs_history(objective, theta):
    return minimize(objective, theta.clone(), LBFGS(history=10),
                    StopCriteria(max_iter=ITERATIONS)).loss_history


#: Other methods run unchanged on the sharded objective: (registry name, iterations).
OTHERS = (("ssbfgs", 5), ("ncg-pr", 5), ("adam", 5))


def other_histories(objective, theta):
    from pinnsolve.optim.newton import NewtonCG  # Hessian-vector products

    out = {name: minimize(objective, theta.clone(), make_method(name),
                          StopCriteria(max_iter=k)).loss_history for name, k in OTHERS}
    out["newton-cg"] = minimize(objective, theta.clone(), NewtonCG(),
                                StopCriteria(max_iter=3)).loss_history
    return out


def adapted(objective, theta):
    """Probes after a RAR refinement (5 of 500 candidates added) and then a RAD redraw."""
    from pinnsolve.resampling import RAD, RAR

    rar = RAR(100, add=5, candidates=500, seed=0)
    rar.restore(objective, None, 0)
    rar.update(objective, theta, 1)
    out = {"rar": probe(objective, theta), "rar_points": objective.points("pde").clone()}
    RAD(100, candidates=500, seed=0).update(objective, theta, 2)
    out.update(rad=probe(objective, theta), rad_points=objective.points("pde").clone())
    return out


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    from pinnsolve.distributed import ShardedObjective, is_main

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        obj = ShardedObjective(make_objective())
        theta = obj.initial_theta()
        result = {"start": probe(obj, theta), "shard": [t.points[0].shape[0] for t in obj.terms]}
        result["history"] = lbfgs_history(obj, theta)
        result["others"] = other_histories(obj, theta)
        obj.resample(7)
        result["resampled"] = probe(obj, theta)
        result.update(adapted(obj, theta))
        result["shard_after_rad"] = [t.points[0].shape[0] for t in obj.terms]
        # the stop vote: only rank 1 is past its deadline, every rank must see the stop
        obj.set_budget(-1.0 if rank == 1 else 1e9)
        obj.loss_and_grad(theta)
        result["stop_after_vote"] = obj.stop_requested
        obj.set_budget(None)
        obj.loss(theta)
        result["stop_without_vote"] = obj.stop_requested
        buf = io.StringIO()
        with redirect_stdout(buf):
            if is_main():
                print("only rank 0")
        result["printed"] = buf.getvalue()
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
