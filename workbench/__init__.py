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
import importlib as _importlib
import sys as _sys
import types as _types
from typing import TYPE_CHECKING as _TYPE_CHECKING

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
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> object:
    """A public name or a room (``wb.evaluation``), imported on first access and cached."""
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name], __name__), name)
    else:
        try:
            value = _importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API only (submodules are reached as attributes or imported by name)."""
    return list(__all__)


class _Package(_types.ModuleType):
    """The package module; loading a submodule never hides the public function of the same name."""

    def __setattr__(self, name: str, value: object) -> None:
        # Importing `workbench.simulate` makes Python set the attribute `simulate` to the submodule; the
        # public name is the function (as it was when this file imported everything eagerly).
        if name in _EXPORTS and isinstance(value, _types.ModuleType) and _EXPORTS[name] == f".{name}":
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
