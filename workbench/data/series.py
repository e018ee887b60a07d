"""Fitting a measured series: transforms, delay embedding and the time split, before the fit loop.

:func:`workbench.fit` hands a dataset here when it has a time split (:func:`workbench.split_time`)
or when ``embed``, ``lag`` or ``transform`` is given. The data is reshaped into what every learner
already trains on, and the recipe is recorded in ``model.meta["series"]`` so that
:mod:`workbench.evaluation.forecast` maps forecasts back:

1. ``transform`` (per variable ``log``/``log1p``/``logit``) is applied before standardisation, and
   ``difference=True`` replaces levels by increments (trending series);
2. ``embed=k, lag=tau`` replaces each variable by its ``k`` delays (the whole series is embedded,
   so delays only look back; no piece sees later data);
3. the training and validation pieces are cut into equal-length, overlapping trajectories ("chunks") on a
   time axis that starts at 0 and steps by the median sampling interval: a calendar axis of
   months (28-31 days) counts as regular. Every learner, discrete maps and closed-form ones
   included, then sees complete, regular trajectories; the test piece is never used.

A 1-D autonomous ODE cannot oscillate (its flow is monotone), so fitting one to an oscillating
series warns and names ``embed`` with a suggestion from :func:`workbench.suggest_embedding`.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from . import time as timeaxis, transforms
from ..evaluation.baselines import detect_period
from .schema import json_attr, make_dataset, observation_mask
from .drivers import check_driver_spec
from .embedding import check_embedding, embed_dataset, embedded_names, suggest_embedding
from ..errors import BadParameterError, DatasetError, UnsupportedError
from ..safety import check_real
from .splits import merge_segments, split_at, time_split_info

SERIES_OPTIONS = ("embed", "lag", "transform", "difference", "fill_gaps")
# steps within this fraction of the median count as regular sampling (months, years in days)
REGULAR_TOLERANCE = 0.1
MIN_CHUNK = 16


def wants_series_fit(ds: xr.Dataset, options: Mapping[str, Any]) -> bool:
    """Whether ``fit`` should prepare ``ds`` here: a time split, or embedding/transform options."""
    return any(k in options for k in SERIES_OPTIONS) or time_split_info(ds) is not None


def prepare_series(ds: xr.Dataset, learner: str, options: dict[str, Any]) -> tuple[xr.Dataset, dict[str, Any]]:
    """Prepare ``ds`` (see the module docstring) for the fit loop and describe the recipe.

    Arguments:
        ds: a dataset, usually a :func:`workbench.split_time` result.
        learner: the learner name.
        options: the learner options given to ``fit``; the series options below are taken out of it.

    Series options:
        embed, lag: delay embedding (``embed=1``: none).
        transform: per-variable transforms, e.g. ``{"sunspots": "log1p"}``, or one name for every
            variable (``"log1p"``).
        difference: fit the increments ``x_t - x_{t-1}`` (after the transform) instead of the levels,
            for trending series; forecasts sum them from the last observed level.
        fill_gaps: interpolate missing samples inside each series linearly before fitting, so that
            learners needing complete samples (discrete maps, NVAR, ESN, SINDy) can fit gappy data.
            The interpolated values are training data then; say so when you report results. An axis
            whose steps are not multiples of one step has no gaps to fill: such learners are refused.

    Returns:
        The data the fit loop trains on, and the recipe stored as ``model.meta["series"]``.
    """
    series = {k: options.pop(k) for k in SERIES_OPTIONS if k in options}
    embed, lag = check_embedding(series.get("embed", 1), series.get("lag", 1), ds.sizes["time"])
    transform = series.get("transform")
    difference, fill_gaps = series.get("difference", False), series.get("fill_gaps", False)
    variables = [str(v) for v in ds["variable"].values]
    spec = transforms.check_spec(transform, variables)
    warn_if_cannot_oscillate(ds, learner, embed, options)
    prepared = transforms.transform_dataset(ds, spec)
    for name, flag in (("difference", difference), ("fill_gaps", fill_gaps)):
        if not isinstance(flag, bool):
            raise BadParameterError(f"{name} must be True or False, got {flag!r}")
    if fill_gaps:
        prepared = interpolate_gaps(prepared)
    if difference:
        prepared = transforms.difference_dataset(prepared)
    prepared = embed_dataset(prepared, embed, lag)
    fit_ds, step, layout = training_layout(prepared, (embed - 1) * lag + int(difference), whole_series(learner))
    if fill_gaps and layout == "pieces":
        refuse_irregular_axis(prepared, learner)
    recipe = {"transform": spec, "difference": difference, "fill_gaps": fill_gaps, "embed": embed,
              "lag": lag, "variables": variables,
              "units": [str(u) for u in ds["units"].values] if "units" in ds.coords else None,
              "step": step, "layout": layout, "time_units": str(ds["time"].attrs.get("units", "1")),
              "time_split": time_split_info(ds), "drivers": json_attr(ds, "drivers")}
    return fit_ds, recipe


def check_recipe(recipe: Any, model_variables: Sequence[str]) -> dict[str, Any]:
    """A model's series recipe (``model.meta["series"]``, e.g. from a loaded folder or zip) checked
    before any forecast uses it: every field within the limits ``fit`` enforces, and the embedding
    consistent with the variables the learner was built on.

    Arguments:
        recipe: the recipe as stored.
        model_variables: the model's (embedded) variable names.

    Returns:
        The recipe with ``embed``, ``lag``, ``transform`` and ``drivers`` normalised.

    Raises:
        DatasetError: naming the field; the fix is to refit and save with this workbench.
    """
    fix = "refit the model and save it with model.save (the recipe was edited or written by another program)"
    if not isinstance(recipe, Mapping):
        raise DatasetError(f"the model's series recipe is a {type(recipe).__name__}, not a mapping", fix=fix)
    variables = recipe.get("variables")
    if not isinstance(variables, list) or not variables or not all(isinstance(v, str) for v in variables):
        raise DatasetError(f"the model's series recipe has variables {str(variables)[:80]}, not a list of names",
                           fix=fix)
    step = recipe.get("step")
    try:
        embed, lag = check_embedding(recipe.get("embed"), recipe.get("lag"))
        spec = transforms.check_spec(recipe.get("transform"), variables)
        drivers = check_driver_spec(recipe["drivers"]) if recipe.get("drivers") is not None else None
        if step is not None:
            step = check_real(step, "step", 0.0, low_open=True)
    except BadParameterError as exc:
        raise DatasetError(f"the model's series recipe is invalid: {exc.problem}", fix=fix) from None
    for name in ("difference", "fill_gaps"):
        if not isinstance(recipe.get(name, False), bool):
            raise DatasetError(f"the model's series recipe has {name}={recipe.get(name)!r}, not True or False",
                               fix=fix)
    expected = embedded_names(variables, embed, lag)
    if expected != list(model_variables):
        raise DatasetError(f"the model's series recipe (variables {variables}, embed={embed}, lag={lag}) implies "
                           f"the learner's variables {expected[:6]}, but the model has {list(model_variables)[:6]}",
                           fix=fix)
    return {**recipe, "embed": embed, "lag": lag, "transform": spec, "drivers": drivers, "step": step}


def refuse_irregular_axis(ds: xr.Dataset, learner: str) -> None:
    """Refuse a learner that needs regular samples on an axis ``fill_gaps=True`` cannot make regular.

    ``fill_gaps`` fills missing samples of a regular grid (missing rows of a daily or monthly CSV
    are such samples); steps that are not multiples of one step are no gaps, so the generic
    refusal, which suggests ``fill_gaps=True``, would send the user in a circle.
    """
    from ..learners import get_learner

    if get_learner(learner).supports.irregular:
        return
    steps = np.diff(ds["time"].values.astype(np.float64))
    raise UnsupportedError(f"learner {learner!r} needs regularly sampled data, and fill_gaps=True cannot make this "
                           f"time axis regular: its steps run from {float(steps.min()):g} to {float(steps.max()):g}, "
                           "not multiples of one step",
                           fix="resample the series onto a regular grid first (or import it with from_csv(..., "
                               "freq=...)), or use 'node', which fits irregular data")


def interpolate_gaps(ds: xr.Dataset) -> xr.Dataset:
    """Missing samples between a series' first and last observation filled by linear interpolation."""
    info = time_split_info(ds)
    merged = merge_segments(ds)
    observed = observation_mask(merged)
    state = merged["state"].values.copy()
    mask = observed.copy()
    for k in range(state.shape[0]):
        seen = np.flatnonzero(observed[k] & np.isfinite(state[k]).all(-1))
        inside = np.arange(seen[0], seen[-1] + 1)
        for d in range(state.shape[2]):
            state[k, inside, d] = np.interp(inside, seen, state[k, seen, d])
        mask[k, inside] = True
    out = merged.copy()
    out["state"] = (merged["state"].dims, state, merged["state"].attrs)
    out["mask"] = (("trajectory", "time"), mask, {"long_name": "observed or interpolated"})
    out.attrs["gaps_interpolated"] = int((mask & ~observed).sum())
    return split_at(out, info.get("val_start"), info.get("test_start")) if info is not None else out


def is_regular(times: np.ndarray) -> bool:
    """Steps all within 10% of their median (monthly dates in days count as regular)."""
    steps = np.diff(times)
    return steps.size == 0 or bool(np.abs(steps / np.median(steps) - 1).max() <= REGULAR_TOLERANCE)


def whole_series(learner: str) -> bool:
    """Whether ``learner`` fits one uncut training history (the statistical backbones) instead of chunks."""
    from ..learners import get_learner

    return bool(getattr(get_learner(learner), "whole_series", False))


def training_layout(ds: xr.Dataset, warmup: int, whole: bool = False) -> tuple[xr.Dataset, float, str]:
    """The data the fit loop sees, the model's time step, and the layout's name.

    Regular series with a time split become equal-length chunks of the train and val pieces on a
    relative axis (``"chunks"``; with ``whole``, one chunk: the train and val pieces together, all
    for training, for learners that fit a whole history such as ARIMA); data without a time split keeps its trajectories with the first
    ``warmup`` samples (no delay history) dropped (``"trajectories"``); irregular series keep the
    pieces on the absolute axis (``"pieces"``; only learners for masked data can fit them).
    """
    info = time_split_info(ds)
    times = ds["time"].values.astype(np.float64)
    step = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    if info is None:
        return ds.isel(time=slice(warmup, None)), step, "trajectories"
    if not is_regular(times):
        pieces = ds.copy()
        pieces.attrs = {k: v for k, v in ds.attrs.items() if k != "time_split"}  # fit it as plain trajectories
        return pieces, step, "pieces"
    merged = merge_segments(ds)
    observed = observation_mask(merged)
    bounds = {"val": info.get("val_start"), "test": info.get("test_start")}
    val_at = int(np.searchsorted(times, bounds["val"])) if bounds["val"] is not None else None
    test_at = int(np.searchsorted(times, bounds["test"])) if bounds["test"] is not None else len(times)
    train_end = val_at if val_at is not None else test_at
    first = int(np.flatnonzero(observed.any(0))[0])
    train_range = (first, train_end)
    val_range = (val_at, test_at) if val_at is not None else None
    length = train_end - first
    if whole:
        train_range, val_range, length = (first, test_at), None, test_at - first
    elif val_range is not None:
        length = min(length, max(MIN_CHUNK, val_range[1] - val_range[0]))
    if length < 2:
        raise DatasetError("the training piece is too short to train on after the embedding's warm-up; "
                           "give it more samples (split_time with a smaller val/test)")
    pieces, names = [], []
    for split, rng in (("train", train_range), ("val", val_range)):
        if rng is None or rng[1] - rng[0] < 2:
            continue
        for start in chunk_starts(rng[0], rng[1], length):
            pieces.append(slice(start, start + length))
            names.append(split)
    state = merged["state"].values
    n_series = state.shape[0]
    chunks = [(k, sl, name) for sl, name in zip(pieces, names) for k in range(n_series)]
    take = lambda a: np.stack([_window(a[k], sl, length) for k, sl, _ in chunks])  # noqa: E731
    mask = take(observed[..., None])[..., 0].astype(bool)
    keep = mask.any(1)
    kwargs: dict[str, Any] = {}
    if "input" in merged:
        kwargs = {"inputs": take(merged["input"].values)[keep],
                  "input_names": [str(v) for v in merged["input_variable"].values],
                  "input_units": [str(u) for u in merged["input_units"].values] if "input_units" in merged.coords
                  else None}
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("time_split", "Conventions", "workbench_version")}
    attrs["layout"] = "chunks of the train/val pieces on a relative time axis (workbench.data.series)"
    out = make_dataset(take(state)[keep], np.arange(length) * step, [str(v) for v in ds["variable"].values],
                       units=[str(u) for u in ds["units"].values] if "units" in ds.coords else None,
                       time_units=timeaxis.step_label(ds), mask=None if mask[keep].all() else mask[keep],
                       split=[c[2] for c, k in zip(chunks, keep) if k], attrs=attrs, **kwargs)
    return out, step, "chunks"


def chunk_starts(lo: int, hi: int, length: int) -> list[int]:
    """Starts of windows of ``length`` covering ``[lo, hi)`` with a stride of a quarter window.

    The overlap keeps every transition (and a learner's warm-up context) inside some chunk; a
    sample appears in up to four chunks, evenly, so no part of the series is weighted more.
    """
    if hi - lo <= length:
        return [lo]
    stride = max(1, length // 4)
    count = int(np.ceil((hi - lo - length) / stride)) + 1
    return [int(round(s)) for s in np.linspace(lo, hi - length, count)]


def _window(values: np.ndarray, sl: slice, length: int) -> np.ndarray:
    """``values[sl]`` padded with NaN/False to ``length`` samples."""
    part = values[sl]
    if len(part) == length:
        return part
    pad = np.zeros((length - len(part),) + part.shape[1:], dtype=part.dtype)
    if part.dtype.kind == "f":
        pad[:] = np.nan
    return np.concatenate([part, pad])


def warn_if_cannot_oscillate(ds: xr.Dataset, learner: str, embed: int, kwargs: Mapping[str, Any]) -> None:
    """Warn when a 1-D autonomous flow is asked to fit a series that oscillates."""
    from ..learners import AugmentedNODE, get_learner
    from ..learners.continuous import ContinuousLearner

    if embed > 1 or ds.sizes["variable"] != 1 or "input" in ds:
        return
    cls = get_learner(learner)
    if not issubclass(cls, ContinuousLearner) or issubclass(cls, AugmentedNODE):  # extra dimensions can turn
        return
    merged = merge_segments(ds)
    observed = observation_mask(merged)
    series = [np.where(observed[k, :, None], merged["state"].values[k], np.nan) for k in range(merged.sizes["trajectory"])]
    times = [merged["time"].values.astype(np.float64)] * len(series)
    if detect_period(series, times) is None:
        return
    suggestion = suggest_embedding(ds)
    warnings.warn(f"a 1-D autonomous ODE cannot oscillate, but this series does (it has a cycle): the fit will "
                  f"relax towards a constant. Give the model a state that can turn: embed={suggestion['embed']}, "
                  f"lag={suggestion['lag']} (from wb.suggest_embedding), or learner='anode'", UserWarning,
                  stacklevel=4)


__all__ = ["SERIES_OPTIONS", "check_recipe", "prepare_series", "training_layout", "wants_series_fit"]
