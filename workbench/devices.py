"""Device and thread selection: CUDA when present, CPU otherwise, never required."""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, Optional, TypeVar, Union

import torch

from .errors import BadParameterError
from .safety import check_integer

DeviceLike = Union[str, torch.device, None]
F = TypeVar("F", bound=Callable[..., Any])

# True inside a torch_threads block: a nested entry point without its own `threads` (evaluate calling
# predict and simulate) then keeps the count the outer one chose instead of re-applying the policy.
_in_scope: ContextVar[bool] = ContextVar("workbench_torch_threads_scope", default=False)


def resolve_device(device: DeviceLike = None) -> torch.device:
    """The device to run on: ``device`` if given, else CUDA when available, else CPU.

    Raises :class:`BadParameterError` for an unknown device string or for CUDA on a machine without it.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BadParameterError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or None for auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BadParameterError(f"device {device!r} requested but CUDA is not available here; use device='cpu' or None")
    return resolved


# Up to this many usable cores counts as a small CPU, where one thread per process is the default.
SMALL_CPU_CORES = 4


def _usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one, e.g. inside a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def default_threads() -> Optional[int]:
    """The policy's thread count: ``WORKBENCH_THREADS`` if set, else 1 on a small CPU, else None (torch's own).

    Raises :class:`BadParameterError` when ``WORKBENCH_THREADS`` is not a positive integer.
    """
    env = os.environ.get("WORKBENCH_THREADS", "").strip()
    if env:
        try:
            return check_integer(int(env), "WORKBENCH_THREADS", 1)
        except ValueError:
            raise BadParameterError(f"WORKBENCH_THREADS must be a positive integer, got {env!r}; "
                                    "unset it for the default") from None
    return 1 if _usable_cores() <= SMALL_CPU_CORES else None


def configure_threads(threads: Optional[int] = None) -> int:
    """Set torch's intra-op thread count for the whole process and return it (process entry points only).

    On small CPUs torch's default (one thread per core) is much slower for the small tensors of
    neural-ODE training when anything else runs (measured ~27x on a busy 2-core machine), so the
    default there is one thread per process; on larger CPUs torch's count is left alone. ``threads``
    or the ``WORKBENCH_THREADS`` variable override the default. Library entry points use
    :func:`torch_threads` instead, which restores the caller's count.
    """
    threads = check_integer(threads, "threads", 1) if threads is not None else default_threads()
    if threads is None:
        return torch.get_num_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextmanager
def torch_threads(threads: Optional[int] = None) -> Iterator[int]:
    """Run a block under :func:`configure_threads`'s policy and restore the caller's thread count after.

    The entry points ``simulate``, ``fit``, ``Model.predict`` and ``evaluate`` run inside it, so a library
    caller's process keeps its own setting. Inside an enclosing block, ``threads=None`` keeps the count
    the enclosing block set (the outermost entry point decides). Usable as a decorator too
    (``@torch_threads(2)``, count fixed at decoration time); see :func:`thread_policy` for functions that
    take a ``threads`` argument.

    Arguments:
        threads: intra-op threads for the block; None applies the policy (``WORKBENCH_THREADS``, else 1
            on a small CPU, else torch's current count).

    Yields:
        The thread count in force inside the block.
    """
    before, nested = torch.get_num_threads(), _in_scope.get()
    token = _in_scope.set(True)
    try:
        yield before if threads is None and nested else configure_threads(threads)
    finally:
        _in_scope.reset(token)
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def thread_policy(func: F) -> F:
    """Decorator for entry points: run ``func`` inside :func:`torch_threads` with its ``threads`` keyword."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch_threads(kwargs.get("threads")):
            return func(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
