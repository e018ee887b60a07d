"""The exception family users see. Every message names the problem and the fix."""
from systems.errors import WorkbenchError


class UnknownNameError(WorkbenchError, KeyError):
    """An unknown system, learner, metric or option name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BadParameterError(WorkbenchError, ValueError):
    """A parameter or argument outside what the component supports."""


class DatasetError(WorkbenchError, ValueError):
    """A dataset or file that does not follow the schema."""


class DivergenceError(WorkbenchError, FloatingPointError):
    """An integration or training run produced non-finite or unbounded values."""


class SolverStallError(WorkbenchError, RuntimeError):
    """A solver exceeded its step budget or its step size underflowed."""


class UnsupportedError(WorkbenchError, TypeError):
    """A component was given data it declares it cannot handle."""


class ResourceLimitError(WorkbenchError, MemoryError):
    """A request or input whose declared size or work exceeds the memory or work budget."""


class StorageError(WorkbenchError, OSError):
    """A file-system problem: a full disk, an unreadable file, or an output path that cannot be written."""


__all__ = [
    "WorkbenchError", "UnknownNameError", "BadParameterError", "DatasetError",
    "DivergenceError", "SolverStallError", "UnsupportedError", "ResourceLimitError", "StorageError",
]
