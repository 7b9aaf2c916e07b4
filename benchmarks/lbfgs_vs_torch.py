"""pinnsolve's L-BFGS against torch.optim.LBFGS(line_search_fn="strong_wolfe") on Burgers.

Same network, points, dtype and starting point.  Each round runs torch's L-BFGS for a
fixed number of iterations (its loss at the end is the target), then ours until it
reaches that loss; the order of the two alternates between rounds.  Printed: the
wall-time ratio ours / torch per round and its median (target <= 0.7).

    python benchmarks/lbfgs_vs_torch.py [--iters 500] [--rounds 5] [--history 50]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from pinnsolve import MLP
from pinnsolve.optim import LBFGS, StopCriteria, minimize
from pinnsolve.problems.burgers import make_problem


def run_torch(objective, theta0: torch.Tensor, iters: int, history: int):
    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=iters, max_eval=10 * iters,
                            history_size=history, tolerance_grad=0, tolerance_change=0,
                            line_search_fn="strong_wolfe")
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        loss, grad = objective.loss_and_grad(theta.detach())
        theta.grad = grad
        return loss

    t = time.perf_counter()
    opt.step(closure)
    elapsed = time.perf_counter() - t
    return float(objective.loss(theta.detach())), elapsed, opt.state[theta]["n_iter"], evals


def run_ours(objective, theta0: torch.Tensor, target: float, history: int, max_time: float):
    theta = theta0.clone()
    reached = {}

    def stop_at_target(th, progress, method):
        if progress.loss <= target:
            reached["time"] = progress.elapsed
            return True
        return False

    res = minimize(objective, theta, LBFGS(history=history),
                   StopCriteria(max_iter=10**6, max_time=max_time), callbacks=[stop_at_target])
    return res.loss, reached.get("time", math.inf), res.iterations, res.function_evals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=500, help="torch L-BFGS iterations per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--history", type=int, default=50)
    ap.add_argument("--nu", type=float, default=0.01 / math.pi)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    objective = make_problem(nu=args.nu).compile(
        MLP(2, 1, (20, 20, 20), lows=[-1, 0], highs=[1, 1], seed=0), dtype=torch.float64)
    theta0 = objective.initial_theta()
    print(f"Burgers nu={args.nu:.5g}, 3 x 20 tanh ({objective.n_params} parameters), float64, "
          f"{args.threads} threads, history {args.history}, torch budget {args.iters} iterations")
    ratios: list[float] = []
    target, prev_time = math.inf, math.inf
    for r in range(args.rounds):
        first_torch = r % 2 == 0
        if first_torch:
            t_loss, t_time, t_it, t_ev = run_torch(objective, theta0, args.iters, args.history)
            o_loss, o_time, o_it, o_ev = run_ours(objective, theta0, t_loss, args.history,
                                                  3 * t_time)
        else:  # ours first needs the target: take it from the previous round (same path)
            o_loss, o_time, o_it, o_ev = run_ours(objective, theta0, target, args.history,
                                                  3 * prev_time)
            t_loss, t_time, t_it, t_ev = run_torch(objective, theta0, args.iters, args.history)
        target, prev_time = t_loss, t_time
        ratios.append(o_time / t_time)
        print(f"round {r + 1}: torch {t_it} it / {t_ev} evals / {t_time:.2f} s -> loss "
              f"{t_loss:.4e}; ours {o_it} it / {o_ev} evals / {o_time:.2f} s to reach it; "
              f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"median time ratio ours / torch: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
