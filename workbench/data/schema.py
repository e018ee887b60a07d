"""The one dataset schema (truth, imports, predictions), its validation, and HDF5/CSV/NumPy I/O.

Schema (also in the README and data/README.md): data variable ``state`` with dims
``("trajectory", "time", "variable")`` (predictions add a leading ``"sample"``), coords ``time``,
``variable``, ``trajectory``, optional ``split(trajectory)``, ``param_<name>(trajectory)``,
``mask(trajectory, time)`` and a ``derivative`` variable shaped like ``state``. Dict-valued
attributes are stored as JSON strings because HDF5 attributes cannot hold dicts or booleans.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import xarray as xr

from . import time as timeaxis
from .._version import __version__
from ..errors import DatasetError
from ..safety import parse_json_bounded

STATE_DIMS = ("trajectory", "time", "variable")
HIDDEN_DIMS = ("trajectory", "time", "hidden_variable")
SPLITS = ("train", "val", "test")
# what generated the data: a known ODE or SDE, measurements (imports), or a model's forecast
KINDS = ("ode", "sde", "observed", "forecast")
CONVENTIONS = "CF-1.8"


def version() -> str:
    return __version__


def make_dataset(state: np.ndarray, times: Sequence[float], variables: Sequence[str], *,
                 units: Optional[Sequence[str]] = None, time_units: str = "1",
                 trajectory: Optional[Sequence[int]] = None, mask: Optional[np.ndarray] = None,
                 derivative: Optional[np.ndarray] = None,
                 inputs: Optional[np.ndarray] = None, input_names: Optional[Sequence[str]] = None,
                 input_units: Optional[Sequence[str]] = None,
                 per_trajectory: Optional[Mapping[str, np.ndarray]] = None,
                 split: Optional[Sequence[str]] = None, attrs: Optional[Mapping[str, Any]] = None,
                 hidden_state: Optional[np.ndarray] = None, hidden_names: Optional[Sequence[str]] = None,
                 hidden_units: Optional[Sequence[str]] = None) -> xr.Dataset:
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
        inputs: exogenous inputs (forcing, control, covariates), shape ``(trajectory, time,
            input_variable)``, stored as the variable ``input``; ``input_names``/``input_units`` label them.
        per_trajectory: extra ``(trajectory,)`` coordinates, e.g. ``{"param_rho": ...}``.
        split: ``train``/``val``/``test`` per trajectory.
        attrs: global attributes; dicts/lists/bools are stored as JSON strings.
        hidden_state: the unobserved variables of partially observed simulated data, noise-free at
            every sample, shape ``(trajectory, time, hidden_variable)``, for scoring only;
            ``hidden_names``/``hidden_units`` label them.

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
    for name, values, dim, names, units, prefix, long_name in (
            ("input", inputs, "input_variable", input_names, input_units, "u",
             "exogenous inputs (forcing, control, covariates)"),
            ("hidden_state", hidden_state, "hidden_variable", hidden_names, hidden_units, "h",
             "unobserved system variables (for scoring only)")):
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64)  # a block beside state with its own variable axis
        labels = list(names) if names is not None else [f"{prefix}{i}" for i in range(values.shape[-1])]
        coords[dim] = (dim, np.asarray(labels, dtype=str))
        if units is not None:
            coords[dim.replace("variable", "units")] = (dim, np.asarray(list(units), dtype=str))
        data_vars[name] = (("trajectory", "time", dim), values, {"long_name": long_name})
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


JSON_ATTRS = {"params": dict, "facts": dict, "options": dict, "split": dict, "learner_options": dict}
JSON_ATTR_MAX_BYTES = 1 << 20


def json_attr(ds: xr.Dataset, key: str, default: Any = None) -> Any:
    """Decode a JSON-string attribute (e.g. ``params``); ``default`` when absent.

    The text is bounded (1 MiB, nesting 64) and, for the attributes the workbench writes
    (:data:`JSON_ATTRS`), must decode to the expected type; :class:`DatasetError` otherwise.
    """
    raw = ds.attrs.get(key)
    if raw is None:
        return default
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    value = parse_json_bounded(raw, f"attribute {key!r}", JSON_ATTR_MAX_BYTES) if isinstance(raw, str) else raw
    expected = JSON_ATTRS.get(key)
    if expected is not None and not isinstance(value, expected):
        raise DatasetError(f"attribute {key!r} should hold a JSON {expected.__name__}, got {raw!r}; "
                           "rewrite the file with workbench.save")
    if key in ("params", "options"):
        bad = {k: v for k, v in value.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)}
        if bad:
            raise DatasetError(f"attribute {key!r} must map names to finite numbers; {bad} are not. "
                               "Fix the attribute or rewrite the file with workbench.save")
    return value


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
        hint = ("; it has no trajectories, e.g. a split that selected none (check ds['split'] or use another "
                "split)" if state.sizes["trajectory"] == 0 else "; every trajectory needs samples and variables")
        raise DatasetError(f"{source}: 'state' is empty (shape {dict(state.sizes)}){hint}")
    if "time" not in ds.coords:
        raise DatasetError(f"{source}: no 'time' coordinate; add the sample times along 'time'")
    time = np.asarray(ds["time"].values)
    if not np.issubdtype(time.dtype, np.number) or not np.isfinite(time).all():
        raise DatasetError(f"{source}: 'time' must be finite numbers")
    if time.size > 1 and not (np.diff(time) > 0).all():
        raise DatasetError(f"{source}: 'time' is not strictly increasing; sort the samples by time and drop duplicates")
    timeaxis.check_calendar(ds["time"].attrs.get("calendar"), source)
    if "variable" in ds.coords:
        names = [str(v) for v in ds["variable"].values]
        if len(set(names)) != len(names):
            raise DatasetError(f"{source}: variable names are not unique: {names}")
    observed = None
    if "mask" in ds:
        if ds["mask"].dims != ("trajectory", "time"):
            raise DatasetError(f"{source}: 'mask' must have dims ('trajectory', 'time'), found {ds['mask'].dims}")
        observed = _mask_values(ds["mask"], source)
    _check_finite(state, observed, source, "drop those samples or mark them missing with a boolean "
                                           "'mask(trajectory, time)' variable")
    if "split" in ds.coords:
        bad = set(map(str, np.unique(ds["split"].values))) - set(SPLITS)
        if ds["split"].dims != ("trajectory",) or bad:
            raise DatasetError(f"{source}: 'split' must be a per-trajectory coordinate with values {SPLITS}"
                               + (f"; found {sorted(bad)}" if bad else ""))
    if "derivative" in ds:
        _check_derivative(ds["derivative"], state, observed, source)
    kind = ds.attrs.get("kind")
    if kind is not None and kind not in KINDS:
        raise DatasetError(f"{source}: attribute 'kind' is {kind!r}; it must be one of {KINDS}, or absent "
                           "(then the data is treated as observed)")
    for key in JSON_ATTRS:
        try:
            json_attr(ds, key)
        except DatasetError as exc:
            raise DatasetError(f"{source}: {exc}") from None
    if "input" in ds:
        if ds["input"].dims != ("trajectory", "time", "input_variable"):
            raise DatasetError(f"{source}: 'input' must have dims ('trajectory', 'time', 'input_variable'), "
                               f"found {ds['input'].dims}")
        if not np.isfinite(ds["input"].values).all():
            raise DatasetError(f"{source}: 'input' holds NaN or infinite values; inputs must be known at every "
                               "sample (interpolate gaps or drop those times)")
    if "hidden_state" in ds:
        _check_hidden(ds, state, source)
    return ds


def _check_hidden(ds: xr.Dataset, state: xr.DataArray, source: str) -> None:
    """``hidden_state`` must be finite floats over (trajectory, time, hidden_variable), with
    unique names that are not also observed variables."""
    hidden = ds["hidden_state"]
    if hidden.dims != HIDDEN_DIMS:
        raise DatasetError(f"{source}: 'hidden_state' must have dims {HIDDEN_DIMS}, found {hidden.dims}",
                           fix="store the unobserved variables as hidden_state(trajectory, time, hidden_variable)")
    if (hidden.sizes["trajectory"], hidden.sizes["time"]) != (state.sizes["trajectory"], state.sizes["time"]):
        raise DatasetError(f"{source}: 'hidden_state' covers {hidden.sizes['trajectory']} trajectories x "
                           f"{hidden.sizes['time']} samples, 'state' {state.sizes['trajectory']} x {state.sizes['time']}",
                           fix="store the hidden variables at every sample of every trajectory")
    if not np.issubdtype(hidden.dtype, np.floating) or not np.isfinite(hidden.values).all():
        raise DatasetError(f"{source}: 'hidden_state' must hold finite floating-point numbers",
                           fix="recompute it, or drop the 'hidden_state' variable")
    if "hidden_variable" in ds.coords:
        names = [str(v) for v in ds["hidden_variable"].values]
        observed = {str(v) for v in ds["variable"].values} if "variable" in ds.coords else set()
        if len(set(names)) != len(names) or observed & set(names):
            raise DatasetError(f"{source}: hidden variable names {names} must be unique and differ from the "
                               f"observed variables {sorted(observed)}", fix="rename the hidden variables")


def _mask_values(mask: xr.DataArray, source: str) -> np.ndarray:
    """The mask as booleans; refuse values other than 0/1 and trajectories without a single observation."""
    values = mask.values
    if values.dtype != bool:
        if not np.issubdtype(values.dtype, np.number) or not np.isin(values, (0, 1)).all():
            raise DatasetError(f"{source}: 'mask' must hold booleans (true where observed), found {values.dtype} "
                               "values other than 0/1")
        values = values.astype(bool)
    empty = np.flatnonzero(~values.any(axis=1))
    if empty.size:
        raise DatasetError(f"{source}: {empty.size} trajectories have no observed sample at all (their mask is "
                           f"all false; positions {empty[:5].tolist()}...); drop them, e.g. "
                           "ds.isel(trajectory=ds.mask.any('time').values)")
    return values


def _check_derivative(derivative: xr.DataArray, state: xr.DataArray, observed: Optional[np.ndarray],
                      source: str) -> None:
    if derivative.dims != state.dims or derivative.shape != state.shape:
        raise DatasetError(f"{source}: 'derivative' must have the dims and shape of 'state' "
                           f"{dict(state.sizes)}, found {dict(derivative.sizes)}")
    if not np.issubdtype(derivative.dtype, np.floating):
        raise DatasetError(f"{source}: 'derivative' must hold floating-point numbers, found {derivative.dtype}")
    _check_finite(derivative, observed, source, "recompute it, or drop the 'derivative' variable if the "
                                                "true vector field is unknown")


def _check_finite(var: xr.DataArray, observed: Optional[np.ndarray], source: str, fix: str) -> None:
    """Every observed value of ``var`` must be finite."""
    values = var.values
    finite = np.isfinite(values)
    if observed is not None:
        finite = finite | ~np.broadcast_to(observed[..., None], values.shape)
    if not finite.all():
        where = np.argwhere(~finite)[0]
        at = dict(zip(var.dims, (int(i) for i in where)))
        raise DatasetError(f"{source}: {var.name!r} holds NaN or infinite values (first at {at}); {fix}")


def select_split(ds: xr.Dataset, name: str, required: bool = False) -> xr.Dataset:
    """The trajectories of one split (``train``, ``val`` or ``test``); all of them if ``ds`` has no split.

    With ``required=True`` an empty selection raises :class:`DatasetError` naming the splits present.
    """
    if not isinstance(ds, xr.Dataset):
        raise DatasetError(f"expected an xarray.Dataset in the workbench schema, got {type(ds).__name__}; "
                           "load files with workbench.load or build data with workbench.from_numpy")
    if name not in SPLITS:
        raise DatasetError(f"unknown split {name!r}; use one of {SPLITS}")
    if "split" not in ds.coords:
        return ds
    chosen = ds.isel(trajectory=np.flatnonzero(ds["split"].values == name))
    if required and chosen.sizes["trajectory"] == 0:
        present = sorted(set(map(str, ds["split"].values)))
        raise DatasetError(f"the dataset has no {name!r} trajectories (its splits: {present or 'none'}); "
                           "choose one of those splits, or 'all'")
    return chosen


def observation_mask(ds: xr.Dataset) -> np.ndarray:
    """Boolean ``(trajectory, time)`` array, true where samples exist."""
    if "mask" in ds:
        return ds["mask"].values.astype(bool)
    return np.ones((ds.sizes["trajectory"], ds.sizes["time"]), dtype=bool)


# --- content keys -------------------------------------------------------------------------------------

def _json_plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays as for Python numbers (a file read back holds numpy types)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def digest_json(digest: Any, value: Any) -> None:
    """Feed ``value`` to the hash ``digest`` as JSON with sorted keys (numpy values as Python numbers)."""
    digest.update(json.dumps(value, sort_keys=True, default=_json_plain).encode())


def digest_array(digest: Any, name: str, values: Any) -> None:
    """Feed an array to the hash ``digest``: its name, dtype, shape and values (strings by their text,
    not numpy's fixed-width buffer)."""
    values = np.asarray(values)
    if values.dtype.kind in "OUS":
        payload = json.dumps([str(v) for v in values.ravel()]).encode()
    else:
        payload = np.ascontiguousarray(values).tobytes()
    digest.update(f"{name}|{values.dtype.str}|{values.shape}|".encode())
    digest.update(payload)


def content_key(ds: xr.Dataset) -> str:
    """SHA-256 of everything that makes a dataset what it is: every variable and coordinate with its
    values, dims and attributes, and the global attributes.

    Two datasets that differ in any state value, time, split, mask or attribute get different keys;
    the same data loaded twice gets the same key, so caches are keyed by this, never by a label.

    Arguments:
        ds: any xarray Dataset (typically in the workbench schema).

    Returns:
        64 hex digits.
    """
    import hashlib  # here, not at the top: the content keys are the only hashing in the schema

    digest = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        digest_json(digest, [name, list(var.dims), var.attrs])
        digest_array(digest, name, var.values)
    digest_json(digest, ds.attrs)
    return digest.hexdigest()
