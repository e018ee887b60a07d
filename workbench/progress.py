"""Progress bars that show on a terminal and stay silent in logs, tests and pipes."""
from __future__ import annotations

import sys
from typing import Optional

from tqdm.auto import tqdm

from .errors import BadParameterError


def progress_enabled(progress: Optional[bool]) -> bool:
    """``progress`` if given, else on only when stderr is a terminal.

    Raises:
        BadParameterError: ``progress`` is neither ``None`` nor a bool (``"no"`` would be truthy).
    """
    if progress is None:
        return sys.stderr.isatty()
    if not isinstance(progress, bool):
        raise BadParameterError(f"progress must be True, False or None (automatic), got {progress!r}")
    return progress


def progress_bar(total: float, desc: str, progress: Optional[bool] = None, unit: str = "it") -> tqdm:
    """A tqdm bar that is disabled unless :func:`progress_enabled` says otherwise."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(progress),
                dynamic_ncols=True, leave=False)
