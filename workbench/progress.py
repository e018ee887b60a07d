"""Progress bars that show on a terminal and stay silent in logs, tests and pipes."""
from __future__ import annotations

import sys
from typing import Optional

from tqdm.auto import tqdm


def progress_enabled(progress: Optional[bool]) -> bool:
    """``progress`` if given, else on only when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def progress_bar(total: float, desc: str, progress: Optional[bool] = None, unit: str = "it") -> tqdm:
    """A tqdm bar that is disabled unless :func:`progress_enabled` says otherwise."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(progress),
                dynamic_ncols=True, leave=False)
