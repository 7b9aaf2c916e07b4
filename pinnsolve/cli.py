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


def add_training_options(p: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """The options every training subcommand shares (same names everywhere)."""
    from .optim import METHODS
    from .sampling import SAMPLERS

    g = p.add_argument_group("training")
    g.add_argument("--optimizer", default=defaults["optimizer"], choices=sorted(METHODS),
                   metavar="NAME", help="optimizer: %(choices)s (default: %(default)s)")
    g.add_argument("--max-iter", type=_positive_int, default=defaults["max_iter"],
                   metavar="N", help="iteration limit of the main optimizer (default: %(default)s)")
    g.add_argument("--max-time", type=_positive_float, default=defaults["max_time"],
                   metavar="SECONDS", help="wall-time budget of the whole run "
                   "(default: %(default)s)")
    g.add_argument("--history", type=_positive_int, default=defaults["history"], metavar="M",
                   help="L-BFGS history size m (default: %(default)s)")
    g.add_argument("--warmup", type=int, default=defaults["warmup"], metavar="N",
                   help="Adam iterations before the optimizer (default: %(default)s)")
    g.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="learning rate of Adam/SGD (default: %(default)s)")
    g.add_argument("--gtol", type=float, default=0.0,
                   help="stop when max |gradient| <= GTOL (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of network and points")
    g.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice, the core count)")
    m = p.add_argument_group("model and points")
    m.add_argument("--layers", default=defaults["layers"], metavar="W,W,...",
                   help="hidden layer widths (default: %(default)s)")
    m.add_argument("--activation", default="tanh", help="activation (default: %(default)s)")
    if "points" in defaults:  # collocation options: PDE problems only
        m.add_argument("--points", type=_positive_int, default=defaults["points"], metavar="N",
                       help="interior collocation points (default: %(default)s)")
        m.add_argument("--sampler", default=defaults["sampler"], choices=SAMPLERS,
                       help="collocation sampler (default: %(default)s)")
        m.add_argument("--resample-every", type=int, default=defaults["resample_every"],
                       metavar="N", help="draw fresh collocation points every N iterations; 0: "
                       "never (default: %(default)s)")
    m.add_argument("--dtype", default=defaults.get("dtype", "float64"), choices=sorted(DTYPES),
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


#: The default recipe, chosen by measurement (validation/burgers.py): self-scaled dense
#: BFGS, soft conditions, fresh collocation points every 100 iterations, 160 s.
BURGERS_DEFAULTS = {
    "optimizer": "ssbfgs",
    "max_iter": 100000,
    "max_time": 160.0,
    "history": 300,
    "warmup": 0,
    "layers": "20,20,20",
    "points": 2540,
    "sampler": "sobol",
    "resample_every": 100,
}


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
    b.add_argument("--hard", action="store_true",
                   help="impose the initial/boundary conditions exactly, u = -a sin(pi x) + "
                   "t (1 - x^2) N(x, t), instead of training them as loss terms")
    add_training_options(b, BURGERS_DEFAULTS)
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
    c.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                   help="mini-batch size, for the optimizers that take one")
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
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "burgers":
            return _burgers(args)
        if args.command == "plot":
            return _plot(args)
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


def _burgers(args: argparse.Namespace) -> int:
    from .problems.burgers import make_problem

    if args.nu <= 0:
        raise UsageError(f"viscosity must be positive, got --nu {args.nu:g}")
    problem = make_problem(nu=args.nu, amplitude=args.amplitude, points=args.points,
                           hard=args.hard)
    config = {
        "problem": "burgers",
        "nu": args.nu,
        "amplitude": args.amplitude,
        "hard_constraints": args.hard,
    }
    return train_and_report(problem, args, config)


def train_and_report(problem: Any, args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Build the model and stages from the shared options, train, report, save, plot."""
    from . import MLP
    from .io import save_run
    from .models import parse_layers
    from .train import Trainer

    device = _check_run_options(args)
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
        "max_iter": args.max_iter,
        "max_time": args.max_time,
        "layers": ",".join(map(str, layers)),
        "activation": args.activation,
        "points": args.points,
        "sampler": args.sampler,
        "resample_every": args.resample_every,
        "dtype": args.dtype,
        "device": str(device),
        "seed": args.seed,
    }
    objective = problem.compile(model, dtype=dtype, device=device, seed=args.seed,
                                sampler=args.sampler)
    stages = _stages(args)
    trainer = Trainer(
        objective,
        stages,
        max_time=args.max_time,
        validate_every=args.validate_every,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        interrupt_path=args.checkpoint or Path(f"{config['problem']}.ckpt.h5"),
        progress_bar=False if args.quiet else None,
        config=config,
        resample_every=args.resample_every or None,
        seed=args.seed,
    )
    result = trainer.fit(resume=args.resume)
    summary = {"problem": config["problem"], **result.summary()}
    print(
        f"{config['problem']}: rel L2 error {summary['rel_l2_error']:.3e}, max abs error "
        f"{summary['max_abs_error']:.3e}, loss {summary['final_loss']:.3e}, "
        f"{summary['iterations']} iterations, {summary['function_evals']} evaluations, "
        f"{summary['wall_time_s']:.1f} s ({summary['stop_reason']})"
    )
    if args.out is not None or args.plot is not None:
        run = results_dict(objective, trainer, result, config)
        if args.out is not None:
            save_run(args.out, run)
            print(f"results written to {args.out}")
        if args.plot is not None:
            from .plot import plot_solution

            names = problem.coords
            f = run["fields"][problem.fields[0]]
            plot_solution(run["grid"][names[0]], run["grid"][names[1]], f["pred"], f["exact"],
                          path=args.plot, title=_title(config, summary))
            print(f"figure written to {args.plot}")
    if args.json:
        print(json.dumps(summary))
    return 0


def _stages(args: argparse.Namespace) -> list:
    """An optional Adam warm-up (``--warmup``) and the main optimizer (``--optimizer``)."""
    from .optim import StopCriteria, make_method
    from .train import Stage

    stages = []
    if args.warmup > 0:
        stages.append(Stage(make_method("adam", lr=args.lr), StopCriteria(max_iter=args.warmup)))
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
    model = classifier_mlp(data.x_train.shape[1], data.n_classes, layers, args.activation,
                           seed=args.seed)
    objective = ClassificationObjective(data, model, weight_decay=args.weight_decay,
                                        dtype=DTYPES[args.dtype], device=device)
    config = {
        "problem": "classify",
        "dataset": args.dataset,
        "n_train": len(data.y_train),
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "history": args.history,
        "warmup": args.warmup,
        "lr": args.lr,
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


def _method(args: argparse.Namespace):
    """The main optimizer from the shared options: ``--history`` and ``--lr`` go to every
    method whose constructor takes ``history`` / ``lr``."""
    import inspect

    from .optim import METHODS, make_method

    accepted = inspect.signature(METHODS[args.optimizer].__init__).parameters
    options: dict[str, Any] = {}
    if "history" in accepted:
        options["history"] = args.history
    if "lr" in accepted:
        options["lr"] = args.lr
    if "batch_size" in accepted and getattr(args, "batch_size", None) is not None:
        options["batch_size"] = args.batch_size
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
