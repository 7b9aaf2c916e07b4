"""Cost of the residual Jacobian (for Levenberg-Marquardt) on Burgers, as ratios.

Burgers nu = 0.01/pi with the CLI's defaults (3 x 20 tanh, 921 parameters, float64,
2,540 + 160 + 160 = 2,860 residuals).  Every cost is reported as a ratio to one
``loss_and_grad`` evaluation timed in the same process, interleaved round by round (the
machine may be loaded: only the ratios are meaningful):

* ``per-point (expand + vmap net)``: :meth:`PINNObjective.jacobian` (the network
  vmapped over per-point parameter copies, residual code on the batch, one reverse pass);
* ``per-point (vmap of jacrev)``: ``vmap`` over the points of ``jacrev`` of the residual
  at one point (the residual code runs on a batch of one inside vmap);
* ``generic jacrev``: ``vmap(vjp)`` over one-hot cotangents of the whole residual vector
  (what Levenberg used before): timed on ``--rows`` rows and scaled to all 2,860;
* ``J'J (matmul)`` and ``J'J (syrk)``: forming the ``n x n`` normal matrix;
* ``cholesky``: one factorization of ``J'J + lambda D``.

    python benchmarks/jacobian.py            # 5 rounds
    python benchmarks/jacobian.py --quick    # 2 rounds, fewer generic rows

Writes ``benchmarks/results/jacobian.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.func import functional_call, jacrev, vjp, vmap

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pinnsolve import MLP  # noqa: E402
from pinnsolve.fields import FieldSet  # noqa: E402
from pinnsolve.optim.levenberg import normal_matrix  # noqa: E402


def vmap_of_jacrev(obj, theta: torch.Tensor) -> torch.Tensor:
    """The network columns of J by ``vmap`` over points of ``jacrev`` at one point."""
    params = obj.unflatten(theta)
    values = obj.parameter_values(theta)
    coords, fields = obj.problem.coords, obj.problem.fields
    blocks = []
    for term in obj.terms:

        def one(p, zs, aux, term=term):
            net = lambda Z: functional_call(obj.model, p, (Z,))  # noqa: E731
            sets = [FieldSet(net, z.unsqueeze(0), coords, fields, plan)
                    for z, plan in zip(zs, term.plans)]
            r = term.condition.residual(sets, {k: v.unsqueeze(0) for k, v in aux.items()},
                                        values)
            return r.reshape(-1)

        g = vmap(jacrev(one), in_dims=(None, 0, 0))(params, term.points, term.aux)
        N = term.points[0].shape[0]
        J = torch.cat([g[k].reshape(N, g[k].shape[1], -1) for k in obj._names], dim=2)
        c = J.shape[1]
        blocks.append(J.reshape(N * c, -1) * (obj.weights[term.name] / (N * c)) ** 0.5)
    return torch.cat(blocks)


def generic_rows(obj, theta: torch.Tensor, rows: int) -> torch.Tensor:
    """``rows`` rows of J by reverse passes over the whole residual vector (jacrev's way)."""
    r, pull = vjp(obj.residuals, theta)
    eye = torch.zeros(rows, r.numel(), dtype=r.dtype)
    eye[torch.arange(rows), torch.arange(rows)] = 1.0
    (g,) = vmap(pull)(eye)
    return g


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=64, help="rows timed for generic jacrev")
    ap.add_argument("--quick", action="store_true", help="2 rounds, 32 generic rows")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "jacobian.md"))
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.rows = 2, 32
    torch.set_num_threads(args.threads)
    import problems.burgers as burgers

    problem = burgers.make_problem()
    obj = problem.compile(MLP(2, 1, (20, 20, 20), "tanh", lows=[-1, 0], highs=[1, 1], seed=0))
    theta = obj.initial_theta()
    m, n = obj.residuals(theta).numel(), theta.numel()

    # correctness side by side (float64): both per-point Jacobians against generic rows
    J = obj.jacobian(theta)
    J2 = vmap_of_jacrev(obj, theta)
    G = generic_rows(obj, theta, 16)
    err = max(float((J[:16] - G).abs().max()), float((J2 - J).abs().max()))
    print(f"m = {m}, n = {n}; max |J - J_ref| = {err:.1e}")

    lam_d = J.T.pow(2).sum(1) * 1e-3
    cases = {
        "loss_and_grad": lambda: obj.loss_and_grad(theta),
        "per-point (expand + vmap net)": lambda: obj.jacobian(theta),
        "per-point (vmap of jacrev)": lambda: vmap_of_jacrev(obj, theta),
        f"generic jacrev ({args.rows} rows, x m/rows)": lambda: generic_rows(obj, theta,
                                                                             args.rows),
        "J'J (matmul)": lambda: J.T @ J,
        "J'J (syrk, normal_matrix)": lambda: normal_matrix(J),
        "cholesky of J'J + lambda D": lambda: torch.linalg.cholesky_ex(
            normal_matrix(J) + torch.diag(lam_d)),
    }
    scale = {f"generic jacrev ({args.rows} rows, x m/rows)": m / args.rows}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()  # warm up
    for _ in range(args.rounds):
        for k, fn in cases.items():
            times[k].append(timed(fn) * scale.get(k, 1.0))
    base = statistics.median(times["loss_and_grad"])
    lines = [
        "# Residual Jacobian cost on Burgers (ratios to one loss-and-gradient evaluation)",
        "",
        f"`python benchmarks/jacobian.py{' --quick' if args.quick else ''}`: 3 x 20 tanh, "
        f"n = {n} parameters, m = {m} residuals, float64, {args.threads} thread(s), median "
        f"of {args.rounds} interleaved rounds; machine load average at the end "
        f"{_load()}.  One loss-and-gradient evaluation took {base * 1e3:.1f} ms here.",
        f"Max |J - J_ref| over the methods (float64): {err:.1e}.",
        "",
        "| computation | time / loss_and_grad | ms |",
        "|---|---:|---:|",
    ]
    for k, ts in times.items():
        t = statistics.median(ts)
        lines.append(f"| {k} | {t / base:.1f} | {t * 1e3:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


def _load() -> str:
    try:
        import os

        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
