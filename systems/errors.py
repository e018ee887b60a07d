"""The root of the project's exception family and the two errors the catalog raises.

They live here, at the bottom of the import graph, so that the catalog can raise them without
importing the engine; ``workbench.errors`` re-exports them and adds the other subclasses.
"""
from typing import Any, Optional


class WorkbenchError(Exception):
    """An error the user can cause and fix.

    Arguments:
        problem: what went wrong, naming the thing (the file, option or value).
        fix: what to do about it. Raise sites that predate the split wrote both into ``problem``
            as ``"problem; fix"``; for them the part after the first top-level ``"; "`` is the fix.
        **fields: facts a caller may act on (e.g. ``row=3``, the failing trajectory), stored as
            attributes of the exception.

    ``str(error)`` is ``"problem; fix"``, so a one-line report carries both; ``error.problem`` and
    ``error.fix`` let a page or a CLI lay them out apart.
    """

    def __init__(self, problem: str = "", fix: Optional[str] = None, **fields: Any):
        if fix is None:
            problem, fix = _split_message(problem)
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}" if fix else problem)
        for name, value in fields.items():
            setattr(self, name, value)

    def __reduce__(self) -> tuple:
        # errors cross process boundaries (Dask workers); keep problem, fix and the fields
        return self.__class__, (self.problem, self.fix), dict(self.__dict__)


def _split_message(message: str) -> tuple[str, str]:
    """``"problem; fix"`` -> its parts, splitting at the first ``"; "`` outside parentheses and quotes."""
    depth, quote = 0, ""
    for i, char in enumerate(message):
        before, after = message[i - 1:i], message[i + 1:i + 2]
        if quote:  # an apostrophe inside a word (the system's) neither opens nor closes a quote
            quote = "" if char == quote and not after.isalnum() else quote
        elif char in "'\"`" and not before.isalnum():
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char == ";" and depth == 0 and message[i + 1:i + 2] == " ":
            return message[:i], message[i + 2:]
    return message, ""


class UnknownNameError(WorkbenchError, KeyError):
    """An unknown system, learner, metric, parameter or option name (``except KeyError`` catches it)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BadParameterError(WorkbenchError, ValueError):
    """A parameter or argument outside what the component supports (``except ValueError`` catches it)."""
