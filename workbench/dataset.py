"""The one dataset schema (truth, imports, predictions), its validation, and HDF5/CSV/NumPy I/O.

Schema (see ``shared/DESIGN.md``): data variable ``state`` with dims
``("trajectory", "time", "variable")`` (predictions add a leading ``"sample"``), coords ``time``,
``variable``, ``trajectory``, optional ``split(trajectory)``, ``param_<name>(trajectory)``,
``mask(trajectory, time)`` and a ``derivative`` variable shaped like ``state``. Dict-valued
attributes are stored as JSON strings because HDF5 attributes cannot hold dicts or booleans.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import h5py
import numpy as np
import xarray as xr

from .errors import DatasetError

PathLike = Union[str, os.PathLike]
STATE_DIMS = ("trajectory", "time", "variable")
SPLITS = ("train", "val", "test")
CONVENTIONS = "CF-1.8"


def version() -> str:
    from . import __version__
    return __version__


def make_dataset(state: np.ndarray, times: Sequence[float], variables: Sequence[str], *,
                 units: Optional[Sequence[str]] = None, time_units: str = "1",
                 trajectory: Optional[Sequence[int]] = None, mask: Optional[np.ndarray] = None,
                 derivative: Optional[np.ndarray] = None,
                 per_trajectory: Optional[Mapping[str, np.ndarray]] = None,
                 split: Optional[Sequence[str]] = None, attrs: Optional[Mapping[str, Any]] = None,
                 ) -> xr.Dataset:
    """Build a dataset in the workbench schema.

    Arguments:
        state: shape ``(trajectory, time, variable)`` or ``(sample, trajectory, time, variable)``.
        times: the shared time axis.
        variables: one name per state variable.
        units: one unit string per variable (``"1"`` if dimensionless or unknown).
        time_units: unit of the time axis.
        trajectory: integer ids (default ``0..n-1``).
        mask: ``(trajectory, time)`` booleans, ``True`` where a sample was observed.
        derivative: the true vector field at the samples, shaped like ``state``.
        per_trajectory: extra ``(trajectory,)`` coordinates, e.g. ``{"param_rho": ...}``.
        split: ``train``/``val``/``test`` per trajectory.
        attrs: global attributes; dicts/lists/bools are stored as JSON strings.

    Returns:
        The dataset, validated.
    """
    state = np.asarray(state)
    dims = STATE_DIMS if state.ndim == 3 else ("sample",) + STATE_DIMS
    n_traj = state.shape[-3]
    coords: dict[str, Any] = {
        "time": ("time", np.asarray(times, dtype=np.float64),
                 {"units": time_units, "standard_name": "time", "long_name": "time"}),
        "variable": ("variable", np.asarray(list(variables), dtype=str)),
        "trajectory": ("trajectory", np.arange(n_traj) if trajectory is None else np.asarray(trajectory)),
    }
    if units is not None:
        coords["units"] = ("variable", np.asarray(list(units), dtype=str))
    if state.ndim == 4:
        coords["sample"] = ("sample", np.arange(state.shape[0]))
    for name, values in (per_trajectory or {}).items():
        coords[name] = ("trajectory", np.asarray(values))
    if split is not None:
        coords["split"] = ("trajectory", np.asarray(list(split), dtype=str))
    data_vars: dict[str, Any] = {"state": (dims, state, {"long_name": "system state"})}
    if mask is not None:
        data_vars["mask"] = (("trajectory", "time"), np.asarray(mask, dtype=bool),
                             {"long_name": "true where the sample was observed"})
    if derivative is not None:
        data_vars["derivative"] = (dims, np.asarray(derivative),
                                   {"long_name": "true vector field (drift) at the samples"})
    base = {"Conventions": CONVENTIONS, "workbench_version": version()}
    ds = xr.Dataset(data_vars, coords=coords, attrs={**base, **encode_attrs(attrs or {})})
    return validate(ds)


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes HDF5 can hold: numbers and strings as they are, everything else as JSON."""
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_, dict, list, tuple)):
            out[key] = json.dumps(value if not isinstance(value, np.bool_) else bool(value))
        elif isinstance(value, (int, float, str, np.integer, np.floating)):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def json_attr(ds: xr.Dataset, key: str, default: Any = None) -> Any:
    """Decode a JSON-string attribute (e.g. ``params``); ``default`` when absent."""
    raw = ds.attrs.get(key)
    if raw is None:
        return default
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise DatasetError(f"attribute {key!r} should hold JSON, got {raw!r}; rewrite the file with workbench.save") from None


def validate(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """Check ``ds`` against the schema and return it; raise :class:`DatasetError` naming each problem."""
    if not isinstance(ds, xr.Dataset):
        raise DatasetError(f"{source}: expected an xarray.Dataset, got {type(ds).__name__}")
    if "state" not in ds.data_vars:
        raise DatasetError(f"{source}: no data variable 'state'; a workbench dataset stores its trajectories "
                           f"in 'state' with dims {STATE_DIMS} (found: {sorted(ds.data_vars) or 'none'})")
    state = ds["state"]
    if state.dims not in (STATE_DIMS, ("sample",) + STATE_DIMS):
        raise DatasetError(f"{source}: 'state' has dims {state.dims}; expected {STATE_DIMS} "
                           "(or with a leading 'sample' for predictions)")
    if not np.issubdtype(state.dtype, np.floating):
        raise DatasetError(f"{source}: 'state' must hold floating-point numbers, found {state.dtype}")
    if min(state.shape) == 0:
        raise DatasetError(f"{source}: 'state' is empty (shape {dict(state.sizes)})")
    if "time" not in ds.coords:
        raise DatasetError(f"{source}: no 'time' coordinate; add the sample times along 'time'")
    time = np.asarray(ds["time"].values)
    if not np.issubdtype(time.dtype, np.number) or not np.isfinite(time).all():
        raise DatasetError(f"{source}: 'time' must be finite numbers")
    if time.size > 1 and not (np.diff(time) > 0).all():
        raise DatasetError(f"{source}: 'time' is not strictly increasing; sort the samples by time and drop duplicates")
    if "variable" in ds.coords:
        names = [str(v) for v in ds["variable"].values]
        if len(set(names)) != len(names):
            raise DatasetError(f"{source}: variable names are not unique: {names}")
    observed = None
    if "mask" in ds:
        if ds["mask"].dims != ("trajectory", "time"):
            raise DatasetError(f"{source}: 'mask' must have dims ('trajectory', 'time'), found {ds['mask'].dims}")
        observed = ds["mask"].values.astype(bool)
    values = state.values
    finite = np.isfinite(values)
    if observed is not None:
        finite = finite | ~np.broadcast_to(observed[..., None], values.shape)
    if not finite.all():
        where = np.argwhere(~finite)[0]
        at = dict(zip(state.dims, (int(i) for i in where)))
        raise DatasetError(f"{source}: 'state' holds NaN or infinite values (first at {at}); drop those samples "
                           "or mark them missing with a boolean 'mask(trajectory, time)' variable")
    if "split" in ds.coords:
        bad = set(map(str, np.unique(ds["split"].values))) - set(SPLITS)
        if ds["split"].dims != ("trajectory",) or bad:
            raise DatasetError(f"{source}: 'split' must be a per-trajectory coordinate with values {SPLITS}"
                               + (f"; found {sorted(bad)}" if bad else ""))
    if "derivative" in ds and ds["derivative"].shape != state.shape:
        raise DatasetError(f"{source}: 'derivative' must have the shape of 'state' {state.shape}, found {ds['derivative'].shape}")
    return ds


def select_split(ds: xr.Dataset, name: str) -> xr.Dataset:
    """The trajectories of one split (``train``, ``val`` or ``test``); all of them if ``ds`` has no split."""
    if name not in SPLITS:
        raise DatasetError(f"unknown split {name!r}; use one of {SPLITS}")
    if "split" not in ds.coords:
        return ds
    return ds.isel(trajectory=np.flatnonzero(ds["split"].values == name))


def observation_mask(ds: xr.Dataset) -> np.ndarray:
    """Boolean ``(trajectory, time)`` array, true where samples exist."""
    if "mask" in ds:
        return ds["mask"].values.astype(bool)
    return np.ones((ds.sizes["trajectory"], ds.sizes["time"]), dtype=bool)


# --- HDF5 -----------------------------------------------------------------------------------------

def save(ds: xr.Dataset, path: PathLike) -> Path:
    """Write ``ds`` to HDF5 (netCDF-4 layout via h5netcdf), gzip+shuffle, chunked per trajectory.

    The write is atomic: a temporary file in the same folder is renamed over ``path`` only when
    complete, so a crash never leaves a half-written file. Returns the path written.
    """
    ds = validate(ds)
    encoding = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "fiub" and var.ndim >= 1 and var.size > 0:
            chunks = tuple(1 if dim in ("trajectory", "sample") else size for dim, size in zip(var.dims, var.shape))
            encoding[name] = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "chunksizes": chunks}
            if var.dtype.kind == "f":
                encoding[name]["_FillValue"] = None
    return write_netcdf(ds, path, encoding)


def write_netcdf(ds: xr.Dataset, path: PathLike, encoding: Optional[dict] = None) -> Path:
    """Write any xarray Dataset (e.g. metrics) to HDF5 via h5netcdf, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_target(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding or {}, invalid_netcdf=False)
    return path


class _atomic_target:
    """Context manager yielding a temp path that replaces ``path`` on success."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> str:
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write bytes to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_target(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def check_hdf5_safety(path: PathLike) -> None:
    """Reject files we will not read: not HDF5, external or soft links, external storage, virtual datasets."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    if not h5py.is_hdf5(path):
        raise DatasetError(f"{path} is not an HDF5 file; save datasets with workbench.save or import CSV with workbench.from_csv")
    try:
        with h5py.File(path, "r") as handle:
            _check_group(handle, path)
    except OSError as exc:
        raise DatasetError(f"{path} could not be read as HDF5 ({exc}); the file may be truncated or corrupt") from None


def _check_group(group: h5py.Group, path: Path) -> None:
    for name in group:
        link = group.get(name, getlink=True)
        where = f"{group.name.rstrip('/')}/{name}"
        if isinstance(link, h5py.ExternalLink):
            raise DatasetError(f"{path}: {where} is an external link to {link.filename}; external links are refused "
                               "because they read other files. Copy the data into the file instead")
        if isinstance(link, h5py.SoftLink):
            raise DatasetError(f"{path}: {where} is a soft link; links are refused, store the data directly")
        item = group[name]
        if isinstance(item, h5py.Group):
            _check_group(item, path)
        elif isinstance(item, h5py.Dataset):
            if item.is_virtual:
                raise DatasetError(f"{path}: {where} is a virtual dataset; virtual datasets map other files and are refused")
            if item.external:
                raise DatasetError(f"{path}: {where} uses external storage; its data lies in other files and is refused")


def load(path: PathLike) -> xr.Dataset:
    """Read and validate a dataset written by :func:`save` (or any netCDF-4/HDF5 file in the schema).

    The file is checked with h5py first (no external links, external storage or virtual
    datasets), then read fully into memory and closed. Raises :class:`DatasetError` on any problem.
    """
    check_hdf5_safety(path)
    try:
        with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort") as opened:
            ds = opened.load()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is HDF5 but not a readable netCDF-4 dataset ({exc}); "
                           "write it with workbench.save or xarray's to_netcdf(engine='h5netcdf')") from None
    return validate(ds, source=str(path))


# --- imports ---------------------------------------------------------------------------------------

def from_numpy(states: np.ndarray, times: Sequence[float], variables: Optional[Sequence[str]] = None,
               **kwargs: Any) -> xr.Dataset:
    """A dataset from an array of shape ``(trajectory, time, variable)`` (or ``(time, variable)``).

    ``kwargs`` go to :func:`make_dataset` (``units``, ``mask``, ``split``, ``attrs``...).
    """
    states = np.asarray(states, dtype=np.float64)
    if states.ndim == 2:
        states = states[None]
    if states.ndim != 3:
        raise DatasetError(f"states must have shape (trajectory, time, variable), got {states.shape}")
    if len(times) != states.shape[1]:
        raise DatasetError(f"{len(times)} times given for {states.shape[1]} samples per trajectory")
    variables = list(variables) if variables is not None else [f"x{i}" for i in range(states.shape[2])]
    if len(variables) != states.shape[2]:
        raise DatasetError(f"{len(variables)} variable names given for {states.shape[2]} state columns")
    attrs = {"generator": "workbench.from_numpy", **kwargs.pop("attrs", {})}
    return make_dataset(states, times, variables, attrs=attrs, **kwargs)


def from_csv(path: PathLike, *, trajectory: str = "trajectory", time: str = "time",
             variables: Optional[Sequence[str]] = None) -> xr.Dataset:
    """A dataset from a long-format CSV: one row per sample with ``trajectory``, ``time`` and one column per state.

    Trajectories may be sampled at different times: the time axis is the union of all times and a
    ``mask`` marks which samples each trajectory has. A ``split`` column, if present, is kept.
    """
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"could not read {path} as CSV ({exc})") from None
    missing = [c for c in (trajectory, time) if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: CSV lacks column(s) {missing}; long format needs '{trajectory}', '{time}' "
                           "and one column per state variable")
    if variables is None:
        variables = [c for c in table.columns if c not in (trajectory, time, "split")]
    if not variables:
        raise DatasetError(f"{path}: no state columns besides '{trajectory}' and '{time}'")
    for column in [time, *variables]:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise DatasetError(f"{path}: column {column!r} is not numeric")
    if table.duplicated([trajectory, time]).any():
        raise DatasetError(f"{path}: some trajectory has two rows with the same time; keep one row per sample")
    ids = np.unique(table[trajectory].values)
    times = np.unique(table[time].values.astype(np.float64))
    states = np.full((len(ids), len(times), len(variables)), np.nan)
    mask = np.zeros((len(ids), len(times)), dtype=bool)
    rows = np.searchsorted(ids, table[trajectory].values)
    cols = np.searchsorted(times, table[time].values.astype(np.float64))
    states[rows, cols] = table[list(variables)].to_numpy(dtype=np.float64)
    mask[rows, cols] = True
    split = None
    if "split" in table.columns:
        split = table.groupby(trajectory)["split"].first().reindex(ids).astype(str).values
    return make_dataset(states, times, variables, trajectory=ids, mask=None if mask.all() else mask,
                        split=split, attrs={"generator": "workbench.from_csv", "source_file": Path(path).name})
