"""The command line: ``pinnsolve burgers --nu 0.01``, ``pinnsolve classify mnist``,
``pinnsolve plot run.h5``.

Every subcommand that trains takes the same training options (see
:func:`add_training_options`); bad input ends with a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import operator
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["main", "parse_number"]

DTYPES = {"float64": torch.float64, "float32": torch.float32}

_OPS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def parse_number(text: str) -> float:
    """A number or simple arithmetic with ``pi`` and ``e``: ``"0.01/pi"``, ``"1e-3"``."""
    consts = {"pi": math.pi, "e": math.e}

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in consts:
            return consts[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError

    try:
        value = ev(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"invalid number {text!r} (use e.g. 0.01, 1e-3 or 0.01/pi)"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: not finite")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = parse_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _schedule_name(text: str) -> str:
    from .optim import SCHEDULES

    if text not in SCHEDULES:
        raise argparse.ArgumentTypeError(
            f"unknown learning-rate schedule {text!r}; choose from: {', '.join(SCHEDULES)}")
    return text


def _standardization(text: str) -> str:
    from .datasets import STANDARDIZE

    if text not in STANDARDIZE:
        raise argparse.ArgumentTypeError(
            f"unknown standardization {text!r}; choose from: {', '.join(STANDARDIZE)}")
    return text


def _default_help(defaults: dict[str, Any], key: str, unit: str = "") -> str:
    """The end of an option's help: its default, or the Burgers regimes' when ``None``."""
    if defaults[key] is not None:
        return "%(default)s" + unit + ")"
    smooth, shock = BURGERS_REGIMES["smooth"][key], BURGERS_REGIMES["shock"][key]
    return f"{smooth:g}{unit} for nu >= 0.01, {shock:g}{unit} below)" if unit else \
        f"{smooth} for nu >= 0.01, {shock} below)"


def add_training_options(p: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """The options every training subcommand shares (same names everywhere)."""
    from .optim import METHODS, SCHEDULES
    from .sampling import SAMPLERS

    g = p.add_argument_group("training")
    g.add_argument("--optimizer", default=defaults["optimizer"], choices=sorted(METHODS),
                   metavar="NAME", help="optimizer: %(choices)s (default: %(default)s)")
    g.add_argument("--max-iter", type=_positive_int, default=defaults["max_iter"],
                   metavar="N", help="iteration limit of the main optimizer (default: %(default)s)")
    g.add_argument("--max-time", type=_positive_float, default=defaults["max_time"],
                   metavar="SECONDS", help="wall-time budget of the whole run (default: "
                   + _default_help(defaults, "max_time", " s"))
    g.add_argument("--history", type=_positive_int, default=defaults["history"], metavar="M",
                   help="curvature pairs kept by the limited-memory methods (default: "
                   "the method's own, e.g. lbfgs 10, slbfgs 10)")
    g.add_argument("--warmup", type=int, default=defaults["warmup"], metavar="N",
                   help="Adam iterations before the optimizer (default: %(default)s)")
    g.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate / step size of adam, sgd, gd, slbfgs, mlbfgs (default: "
                   "the method's own: adam and sgd 1e-3, slbfgs 0.05, mlbfgs 0.002; gd: a "
                   "line search)")
    g.add_argument("--lr-schedule", type=_schedule_name, default=None, metavar="NAME",
                   help="learning-rate schedule of the step-size optimizers (sgd, adam, "
                   "slbfgs, mlbfgs, gd with --lr): " + ", ".join(SCHEDULES) + " (see "
                   "pinnsolve.optim.schedule; default: constant)")
    g.add_argument("--lr-decay-steps", type=_positive_int, default=None, metavar="N",
                   help="horizon of --lr-schedule in iterations (cosine/linear reach their "
                   "end, step decays at N/2 and 3N/4, exponential reaches 1%%; default: "
                   "--max-iter)")
    g.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                   help="mini-batch size (collocation points per iteration, drawn from every "
                   "term in proportion) of the stochastic optimizers sgd, adam, slbfgs, "
                   "mlbfgs (default: full batch; slbfgs: 64)")
    g.add_argument("--lm-solver", choices=("auto", "dense", "cg"), default=None,
                   help="linear algebra of levenberg/lm: dense (Jacobian, J'J, Cholesky), "
                   "cg (matrix-free CGLS on J v / J'u products) or auto (dense up to 2500 "
                   "parameters; the default)")
    g.add_argument("--gtol", type=float, default=0.0,
                   help="stop when max |gradient| <= GTOL (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of network and points")
    continuation = defaults.get("continuation", "none")
    g.add_argument("--continuation", metavar="NAME:START", default=continuation,
                   help="homotopy continuation in a problem parameter, e.g. nu:0.1: solve "
                   "at START first, then at geometric steps down (or up) to the target value; "
                   "none: no continuation (default: " + (
                       "%(default)s)" if continuation is not None else
                       f"{BURGERS_REGIMES['thin']['continuation']} for nu < 0.001, else none)"))
    g.add_argument("--continuation-steps", type=_positive_int, default=4, metavar="K",
                   help="continuation steps from START to the target (default: %(default)s)")
    g.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice, the core count)")
    g.add_argument("--nproc", type=_positive_int, default=1, metavar="N",
                   help="data-parallel ranks on this machine: re-launches through torchrun "
                   "(default: %(default)s)")
    m = p.add_argument_group("model and points")
    m.add_argument("--layers", default=defaults["layers"], metavar="W,W,...",
                   help="hidden layer widths (default: " + _default_help(defaults, "layers"))
    m.add_argument("--activation", default="tanh", help="activation (default: %(default)s)")
    if "points" in defaults:  # collocation, adaptive points, weighting: PDEs only
        m.add_argument("--points", type=_positive_int, default=defaults["points"], metavar="N",
                       help="interior collocation points (default: %(default)s)")
        m.add_argument("--sampler", default=defaults["sampler"], choices=SAMPLERS,
                       help="collocation sampler (default: %(default)s)")
        m.add_argument("--resample-every", type=int, default=defaults["resample_every"],
                       metavar="N", help="iterations between point updates (fresh points, or the "
                       "--adaptive strategy); 0: fixed points (default: %(default)s)")
        m.add_argument("--adaptive", default=defaults["adaptive"], choices=("none", "rar", "rad"),
                       help="residual-based point strategy every --resample-every iterations: "
                       "rar adds the worst candidates, rad redraws the points with density "
                       "~ |r|^k/mean|r|^k + c; none: uniform redraws (default: %(default)s)")
        m.add_argument("--candidates", type=_positive_int, default=None, metavar="N",
                       help="random candidate points scored by rar/rad (default: 10 x "
                       "--points)")
        m.add_argument("--rar-add", type=_positive_int, default=10, metavar="K",
                       help="points rar adds each time (default: %(default)s)")
        m.add_argument("--rad-k", type=float, default=1.0, metavar="K",
                       help="rad exponent k (default: %(default)s)")
        m.add_argument("--rad-c", type=float, default=1.0, metavar="C",
                       help="rad constant c (default: %(default)s)")
        m.add_argument("--weighting", default="fixed", choices=("fixed", "annealing"),
                       help="loss weights: fixed (--weights) or learning-rate annealing of the "
                       "non-PDE terms (default: %(default)s)")
        m.add_argument("--weights", default="", metavar="TERM=W,...",
                       help="initial/fixed term weights, e.g. ic=10,bc=10 (default: all 1)")
        m.add_argument("--anneal-every", type=_positive_int, default=100, metavar="N",
                       help="iterations between annealing updates (default: %(default)s)")
        m.add_argument("--anneal-alpha", type=float, default=0.1, metavar="ALPHA",
                       help="annealing moving-average factor in (0, 1] (default: %(default)s)")
    m.add_argument("--dtype", default=defaults.get("dtype", "float64"),
                   choices=sorted(DTYPES),
                   help="floating-point type (default: %(default)s)")
    m.add_argument("--device", default="cpu" if not torch.cuda.is_available() else "cuda",
                   help="torch device (default: %(default)s)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, metavar="FILE.h5", help="write results to HDF5")
    o.add_argument("--plot", type=Path, metavar="FIG.png", help="draw the validation figure")
    o.add_argument("--json", action="store_true",
                   help="print a JSON summary as the last line of output")
    o.add_argument("--checkpoint", type=Path, metavar="FILE.h5",
                   help="write checkpoints here (every --checkpoint-every seconds and at the end)")
    o.add_argument("--checkpoint-every", type=_positive_float, default=60.0, metavar="SECONDS")
    o.add_argument("--resume", type=Path, metavar="FILE.h5", help="continue from a checkpoint")
    o.add_argument("--validate-every", type=_positive_int, default=100, metavar="N",
                   help="iterations between history rows / error checks (default: %(default)s)")
    o.add_argument("--quiet", action="store_true", help="no progress bar")


#: The base recipe of ``pinnsolve run NAME`` (a problem's ``RECIPE`` overrides it):
#: dense self-scaled Broyden (SSBroyden2), soft conditions, 3 x 20 tanh, 2540 Sobol
#: points drawn afresh every 100 iterations, 170 s.
RUN_DEFAULTS = {
    "optimizer": "ssbroyden",
    "max_iter": 100000,
    "max_time": 170.0,
    "history": None,
    "warmup": 0,
    "layers": "20,20,20",
    "points": 2540,
    "sampler": "sobol",
    "resample_every": 100,
    "adaptive": "none",
}

#: The default recipe of ``pinnsolve burgers``: the base recipe with residual-based
#: refinement (RAR: the 2,540 Sobol points stay, and every 100 iterations the 10 worst of
#: 25,400 random candidates join them), the network and the budget chosen by
#: :func:`burgers_regime` from ``nu`` (``None`` below).  RAR was the largest single gain
#: of the option table (validation/results/accuracy.md: 3.6e-5 against 7.4e-4 for
#: uniform redraws at 120 s, nu = 0.01/pi): its error falls steadily where redrawn sets
#: made it jump by up to 10x between blocks.
BURGERS_DEFAULTS = {**RUN_DEFAULTS, "adaptive": "rar", "layers": None, "max_time": None,
                    "continuation": None}

#: ``pinnsolve burgers`` defaults by regime, chosen by measurement (one core each, with
#: RAR, docs/accuracy.md): a smooth solution (``nu >= 0.01``) is resolved by 3 x 20 in
#: the 3 minutes a first run should take (6.7e-7 at nu = 0.01 in 170 s); at nu = 0.01/pi
#: 3 x 30 was at 1.4e-6 after 404 s (of a 1,200 s run) where 3 x 20 ended at 4.1e-6 in
#: 420 s (the default then ended at 7.9e-7).  Below nu = 0.001 (``"thin"``) the run
#: starts at nu = 0.01/pi and continues down to the target in 4 steps: at nu = 0.001/pi
#: the accurate preset ended at 4.2e-1 on its own (the network flattened the profile
#: before the shock formed) and at 6.4e-5 with the continuation (1,200 s).
BURGERS_REGIMES = {
    "smooth": {"layers": "20,20,20", "max_time": 170.0},
    "shock": {"layers": "30,30,30", "max_time": 420.0},
    "thin": {"layers": "30,30,30", "max_time": 420.0, "continuation": "nu:0.01/pi"},
}


def burgers_regime(nu: float) -> dict[str, Any]:
    """The regime defaults (``layers``, ``max_time``, ``continuation``) of ``pinnsolve
    burgers --nu nu``: ``"smooth"`` for ``nu >= 0.01``, ``"shock"`` for ``0.001 <= nu <
    0.01``, ``"thin"`` below."""
    return BURGERS_REGIMES["smooth" if nu >= 0.01 else "shock" if nu >= 0.001 else "thin"]


#: Named recipes for ``pinnsolve burgers --preset NAME``: bundles of the options above
#: (and ``hard``), chosen by measurement (validation/accuracy.py); options given
#: explicitly on the command line override the preset.  ``default`` is what runs
#: without ``--preset``.
BURGERS_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # 3 x 30 with RAR for 1,200 s: 1.9e-7 at nu = 0.01/pi (below 5e-7 from 523 s on; with
    # 5,000 base points 3.2e-7); with uniform redraws 1.9e-6 and 1.2e-5 (docs/accuracy.md)
    "accurate": {"optimizer": "ssbroyden", "layers": "30,30,30", "max_time": 1200.0},
    "fast": {"max_time": 30.0},
}


def apply_preset(args: argparse.Namespace, presets: dict[str, dict[str, Any]],
                 explicit: set[str]) -> argparse.Namespace:
    """Set the options of preset ``args.preset`` that were not given explicitly.

    ``explicit``: the option destinations given on the command line (see
    :func:`explicit_options`).  Raises ``UsageError`` for an unknown preset.
    """
    name = getattr(args, "preset", None) or "default"
    if name not in presets:
        raise UsageError(f"unknown preset {name!r}; choose from: {', '.join(presets)}")
    for key, value in presets[name].items():
        if not hasattr(args, key):
            raise ValueError(f"preset {name!r} sets unknown option {key!r}")
        if key not in explicit:
            setattr(args, key, value)
    return args


def explicit_options(argv: Sequence[str]) -> set[str]:
    """The destinations of the options given in ``argv`` (parsed without defaults)."""
    parser = build_parser()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.dest != "help":
                action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv))))



#: Classification defaults: the seed study's 784-128-10 network, float32 (measured in
#: validation/classification.py), L-BFGS m = 10.
CLASSIFY_DEFAULTS = {
    "optimizer": "lbfgs",
    "max_iter": 500,
    "max_time": None,
    "history": 10,
    "warmup": 0,
    "layers": "128",
    "dtype": "float32",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinnsolve",
        description="Solve PDEs with physics-informed neural networks and a quasi-Newton "
        "optimization engine.",
        epilog="Run 'pinnsolve COMMAND --help' for the options of a command.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"pinnsolve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser(
        "burgers",
        help="viscous Burgers' equation, checked against the exact Cole-Hopf solution",
        description="Solve u_t + u u_x = nu u_xx on x in [-1, 1], t in [0, 1], "
        "u(x, 0) = -a sin(pi x), u(+-1, t) = 0, and report the error against the exact "
        "(Cole-Hopf) solution on the 256 x 100 grid.",
    )
    b.add_argument("--nu", type=parse_number, default=0.01 / math.pi,
                   help="viscosity > 0; expressions like 0.01/pi work (default: 0.01/pi)")
    b.add_argument("--amplitude", type=parse_number, default=1.0,
                   help="a in u(x, 0) = -a sin(pi x) (default: %(default)s)")
    b.add_argument("--hard", action=argparse.BooleanOptionalAction, default=False,
                   help="impose the initial/boundary conditions exactly, u = -a sin(pi x) + "
                   "t (1 - x^2) N(x, t), instead of training them as loss terms")
    b.add_argument("--infer-nu", action="store_true",
                   help="inverse problem: learn nu from --data (then --nu is the true value, "
                   "used only to report errors)")
    b.add_argument("--data", type=Path, metavar="FILE",
                   help="observations of u for --infer-nu: .npz or .h5 with arrays points "
                   "(N, 2) = (x, t) and values (N, 1); see 'pinnsolve burgers-data'")
    b.add_argument("--nu-init", type=_positive_float, default=0.05,
                   help="initial guess of nu for --infer-nu (default: %(default)s)")
    b.add_argument("--preset", choices=sorted(BURGERS_PRESETS), default=None,
                   help="a named recipe: 'accurate' (best recipe at full length, ~20 min), "
                   "'fast' (quick demo, ~30 s); explicit options override it (default: the "
                   "default recipe)")
    add_training_options(b, BURGERS_DEFAULTS)
    d = sub.add_parser(
        "burgers-data",
        help="write noisy observations of the exact Burgers solution (for --infer-nu)",
        description="Sample N uniform random points in [-1, 1] x [0, 1] and write the exact "
        "(Cole-Hopf) u plus Gaussian noise of standard deviation NOISE * std(u) to an .npz "
        "or .h5 file with arrays points (N, 2) and values (N, 1).",
    )
    d.add_argument("--nu", type=parse_number, default=0.01 / math.pi,
                   help="viscosity > 0 (default: 0.01/pi)")
    d.add_argument("--amplitude", type=parse_number, default=1.0)
    d.add_argument("--n", type=_positive_int, default=2000, help="observations (default: 2000)")
    d.add_argument("--noise", type=parse_number, default=0.01,
                   help="noise level relative to std(u) (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                   help="output file (.npz or .h5)")
    sub.add_parser("list", help="list the problems of the catalog with their parameters",
                   description="List the catalog problems: name, description, parameters.")
    r = sub.add_parser(
        "run",
        help="train a catalog problem (see 'pinnsolve list') or a problem file",
        description="Train NAME from the catalog ('pinnsolve list') or a Python file that "
        "defines make_problem(**parameters) or a module-level `problem`. Options: the "
        "problem's parameters and the shared training options; 'pinnsolve run NAME --help' "
        "lists them with the problem's defaults.",
    )
    r.add_argument("target", metavar="NAME|FILE.py", help="catalog name or problem file")
    r.add_argument("options", nargs=argparse.REMAINDER, help="problem and training options")
    c = sub.add_parser(
        "classify",
        help="MNIST / Fashion-MNIST classification with the same optimizers",
        description="Train an MLP (784 -> hidden... -> 10, mean cross-entropy + optional L2) "
        "on MNIST or Fashion-MNIST and report train/test accuracy. The IDX files are read "
        "from --data-dir or $PINNSOLVE_DATA (also torchvision's MNIST/raw layout and "
        "Debian's /usr/share/datasets/fashion-mnist); nothing is downloaded.",
    )
    c.add_argument("dataset", choices=["mnist", "fashion-mnist"], help="the data set")
    c.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="directory with the IDX files (default: $PINNSOLVE_DATA)")
    c.add_argument("--n-train", type=_positive_int, default=5000, metavar="N",
                   help="first N training samples (default: %(default)s; 60000 = all)")
    c.add_argument("--hidden", type=_positive_int, default=None, metavar="W",
                   help="one hidden layer of width W (shorthand for --layers W)")
    c.add_argument("--weight-decay", type=float, default=1e-3, metavar="LAMBDA",
                   help="L2 term LAMBDA/2 ||theta||^2 in the loss; 0: none (default: "
                   "%(default)s, measured in validation/classification.py: without it "
                   "full-batch L-BFGS fits N = 5000 samples exactly and generalises worse)")
    c.add_argument("--standardize", nargs="?", const="pixel", default="none",
                   type=_standardization, metavar="pixel|global",
                   help="standardise the inputs with the training set's mean and standard "
                   "deviation: per pixel (the default when the option is given without a "
                   "value; deviations floored at 0.05) or one for all pixels; default: raw "
                   "pixels mapped from [0, 1] to [-1, 1]")
    c.add_argument("--ftol", type=float, default=0.0,
                   help="stop when the relative loss change stays below FTOL for 10 "
                   "iterations (default: %(default)s)")
    add_training_options(c, CLASSIFY_DEFAULTS)
    p = sub.add_parser("plot", help="redraw the validation figure from a results file",
                       description="Redraw the figure of a results file written with --out.")
    p.add_argument("results", type=Path, help="results file (HDF5) from --out")
    p.add_argument("-o", "--output", type=Path, help="figure path (default: RESULTS.png)")
    return parser


class UsageError(Exception):
    """Bad input found after parsing: reported as one line with exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --nproc's re-launch
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "burgers":
            explicit = explicit_options(sys.argv[1:] if argv is None else argv)
            return _burgers(apply_preset(args, BURGERS_PRESETS, explicit), explicit)
        if args.command == "plot":
            return _plot(args)
        if args.command == "burgers-data":
            return _burgers_data(args)
        if args.command == "list":
            return _list()
        if args.command == "run":
            return _run(args)
        if args.command == "classify":
            return _classify(args)
    except (UsageError, ValueError, OSError, TypeError) as exc:
        parser.exit(2, f"pinnsolve: error: {exc}\n")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plot import plot_run

    out = args.output or args.results.with_suffix(".png")
    plot_run(args.results, out)
    print(f"figure written to {out}")
    return 0


def _burgers_data(args: argparse.Namespace) -> int:
    from .io import save_observations
    from .problems.burgers import make_observations

    if args.nu <= 0:
        raise UsageError(f"viscosity must be positive, got --nu {args.nu:g}")
    if args.noise < 0:
        raise UsageError(f"noise must be >= 0, got --noise {args.noise:g}")
    points, values = make_observations(args.nu, args.amplitude, args.n, args.noise, args.seed)
    save_observations(args.output, points, values,
                      {"nu": args.nu, "amplitude": args.amplitude, "noise": args.noise,
                       "seed": args.seed})
    print(f"{args.n} observations (noise {args.noise:g} x std u) written to {args.output}")
    return 0


def _list() -> int:
    from .problems import CATALOG, description, load, parameters, recipe

    for name in CATALOG:
        module = load(name)
        rec = {**RUN_DEFAULTS, **recipe(module)}
        print(f"{name}: {description(module)}")
        opts = " ".join(f"--{p.name.replace('_', '-')} {p.default}" for p in parameters(module))
        print(f"    parameters: {opts or 'none'}")
        print(f"    recipe: --layers {rec['layers']} --points {rec['points']} --optimizer "
              f"{rec['optimizer']} --max-time {rec['max_time']:g}")
    return 0


def _parameter_type(default: Any) -> Callable[[str], Any]:
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return parse_number
    return str


def _run(args: argparse.Namespace) -> int:
    """``pinnsolve run NAME|FILE [--param value ...] [training options]``."""
    from .problems import build, description, load, parameters, recipe

    module = load(args.target)
    rec = recipe(module)
    unknown = set(rec) - set(RUN_DEFAULTS)
    if unknown:
        raise UsageError(f"{args.target}: RECIPE has unknown keys {sorted(unknown)}; known: "
                         f"{', '.join(RUN_DEFAULTS)}")
    p = argparse.ArgumentParser(prog=f"pinnsolve run {args.target}",
                                description=description(module))
    g = p.add_argument_group("problem parameters")
    params = parameters(module)
    for prm in params:
        flag = "--" + prm.name.replace("_", "-")
        if isinstance(prm.default, bool):
            g.add_argument(flag, dest=prm.name, default=prm.default,
                           action=argparse.BooleanOptionalAction, help=prm.help)
        else:
            g.add_argument(flag, dest=prm.name, type=_parameter_type(prm.default),
                           default=prm.default, help=f"{prm.help} (default: %(default)s)")
    add_training_options(p, {**RUN_DEFAULTS, **rec})
    opts = p.parse_args(args.options)
    values = {prm.name: getattr(opts, prm.name) for prm in params}
    problem = build(module, values, points=opts.points)
    if opts.plot is not None and problem.domain.dim != 2:
        raise UsageError(f"--plot draws problems with two coordinates; this one has "
                         f"{', '.join(problem.coords)}")
    name = args.target if problem.name == "problem" else problem.name
    return train_and_report(problem, opts, {"problem": name, **values})


def _burgers(args: argparse.Namespace, explicit: set[str]) -> int:
    """``pinnsolve burgers``; ``explicit``: the options given on the command line."""
    from .problems.burgers import make_problem

    if args.nu <= 0:
        raise UsageError(f"viscosity must be positive, got --nu {args.nu:g}")
    for key, value in burgers_regime(args.nu).items():  # defaults that depend on nu
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.resample_every and "adaptive" not in explicit:
        args.adaptive = "none"  # the RAR default yields to --resample-every 0 (fixed points)
    data = None
    if args.infer_nu:
        if args.data is None:
            raise UsageError("--infer-nu needs observations: --data FILE (.npz or .h5)")
        from .io import load_observations

        data = load_observations(args.data)
        if data[0].shape[1] != 2 or data[1].shape[1] != 1:
            raise UsageError(f"{args.data}: Burgers data need points (N, 2) = (x, t) and "
                             f"values (N, 1), got {data[0].shape} and {data[1].shape}")
    elif args.data is not None:
        raise UsageError("--data is only used with --infer-nu")
    problem = make_problem(nu=args.nu, amplitude=args.amplitude, points=args.points,
                           hard=args.hard, nu_init=args.nu_init if args.infer_nu else None,
                           data=data)
    config = {
        "problem": "burgers",
        "nu": args.nu,
        "amplitude": args.amplitude,
        "hard_constraints": args.hard,
        "preset": args.preset or "default",
    }
    if args.infer_nu:
        config.update(infer_nu=True, data=str(args.data), nu_init=args.nu_init,
                      true_parameters={"nu": args.nu})
    return train_and_report(problem, args, config)


def _adaptations(args: argparse.Namespace) -> list:
    """The point strategy and the loss weighting from the shared options."""
    from .resampling import RAD, RAR, Resample
    from .weighting import Annealing, FixedWeights

    weights = {}
    for item in filter(None, args.weights.replace(" ", "").split(",")):
        name, sep, value = item.partition("=")
        try:
            weights[name] = parse_number(value) if sep else None
        except argparse.ArgumentTypeError:
            weights[name] = None
        if not name or weights[name] is None or weights[name] < 0:
            raise UsageError(f"--weights wants TERM=W with W >= 0, got {item!r}")
    adapt: list = [FixedWeights(weights)]
    every = args.resample_every
    if args.adaptive != "none":
        if not every:
            raise UsageError(f"--adaptive {args.adaptive} needs --resample-every N > 0")
        candidates = args.candidates or 10 * args.points
        if args.adaptive == "rar":
            if args.rar_add > candidates:
                raise UsageError(f"--rar-add {args.rar_add} exceeds --candidates {candidates}")
            adapt.append(RAR(every, add=args.rar_add, candidates=candidates, seed=args.seed))
        else:
            if not (args.rad_k >= 0 and args.rad_c >= 0):
                raise UsageError(f"--rad-k and --rad-c must be >= 0, got {args.rad_k:g} and "
                                 f"{args.rad_c:g}")
            adapt.append(RAD(every, k=args.rad_k, c=args.rad_c, candidates=candidates,
                             seed=args.seed))
    elif every:
        adapt.append(Resample(every, seed=args.seed))
    if args.weighting == "annealing":
        if not 0 < args.anneal_alpha <= 1:
            raise UsageError(f"--anneal-alpha must be in (0, 1], got {args.anneal_alpha:g}")
        adapt.append(Annealing(every=args.anneal_every, alpha=args.anneal_alpha))
    return adapt


def train_and_report(problem: Any, args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Build the model and stages from the shared options, train, report, save, plot."""
    from . import MLP
    from .distributed import (
        ShardedObjective,
        launched_by_torchrun,
        relaunch,
        setup_cli_rank,
    )
    from .io import save_run
    from .models import parse_layers
    from .train import Trainer

    device = _check_run_options(args)
    if args.continuation == "none":
        args.continuation = None
    if (args.nproc > 1 or launched_by_torchrun()) and args.batch_size is not None:
        raise UsageError("--batch-size runs in one process only (mini-batches are not "
                         "sharded across ranks yet)")
    if args.nproc > 1 and not launched_by_torchrun():
        return relaunch(args.argv, args.nproc, args.threads)
    ranks = setup_cli_rank(args)  # rank 0 of 1 outside torchrun
    device = ranks.device
    layers = parse_layers(args.layers)
    dtype = DTYPES[args.dtype]
    domain = problem.domain
    model = MLP(domain.dim, len(problem.fields), layers, args.activation,
                lows=list(domain.lows), highs=list(domain.highs), seed=args.seed)
    config = {
        **config,
        "optimizer": args.optimizer,
        "history": args.history,
        "warmup": args.warmup,
        "lr": args.lr,
        **_schedule_config(args),
        "batch_size": args.batch_size,
        "max_iter": args.max_iter,
        "max_time": args.max_time,
        "layers": ",".join(map(str, layers)),
        "activation": args.activation,
        "points": args.points,
        "sampler": args.sampler,
        "resample_every": args.resample_every,
        "adaptive": args.adaptive,
        "weighting": args.weighting,
        "weights": args.weights,
        "dtype": args.dtype,
        "device": str(device),
        "seed": args.seed,
    }
    if args.adaptive != "none":
        config.update(candidates=args.candidates, rar_add=args.rar_add, rad_k=args.rad_k,
                      rad_c=args.rad_c)
    if args.weighting == "annealing":
        config.update(anneal_every=args.anneal_every, anneal_alpha=args.anneal_alpha)
    adapt = _adaptations(args)
    objective = problem.compile(model, dtype=dtype, device=device, seed=args.seed,
                                sampler=args.sampler)
    callbacks, max_time = [], args.max_time
    if ranks.world > 1:  # points sharded; the time budget is a vote across ranks
        if args.weighting != "fixed":
            raise UsageError("--weighting annealing runs in one process only (its per-term "
                             "gradient norms are not reduced across ranks yet)")
        objective = ShardedObjective(objective)
        objective.set_budget(max_time)
        callbacks, max_time = [objective.stop_callback()], None
    stages = _stages(args)
    if args.continuation:  # the main stage becomes the continuation path
        stages[-1:] = _continuation_stages(args, objective, stages[-1].stop)
        config["continuation"] = f"{args.continuation}/{args.continuation_steps}"
        if stages[0].method.name == "adam":  # the warm-up runs on the first problem
            stages[0].parameters = dict(stages[1].parameters)
    trainer = Trainer(
        objective,
        stages,
        max_time=max_time,
        validate_every=args.validate_every,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        interrupt_path=args.checkpoint or (Path(f"{config['problem']}.ckpt.h5")
                                           if ranks.rank == 0 else None),
        progress_bar=False if args.quiet else None,
        config=config,
        seed=args.seed,
        callbacks=callbacks,
        adapt=adapt,
    )
    result = trainer.fit(resume=args.resume)
    summary = {"problem": config["problem"], **result.summary()}
    print(
        f"{config['problem']}: rel L2 error {summary['rel_l2_error']:.3e}, max abs error "
        f"{summary['max_abs_error']:.3e}, loss {summary['final_loss']:.3e}, "
        f"{summary['iterations']} iterations, {summary['function_evals']} evaluations, "
        f"{summary['wall_time_s']:.1f} s ({summary['stop_reason']})"
    )
    if args.weighting == "annealing":
        summary["weights"] = {k: float(v) for k, v in objective.weights.items()}
        print(f"{config['problem']}: annealed weights " + ", ".join(
            f"{k} = {v:.4g}" for k, v in summary["weights"].items()))
    true = config.get("true_parameters", {})
    for name, value in getattr(objective, "unknown_values", lambda th: {})(result.theta).items():
        summary[name] = value
        line = f"{config['problem']}: inferred {name} = {value:.6g}"
        if name in true:
            summary[f"{name}_true"] = true[name]
            summary[f"{name}_rel_error"] = abs(value - true[name]) / abs(true[name])
            line += f" (true {true[name]:.6g}, relative error {summary[name + '_rel_error']:.2e})"
        print(line)
    if args.out is not None or args.plot is not None:
        run = results_dict(objective, trainer, result, config)
        run["metrics"] = {k: v for k, v in summary.items()
                          if k != "problem" and not isinstance(v, dict)}
        if args.out is not None:
            save_run(args.out, run)
            print(f"results written to {args.out}")
        if args.plot is not None:
            from .plot import plot_solution

            names = problem.coords
            f = run["fields"][problem.fields[0]]
            plot_solution(run["grid"][names[0]], run["grid"][names[1]], f["pred"], f["exact"],
                          path=args.plot, title=_title(config, summary),
                          labels=(names[0], names[1]))
            print(f"figure written to {args.plot}")
    if args.json:
        print(json.dumps(summary))
    if ranks.world > 1:
        from .distributed import shutdown

        shutdown()
    return 0


def _stages(args: argparse.Namespace) -> list:
    """An optional Adam warm-up (``--warmup``) and the main optimizer (``--optimizer``)."""
    from .optim import StopCriteria, make_method
    from .train import Stage

    stages = []
    if args.warmup > 0:
        warm = make_method("adam", lr=args.lr or 1e-3)
        stages.append(Stage(warm, StopCriteria(max_iter=args.warmup)))
    stop = StopCriteria(gtol=args.gtol, ftol=getattr(args, "ftol", 0.0), max_iter=args.max_iter)
    stages.append(Stage(_method(args), stop))
    return stages


def _check_run_options(args: argparse.Namespace) -> torch.device:
    """Output paths writable, the checkpoint present, the device usable; sets threads/seed."""
    from .io import check_writable

    for path in (args.out, args.plot, args.checkpoint):
        if path is not None:
            check_writable(path)
    if args.resume is not None and not args.resume.is_file():
        raise UsageError(f"no checkpoint at {args.resume}")
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise UsageError(f"device {args.device!r} is not available ({exc})") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return device


def _classify(args: argparse.Namespace) -> int:
    """``pinnsolve classify``: train a classifier with the shared options, report, save."""
    from .classification import ClassificationObjective, classifier_mlp
    from .datasets import load_dataset
    from .io import save_run
    from .models import parse_layers
    from .train import Trainer

    if args.hidden is not None and args.layers != CLASSIFY_DEFAULTS["layers"]:
        raise UsageError("give --hidden W or --layers W,W,..., not both")
    layers = (args.hidden,) if args.hidden is not None else parse_layers(args.layers)
    if args.weight_decay < 0:
        raise UsageError(f"--weight-decay must be >= 0, got {args.weight_decay:g}")
    device = _check_run_options(args)
    data = load_dataset(args.dataset, args.data_dir).subset(args.n_train)
    data = data.standardized(args.standardize)  # training-set statistics only
    model = classifier_mlp(data.x_train.shape[1], data.n_classes, layers, args.activation,
                           seed=args.seed,
                           input_range=(0.0, 1.0) if args.standardize == "none" else None)
    objective = ClassificationObjective(data, model, weight_decay=args.weight_decay,
                                        dtype=DTYPES[args.dtype], device=device)
    config = {
        "problem": "classify",
        "dataset": args.dataset,
        "n_train": len(data.y_train),
        "standardize": args.standardize,
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "history": args.history,
        "warmup": args.warmup,
        "lr": args.lr,
        **_schedule_config(args),
        "max_iter": args.max_iter,
        "max_time": args.max_time,
        "layers": ",".join(map(str, layers)),
        "activation": args.activation,
        "dtype": args.dtype,
        "device": str(device),
        "seed": args.seed,
    }
    trainer = Trainer(
        objective,
        _stages(args),
        max_time=args.max_time,
        validate_every=args.validate_every,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        interrupt_path=args.checkpoint or Path("classify.ckpt.h5"),
        progress_bar=False if args.quiet else None,
        config=config,
        seed=args.seed,
    )
    result = trainer.fit(resume=args.resume)
    theta = result.theta
    summary = {
        "problem": "classify",
        "dataset": args.dataset,
        "train_accuracy": objective.accuracy(theta, "train"),
        "test_accuracy": objective.accuracy(theta, "test"),
        "final_loss": result.final_loss,
        "data_loss": objective.data_loss(theta),
        "weight_decay": args.weight_decay,
        "standardize": args.standardize,
        "iterations": result.iterations,
        "function_evals": result.function_evals,
        "wall_time_s": result.wall_time_s,
        "stop_reason": result.stop_reason,
    }
    print(
        f"{args.dataset} (N = {len(data.y_train)}, {config['layers']}): train accuracy "
        f"{summary['train_accuracy']:.2f} %, test accuracy {summary['test_accuracy']:.2f} %, "
        f"loss {summary['final_loss']:.4e}, {summary['iterations']} iterations, "
        f"{summary['function_evals']} evaluations, {summary['wall_time_s']:.1f} s "
        f"({summary['stop_reason']})"
    )
    if args.out is not None:
        from . import __version__

        pred = objective.predict(theta, objective.x_test).cpu().numpy()
        confusion = np.zeros((data.n_classes, data.n_classes))
        np.add.at(confusion, (data.y_test, pred), 1)
        model = objective.load_into_model(theta)
        save_run(args.out, {
            "version": __version__,
            "problem": f"classify-{args.dataset}",
            "config": config,
            "grid": {"true": np.arange(data.n_classes), "predicted": np.arange(data.n_classes)},
            "fields": {"test_confusion": {"pred": confusion, "exact": None}},
            "metrics": summary,
            "history": {**trainer.history, "loss_per_iteration": [
                x for r in result.stages for x in r.loss_history]},
            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "theta": theta.detach().cpu(),
            "model_info": {"layers": config["layers"], "activation": args.activation,
                           "n_params": objective.n_params},
        })
        print(f"results written to {args.out}")
    if args.plot is not None:
        from .plot import plot_history

        plot_history({args.optimizer: trainer.history}, path=args.plot,
                     ys=("loss", "test_accuracy"))
        print(f"figure written to {args.plot}")
    if args.json:
        print(json.dumps(summary))
    return 0


def _title(config: dict[str, Any], summary: dict[str, Any]) -> str:
    nu = config.get("nu")
    head = config["problem"] + (f", nu = {nu:.4g}" if nu is not None else "")
    return f"{head}: rel L2 error {summary['rel_l2_error']:.2e}"


def _continuation_stages(args: argparse.Namespace, objective: Any, stop: Any) -> list:
    """One stage per value of ``--continuation NAME:START`` down to the problem's value."""
    from .continuation import continuation_stages, parse_continuation

    try:
        name, start = parse_continuation(args.continuation)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    params = getattr(objective, "parameters", {})
    if name not in params:
        known = ", ".join(sorted(params)) or "none"
        raise UsageError(f"--continuation: no problem parameter {name!r} (known: {known})")
    try:
        return continuation_stages(lambda: _method(args), name, start, float(params[name]),
                                   steps=args.continuation_steps, stop=stop,
                                   max_time=args.max_time)
    except ValueError as exc:
        raise UsageError(f"--continuation {args.continuation}: {exc}") from None


def _schedule_config(args: argparse.Namespace) -> dict[str, Any]:
    """The schedule entries of a run's configuration (the horizon resolved)."""
    name = getattr(args, "lr_schedule", None)
    return {"lr_schedule": name,
            "lr_decay_steps": (args.lr_decay_steps or args.max_iter) if name else None}


def _method(args: argparse.Namespace):
    """The main optimizer from the shared options: ``--history``, ``--lr``,
    ``--lr-schedule``/``--lr-decay-steps`` and ``--batch-size`` (when given) go to every
    method whose constructor takes ``history`` / ``lr`` / ``lr_schedule`` / ``batch_size``."""
    import inspect

    from .optim import METHODS, make_method, make_schedule

    accepted = inspect.signature(METHODS[args.optimizer].__init__).parameters
    options: dict[str, Any] = {}
    if "history" in accepted and args.history is not None:
        options["history"] = args.history
    if "lr" in accepted and args.lr is not None:
        options["lr"] = args.lr
    schedule = getattr(args, "lr_schedule", None)
    if schedule is None and getattr(args, "lr_decay_steps", None) is not None:
        raise UsageError("--lr-decay-steps needs --lr-schedule")
    if schedule is not None:
        if "lr_schedule" not in accepted:
            raise UsageError(f"--lr-schedule applies to the step-size optimizers (sgd, adam, "
                             f"slbfgs, mlbfgs, gd with --lr), not {args.optimizer!r}")
        if args.optimizer == "gd" and args.lr is None:
            raise UsageError("--lr-schedule with gd needs --lr (without it a line search "
                             "chooses the step)")
        options["lr_schedule"] = make_schedule(schedule, args.lr_decay_steps or args.max_iter)
    if getattr(args, "batch_size", None) is not None:
        if "batch_size" not in accepted:
            raise UsageError(f"--batch-size applies to the stochastic optimizers, not "
                             f"{args.optimizer!r}")
        options["batch_size"] = args.batch_size
    if getattr(args, "lm_solver", None) is not None:
        if "solver" not in accepted:
            raise UsageError(f"--lm-solver applies to levenberg and lm, not {args.optimizer!r}")
        options["solver"] = args.lm_solver
    return make_method(args.optimizer, **options)


def results_dict(objective: Any, trainer: Any, result: Any, config: dict[str, Any]) -> dict:
    """Everything a results file holds, on the problem's evaluation grid."""
    from . import __version__

    problem = objective.problem
    points = problem.evaluation_grid()
    counts = [len(set(points[:, i].tolist())) for i in range(points.shape[1])]
    axes = {c: sorted(set(points[:, i].tolist())) for i, c in enumerate(problem.coords)}
    pred = objective.predict(result.theta, points)
    exact = problem.solution(points) if problem.solution is not None else None
    fields = {}
    for k, name in enumerate(problem.fields):
        fields[name] = {
            "pred": pred[:, k].reshape(counts),
            "exact": None if exact is None else exact.reshape(len(points), -1)[:, k].reshape(
                counts),
        }
    model = objective.load_into_model(result.theta)
    return {
        "version": __version__,
        "problem": problem.name,
        "config": config,
        "grid": axes,
        "fields": fields,
        "metrics": result.summary(),
        "history": {**trainer.history, "loss_per_iteration": [
            x for r in result.stages for x in r.loss_history]},
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "theta": result.theta.detach().cpu(),
        "model_info": {"layers": config.get("layers"), "activation": config.get("activation"),
                       "n_params": objective.n_params},
    }


if __name__ == "__main__":
    sys.exit(main())
