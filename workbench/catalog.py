"""The public face of the system catalog: list, look up and register systems."""
from __future__ import annotations

from typing import Optional

import systems as _catalog
from systems import System

from .simulate import get_system


def systems(kind: Optional[str] = None) -> list[str]:
    """Names of all registered systems (catalog and user-registered), optionally of one ``kind``."""
    return _catalog.names(kind)


def system(name: str, **options: int) -> System:
    """The :class:`System` called ``name``; ``options`` set structural choices such as ``dim``."""
    return get_system(name, **options)


def register_system(system: System, *, overwrite: bool = False) -> System:
    """Register a user's own :class:`System` so its name works everywhere a catalog name does."""
    return _catalog.register(system, overwrite=overwrite)
