"""Cost of pinnsolve's torch.func fields against hand-written autograd, on Burgers.

Both sides evaluate the same loss and gradient (same network, points and dtype):
pinnsolve's compiled objective (``u.t + u*u.x - nu*u.xx`` through torch.func) and a
hand-written ``torch.autograd.grad(..., create_graph=True)`` version.  Timings are
interleaved and repeated; the script prints the median of the per-round ratios.

    python benchmarks/derivatives.py [--rounds 15] [--dtype float64] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from pinnsolve import MLP
from pinnsolve.problems.burgers import make_problem


def hand_written(objective, nu: float):
    """The Burgers loss and gradient with torch.autograd only (the baseline)."""
    (Xf,), (Xi,), (Xb,) = (t.points for t in objective.terms)
    target_ic = objective.terms[1].aux["target"]

    def loss_and_grad(theta: torch.Tensor):
        th = theta.detach().requires_grad_(True)
        net = objective.network(th)
        X = Xf.clone().requires_grad_(True)
        u = net(X)
        du = torch.autograd.grad(u.sum(), X, create_graph=True)[0]
        ux, ut = du[:, 0], du[:, 1]
        uxx = torch.autograd.grad(ux.sum(), X, create_graph=True)[0][:, 0]
        r = ut + u[:, 0] * ux - nu * uxx
        loss = (r.pow(2).mean() + (net(Xi)[:, 0] - target_ic).pow(2).mean()
                + net(Xb)[:, 0].pow(2).mean())
        (g,) = torch.autograd.grad(loss, th)
        return loss.detach(), g

    return loss_and_grad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=20, help="evaluations per timing")
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    nu = 0.01 / math.pi
    problem = make_problem(nu=nu, hard=False)
    objective = problem.compile(MLP(2, 1, (20, 20, 20), lows=[-1, 0], highs=[1, 1], seed=0),
                                dtype=dtype)
    theta = objective.initial_theta()
    baseline = hand_written(objective, nu)
    l0, g0 = baseline(theta)
    l1, g1 = objective.loss_and_grad(theta)
    err = float((g0 - g1).abs().max() / g0.abs().max())
    print(f"loss {float(l1):.6e} vs {float(l0):.6e}; max relative gradient difference {err:.1e}")
    ratios, times = [], {"pinnsolve": [], "autograd": []}
    for _ in range(args.rounds):
        for name, fn in (("autograd", baseline), ("pinnsolve", objective.loss_and_grad)):
            fn(theta)
            t = time.perf_counter()
            for _ in range(args.calls):
                fn(theta)
            times[name].append((time.perf_counter() - t) / args.calls)
        ratios.append(times["pinnsolve"][-1] / times["autograd"][-1])
    n = sum(t.points[0].shape[0] for t in objective.terms)
    print(f"Burgers loss+gradient, 3 x 20 tanh, {n} points, {args.dtype}, "
          f"{args.threads} threads, {args.rounds} rounds x {args.calls} calls")
    for name, ts in times.items():
        print(f"  {name:10s} median {statistics.median(ts) * 1e3:.2f} ms")
    print(f"ratio pinnsolve / autograd (median of rounds): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
