"""Validate `pinnsolve burgers` with default settings against the exact Cole-Hopf solution.

Runs nu = 0.01 and nu = 0.01/pi through the command line exactly as a user would
(``pinnsolve burgers --nu NU``, default settings), and writes into validation/results/:

* ``burgers_nu0.01.png``, ``burgers_nu0.01_pi.png``: prediction vs exact, pointwise
  error, slices at t = 0.25, 0.5, 0.75;
* ``burgers.md``: nu, relative L2 error, max abs error, iterations, evaluations, time.

    python validation/burgers.py [--out validation/results] [extra pinnsolve options...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

CASES = [("0.01", "nu0.01"), ("0.01/pi", "nu0.01_pi")]


def run_case(nu: str, stem: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pinnsolve", "burgers", "--nu", nu, "--json", "--quiet",
           "--plot", str(out / f"burgers_{stem}.png"), *extra]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    print(done.stdout, end="", flush=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args, extra = ap.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = (extra[extra.index("--threads") + 1] if "--threads" in extra[:-1]
               else f"torch's default ({torch.get_num_threads()})")
    rows = []
    for nu, stem in CASES:
        rows.append((nu, run_case(nu, stem, args.out, extra)))
    lines = [
        "# Burgers validation: `pinnsolve burgers` with default settings",
        "",
        f"Command: `{' '.join(['python validation/burgers.py', *extra])}`  ",
        f"Machine: {platform.machine()}, {threads} torch thread(s) per run, torch "
        f"{torch.__version__}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
        "Error on the 256 x 100 grid (x uniform on [-1, 1], t uniform on [0, 1]) against "
        "the exact Cole-Hopf solution.",
        "",
        "| nu | rel L2 error | max abs error | iterations | evaluations | time (s) | stop |",
        "|---|---|---|---|---|---|---|",
    ]
    for nu, r in rows:
        lines.append(
            f"| {nu} | {r['rel_l2_error']:.2e} | {r['max_abs_error']:.2e} | {r['iterations']} "
            f"| {r['function_evals']} | {r['wall_time_s']:.0f} | {r['stop_reason']} |"
        )
    (args.out / "burgers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
