"""Training in a background thread, so the page stays usable while a model fits.

The fit runs outside Streamlit's script thread: Streamlit's own Stop (or leaving the page) ends a
script run, not the training; the page's Stop button asks the fit loop to stop at the end of the
current epoch (the callback returns False) and the best weights so far become the model.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import xarray as xr

import workbench as wb


class TrainingJob:
    """One ``wb.fit`` call in a daemon thread; ``history`` grows by one record per epoch."""

    def __init__(self, ds: xr.Dataset, learner: str, data_label: str, **options: Any):
        self.learner, self.data_label, self.options = learner, data_label, options
        self.history: list[dict[str, Any]] = []
        self.model: Optional[wb.Model] = None
        self.error: Optional[Exception] = None
        self.stop_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ds,), daemon=True, name=f"fit-{learner}")

    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self.stop_requested.set()

    def wait(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    def _run(self, ds: xr.Dataset) -> None:
        try:
            wb.configure_threads()  # the same policy as the server process (torch's count is process-wide)
            self.model = wb.fit(ds, self.learner, callback=self._record, progress=False, **self.options)
        except Exception as exc:  # shown on the page by the script thread
            self.error = exc

    def _record(self, record: dict[str, Any]) -> bool:
        self.history.append(record)
        return not self.stop_requested.is_set()
