"""Device and thread selection: CUDA when present, CPU otherwise, never required."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch

from .errors import BadParameterError

DeviceLike = Union[str, torch.device, None]


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


def configure_threads(threads: Optional[int] = None) -> int:
    """Set torch's intra-op thread count and return it.

    On small CPUs torch's default (one thread per core) is much slower for the small tensors of
    neural-ODE training when anything else runs (measured ~27x on a busy 2-core machine), so the
    default is one thread per process; ``threads`` or the ``WORKBENCH_THREADS`` variable override it.
    """
    if threads is None:
        env = os.environ.get("WORKBENCH_THREADS")
        threads = int(env) if env else 1
    if threads < 1:
        raise BadParameterError(f"threads must be >= 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextmanager
def torch_threads(threads: Optional[int] = None) -> Iterator[int]:
    """Run a block with :func:`configure_threads`'s policy and restore the caller's thread count after.

    Entry points (fit, simulate, predict, evaluate) use this so a library caller's process keeps
    its own setting.
    """
    before = torch.get_num_threads()
    try:
        yield configure_threads(threads)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
