"""Exact (reference) solutions of the benchmark PDEs."""

from pinnsolve.exact.burgers import burgers_cole_hopf, burgers_grid

__all__ = ["burgers_cole_hopf", "burgers_grid"]
