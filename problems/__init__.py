"""The problem catalog: one module per PDE, each written with the public API only.

Installed as ``pinnsolve.problems``.  ``pinnsolve list`` shows the entries of
:data:`CATALOG`; ``pinnsolve run NAME [--param value ...]`` trains one.

The module contract (the same for a user's own file, ``pinnsolve run path/to/file.py``):

* ``make_problem(**parameters) -> pinnsolve.Problem``: every parameter has a default;
  its type (float, int, bool, str) is taken from the default and each becomes a
  command-line option (``t_end`` -> ``--t-end``; a bool ``False`` -> a flag
  ``--hard``).  ``make_problem`` validates its values and raises ValueError naming the
  bad one.  A parameter ``points`` is the ``--points`` training option (collocation
  points), not a problem option.  Instead of ``make_problem`` a file may define a
  module-level ``problem`` (a ``Problem``; then it has no options).
* optional ``DESCRIPTION`` (one line; default: the first docstring line),
  ``PARAMETERS`` (``{name: help text}``) and ``RECIPE`` (defaults of the training
  options that differ from the shared ones, e.g. ``{"layers": "20,20", "points": 1000,
  "max_time": 60.0}``; keys as in :data:`pinnsolve.cli.RUN_DEFAULTS`).

The problem should set ``solution`` (exact or reference values) so that runs report
``rel_l2_error``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["CATALOG", "Parameter", "load", "parameters", "description", "recipe", "build"]

#: Catalog names and their modules.
CATALOG: dict[str, str] = {
    "burgers": "burgers",
    "burgers-modes": "burgers_modes",
    "heat": "heat",
    "heat-neumann": "heat_neumann",
    "poisson": "poisson",
    "advection": "advection",
    "allen-cahn": "allen_cahn",
    "helmholtz": "helmholtz",
    "reaction-diffusion": "reaction_diffusion",
    "wave": "wave",
}

#: Parameters of ``make_problem`` that are training options rather than problem options.
TRAINING_PARAMETERS = ("points",)


@dataclass(frozen=True)
class Parameter:
    """One problem option: name, default (its type is the option's type) and help."""

    name: str
    default: Any
    help: str = ""


def load(target: str) -> ModuleType:
    """The module of a catalog name or of a Python file defining ``make_problem``/``problem``."""
    if target in CATALOG:
        return importlib.import_module(f"{__name__}.{CATALOG[target]}")
    path = Path(target)
    if path.suffix != ".py":
        raise ValueError(
            f"unknown problem {target!r}; choose from: {', '.join(CATALOG)}, or give a .py file"
        )
    if not path.is_file():
        raise ValueError(f"no problem file at {target}")
    name = f"pinnsolve_user_problem_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: report what went wrong, in one line
        del sys.modules[name]
        raise ValueError(f"{target}: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "make_problem", None)) and not hasattr(module, "problem"):
        raise ValueError(f"{target} defines neither make_problem(**parameters) nor `problem`")
    return module


def description(module: ModuleType) -> str:
    """The one-line description of a problem module."""
    text = getattr(module, "DESCRIPTION", None) or (module.__doc__ or "").strip()
    return text.splitlines()[0] if text else ""


def parameters(module: ModuleType) -> list[Parameter]:
    """The problem options of ``make_problem`` (none for a module-level ``problem``)."""
    make = getattr(module, "make_problem", None)
    if not callable(make):
        return []
    helps = getattr(module, "PARAMETERS", {})
    out = []
    for p in inspect.signature(make).parameters.values():
        if p.name in TRAINING_PARAMETERS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            raise ValueError(f"{module.__name__}.make_problem: parameter {p.name!r} needs a "
                             "default")
        out.append(Parameter(p.name, p.default, helps.get(p.name, "")))
    return out


def recipe(module: ModuleType) -> dict[str, Any]:
    """The module's training defaults (``RECIPE``), possibly empty."""
    return dict(getattr(module, "RECIPE", {}))


def build(module: ModuleType, values: dict[str, Any], points: int | None = None) -> Any:
    """The problem with the given parameter values (and collocation ``points``)."""
    make = getattr(module, "make_problem", None)
    if not callable(make):
        problem = module.problem
    else:
        kwargs = dict(values)
        if points is not None and "points" in inspect.signature(make).parameters:
            kwargs["points"] = points
        problem = make(**kwargs)
    from pinnsolve import Problem

    if not isinstance(problem, Problem):
        raise TypeError(f"{module.__name__} gave {type(problem).__name__}, not a Problem")
    return problem
