"""Rolling-origin evaluation: forecasts from many origins over the test period, error by horizon.

Every sample of the test period (subsampled evenly to ``max_origins``) is a forecast origin; a
forecaster sees the series up to and including the origin and predicts the next ``H`` samples.
Errors are pooled over origins (and series) for each horizon, beside the same errors of the
reference forecasts of :mod:`workbench.evaluation.baselines`, fitted on the data before the test period.
Skill is ``1 - RMSE_model / RMSE_baseline`` (Murphy 1988) and, for ensembles,
``1 - CRPS_model / CRPS_baseline`` with the fair ensemble CRPS (Ferro 2014). See Tashman (2000),
"Out-of-sample tests of forecasting accuracy", for the rolling-origin design.

RMSE and MAE score a point forecast: a baseline's deterministic conditional mean
(:meth:`workbench.evaluation.baselines.Baseline.point`), a forecaster's ensemble mean, so the baselines'
errors and every skill against them are the same for every seed; the baselines' random
ensembles enter CRPS only. RMSE, MAE and CRPS are in each variable's units (the ``units``
coordinate of ``variable``; also the ``units`` attribute when all variables share one), skills
are dimensionless.

Work is bounded before anything is allocated: a horizon longer than the test period (no target
to score) is refused with the longest one it allows, and the forecast arrays (origins x
ensemble x horizon x variables) must fit the memory budget of :mod:`workbench.safety`.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import xarray as xr

from ..data import time as timeaxis
from .baselines import Baseline, make_baselines
from ..data.schema import observation_mask
from ..errors import BadParameterError, DatasetError
from .metrics import _crps_rows
from ..safety import check_allocation, check_integer
from ..data.splits import merge_segments, time_split_info

# (values (T, D), times (T,), origins (O,), H, n_samples) -> forecasts (O, S, H, D)
ForecastFn = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], np.ndarray]
DEFAULT_MAX_ORIGINS = 200
MAX_HORIZON = 100_000
# ensemble members per origin (as Model.predict's n_samples)
MAX_SAMPLES = 100_000
# the nominal level of the central interval whose coverage is reported (coverage_<name>)
INTERVAL_LEVEL = 0.8
ALL_BASELINES = ("persistence", "climatology", "ar", "arima", "ets", "theta")


def naive_scale(train: Sequence[np.ndarray], season: int = 1) -> np.ndarray:
    """MASE's scale (Hyndman & Koehler 2006): the in-sample MAE ``(D,)`` of the (seasonal, lag
    ``season``) naive forecast on the training series, pooled over series; gaps skipped."""
    errors = [np.abs(s[season:] - s[:-season]) for s in train if len(s) > season]
    pooled = np.concatenate(errors) if errors else np.full((1, train[0].shape[1]), np.nan)
    with np.errstate(invalid="ignore"):
        scale = np.nanmean(pooled, axis=0)
    return np.where(scale > 0, scale, np.nan)


def series_arrays(ds: xr.Dataset) -> tuple[list[np.ndarray], np.ndarray]:
    """Each full series as ``(T, D)`` with ``NaN`` where unobserved, and the shared times."""
    merged = merge_segments(ds)
    observed = observation_mask(merged)
    values = np.where(observed[..., None], merged["state"].values, np.nan)
    return list(values), merged["time"].values.astype(np.float64)


def extended_times(times: np.ndarray, extra: int) -> np.ndarray:
    """``times`` followed by ``extra`` more at the median step (targets beyond the data do not exist)."""
    step = timeaxis.median_step(times)
    return np.concatenate([times, times[-1] + step * np.arange(1, extra + 1)])


def baseline_fn(baseline: Baseline, seed: int = 0) -> ForecastFn:
    """A fitted baseline as a batched forecaster over origins: its ensemble, or with one sample its point forecast."""

    def forecast(values, times, origins, horizon, n_samples):
        t = extended_times(times, horizon)
        if n_samples <= 1:
            return np.stack([baseline.point(values[: o + 1], t[: o + 1], t[o + 1: o + 1 + horizon])[None]
                             for o in origins])
        rng = np.random.default_rng(seed)
        runs = [baseline.forecast(values[: o + 1], t[: o + 1], t[o + 1: o + 1 + horizon], n_samples, rng)
                for o in origins]
        width = max(r.shape[0] for r in runs)
        return np.stack([np.broadcast_to(r, (width,) + r.shape[1:]) for r in runs])

    return forecast


def test_start_time(ds: xr.Dataset, start: Optional[object]) -> float:
    """Where the test period begins: ``start`` (time, date or fraction) or the recorded time split."""
    if start is None:
        info = time_split_info(ds)
        if not info or info.get("test_start") is None:
            raise DatasetError("rolling evaluation needs a test period: split the data with "
                               "workbench.split_time(ds, test=0.15) or pass start=<time or date>")
        return float(info["test_start"])
    if isinstance(start, float) and 0 < start < 1:
        t = ds["time"].values[observation_mask(ds).any(0)]
        return float(t[int(round((1 - start) * (len(t) - 1)))])
    return timeaxis.to_numeric(ds, start, "start")


def origins_for(values: np.ndarray, times: np.ndarray, start: float, max_origins: int) -> np.ndarray:
    """Observed samples whose next sample lies in the test period, at most ``max_origins`` evenly spaced."""
    observed = np.isfinite(values).all(1)
    first_target = int(np.searchsorted(times, start))
    candidates = np.flatnonzero(observed[: len(times) - 1])
    candidates = candidates[candidates >= first_target - 1]
    if candidates.size > max_origins:
        candidates = candidates[np.unique(np.linspace(0, candidates.size - 1, max_origins).round().astype(int))]
    return candidates


def fair_crps(samples: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Fair CRPS of ensembles ``samples`` (S, N) against ``obs`` (N,); the absolute error when S = 1."""
    if samples.shape[0] == 1:
        return np.abs(samples[0] - obs)
    return _crps_rows(samples.T, obs, fair=True)


def score(forecasts: list[np.ndarray], points: list[np.ndarray], truths: list[np.ndarray],
          horizons: Sequence[int]) -> dict[str, np.ndarray]:
    """RMSE, MAE (of the point forecasts), CRPS and the coverage of the central ``INTERVAL_LEVEL``
    interval (of the ensembles; NaN for one member), each ``(len(horizons), D)``, and the number
    of scored origins per horizon.

    Arguments:
        forecasts: ensembles ``(O, S, H, D)`` per series.
        points: point forecasts ``(O, H, D)`` per series.
        truths: the observed values ``(O, H, D)`` per series, ``NaN`` where unobserved.
        horizons: the horizons (1-based steps) to score.
    """
    fc = np.concatenate(forecasts)
    point = np.concatenate(points)
    y = np.concatenate(truths)
    dim = y.shape[-1]
    rmse, mae, crps, cover = (np.full((len(horizons), dim), np.nan) for _ in range(4))
    count = np.zeros(len(horizons), dtype=int)
    for i, h in enumerate(horizons):
        target = y[:, h - 1]
        ok = np.isfinite(target).all(1)
        count[i] = int(ok.sum())
        if not ok.any():
            continue
        error = point[ok, h - 1] - target[ok]
        rmse[i] = np.sqrt((error ** 2).mean(0))
        mae[i] = np.abs(error).mean(0)
        members = fc[ok, :, h - 1]    # (n, S, D)
        crps[i] = [fair_crps(members[:, :, d].T, target[ok, d]).mean() for d in range(dim)]
        if members.shape[1] > 1:  # the central interval of the ensemble at the nominal level
            tail = (1 - INTERVAL_LEVEL) / 2
            low, high = np.quantile(members, [tail, 1 - tail], axis=1)
            cover[i] = ((target[ok] >= low) & (target[ok] <= high)).mean(0)
    return {"rmse": rmse, "mae": mae, "crps": crps, "coverage": cover, "n_origins": count}


def check_horizons(horizons: Sequence[int], longest: int) -> list[int]:
    """``horizons`` sorted without repeats, each a whole number in ``[1, longest]``.

    Arguments:
        horizons: forecast steps asked for.
        longest: the longest horizon the test period can score (its number of samples).

    Raises:
        BadParameterError: naming the largest allowed horizon.
    """
    if isinstance(horizons, (str, bytes)) or not hasattr(horizons, "__iter__"):
        raise BadParameterError(f"horizons must be a list of forecast steps, got {horizons!r}",
                                fix="pass e.g. horizons=[1, 3, 6]")
    steps = sorted({check_integer(h, "each horizon", 1) for h in horizons})
    if not steps:
        raise BadParameterError("horizons is empty", fix="pass e.g. horizons=[1, 3, 6]")
    if steps[-1] > min(longest, MAX_HORIZON):
        reason = (f"reaches past the test period, which has {longest} samples after its first forecast origin"
                  if steps[-1] > longest else f"is more than the {MAX_HORIZON} steps a rolling evaluation allows")
        raise BadParameterError(f"horizon {steps[-1]} {reason}", fix=f"use horizons <= {min(longest, MAX_HORIZON)}, "
                                "or start the test period earlier (split_time with a larger test, or start=)")
    return steps


def check_work(n_series: int, n_origins: int, n_samples: int, horizon: int, dim: int, n_forecasters: int) -> None:
    """Refuse a rolling evaluation whose forecast arrays would exceed the memory budget."""
    nbytes = 8 * n_series * n_origins * horizon * dim * (n_forecasters * n_samples + 2)
    check_allocation(nbytes, f"rolling forecasts ({n_series} series x {n_origins} origins x {n_samples} samples x "
                             f"{horizon} steps x {dim} variables, {n_forecasters} forecasters)")


def _units_attrs(ds: xr.Dataset) -> dict[str, str]:
    """The ``units`` attribute of a score in the data's units: the variables' shared unit, or none when they differ."""
    units = {str(u) for u in ds["units"].values} if "units" in ds.coords else set()
    return {"units": units.pop()} if len(units) == 1 else {}


def rolling_evaluation(ds: xr.Dataset, forecasters: dict[str, ForecastFn], horizons: Sequence[int], *,
                       stochastic: Sequence[str] = (), n_samples: int = 32, start: Optional[object] = None,
                       max_origins: int = DEFAULT_MAX_ORIGINS, period: Optional[float] = None,
                       ar_order: Optional[int] = None, seed: int = 0, context: int = 0,
                       statistical: bool = True) -> xr.Dataset:
    """Rolling-origin errors by horizon of ``forecasters`` and of the three baselines.

    Arguments:
        ds: the data (a :func:`workbench.split_time` result, or any data with ``start`` given).
        forecasters: name -> batched forecaster (see ``ForecastFn``); the first is "the model".
        horizons: forecast steps to score (1 = the next sample).
        stochastic: names of forecasters whose ensembles are scored by CRPS.
        n_samples: ensemble size for stochastic forecasters and the baselines' ensembles.
        start: the test period's start when ``ds`` records none (time, date or fraction).
        max_origins: at most this many origins per series (evenly spaced).
        period: the climatology's season in time units (default: detected from training data).
        ar_order: AR order (default: by AIC).
        seed: seeds ensembles.
        context: samples of history the model needs before an origin (origins with less are skipped).
        statistical: also score auto-ARIMA, ETS and Theta (:mod:`workbench.learners.backbones`).

    Returns:
        Dataset with dims ``(horizon, variable)``: ``rmse_<name>``, ``mae_<name>`` (and
        ``crps_<name>``) for each forecaster and baseline in the data's units (coordinate
        ``units(variable)``); ``mase_<name>`` (MAE over the training period's in-sample naive
        MAE, seasonal naive when the climatology found a season: ``attrs["mase_season"]``);
        ``coverage_<name>``, the fraction of targets inside the central 80% interval of each
        ensemble; ``n_origins(horizon)``, and attrs describing the baselines.

    Raises:
        BadParameterError: a horizon past the test period (naming the longest allowed), or a bad
            ``n_samples``/``max_origins``; ResourceLimitError: forecasts over the memory budget;
            DatasetError: no test period, or a horizon no origin can score.
    """
    n_samples = check_integer(n_samples, "n_samples", 1, MAX_SAMPLES)
    max_origins = check_integer(max_origins, "max_origins", 1)
    series, times = series_arrays(ds)
    t0 = test_start_time(ds, start)
    first_test = int(np.searchsorted(times, t0))
    # the first origin is the sample before the test period, so its targets reach the last sample
    horizons = check_horizons(horizons, len(times) - first_test)
    H = max(horizons)
    check_work(len(series), min(max_origins, len(times) - first_test + 1), n_samples, H, len(ds["variable"]),
               len(forecasters) + 3)
    train = [s[:first_test] for s in series]
    train_times = [times[:first_test]] * len(train)
    baselines = [b.fit(train, train_times) for b in
                 make_baselines(period, ar_order, calendar_days=timeaxis.step_label(ds) == "days",
                                statistical=statistical)]
    season = next((int(b.bins) for b in baselines if getattr(b, "bins", 1) > 1), 1)
    scale = naive_scale(train, season)
    everything = dict(forecasters)
    everything.update({b.name: baseline_fn(b, seed) for b in baselines})
    stochastic = set(stochastic) | {b.name for b in baselines if b.stochastic}
    points = {b.name: baseline_fn(b) for b in baselines if b.stochastic}
    results = _forecast_origins(series, times, t0, everything, points, stochastic, H, n_samples, max_origins, context)
    out = _score_table(ds, results, horizons, times, forecasters, stochastic, scale)
    out.attrs.update({"test_start": t0, "baselines": str([b.describe() for b in baselines]),
                      "mase_season": season, "interval_level": INTERVAL_LEVEL})
    return out


def _forecast_origins(series: list[np.ndarray], times: np.ndarray, t0: float, forecasters: dict[str, ForecastFn],
                      points: dict[str, ForecastFn], stochastic: set, H: int, n_samples: int, max_origins: int,
                      context: int) -> dict[str, dict[str, list]]:
    """Each forecaster's ensembles, points and targets from every series' test origins:
    ``name -> {"fc", "point", "y"}`` lists with one entry per series that has an origin."""
    results: dict[str, dict[str, list]] = {name: {"fc": [], "point": [], "y": []} for name in forecasters}
    for values in series:
        origins = origins_for(values, times, t0, max_origins)
        origins = origins[origins >= context]
        if origins.size == 0:
            continue
        padded = np.concatenate([values, np.full((H, values.shape[1]), np.nan)])
        truth = np.stack([padded[o + 1: o + 1 + H] for o in origins])
        for name, fn in forecasters.items():
            samples = n_samples if name in stochastic else 1
            fc = np.asarray(fn(values, times, origins, H, samples), dtype=np.float64)
            # a baseline's point is its conditional mean; a forecaster's, the mean of its ensemble
            point = points[name](values, times, origins, H, 1)[:, 0] if name in points else fc.mean(1)
            results[name]["fc"].append(fc)
            results[name]["point"].append(point)
            results[name]["y"].append(truth)
    if not results[next(iter(forecasters))]["fc"]:
        raise DatasetError("no forecast origin in the test period (each needs an observed sample before it)",
                           fix="start the test period later, or give data with observed samples there")
    return results


def _score_table(ds: xr.Dataset, results: dict[str, dict[str, list]], horizons: list[int], times: np.ndarray,
                 forecasters: dict[str, ForecastFn], stochastic: set, scale: np.ndarray) -> xr.Dataset:
    """The scores of :func:`rolling_evaluation` by horizon and variable, labelled with units and lead times."""
    variables = ds["variable"].values
    coords = {"horizon": ("horizon", np.asarray(horizons), {"long_name": "forecast horizon", "units": "samples"}),
              "variable": variables}
    if "units" in ds.coords:
        coords["units"] = ("variable", np.asarray([str(u) for u in ds["units"].values], dtype=str))
    out = xr.Dataset(coords=coords)
    units = _units_attrs(ds)
    step = timeaxis.median_step(times)
    out = out.assign_coords(lead_time=("horizon", np.asarray(horizons) * step,
                                       {"long_name": "lead time (median step x horizon)",
                                        "units": timeaxis.step_label(ds)}))
    for name, res in results.items():
        scores = score(res["fc"], res["point"], res["y"], horizons)
        out[f"rmse_{name}"] = (("horizon", "variable"), scores["rmse"],
                               {"long_name": f"RMSE of {name} by horizon", **units})
        out[f"mae_{name}"] = (("horizon", "variable"), scores["mae"],
                              {"long_name": f"mean absolute error of {name} by horizon", **units})
        out[f"mase_{name}"] = (("horizon", "variable"), scores["mae"] / scale,
                               {"long_name": f"mean absolute scaled error of {name} by horizon", "units": "1"})
        if name in stochastic or name not in forecasters:
            out[f"crps_{name}"] = (("horizon", "variable"), scores["crps"],
                                   {"long_name": f"fair CRPS of {name} by horizon", **units})
        if name in stochastic:
            out[f"coverage_{name}"] = (("horizon", "variable"), scores["coverage"],
                                       {"long_name": f"fraction of targets inside the central {INTERVAL_LEVEL:.0%} "
                                                     f"interval of {name}'s ensemble", "units": "1"})
        out["n_origins"] = (("horizon",), scores["n_origins"], {"long_name": "scored forecast origins"})
    unscored = [h for h, n in zip(horizons, out["n_origins"].values) if n == 0]
    if unscored:
        scored = [h for h, n in zip(horizons, out["n_origins"].values) if n > 0]
        raise DatasetError(f"no forecast origin has an observed target at horizons {unscored} (the test period's "
                           "samples there are missing, or the model's context leaves no origin)",
                           fix=f"drop them; the longest scored horizon is {max(scored)}" if scored else
                           "start the test period earlier or give it more observed samples")
    return out


def skills(scores: xr.Dataset, model: str, baselines: Sequence[str] = ALL_BASELINES,
           crps: bool = False) -> xr.Dataset:
    """``rmse_skill_vs_<baseline>`` (and ``crps_skill_vs_<baseline>``): 1 - model / baseline, by
    horizon; ``rmse_skill_vs_best`` (``crps_skill_vs_best``) against the lowest baseline error
    at each horizon and variable."""
    out = xr.Dataset()
    present = {b: next((n for n in (b, f"{b}_seasonal") if f"rmse_{n}" in scores), None) for b in baselines}
    found = [n for n in present.values() if n is not None]
    for metric in ("rmse",) + (("crps",) if crps and f"crps_{model}" in scores else ()):
        candidates = [scores[f"{metric}_{n}"] for n in found if f"{metric}_{n}" in scores]
        if candidates:
            best = xr.concat(candidates, "baseline").min("baseline")
            out[f"{metric}_skill_vs_best"] = (1 - scores[f"{metric}_{model}"] / best).assign_attrs(
                long_name=f"{metric.upper()} skill vs the best baseline at each horizon", units="1")
    for b, name in present.items():
        if name is None:
            continue
        out[f"rmse_skill_vs_{b}"] = (1 - scores[f"rmse_{model}"] / scores[f"rmse_{name}"]).assign_attrs(
            long_name=f"RMSE skill vs {name} (1 = perfect, 0 = no better, < 0 = worse)", units="1")
        if crps and f"crps_{model}" in scores:
            out[f"crps_skill_vs_{b}"] = (1 - scores[f"crps_{model}"] / scores[f"crps_{name}"]).assign_attrs(
                long_name=f"CRPS skill vs {name} (baseline ensembles: climatological values, AR innovations; "
                          "persistence: its absolute error)", units="1")
    return out


__all__ = ["ALL_BASELINES", "DEFAULT_MAX_ORIGINS", "INTERVAL_LEVEL", "MAX_HORIZON", "naive_scale", "ForecastFn", "baseline_fn", "fair_crps", "rolling_evaluation", "series_arrays",
           "skills"]
