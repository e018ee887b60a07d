"""Transitional: the names other modules imported from here before the numerics split into
:mod:`.tableaux`, :mod:`.adaptive`, :mod:`.fixed` and :mod:`.registry`. Import from
:mod:`workbench.numerics` (or those modules) instead; this module goes once nothing imports it.

The method-name tuples are read off the solver registry: ``solver(name, backend="torchdiffeq")``
replaces a test against ``TORCHDIFFEQ_METHODS``, ``not solver(name).adaptive`` one against
``FIXED_STEP_METHODS``.
"""
from .adaptive import integrate_batch
from .fixed import BatchField, fixed_step_solve, fixed_steps
from .registry import solvers
from .tableaux import FUSED_METHODS

TORCHDIFFEQ_METHODS = tuple(s.name for s in solvers("ode", "torchdiffeq"))
FIXED_STEP_METHODS = tuple(s.name for s in solvers("ode", "torchdiffeq") if not s.adaptive)

__all__ = ["BatchField", "FIXED_STEP_METHODS", "FUSED_METHODS", "TORCHDIFFEQ_METHODS", "fixed_step_solve",
           "fixed_steps", "integrate_batch"]
