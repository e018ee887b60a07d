"""Dynamical-systems modeling workbench: ground truth, neural surrogates, comparisons, HDF5 data.

Public API (see README): ``systems``, ``system``, ``register_system``, ``simulate``, ``save``,
``load``, ``from_csv``, ``from_numpy``, ``learners``, ``fit``, ``load_model``, ``WorkbenchError``.
"""
from ._version import __version__

from systems import Param, System

from .catalog import register_system, system, systems
from .dataset import from_csv, from_netcdf, from_numpy, load, save, select_split
from .embedding import suggest_embedding
from .splits import split_time
from .errors import WorkbenchError
from .learners import learners
from .model import Model, load_model
from .simulate import simulate
from .training import fit
from .evaluate import evaluate

__all__ = [
    "Model", "Param", "System", "WorkbenchError", "evaluate", "fit", "from_csv", "from_netcdf", "from_numpy",
    "learners", "load", "load_model", "register_system", "save", "select_split", "simulate", "split_time",
    "suggest_embedding", "system", "systems", "__version__",
]
