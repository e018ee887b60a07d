"""Score a fitted model on held-out trajectories: every metric that applies, as one Dataset."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import xarray as xr

import systems as catalog

from . import metrics
from .climate import climate_scores, long_run, long_run_refusal
from .truth import oracle_samples, parameters_per_trajectory, true_drift, true_system
from ..devices import thread_policy
from ..data.schema import observation_mask, select_split, validate
from .forecast import evaluate_rolling
from ..data.splits import time_split_info
from ..errors import BadParameterError, WorkbenchError
from ..learners.latent import HistoryLearner, history_forecast, interpolation_error
from .hidden import hidden_r2
from ..model import Model

MAX_FIELD_POINTS = 2000


@thread_policy
def evaluate(model: Model, ds: xr.Dataset, *, split: str = "test", n_samples: int = 32, seed: int = 0,
             threshold: float = 0.4, oracle: bool = True, attractor: bool = True, mode: str = "auto",
             horizons: Sequence[int] = (1,), refit: Optional[str] = None, threads: Optional[int] = None) -> xr.Dataset:
    """All applicable metrics of ``model`` on the ``split`` trajectories of ``ds``.

    Arguments:
        model: a fitted :class:`Model`.
        ds: dataset in the schema; its ``split`` selects the held-out trajectories (all if absent).
        split: which split to score.
        n_samples: sample paths per initial state for stochastic models.
        seed: seeds stochastic rollouts and oracle samples.
        threshold: normalized-error level for the valid prediction time.
        oracle: for SDE data from the catalog, also score samples of the true SDE.
        attractor: for deterministic models of a chaotic catalog ODE, also score long free runs
            (:func:`workbench.evaluation.climate.climate_scores` of
            :func:`workbench.evaluation.climate.long_run` with its default recipe, as the app's Compare page
            shows it: ``lyapunov_learned`` beside ``lyapunov_true``, ``attractor_w1``, ``attractor_kl``,
            ``attractor_hellinger``, ``spectrum_error``, correlation dimensions).
        mode: ``"trajectories"`` (predict each held-out trajectory from its first sample),
            ``"rolling"`` (forecasts from many origins over the test period of a long series, error
            by horizon beside persistence, climatology and AR(p), with ``rmse_skill_vs_*`` and
            ``crps_skill_vs_*``; see :func:`workbench.evaluation.forecast.evaluate_rolling`), or ``"auto"``:
            rolling for data cut by :func:`workbench.split_time`.
        horizons: forecast steps scored in rolling mode.
        refit: rolling mode: ``"each"`` refits the model on the data up to every origin before
            forecasting from it (closed-form learners; refused for gradient-trained ones), None
            forecasts with the model as fitted (:mod:`workbench.evaluation.refit`).
        threads: torch CPU threads for the whole evaluation (default: ``WORKBENCH_THREADS``, else 1 on a
            small CPU; the caller's count is restored afterwards).

    Returns:
        Dataset: horizon-dependent metrics keep a ``time`` dim (``rmse``, ``normalized_error``,
        ``crps``, ``energy_score``, interval scores), per-trajectory ones a ``trajectory`` dim
        (``vpt``), and scalars summarise (``vpt_median``, ``diverged_trajectories``, ``vector_field_error``,
        ``energy_mse``, ``nfe``, ``*_oracle``, ``*_relative`` and its standard error over test
        trajectories ``*_relative_se``), ``extrapolation_rmse``/``extrapolation_nrmse`` (over the predicted
        span). Latent models (``latent_ode``, ``ncde``, ``latent_sde``) forecast from each trajectory's first ``context + 1``
        samples, gaps allowed, and add ``interpolation_rmse`` (history samples held out from the encoder)
        and, on data with ``hidden_state``, ``hidden_r2(hidden_variable)``: a linear read-out of the latent
        state fitted on the training trajectories, scored on the test ones. Data with ``hidden_state`` is
        not scored against the system's drift, energy or SDE samples (they need every variable).
    """
    if mode not in ("auto", "trajectories", "rolling"):
        raise BadParameterError(f"mode must be 'auto', 'trajectories' or 'rolling', got {mode!r}")
    ds = validate(ds, "evaluation data")  # malformed data or attributes fail here, named, not mid-metric
    if mode == "rolling" or (mode == "auto" and time_split_info(ds) is not None):
        return evaluate_rolling(model, ds, horizons, n_samples=n_samples, seed=seed, refit=refit)
    if refit is not None:
        raise BadParameterError(f"refit={refit!r} applies to rolling evaluations of a time-split series",
                                fix="pass mode='rolling' (data split with wb.split_time), or leave refit=None")
    test = select_split(ds, split)
    if test.sizes["trajectory"] == 0:
        raise WorkbenchError(f"the dataset has no {split!r} trajectories to evaluate on; pass split='val' or resplit")
    # a rollout that blows up is scored up to the blow-up and infinitely wrong after it, not dropped
    history = isinstance(model.learner, HistoryLearner)
    # a latent model forecasts from a history with gaps, which Model.predict does not take
    pred = history_forecast(model, test, n_samples, seed) if history else \
        model.predict(test, n_samples=n_samples, seed=seed, on_divergence="mark")
    full, test = test, test.sel(time=pred["time"].values)  # learners with context predict from sample C on
    system = true_system(test)
    whole_state = "hidden_state" not in test  # the system's drift, energy and oracle need every variable
    lyapunov = system.lyapunov if system is not None and system.lyapunov else model.meta.get("lyapunov")
    out = xr.Dataset(attrs={"learner": model.name, "system": str(test.attrs.get("system")), "split": split,
                            "threshold": threshold, "n_trajectories": int(test.sizes["trajectory"])})
    _trajectory_errors(out, model, pred, test, threshold, lyapunov)
    pred = pred.drop_vars("diverged_at")
    if history:
        _latent_scores(out, model, ds, full, seed)
    if system is not None and whole_state:
        _field_and_energy(out, model, test, pred, system, seed)
        if attractor and long_run_refusal(model, full) is None:
            out.update(climate_scores(long_run(model, ds, split=split, seed=seed)))
    if pred.sizes["sample"] > 1:
        _stochastic(out, pred, test)
        # the true SDE starts from each test trajectory's first state: a missing one has none to start from
        starts_observed = bool(np.isfinite(test["state"].isel(time=0).values).all())
        if oracle and system is not None and system.kind == "sde" and whole_state and starts_observed:
            _against_the_true_sde(out, pred, test, system, seed)
    return out


def _trajectory_errors(out: xr.Dataset, model: Model, pred: xr.Dataset, test: xr.Dataset, threshold: float,
                       lyapunov: Optional[float]) -> None:
    """Diverged paths, RMSE and normalised error by time, VPT, vector-field evaluations and the
    extrapolation error (``pred`` with its ``diverged_at``)."""
    out["diverged_trajectories"] = xr.DataArray(int(pred["diverged_at"].notnull().any("sample").sum()), attrs={
        "long_name": "test trajectories with a predicted path that left the finite numbers (its errors and "
                     "scores are infinite from then on)"})
    pred = pred.drop_vars("diverged_at")
    out["rmse"] = metrics.rmse(pred, test)
    error = metrics.normalized_error(pred, test)
    out["normalized_error"] = error.mean("trajectory").assign_attrs(error.attrs)
    vpt = metrics.valid_prediction_time_from_error(error, threshold, lyapunov)
    out["vpt"] = vpt["vpt"]
    out["vpt_median"] = vpt["vpt"].median().assign_attrs(vpt["vpt"].attrs)
    if "vpt_lyapunov" in vpt:
        out["vpt_lyapunov_median"] = vpt["vpt_lyapunov"].median().assign_attrs(vpt["vpt_lyapunov"].attrs)
    nfe = model.learner.last_nfe
    if nfe is not None:
        out["nfe"] = xr.DataArray(float(nfe), attrs={"long_name": "vector-field evaluations per rollout"})
    _extrapolation(out, test)


def _against_the_true_sde(out: xr.Dataset, pred: xr.Dataset, test: xr.Dataset, system: catalog.System,
                          seed: int) -> None:
    """CRPS and energy score of samples of the true SDE from the same starts, and the model's relative to them."""
    truth_samples = oracle_samples(test, system, pred.sizes["sample"], seed)
    for name, score in (("crps", metrics.crps), ("energy_score", metrics.energy_score)):
        model_score = score(pred, test, per_trajectory=True)
        oracle_score = score(truth_samples, test, per_trajectory=True)
        out[f"{name}_oracle"] = oracle_score.mean().assign_attrs(long_name=f"{name} of samples of the true SDE")
        out[f"{name}_relative"] = metrics.oracle_relative(model_score.mean(), oracle_score.mean())
        out[f"{name}_relative_se"] = metrics.oracle_relative_se(model_score, oracle_score)


def _extrapolation(out: xr.Dataset, test: xr.Dataset) -> None:
    """RMSE over the predicted span after its start, and that RMSE over the observed values' std."""
    squared = (out["rmse"].isel(time=slice(1, None)) ** 2).mean()
    rmse = float(np.sqrt(squared)) if out.sizes["time"] > 1 else float("nan")
    observed = test["state"].values[observation_mask(test)]
    spread = float(observed.std()) if observed.size else float("nan")
    out["extrapolation_rmse"] = xr.DataArray(rmse, attrs={"long_name": "RMSE of the observed variables over the "
                                                                        "predicted span after its start"})
    out["extrapolation_nrmse"] = xr.DataArray(rmse / spread if spread > 0 else float("nan"), attrs={
        "long_name": "extrapolation RMSE over the standard deviation of the observed test values"})


def _latent_scores(out: xr.Dataset, model: Model, ds: xr.Dataset, test: xr.Dataset, seed: int) -> None:
    """Interpolation error at held-out history samples, and ``hidden_r2`` where the data has hidden variables."""
    interpolation = interpolation_error(model, test, seed)
    if interpolation is not None:
        out["interpolation_rmse"] = xr.DataArray(interpolation, attrs={
            "long_name": "RMSE at observed history samples held out from the encoder"})
    train = select_split(ds, "train")
    if "hidden_state" in ds and train.sizes["trajectory"]:
        out["hidden_r2"] = hidden_r2(model, train, test)


def _field_and_energy(out: xr.Dataset, model: Model, test: xr.Dataset, pred: xr.Dataset,
                      system: catalog.System, seed: int) -> None:
    observed = observation_mask(test)
    traj, step = np.nonzero(observed)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(traj), size=min(MAX_FIELD_POINTS, len(traj)), replace=False)
    traj, step = traj[pick], step[pick]
    x = test["state"].values[traj, step]
    if model.learner.capabilities().has_vector_field:
        out["vector_field_error"] = metrics.vector_field_error(model.vector_field(x), true_drift(test, system, traj, x))
    if system.energy is None:
        return
    params = {k: torch.as_tensor(v, dtype=torch.float64)[:, None]
              for k, v in parameters_per_trajectory(test, system).items()}

    def energy(states: np.ndarray) -> np.ndarray:
        finite = np.isfinite(states).all(-1)
        value = system.energy(torch.as_tensor(np.where(finite[..., None], states, 0.0), dtype=torch.float64),
                              params).numpy()
        return np.where(finite, value, np.inf)  # a blown-up path's energy is infinitely wrong, not NaN

    dims = ("trajectory", "time")
    true_energy = xr.DataArray(energy(np.nan_to_num(test["state"].values)), dims=dims,
                               coords={"time": test["time"]}).where(xr.DataArray(observed, dims=dims))
    pred_energy = xr.DataArray(np.stack([energy(s) for s in pred["state"].values]), dims=("sample",) + dims,
                               coords={"time": test["time"]})
    out["energy_mse"] = metrics.energy_mse(pred_energy, true_energy)
    out["energy_drift"] = metrics.energy_drift(pred_energy).mean("trajectory")


def _stochastic(out: xr.Dataset, pred: xr.Dataset, test: xr.Dataset) -> None:
    out["crps"] = metrics.crps(pred, test).mean("variable")
    out["energy_score"] = metrics.energy_score(pred, test)
    for name, series in metrics.interval_scores(pred, test).data_vars.items():
        out[name] = series
    t = test["time"].values
    chosen = [t[len(t) // 4], t[len(t) // 2], t[-1]]
    w1 = metrics.wasserstein1(pred, test, times=chosen)
    out["wasserstein1"] = w1.rename(time="w1_time").mean("variable").assign_attrs(w1.attrs)


def summary(scores: xr.Dataset) -> dict[str, float]:
    """Scalar headline numbers of an :func:`evaluate` result (for tables and leaderboards)."""
    table: dict[str, Any] = {}
    for name, var in scores.data_vars.items():
        if var.ndim == 0:
            table[name] = float(var)
    for name in ("rmse", "crps", "energy_score", "coverage_50", "coverage_90"):
        if name in scores:
            table[f"{name}_mean"] = float(scores[name].mean())
    return table
