"""Dynamical-systems modeling workbench: ground truth, neural surrogates, comparisons, HDF5 data.

Public API (see README): ``systems``, ``system``, ``register_system``, ``simulate``, ``save``,
``load``, ``from_csv``, ``from_numpy``, ``learners``, ``fit``, ``load_model``, ``WorkbenchError``.
"""
import importlib
import sys
import types
from typing import Any

from ._version import __version__

# Public name -> the module defining it, imported on first use (PEP 562): `import workbench` and the
# command line start in a fraction of a second instead of loading torch, xarray and every learner.
_EXPORTS = {
    "Param": "systems", "System": "systems",
    "register_system": ".catalog", "system": ".catalog", "systems": ".catalog",
    "from_csv": ".dataset", "from_netcdf": ".dataset", "from_numpy": ".dataset", "load": ".dataset",
    "save": ".dataset", "select_split": ".dataset",
    "suggest_embedding": ".embedding", "split_time": ".splits", "WorkbenchError": ".errors",
    "learners": ".learners", "Model": ".model", "load_model": ".model", "simulate": ".simulate",
    "fit": ".training", "evaluate": ".evaluate",
}


def __getattr__(name: str) -> Any:
    """A public name or a submodule (``wb.metrics``), imported on first access and cached."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """The package module; loading a submodule never hides the public function of the same name."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing `workbench.simulate` makes Python set the attribute `simulate` to the submodule; the
        # public name is the function (as it was when this file imported everything eagerly).
        if name in _EXPORTS and isinstance(value, types.ModuleType) and _EXPORTS[name] == f".{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "Model", "Param", "System", "WorkbenchError", "evaluate", "fit", "from_csv", "from_netcdf", "from_numpy",
    "learners", "load", "load_model", "register_system", "save", "select_split", "simulate", "split_time",
    "suggest_embedding", "system", "systems", "__version__",
]
