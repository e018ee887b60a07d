"""Lazy public names for a package (PEP 562): the package and each room list their public API as
``name -> defining module`` and import a module only when one of its names is first used.

So ``import workbench`` and the command line start without torch and xarray, and rooms whose
modules import each other (the learners use ``evaluation.baselines``; ``evaluation.evaluate``
uses the learners) do not import in a circle.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Callable, Mapping


class _LazyPackage(types.ModuleType):
    """A package whose public names are never hidden by its submodules.

    Importing ``workbench.simulate`` makes Python set the package attribute ``simulate`` to the
    submodule; the public name is the function, so a module never replaces an exported name.
    """

    _exports: Mapping[str, str] = {}

    def __setattr__(self, name: str, value: object) -> None:
        if name in self._exports and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """Make ``exports`` (public name -> module, relative to ``package`` when it starts with a dot)
    the lazy public API of ``package``.

    Arguments:
        package: the package's ``__name__``.
        exports: where each public name is defined.

    Returns:
        ``(__getattr__, __dir__)`` for the package's namespace. ``__getattr__`` resolves a public
        name, or a submodule of the package (``wb.evaluation``), on first access and caches it;
        ``__dir__`` lists the public names only.
    """
    module = sys.modules[package]

    def __getattr__(name: str) -> object:
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
        else:
            try:
                value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(module, name, value)
        return value

    def __dir__() -> list:
        return list(getattr(module, "__all__", exports))

    module.__class__ = _LazyPackage
    module._exports = dict(exports)
    return __getattr__, __dir__
