"""Name -> System lookup for the built-in catalog and the user's own systems."""
from __future__ import annotations

from difflib import get_close_matches

from ._system import System
from .errors import BadParameterError, UnknownNameError

_CATALOG: dict[str, System] = {}


def register(system: System, *, overwrite: bool = False) -> System:
    """Add ``system`` to the catalog under ``system.name`` and return it.

    Raises :class:`BadParameterError` if the name is taken and ``overwrite`` is false.
    """
    if not isinstance(system, System):
        raise BadParameterError(f"register() takes a System, got {type(system).__name__}")
    if system.name in _CATALOG and not overwrite:
        raise BadParameterError(
            f"a system named {system.name!r} is already registered; pick another name or pass overwrite=True")
    _CATALOG[system.name] = system
    return system


def names(kind: str | None = None) -> list[str]:
    """Sorted catalog names, optionally only those of one kind (``"ode"`` or ``"sde"``)."""
    return sorted(n for n, s in _CATALOG.items() if kind is None or s.kind == kind)


def get(name: str) -> System:
    """The system registered under ``name``; an :class:`UnknownNameError` (a ``KeyError``) suggests near names."""
    try:
        return _CATALOG[name]
    except KeyError:
        close = get_close_matches(str(name), list(_CATALOG), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run `workbench systems` for the list"
        raise UnknownNameError(f"unknown system {name!r}; {hint}") from None
