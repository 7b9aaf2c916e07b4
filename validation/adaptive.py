"""Loss weighting and adaptive sampling on Burgers nu = 0.01/pi at an equal, short budget.

Runs ``pinnsolve burgers --nu 0.01/pi`` (default recipe otherwise) once per case, one
after the other, each with the same wall-time budget and one torch thread, and writes
``validation/results/adaptive.md`` (rel L2 / max abs error against Cole-Hopf, iterations,
final weights of annealing).  Cases:

* ``fixed``: the default (all weights 1, uniform redraws every 100 iterations);
* ``annealing``: learning-rate annealing of the ic/bc weights (``--weighting annealing``);
* ``rar``, ``rad``: residual-based point strategies instead of uniform redraws.

    python validation/adaptive.py --budget 85 --cases fixed,annealing
    python validation/adaptive.py --budget 60 --cases fixed,rar,rad --table adaptive_sampling.md
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CASES = {
    "fixed": [],
    "annealing": ["--weighting", "annealing"],
    "rar": ["--adaptive", "rar"],
    "rad": ["--adaptive", "rad"],
}


def run_case(name: str, budget: float, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pinnsolve", "burgers", "--nu", "0.01/pi", "--json",
           "--quiet", "--threads", "1", "--max-time", str(budget), *CASES[name], *extra]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    print(done.stdout, end="", flush=True)
    return {"case": name, "command": " ".join(["pinnsolve", *cmd[3:]]),
            **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=85.0, help="seconds per case")
    ap.add_argument("--cases", default="fixed,annealing", help=f"from {', '.join(CASES)}")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--table", default="adaptive.md", help="file name of the table")
    args, extra = ap.parse_known_args()
    names = [c for c in args.cases.split(",") if c]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    rows = [run_case(c, args.budget, extra) for c in names]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Burgers nu = 0.01/pi: loss weighting / adaptive sampling at {args.budget:g} s each",
        "",
        f"One torch thread, cases run one after the other on {platform.node() or 'this machine'}"
        " (shared, loaded machine: compare iterations too).",
        "",
        "| case | rel L2 error | max abs error | iterations | time (s) | command |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['rel_l2_error']:.3e} | {r['max_abs_error']:.3e} | "
                     f"{r['iterations']} | {r['wall_time_s']:.0f} | `{r['command']}` |")
    path = args.out / args.table
    path.write_text("\n".join(lines) + "\n")
    print(f"table written to {path}")


if __name__ == "__main__":
    main()
