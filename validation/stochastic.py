"""Stochastic optimizers on Burgers (nu = 0.01/pi) at equal wall time, and the cost of an
S-LBFGS inner iteration relative to an SGD iteration.

Runs S-LBFGS, mL-BFGS, SGD (momentum) and Adam on mini-batches of the collocation points
(stratified over PDE / initial / boundary terms) and full-batch L-BFGS, each for the same
wall-time budget from the same initial network (3 x 20 tanh, float64, 2,540 Sobol
points + 160 initial + 160 boundary, all redrawn every ``--resample-every`` iterations
for the full-batch method and every ``--resample-epochs`` x N/b for the mini-batch ones),
and records the relative L2 error against Cole-Hopf on the 256 x 100 grid over time.
Then it times ``step`` of S-LBFGS and SGD with the same batch, interleaved in rounds
(median of the per-step times), and the SVRG gradient pair (x, w) fused vs as two calls,
on the Burgers PINN and (if ``--data-dir`` holds MNIST) on the 784-128-10 classifier
with N = 5,000, batch ``--clf-batch-size``.  Writes into ``--out`` (validation/results):

* ``stochastic.png``: error vs wall time, one curve per method;
* ``stochastic.md``: the table (final / best error, iterations, loss) and the timings.

    python validation/stochastic.py                 # 5 x 55 s + timing, ~5.5 min, 1 thread
    python validation/stochastic.py --budget 600    # longer runs on a quiet machine
    python validation/stochastic.py --cost-only     # the cost tables only (~1 min), printed
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pinnsolve import MLP
from pinnsolve.io import atomic_write
from pinnsolve.optim import StopCriteria, make_method
from pinnsolve.optim.base import batch_loss_and_grad_each, batch_loss_and_grad_many
from pinnsolve.problems.burgers import make_problem
from pinnsolve.train import Stage, Trainer

NU = 0.01 / math.pi


def objective(seed: int = 0):
    problem = make_problem(nu=NU)
    model = MLP(2, 1, (20, 20, 20), lows=[-1.0, 0.0], highs=[1.0, 1.0], seed=seed)
    return problem.compile(model, seed=seed, sampler="sobol")


def configs(args) -> list[tuple[str, str, dict, int]]:
    """(label, method name, options, validate_every) of every run."""
    b = args.batch_size
    lr = {"slbfgs": 0.05, "mlbfgs": 1e-3, "sgd": 0.01, "adam": 5e-3}  # best of short trials
    lr.update(args.lr)
    return [
        ("S-LBFGS", "slbfgs", {"lr": lr["slbfgs"], "batch_size": b, "hessian_batch_size": b}, 25),
        ("mL-BFGS", "mlbfgs", {"lr": lr["mlbfgs"], "batch_size": b}, 25),
        ("SGD", "sgd", {"lr": lr["sgd"], "batch_size": b, "momentum": 0.9}, 25),
        ("Adam", "adam", {"lr": lr["adam"], "batch_size": b}, 25),
        ("L-BFGS (full batch)", "lbfgs", {"history": 50}, 10),
    ]


def run(label, name, options, validate_every, args) -> dict:
    obj = objective(args.seed)
    stochastic = "batch_size" in options
    resample = (max(1, round(args.resample_epochs * obj.n_samples / options["batch_size"]))
                if stochastic else args.resample_every)
    trainer = Trainer(obj, [Stage(make_method(name, **options), StopCriteria(max_iter=10**9))],
                      max_time=args.budget, validate_every=validate_every, progress_bar=False,
                      resample_every=resample or None, seed=args.seed)
    res = trainer.fit()
    h = res.history
    out = {
        "label": label, "name": name, "options": options, "resample_every": resample,
        "time": np.asarray(h["time"]), "error": np.asarray(h["rel_l2_error"]),
        "iterations": res.iterations, "final_error": res.rel_l2_error,
        "best_error": float(np.nanmin(h["rel_l2_error"])),
        "loss": float(obj.loss(res.theta)), "wall": res.wall_time_s,
        "sample_grads": trainer.stages[0].method.state.get("sample_grads"),
    }
    print(f"{label:22s} {res.iterations:7d} it  error {res.rel_l2_error:.3e} "
          f"(best {out['best_error']:.3e})  loss {out['loss']:.3e}  {res.wall_time_s:.0f} s",
          flush=True)
    return out


def classification_objective(args):
    """784-128-10 tanh MLP on the first 5,000 MNIST training images (float32), or None
    without the data."""
    from pinnsolve.classification import ClassificationObjective
    from pinnsolve.datasets import load_dataset

    try:
        data = load_dataset("mnist", args.data_dir)
    except (OSError, ValueError) as exc:
        print(f"classification timing skipped: {exc}")
        return None
    return ClassificationObjective(data.subset(5000))


def step_times(obj, b: int, rounds: int) -> dict:
    """Per-step times of S-LBFGS and SGD on the same objective and batch size, interleaved
    in ``rounds`` rounds, and of the SVRG gradient pair fused vs as two calls."""
    methods = {
        "slbfgs": make_method("slbfgs", lr=1e-3, batch_size=b, hessian_batch_size=b),
        "sgd": make_method("sgd", lr=1e-4, batch_size=b, momentum=0.9),
    }
    thetas = {k: obj.initial_theta() for k in methods}
    for k, m in methods.items():
        m.start(obj, thetas[k])
        for _ in range(30):  # warm up, and S-LBFGS has pairs
            m.step(obj, thetas[k])
    sl = methods["slbfgs"]
    pair = torch.stack([thetas["slbfgs"], sl.state["w"]])
    idx = obj.sample_batch(b, torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {"sgd": [], "slbfgs_inner": [], "slbfgs_all": [],
                                     "fused": [], "two_calls": [], "cached": []}
    # the snapshot cache S-LBFGS uses when the objective offers one (classification)
    snap = getattr(obj, "svrg_snapshot", None)
    cache = None if not callable(snap) or (out := snap(pair[1])) is None else out[2]
    L = sl.update_every
    for _ in range(rounds):
        for k, m in methods.items():
            for _ in range(20):
                plain = (k == "slbfgs" and not m.state["need_snapshot"]
                         and (m.state["t"] + 1) % L != 0)
                t0 = time.perf_counter()
                m.step(obj, thetas[k])
                dt = time.perf_counter() - t0
                if k == "sgd":
                    times["sgd"].append(dt)
                else:
                    times["slbfgs_all"].append(dt)
                    if plain:
                        times["slbfgs_inner"].append(dt)
        for key, fn in (("fused", batch_loss_and_grad_many),
                        ("two_calls", batch_loss_and_grad_each)):
            for _ in range(10):
                t0 = time.perf_counter()
                fn(obj, pair, idx)
                times[key].append(time.perf_counter() - t0)
        if cache is not None:
            for _ in range(10):
                t0 = time.perf_counter()
                obj.batch_svrg_difference(pair[0], idx, cache)
                times["cached"].append(time.perf_counter() - t0)
    # the direction alone (two-loop / compact form, m = 10 pairs)
    from pinnsolve.optim.lbfgs import history_direction

    g = thetas["slbfgs"].clone()
    dirs = []
    for _ in range(200):
        t0 = time.perf_counter()
        history_direction(sl.state["hist"], g)
        dirs.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    return {
        "batch": b,
        "sgd_ms": 1e3 * med["sgd"],
        "inner_ms": 1e3 * med["slbfgs_inner"],
        "all_ms": 1e3 * statistics.fmean(times["slbfgs_all"]),
        "sgd_mean_ms": 1e3 * statistics.fmean(times["sgd"]),
        "fused_ms": 1e3 * med["fused"],
        "two_calls_ms": 1e3 * med["two_calls"],
        "cached_ms": 1e3 * med["cached"] if "cached" in med else None,
        "direction_ms": 1e3 * statistics.median(dirs),
        "pairs": sl.state["hist"]["count"],
        "n": len(times["slbfgs_inner"]),
    }


def cost_table(t: dict, title: str) -> list[str]:
    return [
        "",
        f"## Cost of an iteration: {title} (batch {t['batch']}, interleaved rounds, same "
        "objective)",
        "",
        "| quantity | time (ms) |",
        "|---|---|",
        f"| SGD step (median) | {t['sgd_ms']:.2f} |",
        f"| S-LBFGS inner step without snapshot or HVP (median of {t['n']}) "
        f"| {t['inner_ms']:.2f} |",
        f"| S-LBFGS step, all in (mean: snapshots and HVPs amortised) | {t['all_ms']:.2f} |",
        f"| SGD step (mean) | {t['sgd_mean_ms']:.2f} |",
        f"| batch loss and gradient at (x, w), fused (median) | {t['fused_ms']:.2f} |",
        f"| the same as two `batch_loss_and_grad` calls (median) | {t['two_calls_ms']:.2f} |",
        *([f"| their difference from the snapshot cache, `batch_svrg_difference` (median) "
           f"| {t['cached_ms']:.2f} |"] if t["cached_ms"] is not None else []),
        f"| direction H v alone ({t['pairs']} pairs, median) | {t['direction_ms']:.3f} |",
        "",
        f"Ratio S-LBFGS inner / SGD (medians): **{t['inner_ms'] / t['sgd_ms']:.2f}x**; "
        f"all-in (means): {t['all_ms'] / t['sgd_mean_ms']:.2f}x.  An inner step needs the "
        "batch gradient at x and at the snapshot w (the SVRG correction)" + (
            "; this objective keeps per-sample quantities of the snapshot "
            "(`svrg_snapshot`), so S-LBFGS gets the difference of the two in one pass at x "
            f"(`batch_svrg_difference`), {t['cached_ms']:.2f} ms, where the fused pair "
            f"takes {t['fused_ms']:.2f} ms and two calls {t['two_calls_ms']:.2f} ms"
            if t["cached_ms"] is not None else
            "; both come from one fused evaluation (`batch_loss_and_grad_many`: the "
            f"parameter sets stacked, one batched pass), {t['fused_ms']:.2f} ms against "
            f"{t['two_calls_ms']:.2f} ms for two calls "
            f"({t['fused_ms'] / t['two_calls_ms']:.2f}x)") +
        f"; the quasi-Newton part (direction, averaging) is the {t['direction_ms']:.3f} "
        "ms above.",
    ]


def figure(runs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in runs:
        err = np.asarray(r["error"], dtype=float)
        diverged = bool((~np.isfinite(err) | (err > 10.0)).any())
        label = r["label"] + (" (diverged: off the top)" if diverged else "")
        ax.semilogy(r["time"], np.where(np.isfinite(err), err, 1e30), label=label)
    ax.set_ylim(top=1.5)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("relative L2 error vs Cole-Hopf")
    ax.set_title("Burgers, nu = 0.01/pi: equal wall time, 1 thread")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def table(runs, timing, args, command: str) -> str:
    lines = [
        "# Stochastic optimizers on Burgers (nu = 0.01/pi) at equal wall time",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} thread, torch "
        f"{torch.__version__}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        "on a shared machine under load (other jobs running).  ",
        f"Budget {args.budget:g} s per method; batch {args.batch_size} of the 2,860 points "
        "(2,540 PDE + 160 IC + 160 BC, stratified); error on the 256 x 100 grid.",
        "",
        "| method | options | resample every | iterations | per-sample grads | final rel L2 "
        "| best rel L2 | final full loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        sg = "-" if r["sample_grads"] is None else f"{r['sample_grads']:,}"
        lines.append(
            f"| {r['label']} | {opts} | {r['resample_every']} | {r['iterations']:,} | {sg} "
            f"| {r['final_error']:.3e} | {r['best_error']:.3e} | {r['loss']:.3e} |"
        )
    for title, t in timing:
        lines += cost_table(t, title)
    return "\n".join(lines) + "\n"


def cost(args) -> list[tuple[str, dict]]:
    """The cost tables: the Burgers PINN and (with the data) MNIST classification."""
    out = [("Burgers PINN", step_times(objective(args.seed), args.batch_size, args.rounds))]
    clf = classification_objective(args)
    if clf is not None:
        out.append(("MNIST 784-128-10, N = 5,000, float32",
                    step_times(clf, args.clf_batch_size, args.rounds)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=55.0, help="seconds per method")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--resample-every", type=int, default=100,
                    help="full-batch L-BFGS: fresh points every N iterations (0: never)")
    ap.add_argument("--resample-epochs", type=float, default=4.0,
                    help="mini-batch methods: fresh points every this many passes N/b")
    ap.add_argument("--rounds", type=int, default=8, help="timing rounds (20 steps each)")
    ap.add_argument("--lr", type=lambda s: dict((k, float(v)) for k, v in
                                                (kv.split("=") for kv in s.split(","))),
                    default={}, help="override step sizes, e.g. slbfgs=0.2,sgd=0.05")
    ap.add_argument("--only", default=None, help="comma-separated method names to run")
    ap.add_argument("--cost-only", action="store_true",
                    help="only time the iterations (print the cost tables, write nothing)")
    ap.add_argument("--clf-batch-size", type=int, default=512,
                    help="batch of the classification cost table")
    ap.add_argument("--data-dir", default=os.environ.get("PINNSOLVE_DATA")
                    or str(Path(__file__).resolve().parents[2] / "shared" / "datasets"),
                    help="MNIST for the classification cost table (skipped if absent)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import sys

    command = " ".join(["python validation/stochastic.py", *sys.argv[1:]])
    if args.cost_only:
        lines = [f"Command: `{command}`"]
        for title, t in cost(args):
            lines += cost_table(t, title)
        print("\n".join(lines))
        return
    runs = [run(*c, args) for c in configs(args)
            if args.only is None or c[1] in args.only.split(",")]
    if args.only is not None:
        return
    timing = cost(args)
    args.out.mkdir(parents=True, exist_ok=True)
    figure(runs, args.out / "stochastic.png")
    text = table(runs, timing, args, command)
    with atomic_write(args.out / "stochastic.md") as tmp:
        Path(tmp).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
