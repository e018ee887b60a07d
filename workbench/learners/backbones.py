"""Statistical backbones from statsmodels: automatic ARIMA, exponential smoothing (ETS) and Theta.

Each backbone is fitted once on a univariate series (:func:`fit_backbone`: its structure and
parameters) and then forecasts from any history with those parameters held
(:func:`forecast_backbone`: the Gaussian predictive mean and standard deviation by horizon), so a
rolling evaluation or a learner's rollout never refits on data after the fit. Theta holds its
smoothing weight; its drift (half the least-squares slope) is that of each history, as in
statsmodels' ``ThetaModel`` (refitting the whole model at every origin would dominate a rolling evaluation).

* **auto-ARIMA** (Hyndman & Khandakar 2008, "Automatic time series forecasting", J. Stat. Softw.
  27(3)): the differencing order ``d`` from the KPSS test (Kwiatkowski et al. 1992; ``d = 1``
  when level-stationarity is rejected at 5%), then the orders ``p <= 3``, ``q <= 2`` with the
  lowest AIC, a constant (a drift when ``d = 1``) included; ``statsmodels`` ``SARIMAX``.
* **ETS** (Hyndman et al. 2008, *Forecasting with Exponential Smoothing*): additive errors, trend
  none / additive / additive damped, chosen by AIC; ``statsmodels`` ``ETSModel``.
* **Theta** (Assimakopoulos & Nikolopoulos 2000; Hyndman & Billah 2003): ``statsmodels``
  ``ThetaModel`` fits the smoothing weight; forecasts follow its formula, ``SES + b0/2 (h - 1 +
  1/alpha - (1 - alpha)^n / alpha)``, with the SES variance ``sigma^2 (1 + (h - 1) alpha^2)``.

Seasonality: a ``period`` (in samples, detected by :func:`workbench.evaluation.baselines.detect_period` or
given) is removed before ARIMA and ETS by a classical additive decomposition of the history itself
(centred moving average, mean detrended value at each phase counted back from the last sample) and
added back to the forecast; Theta deseasonalises by its own decomposition. Seasonal ARIMA/ETS
state spaces are not used: with weekly data (a 52-sample season) they cost seconds per fit.

Why statsmodels (not pmdarima or statsforecast): it is already a dependency of the scientific
Python stack, is BSD-licensed, maintained, pure Python over numpy/scipy (no numba compile), and
gives analytic prediction variances for all three models.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..errors import BadParameterError, DatasetError

BACKBONES = ("arima", "ets", "theta")
MAX_P, MAX_Q = 3, 2
# L-BFGS iterations per candidate order: a well-posed ARMA likelihood converges in 10-20; the ill-posed ones
# (a smooth deterministic trajectory) used all 50 of statsmodels' default at ~600 likelihoods each
MAX_ITERATIONS = 25
# fit on at most this many recent samples: the order search grows linearly with the samples and order
MAX_FIT_SAMPLES = 1000
# history a forecast filters through: an invertible ARMA forgets its start-up within a few dozen samples
MAX_FILTER_SAMPLES = 300
# a season needs two full cycles in the history to estimate its profile
MIN_CYCLES = 2
KPSS_ALPHA = 0.05
# a history this short has no structure to fit; the fix names it
MIN_SAMPLES = 8


@dataclass
class Backbone:
    """A fitted statistical backbone on one variable.

    Attributes:
        kind: ``"arima"``, ``"ets"`` or ``"theta"``.
        period: the season in samples removed before fitting (None: none).
        spec: the structure (ARIMA ``order`` and ``trend``; ETS ``trend``/``damped``).
        params: the fitted parameters (empty for Theta, refitted per history).
        aic: the chosen structure's AIC (NaN for Theta).
    """

    kind: str
    period: Optional[int] = None
    spec: dict = field(default_factory=dict)
    params: np.ndarray = field(default_factory=lambda: np.zeros(0))
    aic: float = float("nan")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "period": self.period, **self.spec, "aic": self.aic}


def check_kind(kind: str) -> str:
    """``kind`` if it names a backbone, else a BadParameterError listing them."""
    if kind not in BACKBONES:
        raise BadParameterError(f"unknown statistical backbone {kind!r}", fix=f"use one of {list(BACKBONES)}")
    return kind


def usable_period(period: Optional[float], n: int) -> Optional[int]:
    """The season in whole samples when the series holds ``MIN_CYCLES`` of it, else None."""
    if period is None or not np.isfinite(period):
        return None
    m = int(round(period))
    return m if 2 <= m and MIN_CYCLES * m <= n else None


def seasonal_profile(y: np.ndarray, m: int) -> np.ndarray:
    """The mean detrended value at each phase of an ``m``-sample season, phase 0 at the last sample
    (classical additive decomposition: a centred 2 x m moving average is the trend)."""
    kernel = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    trend = np.convolve(y, kernel, mode="valid")
    offset = (len(kernel) - 1) // 2
    detrended = y[offset: offset + len(trend)] - trend
    phase = (np.arange(offset, offset + len(trend)) - (len(y) - 1)) % m
    profile = np.array([detrended[phase == k].mean() for k in range(m)])
    return profile - profile.mean()


@contextmanager
def _quiet() -> Iterator[None]:
    """statsmodels warns on every non-converged or boundary fit; the AIC already judges them."""
    # statsmodels installs "always" filters when first imported: import it before ours go on top
    import statsmodels.tools.sm_exceptions  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def kpss_order(y: np.ndarray) -> int:
    """1 when KPSS rejects level-stationarity at 5%, else 0."""
    from statsmodels.tsa.stattools import kpss

    with _quiet():
        return int(kpss(y, regression="c", nlags="auto")[1] < KPSS_ALPHA)


def _arima(y: np.ndarray, order: tuple[int, int, int]) -> Any:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    return SARIMAX(y, order=order, trend="c")


def _ets(y: np.ndarray, trend: Optional[str], damped: bool) -> Any:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    return ETSModel(pd.Series(y), error="add", trend=trend, damped_trend=damped)


def fit_backbone(kind: str, y: np.ndarray, period: Optional[float] = None) -> Backbone:
    """Choose and fit backbone ``kind`` on the series ``y`` (1-D, complete).

    Arguments:
        kind: one of :data:`BACKBONES`.
        y: the training series (the last ``MAX_FIT_SAMPLES`` are used).
        period: a season in samples (removed when two cycles fit in ``y``).

    Returns:
        The fitted :class:`Backbone`.

    Raises:
        DatasetError: fewer than ``MIN_SAMPLES`` samples or non-finite values.
    """
    check_kind(kind)
    y = np.asarray(y, dtype=np.float64)[-MAX_FIT_SAMPLES:]
    if len(y) < MIN_SAMPLES or not np.isfinite(y).all():
        raise DatasetError(f"the {kind} backbone needs at least {MIN_SAMPLES} finite samples, got "
                           f"{int(np.isfinite(y).sum())} of {len(y)}", fix="give a longer series or fill its gaps")
    m = usable_period(period, len(y))
    x = deseasonalised(y, m)
    with _quiet():
        if kind == "theta":
            from statsmodels.tsa.forecasting.theta import ThetaModel

            alpha = float(ThetaModel(x, deseasonalize=False).fit().params["alpha"])
            return Backbone("theta", m, {"alpha": alpha}, np.array([alpha]))
        return _search_arima(x, m) if kind == "arima" else _search_ets(x, m)


def deseasonalised(y: np.ndarray, m: Optional[int]) -> np.ndarray:
    """``y`` less its :func:`seasonal_profile` (``y`` itself without a season)."""
    return y - np.resize(seasonal_profile(y, m)[::-1], len(y))[::-1] if m else y


def _ets_filtered(x: np.ndarray, fitted: Backbone) -> Any:
    """ETS filtered over ``x`` with the fitted smoothing parameters held and the initial states (level,
    trend) re-estimated on ``x`` itself by least squares.

    The fitted initial states belong to the start of the fitting series; a history that starts
    elsewhere (a rolling origin's window) would inherit them, and with a small smoothing weight
    (a near-deterministic trend) the whole window's forecasts and errors would be off by the trend
    since then. With additive errors the one-step errors are affine in the initial states
    (Hyndman et al. 2008, ch. 3: ``s_t = D s_{t-1} + g y_t``, ``D = F - g w'``), so one pass gives
    the errors from zero states and their derivatives: the least-squares states are the Gaussian
    likelihood's maximum given the smoothing parameters, and on the fitting series the fitted ones.
    """
    params = np.array(fitted.params, dtype=np.float64)
    trend = bool(fitted.spec["trend"])
    k = 2 if trend else 1     # the params end with the initial level (and trend)
    alpha, beta = float(params[0]), float(params[1]) if trend else 0.0
    phi = float(params[2]) if trend and fitted.spec["damped"] else 1.0 if trend else 0.0
    errors, slopes = [], []
    level = growth = 0.0
    row = [1.0, phi]          # w' D^t: the error's derivative by the start (level, trend)
    for value in x.tolist():  # Python floats: a 2-state recursion, numpy's per-call cost would dominate
        error = value - level - phi * growth
        level, growth = level + phi * growth + alpha * error, phi * growth + beta * error
        errors.append(error)
        slopes.append(row[:k])
        row = [row[0] * (1 - alpha) - row[1] * beta, phi * (row[0] * (1 - alpha) + row[1] * (1 - beta))]
    params[-k:] = np.linalg.lstsq(np.array(slopes), np.array(errors), rcond=None)[0]
    return _ets(x, fitted.spec["trend"], fitted.spec["damped"]).smooth(params)


def _search_arima(x: np.ndarray, m: Optional[int]) -> Backbone:
    """ARIMA(p, d, q) with a constant: d by KPSS, (p, q) by AIC."""
    d = kpss_order(x)
    best = None
    for p in range(MAX_P + 1):
        for q in range(MAX_Q + 1):
            try:
                res = _arima(x, (p, d, q)).fit(disp=False, cov_type="none", maxiter=MAX_ITERATIONS)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(res.aic) and (best is None or res.aic < best[0]):
                best = (float(res.aic), (p, d, q), np.asarray(res.params))
    if best is None:
        raise DatasetError("no ARIMA order could be fitted to this series", fix="check it for constant stretches")
    return Backbone("arima", m, {"order": list(best[1])}, best[2], best[0])


def _search_ets(x: np.ndarray, m: Optional[int]) -> Backbone:
    """Additive-error ETS with no, additive or damped trend, by AIC."""
    best = None
    for trend, damped in ((None, False), ("add", False), ("add", True)):
        if trend and len(x) < 2 * MIN_SAMPLES:
            continue
        try:
            res = _ets(x, trend, damped).fit(disp=False)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if np.isfinite(res.aic) and (best is None or res.aic < best[0]):
            best = (float(res.aic), {"trend": trend, "damped": damped}, np.asarray(res.params))
    if best is None:
        raise DatasetError("no exponential smoothing model could be fitted to this series")
    return Backbone("ets", m, best[1], best[2], best[0])


def forecast_backbone(fitted: Backbone, history: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian forecast of ``steps`` samples after ``history`` with the fitted parameters held.

    Arguments:
        fitted: from :func:`fit_backbone`.
        history: the series up to the origin (1-D, complete; the last ``MAX_FIT_SAMPLES`` are used).
        steps: the horizon.

    Returns:
        ``(mean, sd)``, each ``(steps,)``.
    """
    y = np.asarray(history, dtype=np.float64)[-MAX_FIT_SAMPLES:]
    m = usable_period(fitted.period, len(y))
    profile = seasonal_profile(y, m) if m else None
    x = deseasonalised(y, m)
    with _quiet():
        if fitted.kind == "theta":
            mean, var = _theta(x, float(fitted.params[0]), steps)
        elif fitted.kind == "arima":
            order = tuple(fitted.spec["order"])
            window = x[-MAX_FILTER_SAMPLES:]
            if _innovations_forgotten(fitted.params[1 + order[0]:1 + order[0] + order[2]], len(window) - order[1]):
                mean, var = _arima_forecast(window, order, fitted.params, steps)
            else:  # an MA root near the unit circle: the exact (Kalman) filter over the whole history
                pred = _arima(x, order).filter(fitted.params).get_forecast(steps)
                mean, var = np.asarray(pred.predicted_mean), np.asarray(pred.var_pred_mean)
        else:
            res = _ets_filtered(x, fitted)
            pred = res.get_prediction(start=len(x), end=len(x) + steps - 1)
            mean, var = np.asarray(pred.predicted_mean), np.asarray(pred.var_pred_mean)
    if m:  # phase 0 is the last sample: the h-th step ahead has phase h mod m
        mean = mean + profile[np.arange(1, steps + 1) % m]
    return mean, np.sqrt(np.maximum(var, 0.0))


def one_step_residuals(fitted: Backbone, history: np.ndarray) -> np.ndarray:
    """In-sample one-step errors ``y_t - yhat_{t|t-1}`` of the fitted backbone over ``history``, with its
    parameters held: the series a hybrid's learner fits (Zhang 2003, "Time series forecasting using a
    hybrid ARIMA and neural network model", Neurocomputing 50).

    ARIMA: the conditional innovations of :func:`_arima_forecast`'s recursion; ETS: the state-space
    filter's one-step errors (statsmodels ``ETSModel.smooth``); Theta: the error of each sample's
    one-step Theta forecast from the samples before it (the drift from their own slope). A season
    is the history's own profile, as in :func:`forecast_backbone`, so it cancels in the error.

    Arguments:
        fitted: from :func:`fit_backbone`.
        history: the series (1-D, complete).

    Returns:
        ``(len(history),)``, ``NaN`` for the first samples without a full lag history (ARIMA's
        ``d + max(p, q)``, Theta's 2).
    """
    y = np.asarray(history, dtype=np.float64)
    x = deseasonalised(y, usable_period(fitted.period, len(y)))
    out = np.full(len(x), np.nan)
    with _quiet():
        if fitted.kind == "arima":
            p, d, q = fitted.spec["order"]
            errors = _arma_recursion(np.diff(x, n=d) if d else x, (p, d, q), fitted.params, 0)[0]
            out[d + max(p, q):] = errors[max(p, q):]
        elif fitted.kind == "ets":
            out[:] = np.asarray(_ets_filtered(x, fitted).resid)
        else:
            out[2:] = x[2:] - _theta_one_step(x, float(fitted.params[0]))
    return out


def _theta_one_step(x: np.ndarray, alpha: float) -> np.ndarray:
    """Theta's forecast of each ``x[i]``, ``i >= 2``, from ``x[:i]`` (:func:`_theta` at ``h = 1``)."""
    n = np.arange(2, len(x), dtype=np.float64)
    t = np.arange(len(x), dtype=np.float64)
    sums = [np.cumsum(v)[1:-1] for v in (t, x, t * x, t * t)]     # over x[:i] for i = 2 .. len - 1
    slope = (n * sums[2] - sums[0] * sums[1]) / (n * sums[3] - sums[0] ** 2)
    level = np.empty(len(x))
    level[0] = x[0]
    for i in range(1, len(x)):   # level[i]: simple exponential smoothing through x[i], from x[0]
        level[i] = level[i - 1] + alpha * (x[i] - level[i - 1])
    return level[1:-1] + 0.5 * slope * (1 / alpha - (1 - alpha) ** n / alpha)


def _innovations_forgotten(theta: np.ndarray, length: int, tolerance: float = 1e-8) -> bool:
    """Whether the conditional innovations of an MA part ``theta`` forget their zero start within
    ``length`` samples: their memory decays as the largest inverse root of ``1 + theta_1 z + ...``
    to the power of the length (an MA coefficient near -1, as ARIMA(1,1,1) fits to a level series
    often gives, never forgets, and the forecast would depend on where the history starts)."""
    if len(theta) == 0:
        return True
    roots = np.roots(np.r_[np.asarray(theta, dtype=np.float64)[::-1], 1.0])
    memory = float(np.max(1.0 / np.abs(roots))) if len(roots) else 0.0
    return memory < 1.0 and memory ** max(length, 1) < tolerance


def _arima_forecast(y: np.ndarray, order: tuple[int, int, int], params: np.ndarray,
                    steps: int) -> tuple[np.ndarray, np.ndarray]:
    """ARIMA(p, d, q) forecast with parameters held, in numpy: mean and variance of ``steps`` samples.

    The model is statsmodels' SARIMAX with ``trend="c"``: ``phi(L) (1 - L)^d y_t = c + theta(L) e_t``,
    ``params = [c, phi_1..p, theta_1..q, sigma2]``. Innovations are recovered by the conditional
    recursion from zero pre-sample errors over ``y``; with :data:`MAX_FILTER_SAMPLES` of history their
    start-up is forgotten, so this matches the Kalman filter's forecast (checked in the tests)
    at a thousandth of its cost, which a rolling evaluation with one forecast per origin needs.
    Variances are ``sigma2`` times the running sum of squared psi-weights of the ARIMA polynomial.
    """
    p, d, q = order
    phi, theta, sigma2 = params[1:1 + p], params[1 + p:1 + p + q], params[1 + p + q]
    w = np.diff(y, n=d) if d else np.asarray(y, dtype=np.float64)
    mean = _arma_recursion(w, order, params, steps)[1]
    for remaining in range(d - 1, -1, -1):  # undo each difference from the last observed level of that order
        level = np.diff(y, n=remaining)[-1] if remaining else y[-1]
        mean = level + np.cumsum(mean)
    # psi-weights of theta(L) / (phi(L) (1 - L)^d)
    ar_poly = np.array([1.0, *(-phi)])
    for _ in range(d):
        ar_poly = np.convolve(ar_poly, [1.0, -1.0])
    psi = np.zeros(steps)
    for j in range(steps):
        psi[j] = (1.0 if j == 0 else (theta[j - 1] if j - 1 < q else 0.0)) \
            - sum(ar_poly[k] * psi[j - k] for k in range(1, min(j, len(ar_poly) - 1) + 1))
    return mean, sigma2 * np.cumsum(psi ** 2)


def _arma_recursion(w: np.ndarray, order: tuple[int, int, int], params: np.ndarray,
                    steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The conditional ARMA recursion on the differenced series ``w``: its one-step innovations
    ``(len(w),)`` (zero for the first ``max(p, q)``, which have no full lag history) and the mean of
    the ``steps`` samples after it (see :func:`_arima_forecast`)."""
    p, _, q = order
    c, phi, theta = params[0], params[1:1 + p], params[1 + p:1 + p + q]
    errors = np.zeros(len(w) + steps)
    path = np.concatenate([w, np.zeros(steps)])
    for t in range(len(w) + steps):
        ar = sum(phi[i] * path[t - 1 - i] for i in range(p) if t - 1 - i >= 0)
        ma = sum(theta[j] * errors[t - 1 - j] for j in range(q) if t - 1 - j >= 0)
        if t < len(w):
            errors[t] = w[t] - c - ar - ma if t >= max(p, q) else 0.0
        else:
            path[t] = c + ar + ma
    return errors[: len(w)], path[len(w):]


def _theta(x: np.ndarray, alpha: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Theta forecast (theta = 2) of ``x`` with smoothing weight ``alpha``: mean and variance."""
    n = len(x)
    slope = np.polyfit(np.arange(n, dtype=np.float64), x, 1)[0]
    level, errors = x[0], np.empty(n - 1)
    for i in range(1, n):  # simple exponential smoothing from the first value, as ThetaModel starts it
        errors[i - 1] = x[i] - level
        level = level + alpha * errors[i - 1]
    h = np.arange(steps, dtype=np.float64)
    drift = 0.5 * slope * (h + 1 / alpha - (1 - alpha) ** n / alpha)
    sigma2 = float(np.mean(errors ** 2))
    return level + drift, sigma2 * (1 + h * alpha ** 2)


def gaussian_members(mean: np.ndarray, sd: np.ndarray, n_samples: int) -> np.ndarray:
    """``n_samples`` members ``(S, ...)`` at the Gaussian quantiles ``(s + 1/2) / S``: their mean
    is ``mean`` exactly (the quantiles are symmetric) and their spread the predictive one, so
    scores need no random draws."""
    if n_samples <= 1:
        return np.asarray(mean)[None]
    z = norm.ppf((np.arange(n_samples) + 0.5) / n_samples)
    return mean[None] + z.reshape((-1,) + (1,) * np.ndim(mean)) * sd[None]


__all__ = ["BACKBONES", "Backbone", "check_kind", "fit_backbone", "forecast_backbone", "gaussian_members",
           "one_step_residuals", "seasonal_profile", "usable_period"]
