"""The accuracy frontier on Burgers: each option measured on its own against the default.

Every row runs ``pinnsolve burgers`` through the command line, exactly as a user would:
the default recipe (no options) plus ONE option changed, under the same wall-time
budget (``--budget`` seconds per row, ``--threads 1``), so the rows rank the options by
the error reached at equal cost.  Writes into ``--out`` (default validation/results/):

* ``accuracy.md``: option -> relative L2 error, max abs error, iterations, time,
  error relative to the default row;
* ``accuracy_curves.png``: relative L2 error (and loss) against wall time of the
  default and the best rows;
* ``accuracy_best.png``: prediction vs exact and the pointwise error (log colour scale)
  of the best row;
* ``accuracy_runs/<row>.h5``: the results files.

With ``--targets`` it runs instead the target runs of the issue at full length
(``--preset accurate`` on nu = 0.01/pi and on 0.001/pi, the default ``pinnsolve
burgers`` on 0.01/pi and 0.01) and writes ``accuracy_targets.md``::

    python validation/accuracy.py --budget 90                 # the option table
    python validation/accuracy.py --rows default,hard,opt-ssbroyden --budget 60
    python validation/accuracy.py --targets                   # the full-length targets
    python validation/accuracy.py --targets --rows default-0.01   # one of them

"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

#: The reference recipe every option row starts from (the default of pinnsolve 0.1 before
#: this table: self-scaled BFGS, soft IC/BC, 3 x 20 tanh, float64, 2540 Sobol points
#: redrawn every 100 iterations), spelled out so the rows do not move with the CLI default.
BASE = ["--optimizer", "ssbfgs", "--layers", "20,20,20", "--activation", "tanh",
        "--points", "2540", "--sampler", "sobol", "--resample-every", "100", "--warmup", "0",
        "--dtype", "float64", "--no-hard"]

#: Option rows: name -> (what changes, arguments after BASE).  Each changes ONE thing of
#: the reference recipe (the last occurrence of an option wins); rows whose arguments
#: start with ``--preset`` or are empty run WITHOUT BASE (the CLI's own recipes).
ROWS: dict[str, tuple[str, list[str]]] = {
    "default": ("reference recipe (ssbfgs, soft IC/BC, 3x20 tanh, 2540 Sobol, resample 100)",
                ["--optimizer", "ssbfgs"]),
    "hard": ("hard-constrained IC/BC", ["--hard"]),
    "resample-0": ("no resampling (fixed points)", ["--resample-every", "0"]),
    "resample-50": ("resample every 50 iterations", ["--resample-every", "50"]),
    "resample-300": ("resample every 300 iterations", ["--resample-every", "300"]),
    "warmup-1000": ("1000 Adam steps first", ["--warmup", "1000"]),
    "net-4x20": ("4 x 20 network", ["--layers", "20,20,20,20"]),
    "net-3x30": ("3 x 30 network", ["--layers", "30,30,30"]),
    "act-sin": ("sin activation", ["--activation", "sin"]),
    "points-1000": ("1000 collocation points", ["--points", "1000"]),
    "points-5000": ("5000 collocation points", ["--points", "5000"]),
    "sampler-lhs": ("Latin hypercube sampler", ["--sampler", "lhs"]),
    "sampler-uniform": ("uniform random sampler", ["--sampler", "uniform"]),
    "opt-ssbroyden": ("SSBroyden2 optimizer", ["--optimizer", "ssbroyden"]),
    "opt-ssbroyden1": ("SSBroyden1 optimizer", ["--optimizer", "ssbroyden1"]),
    "opt-bfgs": ("plain dense BFGS", ["--optimizer", "bfgs"]),
    "opt-lbfgs": ("L-BFGS (history 300)", ["--optimizer", "lbfgs"]),
    "float32": ("float32 instead of float64", ["--dtype", "float32"]),
    "ssbroyden-hard": ("combination: ssbroyden + hard", ["--optimizer", "ssbroyden", "--hard"]),
    "rad": ("residual-based adaptive resampling (RAD)", ["--adaptive", "rad"]),
    "rar": ("residual-based adaptive refinement (RAR)", ["--adaptive", "rar"]),
    "weights": ("learning-rate annealing of the loss weights", ["--weighting", "annealing"]),
    "continuation": ("viscosity continuation from nu = 0.1",
                     ["--continuation", "nu:0.1"]),
    "cli-default": ("`pinnsolve burgers` as shipped (no options)", []),
    "preset-accurate": ("`--preset accurate` (its own time limit replaced by the budget)",
                        ["--preset", "accurate"]),
}


def row_arguments(name: str) -> list[str]:
    """The ``pinnsolve burgers`` arguments of option row ``name`` (without the budget)."""
    extra = ROWS[name][1]
    return list(extra) if not extra or extra[0] == "--preset" else [*BASE, *extra]

#: The target runs of the issue: name -> (nu, arguments, time limit in s, target).
TARGETS: dict[str, tuple[str, list[str], float, float | None]] = {
    "accurate-0.01/pi": ("0.01/pi", ["--preset", "accurate"], 1200, 5e-7),
    "default-0.01/pi": ("0.01/pi", [], 600, 1e-4),
    "default-0.01": ("0.01", [], 300, 1e-5),
    "accurate-0.001/pi": ("0.001/pi", ["--preset", "accurate"], 1200, None),
    "default-0.001/pi": ("0.001/pi", [], 600, None),
}


def run(name: str, nu: str, extra: list[str], out: Path, threads: int | None) -> dict:
    """One ``pinnsolve burgers`` run; returns its JSON summary plus the history."""
    runs = out / "accuracy_runs"
    runs.mkdir(parents=True, exist_ok=True)
    h5 = runs / (name.replace("/", "_") + ".h5")
    cmd = [sys.executable, "-m", "pinnsolve", "burgers", "--nu", nu, "--json", "--quiet",
           "--out", str(h5), *(["--threads", str(threads)] if threads else []), *extra]
    shown = " ".join(["pinnsolve", *cmd[3:]]).replace(str(h5), "RUN.h5")
    print("$", shown, flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return {"name": name, "command": shown, "error": done.stderr.strip().splitlines()[-1]}
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print(done.stdout.strip().splitlines()[0], flush=True)
    return {"name": name, "command": shown, "h5": str(h5),
            "process_time": time.perf_counter() - t0, **summary}


def from_file(name: str, out: Path) -> dict:
    """A row's summary from its results file (``--report``)."""
    from pinnsolve.io import load_run

    h5 = out / "accuracy_runs" / (name.replace("/", "_") + ".h5")
    if not h5.is_file():
        return {"name": name, "command": "", "error": f"no results file {h5}"}
    return {"name": name, "h5": str(h5), **load_run(h5)["metrics"]}


def error_at_iteration(h5: str, k: int) -> float | None:
    """The rel L2 error recorded at the first history row with iteration >= ``k``."""
    from pinnsolve.io import load_run

    hist = load_run(h5)["history"]
    for it, err in zip(hist["iteration"], hist["rel_l2_error"]):
        if it >= k:
            return float(err)
    return None


def _fmt(r: dict, ref: float | None) -> str:
    if "error" in r:
        return f"| failed: {r['error']} | | | | |"
    ratio = f"{r['rel_l2_error'] / ref:.2f}" if ref else ""
    return (f"| {r['rel_l2_error']:.2e} | {r['max_abs_error']:.2e} | {r['iterations']} | "
            f"{r['wall_time_s']:.0f} | {ratio} |")


def _shown(argv: list[str]) -> list[str]:
    """``argv`` without ``--note TEXT`` (the note is printed as its own paragraph)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--note="):
            skip = False
            continue
        skip = a == "--note"
        if not skip:
            out.append(a)
    return out


def header(args: argparse.Namespace, what: str) -> list[str]:
    import torch

    return [
        f"# Burgers accuracy: {what}",
        "",
        f"Command: `python validation/accuracy.py {' '.join(_shown(sys.argv[1:]))}`  ",
        f"Machine: {platform.machine()}, torch {torch.__version__}, "
        f"{args.threads or 'default'} thread(s) per run; run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
        "Error on the 256 x 100 grid against the exact Cole-Hopf solution.",
    ]


def figures(results: list[dict], out: Path, stem: str, best: int = 4) -> None:
    from pinnsolve.io import load_run
    from pinnsolve.plot import plot_history, plot_run

    ok = [r for r in results if "h5" in r]
    if not ok:
        return
    ranked = sorted(ok, key=lambda r: r["rel_l2_error"])
    chosen = ranked[:best] + [r for r in ok if r["name"] == "default" and r not in ranked[:best]]
    hist = {r["name"]: load_run(r["h5"])["history"] for r in chosen}
    plot_history(hist, out / f"{stem}_curves.png", x="time", ys=("rel_l2_error", "loss"))
    plot_run(ranked[0]["h5"], out / f"{stem}_best.png")
    print(f"figures: {out / f'{stem}_curves.png'}, {out / f'{stem}_best.png'} "
          f"(best: {ranked[0]['name']})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--nu", default="0.01/pi", help="viscosity of the option rows")
    ap.add_argument("--budget", type=float, default=120.0,
                    help="wall-time budget (s) of each option row (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=None,
                    help="instead of a time budget: stop each row after this many iterations "
                    "of the main optimizer (equal work, independent of the machine's load)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (default: %(default)s; 0: torch's choice)")
    ap.add_argument("--rows", default=None,
                    help="comma-separated row (or, with --targets, target) names to run")
    ap.add_argument("--targets", action="store_true",
                    help="run the issue's target runs at full length instead of the rows")
    ap.add_argument("--report", action="store_true",
                    help="do not run: rebuild the table (or, with --targets, the target "
                    "table) and figures from accuracy_runs/*.h5")
    ap.add_argument("--note", default="", help="a line of run conditions for the table")
    ap.add_argument("--list", action="store_true", help="list the rows and targets, then stop")
    args = ap.parse_args(argv)
    if args.list:
        for k, (d, e) in ROWS.items():
            print(f"{k:18s} {d}: {' '.join(e)}")
        for k, (nu, e, limit, target) in TARGETS.items():
            print(f"{k:18s} nu={nu} {' '.join(e)} <= {limit:.0f} s, target {target}")
        return
    table = TARGETS if args.targets else ROWS
    names = list(table) if args.rows is None else [s for s in args.rows.split(",") if s]
    unknown = [n for n in names if n not in table]
    if unknown:
        ap.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    args.out.mkdir(parents=True, exist_ok=True)
    threads = args.threads or None
    results = []
    if args.targets:
        for name in names:
            nu, extra, limit, target = TARGETS[name]
            if args.report:
                r = {**from_file(name, args.out),
                     "command": " ".join(["pinnsolve burgers --nu", nu, *extra])}
                if "error" in r and args.rows is None:
                    continue
            else:
                r = run(name, nu, extra, args.out, threads)
            results.append({**r, "target": target, "limit": limit, "nu": nu})
        lines = header(args, "the target runs at full length") + [
            *(["", args.note] if args.note else []),
            "",
            "| run | command | rel L2 | max abs | iterations | time (s) | limit (s) | target |"
            " met |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results:
            if "error" in r:
                lines.append(f"| {r['name']} | `{r['command']}` | failed: {r['error']} |")
                continue
            met = ("" if r["target"] is None else
                   "yes" if r["rel_l2_error"] <= r["target"]
                   and r["wall_time_s"] <= 1.02 * r["limit"]  # the budget is checked per iteration
                   else "no")
            lines.append(
                f"| {r['name']} | `{r['command']}` | {r['rel_l2_error']:.2e} | "
                f"{r['max_abs_error']:.2e} | {r['iterations']} | {r['wall_time_s']:.0f} | "
                f"{r['limit']:.0f} | {r['target'] or 'report'} | {met} |")
        (args.out / "accuracy_targets.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        figures(results, args.out, "accuracy_targets", best=3)
        return

    for name in names:
        if args.report:  # rebuild the table from the results files of an earlier run
            r = from_file(name, args.out)
            if "error" not in r or args.rows is not None:  # rows never run are left out
                results.append(r)
            continue
        limit = (["--max-iter", str(args.iters), "--max-time", "1e9"] if args.iters
                 else ["--max-time", f"{args.budget:g}"])
        extra = [*row_arguments(name), *limit]
        results.append(run(name, args.nu, extra, args.out, threads))
    ref = next((r["rel_l2_error"] for r in results
                if r["name"] == "default" and "error" not in r), None)
    done = [r for r in results if "h5" in r]
    k = min((r["iterations"] for r in done), default=0) // 100 * 100
    at_k = {r["name"]: error_at_iteration(r["h5"], k) for r in done} if k else {}
    per_row = (f"{args.iters} iterations" if args.iters else
               "the budget in the note" if args.report else f"{args.budget:g} s")
    lines = header(args, f"one option at a time, nu = {args.nu}, {per_row} per row") + [
        *([args.note, ""] if args.note else []),
        "Each row is the reference recipe (`BASE` in validation/accuracy.py) with ONE option "
        "changed; `vs default` = rel L2 of the row / rel L2 of the `default` (reference) row "
        "(below 1 is better); rows `cli-default` and `preset-*` are the CLI's own recipes. "
        "Under a fluctuating machine load the iterations reached in the same time vary, "
        "so the last column compares the rows at equal work: the rel L2 at iteration "
        f"{k} (Adam warm-up steps included), from the run's history.",
        "",
        "| row | option | rel L2 | max abs | iterations | time (s) | vs default "
        f"| rel L2 @ it {k} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        opts = " ".join(ROWS[r["name"]][1])
        at = at_k.get(r["name"])
        lines.append(f"| {r['name']} | {ROWS[r['name']][0]}" + (f" (`{opts}`) " if opts else " ")
                     + _fmt(r, ref) + (f" {at:.2e} |" if at is not None else " |"))
    (args.out / "accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    figures(results, args.out, "accuracy")


if __name__ == "__main__":
    main()
