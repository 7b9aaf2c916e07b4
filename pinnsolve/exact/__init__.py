"""Exact (reference) solutions of the benchmark PDEs."""

from pinnsolve.exact.burgers import burgers_cole_hopf, burgers_cole_hopf_series, burgers_grid

__all__ = ["burgers_cole_hopf", "burgers_cole_hopf_series", "burgers_grid"]
