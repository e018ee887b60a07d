"""Time-based splits of one or a few long series: train on the past, validate, test on the future.

:func:`split_time` cuts every series at two boundaries and stores each piece as its own trajectory
on the shared time axis, with ``split(trajectory)`` saying which piece it is and the samples
outside the piece removed (``NaN`` in ``state``, ``False`` in ``mask``). Everything that selects
trajectories by ``split`` (the fit loop, :func:`workbench.select_split`, the app) therefore sees only
its own times: a training window cannot reach a test value, because the training trajectory holds
none. The file records the cut (``attrs["time_split"]`` with the boundaries and, on a calendar
axis, their dates), the piece's source series (``series(trajectory)``) and per-sample labels
(``time_split(time)``). :func:`merge_segments` reassembles the full series (for plots and for
forecasts from an origin, which may use all data before that origin); it keeps the cut as
``attrs["time_split"]``, so the whole series still says where its pieces start, and
:func:`label_split` records a cut on a whole series without cutting it. The fit path merges once
and cuts once (:mod:`workbench.data.series`); :func:`on_whole_series` serves callers that hand
pieces to a whole-series step (a delay embedding) and want pieces back.
"""
from __future__ import annotations

import json
from typing import Callable, Optional, Union

import numpy as np
import xarray as xr

from . import time as timeaxis
from .schema import SPLITS, observation_mask, validate
from ..errors import BadParameterError, DatasetError

Boundary = Union[float, int, str, np.datetime64, None, object]


def split_time(ds: xr.Dataset, val: Boundary = 0.1, test: Boundary = 0.15) -> xr.Dataset:
    """Split every series of ``ds`` in time into train (earliest), val and test (latest) pieces.

    Arguments:
        ds: a dataset in the schema without a ``split`` (one or a few long series).
        val, test: where the validation and test pieces start. A number in ``[0, 1)`` is the
            fraction of the observed sample times given to that piece (counted over the union of
            all series); any other number is a time on the axis; a string or datetime is a date
            (calendar axes only, e.g. ``"1995-01-01"``). ``0`` or ``None`` gives no such piece.

    Returns:
        A dataset with one trajectory per (series, piece), ``split(trajectory)``,
        ``series(trajectory)`` (the original trajectory id), ``time_split(time)`` labels and
        ``attrs["time_split"]`` (JSON: ``val_start``, ``test_start`` on the time axis, and
        ``*_date`` on calendar axes).

    Raises:
        DatasetError: the data is already split or a piece would be empty.
        BadParameterError: boundaries out of order or not understood.
    """
    ds = validate(ds)
    if "sample" in ds["state"].dims:
        raise DatasetError("this dataset holds predictions (it has a 'sample' dim); split observed data")
    if "split" in ds.coords:
        raise DatasetError("the dataset is already split (it has a 'split' coordinate); split_time cuts unsplit "
                           "series. Drop it first: ds.drop_vars('split')")
    observed = observation_mask(ds)
    times = ds["time"].values[observed.any(0)]
    if times.size < 3:
        raise DatasetError(f"split_time needs at least 3 observed times, the data has {times.size}")
    test_start = _boundary(ds, test, times, "test", None)
    val_start = _boundary(ds, val, times, "val", test_start)
    if val_start is not None and test_start is not None and not val_start < test_start:
        raise BadParameterError(f"the validation piece must start before the test piece "
                                f"(val starts at {val_start}, test at {test_start})")
    if not (times < min(s for s in (val_start, test_start, np.inf) if s is not None)).sum() >= 2:
        raise DatasetError("the training piece would hold fewer than 2 samples; give val/test smaller fractions "
                           "or later start times")
    return split_at(ds, val_start, test_start)


def split_at(ds: xr.Dataset, val_start: Optional[float], test_start: Optional[float]) -> xr.Dataset:
    """:func:`split_time` with boundaries given as times on the axis (None: no such piece)."""
    observed = observation_mask(ds)
    labels = split_labels(ds["time"].values, val_start, test_start)
    ordered = [name for name, start in zip(SPLITS, (0.0, val_start, test_start)) if start is not None]
    pieces = []
    for name in ordered:
        inside = labels == name
        piece = ds.copy(deep=True)
        keep = observed & inside[None, :]
        keep_series = keep.any(1)  # a series without samples in this piece contributes no trajectory
        for var in ("state", "derivative"):
            if var in piece:
                piece[var] = piece[var].where(xr.DataArray(keep, dims=("trajectory", "time")))
        piece["mask"] = (("trajectory", "time"), keep, {"long_name": "true where the sample was observed"})
        piece = piece.isel(trajectory=np.flatnonzero(keep_series))
        piece = piece.assign_coords(series=("trajectory", piece["trajectory"].values),
                                    split=("trajectory", np.full(piece.sizes["trajectory"], name)))
        pieces.append(piece)
    out = xr.concat(pieces, dim="trajectory", data_vars="minimal", coords="minimal", compat="override",
                    combine_attrs="override")
    out = out.assign_coords(trajectory=np.arange(out.sizes["trajectory"]),
                            time_split=("time", labels, {"long_name": "piece of the time split at each sample"}))
    out.attrs["time_split"] = json.dumps(_describe(ds, val_start, test_start))
    return validate(out)


def split_labels(times: np.ndarray, val_start: Optional[float], test_start: Optional[float]) -> np.ndarray:
    """The piece (``train``, ``val``, ``test``) each of ``times`` falls in, for pieces starting at
    ``val_start`` and ``test_start`` (None: no such piece)."""
    t = np.asarray(times)
    labels = np.full(t.size, "train", dtype="<U5")
    for name, start in (("val", val_start), ("test", test_start)):
        if start is not None:
            labels[t >= start] = name
    return labels


def label_split(ds: xr.Dataset, val_start: Optional[float], test_start: Optional[float]) -> xr.Dataset:
    """Whole series ``ds`` (no pieces) with a time split recorded, not cut: ``attrs["time_split"]``
    and ``time_split(time)`` labels, as :func:`split_time` records them."""
    out = ds.assign_coords(time_split=("time", split_labels(ds["time"].values, val_start, test_start),
                                       {"long_name": "piece of the time split at each sample"}))
    out.attrs["time_split"] = json.dumps(_describe(ds, val_start, test_start))
    return out


def on_whole_series(ds: xr.Dataset, step: Callable[[xr.Dataset], xr.Dataset]) -> xr.Dataset:
    """``step`` applied to whole series: the pieces of a time split are merged for it and cut again
    at the same boundaries (a step that looks back, such as a delay embedding, then reaches into
    the earlier pieces, never the later ones); data without pieces goes to ``step`` as it is."""
    if "series" not in ds.coords:
        return step(ds)
    info = time_split_info(ds) or {}
    return split_at(step(merge_segments(ds)), info.get("val_start"), info.get("test_start"))


def _boundary(ds: xr.Dataset, value: Boundary, times: np.ndarray, what: str,
              later: Optional[float]) -> Optional[float]:
    """A piece's start on the time axis; a fraction counts back from ``later`` (or the end)."""
    if isinstance(value, (bool, np.bool_)):
        raise BadParameterError(f"{what}={bool(value)} is a boolean, which is neither a fraction, a time nor a date",
                                fix=f"give a fraction in [0, 1) (e.g. {what}=0.1), a time on the axis, a date, or "
                                    f"0/None for no {what} piece")
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()  # messages print 5, not np.int64(5)
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and 0 < value < 1:
        before = times[times < later] if later is not None else times
        n = int(round(float(value) * times.size))
        if n < 1 or n >= before.size:
            where = "" if later is None else f" (counted back from the test piece's start at time {later:g})"
            raise DatasetError(f"{what}={value} gives {n} of {times.size} samples to the {what} piece, leaving "
                               f"{before.size - n} before it{where}",
                               fix="choose another fraction" + ("" if later is None else
                                   ", or check test=: a number of 1 or more is read as a time on the axis"))
        return float(before[before.size - n])
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and value < 0:
        raise BadParameterError(f"{what}={value} is negative; give a fraction in [0, 1), a time or a date")
    start = timeaxis.to_numeric(ds, value, f"{what} start")
    if not times[0] < start <= times[-1]:
        raise DatasetError(f"{what} start {value!r} lies outside the observed times; choose a time inside the data")
    return start


def _describe(ds: xr.Dataset, val_start: Optional[float], test_start: Optional[float]) -> dict:
    out: dict = {"val_start": val_start, "test_start": test_start,
                 "time_units": str(ds["time"].attrs.get("units", "1"))}
    for key, start in (("val_start_date", val_start), ("test_start_date", test_start)):
        dates = timeaxis.to_datetimes(ds, np.array([start])) if start is not None else None
        if dates is not None:
            out[key] = str(np.datetime_as_string(dates[0], unit="s"))
    return out


def time_split_info(ds: xr.Dataset) -> Optional[dict]:
    """The boundaries recorded by :func:`split_time`, or None for data without a time split."""
    raw = ds.attrs.get("time_split")
    return json.loads(raw) if isinstance(raw, str) else raw


def merge_segments(ds: xr.Dataset) -> xr.Dataset:
    """The full series again: pieces of the same ``series`` put back into one trajectory.

    Data without a time split is returned unchanged. The result has no ``split`` and no
    ``time_split(time)`` labels, but keeps ``attrs["time_split"]``: where the pieces started.
    """
    if "series" not in ds.coords:
        return ds
    ids = np.unique(ds["series"].values)
    observed = observation_mask(ds)
    state = ds["state"].values
    merged = np.full((len(ids), ds.sizes["time"], ds.sizes["variable"]), np.nan)
    mask = np.zeros((len(ids), ds.sizes["time"]), dtype=bool)
    for row, sid in enumerate(ids):
        for k in np.flatnonzero(ds["series"].values == sid):
            merged[row][observed[k]] = state[k][observed[k]]
            mask[row] |= observed[k]
    first = [int(np.flatnonzero(ds["series"].values == sid)[0]) for sid in ids]
    out = ds.isel(trajectory=first).drop_vars(["split", "series", "time_split"], errors="ignore")
    out["state"] = (out["state"].dims, merged, ds["state"].attrs)
    out["mask"] = (("trajectory", "time"), mask, {"long_name": "true where the sample was observed"})
    out = out.assign_coords(trajectory=ids)
    if mask.all():
        out = out.drop_vars("mask")
    return out


__all__ = ["label_split", "merge_segments", "on_whole_series", "split_at", "split_labels", "split_time",
           "time_split_info"]
