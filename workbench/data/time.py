"""Calendar time axes: dates become a numeric CF axis (``days since 1958-03-01``) and come back as dates.

The dataset schema keeps ``time`` numeric (learners integrate in it). Measured data stamped with
dates stores the offset from a calendar origin in CF-1.8 form: ``time.attrs["units"] =
"<unit> since <origin>"`` and ``time.attrs["calendar"] = "proleptic_gregorian"`` (the calendar
pandas and NumPy use). Any CF reader (``xarray.decode_cf``, ``netCDF4.num2date``) restores the
dates; :func:`to_datetimes` does the same here without decoding the file.

Offsets are computed in integer microseconds (``datetime64[us]``), not pandas' nanosecond
timestamps, so dates from year -290,000 to 290,000 work: scientific series older than 1678
(the nanosecond limit) included. :func:`to_datetimes` gives ``datetime64[ns]`` where the dates fit
in it and ``datetime64[us]`` for older or later ones.

A series on a calendar grid (:func:`calendar_grid`: daily, weekly, monthly, quarterly, annual)
keeps its axis in days: a month grid steps 28-31 days, which counts as regular (:func:`is_regular`:
every step within ``REGULAR_TOLERANCE`` of the median step, :func:`median_step`).
"""
from __future__ import annotations

import re
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import BadParameterError, DatasetError

CALENDAR = "proleptic_gregorian"
# CF-1.8 calendars: the first three are the Gregorian one this module computes with (dates after
# 1582-10-15 agree); the others have other month lengths, which it cannot convert to dates
GREGORIAN_CALENDARS = ("proleptic_gregorian", "standard", "gregorian")
CF_CALENDARS = GREGORIAN_CALENDARS + ("julian", "noleap", "365_day", "all_leap", "366_day", "360_day", "none")
# plain (not calendar) units a numeric time column may declare
PLAIN_TIME_UNITS = ("1", "s", "second", "seconds", "sec", "min", "minute", "minutes", "h", "hr", "hour", "hours",
                    "d", "day", "days", "week", "weeks", "month", "months", "year", "years", "yr", "a")
UNIT_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
_ALIASES = {"day": "days", "d": "days", "hour": "hours", "h": "hours", "hr": "hours", "minute": "minutes",
            "min": "minutes", "second": "seconds", "sec": "seconds", "s": "seconds"}
_SINCE = re.compile(r"^\s*(\w+)\s+since\s+(.+?)\s*$", re.IGNORECASE)
TimeLike = Union[float, int, str, np.datetime64, pd.Timestamp, Any]


MICROS = 1e6
# steps within this fraction of the median step count as regular: months (28-31 days, -8% to +2% of
# their median) and years in days are regular samples, a missing sample (a step of 2) is not
REGULAR_TOLERANCE = 0.1


def median_step(times: np.ndarray, default: float = 1.0) -> float:
    """The median sampling step of ``times`` (T,), or ``default`` for fewer than two samples."""
    t = np.asarray(times, dtype=np.float64)
    return float(np.median(np.diff(t))) if t.size > 1 else float(default)


def is_regular(times: np.ndarray) -> bool:
    """Whether ``times`` (T,) are regularly sampled: every step within ``REGULAR_TOLERANCE`` of the
    median step (a calendar axis of months or years in days included). The one test of regular
    sampling: which learners may fit the data (``DataInfo.regular``) and how a measured series is
    laid out for training (:mod:`workbench.data.series`) both ask it."""
    steps = np.diff(np.asarray(times, dtype=np.float64))
    if steps.size == 0:
        return True
    median = float(np.median(steps))
    return bool(median > 0 and np.abs(steps / median - 1).max() <= REGULAR_TOLERANCE)


def _micros(dates: Union[pd.DatetimeIndex, pd.Timestamp]) -> Union[np.ndarray, int]:
    """Integer microseconds since 1970 (pandas may hold dates in s, ms, us or ns resolution)."""
    if isinstance(dates, pd.Timestamp):
        return int(np.datetime64(dates.as_unit("us").to_datetime64(), "us").astype(np.int64))
    return dates.as_unit("us").asi8


def choose_unit(dates: pd.DatetimeIndex) -> str:
    """``days`` for daily or coarser sampling, else the largest unit below the median step."""
    median = median_step(np.asarray(_micros(dates)) / MICROS, default=UNIT_SECONDS["days"])
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
    values = (_micros(dates) - _micros(origin)) / (UNIT_SECONDS[unit] * MICROS)
    return np.asarray(values, dtype=np.float64), {"units": f"{unit} since {_iso_date(origin)}", "calendar": CALENDAR}


def _iso_date(stamp: pd.Timestamp) -> str:
    """``YYYY-MM-DD`` with at least four year digits (``strftime`` drops them before year 1000)."""
    return f"{stamp.year:04d}-{stamp.month:02d}-{stamp.day:02d}"


def offsets(dates: np.ndarray, units: str) -> np.ndarray:
    """Numeric times of ``dates`` (``datetime64``) on a calendar axis with CF ``units``."""
    unit, origin = parse_units(units)
    micros = np.asarray(dates).astype("datetime64[us]").astype(np.int64)
    return (micros - _micros(origin)) / (UNIT_SECONDS[unit] * MICROS)


def decode(values: np.ndarray, units: Any) -> Optional[np.ndarray]:
    """The dates of numeric ``values`` on an axis with CF ``units``; None when not a calendar axis.

    Returns ``datetime64[ns]`` when every date fits in it (years 1678-2261), else ``datetime64[us]``.
    """
    parsed = parse_units(units)
    if parsed is None:
        return None
    unit, origin = parsed
    micros = np.round(np.asarray(values, dtype=np.float64) * UNIT_SECONDS[unit] * MICROS).astype(np.int64)
    dates = np.datetime64(_micros(origin), "us") + micros.astype("timedelta64[us]")
    fits = dates.size == 0 or (dates.min() >= np.datetime64(pd.Timestamp.min.ceil("us"))
                               and dates.max() <= np.datetime64(pd.Timestamp.max.floor("us")))
    return dates.astype("datetime64[ns]") if fits else dates


def check_time_units(units: Any, what: str = "time_units") -> Optional[str]:
    """``units`` when the time axis understands it (a plain unit, or CF ``<unit> since <date>``).

    Raises:
        BadParameterError: any other text (``"fortnight"``), naming the accepted units.
    """
    if units is None:
        return None
    if not isinstance(units, str):
        raise BadParameterError(f"{what} must be a string such as 's' or 'days since 2000-01-01', got {units!r}")
    if units.strip().lower() in PLAIN_TIME_UNITS:
        return units.strip()
    try:
        if parse_units(units) is not None:
            return units.strip()
    except DatasetError as exc:
        raise BadParameterError(exc.problem, fix=exc.fix) from None
    raise BadParameterError(f"{what}={units!r} is not a time unit the time axis understands",
                            fix=f"use one of {', '.join(PLAIN_TIME_UNITS)}, or '<days|hours|minutes|seconds> since "
                                "<date>' for a calendar axis")


def check_calendar(calendar: Any, source: str) -> Optional[str]:
    """``calendar`` when the time axis can use it (a Gregorian CF calendar), None when absent.

    Raises:
        DatasetError: not a CF calendar (``"martian"``), or a CF calendar with other month lengths.
    """
    if calendar is None:
        return None
    name = str(calendar).strip().lower()
    if name not in CF_CALENDARS:
        raise DatasetError(f"{source}: calendar {calendar!r} is not a CF calendar",
                           fix=f"use one of {', '.join(CF_CALENDARS)} (CF-1.8 section 4.4.1)")
    if name not in GREGORIAN_CALENDARS and name != "none":
        raise DatasetError(f"{source}: calendar {calendar!r} has other month lengths than the Gregorian calendar "
                           "the workbench converts dates with",
                           fix="convert the time axis to the proleptic_gregorian calendar first "
                               "(e.g. with cftime or xarray's convert_calendar)")
    return name


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
    """The dates of the time axis of ``ds`` (or of ``values`` on that axis, see :func:`decode`); None if not calendar."""
    return decode(ds["time"].values if values is None else values, ds["time"].attrs.get("units"))


def to_numeric(ds: xr.Dataset, when: TimeLike, what: str = "time") -> float:
    """A point on the numeric time axis of ``ds`` from a number or, on a calendar axis, a date.

    Raises :class:`BadParameterError` when a date is given for an axis without a calendar origin.
    """
    if isinstance(when, (int, float, np.integer, np.floating)) and not isinstance(when, bool):
        return float(when)
    parsed = parse_units(ds["time"].attrs.get("units"))
    if parsed is None:
        raise BadParameterError(f"{what} '{when}' is a date, but this dataset's time axis has no calendar origin "
                                f"(units {ds['time'].attrs.get('units', '1')!r}); give a number on the time axis")
    try:
        stamp = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise BadParameterError(f"{what} '{when}' is neither a number nor a date (write e.g. '1995-01-01')") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None)
    unit, origin = parsed
    return (_micros(stamp) - _micros(origin)) / (UNIT_SECONDS[unit] * MICROS)


# calendar grids: name -> months per step (month-based) or days per step (day-based)
MONTH_GRIDS = {"monthly": 1, "quarterly": 3, "annual": 12}
DAY_GRIDS = {"daily": 1, "weekly": 7}
GRID_ALIASES = {"d": "daily", "day": "daily", "w": "weekly", "week": "weekly", "m": "monthly", "ms": "monthly",
                "me": "monthly", "month": "monthly", "q": "quarterly", "qs": "quarterly", "quarter": "quarterly",
                "y": "annual", "ys": "annual", "a": "annual", "as": "annual", "yearly": "annual", "year": "annual"}
GRIDS = tuple(DAY_GRIDS) + tuple(MONTH_GRIDS)
_DAY_MICROS = 86_400_000_000


def grid_name(freq: str) -> Optional[str]:
    """The calendar grid a ``freq`` text names (``"MS"``, ``"monthly"``...), None for any other text."""
    key = str(freq).strip().lower()
    return key if key in GRIDS else GRID_ALIASES.get(key)


def _calendar_parts(dates: np.ndarray) -> dict[str, np.ndarray]:
    """Month index (since 1970-01), day of month, month end flag, day index and time of day in us."""
    micros = dates.astype("datetime64[us]").astype(np.int64)
    months = dates.astype("datetime64[M]")
    days = dates.astype("datetime64[D]")
    return {"month": months.astype(np.int64), "day": (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
            "month_end": (months + 1).astype("datetime64[D]") - 1 == days, "days": days.astype(np.int64),
            "tod": micros - days.astype(np.int64) * _DAY_MICROS}


def infer_grid(dates: np.ndarray) -> Optional[str]:
    """The calendar grid (:data:`GRIDS`) that sorted, distinct ``dates`` lie on, or None.

    A month-based grid needs the same day of the month in every row (at most the 28th) or the
    last day of every month; a day-based one the same time of day. The step is the greatest common
    divisor of the gaps, so missing rows do not hide the grid.
    """
    if len(dates) < 3:
        return None
    parts = _calendar_parts(np.asarray(dates))
    if np.unique(parts["tod"]).size != 1:
        return None
    same_day = np.unique(parts["day"]).size == 1 and parts["day"][0] <= 28
    if same_day or parts["month_end"].all():
        months = int(np.gcd.reduce(np.diff(parts["month"])))
        named = [name for name, k in MONTH_GRIDS.items() if k == months]
        if named:
            return named[0]
    days = int(np.gcd.reduce(np.diff(parts["days"])))
    named = [name for name, k in DAY_GRIDS.items() if k == days]
    return named[0] if named else None


def grid_size(dates: np.ndarray, grid: str) -> int:
    """How many points the calendar ``grid`` has from the first to the last of sorted ``dates``."""
    parts = _calendar_parts(np.asarray(dates)[[0, -1]])
    if grid in MONTH_GRIDS:
        return int((parts["month"][1] - parts["month"][0]) // MONTH_GRIDS[grid]) + 1
    return int((parts["days"][1] - parts["days"][0]) // DAY_GRIDS[grid]) + 1


def calendar_grid(dates: np.ndarray, grid: str) -> np.ndarray:
    """The points of calendar ``grid`` from the first to the last of sorted ``dates`` (``datetime64[us]``),
    anchored on the first date (its day of month, or month end, and time of day)."""
    first = _calendar_parts(np.asarray(dates)[:1])
    count = grid_size(dates, grid)
    if grid in MONTH_GRIDS:
        months = (first["month"][0] + np.arange(count) * MONTH_GRIDS[grid]).astype("datetime64[M]")
        days = ((months + 1).astype("datetime64[D]") - 1 if first["month_end"][0]
                else months.astype("datetime64[D]") + (first["day"][0] - 1))
    else:
        days = (first["days"][0] + np.arange(count) * DAY_GRIDS[grid]).astype("datetime64[D]")
    return days.astype("datetime64[us]") + np.timedelta64(int(first["tod"][0]), "us")


def step_label(ds: xr.Dataset) -> str:
    """A readable name of the time unit (``days``, ``s``...) for captions."""
    parsed = parse_units(ds["time"].attrs.get("units"))
    return parsed[0] if parsed else str(ds["time"].attrs.get("units", "1"))


__all__ = ["CALENDAR", "CF_CALENDARS", "REGULAR_TOLERANCE", "check_calendar", "check_time_units", "calendar_grid",
           "decode", "encode", "grid_name", "grid_size", "infer_grid", "is_calendar", "is_regular", "median_step",
           "offsets", "parse_units", "step_label", "to_datetimes", "to_numeric"]
