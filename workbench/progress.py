"""Progress bars that show on a terminal and stay silent in logs, tests and pipes."""
from __future__ import annotations

import sys
import threading
from typing import Any, Optional

from tqdm.auto import tqdm

# seconds between redraws of a bar whose work gives no update (a long epoch, a benchmark cell), so its
# elapsed time and time left keep moving and nothing looks hung
REFRESH_S = 1.0


def progress_enabled(progress: Optional[bool]) -> bool:
    """``progress`` if given, else on only when stderr is a terminal.

    Raises:
        BadParameterError: ``progress`` is neither ``None`` nor a bool (``"no"`` would be truthy).
    """
    if progress is None:
        return sys.stderr.isatty()
    if not isinstance(progress, bool):
        from .errors import BadParameterError  # here: it loads the catalog (torch), which a bar needs not

        raise BadParameterError(f"progress must be True, False or None (automatic), got {progress!r}")
    return progress


class LiveBar(tqdm):
    """A tqdm bar that a daemon thread redraws every :data:`REFRESH_S` seconds while it is open."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None
        if not self.disable:
            self._ticker = threading.Thread(target=self._tick, name="progress-refresh", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.refresh()

    def close(self) -> None:
        """Stop redrawing, then close the bar (safe to call twice)."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            if self._ticker is not None and self._ticker is not threading.current_thread():
                self._ticker.join()
        super().close()


# tqdm's default write lock includes a multiprocessing lock that forked children share: a child
# killed while creating or drawing a bar (kill -9 of a forked writer) left it held, and the next bar
# in the parent waited forever (a hung test run). These bars only draw from this process's threads.
LiveBar.set_lock(threading.RLock())


def progress_bar(total: Optional[float], desc: str, progress: Optional[bool] = None, unit: str = "it") -> tqdm:
    """A :class:`LiveBar` that is disabled unless :func:`progress_enabled` says otherwise.

    Arguments:
        total: the count the bar fills to (``None``: unknown yet; set ``bar.total`` later).
        desc: the label in front of the bar.
        progress: ``True``/``False`` to force, ``None`` for on only on a terminal.
        unit: what one step of ``update`` counts.
    """
    return LiveBar(total=total, desc=desc, unit=unit, disable=not progress_enabled(progress),
                   dynamic_ncols=True, leave=False)
