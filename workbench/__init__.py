"""Dynamical-systems modeling workbench: ground truth, learned surrogates, comparisons, HDF5 data.

``import workbench as wb``; the public names are ``__all__``:

- catalog: ``systems()``, ``system(name)``, ``register_system(system)``, ``System``, ``Param``;
- data: ``simulate``, ``save``, ``load``, ``from_csv``, ``from_netcdf``, ``from_numpy``,
  ``select_split``, ``split_time``, ``suggest_embedding``;
- models: ``learners()``, ``register_learner(cls)``, ``fit``, ``Model`` (``predict``, ``forecast``,
  ``rollout``, ``equations``, ``parameters``, ``profile``, ``residual``), ``load_model``, ``evaluate``;
- errors: ``WorkbenchError`` (the root of every error a user can cause, with ``problem`` and ``fix``;
  the subclasses are in ``workbench.errors``).

The rooms behind them are packages: ``workbench.data``, ``workbench.numerics``,
``workbench.learners``, ``workbench.training`` and ``workbench.evaluation``. The names load on first
use (PEP 562), so ``import workbench`` and the command line start without torch and xarray. A public
function never gives way to a module of the same name: ``wb.learners()`` is the function, its
package is ``import workbench.learners``.
"""
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if _TYPE_CHECKING:  # the same names, eagerly, for type checkers and editors
    from systems import Param, System

    from .catalog import register_system, system, systems
    from .data.imports import from_csv, from_netcdf, from_numpy
    from .data.io import load, save
    from .data.schema import select_split
    from .data.embedding import suggest_embedding
    from .errors import WorkbenchError
    from .evaluation.evaluate import evaluate
    from .learners import learners, register_learner
    from .model import Model, load_model
    from .simulate import simulate
    from .data.splits import split_time
    from .devices import configure_threads
    from .training.config import TrainConfig
    from .data.series import SeriesRecipe
    from .training.fitting import fit

# Public name -> the module defining it, imported on first use.
_EXPORTS = {
    "Param": "systems", "System": "systems",
    "register_system": ".catalog", "system": ".catalog", "systems": ".catalog",
    "from_csv": ".data.imports", "from_netcdf": ".data.imports", "from_numpy": ".data.imports",
    "load": ".data.io", "save": ".data.io", "select_split": ".data.schema",
    "suggest_embedding": ".data.embedding", "split_time": ".data.splits", "WorkbenchError": ".errors",
    "learners": ".learners", "register_learner": ".learners", "Model": ".model", "load_model": ".model", "simulate": ".simulate",
    "fit": ".training.fitting", "evaluate": ".evaluation.evaluate",
    "TrainConfig": ".training.config", "SeriesRecipe": ".data.series", "configure_threads": ".devices",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
