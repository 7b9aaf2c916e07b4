"""Validate every catalog problem with its default recipe against its exact/reference solution.

Runs ``pinnsolve run NAME`` for each catalog entry exactly as a user would (default
parameters and recipe), and writes into validation/results/:

* ``catalog_<name>.png`` (and ``catalog_<name>_<field>.png`` for the further fields of a
  system): prediction vs exact, pointwise error, slices;
* ``catalog.md``: problem, relative L2 error, max abs error, iterations, time.

    python validation/catalog.py [--budget-scale 0.5] [--threads 1] [--only heat,wave]
                                 [--out validation/results] [extra pinnsolve options...]

``--budget-scale`` multiplies every problem's ``--max-time`` (1 = the recipe; the
recipes add up to 13.5 minutes of training plus start-up).  With ``--only`` the
rows of the other problems are kept from the existing table (and the table says so).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pinnsolve.cli import RUN_DEFAULTS
from pinnsolve.io import load_run
from pinnsolve.plot import plot_run
from pinnsolve.problems import CATALOG, load, recipe

#: Burgers is validated by validation/burgers.py.
PROBLEMS = [name for name in CATALOG if name != "burgers"]


def run_case(name: str, out: Path, scale: float, threads: int, extra: list[str]) -> dict:
    budget = {**RUN_DEFAULTS, **recipe(load(name))}["max_time"] * scale
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / f"{name}.h5"
        cmd = [sys.executable, "-m", "pinnsolve", "run", name, "--json", "--quiet",
               "--max-time", f"{budget:g}", "--threads", str(threads), "--out", str(h5), *extra]
        print("$", " ".join(["pinnsolve", *cmd[3:]]), flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout, done.stderr, flush=True)
            return {"problem": name, "failed": done.stderr.strip().splitlines()[-1:]}
        print(done.stdout.splitlines()[0], flush=True)
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        summary["process_time_s"] = elapsed
        summary["budget_s"] = budget
        fields = list(load_run(h5)["fields"])
        for k, field in enumerate(fields):
            stem = f"catalog_{name}" + (f"_{field}" if k else "")
            plot_run(h5, out / f"{stem}.png", field=field)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--budget-scale", type=float, default=1.0,
                    help="multiply each recipe's --max-time (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads per run (default: %(default)s)")
    ap.add_argument("--only", default=",".join(PROBLEMS), help="comma-separated problems")
    args, extra = ap.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n]
    start = time.perf_counter()
    rows = [run_case(n, args.out, args.budget_scale, args.threads, extra) for n in names]
    total = time.perf_counter() - start
    command = " ".join(["python validation/catalog.py", *sys.argv[1:]])
    lines = [
        "# Catalog validation: `pinnsolve run NAME` with default parameters and recipe",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {args.threads} torch thread(s), torch "
        f"{torch.__version__}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"whole script {total / 60:.1f} min.  ",
        "Errors on each problem's evaluation grid (101 x 101 unless the problem says "
        "otherwise) against its exact or reference solution, all fields together.",
        "",
        "| problem | rel L2 error | max abs error | iterations | budget (s) | train (s) | "
        "process (s) | stop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table = args.out / "catalog.md"
    kept = []
    if table.is_file() and set(names) != set(PROBLEMS):  # a partial re-run: keep the rest
        old = table.read_text().splitlines()
        kept = [ln for ln in old if ln.startswith("| ") and not ln.startswith("| problem")
                and ln.split("|")[1].strip() not in names]
        if kept:
            lines[3:3] = ["Rows of " + ", ".join(ln.split("|")[1].strip() for ln in kept)
                          + " kept from the previous table: "
                          + " ".join(ln for ln in old[2:4]).replace("  ", " ").strip() + "  "]
    body = list(kept)
    for r in rows:
        if "failed" in r:
            body.append(f"| {r['problem']} | failed: {r['failed']} | | | | | | |")
            continue
        body.append(
            f"| {r['problem']} | {r['rel_l2_error']:.2e} | {r['max_abs_error']:.2e} | "
            f"{r['iterations']} | {r['budget_s']:.0f} | {r['wall_time_s']:.0f} | "
            f"{r['process_time_s']:.0f} | {r['stop_reason']} |"
        )
    order = {name: i for i, name in enumerate(PROBLEMS)}
    lines += sorted(body, key=lambda ln: order.get(ln.split("|")[1].strip(), len(order)))
    table.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
