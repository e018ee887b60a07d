"""Dynamical-systems modeling workbench: ground truth, neural surrogates, comparisons, HDF5 data.

Public API (see README): ``systems``, ``system``, ``register_system``, ``simulate``, ``save``,
``load``, ``from_csv``, ``from_numpy``, ``WorkbenchError``.
"""
__version__ = "0.1.0"

from systems import Param, System

from .catalog import register_system, system, systems
from .dataset import from_csv, from_numpy, load, save, select_split
from .errors import WorkbenchError
from .simulate import simulate

__all__ = [
    "Param", "System", "WorkbenchError", "from_csv", "from_numpy", "load", "register_system", "save",
    "select_split", "simulate", "system", "systems", "__version__",
]
