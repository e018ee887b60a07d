"""``fit(ds, learner="auto")``: choose a forecaster on validation origins, calibrate its intervals.

The series is merged once into whole series; the data before the test period gets a second time
split, recorded as labels, not cut (:func:`workbench.data.splits.label_split`): its last
``SELECTION_FRACTION`` (at least the longest scored horizon plus one sample) becomes the
*selection* period. Every candidate (the statistical backbones, cheap closed-form learners with a
few recipes, and ``node`` when the budget allows) is fitted with the same
:class:`~workbench.data.series.SeriesRecipe` on the data before it and forecasts from every origin
inside it; the test period is never seen. A candidate's score is its RMSE at each horizon divided
by the in-sample naive MAE (MASE's scale), averaged over horizons and variables; candidates whose
forecasts run away or fail are rejected with the reason. The winner is refitted on all the data
before the test period, and its validation residuals by horizon give split-conformal intervals
(Stankeviciute, Alaa & van der Schaar, "Conformal time-series forecasting", NeurIPS 2021):
``forecast`` returns the point plus the residual quantiles (``model.meta["calibration"]``). The
table of candidates is ``model.meta["selection"]``.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace
from typing import Any, Optional, Sequence, Union

import numpy as np
import xarray as xr

from ..data.series import SERIES_OPTIONS, SeriesRecipe
from ..data.splits import label_split, merge_segments, time_split_info
from ..errors import DatasetError, DivergenceError, UnsupportedError, WorkbenchError
from ..evaluation.forecast import rollout_from
from ..evaluation.rolling import naive_scale, series_arrays, test_start_time
from ..safety import check_integer

SELECTION_FRACTION = 0.2
DEFAULT_HORIZON = 8
DEFAULT_BUDGET = 180.0
# the validation residuals are stored at this many quantile levels per horizon
CALIBRATION_LEVELS = 40
# at least this many samples before the selection period (the backbones need 8 plus a season)
MIN_FIT_SAMPLES = 16
# node joins the candidates only with this much budget left (seconds): it trains for a third of it
NODE_BUDGET = 120.0
CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("arima", {}), ("ets", {}), ("theta", {}),
    ("nvar", {"delays": 2}), ("nvar", {"delays": 4}), ("esn", {}),
)


def selection_split(ds: xr.Dataset, horizon: int) -> tuple[xr.Dataset, int]:
    """The whole series before the test period, labelled with its last part as a selection "test"
    period (not cut into pieces), and the longest horizon that period can score.

    Arguments:
        ds: a time-split series, as pieces or as whole series (``attrs["time_split"]``).
        horizon: the longest horizon wanted.

    Raises:
        DatasetError: no time split, or too few samples for one validation origin (naming the length needed).
    """
    info = time_split_info(ds)
    if info is None or info.get("test_start") is None:
        raise DatasetError("learner='auto' chooses on validation origins before a test period, and this data has none",
                           fix="split it first: wb.split_time(ds, val=0.1, test=0.15)")
    whole = merge_segments(ds) if "series" in ds.coords else ds
    before = whole.sel(time=whole["time"] < float(info["test_start"]))
    n = before.sizes["time"]
    held = max(2, int(round(SELECTION_FRACTION * n)))
    needed = MIN_FIT_SAMPLES + 2 + int(np.ceil(1 / SELECTION_FRACTION))
    if n - held < MIN_FIT_SAMPLES or n < needed:
        raise DatasetError(f"the series has {n} samples before its test period, too short for any validation origin "
                           f"of learner='auto'", fix=f"give at least {needed} samples before the test period (a longer "
                           "series or a smaller test fraction), or fit one learner by name, e.g. learner='arima'")
    times = before["time"].values.astype(np.float64)
    return label_split(before, None, float(times[n - held])), int(min(horizon, held))


def validation_residuals(model: Any, sel: xr.Dataset, horizon: int) -> np.ndarray:
    """``truth - point`` ``(O, horizon, D)`` from every origin of the selection period (NaN where unobserved)."""
    series, times = series_arrays(sel)
    start = test_start_time(sel, None)
    first = int(np.searchsorted(times, start))
    context = model.learner.capabilities().context
    need = SeriesRecipe.from_json(model.meta.get("series") or {}).warmup + context
    out = []
    for values in series:
        origins = np.arange(max(first - 1, need), len(times) - 1)
        origins = origins[np.isfinite(values[origins]).all(1)]
        if origins.size == 0:
            continue
        point = rollout_from(model, values, times, origins, horizon, 1)[:, 0]      # (O, H, D)
        padded = np.concatenate([values, np.full((horizon, values.shape[1]), np.nan)])
        truth = np.stack([padded[o + 1: o + 1 + horizon] for o in origins])
        out.append(truth - point)
    if not out:
        raise DatasetError("no validation origin has enough history for this candidate")
    return np.concatenate(out)


def candidate_score(residuals: np.ndarray, scale: np.ndarray) -> tuple[float, list[float]]:
    """Mean over horizons and variables of RMSE / scale, and the RMSE by horizon (first variable)."""
    with np.errstate(invalid="ignore", over="ignore"):
        rmse = np.sqrt(np.nanmean(residuals ** 2, axis=0))                          # (H, D)
    return float(np.mean(rmse / scale)), [float(v) for v in rmse[:, 0]]


def conformal_table(residuals: np.ndarray) -> list:
    """Residual quantiles ``(H, CALIBRATION_LEVELS, D)`` at levels ``(l + 1/2) / L`` per horizon."""
    levels = (np.arange(CALIBRATION_LEVELS) + 0.5) / CALIBRATION_LEVELS
    table = np.nanquantile(residuals, levels, axis=0)                                # (L, H, D)
    return np.moveaxis(table, 0, 1).tolist()


def fit_auto(ds: xr.Dataset, time_budget: Union[None, float, str] = None, seed: int = 0,
             horizon: int = DEFAULT_HORIZON, candidates: Optional[Sequence[tuple[str, dict]]] = None,
             series: Optional[SeriesRecipe] = None, fit_options: Optional[dict[str, Any]] = None) -> Any:
    """Choose, refit and calibrate a forecaster (see the module docstring).

    Arguments:
        ds: a time-split series (:func:`workbench.split_time`).
        time_budget: seconds (or ``"3m"``) for the whole selection (default 180 s); candidates
            past it are skipped and say so.
        seed: seeds every candidate.
        horizon: the longest horizon scored on the selection origins (and calibrated).
        candidates: ``(learner, options)`` pairs (default :data:`CANDIDATES`, plus ``node`` when
            the budget allows).
        series: the recipe every candidate fits with (default: gaps filled where the series has
            any, since most candidates need complete samples).
        fit_options: passed to every candidate's ``fit`` (learner options; recipe fields such as
            ``transform`` as keywords when ``series`` is not given).

    Returns:
        The winner refitted on all data before the test period, with ``meta["selection"]`` (one row
        per candidate: learner, options, score, rmse by horizon, status) and ``meta["calibration"]``.

    Raises:
        DatasetError: data too short for a validation origin; DivergenceError: every candidate failed;
        BadParameterError: a recipe field given both in ``series`` and in ``fit_options`` (naming both).
    """
    from .config import TrainConfig
    from .fitting import fit

    budget = TrainConfig(time_budget=time_budget).time_budget if time_budget is not None else DEFAULT_BUDGET
    horizon = check_integer(horizon, "horizon", 1)
    started = time.perf_counter()
    whole = merge_segments(ds) if "series" in ds.coords else ds  # the one merge; the cuts stay labels
    sel, horizon = selection_split(whole, horizon)
    values, times = series_arrays(sel)
    first = int(np.searchsorted(times, test_start_time(sel, None)))
    scale = naive_scale([s[:first] for s in values])
    fit_options = dict(fit_options or {})
    recipe = _recipe(series, fit_options, gappy=any(np.isnan(v).any() for v in values))
    pool = list(candidates or CANDIDATES)
    if candidates is None and budget >= NODE_BUDGET:
        pool.append(("node", {"time_budget": budget / 3}))
    table, best = [], None
    for name, options in pool:
        row: dict[str, Any] = {"learner": name, "options": dict(options), "score": None, "rmse_by_horizon": None}
        if time.perf_counter() - started > budget:
            table.append({**row, "status": "skipped: time budget spent"})
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = fit(sel, learner=name, seed=seed, series=recipe, **{**fit_options, **options})
                residuals = validation_residuals(model, sel, horizon)
            score, rmse = candidate_score(residuals, scale)
            if not np.isfinite(score):
                raise DivergenceError("its validation forecasts ran away")
        except WorkbenchError as exc:
            table.append({**row, "status": f"rejected: {exc.problem}"[:300], "refused": isinstance(exc, UnsupportedError)})
            continue
        table.append({**row, "score": score, "rmse_by_horizon": rmse, "status": "ok"})
        if best is None or score < best[0]:
            best = (score, name, options, residuals)
    if best is None:
        reasons = "; ".join(f"{r['learner']} {r['options'] or ''}: {r['status']}" for r in table)[:600]
        if all(r.get("refused") for r in table):
            raise UnsupportedError(f"no learner='auto' candidate can fit this data: {reasons}",
                                   fix="see the reasons; fit_options={'fill_gaps': True} fills gaps, or fit one "
                                       "learner by name")
        raise DivergenceError("every learner='auto' candidate failed or diverged on the validation origins: "
                              + reasons,
                              fix="check the series for gaps, constant stretches or a transform it needs "
                                  "(transform='log1p' for counts), or fit one learner by name")
    _, name, options, residuals = best
    for row in table:
        row["chosen"] = row["learner"] == name and row["options"] == dict(options) and row["status"] == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit(whole, learner=name, seed=seed, series=recipe, **{**fit_options, **options})
    model.meta["selection"] = table
    model.meta["calibration"] = {"method": "split-conformal per horizon (Stankeviciute et al. 2021)",
                                 "origins": int(len(residuals)), "quantiles": conformal_table(residuals)}
    model.meta["auto"] = {"learner": name, "options": dict(options), "seconds": time.perf_counter() - started,
                          "budget": budget}
    return model


def _recipe(series: Optional[SeriesRecipe], options: dict[str, Any], gappy: bool) -> SeriesRecipe:
    """The candidates' recipe: ``series``, or built from recipe keywords taken out of ``options``;
    gaps are filled unless the caller chose otherwise (the backbones and NVAR need complete samples)."""
    from .fitting import from_keywords

    chosen = series is not None or "fill_gaps" in options
    recipe = from_keywords(SeriesRecipe, series, "series", SERIES_OPTIONS, options) or SeriesRecipe()
    return replace(recipe, fill_gaps=True) if gappy and not chosen else recipe


__all__ = ["CANDIDATES", "fit_auto", "selection_split"]
