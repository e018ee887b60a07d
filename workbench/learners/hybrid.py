"""A learner on a statistical backbone's residuals: ``wb.fit(ds, learner="node", backbone="arima")``.

Zhang's hybrid (G. P. Zhang, "Time series forecasting using a hybrid ARIMA and neural network
model", Neurocomputing 50, 2003): a series is a part the backbone models plus what it leaves,
``y_t = L_t + N_t``. The backbone (``arima``, ``ets`` or ``theta``: a
:class:`~workbench.learners.statistical.StatisticalLearner`) is fitted on the whole training
history (train and validation periods, as the backbone learners are); its one-step in-sample
errors ``e_t = y_t - yhat_{t|t-1}`` (:func:`workbench.learners.backbones.one_step_residuals`)
form a series of their own, on which the learner is fitted through :func:`workbench.fit` like any
series (the last ``val`` fraction of it for validation, the same training run, its own
standardisation). A forecast is the backbone's plus the learner's forecast of the residual from
the residuals of the history: ``yhat_{t+h} = Lhat_{t+h} + Nhat_{t+h}``. With a stochastic
learner sample ``s`` adds the learner's sample ``s`` to the backbone's quantile member ``s``; with a
deterministic one every member moves by its path, so the intervals are the backbone's (a model
from ``learner="auto"`` replaces them with conformal ones).

The fit loop sees a closed-form learner (it fits its parts itself); :func:`gradient_parts`
names the parts that train by gradient, which a refit at every forecast origin refuses. Saved as
the backbone's buffers (prefix ``backbone.``), the learner's tensors (prefix ``learner.``) and
the options, with the learner's options as its fit resolved them.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from ..data.series import MIN_CHUNK
from ..errors import BadParameterError, UnsupportedError, WorkbenchError
from .backbones import BACKBONES
from .base import Capabilities, DataInfo, InputSignal, Learner, refusal
from .combination import physical_paths, undecided

# the fraction of the residual series that validates the learner's fit (its early stopping, its ridge)
VALIDATION_FRACTION = 0.2
# samples the backbone's start-up costs the residual series (at most ARIMA's d + max(p, q)), with room to spare
START_UP = 8
COMPOSITES = ("hybrid", "combination", "ensemble")
SERIES_LEARNERS = "nvar, esn, node or resnet"


class Hybrid(Learner):
    """A backbone plus a learner on its residuals (see the module docstring).

    Options:
        backbone: ``"arima"``, ``"ets"`` or ``"theta"``.
        backbone_options: the backbone learner's options (``period``, ``context``).
        learner: the name of the learner fitted on the residuals.
        options: that learner's options.
        train: the :class:`~workbench.training.config.TrainConfig` of the learner's fit, as JSON
            (``fit`` passes its own).
        val: the fraction of the residual series held out to validate the learner.
    """

    name = "hybrid"
    whole_series = True  # the backbone fits the uncut training history, as the backbone learners do
    reference = "Zhang 2003 (hybrid ARIMA and neural network)"
    supports = Capabilities(kinds=("ode", "sde"), stochastic=True, irregular=False, training="closed_form",
                            inputs=False, has_vector_field=False, has_equations=False)
    defaults: Mapping[str, Any] = {"backbone": "arima", "backbone_options": {}, "learner": "nvar", "options": {},
                                   "train": {}, "val": VALIDATION_FRACTION}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        from . import get_learner

        super().__init__(dim, n_inputs, **options)
        backbone, inner = check_parts(self.options["backbone"], self.options["learner"])
        val = self.options["val"]
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 < val < 1:
            raise BadParameterError(f"val={val!r} is not a fraction in (0, 1)", fix="e.g. val=0.2")
        for key in ("backbone_options", "options", "train"):
            if not isinstance(self.options[key], Mapping):
                raise BadParameterError(f"{key} must be a dict, got {type(self.options[key]).__name__}",
                                        fix=f"pass {key}={{...}}")
        self.backbone = get_learner(backbone)(dim, 0, **dict(self.options["backbone_options"]))
        self.learner = inner(dim, 0, **dict(self.options["options"]))

    @classmethod
    def options_from_data(cls, info: DataInfo, options: Mapping[str, Any]) -> dict[str, Any]:
        """The backbone's options from the data (its context); the learner is checked against a
        series like this one (its options are resolved by its own fit, on the residuals)."""
        from . import get_learner

        options = dict(options)
        backbone, inner = check_parts(options.get("backbone", cls.defaults["backbone"]),
                                      options.get("learner", cls.defaults["learner"]))
        options["backbone_options"] = get_learner(backbone).options_from_data(
            info, dict(options.get("backbone_options") or {}))
        # the residual series' validation piece must hold one training chunk of the learner's fit
        val = options.get("val", cls.defaults["val"])
        shortest = int(np.ceil(MIN_CHUNK / val)) + START_UP if isinstance(val, float) and 0 < val < 1 else 0
        if info.length and info.length < shortest:
            raise UnsupportedError(f"a hybrid needs a training history of at least {shortest} samples (its residual "
                                   f"series keeps {val:.0%} for validating the learner, at least {MIN_CHUNK} samples), "
                                   f"got {info.length}", fix=f"give a longer series, or use the backbone alone "
                                                             f"(learner={backbone!r})")
        residual_info = replace(info, system=None, qp_split=None, inputs=[], has_derivative=False)
        try:
            probe = inner(info.dim, 0, **inner.options_from_data(residual_info, dict(options.get("options") or {})))
            reason = refusal(probe.capabilities(), residual_info, inner.name)
        except WorkbenchError as exc:
            reason = exc.problem
        if reason:
            raise UnsupportedError(f"learner {inner.name!r} cannot fit the residual series of the {backbone} "
                                   f"backbone: {reason}", fix=f"use a learner that forecasts a series "
                                                              f"({SERIES_LEARNERS}) with backbone={backbone!r}")
        return options

    @classmethod
    def fresh_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with what the data decided undecided again (a refit on other data)."""
        return {**options, "backbone_options": undecided(options["backbone"], options.get("backbone_options")),
                "options": undecided(options["learner"], options.get("options"))}

    def capabilities(self) -> Capabilities:
        back, inner = self.backbone.capabilities(), self.learner.capabilities()
        return replace(self.supports, context=max(back.context, inner.context),
                       kinds=tuple(k for k in self.supports.kinds if k in back.kinds and k in inner.kinds))

    def set_scaling(self, offset: torch.Tensor, scale: torch.Tensor, rate: float = 1.0) -> None:
        """The data's standardisation, shared with the backbone; the learner keeps the residuals' own."""
        super().set_scaling(offset, scale, rate)
        self.backbone.set_scaling(offset, scale, rate)

    def fit_closed_form(self, train: Any, val: Optional[Any], times: torch.Tensor) -> dict[str, float]:
        """Fit the backbone on the training history, then the learner on its residuals (through ``fit``)."""
        from ..training.config import TrainConfig
        from ..training.fitting import fit

        self.backbone.time_budget = self.time_budget
        scores = self.backbone.fit_closed_form(train, val, times)
        k = int(np.argmax(train.mask.sum(1).cpu().numpy()))   # the series the backbone fitted
        history = self.backbone.physical(torch.where(train.mask[k:k + 1, :, None], train.z[k:k + 1], torch.nan))
        residuals = self.backbone.residuals(history)[0]                     # (T, D)
        start = int(np.argmax(np.isfinite(residuals).all(1)))              # after the backbone's start-up
        grid = times.detach().cpu().double().numpy()
        # the learner's own time axis on the data's step, exactly regular (float32 times jitter)
        axis = grid[start] + np.median(np.diff(grid)) * np.arange(len(grid) - start)
        model = fit(self.residual_dataset(residuals[start:], axis), self.options["learner"],
                    train=TrainConfig.from_json(dict(self.options["train"])), device=self.offset.device,
                    progress=False, **dict(self.options["options"]))
        self.learner = model.learner.to(dtype=self.offset.dtype)
        self.options["options"] = json.loads(json.dumps(model.meta["options"]))
        last = model.history[-1] if model.history else {}
        scores.update({f"residual_{name}": float(v) for name, v in last.items()
                       if name in ("val_loss", "train_loss") and v is not None})
        return scores

    def residual_dataset(self, residuals: np.ndarray, times: np.ndarray) -> Any:
        """The backbone's residuals as one measured series, its last ``val`` fraction for validation."""
        from ..data.imports import from_numpy
        from ..data.splits import split_time

        ds = from_numpy(residuals[None], times=times, variables=[f"residual_{d}" for d in range(self.dim)])
        return split_time(ds, val=float(self.options["val"]), test=None)

    def after_fit(self, model: Any, ds: Any) -> None:
        """Record the learner's options as its fit resolved them, so the saved model rebuilds it."""
        model.meta["options"] = json.loads(json.dumps(self.options))
        model.meta["capabilities"] = self.capabilities().as_dict()

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The backbone's members plus the learner's forecast of the residual (module docstring)."""
        need = self.capabilities().context
        if need and (context is None or context.shape[1] < need):
            raise UnsupportedError(f"the hybrid needs {need} samples of history before the start state",
                                   fix="forecast from a later origin, or use model.forecast(ds, ...)")
        history = z0[:, None] if context is None else torch.cat([context[:, -need:], z0[:, None]], 1)
        samples = max(1, int(n_samples))
        back_need = self.backbone.capabilities().context
        base = self.backbone.rollout(z0, t, samples, generator, context=history[:, :-1] if back_need else None)
        physical = history * self.scale + self.offset
        residuals = self.backbone.residuals(physical.detach().cpu().double().numpy())
        residuals = torch.as_tensor(np.nan_to_num(residuals), dtype=z0.dtype, device=z0.device)
        extra = physical_paths(self.learner, residuals, t, samples, generator)    # (S or 1, B, T - 1, D)
        shift = torch.cat([torch.zeros_like(extra[:, :, :1]), extra / self.scale], 2)
        return base + shift


def check_parts(backbone: Any, learner: Any) -> tuple[str, type[Learner]]:
    """The backbone's name and the residual learner's class, or the error naming the fix.

    Raises:
        BadParameterError: an unknown backbone, or a learner that is itself a composite or ``auto``.
        UnknownNameError: an unknown learner.
        UnsupportedError: a learner that reads irregular histories or fits a named system's equations.
    """
    from . import get_learner

    if backbone not in BACKBONES:
        raise BadParameterError(f"unknown backbone {backbone!r}", fix=f"use one of {list(BACKBONES)}, e.g. "
                                                                      f"wb.fit(ds, learner='nvar', backbone='arima')")
    if learner == "auto" or learner in COMPOSITES:
        raise BadParameterError(f"learner {learner!r} cannot be fitted on a backbone's residuals (it is itself a "
                                "choice or a combination of learners)",
                                fix=f"name one learner ({SERIES_LEARNERS}), e.g. wb.fit(ds, learner='nvar', "
                                    f"backbone={backbone!r})")
    cls = get_learner(learner)
    from .latent import HistoryLearner

    if issubclass(cls, HistoryLearner) or "system" in cls.defaults:
        why = "it encodes irregular histories" if issubclass(cls, HistoryLearner) else \
            "it fits a named system's equations, which a residual series does not follow"
        raise UnsupportedError(f"learner {learner!r} cannot be fitted on a backbone's residuals: {why}",
                               fix=f"use a learner that forecasts a series ({SERIES_LEARNERS}) with "
                                   f"backbone={backbone!r}")
    return backbone, cls


def hybrid_options(learner: str, options: dict[str, Any], train: Any) -> dict[str, Any]:
    """``fit``'s keywords for ``learner`` with ``backbone=`` as the hybrid's options: the learner's own
    options go inside, the series recipe's keywords stay outside (the recipe is the whole model's),
    and the training run is the learner's.

    Arguments:
        learner: the learner named in ``fit`` (``"hybrid"`` itself: ``options`` are already the hybrid's).
        options: ``fit``'s learner keywords, with ``backbone`` (and optionally ``backbone_options``).
        train: the run's :class:`~workbench.training.config.TrainConfig`.
    """
    from ..data.series import SERIES_OPTIONS

    if learner == Hybrid.name:
        return {**options, "train": options.get("train", train.to_json())}
    check_parts(options["backbone"], learner)
    outside = {k: options.pop(k) for k in SERIES_OPTIONS if k in options}
    hybrid = {"backbone": options.pop("backbone"), "backbone_options": options.pop("backbone_options", {}),
              "learner": learner, "train": train.to_json()}
    return {**outside, **hybrid, "options": options}


def gradient_parts(learner: nn.Module) -> list[str]:
    """The names of ``learner`` and of its parts (a hybrid's residual learner, a combination's
    members) that train by gradient descent, in order; empty when all fit in closed form."""
    return list(dict.fromkeys(m.name for m in learner.modules()
                              if isinstance(m, Learner) and m.capabilities().training == "gradient"))


__all__ = ["Hybrid", "check_parts", "hybrid_options", "gradient_parts"]
