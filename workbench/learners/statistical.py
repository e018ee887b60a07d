"""The statistical backbones of :mod:`workbench.learners.backbones` as learners: ``arima``, ``ets``, ``theta``.

Each variable gets its own univariate model, fitted once in closed form on the whole training
history (train and validation pieces of a time split, as one series: :mod:`workbench.data.series`
hands these learners the series uncut), in the data's units (the fit loop's standardisation is
undone), so the learner and the rolling baseline of the same name give the same forecasts. A
rollout filters the ``context`` samples before the start with the fitted parameters held and
returns the Gaussian predictive distribution at each step: ``n_samples`` members at its quantiles
``(s + 1/2) / S`` (their mean is the point forecast exactly, so scores need no random draws; the
``generator`` is unused). The fitted structure and parameters live in two buffers, so they are
saved with the weights.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Optional

import numpy as np
import torch

from .backbones import (MIN_CYCLES, MIN_SAMPLES, Backbone, fit_backbone, forecast_backbone, gaussian_members,
                        one_step_residuals)
from ..evaluation.baselines import detect_period, fill_gaps
from ..errors import BadParameterError, DatasetError, UnsupportedError
from .base import Capabilities, DataInfo, Learner

# samples of history a rollout filters (the fit used at most backbones.MAX_FIT_SAMPLES)
MAX_CONTEXT = 512
# per variable: period (0: none), p, d, q, trend (0 none, 1 additive), damped (0/1)
SPEC_FIELDS = 6
# ARIMA(3, d, 2) with a constant and a variance has 7 parameters; ETS at most 5; Theta 1
MAX_PARAMS = 8


class StatisticalLearner(Learner):
    """Base of the backbone learners (see the module docstring); ``kind`` names the backbone."""

    kind = ""
    whole_series = True  # seriesfit: fit on the uncut training history, not on chunks of it
    supports = Capabilities(kinds=("ode", "sde"), stochastic=True, irregular=False, training="closed_form",
                            has_vector_field=False, has_equations=False)
    defaults: Mapping[str, Any] = {"period": None, "context": None}
    reference = "Hyndman & Khandakar 2008 (auto-ARIMA); Hyndman et al. 2008 (ETS); Assimakopoulos & Nikolopoulos 2000"

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        self.register_buffer("spec", torch.zeros(dim, SPEC_FIELDS))
        self.register_buffer("coef", torch.zeros(dim, MAX_PARAMS))
        self.register_buffer("n_coef", torch.zeros(dim))

    @classmethod
    def options_from_data(cls, info: DataInfo, options: Mapping[str, Any]) -> dict[str, Any]:
        options = dict(options)
        if options.get("context") is None:
            options["context"] = int(min(MAX_CONTEXT, max(info.length - 2, 0)))
        return options

    @classmethod
    def fresh_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with those the data decided (``context``) undecided again, for a refit on other data."""
        return {**options, "context": None}

    def capabilities(self) -> Capabilities:
        return replace(self.supports, context=int(self.options["context"] or 0))

    def fit_closed_form(self, train: Any, val: Optional[Any], times: torch.Tensor) -> dict[str, float]:
        z = self.physical(torch.where(train.mask[..., None], train.z, torch.nan))
        k = int(np.argmax(train.mask.sum(1).cpu().numpy()))
        series = fill_gaps(z[k])
        if len(series) < MIN_SAMPLES + 2:
            raise DatasetError(f"{self.name} needs a training history of at least {MIN_SAMPLES + 2} samples, got "
                               f"{len(series)}", fix="give a longer series or a smaller val/test split")
        period = self.options["period"]
        if period is not None and not (isinstance(period, (int, float)) and 0 <= period <= len(series) / MIN_CYCLES):
            raise BadParameterError(f"period={period!r} samples does not fit {MIN_CYCLES} times in the training "
                                    f"history of {len(series)} samples",
                                    fix=f"give period <= {len(series) // MIN_CYCLES} (0 for none), or a longer series")
        if period is None:
            period = detect_period([series], [np.arange(len(series), dtype=np.float64)])
        fitted = [fit_backbone(self.kind, series[:, d], period or None) for d in range(self.dim)]
        for d, f in enumerate(fitted):
            self.spec[d] = torch.tensor(encode(f), dtype=self.spec.dtype)
            self.coef[d, : len(f.params)] = torch.tensor(np.array(f.params), dtype=self.coef.dtype)
            self.n_coef[d] = len(f.params)
        return {"aic": float(np.nansum([f.aic for f in fitted]))}

    def physical(self, z: torch.Tensor) -> np.ndarray:
        """Standardised states as float64 numpy in the data's units: the backbones fit and forecast
        there, so a learner and the baseline of the same name agree on the same history."""
        return (z.detach().cpu().double() * self.scale.double().cpu() + self.offset.double().cpu()).numpy()

    def backbones(self) -> list[Backbone]:
        """The fitted model of each variable."""
        return [decode(self.kind, self.spec[d].tolist(), self.coef[d, : int(self.n_coef[d])].double().numpy())
                for d in range(self.dim)]

    def residuals(self, history: np.ndarray) -> np.ndarray:
        """One-step in-sample errors ``(B, T, D)`` of each variable's fitted model over physical
        histories ``(B, T, D)`` (:func:`workbench.learners.backbones.one_step_residuals`; NaN where
        a sample has no full lag history); gaps are filled first."""
        models = self.backbones()
        return np.stack([np.stack([one_step_residuals(fitted, fill_gaps(h[:, d: d + 1])[:, 0])
                                   for d, fitted in enumerate(models)], -1) for h in history])

    def rollout(self, z0, t, n_samples=1, generator=None, inputs=None, context=None):
        need = int(self.options["context"] or 0)
        if need and (context is None or context.shape[1] < need):
            raise UnsupportedError(f"{self.name} needs {need} samples of history before the start state",
                                   fix="forecast from a later origin, or use model.forecast(ds, ...)")
        history = z0[:, None] if not need else torch.cat([context[:, -need:], z0[:, None]], 1)
        h = self.physical(history)
        steps = len(t) - 1
        models = self.backbones()
        out = np.empty((max(1, int(n_samples)), h.shape[0], len(t), self.dim))
        out[:, :, 0] = h[None, :, -1]
        for b in range(h.shape[0]):
            for d, fitted in enumerate(models):
                mean, sd = forecast_backbone(fitted, fill_gaps(h[b, :, d: d + 1])[:, 0], steps)
                out[:, b, 1:, d] = gaussian_members(mean, sd, out.shape[0])
        standard = (out - self.offset.double().cpu().numpy()) / self.scale.double().cpu().numpy()
        return torch.as_tensor(standard, dtype=z0.dtype, device=z0.device)


def encode(fitted: Backbone) -> list[float]:
    """A fitted backbone's structure as the numbers of one ``spec`` row."""
    order = fitted.spec.get("order", [0, 0, 0])
    return [float(fitted.period or 0), *map(float, order), float(fitted.spec.get("trend") == "add"),
            float(bool(fitted.spec.get("damped")))]


def decode(kind: str, row: list[float], params: np.ndarray) -> Backbone:
    """The :class:`Backbone` a ``spec`` row and its parameters describe."""
    period, p, d, q, trend, damped = row
    spec: dict[str, Any] = {"order": [int(p), int(d), int(q)]} if kind == "arima" else \
        {"trend": "add" if trend else None, "damped": bool(damped)} if kind == "ets" else {"alpha": float(params[0])}
    return Backbone(kind, int(period) or None, spec, params)


class ARIMALearner(StatisticalLearner):
    name = "arima"
    kind = "arima"


class ETSLearner(StatisticalLearner):
    name = "ets"
    kind = "ets"


class ThetaLearner(StatisticalLearner):
    name = "theta"
    kind = "theta"


STATISTICAL_LEARNERS = (ARIMALearner, ETSLearner, ThetaLearner)

__all__ = ["ARIMALearner", "ETSLearner", "STATISTICAL_LEARNERS", "StatisticalLearner", "ThetaLearner"]
