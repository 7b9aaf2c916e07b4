"""pinnsolve's L-BFGS against torch.optim.LBFGS(line_search_fn="strong_wolfe") on Burgers.

Same network, points, dtype and starting point within a round (round r starts from
the network initialised with seed r).  Each round runs torch's L-BFGS for a fixed
number of iterations (its loss at the end is the target), then ours until it reaches
that loss.  Each side uses its own default history unless told otherwise: torch's
``history_size=100`` and pinnsolve's 300 (its compact representation makes a long
history cheap, where torch's two-loop recursion costs ~4 m small kernels per
iteration).  With ``--history M`` both use M and follow the same iterates, so the
ratio then measures the per-iteration overhead alone.  Printed: the wall-time ratio
ours / torch per round and its median (target <= 0.7).

    python benchmarks/lbfgs_vs_torch.py [--iters 500] [--rounds 5] [--history M]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from pinnsolve import MLP
from pinnsolve.optim import LBFGS, StopCriteria, make_method, minimize
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


def run_ours(objective, theta0: torch.Tensor, target: float, method, max_time: float):
    theta = theta0.clone()
    reached = {}

    def stop_at_target(th, progress, method):
        if progress.loss <= target:
            reached["time"] = progress.elapsed
            return True
        return False

    res = minimize(objective, theta, method,
                   StopCriteria(max_iter=10**6, max_time=max_time), callbacks=[stop_at_target])
    return res.loss, reached.get("time", math.inf), res.iterations, res.function_evals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=500, help="torch L-BFGS iterations per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--history", type=int, default=None, help="both sides (default: each its own)")
    ap.add_argument("--torch-history", type=int, default=100)
    ap.add_argument("--our-history", type=int, default=300)
    ap.add_argument("--ours", default="lbfgs", choices=["lbfgs", "bfgs", "ssbfgs"],
                    help="our method (default lbfgs; the dense ones show what else is on offer)")
    ap.add_argument("--nu", type=float, default=0.01 / math.pi)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m_torch = args.history or args.torch_history
    m_ours = args.history or args.our_history
    objective = make_problem(nu=args.nu).compile(
        MLP(2, 1, (20, 20, 20), lows=[-1, 0], highs=[1, 1], seed=0), dtype=torch.float64)
    print(f"Burgers nu={args.nu:.5g}, 3 x 20 tanh ({objective.n_params} parameters), float64, "
          f"{args.threads} threads, ours {args.ours}, history torch {m_torch} / ours {m_ours}, "
          "torch budget "
          f"{args.iters} iterations")
    ratios: list[float] = []
    for r in range(args.rounds):
        theta0 = torch.cat([p.detach().reshape(-1) for p in MLP(
            2, 1, (20, 20, 20), lows=[-1, 0], highs=[1, 1], seed=r).parameters()])
        t_loss, t_time, t_it, t_ev = run_torch(objective, theta0, args.iters, m_torch)
        method = LBFGS(history=m_ours) if args.ours == "lbfgs" else make_method(args.ours)
        o_loss, o_time, o_it, o_ev = run_ours(objective, theta0, t_loss, method, 3 * t_time)
        ratios.append(o_time / t_time)
        print(f"round {r + 1}: torch {t_it} it / {t_ev} evals / {t_time:.2f} s -> loss "
              f"{t_loss:.4e}; ours {o_it} it / {o_ev} evals / {o_time:.2f} s to reach it; "
              f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"median time ratio ours / torch: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
