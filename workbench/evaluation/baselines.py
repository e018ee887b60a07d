"""Reference forecasts every learner must beat: persistence, climatology and a linear AR(p) model.

All three work on the sample grid of one series (``values`` of shape ``(T, D)``, ``NaN`` where a
sample is missing, ``times`` of shape ``(T,)``) and share one interface: :meth:`Baseline.fit` on
the training series, then :meth:`Baseline.forecast` from a history to future times, returning
``(n_samples, H, D)``, the shape of one origin of :meth:`workbench.Model.predict`'s ``state``.

* **Persistence**: the last observed value, held (Murphy 1992, the reference of forecast skill).
* **Climatology**: the training mean; with a ``period`` (given, or detected from the training
  autocorrelation) the mean of the training samples at the same phase of the cycle. Its ensemble
  is the training values themselves (the climatological distribution used for CRPS skill).
* **AR(p)**: ``x_t = c + sum_i A_i x_{t-i} + e_t`` (a VAR for several variables) fitted by least
  squares, the order chosen by AIC (Akaike 1974) unless given; its ensemble adds Gaussian
  innovations with the residual covariance (Box & Jenkins, *Time Series Analysis*, ch. 5).
  The candidate orders are compared on the same rows (those the largest order can use, as AIC
  requires); the chosen order is then refitted on every row it can use, so the coefficients are
  those of statsmodels' ``AutoReg(y, lags=p, trend="c")`` on the same data.

* **auto-ARIMA, ETS, Theta** (:class:`Statistical`): the statsmodels backbones of
  :mod:`workbench.learners.backbones`, structure and parameters fitted on the training series, then
  applied to the history at each origin; their ensembles sit at the quantiles of the Gaussian
  predictive distribution.

Point forecasts (:meth:`Baseline.point`) are deterministic, the conditional mean: persistence
the last value, climatology its mean, AR iterated without noise. Scores that compare a point
with the truth (RMSE, MAE, and every skill built on them) use it, so they do not move with the
seed; the random ensembles of :meth:`Baseline.forecast` are for CRPS only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..data.time import median_step
from ..errors import BadParameterError, DatasetError

TROPICAL_YEAR_DAYS = 365.2425
# an autocorrelation peak must exceed this to count as a season
MIN_SEASONAL_ACF = 0.3
STATISTICAL = ("arima", "ets", "theta")


class Baseline:
    """A reference forecaster on one series' sample grid (see the module docstring)."""

    name: str = ""
    stochastic: bool = False

    def fit(self, series: Sequence[np.ndarray], times: Sequence[np.ndarray]) -> "Baseline":
        """Fit on training series, each ``(T, D)`` with ``NaN`` gaps, and their times ``(T,)``."""
        return self

    def forecast(self, history: np.ndarray, history_times: np.ndarray, future_times: np.ndarray,
                 n_samples: int = 1, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Forecasts ``(n_samples, H, D)`` at ``future_times`` from the samples before them."""
        raise NotImplementedError

    def point(self, history: np.ndarray, history_times: np.ndarray, future_times: np.ndarray) -> np.ndarray:
        """The deterministic point forecast ``(H, D)``: the conditional mean, without random draws.

        Arguments:
            history: the series ``(T, D)`` up to the origin, ``NaN`` where unobserved.
            history_times: its times ``(T,)``.
            future_times: the times to forecast ``(H,)``.
        """
        # a one-member forecast of every baseline is its noise-free conditional mean
        return self.forecast(history, history_times, future_times, n_samples=1)[0]

    def describe(self) -> dict:
        return {"name": self.name}


def last_observed(history: np.ndarray) -> np.ndarray:
    """Each variable's last finite value in ``history`` (T, D)."""
    out = np.full(history.shape[1], np.nan)
    for d in range(history.shape[1]):
        finite = np.flatnonzero(np.isfinite(history[:, d]))
        if finite.size:
            out[d] = history[finite[-1], d]
    if not np.isfinite(out).all():
        raise DatasetError("a forecast origin has no observed value before it for some variable")
    return out


class Persistence(Baseline):
    """The last observed value, held for every horizon."""

    name = "persistence"

    def forecast(self, history, history_times, future_times, n_samples=1, rng=None):
        return np.broadcast_to(last_observed(history), (1, len(future_times), history.shape[1])).copy()


@dataclass
class Climatology(Baseline):
    """The training mean, or the mean at each phase of a ``period`` (in time units)."""

    period: Optional[float] = None
    bins: int = 1
    name: str = "climatology"
    stochastic: bool = True
    means: np.ndarray = field(default=None, repr=False)
    pools: list = field(default_factory=list, repr=False)
    origin: float = 0.0
    detect: bool = True
    calendar_days: bool = False

    def fit(self, series, times):
        values = np.concatenate(series)
        t = np.concatenate(times)
        if self.period is None and self.detect:
            self.period = detect_period(series, times, self.calendar_days)
        step = float(np.median(np.concatenate([np.diff(x) for x in times if len(x) > 1])))
        self.bins = max(1, int(round(self.period / step))) if self.period else 1
        self.origin = float(t.min())
        phase = self._phase(t)
        self.means = np.full((self.bins, values.shape[1]), np.nan)
        self.pools = []
        for b in range(self.bins):
            rows = values[phase == b]
            pool = [rows[np.isfinite(rows[:, d]), d] for d in range(values.shape[1])]
            if any(p.size == 0 for p in pool):
                raise DatasetError(f"climatology with period {self.period}: phase bin {b} of {self.bins} has no "
                                   "training sample; give a longer training piece or another period")
            self.means[b] = [p.mean() for p in pool]
            self.pools.append(pool)
        if self.bins > 1:
            self.name = "climatology_seasonal"
        return self

    def _phase(self, t: np.ndarray) -> np.ndarray:
        if self.bins == 1:
            return np.zeros(len(t), dtype=int)
        frac = np.mod(np.asarray(t) - self.origin, self.period) / self.period
        return np.minimum((frac * self.bins + 0.5).astype(int) % self.bins, self.bins - 1)

    def forecast(self, history, history_times, future_times, n_samples=1, rng=None):
        phase = self._phase(np.asarray(future_times))
        if n_samples <= 1:
            return self.means[phase][None]
        rng = rng or np.random.default_rng(0)
        out = np.empty((n_samples, len(phase), self.means.shape[1]))
        for h, b in enumerate(phase):
            for d, pool in enumerate(self.pools[b]):
                out[:, h, d] = rng.choice(pool, size=n_samples)
        return out

    def describe(self):
        return {"name": self.name, "period": self.period, "bins": self.bins}


@dataclass
class AR(Baseline):
    """Linear autoregression (VAR for several variables) by least squares; order by AIC unless given."""

    order: Optional[int] = None
    max_order: int = 60
    name: str = "ar"
    stochastic: bool = True
    coef: np.ndarray = field(default=None, repr=False)        # (1 + p*D, D): intercept, lag 1..p
    noise: np.ndarray = field(default=None, repr=False)       # (D, D) Cholesky of residual covariance
    aic: dict = field(default_factory=dict, repr=False)

    def fit(self, series, times):
        n_total = sum(int(np.isfinite(s).all(1).sum()) for s in series)
        p_max = int(self.order or max(1, min(self.max_order, n_total // 10)))
        candidates = [p_max] if self.order else list(range(1, p_max + 1))
        # one design for the largest order, so every candidate is scored on the same rows (AIC needs that)
        X, Y = _lagged(series, p_max)
        if len(Y) <= X.shape[1] + 1:
            raise DatasetError(f"AR({p_max}) needs more than {X.shape[1] + 1} complete rows, the training data has "
                               f"{len(Y)}; give a smaller order or more data")
        dim = Y.shape[1]
        for p in candidates:
            coef, cov = _least_squares(X[:, : 1 + p * dim], Y)
            sign, logdet = np.linalg.slogdet(cov + 1e-12 * np.eye(dim))
            self.aic[p] = float(len(Y) * logdet + 2 * coef.size)
        self.order = min(self.aic, key=self.aic.get)
        # the comparison dropped the first p_max - p rows a smaller order can use; the final fit keeps them
        X, Y = _lagged(series, self.order)
        self.coef, cov = _least_squares(X, Y)
        self.noise = np.linalg.cholesky(cov + 1e-12 * np.eye(dim))
        self.name = "ar"
        return self

    def forecast(self, history, history_times, future_times, n_samples=1, rng=None):
        p, dim = self.order, history.shape[1]
        past = fill_gaps(history)[-p:]
        if len(past) < p:
            raise DatasetError(f"AR({p}) needs {p} samples of history before the forecast origin, got {len(past)}")
        rng = rng or np.random.default_rng(0)
        samples = max(1, int(n_samples))
        state = np.repeat(past[None, ::-1], samples, axis=0)           # (S, p, D), newest first
        out = np.empty((samples, len(future_times), dim))
        for h in range(len(future_times)):
            nxt = self.coef[0] + state.reshape(samples, -1) @ self.coef[1:]
            if samples > 1:
                nxt = nxt + rng.standard_normal((samples, dim)) @ self.noise.T
            out[:, h] = nxt
            state = np.concatenate([nxt[:, None], state[:, :-1]], axis=1)
        return out

    def describe(self):
        return {"name": self.name, "order": self.order}


@dataclass
class Statistical(Baseline):
    """A statsmodels backbone (``kind`` in ``"arima"``, ``"ets"``, ``"theta"``), one per variable.

    Fitted on the longest training series (gaps filled); the season is ``period`` (time units),
    detected from the training data unless given or ``detect`` is False.
    """

    kind: str = "arima"
    period: Optional[float] = None
    detect: bool = True
    calendar_days: bool = False
    name: str = ""
    stochastic: bool = True
    fitted: list = field(default_factory=list, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        from ..learners.backbones import check_kind

        self.name = check_kind(self.kind)

    def fit(self, series, times):
        from ..learners.backbones import fit_backbone

        if self.period is None and self.detect:
            self.period = detect_period(series, times, self.calendar_days)
        k = int(np.argmax([np.isfinite(s).all(1).sum() for s in series]))
        step = median_step(times[k])
        samples = self.period / step if self.period else None
        values = fill_gaps(series[k])
        self.fitted = [fit_backbone(self.kind, values[:, d], samples) for d in range(values.shape[1])]
        self._cache = {}
        return self

    def gaussian(self, history: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation ``(steps, D)`` from ``history`` (T, D)."""
        from ..learners.backbones import forecast_backbone

        key = (len(history), steps, history[-1].tobytes())
        # a rolling evaluation asks for every origin's point forecast, then for every origin's ensemble:
        # keep them all (one (steps, D) pair per origin) so no origin is forecast twice
        if key not in self._cache:
            filled = fill_gaps(history)
            parts = [forecast_backbone(f, filled[:, d], steps) for d, f in enumerate(self.fitted)]
            self._cache[key] = (np.stack([p[0] for p in parts], 1), np.stack([p[1] for p in parts], 1))
        return self._cache[key]

    def forecast(self, history, history_times, future_times, n_samples=1, rng=None):
        from ..learners.backbones import gaussian_members

        mean, sd = self.gaussian(history, len(future_times))
        return gaussian_members(mean, sd, int(n_samples))

    def describe(self):
        return {"name": self.name, "period": self.period, "variables": [f.describe() for f in self.fitted]}


def _least_squares(design: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients of ``targets`` on ``design`` and the residual covariance (divided by rows)."""
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
    resid = targets - design @ coef
    return coef, resid.T @ resid / len(targets)


def _lagged(series: Sequence[np.ndarray], p: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[1, x_{t-1}, ..., x_{t-p}] -> x_t`` where the target and every lag are observed."""
    rows, targets = [], []
    for s in series:
        if len(s) <= p:
            continue
        lags = np.concatenate([s[p - i - 1: len(s) - i - 1] for i in range(p)], axis=1)
        target = s[p:]
        ok = np.isfinite(lags).all(1) & np.isfinite(target).all(1)
        rows.append(np.hstack([np.ones((ok.sum(), 1)), lags[ok]]))
        targets.append(target[ok])
    if not rows:
        raise DatasetError(f"no training series is longer than the AR order {p}")
    return np.concatenate(rows), np.concatenate(targets)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Missing samples linearly interpolated from their neighbours (held at the ends)."""
    out = np.array(values, dtype=np.float64)
    index = np.arange(len(out))
    for d in range(out.shape[1]):
        finite = np.isfinite(out[:, d])
        if not finite.any():
            raise DatasetError("a variable has no observed sample in the history")
        out[~finite, d] = np.interp(index[~finite], index[finite], out[finite, d])
    return out


def detect_period(series: Sequence[np.ndarray], times: Sequence[np.ndarray],
                  calendar_days: bool = False) -> Optional[float]:
    """The dominant cycle of the training data in time units, or None when there is none.

    The first variable of the longest series is detrended (least-squares line), gaps are filled,
    and the first autocorrelation peak above 0.3 after the first zero crossing (up to a third of
    the series) is the period. On a calendar axis in days a period within 5% of a year
    is set to the tropical year (365.2425 days), so phases do not drift over decades.
    """
    k = int(np.argmax([len(s) for s in series]))
    x = fill_gaps(series[k])[:, 0]
    t = np.asarray(times[k], dtype=np.float64)
    if len(x) < 8:
        return None
    x = x - np.polyval(np.polyfit(np.arange(len(x)), x, 1), np.arange(len(x)))
    if not x.std() > 0:
        return None
    n = len(x)
    spectrum = np.fft.rfft(x - x.mean(), 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: n // 3]
    acf = acf / acf[0]
    negative = np.flatnonzero(acf < 0)
    if negative.size == 0:
        return None
    lag_range = np.arange(negative[0], len(acf) - 1)
    # the first clear peak: multiples of the season (or slower cycles on top of it) come later
    peaks = [lag for lag in lag_range
             if acf[lag] >= acf[lag - 1] and acf[lag] >= acf[lag + 1] and acf[lag] >= MIN_SEASONAL_ACF]
    if not peaks:
        return None
    lag = peaks[0]
    period = lag * median_step(t)
    if calendar_days and abs(period / TROPICAL_YEAR_DAYS - 1) < 0.05:
        return TROPICAL_YEAR_DAYS
    return period


def make_baselines(period: Optional[float] = None, ar_order: Optional[int] = None,
                   calendar_days: bool = False, statistical: bool = True) -> list[Baseline]:
    """The reference forecasters, unfitted: persistence, climatology, AR(p) and (with
    ``statistical``) auto-ARIMA, ETS and Theta (``calendar_days``: the time axis counts days of a calendar)."""
    if period is not None and not period > 0:
        raise BadParameterError(f"period must be positive, got {period}")
    if ar_order is not None and int(ar_order) < 1:
        raise BadParameterError(f"ar_order must be >= 1, got {ar_order}")
    simple: list[Baseline] = [Persistence(), Climatology(period=period, calendar_days=calendar_days),
                              AR(order=ar_order)]
    if not statistical:
        return simple
    return simple + [Statistical(kind, period=period, calendar_days=calendar_days) for kind in STATISTICAL]


__all__ = ["AR", "Baseline", "Climatology", "Persistence", "STATISTICAL", "Statistical", "detect_period", "fill_gaps", "make_baselines"]
