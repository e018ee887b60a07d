"""Measured data into the schema: CSV (wide or long), and NetCDF/HDF5 written by other tools.

Every import ends in :func:`workbench.data.schema.make_dataset`, so imported data is a dataset like any
other: ``state(trajectory, time, variable)``, a ``mask(trajectory, time)`` where samples are missing,
an ``input(trajectory, time, input_variable)`` for columns with the role ``input``, per-variable
``units``, and a numeric ``time`` axis. Dates become ``<unit> since <origin>`` with a CF calendar
(see :mod:`workbench.data.time`), so ``xarray.decode_cf`` gives them back.

Imported data has no known generating system: its attributes say so (``kind="observed"``,
``system="observed"``, ``integrator="none (measured data)"``, ``source`` the file name).
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import xarray as xr

from . import time as timeaxis
from ..errors import BadParameterError, DatasetError, ResourceLimitError
from ..safety import as_float_array, check_allocation, check_input_file, check_real
from .schema import make_dataset, validate

Source = Union[str, os.PathLike, IO[str], IO[bytes], bytes]
ROLES = ("state", "input", "ignore")
OBSERVED_ATTRS = {"kind": "observed", "system": "observed", "integrator": "none (measured data)"}
TIME_NAMES = ("time", "date", "datetime", "timestamp", "year", "t")
_HEADER_UNITS = re.compile(r"^\s*(.*?)\s*[\[(]\s*([^\])]*?)\s*[\])]\s*$")
_LONG_COLUMNS = ("variable", "value", "units", "unit")
# an inferred regular grid is used only when at least this share of its times has a row: sparser
# data is irregular sampling, not a regular series with gaps (freq= forces a grid)
MIN_OBSERVED_FRACTION = 0.5
# gaps within this fraction of a step from a whole number of steps lie on a numeric grid
GRID_TOLERANCE = 1e-6
IRREGULAR = "irregular"
# more grid times than this are never made (the memory check refuses far fewer; this bounds the arithmetic)
MAX_GRID_TIMES = 2**53
Freq = Union[None, str, float, int]


@dataclass
class Table:
    """Samples as rows, before they are laid on the (trajectory, time) grid."""

    trajectory: np.ndarray                  # per row: index into ``ids``
    ids: np.ndarray                         # trajectory ids (ints)
    time: np.ndarray                        # per row: numeric time
    time_attrs: dict[str, str]
    columns: dict[str, np.ndarray]          # name -> per-row float values (NaN = empty)
    units: dict[str, str] = field(default_factory=dict)
    rows: Optional[np.ndarray] = None       # per row: the source line (for messages)
    names: Optional[np.ndarray] = None      # original trajectory labels when they were not integers
    split: Optional[np.ndarray] = None      # per trajectory
    freq: Freq = None                       # the time grid (see from_csv); None: inferred


def from_csv(source: Source, *, time: Optional[str] = None, trajectory: Optional[str] = None,
             layout: str = "auto", roles: Optional[Mapping[str, str]] = None,
             units: Optional[Mapping[str, str]] = None, variables: Optional[Sequence[str]] = None,
             time_format: Optional[str] = None, time_units: Optional[str] = None, time_unit: Optional[str] = None,
             missing: Sequence[str] = (), name: Optional[str] = None, freq: Freq = None) -> xr.Dataset:
    """A dataset from a CSV file of measurements.

    Layouts:
        * ``wide``: one row per sample, a time column and one column per variable; several series
          stack with a ``trajectory`` column (``trajectory,time,q,p``).
        * ``long`` (tidy): one row per value, with columns ``variable`` and ``value`` (and
          optionally ``trajectory`` and ``units``).
        ``auto`` picks ``long`` when both ``variable`` and ``value`` columns exist.

    Arguments:
        source: a path, an open file, or the CSV as bytes (an upload).
        time: the time column (default: the first of ``time``, ``date``, ``datetime``,
            ``timestamp``, ``year``, ``t`` present, case-insensitive). Numbers stay numbers;
            ISO dates and datetimes become a numeric axis ``<unit> since <origin>``.
        trajectory: the column naming each series (default: ``trajectory`` if present).
        layout: ``auto``, ``wide`` or ``long``.
        roles: per column (or variable) ``state``, ``input`` (exogenous driver) or ``ignore``.
            Numeric columns default to ``state``; text columns must be given a role.
        units: per variable unit strings; overrides units in headers such as ``co2 [ppm]``.
        variables: the state columns (all other columns are ignored unless given a role).
        time_format: a ``strftime`` pattern for non-ISO dates (e.g. ``"%Y%m%d"``); numbers in the
            time column are then read as dates too.
        time_units: the unit of a numeric time column (``"s"``, ``"year"``, or a CF
            ``"days since 2000-01-01"``; see :data:`workbench.data.time.PLAIN_TIME_UNITS`); a header
            such as ``time [s]`` gives it too. Other text (``"fortnight"``) is refused.
        time_unit: for dates, ``days``, ``hours``, ``minutes`` or ``seconds`` (default: from
            the sampling interval).
        missing: extra cell texts that mean "not observed" (e.g. ``["-999", "NA"]``); empty
            cells always do.
        name: a title for the data (default: the file name without suffix).
        freq: the regular time grid the rows belong to: ``"daily"``, ``"weekly"``, ``"monthly"``,
            ``"quarterly"``, ``"annual"`` (or pandas-style ``"D"``, ``"W"``, ``"MS"``, ``"QS"``,
            ``"YS"``) for dates, a number for the step of a numeric axis, or ``"irregular"`` to keep
            only the times that have rows. By default the grid is inferred: dates on one calendar
            grid, or numbers whose gaps are whole multiples of the smallest, when at least half of
            the grid's times have rows. Times of the grid without a row become masked samples
            (``NaN`` in ``state``), so learners for regular data can fit the series with
            ``fill_gaps=True``; ``attrs["time_grid"]`` names the grid. A month grid keeps its axis
            in days (steps of 28-31 days), which the series fit counts as regular.

    Dates may lie anywhere in years 1-9999 (e.g. annual series from 1500): they are converted
    without pandas' nanosecond timestamps (see :mod:`workbench.data.time`).

    Returns:
        The dataset. Samples with an empty state cell are False in ``mask`` (the mask is per
        sample: the other variables of that row are kept in ``state`` but not used); series
        sampled at different times share the union time axis, masked where they have no row.

    Raises:
        DatasetError: naming the column and the line of the file for unreadable cells, duplicate
            samples, an unknown role or a missing column, or one variable in different units.
            BadParameterError: ``roles``/``units`` not a dict, an unknown ``time_units`` or
            ``freq``. ResourceLimitError: when the union time grid would exceed the memory budget.
    """
    roles, units = _mapping(roles, "roles", "{'co2': 'state'}"), _mapping(units, "units", "{'co2': 'ppm'}")
    if isinstance(variables, str):
        raise BadParameterError(f"variables={variables!r} is a string", fix=f"give a list: variables=[{variables!r}]")
    time_units = timeaxis.check_time_units(time_units)
    freq = _check_freq(freq)
    label, frame = _read_csv(source, missing)
    frame, header_units = _units_from_headers(frame, label)
    time, trajectory, layout = _locate_columns(frame, time, trajectory, layout, label)
    table, roles = _csv_table(frame, label, time, trajectory, layout, header_units, roles, units, variables,
                              time_format=time_format, time_units=time_units, time_unit=time_unit, freq=freq)
    attrs = {**OBSERVED_ATTRS, "title": name or Path(label).stem, "source": label, "generator": "workbench.from_csv"}
    return build(table, roles, attrs, label)


def _locate_columns(frame: pd.DataFrame, time: Optional[str], trajectory: Optional[str], layout: str,
                    label: str) -> tuple[str, Optional[str], str]:
    """The time column, the trajectory column (``None``: one series) and the layout (``auto``
    resolved) of a CSV frame, as :func:`from_csv` documents their defaults.

    Raises:
        DatasetError: a named or default column that the file does not have.
        BadParameterError: an unknown layout.
    """
    time = time or _find_column(frame, TIME_NAMES)
    if time is None or time not in frame.columns:
        raise DatasetError(f"{label}: no time column {time or ''!r} among {list(frame.columns)}; "
                           "name it with time='<column>'")
    trajectory = trajectory if trajectory is not None else ("trajectory" if "trajectory" in frame.columns else None)
    if trajectory is not None and trajectory not in frame.columns:
        raise DatasetError(f"{label}: no trajectory column {trajectory!r} among {list(frame.columns)}")
    if layout == "auto":
        layout = "long" if {"variable", "value"} <= set(frame.columns) else "wide"
    if layout not in ("wide", "long"):
        raise BadParameterError(f"layout must be 'auto', 'wide' or 'long', got {layout!r}")
    return time, trajectory, layout


def _csv_table(frame: pd.DataFrame, label: str, time: str, trajectory: Optional[str], layout: str,
               header_units: dict[str, str], roles: Mapping[str, str], units: Mapping[str, str],
               variables: Optional[Sequence[str]], *, time_format: Optional[str], time_units: Optional[str],
               time_unit: Optional[str], freq: Freq) -> tuple[Table, dict[str, str]]:
    """The rows of a CSV frame as a :class:`Table`, and every column's resolved role; the
    arguments are :func:`from_csv`'s after :func:`_locate_columns` and :func:`_units_from_headers`."""
    lines = np.arange(len(frame)) + 2  # header is line 1
    if time_units is None and time in header_units:
        time_units = timeaxis.check_time_units(header_units.pop(time), f"the unit in the header of column {time!r}")
    time_values, time_attrs = _parse_time(frame[time], lines, label, time, time_format, time_units, time_unit)
    ids, names, traj_index = _parse_trajectories(frame, trajectory, lines, label)
    if layout == "long":
        frame, lines, header_units = _pivot_long(frame, time, trajectory, time_values, traj_index, lines, label,
                                                 header_units)
        time_values = frame.pop("__time").to_numpy()
        traj_index = frame.pop("__traj").to_numpy()
    reserved = {time, trajectory, "split"} - {None}
    if layout == "long":
        reserved |= set(_LONG_COLUMNS)
    roles = _resolve_roles(frame, reserved, roles, variables, label)
    _check_units_columns(units, frame, reserved, label)
    columns = {c: _parse_numbers(frame[c], lines, label, c) for c, r in roles.items() if r != "ignore"}
    split = _parse_split(frame, traj_index, len(ids), lines, label) if "split" in frame.columns else None
    table = Table(trajectory=traj_index, ids=ids, time=time_values, time_attrs=time_attrs, columns=columns,
                  units={**header_units, **units}, rows=lines, names=names, split=split, freq=freq)
    return table, roles


def _mapping(value: Any, name: str, example: str) -> dict[str, str]:
    """``value`` (a dict of column -> text, or None) as a dict; anything else is refused by name."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadParameterError(f"{name}={value!r} is not a dict of column -> text",
                                fix=f"give one entry per column, e.g. {name}={example}, or leave {name} out")
    return dict(value)


def _check_freq(freq: Freq) -> Freq:
    """``freq`` as a calendar grid name, ``"irregular"``, a positive step, or None (inferred)."""
    if freq is None or isinstance(freq, str) and freq.strip().lower() == IRREGULAR:
        return None if freq is None else IRREGULAR
    if isinstance(freq, str):
        name = timeaxis.grid_name(freq)
        if name is None:
            raise BadParameterError(f"freq={freq!r} is not a time grid",
                                    fix=f"use one of {', '.join(timeaxis.GRIDS)}, a number (the step of a numeric "
                                        f"time axis) or {IRREGULAR!r}")
        return name
    return check_real(freq, "freq", low=0.0, low_open=True)


def _check_units_columns(units: Mapping[str, str], frame: pd.DataFrame, reserved: set, label: str) -> None:
    """``units`` may name data columns only, like ``roles``; the time axis has ``time_units``."""
    for column, unit in units.items():
        if not isinstance(unit, str):
            raise BadParameterError(f"units[{column!r}]={unit!r} is not a unit string", fix="write e.g. 'm' or '1'")
        if column in reserved:
            raise DatasetError(f"{label}: units name column {column!r}, which is not a data column",
                               fix="give the time axis its unit with time_units=..., and units only to variables")
        if column not in frame.columns:
            raise DatasetError(f"{label}: units name column {column!r}, which is not in the file "
                               f"{[c for c in frame.columns if not str(c).startswith('__')]}",
                               fix="check the spelling, or drop the entry")


def _units_from_headers(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The frame with headers such as ``co2 [ppm]`` renamed ``co2``, and the units read from them."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    header_units, renamed = {}, {}
    for column in frame.columns:
        match = _HEADER_UNITS.match(column)
        if match and match.group(1):
            renamed[column] = match.group(1)
            header_units[match.group(1)] = match.group(2)
    frame = frame.rename(columns=renamed)
    if len(set(frame.columns)) != len(frame.columns):
        raise DatasetError(f"{label}: column names repeat once units are read from the headers: {list(frame.columns)}")
    return frame, header_units


def csv_columns(source: Source, missing: Sequence[str] = ()) -> list[dict[str, Any]]:
    """What :func:`from_csv` would see in each column, for a form that asks for roles.

    Returns one dict per column: ``name`` (units stripped), ``units`` (from the header or None),
    ``numeric`` (every non-empty cell is a number), ``empty`` (count of empty cells), ``guess``
    (``"time"``, ``"trajectory"``, ``"state"`` or ``"ignore"`` for text columns) and ``example``
    (the first non-empty cell).
    """
    label, frame = _read_csv(source, missing)
    names = []
    for column in frame.columns:
        match = _HEADER_UNITS.match(str(column).strip())
        names.append((match.group(1), match.group(2)) if match and match.group(1) else (str(column).strip(), None))
    time = _find_column(pd.DataFrame(columns=[n for n, _ in names]), TIME_NAMES)
    out = []
    for (name, unit), column in zip(names, frame.columns):
        cells = frame[column]
        numeric = bool(pd.to_numeric(cells.dropna(), errors="coerce").notna().all())
        guess = ("time" if name == time else "trajectory" if name == "trajectory" else
                 "state" if numeric else "ignore")
        first = cells.dropna()
        out.append({"name": name, "units": unit, "numeric": numeric, "empty": int(cells.isna().sum()),
                    "guess": guess, "example": str(first.iloc[0]) if len(first) else ""})
    return out


def from_netcdf(source: Union[str, os.PathLike, xr.Dataset], *, variables: Optional[Sequence[str]] = None,
                inputs: Sequence[str] = (), time: Optional[str] = None, trajectory: Optional[str] = None,
                units: Optional[Mapping[str, str]] = None, name: Optional[str] = None, freq: Freq = None,
                ) -> xr.Dataset:
    """A dataset from a NetCDF/HDF5 file written by another tool (or an open ``xarray.Dataset``).

    The file must have a time dimension. Each chosen data variable with dims ``(time,)`` becomes one
    state variable of a single series; variables with dims ``(time, X)`` make ``X`` the trajectory
    dimension (stations, members...). Fill values (CF ``_FillValue``/``missing_value``) become
    masked samples; CF time units (``hours since 1900-01-01``) are kept, so dates survive. A file
    already in the workbench schema is returned as :func:`workbench.load` would.

    Arguments:
        source: path of a netCDF-4/HDF5 (or netCDF-3) file, or an ``xarray.Dataset``.
        variables: state variables (default: every numeric variable on the time dimension).
        inputs: variables to keep as exogenous inputs.
        time: the time dimension (default ``time``, or the dimension of a coordinate with
            ``standard_name="time"`` or ``axis="T"``).
        trajectory: the second dimension, when variables have one.
        units: per variable units, overriding the file's ``units`` attributes.
        name: a title (default: the file name).
        freq: the regular time grid, as in :func:`from_csv` (default: inferred).

    Returns:
        The dataset in the workbench schema.

    Raises:
        DatasetError: no time dimension, a variable of the wrong shape, units for a variable not
            imported, or a time axis whose calendar is not a Gregorian CF calendar (``"martian"``,
            ``"360_day"``).
    """

    units, freq = _mapping(units, "units", "{'sst': 'degC'}"), _check_freq(freq)
    label = name or (Path(source).stem if not isinstance(source, xr.Dataset) else
                     str(source.attrs.get("title", "dataset")))
    opened = source if isinstance(source, xr.Dataset) else _open_netcdf(source)
    if "state" in opened.data_vars:
        return validate(opened, source=label)
    time = time or _time_dim(opened, label)
    chosen = list(variables) if variables is not None else [
        v for v, var in opened.data_vars.items()
        if time in var.dims and var.ndim <= 2 and np.issubdtype(var.dtype, np.number) and v not in inputs]
    if not chosen:
        raise DatasetError(f"{label}: no numeric variable along {time!r}; name the state variables with variables=[...]")
    picked, trajectory = _pick_variables(opened, [*chosen, *inputs], time, trajectory, label)
    missing_units = sorted(set(units) - set(picked))
    if missing_units:
        raise DatasetError(f"{label}: units name {missing_units}, which are not imported variables "
                           f"({sorted(picked)})", fix="check the spelling, or drop those entries")
    time_values, time_attrs = _netcdf_time(opened[time], label)
    n_traj = opened.sizes[trajectory] if trajectory else 1
    n_time = len(time_values)
    traj_index = np.repeat(np.arange(n_traj), n_time)
    columns = {}
    for v, var in picked.items():
        values = np.broadcast_to(np.asarray(var.values, dtype=np.float64).reshape(-1, n_time) if var.ndim == 2
                                 else np.asarray(var.values, dtype=np.float64)[None], (n_traj, n_time))
        columns[v] = values.reshape(-1)
    file_units = {v: str(var.attrs["units"]) for v, var in picked.items() if "units" in var.attrs}
    roles = {**{v: "state" for v in chosen}, **{v: "input" for v in inputs}}
    ids = np.arange(n_traj)
    names = np.asarray(opened[trajectory].values).astype(str) if trajectory and trajectory in opened.coords else None
    table = Table(trajectory=traj_index, ids=ids, time=np.tile(time_values, n_traj), time_attrs=time_attrs,
                  columns=columns, units={**file_units, **units}, names=names, freq=freq)
    attrs = {**OBSERVED_ATTRS, "title": str(opened.attrs.get("title", label)),
             "source": label if isinstance(source, xr.Dataset) else Path(source).name,
             "generator": "workbench.from_netcdf"}
    return build(table, roles, attrs, label)


def _pick_variables(opened: xr.Dataset, wanted: Sequence[str], time: str, trajectory: Optional[str],
                    label: str) -> tuple[dict[str, xr.DataArray], Optional[str]]:
    """The variables ``wanted`` laid out as ``(trajectory, time)`` or ``(time,)``, and the trajectory
    dimension (the one given, else the first second dimension met; ``None``: one series).

    Raises:
        DatasetError: a variable the file does not have, or one with other dimensions.
    """
    picked = {}
    for v in wanted:
        if v not in opened.data_vars:
            raise DatasetError(f"{label}: no variable {v!r}; it has {sorted(map(str, opened.data_vars))}")
        var = opened[v]
        other = [d for d in var.dims if d != time]
        if time not in var.dims or len(other) > 1 or (trajectory and other and other[0] != trajectory):
            raise DatasetError(f"{label}: variable {v!r} has dims {var.dims}; a series needs ({time!r},) or "
                               f"({time!r}, <trajectory dim>). Select a point first, e.g. ds.sel(lat=..., lon=...)")
        trajectory = trajectory or (other[0] if other else None)
        picked[v] = var.transpose(*(d for d in (trajectory, time) if d in var.dims))
    return picked, trajectory


def _netcdf_time(raw_time: xr.DataArray, label: str) -> tuple[np.ndarray, dict[str, str]]:
    """A file's time coordinate as numbers and their CF ``units``/``calendar`` attributes.

    Raises:
        DatasetError: a calendar that is not Gregorian, or ``months``/``years since`` units.
    """
    timeaxis.check_calendar(raw_time.attrs.get("calendar"), label)
    if np.issubdtype(raw_time.dtype, np.datetime64):
        return timeaxis.encode(pd.DatetimeIndex(raw_time.values))
    time_attrs = {k: str(raw_time.attrs[k]) for k in ("units", "calendar") if k in raw_time.attrs}
    timeaxis.parse_units(time_attrs.get("units"))  # refuse months/years since
    return np.asarray(raw_time.values, dtype=np.float64), time_attrs


# --- shared assembly ----------------------------------------------------------------------------

def build(table: Table, roles: Mapping[str, str], attrs: Mapping[str, Any], label: str) -> xr.Dataset:
    """Lay the rows of ``table`` on the union (trajectory, time) grid and make the dataset.

    The grid's size is checked against the memory budget before anything is allocated.
    """

    state_names = [c for c, r in roles.items() if r == "state"]
    input_names = [c for c, r in roles.items() if r == "input"]
    if not state_names:
        raise DatasetError(f"{label}: no state column; give at least one column the role 'state'")
    if not np.isfinite(table.time).all():
        raise DatasetError(f"{label}: the time axis holds non-finite values")
    _refuse_duplicates(table, label)
    n_traj, n_columns = len(table.ids), len(state_names) + len(input_names)
    times, grid = _time_grid(np.unique(table.time), table, n_traj * (n_columns + 1) * 8, label)
    check_allocation(n_traj * len(times) * (n_columns + 1) * 8,
                     f"{label}: {n_traj} series on a union grid of {len(times)} times x {n_columns} columns")
    col = np.searchsorted(times, table.time)
    state = np.full((n_traj, len(times), len(state_names)), np.nan)
    state[table.trajectory, col] = np.stack([table.columns[c] for c in state_names], axis=-1)
    mask = np.zeros((n_traj, len(times)), dtype=bool)
    mask[table.trajectory, col] = np.isfinite(state[table.trajectory, col]).all(-1)
    if not mask.any(1).all():
        empty = int(np.flatnonzero(~mask.any(1))[0])
        raise DatasetError(f"{label}: series {table.names[empty] if table.names is not None else table.ids[empty]!r} "
                           "has no complete sample; every series needs at least one row with all state values")
    per_trajectory = {"trajectory_name": table.names} if table.names is not None else None
    inputs = _inputs_on_grid(table, input_names, times, col, label) if input_names else None
    ds = make_dataset(state, times, state_names, units=[table.units.get(c, "1") for c in state_names],
                      time_units=table.time_attrs.get("units", "1"), trajectory=table.ids,
                      mask=None if mask.all() else mask, per_trajectory=per_trajectory, split=table.split,
                      inputs=inputs, input_names=input_names or None,
                      input_units=[table.units.get(c, "1") for c in input_names] if input_names else None,
                      attrs={**attrs, "missing_samples": int((~mask).sum()), "time_grid": grid,
                             "grid_times_added": int(len(times) - np.unique(table.time).size) if grid else None})
    if "calendar" in table.time_attrs:
        ds["time"].attrs["calendar"] = table.time_attrs["calendar"]
        ds.attrs["time_origin"] = str(timeaxis.parse_units(table.time_attrs["units"])[1].isoformat())
    return ds


def _time_grid(times: np.ndarray, table: Table, bytes_per_time: int, label: str) -> tuple[np.ndarray, Optional[str]]:
    """The time axis: the distinct row times, completed to their regular grid where there is one.

    Arguments:
        times: the sorted distinct times of the rows.
        table: the rows (its ``freq`` and ``time_attrs`` decide the grid).
        bytes_per_time: memory one more time of the grid costs (checked before the grid is made).

    Returns:
        The axis, and the grid's name (``"monthly"``, ``"step 0.5"``) or None when irregular.
    """
    freq = table.freq
    units = table.time_attrs.get("units")
    dates = timeaxis.decode(times, units) if times.size else None
    if freq == IRREGULAR or (freq is None and times.size < 3):
        return times, None
    if isinstance(freq, str) and dates is None:
        raise BadParameterError(f"freq={freq!r} is a calendar grid, but the time column of {label} holds numbers "
                                f"(units {units or '1'!r})",
                                fix="give the step as a number (e.g. freq=1.0), or write dates in the time column")
    name = freq if isinstance(freq, str) else timeaxis.infer_grid(dates) if dates is not None and freq is None else None
    step = None if name else freq if freq is not None else _numeric_step(times)
    if name is None and step is None:
        return times, None
    count = timeaxis.grid_size(dates, name) if name else _step_count(times[-1] - times[0], step)
    if freq is None and count * MIN_OBSERVED_FRACTION > times.size:
        return times, None  # too sparse for gaps in a regular series: keep the irregular axis
    try:
        check_allocation(count * bytes_per_time, f"{label}: a time grid of {count} times (freq {name or f'{step:g}'})")
    except ResourceLimitError:
        if freq is not None:
            raise
        return times, None  # an inferred grid is a convenience: the observed axis is checked by the caller
    grid = (timeaxis.offsets(timeaxis.calendar_grid(dates, name), units) if name
            else times[0] + np.arange(count) * step)
    right = np.clip(np.searchsorted(grid, times), 0, count - 1)
    left = np.maximum(right - 1, 0)
    index = np.where(np.abs(grid[left] - times) < np.abs(grid[right] - times), left, right)
    spacing = float(np.min(np.diff(grid))) if count > 1 else 1.0
    off = np.abs(grid[index] - times) > GRID_TOLERANCE * spacing
    if off.any():
        where = dates[np.flatnonzero(off)[0]] if dates is not None else times[np.flatnonzero(off)[0]]
        raise DatasetError(f"{label}: time {where} is not on the {name or f'step {step:g}'} grid that starts at "
                           f"{dates[0] if dates is not None else times[0]}",
                           fix="give the grid the rows lie on with freq=..., or freq='irregular' to keep the times "
                               "as they are")
    grid[index] = times  # observed times stay bit for bit what the file says
    return grid, name or f"step {float(step):g}"


def _step_count(span: float, step: float) -> int:
    """Times of a grid of ``step`` over ``span`` (capped at :data:`MAX_GRID_TIMES`, so a tiny step cannot overflow)."""
    with np.errstate(over="ignore"):
        steps = span / step
    return int(round(steps)) + 1 if steps < MAX_GRID_TIMES else MAX_GRID_TIMES


def _numeric_step(times: np.ndarray) -> Optional[float]:
    """The smallest gap when every gap is a whole number of it (a regular grid with gaps), else None."""
    gaps = np.diff(times)
    step = float(gaps.min())
    with np.errstate(over="ignore", invalid="ignore"):  # a subnormal step overflows: then it is no grid
        ratio = gaps / step
        return step if np.all(np.abs(ratio - np.round(ratio)) <= GRID_TOLERANCE * ratio) else None


def _inputs_on_grid(table: Table, names: list[str], times: np.ndarray, col: np.ndarray, label: str) -> np.ndarray:
    """Inputs on the union grid: each series' own rows, linearly interpolated where it has none.

    An empty input cell in a row is an error: a driver must be known wherever the state is.
    """
    for c in names:
        bad = ~np.isfinite(table.columns[c])
        if bad.any():
            where = f" (line {table.rows[np.flatnonzero(bad)[0]]})" if table.rows is not None else ""
            raise DatasetError(f"{label}: input column {c!r} is empty{where}; inputs must be known at every sample. "
                               "Fill the gap, or give the column the role 'state' or 'ignore'")
    values = np.empty((len(table.ids), len(times), len(names)))
    for k in range(len(table.ids)):
        rows = np.flatnonzero(table.trajectory == k)
        rows = rows[np.argsort(table.time[rows])]
        for j, c in enumerate(names):
            values[k, :, j] = np.interp(times, times[col[rows]], table.columns[c][rows])
    return values


def _refuse_duplicates(table: Table, label: str) -> None:
    key = pd.DataFrame({"t": table.trajectory, "time": table.time})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        first = np.flatnonzero(dup)[:2]
        where = (f"lines {table.rows[first[0]]} and {table.rows[first[1]]}" if table.rows is not None
                 else f"time {table.time[first[0]]}")
        raise DatasetError(f"{label}: two rows for the same series and time ({where}); keep one row per sample")


# --- CSV parsing --------------------------------------------------------------------------------

def _read_csv(source: Source, missing: Sequence[str]) -> tuple[str, pd.DataFrame]:
    if isinstance(source, (bytes, bytearray)):
        label, handle = "upload", io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        label, handle = str(getattr(source, "name", "upload")), source
    else:
        path = check_input_file(source, "CSV file")
        label, handle = path.name, path
    try:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DatasetError(f"could not read {label} as CSV ({exc})",
                           fix="give a comma-separated file with a header row and at least one data row") from None
    if frame.empty:
        raise DatasetError(f"{label} has no data rows")
    blanks = {"", *map(str, missing)}
    frame = frame.apply(lambda s: s.str.strip()).mask(frame.apply(lambda s: s.str.strip().isin(blanks)))
    return Path(label).name, frame


def _find_column(frame: pd.DataFrame, candidates: Sequence[str]) -> Optional[str]:
    lower = {str(c).lower(): c for c in frame.columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _parse_numbers(column: pd.Series, lines: np.ndarray, label: str, name: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & column.notna().to_numpy()
    bad |= np.isinf(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{label}: column {name!r}, line {lines[i]}: {column.iloc[i]!r} is not a number",
                           fix="leave missing values empty (or list their text in missing=[...]), or give the column "
                               "the role 'ignore'")
    return values


def _parse_time(column: pd.Series, lines: np.ndarray, label: str, name: str, time_format: Optional[str],
                time_units: Optional[str], time_unit: Optional[str]) -> tuple[np.ndarray, dict[str, str]]:
    """Numeric times and their attrs: numbers as they are, dates as offsets from a calendar origin."""
    empty = column.isna().to_numpy()
    if empty.any():
        raise DatasetError(f"{label}: column {name!r}, line {lines[np.flatnonzero(empty)[0]]}: the time is empty; "
                           "every row needs a time")
    numbers = pd.to_numeric(column, errors="coerce")
    if time_format is None and numbers.notna().all():
        attrs = {"units": time_units or "1"}
        if timeaxis.parse_units(time_units) is not None:
            attrs["calendar"] = timeaxis.CALENDAR
        values = numbers.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DatasetError(f"{label}: column {name!r}, line {lines[np.flatnonzero(~np.isfinite(values))[0]]}: "
                               "the time is not finite")
        return values, attrs
    dates = pd.to_datetime(column, format=time_format or "ISO8601", errors="coerce", utc=True)
    bad = dates.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        hint = (f"it does not match time_format={time_format!r}" if time_format else
                "write ISO dates such as 1958-03-29 or 1958-03-29T12:00, or pass time_format='%d/%m/%Y'")
        raise DatasetError(f"{label}: column {name!r}, line {lines[i]}: cannot read {column.iloc[i]!r} as a time; {hint}")
    return timeaxis.encode(pd.DatetimeIndex(dates.dt.tz_convert(None)), time_unit)


def _parse_trajectories(frame: pd.DataFrame, column: Optional[str], lines: np.ndarray,
                        label: str) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Trajectory ids, their text labels when not integers, and each row's index into the ids."""
    if column is None:
        return np.array([0]), None, np.zeros(len(frame), dtype=np.int64)
    raw = frame[column]
    if raw.isna().any():
        raise DatasetError(f"{label}: column {column!r}, line {lines[np.flatnonzero(raw.isna().to_numpy())[0]]}: "
                           "the series label is empty")
    numbers = pd.to_numeric(raw, errors="coerce")
    if numbers.notna().all() and (numbers == numbers.round()).all():
        ids, index = np.unique(numbers.to_numpy(dtype=np.int64), return_inverse=True)
        return ids, None, index
    names, index = np.unique(raw.to_numpy(dtype=str), return_inverse=True)
    return np.arange(len(names)), names, index


def _pivot_long(frame: pd.DataFrame, time: str, trajectory: Optional[str], time_values: np.ndarray,
                traj_index: np.ndarray, lines: np.ndarray, label: str,
                header_units: dict[str, str]) -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    """Tidy rows (``variable``, ``value``) to one row per (series, time)."""
    if frame["variable"].isna().any():
        raise DatasetError(f"{label}: column 'variable', line {lines[np.flatnonzero(frame['variable'].isna().to_numpy())[0]]}"
                           ": the variable name is empty")
    tidy = pd.DataFrame({"__traj": traj_index, "__time": time_values, "variable": frame["variable"].to_numpy(),
                         "value": frame["value"].to_numpy(), "__line": lines})
    dup = tidy.duplicated(["__traj", "__time", "variable"], keep=False).to_numpy()
    if dup.any():
        a, b = lines[np.flatnonzero(dup)[:2]]
        raise DatasetError(f"{label}: lines {a} and {b} give the same variable at the same time; keep one value")
    unit_column = next((c for c in ("units", "unit") if c in frame.columns), None)
    units = dict(header_units)
    if unit_column:
        units.update(_long_units(frame, unit_column, lines, label))
    wide = tidy.pivot(index=["__traj", "__time"], columns="variable", values="value")
    first_line = tidy.groupby(["__traj", "__time"])["__line"].min().reindex(wide.index).to_numpy()
    wide.columns = [str(c) for c in wide.columns]
    wide = wide.reset_index()
    if "split" in frame.columns:
        split = pd.DataFrame({"__traj": traj_index, "split": frame["split"].to_numpy()}).groupby("__traj")["split"].first()
        wide["split"] = split.reindex(wide["__traj"]).to_numpy()
    return wide, first_line, units


def _long_units(frame: pd.DataFrame, unit_column: str, lines: np.ndarray, label: str) -> dict[str, str]:
    """Each variable's one unit in a long file; a variable given in two units is refused.

    Converting between units (m and km) needs a units library and a rule the user did not state, so
    mixed rows are refused rather than stored as if they had one unit.
    """
    units = {}
    for var, cells in frame.groupby("variable")[unit_column]:
        given = cells.dropna()
        kinds = pd.unique(given)
        if len(kinds) > 1:
            first = lines[np.flatnonzero((frame["variable"] == var).to_numpy() & (frame[unit_column] == kinds[0]).to_numpy())[0]]
            other = lines[np.flatnonzero((frame["variable"] == var).to_numpy() & (frame[unit_column] == kinds[1]).to_numpy())[0]]
            raise DatasetError(f"{label}: variable {var!r} is given in {kinds[0]!r} (line {int(first)}) and in "
                               f"{kinds[1]!r} (line {int(other)}); one variable needs one unit",
                               fix="convert those rows to one unit before importing (or name them as different "
                                   "variables)")
        if len(kinds):
            units[str(var)] = str(kinds[0])
    return units


def _resolve_roles(frame: pd.DataFrame, reserved: set, roles: Optional[Mapping[str, str]],
                   variables: Optional[Sequence[str]], label: str) -> dict[str, str]:
    """Each remaining column's role; text columns without a role are refused by name."""
    roles = dict(roles or {})
    for column, role in roles.items():
        if role not in ROLES:
            raise DatasetError(f"{label}: role {role!r} for column {column!r} is not one of {ROLES}")
        if column in reserved:
            raise DatasetError(f"{label}: roles name column {column!r}, which the import reads as the time, series "
                               "or split column, not as data",
                               fix="roles apply to data columns; to use another time column pass time='<column>', "
                                   "to read a series column as data pass trajectory='<other column>'")
        if column not in frame.columns:
            raise DatasetError(f"{label}: roles name column {column!r}, which is not in the file {list(frame.columns)}")
    for column in variables or ():
        if column not in frame.columns:
            raise DatasetError(f"{label}: variables name column {column!r}, which is not in the file {list(frame.columns)}")
    resolved = {}
    for column in frame.columns:
        if column in reserved or str(column).startswith("__"):
            continue
        if column in roles:
            resolved[column] = roles[column]
        elif variables is not None:
            resolved[column] = "state" if column in variables else "ignore"
        else:
            resolved[column] = "state"
    return resolved


def _parse_split(frame: pd.DataFrame, traj_index: np.ndarray, n: int, lines: np.ndarray, label: str) -> np.ndarray:
    split = pd.DataFrame({"t": traj_index, "split": frame["split"].to_numpy()})
    counts = split.groupby("t")["split"].nunique(dropna=False)
    if (counts > 1).any():
        raise DatasetError(f"{label}: column 'split' changes within series {int(counts.idxmax())}; a CSV split is "
                           "per series (use workbench.split_time to split one series in time)")
    return split.groupby("t")["split"].first().reindex(range(n)).astype(str).to_numpy()


# --- NetCDF -------------------------------------------------------------------------------------

def _open_netcdf(path: Union[str, os.PathLike]) -> xr.Dataset:
    import h5py

    from .io import check_hdf5_safety

    path = check_input_file(path, "NetCDF/HDF5 file")
    engine = "h5netcdf" if h5py.is_hdf5(path) else "scipy"
    if engine == "h5netcdf":
        check_hdf5_safety(path)
    try:
        extra = {"phony_dims": "sort"} if engine == "h5netcdf" else {}
        with xr.open_dataset(path, engine=engine, decode_times=False, **extra) as opened:
            for key, v in opened.variables.items():
                check_allocation(v.size * max(v.dtype.itemsize, 8), f"{path.name}: variable {key!r} {v.shape}")
            return opened.load()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} could not be read as NetCDF ({exc})") from None


def _time_dim(ds: xr.Dataset, label: str) -> str:
    if "time" in ds.dims:
        return "time"
    for name, coord in ds.coords.items():
        if coord.ndim == 1 and (coord.attrs.get("standard_name") == "time" or coord.attrs.get("axis") == "T"):
            return str(coord.dims[0])
    raise DatasetError(f"{label}: no time dimension (dims {dict(ds.sizes)}); name it with time='<dim>'")


__all__ = ["build", "csv_columns", "from_csv", "from_netcdf", "from_numpy"]


def from_numpy(states: np.ndarray, times: Sequence[float], variables: Optional[Sequence[str]] = None,
               **kwargs: Any) -> xr.Dataset:
    """A dataset from an array of shape ``(trajectory, time, variable)`` (or ``(time, variable)``).

    ``kwargs`` go to :func:`make_dataset` (``units``, ``mask``, ``split``, ``attrs``...).
    """
    states, times = as_float_array(states, "states", DatasetError), as_float_array(times, "times", DatasetError)
    if states.ndim == 2:
        states = states[None]
    if states.ndim != 3:
        raise DatasetError(f"states must have shape (trajectory, time, variable), got {states.shape}")
    if times.ndim != 1 or len(times) != states.shape[1]:
        raise DatasetError(f"times of shape {times.shape} given for {states.shape[1]} samples per trajectory")
    if variables is not None and (isinstance(variables, str) or not isinstance(variables, Sequence)
                                  or not all(isinstance(v, str) for v in variables)):
        raise DatasetError(f"variables must be a list of names, one per state column, got {variables!r}")
    variables = list(variables) if variables is not None else [f"x{i}" for i in range(states.shape[2])]
    if len(variables) != states.shape[2]:
        raise DatasetError(f"{len(variables)} variable names given for {states.shape[2]} state columns")
    attrs = {"generator": "workbench.from_numpy", **kwargs.pop("attrs", {})}
    return make_dataset(states, times, variables, attrs=attrs, **kwargs)
