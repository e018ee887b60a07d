"""Refit at every forecast origin (``refit="each"``): a forecaster's usual rolling-origin evaluation.

By default a rolling evaluation (:mod:`workbench.evaluation.rolling`) forecasts every origin with
the model fitted once on the data before the test period. With ``refit="each"`` the model is
fitted again on all the data up to each origin before forecasting from it, as a forecaster
re-estimates a model when a new observation arrives (Tashman 2000, "Out-of-sample tests of
forecasting accuracy", IJF 16: the "updating" rolling-origin design). Each refit is the call that
made the model, on the series cut after the origin: the same learner, options, series recipe and
training run, with the validation period as long as the original one (at least one training
chunk, 16 samples) and ending at the origin;
options the data decided (a backbone's ``context``, the history it filters) are decided again on
the longer series, as a fit by hand on it would. A model from ``learner="auto"`` keeps its learner
(or combination and weights) and its conformal calibration; the choice is not made again.

A refit per origin multiplies the cost of a fit by the number of origins, so it is offered for
learners that fit in closed form (``nvar``, ``esn``, ``sindy``, the statistical backbones, their
combinations and hybrids with such learners) and refused for anything trained by gradient descent.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import xarray as xr

from ..errors import BadParameterError, UnsupportedError
from ..learners.hybrid import gradient_parts

REFIT_CHOICES = (None, "each")
# (model, values (T, D), times (T,), origins (O,), horizon, n_samples, seed, inputs) -> (O, S, H, D),
# the signature of workbench.evaluation.forecast.rollout_from
Rollout = Callable[..., np.ndarray]


def check_refit(refit: Any, model: Any) -> bool:
    """Whether ``refit`` asks for a refit at every origin, once checked against ``model``.

    Raises:
        BadParameterError: ``refit`` is neither None nor ``"each"``.
        UnsupportedError: the model (or a part of it) trains by gradient descent, naming the cost and the fix.
    """
    if refit is None:
        return False
    if not isinstance(refit, str) or refit not in REFIT_CHOICES:
        raise BadParameterError(f"refit={refit!r} is not one of {list(REFIT_CHOICES)}",
                                fix="pass refit='each' to refit at every origin, or leave it None to fit once")
    parts = gradient_parts(model.learner)
    if parts:
        what = repr(model.name) if parts == [model.name] else f"{model.name!r}'s part {', '.join(parts)}"
        raise UnsupportedError(f"refit='each' would train {what} by gradient descent again at every forecast "
                               "origin: a full training run per origin, hundreds for a rolling evaluation",
                               fix="evaluate it fitted once (refit=None), or use a closed-form learner (nvar, esn, "
                                   "sindy) or a backbone (arima, ets, theta) for refit='each'")
    return True


def refit_each(model: Any, ds: xr.Dataset) -> Rollout:
    """A forecaster with :func:`~workbench.evaluation.forecast.rollout_from`'s signature that refits
    ``model``'s call on ``ds`` up to each origin before forecasting from it (module docstring).
    Refits are kept per origin, so series that share an origin share its refit.

    Arguments:
        model: a fitted model (checked with :func:`check_refit` first).
        ds: the data of the evaluation: a time-split series (pieces or whole series with the split recorded).
    """
    from ..data.series import MIN_CHUNK
    from ..data.splits import label_split, merge_segments, time_split_info

    whole = merge_segments(ds) if "series" in ds.coords else ds
    times = whole["time"].values.astype(np.float64)
    info = time_split_info(whole) or {}
    test_at = int(np.searchsorted(times, info["test_start"])) if info.get("test_start") is not None else len(times)
    val_length = test_at - int(np.searchsorted(times, info["val_start"])) if info.get("val_start") is not None else 0
    if val_length:  # at least one training chunk (the layout now reaches back for a shorter one; kept as is)
        val_length = max(val_length, MIN_CHUNK)
    fitted: dict[int, Any] = {}

    def model_at(origin: int) -> Any:
        if origin not in fitted:
            start = origin + 1 - val_length
            if val_length and start < 2:
                raise BadParameterError(f"origin {origin} leaves no training samples before a validation period of "
                                        f"{val_length} samples", fix="evaluate from later origins")
            part = label_split(whole.isel(time=slice(0, origin + 1)), float(times[start]) if val_length else None,
                               None)
            fitted[origin] = refit(model, part)
        return fitted[origin]

    def rollout(_: Any, values: np.ndarray, series_times: np.ndarray, origins: np.ndarray, horizon: int,
                n_samples: int = 1, seed: int = 0, inputs: Optional[np.ndarray] = None) -> np.ndarray:
        from .forecast import rollout_from

        return np.concatenate([rollout_from(model_at(int(o)), values, series_times, np.array([o]), horizon,
                                            n_samples, seed, inputs) for o in origins])

    return rollout


def refit(model: Any, ds: xr.Dataset) -> Any:
    """``model``'s fit call again on ``ds``: its learner, options (those the data decided undecided),
    series recipe and training run; a conformal calibration is carried over (as fitted, without the
    online update of :mod:`workbench.evaluation.conformal`)."""
    from ..data.series import SeriesRecipe
    from ..learners.combination import undecided
    from ..training.config import TrainConfig
    from ..training.fitting import fit

    stored = SeriesRecipe.from_json(model.meta.get("series") or {})
    recipe = SeriesRecipe(transform=stored.transform, difference=stored.difference, embed=stored.embed,
                          lag=stored.lag, fill_gaps=stored.fill_gaps)
    again = fit(ds, model.name, train=TrainConfig.from_json(dict(model.meta.get("train_config") or {})),
                series=recipe, device=model.device, progress=False, **undecided(model.name, model.meta["options"]))
    if model.meta.get("calibration"):  # no online update: the refit has seen the residuals' targets
        again.meta["calibration"] = {**model.meta["calibration"], "fitted_until": None}
    return again


__all__ = ["REFIT_CHOICES", "check_refit", "refit", "refit_each"]
