"""``fit(ds, learner="auto")``: choose a forecaster on validation origins, calibrate its intervals.

The series is merged once into whole series; the data before the test period gets a second time
split, recorded as labels, not cut (:func:`workbench.data.splits.label_split`): its last
``SELECTION_FRACTION`` (at least the longest scored horizon plus one sample) becomes the
*selection* period. Every candidate (the statistical backbones, cheap closed-form learners with a
few recipes, a linear autoregression whose order AIC picks on the data before the selection period
(the project's AR(p) baseline as a learner: ``nvar`` of degree 1), and ``node`` when the budget
allows) is fitted with the same
:class:`~workbench.data.series.SeriesRecipe` on the data before it and forecasts from every origin
inside it; the test period is never seen. A candidate's score is its RMSE at each horizon divided
by the in-sample naive MAE (MASE's scale), averaged over horizons and variables; candidates whose
forecasts run away or fail are rejected with the reason, and a nonlinear learner (``esn``,
``node``, ``nvar`` of degree 2 or more) stays only on a level-stationary series and where it
beats the linear autoregression significantly (:func:`admit_nonlinear`).

Two forecast combinations (:class:`workbench.learners.combination.Combination`) are candidates
too, scored on the same origins from the members' validation residuals (no extra fits): the
equal-weight combination of ARIMA, ETS and Theta (the M4 competition's "Comb" style, Makridakis et
al. 2020), and the ``TOP_MEMBERS`` best single candidates weighted per horizon by their inverse
validation MSE (Bates & Granger 1969). The weighted one is scored cross-fitted: the residuals of
each half of the origins are combined with the weights of the other half, so its score carries no
in-sample optimism; its stored weights come from all the origins. The lowest score wins, except
that a single candidate must beat the best combination significantly (a small-sample
Diebold-Mariano test, :func:`significantly_better`): selection on a short validation stretch is
noisy, and combinations are the robust choice when the evidence does not separate them.

The winner is refitted on all data before the test period (a combination: each member). Its
intervals are split-conformal per horizon (:mod:`workbench.evaluation.conformal`, Stankeviciute,
Alaa & van der Schaar, NeurIPS 2021) on the residuals of the same learner(s) fitted on the data
before the last ``CALIBRATION_FRACTION`` of the pre-test data and forecasting from every origin in
it: several times the selection period's origins, so the quantiles are steadier and see more of
the series' regimes, at the price of a fit on less data (slightly wide intervals). A forecast
from later origins updates them with the outcomes observed since the fit (a sliding window and an
adaptive scale). ``model.meta["calibration"]`` holds the residuals, their quantiles, the origin
count and the binomial standard error of an 80% interval's coverage at that count. The table of
candidates is ``model.meta["selection"]``.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace
from typing import Any, Optional, Sequence, Union

import numpy as np
import xarray as xr
from scipy.stats import t as student_t

from ..data.series import SERIES_OPTIONS, SeriesRecipe
from ..data.splits import label_split, merge_segments, time_split_info
from ..errors import DatasetError, DivergenceError, UnsupportedError, WorkbenchError
from ..evaluation.conformal import conformal_table, coverage_error
from ..evaluation.forecast import rollout_from
from ..learners.backbones import BACKBONES, kpss_order
from ..evaluation.rolling import naive_scale, series_arrays, test_start_time
from ..safety import check_integer

SELECTION_FRACTION = 0.2
DEFAULT_HORIZON = 8
DEFAULT_BUDGET = 180.0
# the chosen model's intervals are calibrated on forecasts over this last fraction of the data before
# the test period, from a fit on the data before it: more origins, and more of the series' regimes,
# than the selection period's (its quantiles come from tens of origins where they need hundreds)
CALIBRATION_FRACTION = 0.5
# at least this many samples before the selection period (the backbones need 8 plus a season)
MIN_FIT_SAMPLES = 16
# node joins the candidates only with this much budget left (seconds): it trains for a third of it
NODE_BUDGET = 120.0
# the weighted combination takes this many of the best single candidates
TOP_MEMBERS = 3
# a single candidate replaces the best combination, and a nonlinear one joins the candidates, only
# where the Diebold-Mariano test rejects "no better" at this level (one-sided; :func:`significantly_better`)
SELECTION_TEST_LEVEL = 0.05
# cheapest first: the budget is checked before each candidate, so a long series whose ARIMA order
# search spends it still has Theta, ETS and the NVARs scored (and the backbones to combine)
CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("theta", {}), ("ets", {}), ("nvar", {"delays": 2}), ("nvar", {"delays": 4}), ("esn", {}), ("arima", {}),
)


def selection_split(ds: xr.Dataset, horizon: int, fraction: float = SELECTION_FRACTION) -> tuple[xr.Dataset, int]:
    """The whole series before the test period, labelled with its last part as a selection "test"
    period (not cut into pieces), and the longest horizon that period can score.

    Arguments:
        ds: a time-split series, as pieces or as whole series (``attrs["time_split"]``).
        horizon: the longest horizon wanted.
        fraction: the share of the data before the test period that becomes the selection period.

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
    held = max(2, int(round(fraction * n)))
    needed = MIN_FIT_SAMPLES + 2 + int(np.ceil(1 / SELECTION_FRACTION))
    if n - held < MIN_FIT_SAMPLES or n < needed:
        raise DatasetError(f"the series has {n} samples before its test period, too short for any validation origin "
                           f"of learner='auto'", fix=f"give at least {needed} samples before the test period (a longer "
                           "series or a smaller test fraction), or fit one learner by name, e.g. learner='arima'")
    times = before["time"].values.astype(np.float64)
    return label_split(before, None, float(times[n - held])), int(min(horizon, held))


def linear_autoregression(series: Sequence[np.ndarray], times: np.ndarray) -> tuple[str, dict[str, Any]]:
    """The candidate ``("nvar", {"degree": 1, "delays": p})``: a linear AR(p) on the series' own
    increments, with the order ``p`` that AIC picks for :class:`workbench.evaluation.baselines.AR`
    on ``series`` (the data before the selection period); ``p = 1`` where AIC has too few rows."""
    from ..evaluation.baselines import AR

    try:
        order = AR().fit(list(series), times).order
    except DatasetError:
        order = 1
    return "nvar", {"degree": 1, "delays": int(order)}


def validation_residuals(model: Any, sel: xr.Dataset, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """``truth - point`` ``(O, horizon, D)`` from every origin of the selection period (NaN where
    unobserved), and each row's ``(series, origin)`` ``(O, 2)``, so candidates can be aligned."""
    series, times = series_arrays(sel)
    start = test_start_time(sel, None)
    first = int(np.searchsorted(times, start))
    context = model.learner.capabilities().context
    need = SeriesRecipe.from_json(model.meta.get("series") or {}).warmup + context
    out, keys = [], []
    for k, values in enumerate(series):
        origins = np.arange(max(first - 1, need), len(times) - 1)
        origins = origins[np.isfinite(values[origins]).all(1)]
        if origins.size == 0:
            continue
        point = rollout_from(model, values, times, origins, horizon, 1)[:, 0]      # (O, H, D)
        padded = np.concatenate([values, np.full((horizon, values.shape[1]), np.nan)])
        truth = np.stack([padded[o + 1: o + 1 + horizon] for o in origins])
        out.append(truth - point)
        keys.append(np.stack([np.full(origins.size, k), origins], 1))
    if not out:
        raise DatasetError("no validation origin has enough history for this candidate")
    return np.concatenate(out), np.concatenate(keys)


def candidate_score(residuals: np.ndarray, scale: np.ndarray) -> tuple[float, list[float]]:
    """Mean over horizons and variables of RMSE / scale, and the RMSE by horizon (first variable)."""
    with np.errstate(invalid="ignore", over="ignore"):
        rmse = np.sqrt(np.nanmean(residuals ** 2, axis=0))                          # (H, D)
    return float(np.mean(rmse / scale)), [float(v) for v in rmse[:, 0]]


def inverse_mse_weights(residuals: Sequence[np.ndarray], scale: np.ndarray, per_horizon: bool = True) -> np.ndarray:
    """Bates-Granger weights ``(H, M)``: each member's inverse validation MSE (scaled, averaged over
    variables), normalised per horizon; one row repeated when ``per_horizon`` is False."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mse = np.stack([np.nanmean((r / scale) ** 2, axis=(0, 2)) for r in residuals], 1)   # (H, M)
        if not per_horizon:
            mse = np.broadcast_to(mse.mean(0, keepdims=True), mse.shape)
        inverse = np.where(np.isfinite(mse) & (mse > 0), 1 / mse, 0.0)
    total = inverse.sum(1, keepdims=True)
    return np.where(total > 0, inverse / np.where(total > 0, total, 1), 1 / inverse.shape[1])


def combined(residuals: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The combination's residuals: weights summing to 1 carry over from points to residuals."""
    return sum(w[None, :, None] * r for w, r in zip(np.asarray(weights).T, residuals))


def cross_fitted(residuals: Sequence[np.ndarray], scale: np.ndarray, per_horizon: bool) -> np.ndarray:
    """Combined residuals of each half of the origins with the weights of the other half (no
    in-sample optimism in the combination's score or calibration)."""
    half = len(residuals[0]) // 2
    halves = [slice(0, half), slice(half, None)]
    out = []
    for mine, other in (halves, halves[::-1]):
        weights = inverse_mse_weights([r[other] for r in residuals], scale, per_horizon)
        out.append(combined([r[mine] for r in residuals], weights))
    return np.concatenate(out)


def fit_auto(ds: xr.Dataset, time_budget: Union[None, float, str] = None, seed: int = 0,
             horizon: int = DEFAULT_HORIZON, candidates: Optional[Sequence[tuple[str, dict]]] = None,
             series: Optional[SeriesRecipe] = None, fit_options: Optional[dict[str, Any]] = None,
             combine: Optional[bool] = None) -> Any:
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
        combine: add the two combinations as candidates (default: with the default candidates only,
            so an explicit list is scored as given).

    Returns:
        The winner refitted on all data before the test period, with ``meta["selection"]`` (one row
        per candidate: learner, options (a combination's members and weights), score, rmse by
        horizon, status) and ``meta["calibration"]``.

    Raises:
        DatasetError: data too short for a validation origin; DivergenceError: every candidate failed;
        BadParameterError: a recipe field given both in ``series`` and in ``fit_options`` (naming both).
    """
    from .config import TrainConfig

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
    if candidates is None:
        pool.insert(pool.index(("esn", {})), linear_autoregression([v[:first] for v in values], times[:first]))
    if candidates is None and budget >= NODE_BUDGET:
        pool.append(("node", {"time_budget": budget / 3}))

    def fitted(data: xr.Dataset, name: str, options: dict[str, Any]) -> Any:
        return _fit_quietly(data, name, seed, recipe, {**fit_options, **options})

    table, scored = score_candidates(pool, sel, fitted, horizon, scale,
                                     spent=lambda: time.perf_counter() - started > budget)
    scored = admit_nonlinear(table, scored, scale, horizon,
                             level_stationary([v[:first] for v in values], recipe.difference))
    if combine if combine is not None else candidates is None:
        for entry in combinations(scored, scale, per_horizon=not recipe.difference):
            table.append({"learner": "combination", "options": {"members": [{"learner": n, "options": o}
                                                                             for n, o in entry["members"]],
                                                                 "weights": entry["weights"].tolist()},
                          "score": entry["score"], "rmse_by_horizon": candidate_score(entry["residuals"], scale)[1],
                          "status": "ok", "rule": entry["rule"]})
            scored.append(entry)
    best = preferred(scored, scale, horizon)
    why = "the lowest validation score" if best["score"] == min(e["score"] for e in scored) else \
        "the best combination: no single candidate beat it significantly"
    for row, entry in zip([r for r in table if r["status"] == "ok"], scored):
        row["chosen"] = entry is best
    members = [fitted(whole, n, o) for n, o in best["members"]]
    model = members[0] if best["weights"] is None else assemble(members, best["weights"])
    model.meta["selection"] = table
    model.meta["calibration"] = calibration(best, whole, fitted, horizon)
    model.meta["auto"] = {"learner": model.name, "members": [[n, o] for n, o in best["members"]],
                          "options": dict(best["members"][0][1]) if best["weights"] is None else
                          dict(model.learner.options), "why": why, "seconds": time.perf_counter() - started, "budget": budget}
    return model


def score_candidates(pool: Sequence[tuple[str, dict]], sel: xr.Dataset, fitted: Any, horizon: int, scale: np.ndarray,
                     spent: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fit every candidate of ``pool`` before the selection period and score its forecasts inside it.

    Returns the table rows (one per candidate, rejected and skipped ones with the reason) and the
    scored entries (score, members, weights None, residuals ``(O, H, D)``, origin keys).

    Raises:
        UnsupportedError: every candidate refused the data; DivergenceError: every candidate failed.
    """
    table, scored = [], []
    for name, options in pool:
        row: dict[str, Any] = {"learner": name, "options": dict(options), "score": None, "rmse_by_horizon": None}
        if spent():
            table.append({**row, "status": "skipped: time budget spent"})
            continue
        try:
            model = fitted(sel, name, options)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                residuals, keys = validation_residuals(model, sel, horizon)
            score, rmse = candidate_score(residuals, scale)
            if not np.isfinite(score):
                raise DivergenceError("its validation forecasts ran away")
        except WorkbenchError as exc:
            table.append({**row, "status": f"rejected: {exc.problem}"[:300], "refused": isinstance(exc, UnsupportedError)})
            continue
        table.append({**row, "score": score, "rmse_by_horizon": rmse, "status": "ok"})
        scored.append({"score": score, "members": [(name, dict(options))], "weights": None, "residuals": residuals,
                       "keys": keys})
    if not scored:
        reasons = "; ".join(f"{r['learner']} {r['options'] or ''}: {r['status']}" for r in table)[:600]
        if all(r.get("refused") for r in table):
            raise UnsupportedError(f"no learner='auto' candidate can fit this data: {reasons}",
                                   fix="see the reasons; fit_options={'fill_gaps': True} fills gaps, or fit one "
                                       "learner by name")
        raise DivergenceError("every learner='auto' candidate failed or diverged on the validation origins: "
                              + reasons,
                              fix="check the series for gaps, constant stretches or a transform it needs "
                                  "(transform='log1p' for counts), or fit one learner by name")
    return table, scored


def calibration(best: dict[str, Any], whole: xr.Dataset, fitted: Any, horizon: int) -> dict[str, Any]:
    """The chosen model's conformal calibration (:mod:`workbench.evaluation.conformal`).

    Its residuals come from forecasts over the last ``CALIBRATION_FRACTION`` of the data before the
    test period, by the chosen learner(s) fitted on the data before that (a combination: each member,
    with the chosen weights): one more fit of the winner, like the final refit outside the time
    budget, so the intervals do not depend on how busy the machine was. They fall back to the
    selection period's where that period is as long or the earlier fit fails. Rows are in the order
    of their origins' times, so the online update's window drops the oldest first.
    """
    residuals, keys = best["residuals"], best["keys"]
    times = whole["time"].values.astype(np.float64)
    before = times[times < time_split_info(whole)["test_start"]]
    fraction = min(CALIBRATION_FRACTION, 1 - MIN_FIT_SAMPLES / len(before))
    if fraction > SELECTION_FRACTION:
        try:
            part, steps = selection_split(whole, horizon, fraction)
            if steps == horizon:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    runs = [validation_residuals(fitted(part, name, options), part, horizon)
                            for name, options in best["members"]]
                if all(np.array_equal(k, runs[0][1]) for _, k in runs):
                    parts = [r for r, _ in runs]
                    residuals = parts[0] if best["weights"] is None else combined(parts, best["weights"])
                    keys = runs[0][1]
        except WorkbenchError:
            pass  # the selection period's residuals stay
    residuals = residuals[np.argsort(keys[:, 1], kind="stable")]
    fitted_until = float(before[-1])
    return {"method": "split-conformal per horizon on |residual|, non-decreasing in the horizon (Stankeviciute et "
                      "al. 2021), updated with the residuals observed since the fit over a sliding window (Xu & Xie "
                      "2021)",
            "origins": int(len(residuals)), "coverage80_standard_error": coverage_error(len(residuals)),
            "quantiles": conformal_table(residuals).tolist(), "residuals": residuals.tolist(),
            "window": int(len(residuals)), "fitted_until": fitted_until}


def combinations(scored: list[dict[str, Any]], scale: np.ndarray, per_horizon: bool) -> list[dict[str, Any]]:
    """The combination candidates from the single candidates' validation residuals (module docstring):
    equal weights of the ok backbones, and the ``TOP_MEMBERS`` best weighted by inverse MSE
    (cross-fitted score). Only members forecasting from the same origins combine."""
    out = []
    backbones = [e for e in scored if e["members"][0][0] in BACKBONES and not e["members"][0][1]]
    ranked = sorted(scored, key=lambda e: e["score"])[:TOP_MEMBERS]
    for rule, group in (("equal weights of the backbones", backbones), ("inverse validation MSE, top "
                                                                         f"{TOP_MEMBERS}", ranked)):
        if len(group) < 2 or any(not np.array_equal(e["keys"], group[0]["keys"]) for e in group):
            continue
        residuals = [e["residuals"] for e in group]
        if rule.startswith("equal"):
            weights = np.full((residuals[0].shape[1], len(group)), 1 / len(group))
            mixed = combined(residuals, weights)
        else:
            weights = inverse_mse_weights(residuals, scale, per_horizon)
            mixed = cross_fitted(residuals, scale, per_horizon)
        score = candidate_score(mixed, scale)[0]
        if np.isfinite(score):
            out.append({"score": score, "members": [m for e in group for m in e["members"]], "weights": weights,
                        "residuals": mixed, "keys": group[0]["keys"], "rule": rule})
    return out


def preferred(scored: list[dict[str, Any]], scale: np.ndarray, horizon: int) -> dict[str, Any]:
    """The lowest score, except that the best combination is kept unless the best single candidate
    beats it significantly (:func:`significantly_better`). A winner by noise on a short validation
    stretch is the failure combinations guard against: selection among forecasting methods pays
    only where the data can tell them apart (Fildes & Petropoulos 2015), and a handful of
    overlapping multi-step origins cannot."""
    best = min(scored, key=lambda e: e["score"])
    combos = [e for e in scored if e["weights"] is not None]
    if best["weights"] is not None or not combos:
        return best
    combo = min(combos, key=lambda e: e["score"])
    if not np.array_equal(combo["keys"], best["keys"]):
        return best
    return best if significantly_better(best, combo, scale, horizon) else combo


def significantly_better(first: dict[str, Any], second: dict[str, Any], scale: np.ndarray, horizon: int) -> bool:
    """Whether ``first``'s validation forecasts beat ``second``'s (same origins) by the Diebold &
    Mariano (1995) test on the per-origin loss difference (squared scaled error averaged over
    horizons and variables) with Newey-West variance over ``horizon - 1`` lags, since consecutive
    origins share targets, and Harvey, Leybourne & Newbold's (1997) small-sample correction (the
    statistic times ``sqrt((n + 1 - 2h + h(h - 1)/n) / n)``, compared with Student's t on ``n - 1``
    degrees of freedom), one-sided at ``SELECTION_TEST_LEVEL``."""
    with np.errstate(invalid="ignore", over="ignore"):
        loss = [np.nanmean((e["residuals"] / scale) ** 2, axis=(1, 2)) for e in (second, first)]
    d = loss[0] - loss[1]
    d = d[np.isfinite(d)]
    n = d.size
    if n < 2:
        return bool(n == 1 and d[0] > 0)
    centred = d - d.mean()
    lags = min(horizon - 1, n - 1)
    variance = centred @ centred / n + 2 * sum((1 - k / (lags + 1)) * (centred[k:] @ centred[:-k]) / n
                                             for k in range(1, lags + 1))
    shrink = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    if shrink <= 0:
        return False
    critical = float(student_t.ppf(1 - SELECTION_TEST_LEVEL, n - 1))
    return bool(d.mean() * np.sqrt(shrink) > critical * np.sqrt(max(variance, 0.0) / n))


def linear(name: str, options: dict[str, Any]) -> bool:
    """A statistical backbone or a linear autoregression (``nvar`` of degree 1)."""
    return name in BACKBONES or (name == "nvar" and options.get("degree") == 1)


def admit_nonlinear(table: list[dict[str, Any]], scored: list[dict[str, Any]], scale: np.ndarray,
                    horizon: int, stationary: bool = True) -> list[dict[str, Any]]:
    """The scored candidates without the nonlinear ones (``esn``, ``node``, ``nvar`` of degree 2 or
    more) that are not admitted; their table rows say why. A nonlinear map learned on a stretch of
    the series is only trusted inside the range it saw, so
    1. on a series that is not level-stationary (``stationary`` False: a trend or level shift the
       forecasts must continue past that range) none is admitted: Box & Jenkins difference first,
       and the recipe's ``difference=True`` does so for every candidate;
    2. otherwise each must beat the linear autoregression significantly on the same origins
       (:func:`significantly_better`): its own linear case, which a short stretch cannot tell apart
       from it by chance. Without a linear autoregression among the candidates, all stay."""
    reference = next((e for e in scored if e["members"][0][0] == "nvar" and linear(*e["members"][0])), None)
    if reference is None and stationary:
        return scored
    kept = []
    rows = [r for r in table if r["status"] == "ok"]
    for row, entry in zip(rows, scored):
        if linear(*entry["members"][0]):
            kept.append(entry)
        elif not stationary:
            row["status"] = ("not admitted: a nonlinear learner on a series that is not level-stationary (KPSS); "
                             "difference=True fits every candidate on the increments")
        elif reference is None or (np.array_equal(entry["keys"], reference["keys"]) and
                                   significantly_better(entry, reference, scale, horizon)):
            kept.append(entry)
        else:
            row["status"] = "not admitted: a nonlinear learner no better than the linear AR(p) by the selection test"
    return kept


def level_stationary(series: Sequence[np.ndarray], differenced: bool) -> bool:
    """Whether KPSS (Kwiatkowski et al. 1992, at the backbones' level) accepts level-stationarity of
    every variable of every series (of its increments when the recipe differences)."""
    for values in series:
        for column in np.asarray(values, dtype=np.float64).T:
            y = column[np.isfinite(column)]
            y = np.diff(y) if differenced else y
            if y.size >= MIN_FIT_SAMPLES and kpss_order(y):
                return False
    return True


def assemble(members: Sequence[Any], weights: np.ndarray) -> Any:
    """One :class:`~workbench.model.Model` of the ``combination`` learner over fitted member models
    (all fitted with the same recipe on the same data); its standardisation is the first member's."""
    from ..learners.combination import Combination
    from ..model import Model

    lead = members[0]
    specs = [{"learner": m.name, "options": m.meta["options"]} for m in members]
    learner = Combination(lead.learner.dim, lead.learner.n_inputs, members=specs, weights=np.asarray(weights).tolist())
    learner = learner.to(dtype=lead.learner.offset.dtype).assemble([m.learner for m in members])
    meta = {**lead.meta, "learner": learner.name, "options": learner.options,
            "capabilities": learner.capabilities().as_dict()}
    return Model(learner.eval(), lead.scaler, meta, [], lead.input_scaler)


def _fit_quietly(ds: xr.Dataset, name: str, seed: int, recipe: SeriesRecipe, options: dict[str, Any]) -> Any:
    """One candidate fitted with its warnings silenced (the validation scores judge it)."""
    from .fitting import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(ds, learner=name, seed=seed, series=recipe, **options)


def _recipe(series: Optional[SeriesRecipe], options: dict[str, Any], gappy: bool) -> SeriesRecipe:
    """The candidates' recipe: ``series``, or built from recipe keywords taken out of ``options``;
    gaps are filled unless the caller chose otherwise (the backbones and NVAR need complete samples)."""
    from .fitting import from_keywords

    chosen = series is not None or "fill_gaps" in options
    recipe = from_keywords(SeriesRecipe, series, "series", SERIES_OPTIONS, options) or SeriesRecipe()
    return replace(recipe, fill_gaps=True) if gappy and not chosen else recipe


__all__ = ["CANDIDATES", "assemble", "fit_auto", "inverse_mse_weights", "selection_split"]
