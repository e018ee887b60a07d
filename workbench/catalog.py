"""The public face of the catalogs: systems (list, look up, register) and learners (list, register).

``learners`` and ``register_learner`` are the functions of :mod:`workbench.learners`, loaded on
first access: that package imports the training and numerics code, which imports this module.
"""
from __future__ import annotations

import importlib
from typing import Any, Optional, Union

import systems as _catalog
from systems import System

from .errors import BadParameterError
from .safety import check_integer

SystemLike = Union[str, System]
# structural options are sizes (e.g. lorenz96's dim); a builder allocates per unit before any check
MAX_OPTION = 100_000
LEARNER_FUNCTIONS = ("learners", "register_learner")


def systems(kind: Optional[str] = None) -> list[str]:
    """Names of all registered systems (catalog and user-registered), optionally of one ``kind``."""
    return _catalog.names(kind)


def system(name: str, **options: int) -> System:
    """The :class:`System` called ``name``; ``options`` set structural choices such as ``dim``."""
    return get_system(name, **options)


def register_system(system: System, *, overwrite: bool = False) -> System:
    """Register a user's own :class:`System` so its name works everywhere a catalog name does."""
    return _catalog.register(system, overwrite=overwrite)


def get_system(system: SystemLike, **options: int) -> System:
    """The :class:`System` for a catalog name or a System object, with structural ``options`` applied.

    Options are whole numbers: ``dim=4.0`` is accepted as 4, ``dim=4.7`` or ``dim="4"`` refused.

    Raises:
        UnknownNameError: an unknown system name (with close matches).
        BadParameterError: neither a name nor a System, or an option that is not a whole number
            in ``[-inf, MAX_OPTION]``.
    """
    options = {key: _whole(value, f"option {key!r}", MAX_OPTION) for key, value in options.items()}
    if isinstance(system, System):
        return system.with_options(**options)
    if not isinstance(system, str):
        raise BadParameterError(f"expected a system name or System, got {type(system).__name__}")
    return _catalog.get(system).with_options(**options)


def _whole(value: Any, name: str, high: int) -> int:
    """A structural option as an int: whole floats pass (they come from text), fractions do not."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check_integer(value, name, high=high)


def __getattr__(name: str) -> Any:
    """``learners`` and ``register_learner``: the functions of :mod:`workbench.learners`, loaded on
    first use (PEP 562)."""
    if name in LEARNER_FUNCTIONS:
        return getattr(importlib.import_module(".learners", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
