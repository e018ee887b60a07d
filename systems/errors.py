"""The root of the project's exception family and the two errors the catalog raises.

They live here, at the bottom of the import graph, so that the catalog can raise them without
importing the engine; ``workbench.errors`` re-exports them and adds the other subclasses.
"""
from typing import Any


class WorkbenchError(Exception):
    """An error the user can cause and fix; the message names both.

    Arguments:
        message: what went wrong and how to fix it.
        **fields: facts a caller may act on (e.g. ``row=3``, the failing trajectory), stored as
            attributes of the exception.
    """

    def __init__(self, message: str = "", **fields: Any):
        super().__init__(message)
        for name, value in fields.items():
            setattr(self, name, value)


class UnknownNameError(WorkbenchError, KeyError):
    """An unknown system, learner, metric, parameter or option name (``except KeyError`` catches it)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BadParameterError(WorkbenchError, ValueError):
    """A parameter or argument outside what the component supports (``except ValueError`` catches it)."""
