"""Numerics: the solver objects (:mod:`.registry`), the Butcher tableaux (:mod:`.tableaux`), the
batched adaptive solver with per-trajectory step control (:mod:`.adaptive`), fixed-step solves
(:mod:`.fixed`) and the SDE adapters (:mod:`.sde`, imported on use: it loads torchsde).

``simulate`` and the learners resolve method names through :func:`solver` (the list:
:func:`solvers`), so both use the same objects and refuse the same unknown names.
"""
from .adaptive import SolveStats, integrate_batch
from .fixed import BatchField, fixed_step_solve, fixed_steps
from .registry import Solver, solver, solvers

__all__ = ["BatchField", "SolveStats", "Solver", "fixed_step_solve", "fixed_steps",
           "integrate_batch", "solver", "solvers"]
