"""Per-variable transforms applied before standardisation and inverted on every output.

A learner fits ``log(co2)`` or ``log1p(sunspots)``; forecasts are mapped back with the inverse, so
a quantity with a positive domain is never forecast outside it (``exp`` is positive whatever the
learner outputs). Domains are checked on the data, naming the variable and the sample.

* ``log``: strictly positive quantities; inverse ``exp`` (> 0).
* ``log1p``: non-negative quantities with zeros (counts); inverse ``max(expm1(z), 0)`` (>= 0).
* ``logit``: fractions strictly between 0 and 1; inverse the logistic function (in (0, 1)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import xarray as xr

from ..errors import BadParameterError, DatasetError


@dataclass(frozen=True)
class Transform:
    """A named invertible map with the open or closed domain it needs."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    valid: Callable[[np.ndarray], np.ndarray]
    domain: str


def _logit(x: np.ndarray) -> np.ndarray:
    return np.log(x) - np.log1p(-x)


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


TRANSFORMS = {
    "log": Transform("log", np.log, np.exp, lambda x: x > 0, "x > 0"),
    "log1p": Transform("log1p", np.log1p, lambda z: np.maximum(np.expm1(z), 0.0), lambda x: x >= 0, "x >= 0"),
    "logit": Transform("logit", _logit, _expit, lambda x: (x > 0) & (x < 1), "0 < x < 1"),
}


def check_spec(spec: Union[None, str, Mapping[str, str]], variables: Sequence[str]) -> dict[str, str]:
    """``spec`` validated against the variable names and known transforms.

    Arguments:
        spec: ``{variable: transform name}``, one transform name for every variable (``"log1p"``),
            or ``None``/``{}`` for none.
        variables: the data's variable names.

    Returns:
        ``{variable: transform name}`` (``{}`` for none).

    Raises:
        BadParameterError: an unknown variable or transform, or a spec of another type.
    """
    if isinstance(spec, str):
        spec = {str(v): spec for v in variables}
    if spec is not None and not isinstance(spec, Mapping):
        raise BadParameterError(f"transform must be a transform name or a mapping of variable to transform name, "
                                f"got {type(spec).__name__}", fix=f"pass e.g. transform='log1p' or "
                                f"transform={{{str(variables[0])!r}: 'log1p'}}" if len(variables) else None)
    spec = dict(spec or {})
    for var, name in spec.items():
        if not isinstance(var, str) or var not in variables:
            raise BadParameterError(f"transform names variable {var!r}, which is not one of {list(variables)}")
        if not isinstance(name, str) or name not in TRANSFORMS:
            raise BadParameterError(f"unknown transform {name!r} for {var!r}", fix=f"use one of {sorted(TRANSFORMS)}")
    return spec


def forward(values: np.ndarray, spec: Mapping[str, str], variables: Sequence[str],
            what: str = "data") -> np.ndarray:
    """``values`` (..., D) with each listed variable transformed; ``NaN`` (missing) passes through.

    Raises :class:`DatasetError` naming the variable when a value lies outside the transform's domain.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    for var, name in spec.items():
        d = list(variables).index(var)
        t = TRANSFORMS[name]
        column = out[..., d]
        present = np.isfinite(column)
        bad = present & ~t.valid(np.where(present, column, 0.5))
        if bad.any():
            first = np.argwhere(bad)[0]
            raise DatasetError(f"{what}: variable {var!r} has the value {column[tuple(first)]!r} at index "
                               f"{tuple(int(i) for i in first)}, outside the domain of {name} ({t.domain}); "
                               "choose another transform or none")
        with np.errstate(divide="ignore", invalid="ignore"):
            out[..., d] = np.where(present, t.forward(np.where(present, column, 0.5)), np.nan)
    return out


def inverse(values: np.ndarray, spec: Mapping[str, str], variables: Sequence[str]) -> np.ndarray:
    """Map model outputs (..., D) back to physical values."""
    out = np.array(values, dtype=np.float64, copy=True)
    for var, name in spec.items():
        d = list(variables).index(var)
        with np.errstate(over="ignore"):
            out[..., d] = TRANSFORMS[name].inverse(out[..., d])
    return out


def transform_dataset(ds: xr.Dataset, spec: Mapping[str, str]) -> xr.Dataset:
    """``ds`` with its ``state`` transformed per ``spec`` (units become e.g. ``log(ppm)``)."""
    variables = [str(v) for v in ds["variable"].values]
    spec = check_spec(spec, variables)
    if not spec:
        return ds
    out = ds.copy()
    out["state"] = (ds["state"].dims, forward(ds["state"].values, spec, variables, "transform"), ds["state"].attrs)
    if "units" in ds.coords:
        units = [f"{spec[v]}({u})" if v in spec else str(u) for v, u in zip(variables, ds["units"].values)]
        out = out.assign_coords(units=("variable", np.asarray(units, dtype=str)))
    return out


def difference_dataset(ds: xr.Dataset) -> xr.Dataset:
    """Whole series ``ds`` with each replaced by its increments ``x_t - x_{t-1}`` (the first sample masked).

    For trending series (CO2): a learner fits the stationary increments and a forecast sums them
    from the last observed level (:meth:`workbench.data.series.SeriesRecipe.inverse`). An increment
    looks one sample back, so the pieces of a time split must be whole again first
    (:func:`workbench.data.splits.merge_segments`; ``attrs["time_split"]`` still marks the cut).

    Raises:
        DatasetError: ``ds`` holds the pieces of a time split.
    """
    from .schema import observation_mask

    refuse_pieces(ds, "differencing")
    observed = observation_mask(ds)
    values = np.where(observed[..., None], ds["state"].values, np.nan)
    steps = np.full_like(values, np.nan)
    steps[:, 1:] = values[:, 1:] - values[:, :-1]
    out = ds.copy()
    out["state"] = (ds["state"].dims, steps, ds["state"].attrs)
    out["mask"] = (("trajectory", "time"), np.isfinite(steps).all(-1), {"long_name": "true where the increment is known"})
    if "units" in ds.coords:
        out = out.assign_coords(units=("variable", np.asarray([f"{u} per step" for u in ds["units"].values])))
    return out


def refuse_pieces(ds: xr.Dataset, what: str) -> None:
    """Refuse the pieces of a time split where ``what`` needs whole series (it looks back in time)."""
    if "series" in ds.coords:
        raise DatasetError(f"{what} needs whole series, but this dataset holds the pieces of a time split",
                           fix="merge them first with workbench.data.splits.merge_segments (the split stays "
                               "recorded in attrs['time_split'])")


__all__ = ["TRANSFORMS", "check_spec", "difference_dataset", "forward", "inverse", "refuse_pieces", "transform_dataset"]
