"""The held-out tail of a series split in time: where it starts, which horizons to score, the forecast of it."""
from __future__ import annotations

from typing import Any, Optional

import xarray as xr

from ..data.splits import merge_segments, time_split_info
from ..errors import DatasetError


def test_period(ds: xr.Dataset) -> Optional[tuple[float, int]]:
    """``(test_start, samples)``: where the held-out tail of a time-split dataset starts on the time axis
    and how many sample times it spans; None for data without a time split."""
    info = time_split_info(ds)
    if not info or info.get("test_start") is None:
        return None
    start = float(info["test_start"])
    return start, int((ds["time"].values >= start).sum())


def forecast_horizons(ds: xr.Dataset, count: int = 6) -> list[int]:
    """Forecast steps worth scoring on a time-split dataset: powers of two from 1 up to half the test
    period (at most ``count`` of them), so each horizon still has many forecast origins."""
    period = test_period(ds)
    if period is None:
        raise DatasetError("the dataset has no time split; split it in time on the Data page "
                           "(workbench.split_time) to score forecasts by horizon")
    longest = max(1, period[1] // 2)
    return [2 ** k for k in range(count) if 2 ** k <= longest] or [1]


def holdout_forecast(model: Any, ds: xr.Dataset, n_samples: int = 1, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """The full observed series and the model's forecast of its held-out tail from the start of the test
    period (using only the data before it), as :meth:`workbench.Model.forecast` gives it.

    Arguments:
        model: a fitted :class:`workbench.Model` with the dataset's variables.
        ds: a time-split dataset (:func:`workbench.split_time`).
        n_samples: forecast paths (stochastic learners).
        seed: seeds the paths.

    Returns:
        ``(series, forecast)``: the merged series ``state(trajectory, time, variable)`` and the forecast
        ``state(sample, trajectory, time, variable)`` over the test period's times.
    """
    period = test_period(ds)
    if period is None:
        raise DatasetError("the dataset has no time split, so there is no held-out tail to forecast; split it in "
                           "time on the Data page (workbench.split_time)")
    return merge_segments(ds), model.forecast(ds, period[1], n_samples=n_samples, seed=seed, origin="test")
