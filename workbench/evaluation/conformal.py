"""Conformal forecast intervals per horizon that keep learning from the outcomes they forecast.

*Scores.* A model's signed residuals ``truth - point`` by horizon from out-of-sample origins
(:func:`workbench.training.autoselect.fit_auto` computes them on the data before the test
period); the nonconformity score is the absolute residual. At level ``q`` the interval's offset
is the ``ceil((n + 1) c) / n`` empirical quantile of the ``n`` scores at that horizon, with
``c = |2 q - 1|``, signed and mirrored about the point (split-conformal per horizon,
Stankeviciute, Alaa & van der Schaar, "Conformal time-series forecasting", NeurIPS 2021), and
made non-decreasing in the horizon (a longer lead cannot be surer).

*Online update.* A forecast from an origin later than the end of the data the model was fitted on
uses what a forecaster standing at that origin knows: the model's own forecasts from every origin
since that end whose targets are observed by then.
1. Their residuals join the scores, and only the most recent ``window`` scores per horizon are kept
   (a sliding window, Xu & Xie, "Conformal prediction interval for dynamic time-series", ICML 2021).
2. Each of their outcomes moves a scale on that horizon's offsets: up after the central
   ``INTERVAL_LEVEL`` interval missed it, down after it held it, so the scale settles where the
   interval misses ``1 - INTERVAL_LEVEL`` of the outcomes (adaptive conformal inference, Gibbs &
   Candes, NeurIPS 2021, in the multiplicative form of quantile tracking: Angelopoulos, Candes &
   Tibshirani, "Conformal PID control for time series prediction", NeurIPS 2023).
So the intervals follow a change in the series' volatility, and nothing after the origin enters.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .rolling import INTERVAL_LEVEL

# the scores are stored as quantiles at this many levels per horizon
CALIBRATION_LEVELS = 40
# Step of the online scale (module docstring): after each outcome the scale of a horizon's offsets
# is multiplied by exp(rate * (missed - (1 - INTERVAL_LEVEL))), +8% after a miss, -2% after a hit;
# it settles where the central interval misses 1 - INTERVAL_LEVEL of the outcomes.
ADAPTATION_RATE = 0.1
# a forecast from far past the fit replays at most this many windows of outcomes before its origin
LOOKBACK = 4


def levels() -> np.ndarray:
    """The stored quantile levels ``(l + 1/2) / CALIBRATION_LEVELS``."""
    return (np.arange(CALIBRATION_LEVELS) + 0.5) / CALIBRATION_LEVELS


def conformal_table(residuals: np.ndarray) -> np.ndarray:
    """Symmetric conformal offsets ``(H, CALIBRATION_LEVELS, D)`` from residuals ``(O, H, D)``.

    ``NaN`` residuals (unobserved targets) are skipped; an infinite one (a runaway forecast) is an
    infinitely bad score. See the module docstring for the quantile.
    """
    at = levels()
    signed = np.sign(at - 0.5)
    coverage = np.abs(2 * at - 1)
    a = np.abs(np.asarray(residuals, dtype=np.float64))
    known = ~np.isnan(a)
    n = np.maximum(known.sum(0), 1)                                                      # (H, D)
    wanted = np.minimum(np.ceil((n[None] + 1) * coverage[:, None, None]) / n[None], 1.0)   # (L, H, D)
    table = np.full((len(at),) + a.shape[1:], np.nan)
    for h in range(a.shape[1]):
        for d in range(a.shape[2]):
            column = a[known[:, h, d], h, d]
            if column.size:
                table[:, h, d] = np.quantile(column, wanted[:, h, d], method="inverted_cdf")
    table = np.fmax.accumulate(table, axis=1) * signed[:, None, None]
    return np.moveaxis(table, 0, 1)


def coverage_error(origins: int, level: float = 0.8) -> float:
    """Binomial standard error of an interval's coverage estimated from ``origins`` independent
    origins (overlapping multi-step errors make the effective count smaller)."""
    return float(np.sqrt(level * (1 - level) / max(origins, 1)))


def online_tables(calibration: dict, points: Callable[[np.ndarray, int], np.ndarray], values: np.ndarray,
                  times: np.ndarray, origins: np.ndarray) -> Optional[np.ndarray]:
    """Per-origin conformal tables ``(O, H, L, D)`` updated with the outcomes observed since the fit
    (module docstring), or None when no origin lies after the end of the data the model was fitted on.

    Arguments:
        calibration: ``model.meta["calibration"]`` with ``residuals`` ``(N, H, D)`` in time order,
            ``window`` and ``fitted_until`` (the time of the last sample the model was fitted on).
        points: ``points(origins, H)`` -> the model's point forecasts ``(O, H, D)`` without intervals.
        values: the series ``(T, D)``, ``NaN`` where unobserved.
        times: its times ``(T,)``.
        origins: the origins being forecast from.
    """
    if calibration.get("fitted_until") is None or calibration.get("residuals") is None:
        return None
    scores = np.asarray(calibration["residuals"], dtype=np.float64)
    horizon, dim = scores.shape[1:]
    window = int(calibration.get("window") or len(scores))
    last_fit = int(np.searchsorted(times, float(calibration["fitted_until"]), side="right")) - 1
    static = conformal_table(scores)
    later = origins[origins > last_fit]
    if later.size == 0:
        return None
    # every sample since the fit is an origin of the update (the scale's misses accumulate from there),
    # or since LOOKBACK windows before the first origin, which bounds a forecast from far past the fit
    start = max(last_fit, 0, int(later.min()) - LOOKBACK * window)
    earlier = np.arange(start, int(later.max()))
    earlier = earlier[np.isfinite(values[earlier]).all(1)]
    padded = np.concatenate([values, np.full((horizon, dim), np.nan)])
    fresh = np.full((len(values), horizon, dim), np.nan)                  # residual of the forecast from j
    if earlier.size:
        truth = np.stack([padded[j + 1: j + 1 + horizon] for j in earlier])
        fresh[earlier] = truth - points(earlier, horizon)
    steps = np.arange(1, horizon + 1)
    scale = np.ones((horizon, dim))
    radius = np.full((len(values), horizon, dim), np.nan)                # the central interval's radius used
    radius[start] = upper_radius(static)
    wanted = {int(o) for o in later}
    out = {}
    for k in range(start + 1, int(later.max()) + 1):
        for h in range(horizon):       # forecasts from j = k - h - 1 reach their target at k
            j = k - steps[h]
            if j >= start and not np.isnan(fresh[j, h]).any() and not np.isnan(radius[j, h]).any():
                missed = np.abs(fresh[j, h]) > radius[j, h]
                scale[h] *= np.exp(ADAPTATION_RATE * (missed - (1 - INTERVAL_LEVEL)))
        recent = np.full((window, horizon, dim), np.nan)
        for h in range(horizon):
            known = fresh[start: k - steps[h] + 1, h]                      # targets observed by k
            column = np.concatenate([scores[:, h], known[~np.isnan(known).any(1)]])[-window:]
            recent[window - len(column):, h] = column
        table = conformal_table(recent) * scale[:, None, :]
        table = np.fmax.accumulate(np.abs(table), axis=0) * np.sign(table)    # still never narrower further out
        radius[k] = upper_radius(table)
        if k in wanted:
            out[k] = table
    return np.stack([out[int(o)] if o > last_fit else static for o in origins])


def upper_radius(table: np.ndarray) -> np.ndarray:
    """The upper offset ``(H, D)`` of the central ``INTERVAL_LEVEL`` interval, read off a table
    ``(H, L, D)`` by linear interpolation between its levels (as :func:`calibrated` samples it)."""
    at = levels()
    upper = 0.5 + INTERVAL_LEVEL / 2
    i = int(np.searchsorted(at, upper)) - 1
    frac = (upper - at[i]) / (at[i + 1] - at[i])
    return table[:, i] * (1 - frac) + table[:, i + 1] * frac


def calibrated(paths: np.ndarray, tables: np.ndarray, n_samples: int) -> np.ndarray:
    """Forecasts ``(O, S, H, D)`` replaced by their point (the paths' mean) plus the conformal
    offsets at levels ``(s + 1/2) / S``; horizons past the table's use its last. A runaway point
    stays infinite.

    Arguments:
        paths: the model's forecasts.
        tables: offsets ``(Hc, L, D)`` shared by every origin, or ``(O, Hc, L, D)`` per origin.
        n_samples: samples wanted; one gives the point itself.
    """
    point = paths.mean(axis=1)                                             # (O, H, D)
    samples = max(1, int(n_samples))
    if samples == 1:  # the point forecast itself, not the median residual added to it
        return point[:, None]
    tables = np.asarray(tables, dtype=np.float64)
    if tables.ndim == 3:
        tables = np.broadcast_to(tables, (paths.shape[0],) + tables.shape)
    wanted = (np.arange(samples) + 0.5) / samples
    horizon = paths.shape[2]
    rows = tables[:, np.minimum(np.arange(horizon), tables.shape[1] - 1)]    # (O, H, L, D)
    at = levels() if rows.shape[2] == CALIBRATION_LEVELS else (np.arange(rows.shape[2]) + 0.5) / rows.shape[2]
    # interpolate each (origin, horizon, variable) row of offsets at the sample levels
    index = np.interp(wanted, at, np.arange(len(at)))
    low = np.floor(index).astype(int)
    high = np.minimum(low + 1, len(at) - 1)
    frac = (index - low)[:, None]
    below, above = rows[:, :, low], rows[:, :, high]                       # (O, H, S, D)
    with np.errstate(invalid="ignore"):  # an infinite offset (a runaway score) stays infinite
        offsets = np.where((frac == 0) | (above == below), below, below + (above - below) * frac)
    return point[:, None] + np.moveaxis(offsets, 2, 1)


__all__ = ["CALIBRATION_LEVELS", "calibrated", "conformal_table", "coverage_error", "online_tables"]
