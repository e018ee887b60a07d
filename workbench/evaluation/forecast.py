"""Forecasts from the end of a measured series, and rolling-origin evaluation of a fitted model.

:func:`forecast` continues each series from its last observed sample (or from ``origin``) for
``horizon`` samples: the model's recipe (``model.meta["series"]``, see :mod:`workbench.data.series`)
is replayed on the history (transform, delay vector, the context samples a learner needs), the
learner rolls out on its own time step, and the result is mapped back (observed variables only,
inverse transform). The result's time axis continues the data's, in the data's units: on a
calendar axis ``xarray.decode_cf`` gives dates, with whole months or years when the data is
sampled that way.

:func:`evaluate_rolling` scores forecasts from many origins over the test period by horizon, beside
persistence, climatology and AR(p) (see :mod:`workbench.evaluation.rolling`).

A forecast path *runs away* from its first value that is not finite or lies more than
``RUNAWAY_SPANS`` (1000) times the range of the series' history up to the origin away from the
middle of that range; from there on it is ``+inf`` (infinitely wrong in every score) and
:func:`forecast` raises :class:`DivergenceError` or, with ``on_divergence="mark"``, says when.
Why this bound: unstable learned dynamics grow geometrically, so they cross it within a few dozen
steps of leaving the data, long before float overflow (a learner's float32 overflows near 3e38,
so without a bound such forecasts came back as huge finite numbers); a stationary or seasonal
series never comes near it, and a trend at the history's own pace needs a horizon a thousand
times the history's length to reach it, further than any series forecast is worth reading.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..data import time as timeaxis, transforms
from .baselines import fill_gaps
from .conformal import calibrated, online_tables
from ..data.schema import make_dataset
from ..data.drivers import driver_names, driver_values
from ..data.embedding import delay_vectors
from ..errors import BadParameterError, DatasetError, DivergenceError, UnsupportedError
from .refit import check_refit, refit_each
from .rolling import DEFAULT_MAX_ORIGINS, INTERVAL_LEVEL, MAX_HORIZON, rolling_evaluation, series_arrays, skills, test_start_time
from ..safety import check_integer
from ..data.series import SeriesRecipe, check_recipe
from ..data.time import median_step
from ..data.splits import merge_segments

RUNAWAY_SPANS = 1000.0


def recipe(model: Any) -> SeriesRecipe:
    """The model's series recipe, checked against its variables (:func:`workbench.data.series.check_recipe`);
    a model fitted without one gets the identity recipe on the data's own step."""
    if model.meta.get("series"):
        return SeriesRecipe.from_json(check_recipe(model.meta["series"], model.variables))
    return SeriesRecipe(variables=tuple(model.variables))


def mark_runaway(paths: np.ndarray, values: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """``paths`` (S, O, H, D) with each path ``+inf`` from its first runaway value on (see the module docstring).

    Arguments:
        paths: forecasts in physical units from ``origins``.
        values: the series ``(T, D)``, ``NaN`` where unobserved.
        origins: the forecast origins (sample indices).
    """
    with np.errstate(invalid="ignore"):  # all-NaN prefixes stay NaN and compare False
        low = np.fmin.accumulate(values, axis=0)[origins]
        high = np.fmax.accumulate(values, axis=0)[origins]
        middle = (low + high) / 2
        # a constant history has no range: its level (or 1) sets the scale instead
        span = np.where(high > low, high - low, np.maximum(np.abs(middle), 1.0))
        away = np.abs(paths - middle[None, :, None]) > RUNAWAY_SPANS * span[None, :, None]
    lost = np.logical_or.accumulate((~np.isfinite(paths) | away).any(axis=-1), axis=2)
    return np.where(lost[..., None], np.inf, paths)


def rollout_from(model: Any, values: np.ndarray, times: np.ndarray, origins: np.ndarray, horizon: int,
                 n_samples: int = 1, seed: int = 0, inputs: Optional[np.ndarray] = None) -> np.ndarray:
    """Forecasts ``(O, S, horizon, D)`` in physical units from ``origins`` of one series; for a model
    with a conformal calibration, its point plus the calibrated offsets, updated with the residuals
    observed since the fit (:mod:`workbench.evaluation.conformal`).

    Arguments:
        model: a fitted :class:`workbench.Model`.
        values: the series ``(T, D)`` in the data's variables, ``NaN`` where unobserved.
        times: its times ``(T,)``.
        origins: sample indices to forecast from (each must be observed).
        horizon: samples to forecast.
        n_samples: paths per origin for stochastic learners.
        seed: seeds the paths.
        inputs: the series' exogenous inputs ``(T, U)`` when the model has inputs (held at the last
            value past the end of the data, where no target exists).
    """
    paths = _paths(model, values, times, origins, horizon, n_samples, seed, inputs)
    calibration = model.meta.get("calibration")
    if not calibration:
        return paths
    origins = np.asarray(origins, dtype=int)

    def points(earlier: np.ndarray, steps: int) -> np.ndarray:
        return _paths(model, values, times, earlier, steps, 1, seed, inputs).mean(axis=1)

    tables = online_tables(calibration, points, values, times, origins)
    return calibrated(paths, calibration["quantiles"] if tables is None else tables, n_samples)


def _paths(model: Any, values: np.ndarray, times: np.ndarray, origins: np.ndarray, horizon: int,
           n_samples: int, seed: int, inputs: Optional[np.ndarray]) -> np.ndarray:
    """The learner's own forecasts ``(O, S, horizon, D)`` (no calibration), see :func:`rollout_from`."""
    rec = recipe(model)
    variables = list(rec.variables)
    context = model.learner.capabilities().context
    need = rec.warmup + context
    origins = np.asarray(origins, dtype=int)
    if (origins < need).any():
        raise DatasetError(f"a forecast origin has fewer than {need} samples of history (the embedding and the "
                           "learner's context need them); start later")
    x = fill_gaps(transforms.forward(values, rec.transform, variables, "forecast history")[: origins.max() + 1])
    levels = None
    if rec.difference:  # the model works on increments; the levels at the origins anchor their sum
        levels = transforms.inverse(x[origins], rec.transform, variables)[None]
        x = np.concatenate([np.full_like(x[:1], np.nan), np.diff(x, axis=0)])
    embedded = delay_vectors(x, rec.embed, rec.lag)   # gaps in the history were interpolated above
    # the learner's context samples, then the origin: the history Model.rollout starts from
    history = np.stack([embedded[o - context: o + 1] for o in origins])
    step = rec.step or median_step(times)
    t = np.arange(horizon + 1) * step
    u = None
    if model.inputs:
        if inputs is None:
            raise UnsupportedError(f"this model needs its inputs {model.inputs} over the forecast; pass a dataset "
                                   "with an 'input' variable that covers the forecast times")
        u = np.stack([_inputs_ahead(inputs, times, o, horizon, step, rec.drivers, model.inputs)
                      for o in origins])
    path = model.rollout(history, t, u, n_samples, seed)
    # overflow in a runaway path is expected; mark_runaway turns it into a marked divergence
    with np.errstate(over="ignore", invalid="ignore"):
        observed = rec.inverse(path[:, :, 1:], last=levels)                # (S, O, H, D)
    return np.moveaxis(mark_runaway(observed, values, origins), 0, 1)


def _inputs_ahead(inputs: np.ndarray, times: np.ndarray, origin: int, horizon: int, step: float,
                  drivers: Optional[dict], names: Sequence[str]) -> np.ndarray:
    """Inputs at the origin and the ``horizon`` samples after it: the data's where it has them;
    past its end, seasonal/trend drivers computed from time and other inputs held at their last value."""
    ahead = inputs[origin: origin + horizon + 1]
    missing = horizon + 1 - len(ahead)
    if missing == 0:
        return ahead
    held = np.concatenate([ahead, np.repeat(inputs[-1:], missing, axis=0)])
    if drivers:
        t = times[origin] + step * np.arange(horizon + 1)
        columns = [names.index(n) for n in driver_names(drivers)]
        held[:, columns] = driver_values(drivers, t)
    return held


def future_times(ds: xr.Dataset, after: float, count: int) -> np.ndarray:
    """``count`` times after ``after``: the data's own times where it has them, then the data's rhythm.

    On a calendar axis sampled on the same day of every month (or year) the rhythm is whole months
    (years); otherwise the median step.
    """
    t = ds["time"].values.astype(np.float64)
    inside = t[t > after][:count]
    if len(inside) == count:
        return inside
    last = inside[-1] if len(inside) else after
    extra = count - len(inside)
    dates = timeaxis.to_datetimes(ds)
    if dates is not None and len(dates) > 2:
        stamps = pd.DatetimeIndex(dates)
        months = stamps.year * 12 + stamps.month
        for unit, offset in (("month", pd.DateOffset(months=1)), ("year", pd.DateOffset(years=1))):
            steps = np.diff(months) if unit == "month" else np.diff(stamps.year)
            same_day = (stamps.day == stamps.day[0]).all() and (unit == "month" or (stamps.month == stamps.month[0]).all())
            if same_day and (steps == 1).all():
                start = pd.Timestamp(timeaxis.to_datetimes(ds, np.array([last]))[0])
                new = pd.DatetimeIndex([start + offset * (i + 1) for i in range(extra)])
                return np.concatenate([inside, [timeaxis.to_numeric(ds, d) for d in new]])
    step = median_step(t)
    return np.concatenate([inside, last + step * np.arange(1, extra + 1)])


def forecast(model: Any, ds: xr.Dataset, horizon: int, n_samples: int = 1, seed: int = 0,
             origin: Optional[Any] = None, on_divergence: str = "raise") -> xr.Dataset:
    """Continue every series of ``ds`` for ``horizon`` samples from its last observed sample.

    Arguments:
        model: a fitted :class:`workbench.Model` (with or without embedding/transform).
        ds: the data (a time-split dataset is merged back into whole series first).
        horizon: samples to forecast.
        n_samples: paths per series for stochastic learners.
        seed: seeds the paths.
        origin: forecast from the last observed sample at or before this time or date instead of
            the end; ``"test"`` means the last sample before the test piece of a time split.
        on_divergence: a path that runs away (see the module docstring). ``"raise"``: raise
            :class:`DivergenceError` naming the step. ``"mark"``: return it, ``+inf`` from its first
            runaway value on, with ``diverged_at(sample, trajectory)`` holding that time (NaN where
            the path stayed bounded), as :meth:`workbench.Model.predict` does.

    Returns:
        Dataset ``state(sample, trajectory, time, variable)`` in the data's units, the time axis
        continuing the data's (CF units kept: dates on calendar axes), attrs ``forecast_origin``;
        with more than one sample also ``lower_80`` and ``upper_80(trajectory, time, variable)``,
        the 10% and 90% quantiles of the samples (split-conformal bounds for a model fitted with
        ``learner="auto"``, whose samples are its point plus the validation residual quantiles).
    """
    horizon = check_integer(horizon, "horizon", 1, MAX_HORIZON)
    if on_divergence not in ("raise", "mark"):
        raise BadParameterError(f"on_divergence must be 'raise' or 'mark', got {on_divergence!r}")
    variables = recipe(model).variables
    if [str(v) for v in ds["variable"].values] != list(variables):
        raise DatasetError(f"the data's variables {[str(v) for v in ds['variable'].values]} differ from the "
                           f"model's {list(variables)}")
    series, times = series_arrays(ds)
    merged = merge_segments(ds)
    cutoff = _cutoff(ds, origin)
    out, starts = [], []
    for k, values in enumerate(series):
        seen = np.flatnonzero(np.isfinite(values).all(1) & (times <= cutoff))
        if seen.size == 0:
            raise DatasetError(f"series {k} has no observed sample before the forecast origin")
        o = int(seen[-1])
        inputs = merged["input"].values[k] if "input" in merged else None
        only_drivers = set(model.inputs) <= set(driver_names(recipe(model).drivers or {"harmonics": 0}))
        if inputs is not None and o + horizon >= len(times) and not only_drivers:
            raise UnsupportedError("this model needs exogenous inputs over the forecast, but the data ends before "
                                   "the horizon; extend the 'input' variable into the future first")
        out.append(rollout_from(model, values, times, np.array([o]), horizon, n_samples, seed, inputs)[0])
        starts.append(times[o])
    if len(set(starts)) > 1:
        raise DatasetError("the series end at different times; forecast them one at a time "
                           "(ds.isel(trajectory=[k])) so each gets its own time axis")
    t = future_times(merged, starts[0], horizon)
    state = np.stack(out, axis=1)                          # (S, N, H, D)
    lost = ~np.isfinite(state).all(axis=3)                 # (S, N, H), from the first runaway value on
    if on_divergence == "raise" and lost.any():
        raise DivergenceError(f"the {model.name} forecast ran away {int(np.argmax(lost.any(axis=(0, 1)))) + 1} "
                              f"samples after its origin (it left {RUNAWAY_SPANS:g} times the range of the data, or "
                              "the finite numbers); the learned dynamics are unstable there",
                              fix="forecast a shorter horizon, retrain (more data, a smaller ridge/step), try another "
                                  "learner, or pass on_divergence='mark' to keep the forecast up to that step")
    units = model.meta.get("series", {}).get("units") or (
        [str(u) for u in ds["units"].values] if "units" in ds.coords else None)
    attrs = {"title": f"{model.name} forecast", "generator": "workbench.Model.forecast", "learner": model.name,
             "kind": "forecast", "system": ds.attrs.get("system"), "source": ds.attrs.get("source"),
             "forecast_origin": float(starts[0]), "seed": int(seed)}
    dates = timeaxis.to_datetimes(ds, np.array([starts[0]]))
    if dates is not None:
        attrs["forecast_origin_date"] = str(np.datetime_as_string(dates[0], unit="s"))
    result = make_dataset(np.where(lost[..., None], 0.0, state), t, variables, units=units, time_units=str(ds["time"].attrs.get("units", "1")),
                          trajectory=merged["trajectory"].values, attrs=attrs)
    if "calendar" in ds["time"].attrs:
        result["time"].attrs["calendar"] = ds["time"].attrs["calendar"]
    if state.shape[0] > 1:
        _add_interval(result, state)
    if on_divergence == "mark":
        from ..model import mark_diverged
        mark_diverged(result, lost, t, "time of the first runaway value of each forecast path (NaN: stayed bounded)")
    return result


def _cutoff(ds: xr.Dataset, origin: Optional[Any]) -> float:
    """The latest time a forecast origin may have: the end (None), just before the test period
    (``"test"``), or ``origin`` as a time or date."""
    if origin is None:
        return np.inf
    if isinstance(origin, str) and origin == "test":
        return float(np.nextafter(test_start_time(ds, None), -np.inf))
    return timeaxis.to_numeric(ds, origin, "origin")


def _add_interval(result: xr.Dataset, state: np.ndarray) -> None:
    """``lower_80``/``upper_80``: the central ``INTERVAL_LEVEL`` interval of the samples ``(S, N, H, D)``
    (conformal where the model was calibrated)."""
    tail = (1 - INTERVAL_LEVEL) / 2
    with np.errstate(invalid="ignore"):
        bounds = np.quantile(state, [tail, 1 - tail], axis=0)
    pct = int(round(100 * INTERVAL_LEVEL))
    for name, b in ((f"lower_{pct}", bounds[0]), (f"upper_{pct}", bounds[1])):
        result[name] = (("trajectory", "time", "variable"), b,
                        {"long_name": f"{name.split('_')[0]} bound of the central {pct}% forecast interval",
                         "units": result["state"].attrs.get("units", "1")})


def evaluate_rolling(model: Any, ds: xr.Dataset, horizons: Sequence[int] = (1,), *, n_samples: int = 32,
                     seed: int = 0, start: Optional[Any] = None, max_origins: int = DEFAULT_MAX_ORIGINS,
                     period: Optional[float] = None, ar_order: Optional[int] = None,
                     refit: Optional[str] = None) -> xr.Dataset:
    """Rolling-origin errors of ``model`` by horizon, with the baselines and skills.

    Arguments:
        model: a fitted :class:`workbench.Model`.
        ds: data with a test period (:func:`workbench.split_time`, or ``start=``).
        horizons: forecast steps to score.
        n_samples: paths per origin for stochastic learners (and baseline ensembles).
        seed, start, max_origins, period, ar_order: see :func:`workbench.evaluation.rolling.rolling_evaluation`.
        refit: ``"each"``: refit the model on the data up to every origin before forecasting from it
            (closed-form learners only, :mod:`workbench.evaluation.refit`); None: the model as fitted.

    Returns:
        Dataset over ``(horizon, variable)``: ``rmse`` and ``mae`` (the model, in the data's
        units; a runaway path counts as infinitely wrong), ``rmse_<baseline>``, ``mae_<baseline>``,
        ``rmse_skill_vs_climatology``, ``_vs_persistence``, ``_vs_ar`` and, for stochastic
        learners, ``crps`` and ``crps_skill_vs_*``; ``n_origins``; attrs name the baselines.
    """
    forecast_from = refit_each(model, ds) if check_refit(refit, model) else rollout_from
    stochastic = model.learner.capabilities().stochastic or bool(model.meta.get("calibration"))
    merged = merge_segments(ds)
    inputs = list(merged["input"].values) if "input" in merged else None
    need = recipe(model).warmup + model.learner.capabilities().context
    calls = iter(range(merged.sizes["trajectory"]))  # rolling_evaluation visits the series in order

    def model_fn(values, times, origins, horizon, samples):
        k = next(calls)
        return forecast_from(model, values, times, origins, horizon, samples, seed,
                             inputs[k] if inputs is not None else None)

    scores = rolling_evaluation(ds, {"model": model_fn}, horizons, stochastic=["model"] if stochastic else [],
                                n_samples=n_samples, start=start, max_origins=max_origins, period=period,
                                ar_order=ar_order, seed=seed, context=need)
    out = xr.merge([scores, skills(scores, "model", crps=stochastic)], combine_attrs="override")
    out = out.rename({name: name[: -len("_model")] for name in out.data_vars if name.endswith("_model")})
    out.attrs.update({"learner": model.name, "mode": "rolling", "n_samples": int(n_samples) if stochastic else 1,
                      "refit": refit or "none"})
    return out


__all__ = ["evaluate_rolling", "forecast", "future_times", "rollout_from"]
