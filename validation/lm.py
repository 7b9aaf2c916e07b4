"""Levenberg-Marquardt vs the default quasi-Newton on Burgers at equal wall-time budgets.

Runs ``pinnsolve burgers --threads 1 --max-time B --json`` (nu = 0.01/pi, the CLI's
defaults: 3 x 20 tanh, 2,540 + 160 + 160 points, resampling every 100 iterations) for
every budget ``B`` and every configuration, one process at a time, and writes
``validation/results/lm.md`` (relative L2 error, final loss, iterations, seconds per
iteration)::

    python validation/lm.py                       # budgets 20 and 60 s
    python validation/lm.py --budget 120          # one budget
    python validation/lm.py --quick               # 10 s budget

The configurations: ``ssbroyden`` (the recommended default), ``lm``, and ``lm`` with
fresh points every 20 iterations (an LM iteration does much more per point set than a
quasi-Newton one); ``lm`` and ``levenberg`` with the dense and the matrix-free (``--lm-solver
cg``) linear algebra::

    python validation/lm.py --budget 20 --budget 50 --only lm --only "lm, --lm-solver cg" \
        --only levenberg --only "levenberg, --lm-solver cg" --out validation/results/lm_cg.md
    python validation/lm.py --budget 50 --only "levenberg, --layers 30,30,30" \
        --only "levenberg, --layers 30,30,30 --lm-solver cg" \
        --only "levenberg, --layers 40,40,40" \
        --only "levenberg, --layers 40,40,40 --lm-solver cg" --out validation/results/lm_cg_sizes.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = {
    "ssbroyden": ["--optimizer", "ssbroyden"],
    "lm": ["--optimizer", "lm"],
    "lm, --resample-every 20": ["--optimizer", "lm", "--resample-every", "20"],
    "lm, --lm-solver cg": ["--optimizer", "lm", "--lm-solver", "cg"],
    "levenberg": ["--optimizer", "levenberg"],
    "levenberg, --lm-solver cg": ["--optimizer", "levenberg", "--lm-solver", "cg"],
    # larger networks: where the matrix-free path overtakes the dense one
    "levenberg, --layers 30,30,30": ["--optimizer", "levenberg", "--lm-solver", "dense",
                                     "--layers", "30,30,30"],
    "levenberg, --layers 30,30,30 --lm-solver cg": ["--optimizer", "levenberg", "--lm-solver",
                                                    "cg", "--layers", "30,30,30"],
    "levenberg, --layers 40,40,40": ["--optimizer", "levenberg", "--lm-solver", "dense",
                                     "--layers", "40,40,40"],
    "levenberg, --layers 40,40,40 --lm-solver cg": ["--optimizer", "levenberg", "--lm-solver",
                                                    "cg", "--layers", "40,40,40"],
}


def run(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pinnsolve", "burgers", "--threads", "1", "--json", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, action="append",
                    help="wall-time budget in seconds (repeatable; default 20 and 60)")
    ap.add_argument("--quick", action="store_true", help="one 10 s budget")
    ap.add_argument("--only", action="append", choices=list(CONFIGS),
                    help="run only these configurations (repeatable)")
    ap.add_argument("--out", default=str(HERE / "results" / "lm.md"))
    args = ap.parse_args(argv)
    budgets = [10.0] if args.quick else (args.budget or [20.0, 60.0])
    configs = {k: v for k, v in CONFIGS.items() if not args.only or k in args.only}
    rows = []
    for budget in budgets:
        for name, extra in configs.items():
            res = run([*extra, "--max-time", f"{budget:g}"])
            it = res["iterations"]
            rows.append(
                f"| {budget:g} | {name} | {res['rel_l2_error']:.2e} | {res['final_loss']:.2e} "
                f"| {it} | {res['wall_time_s'] / max(it, 1):.3f} |"
            )
            print(rows[-1], flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = "\n".join([
        "# Levenberg-Marquardt vs SSBroyden on Burgers nu = 0.01/pi (equal wall time)",
        "",
        f"`python validation/lm.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f" -- each row `pinnsolve burgers --threads 1 --max-time B --json` with the listed "
        f"options (3 x 20 tanh, 921 parameters, unless --layers says otherwise; 2,860 "
        f"residuals, float64); one run at a "
        f"time on a shared 2-core machine (load average at the end {load}): timings are "
        f"under load.",
        "",
        "| budget (s) | optimizer | rel. L2 error | final loss | iterations | s / iteration |",
        "|---:|---|---:|---:|---:|---:|",
        *rows,
    ]) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
