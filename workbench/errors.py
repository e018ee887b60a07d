"""The exception family users see. Every message names the problem and the fix."""
from systems.errors import BadParameterError, UnknownNameError, WorkbenchError


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


class UnknownSolverError(UnknownNameError, BadParameterError):
    """A method name no solver has: an unknown name (``KeyError``) given as an argument value
    (``ValueError``), so either ``except`` catches it."""


class SchedulerError(WorkbenchError, ConnectionError):
    """A compute service (a Dask scheduler) that cannot be reached."""


__all__ = [
    "WorkbenchError", "UnknownNameError", "BadParameterError", "DatasetError",
    "DivergenceError", "SolverStallError", "UnsupportedError", "ResourceLimitError", "StorageError",
    "SchedulerError", "UnknownSolverError",
]
