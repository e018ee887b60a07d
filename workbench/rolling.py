"""Rolling-origin evaluation: forecasts from many origins over the test period, error by horizon.

Every sample of the test period (subsampled evenly to ``max_origins``) is a forecast origin; a
forecaster sees the series up to and including the origin and predicts the next ``H`` samples.
Errors are pooled over origins (and series) for each horizon, beside the same errors of the
reference forecasts of :mod:`workbench.baselines`, fitted on the data before the test period.
Skill is ``1 - RMSE_model / RMSE_baseline`` (Murphy 1988) and, for ensembles,
``1 - CRPS_model / CRPS_baseline`` with the fair ensemble CRPS (Ferro 2014). See Tashman (2000),
"Out-of-sample tests of forecasting accuracy", for the rolling-origin design.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import xarray as xr

from . import timeaxis
from .baselines import Baseline, make_baselines
from .dataset import observation_mask
from .errors import BadParameterError, DatasetError
from .metrics import _crps_rows
from .splits import merge_segments, time_split_info

# (values (T, D), times (T,), origins (O,), H, n_samples) -> forecasts (O, S, H, D)
ForecastFn = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], np.ndarray]
DEFAULT_MAX_ORIGINS = 200


def series_arrays(ds: xr.Dataset) -> tuple[list[np.ndarray], np.ndarray]:
    """Each full series as ``(T, D)`` with ``NaN`` where unobserved, and the shared times."""
    merged = merge_segments(ds)
    observed = observation_mask(merged)
    values = np.where(observed[..., None], merged["state"].values, np.nan)
    return list(values), merged["time"].values.astype(np.float64)


def extended_times(times: np.ndarray, extra: int) -> np.ndarray:
    """``times`` followed by ``extra`` more at the median step (targets beyond the data do not exist)."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    return np.concatenate([times, times[-1] + step * np.arange(1, extra + 1)])


def baseline_fn(baseline: Baseline, seed: int = 0) -> ForecastFn:
    """A fitted baseline as a batched forecaster over origins."""

    def forecast(values, times, origins, horizon, n_samples):
        t = extended_times(times, horizon)
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


def score(forecasts: list[np.ndarray], truths: list[np.ndarray], horizons: Sequence[int]) -> dict[str, np.ndarray]:
    """RMSE and CRPS ``(len(horizons), D)`` and the number of scored origins per horizon."""
    fc = np.concatenate(forecasts)    # (O, S, H, D)
    y = np.concatenate(truths)        # (O, H, D)
    dim = y.shape[-1]
    rmse = np.full((len(horizons), dim), np.nan)
    crps = np.full((len(horizons), dim), np.nan)
    count = np.zeros(len(horizons), dtype=int)
    for i, h in enumerate(horizons):
        target = y[:, h - 1]
        ok = np.isfinite(target).all(1)
        count[i] = int(ok.sum())
        if not ok.any():
            continue
        members = fc[ok, :, h - 1]    # (n, S, D)
        rmse[i] = np.sqrt(((members.mean(1) - target[ok]) ** 2).mean(0))
        crps[i] = [fair_crps(members[:, :, d].T, target[ok, d]).mean() for d in range(dim)]
    return {"rmse": rmse, "crps": crps, "n_origins": count}


def rolling_evaluation(ds: xr.Dataset, forecasters: dict[str, ForecastFn], horizons: Sequence[int], *,
                       stochastic: Sequence[str] = (), n_samples: int = 32, start: Optional[object] = None,
                       max_origins: int = DEFAULT_MAX_ORIGINS, period: Optional[float] = None,
                       ar_order: Optional[int] = None, seed: int = 0, context: int = 0) -> xr.Dataset:
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

    Returns:
        Dataset with dims ``(horizon, variable)``: ``rmse_<name>`` (and ``crps_<name>``) for each
        forecaster and baseline, ``n_origins(horizon)``, and attrs describing the baselines.
    """
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1:
        raise BadParameterError(f"horizons must be positive step counts, got {horizons}")
    series, times = series_arrays(ds)
    t0 = test_start_time(ds, start)
    first_test = int(np.searchsorted(times, t0))
    train = [s[:first_test] for s in series]
    train_times = [times[:first_test]] * len(train)
    baselines = [b.fit(train, train_times) for b in
                 make_baselines(period, ar_order, calendar_days=timeaxis.step_label(ds) == "days")]
    everything = dict(forecasters)
    everything.update({b.name: baseline_fn(b, seed) for b in baselines})
    stochastic = set(stochastic) | {b.name for b in baselines if b.stochastic}
    H = max(horizons)
    results: dict[str, dict[str, list]] = {name: {"fc": [], "y": []} for name in everything}
    for values in series:
        origins = origins_for(values, times, t0, max_origins)
        origins = origins[origins >= context]
        if origins.size == 0:
            continue
        padded = np.concatenate([values, np.full((H, values.shape[1]), np.nan)])
        truth = np.stack([padded[o + 1: o + 1 + H] for o in origins])
        for name, fn in everything.items():
            samples = n_samples if name in stochastic else 1
            results[name]["fc"].append(np.asarray(fn(values, times, origins, H, samples), dtype=np.float64))
            results[name]["y"].append(truth)
    if not results[next(iter(everything))]["fc"]:
        raise DatasetError("no forecast origin in the test period (each needs an observed sample before it)")
    variables = ds["variable"].values
    out = xr.Dataset(coords={"horizon": ("horizon", np.asarray(horizons),
                                         {"long_name": "forecast horizon", "units": "samples"}),
                             "variable": variables})
    step = float(np.median(np.diff(times)))
    out = out.assign_coords(lead_time=("horizon", np.asarray(horizons) * step,
                                       {"long_name": "lead time (median step x horizon)",
                                        "units": timeaxis.step_label(ds)}))
    for name, res in results.items():
        scores = score(res["fc"], res["y"], horizons)
        out[f"rmse_{name}"] = (("horizon", "variable"), scores["rmse"], {"long_name": f"RMSE of {name} by horizon"})
        if name in stochastic or name not in forecasters:
            out[f"crps_{name}"] = (("horizon", "variable"), scores["crps"],
                                   {"long_name": f"fair CRPS of {name} by horizon"})
        out["n_origins"] = (("horizon",), scores["n_origins"], {"long_name": "scored forecast origins"})
    out.attrs.update({"test_start": t0, "baselines": str([b.describe() for b in baselines])})
    return out


def skills(scores: xr.Dataset, model: str, baselines: Sequence[str] = ("persistence", "climatology", "ar"),
           crps: bool = False) -> xr.Dataset:
    """``rmse_skill_vs_<baseline>`` (and ``crps_skill_vs_<baseline>``): 1 - model / baseline, by horizon."""
    out = xr.Dataset()
    present = {b: next((n for n in (b, f"{b}_seasonal") if f"rmse_{n}" in scores), None) for b in baselines}
    for b, name in present.items():
        if name is None:
            continue
        out[f"rmse_skill_vs_{b}"] = (1 - scores[f"rmse_{model}"] / scores[f"rmse_{name}"]).assign_attrs(
            long_name=f"RMSE skill vs {name} (1 = perfect, 0 = no better, < 0 = worse)")
        if crps and f"crps_{model}" in scores:
            out[f"crps_skill_vs_{b}"] = (1 - scores[f"crps_{model}"] / scores[f"crps_{name}"]).assign_attrs(
                long_name=f"CRPS skill vs {name} (baseline ensembles: climatological values, AR innovations; "
                          "persistence: its absolute error)")
    return out


__all__ = ["DEFAULT_MAX_ORIGINS", "ForecastFn", "baseline_fn", "fair_crps", "rolling_evaluation", "series_arrays",
           "skills"]
