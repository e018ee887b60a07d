"""Calendar time axes: dates become a numeric CF axis (``days since 1958-03-01``) and come back as dates.

The dataset schema keeps ``time`` numeric (learners integrate in it). Measured data stamped with
dates stores the offset from a calendar origin in CF-1.8 form: ``time.attrs["units"] =
"<unit> since <origin>"`` and ``time.attrs["calendar"] = "proleptic_gregorian"`` (the calendar
pandas and NumPy use). Any CF reader (``xarray.decode_cf``, ``netCDF4.num2date``) restores the
dates; :func:`to_datetimes` does the same here without decoding the file.
"""
from __future__ import annotations

import re
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import xarray as xr

from .errors import BadParameterError, DatasetError

CALENDAR = "proleptic_gregorian"
UNIT_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
_ALIASES = {"day": "days", "d": "days", "hour": "hours", "h": "hours", "hr": "hours", "minute": "minutes",
            "min": "minutes", "second": "seconds", "sec": "seconds", "s": "seconds"}
_SINCE = re.compile(r"^\s*(\w+)\s+since\s+(.+?)\s*$", re.IGNORECASE)
TimeLike = Union[float, int, str, np.datetime64, pd.Timestamp, Any]


def _nanoseconds(dates: pd.DatetimeIndex) -> np.ndarray:
    """Integer nanoseconds since 1970 (pandas may hold dates in s, ms or us resolution)."""
    return dates.as_unit("ns").asi8


def choose_unit(dates: pd.DatetimeIndex) -> str:
    """``days`` for daily or coarser sampling, else the largest unit below the median step."""
    steps = np.diff(_nanoseconds(dates)) / 1e9 if len(dates) > 1 else np.array([UNIT_SECONDS["days"]])
    median = float(np.median(steps))
    for unit in ("days", "hours", "minutes"):
        if median >= UNIT_SECONDS[unit]:
            return unit
    return "seconds"


def encode(dates: pd.DatetimeIndex, unit: Optional[str] = None) -> tuple[np.ndarray, dict[str, str]]:
    """Numeric offsets of ``dates`` from the midnight before the earliest one, and the CF attrs.

    Arguments:
        dates: timezone-naive datetimes (UTC if they had a zone).
        unit: ``days``, ``hours``, ``minutes`` or ``seconds``; by default chosen from the sampling.

    Returns:
        ``(values, attrs)``: float64 offsets and ``{"units": "<unit> since <origin>", "calendar": ...}``.
    """
    unit = _ALIASES.get(unit, unit) if unit else choose_unit(dates)
    if unit not in UNIT_SECONDS:
        raise BadParameterError(f"time unit {unit!r} is not supported; use one of {sorted(UNIT_SECONDS)}")
    origin = dates.min().normalize()
    values = (_nanoseconds(dates) - origin.value) / (UNIT_SECONDS[unit] * 1e9)
    return np.asarray(values, dtype=np.float64), {"units": f"{unit} since {origin:%Y-%m-%d}", "calendar": CALENDAR}


def parse_units(units: Any) -> Optional[tuple[str, pd.Timestamp]]:
    """``(unit, origin)`` of a CF ``"<unit> since <date>"`` string, None for any other unit."""
    match = _SINCE.match(str(units or ""))
    if not match:
        return None
    unit = _ALIASES.get(match.group(1).lower(), match.group(1).lower())
    if unit not in UNIT_SECONDS:
        raise DatasetError(f"time units {units!r}: {match.group(1)!r} is not a fixed-length unit; CF calendars "
                           f"need one of {sorted(UNIT_SECONDS)} (months and years vary in length)")
    try:
        origin = pd.Timestamp(match.group(2))
    except ValueError:
        raise DatasetError(f"time units {units!r}: cannot read the origin date {match.group(2)!r}") from None
    return unit, origin.tz_convert(None) if origin.tzinfo is not None else origin


def is_calendar(ds: Union[xr.Dataset, xr.DataArray]) -> bool:
    """Whether the time axis of ``ds`` counts from a calendar origin (``... since <date>``)."""
    return parse_units(ds["time"].attrs.get("units")) is not None


def to_datetimes(ds: Union[xr.Dataset, xr.DataArray], values: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """The dates of the time axis of ``ds`` (or of ``values`` on that axis), ``datetime64[ns]``; None if not calendar."""
    parsed = parse_units(ds["time"].attrs.get("units"))
    if parsed is None:
        return None
    unit, origin = parsed
    t = np.asarray(ds["time"].values if values is None else values, dtype=np.float64)
    nanos = np.round(t * UNIT_SECONDS[unit] * 1e9).astype(np.int64)
    return (np.datetime64(origin.value, "ns") + nanos.astype("timedelta64[ns]")).astype("datetime64[ns]")


def to_numeric(ds: xr.Dataset, when: TimeLike, what: str = "time") -> float:
    """A point on the numeric time axis of ``ds`` from a number or, on a calendar axis, a date.

    Raises :class:`BadParameterError` when a date is given for an axis without a calendar origin.
    """
    if isinstance(when, (int, float, np.integer, np.floating)) and not isinstance(when, bool):
        return float(when)
    parsed = parse_units(ds["time"].attrs.get("units"))
    if parsed is None:
        raise BadParameterError(f"{what} {when!r} is a date, but this dataset's time axis has no calendar origin "
                                f"(units {ds['time'].attrs.get('units', '1')!r}); give a number on the time axis")
    try:
        stamp = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise BadParameterError(f"{what} {when!r} is neither a number nor a date (write e.g. '1995-01-01')") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None)
    unit, origin = parsed
    return (stamp.value - origin.value) / (UNIT_SECONDS[unit] * 1e9)


def step_label(ds: xr.Dataset) -> str:
    """A readable name of the time unit (``days``, ``s``...) for captions."""
    parsed = parse_units(ds["time"].attrs.get("units"))
    return parsed[0] if parsed else str(ds["time"].attrs.get("units", "1"))


__all__ = ["CALENDAR", "encode", "is_calendar", "parse_units", "step_label", "to_datetimes", "to_numeric"]
