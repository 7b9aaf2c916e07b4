"""Strong and weak scaling of data-parallel L-BFGS on Burgers (processes vs threads).

Configurations, each a fresh launch (``python -m torch.distributed.run`` for 2
processes), run **interleaved** round by round so that they see the same machine load:

==========  =========  =======  =================  ============================
name        processes  threads  interior points    compares
==========  =========  =======  =================  ============================
1p x 1t     1          1        N                  baseline
1p x 2t     1          2        N                  strong scaling, threads
2p x 1t     2          1        N                  strong scaling, processes
1p x 1t 2N  1          1        2N                 compute per point (with 1p x 1t)
2p x 1t 2N  2          1        2N                 weak scaling (vs 1p x 1t)
==========  =========  =======  =================  ============================

(boundary and initial points scale with the interior ones: N/16 each.)  Each launch
runs ``--warmup`` L-BFGS iterations, then times ``--iters`` iterations one by one on
rank 0 and reports their median; the 2-process launches also time the all-reduce of
``n_params + 2`` float64 numbers alone (median of 200).  Per configuration the table
gives the median over rounds.  Writes ``benchmarks/results/scaling.md`` and
``scaling.png``::

    python benchmarks/scaling.py                 # N = 4096, 3 rounds, 40 timed iterations
    python benchmarks/scaling.py --quick         # 1 round, 20 iterations (~1-2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def atomic_write(path: Path):
    from pinnsolve.io import atomic_write as aw

    return aw(path)
CONFIGS = [  # name, processes, threads, points factor
    ("1p x 1t", 1, 1, 1),
    ("1p x 2t", 1, 2, 1),
    ("2p x 1t", 2, 1, 1),
    ("1p x 1t 2N", 1, 1, 2),
    ("2p x 1t 2N", 2, 1, 2),
]


def worker(args: argparse.Namespace) -> None:
    """One launch: time L-BFGS iterations (and the all-reduce alone) on rank 0."""
    import torch
    import torch.distributed as dist

    from pinnsolve import MLP
    from pinnsolve.distributed import ShardedObjective, init_distributed, shutdown
    from pinnsolve.models import parse_layers
    from pinnsolve.optim import LBFGS
    from pinnsolve.problems.burgers import make_problem

    torch.set_num_threads(args.threads)
    info = init_distributed("cpu")
    n, nb = args.points, max(args.points // 16, 2)
    problem = make_problem(nu=0.01 / 3.141592653589793, points=n, boundary_points=nb,
                           initial_points=nb)
    model = MLP(2, 1, parse_layers(args.layers), lows=[-1.0, 0.0], highs=[1.0, 1.0], seed=0)
    objective = problem.compile(model, dtype=torch.float64, seed=0)
    if info.world > 1:
        objective = ShardedObjective(objective)
    theta = objective.initial_theta()
    method = LBFGS(history=args.history)
    method.start(objective, theta)
    for _ in range(args.warmup):
        method.step(objective, theta)
    times, evals = [], 0
    for _ in range(args.iters):
        t = time.perf_counter()
        info_step = method.step(objective, theta)
        times.append(time.perf_counter() - t)
        evals += info_step.evals
    allreduce = float("nan")
    if info.world > 1:
        buf = torch.zeros(objective.n_params + 2, dtype=torch.float64)
        samples = []
        for _ in range(200):
            t = time.perf_counter()
            dist.all_reduce(buf)
            samples.append(time.perf_counter() - t)
        allreduce = statistics.median(samples)
    if info.rank == 0:
        print(json.dumps({
            "iter_s": statistics.median(times), "evals_per_iter": evals / args.iters,
            "allreduce_s": allreduce, "n_params": objective.n_params,
            "loss": float(method.state["loss"]),
        }))
    shutdown()


def launch(args: argparse.Namespace, procs: int, threads: int, points: int) -> dict:
    flags = ["--worker", "--threads", str(threads), "--points", str(points), "--iters",
             str(args.iters), "--warmup", str(args.warmup), "--layers", args.layers,
             "--history", str(args.history)]
    if procs == 1:
        cmd = [sys.executable, str(Path(__file__).resolve()), *flags]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={procs}", str(Path(__file__).resolve()), *flags]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for attempt in range(2):  # one retry: a launch can fail on a loaded machine
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if out.returncode == 0:
            return {**json.loads(out.stdout.strip().splitlines()[-1]), "attempts": attempt + 1}
        print(f"launch failed (exit {out.returncode}); stderr tail:\n{out.stderr[-1500:]}",
              file=sys.stderr)
    raise RuntimeError(f"{' '.join(cmd)} failed twice")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", type=int, default=4096, help="N, interior points (strong)")
    p.add_argument("--layers", default="20,20,20")
    p.add_argument("--history", type=int, default=10)
    p.add_argument("--iters", type=int, default=40, help="timed iterations per launch")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 round of 20 iterations")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.rounds, args.iters = 1, 20
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    runs: dict[str, list[dict]] = {name: [] for name, *_ in CONFIGS}
    for r in range(args.rounds):
        for name, procs, threads, factor in CONFIGS:
            res = launch(args, procs, threads, factor * args.points)
            runs[name].append(res)
            print(f"round {r + 1} {name:>11}: {1e3 * res['iter_s']:.2f} ms/iteration, "
                  f"{res['evals_per_iter']:.2f} evals/iteration", flush=True)
    wall, load_after = time.perf_counter() - t0, os.getloadavg()
    med = {k: statistics.median(x["iter_s"] for x in v) for k, v in runs.items()}
    allreduce = statistics.median(x["allreduce_s"] for k, v in runs.items() for x in v
                                  if k.startswith("2p"))
    n_params = runs["1p x 1t"][0]["n_params"]
    base = med["1p x 1t"]
    # compute per point and evaluation on one core, from the per-evaluation times at N, 2N
    ev = {k: statistics.median(x["iter_s"] / x["evals_per_iter"] for x in v)
          for k, v in runs.items()}
    per_point = (ev["1p x 1t 2N"] - ev["1p x 1t"]) / (args.points * (1 + 2 / 16))
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "scaling.json") as tmp:
        tmp.write_text(json.dumps({"argv": sys.argv[1:], "runs": runs}, indent=1))
    write_results(args, runs, med, allreduce, n_params, base, per_point,
                  (load_before, load_after, wall))


def write_results(args, runs, med, allreduce, n_params, base, per_point, cond) -> None:
    """The markdown table and the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (load_before, load_after, wall) = cond
    N = args.points
    rows = [
        ("1p x 1t", f"{N}", "baseline", 1.0),
        ("1p x 2t", f"{N}", "strong, threads: t(1p x 1t) / t", base / med["1p x 2t"]),
        ("2p x 1t", f"{N}", "strong, processes: t(1p x 1t) / t", base / med["2p x 1t"]),
        ("1p x 1t 2N", f"{2 * N}", "work x2 on one core: t / t(1p x 1t)",
         med["1p x 1t 2N"] / base),
        ("2p x 1t 2N", f"{2 * N}", "weak efficiency: t(1p x 1t) / t", base / med["2p x 1t 2N"]),
    ]
    lines = [
        "# Scaling of data-parallel L-BFGS (Burgers, float64)",
        "",
        f"`python benchmarks/scaling.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after ({wall:.0f} s): **measured under load**, shared with "
        "other jobs, so absolute times are inflated and noisy; the configurations ran "
        "interleaved, round by round, so the ratios are comparable.",
        "",
        f"Network {args.layers} tanh ({n_params} parameters), L-BFGS history {args.history}, "
        f"{args.rounds} round(s) x {args.iters} timed iterations after {args.warmup} warm-up; "
        f"N = {N} interior points (+ N/16 initial + N/16 boundary).",
        "",
        "| configuration | points | ms / iteration (median) | rounds (ms) | evals / iteration "
        "| ratio | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, pts, meaning, ratio in rows:
        rounds = ", ".join(f"{1e3 * x['iter_s']:.1f}" for x in runs[name])
        epi = statistics.median(x["evals_per_iter"] for x in runs[name])
        lines.append(f"| {name} | {pts} | {1e3 * med[name]:.2f} | {rounds} | {epi:.2f} | "
                     f"{ratio:.2f} | {meaning} |")
    ratio2p = med["2p x 1t"] / base
    lines += [
        "",
        f"* 2 processes at equal total work: **{ratio2p:.2f}x** the time of 1 process "
        f"(target <= 1.25x; < 1 is a speed-up).",
        f"* all-reduce of {n_params + 2} float64 ({8 * (n_params + 2)} bytes, gloo, "
        f"localhost): {1e6 * allreduce:.0f} us median, "
        f"{100 * allreduce / med['2p x 1t']:.1f}% of a 2p x 1t iteration.",
        f"* compute per point and evaluation on one core (from the per-evaluation times of "
        f"1p x 1t at N and 2N): {1e6 * per_point:.2f} us.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "scaling.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    names = [r[0] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].bar(names, [1e3 * med[k] for k in names],
              color=["C0", "C1", "C2", "C0", "C2"])
    ax[0].set_ylabel("ms per L-BFGS iteration (median)")
    ax[0].set_title(f"Burgers, {n_params} parameters, N = {N}")
    ax[0].tick_params(axis="x", rotation=30)
    ax[1].bar(["strong\nthreads", "strong\nprocesses", "weak\nprocesses"],
              [rows[1][3], rows[2][3], rows[4][3]], color=["C1", "C2", "C2"])
    ax[1].axhline(1.0, color="k", lw=0.8)
    ax[1].axhline(0.8, color="r", lw=0.8, ls="--", label="1/1.25 (target)")
    ax[1].set_ylabel("speed-up / efficiency vs 1p x 1t")
    ax[1].legend()
    fig.suptitle(f"measured under load (load average {load_before[0]:.1f})", fontsize=9)
    fig.tight_layout()
    with atomic_write(args.out / "scaling.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    print("\n".join(lines))
    print(f"written: {args.out / 'scaling.md'}, {args.out / 'scaling.png'}")


if __name__ == "__main__":
    main()
