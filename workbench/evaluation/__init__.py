"""Evaluation: metrics, naive and statistical baselines, rolling-origin forecasts, long-run (climate)
scores, fields on grids, and ``evaluate``, which chooses the scores that apply to a model and a dataset.

The names in ``__all__`` are this room's public API (the app reaches the workbench through them and
``import workbench as wb``). They load on first use (PEP 562): the learners and data recipes import
``baselines`` from here, and an eager import of ``evaluate`` (which imports the model and the
learners) would go round in a circle.
"""
from .._lazy import lazy_exports
from typing import TYPE_CHECKING as _TYPE_CHECKING

if _TYPE_CHECKING:  # the same names, eagerly, for type checkers and editors
    from .climate import LongRunRecipe, climate_scores, long_run, long_run_refusal
    from .evaluate import evaluate, summary
    from .fields import (calibration_curve, calibration_report, equation_comparison, fan_quantiles, field_on_grid,
                         has_term_library, parameter_comparison, ude_terms)
    from .hidden import has_latent_state, hidden_r2, hidden_readout
    from .holdout import forecast_horizons, holdout_forecast, test_period
    from .truth import oracle_samples, parameters_per_trajectory, true_drift, true_system

# Public name -> the module of this room defining it, imported on first use.
_EXPORTS = {
    "evaluate": ".evaluate", "summary": ".evaluate",
    "LongRunRecipe": ".climate", "long_run": ".climate", "climate_scores": ".climate",
    "long_run_refusal": ".climate",
    "field_on_grid": ".fields", "has_term_library": ".fields", "equation_comparison": ".fields",
    "parameter_comparison": ".fields", "calibration_curve": ".fields", "calibration_report": ".fields",
    "fan_quantiles": ".fields", "ude_terms": ".fields",
    "hidden_readout": ".hidden", "hidden_r2": ".hidden", "has_latent_state": ".hidden",
    "test_period": ".holdout", "forecast_horizons": ".holdout", "holdout_forecast": ".holdout",
    "true_system": ".truth", "parameters_per_trajectory": ".truth", "true_drift": ".truth",
    "oracle_samples": ".truth",
}

__all__ = [
    "LongRunRecipe", "calibration_curve", "calibration_report", "climate_scores", "equation_comparison",
    "evaluate", "fan_quantiles", "field_on_grid", "forecast_horizons", "has_latent_state",
    "has_term_library", "hidden_r2", "hidden_readout", "holdout_forecast", "long_run", "long_run_refusal", "oracle_samples", "parameter_comparison",
    "parameters_per_trajectory", "summary", "test_period", "true_drift", "true_system", "ude_terms"
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
