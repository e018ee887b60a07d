"""Known-in-advance drivers for seasonality and trend, as exogenous inputs.

An autonomous model of a seasonal series must carry the phase of the year in its own state; a
model that is *told* the phase does not. :func:`add_seasonal_inputs` adds ``sin``/``cos`` of the
phase of a ``period`` (and optionally a linear ``trend``) as ``input`` variables. They are functions
of time alone, so a forecast can compute them past the end of the data (see
:mod:`workbench.evaluation.forecast`); the recipe is stored in ``attrs["drivers"]``.

At most ``MAX_HARMONICS`` sin/cos pairs: overtones of a yearly cycle past the 50th are shorter
than a week, finer than any seasonal model needs, and each pair is two more inputs.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

import numpy as np
import xarray as xr

from ..errors import BadParameterError, DatasetError
from ..safety import check_allocation, check_integer, check_real

ONE_YEAR_DAYS = 365.2425
MAX_HARMONICS = 50


def check_driver_spec(spec: Any) -> dict[str, Any]:
    """A driver recipe (``attrs["drivers"]`` or a model's recipe) checked field by field.

    Returns:
        The recipe with ``period``, ``harmonics``, ``origin`` and ``trend_scale`` as numbers.

    Raises:
        BadParameterError: naming the field and its allowed range.
    """
    if not isinstance(spec, Mapping):
        raise BadParameterError(f"a driver recipe must be a mapping, got {type(spec).__name__}",
                                fix="add drivers with workbench.add_seasonal_inputs")
    trend = spec.get("trend_scale")
    return {"period": check_real(spec.get("period"), "drivers period", 0.0, low_open=True),
            "harmonics": check_integer(spec.get("harmonics"), "drivers harmonics", 1, MAX_HARMONICS),
            "origin": check_real(spec.get("origin"), "drivers origin"),
            "trend_scale": None if trend is None else check_real(trend, "drivers trend_scale", 0.0)}


def driver_names(spec: Mapping[str, Any]) -> list[str]:
    """Input names of a driver recipe, in order."""
    names = [f"season_{f}{k}" for k in range(1, int(spec["harmonics"]) + 1) for f in ("sin", "cos")]
    return names + (["trend"] if spec.get("trend_scale") else [])


def driver_values(spec: Mapping[str, Any], times: np.ndarray) -> np.ndarray:
    """The drivers ``(T, U)`` at ``times`` (in the data's time units)."""
    t = np.asarray(times, dtype=np.float64)
    phase = 2 * np.pi * (t - spec["origin"]) / spec["period"]
    columns = []
    for k in range(1, int(spec["harmonics"]) + 1):
        columns += [np.sin(k * phase), np.cos(k * phase)]
    if spec.get("trend_scale"):
        columns.append((t - spec["origin"]) / spec["trend_scale"])
    return np.stack(columns, axis=-1)


def add_seasonal_inputs(ds: xr.Dataset, period: Optional[float] = None, harmonics: int = 1,
                        trend: bool = False) -> xr.Dataset:
    """``ds`` with seasonal (and trend) drivers appended to its ``input`` variables.

    Arguments:
        ds: a dataset (time-split or not); existing inputs are kept.
        period: the season in time units (default: one year on a calendar axis in days).
        harmonics: sin/cos pairs (1 = the annual wave; 2 adds its half-period overtone).
        trend: also add ``(t - t0) / span``, a linear clock for trending series.

    Returns:
        The dataset with inputs ``season_sin1, season_cos1, ...`` and ``attrs["drivers"]``.
    """
    from .time import parse_units

    if period is None:
        parsed = parse_units(ds["time"].attrs.get("units"))
        if parsed is None or parsed[0] != "days":
            raise BadParameterError("give the season's period in time units (the axis is not a calendar in days)")
        period = ONE_YEAR_DAYS
    period = check_real(period, "period", 0.0, low_open=True)
    harmonics = check_integer(harmonics, "harmonics", 1, MAX_HARMONICS)
    if "drivers" in ds.attrs:
        raise DatasetError("the dataset already has drivers; add them once")
    t = ds["time"].values.astype(np.float64)
    check_allocation(8 * ds.sizes["trajectory"] * len(t) * (2 * harmonics + 1),
                     f"seasonal drivers ({ds.sizes['trajectory']} series x {len(t)} samples x {harmonics} harmonics)")
    spec = {"period": period, "harmonics": harmonics, "origin": float(t[0]),
            "trend_scale": float(t[-1] - t[0]) if trend else None}
    values = np.broadcast_to(driver_values(spec, t), (ds.sizes["trajectory"], len(t), len(driver_names(spec))))
    names = driver_names(spec)
    new = xr.DataArray(values, dims=("trajectory", "time", "input_variable"),
                       coords={"input_variable": names, "input_units": ("input_variable", ["1"] * len(names))})
    out = ds.copy()
    if "input" in ds:
        combined = xr.concat([ds["input"], new.assign_coords(trajectory=ds["trajectory"], time=ds["time"])],
                             dim="input_variable")
        out = out.drop_vars(["input", "input_variable", "input_units"], errors="ignore")
        out["input"] = combined
    else:
        out["input"] = new.assign_coords(trajectory=ds["trajectory"], time=ds["time"])
    out["input"].attrs["long_name"] = "exogenous inputs (forcing, control, covariates)"
    out.attrs["drivers"] = json.dumps(spec)
    return out


__all__ = ["MAX_HARMONICS", "add_seasonal_inputs", "check_driver_spec", "driver_names", "driver_values"]
