"""The problem catalog: one module per PDE, each written with the public API only.

Installed as ``pinnsolve.problems``; every module defines ``make_problem(**parameters)``
returning a :class:`pinnsolve.Problem`.
"""
