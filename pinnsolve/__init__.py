"""pinnsolve: physics-informed neural networks trained with a quasi-Newton engine.

The data flow: a :class:`Problem` (domain, fields, residual, conditions) is compiled
with a model into an objective on one flat parameter vector; an optimizer from
:mod:`pinnsolve.optim` minimizes it, driven by a :class:`Trainer` with callbacks;
results go to HDF5 (:mod:`pinnsolve.io`) and figures (:mod:`pinnsolve.plot`).
"""

from importlib.metadata import PackageNotFoundError, version

from .geometry import Box, Interval, Rectangle, SpaceTime, TimeInterval
from .models import MLP, OutputTransform
from .objective import FunctionObjective, PINNObjective
from .problem import (
    PDE,
    Condition,
    Data,
    Dirichlet,
    Initial,
    Neumann,
    Periodic,
    Problem,
    Robin,
    Unknown,
)

try:
    __version__ = version("pinnsolve")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "Box",
    "Interval",
    "Rectangle",
    "SpaceTime",
    "TimeInterval",
    "MLP",
    "OutputTransform",
    "FunctionObjective",
    "PINNObjective",
    "PDE",
    "Condition",
    "Data",
    "Dirichlet",
    "Initial",
    "Neumann",
    "Periodic",
    "Problem",
    "Robin",
    "Unknown",
    "__version__",
]
