"""Numerics: the solver objects (:mod:`.registry`), the Butcher tableaux (:mod:`.tableaux`), the
batched adaptive solver with per-trajectory step control (:mod:`.adaptive`), fixed-step solves
(:mod:`.fixed`) and the SDE adapters (:mod:`.sde`, imported on use: it loads torchsde).

``simulate`` and the learners resolve method names through :func:`solver` (the list:
:func:`solvers`), so both use the same objects and refuse the same unknown names.
"""
# The transitional module ``solvers`` (old import paths) loads first: importing a submodule sets the
# package attribute of its name, and ``solvers`` must stay the function bound below.
from . import solvers as _transitional
from .adaptive import SolveStats, integrate_batch
from .fixed import BatchField, fixed_step_solve, fixed_steps
from .registry import Solver, UnknownSolverError, solver, solvers

del _transitional
__all__ = ["BatchField", "SolveStats", "Solver", "UnknownSolverError", "fixed_step_solve", "fixed_steps",
           "integrate_batch", "solver", "solvers"]
