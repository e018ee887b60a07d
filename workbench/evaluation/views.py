"""What the app draws, computed once here: content keys, fields on grids, calibration curves, summaries.

The Streamlit pages only lay these results out; every number they show comes from a function in this
module (or from :mod:`workbench.evaluation.metrics` / :func:`workbench.evaluation.evaluate.evaluate`), so it is tested once
and a script gets exactly what the page shows.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
import xarray as xr

from . import climate as attractor, metrics
from ..data import time as timeaxis
from ..data.schema import json_attr, observation_mask, select_split
from ..data.io import write_netcdf
from ..errors import BadParameterError, DatasetError, DivergenceError, SolverStallError, UnsupportedError
from .evaluate import oracle_samples, parameters_per_trajectory, true_drift, true_system
from ..simulate import simulate
from ..training.prepare import evenly_spaced
from ..data.splits import merge_segments, time_split_info

DIMENSIONLESS = "1"


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays as for Python numbers (a file read back holds numpy types)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


# --- identity --------------------------------------------------------------------------------------

def _update_with_array(digest: "hashlib._Hash", name: str, values: np.ndarray) -> None:
    values = np.asarray(values)
    if values.dtype.kind in "OUS":  # strings: hash their text, not numpy's fixed-width buffer
        payload = json.dumps([str(v) for v in values.ravel()]).encode()
    else:
        payload = np.ascontiguousarray(values).tobytes()
    digest.update(f"{name}|{values.dtype.str}|{values.shape}|".encode())
    digest.update(payload)


def content_key(ds: xr.Dataset) -> str:
    """SHA-256 of everything that makes a dataset what it is: every variable and coordinate with its
    values, dims and attributes, and the global attributes.

    Two datasets that differ in any state value, time, split, mask or attribute get different keys;
    the same data loaded twice gets the same key. The app keys its caches by this, never by a label.

    Arguments:
        ds: any xarray Dataset (typically in the workbench schema).

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        digest.update(json.dumps([name, list(var.dims), var.attrs], sort_keys=True, default=_plain).encode())
        _update_with_array(digest, name, var.values)
    digest.update(json.dumps(ds.attrs, sort_keys=True, default=_plain).encode())
    return digest.hexdigest()


def model_key(model: Any) -> str:
    """SHA-256 of a fitted model: its weights (every tensor of the learner's state dict, in order),
    its standardisation and its description (``model.meta``: learner, options, variables, system).

    A retrained model, even under the same label, gets a different key; a model saved and loaded
    again gets the same one. A ``rate`` buffer of exactly 1 (the identity scaling, which files saved
    before format 3 load with) is left out, so such a model keeps the key it was saved with and the
    scores shipped for it (:func:`shipped_scores`) still match.

    Arguments:
        model: a :class:`workbench.Model`.

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256()
    for name, tensor in model.learner.state_dict().items():
        if name.rsplit(".", 1)[-1] == "rate" and tensor.numel() == 1 and float(tensor) == 1.0:
            continue
        _update_with_array(digest, name, tensor.detach().cpu().numpy())
    _update_with_array(digest, "scaler.mean", model.scaler.mean)
    _update_with_array(digest, "scaler.std", model.scaler.std)
    digest.update(json.dumps(model.meta, sort_keys=True, default=_plain).encode())
    return digest.hexdigest()


def save_scores(scores: xr.Dataset, model: Any, ds: xr.Dataset, path: Union[str, Path], n_samples: int) -> Path:
    """Write an :func:`workbench.evaluation.evaluate` result with the content keys of the model and the data it scored,
    so it can be shipped beside a demo and reused only for exactly that pair (see :func:`shipped_scores`).

    Arguments:
        scores: the evaluation result.
        model, ds: the model and dataset that were evaluated.
        path: the HDF5 file to write (atomically).
        n_samples: the ``n_samples`` the evaluation used.

    Returns:
        The path written.
    """
    keyed = scores.assign_attrs(model_key=model_key(model), data_key=content_key(ds), n_samples=int(n_samples))
    if model.stochastic:  # the calibration curves the Uncertainty page draws, from the same sample count
        keyed = keyed.merge(calibration_report(model, ds, n_samples), combine_attrs="override")
    return write_netcdf(keyed, path)


def shipped_scores(path: Union[str, Path], model: Any, ds: xr.Dataset, n_samples: int) -> Optional[xr.Dataset]:
    """The scores stored at ``path`` by :func:`save_scores` if they belong to exactly this model, this
    dataset and this ``n_samples`` (content keys compared), else None (also when there is no such file)."""
    path = Path(path)
    if not path.is_file():
        return None
    with xr.open_dataset(path, engine="h5netcdf") as stored:
        attrs = stored.attrs
        if (attrs.get("model_key"), attrs.get("data_key"), int(attrs.get("n_samples", -1))) != \
                (model_key(model), content_key(ds), int(n_samples)):
            return None
        scores = stored.load()
    scores.attrs = {k: v for k, v in scores.attrs.items() if k not in ("model_key", "data_key", "n_samples")}
    return scores


# --- units -----------------------------------------------------------------------------------------

def variable_units(ds: xr.Dataset) -> dict[str, Optional[str]]:
    """Each state variable's unit (``"1"`` when dimensionless, None when the file does not say)."""
    names = [str(v) for v in ds["variable"].values]
    if "units" in ds.coords:
        return dict(zip(names, (str(u) for u in np.atleast_1d(ds["units"].values))))
    unit = ds["state"].attrs.get("units")
    return {name: (str(unit) if unit is not None else None) for name in names}


def time_units(ds: xr.Dataset) -> Optional[str]:
    """The unit of the time axis (``"1"`` when dimensionless, None when the file does not say)."""
    unit = ds["time"].attrs.get("units")
    return None if unit is None else str(unit)


def unit_text(unit: Optional[str], unknown: str = "") -> str:
    """A unit as the app writes it everywhere: ``"rad"``; ``"dimensionless"`` for ``"1"``; ``unknown``
    when the file does not say (None or empty)."""
    if unit is None or str(unit) == "":
        return unknown
    return "dimensionless" if str(unit) == DIMENSIONLESS else str(unit)


def unit_label(name: str, unit: Optional[str]) -> str:
    """``"theta [rad]"``; ``"x [dimensionless]"`` for unit ``"1"``; the bare name for an unknown unit."""
    text = unit_text(unit)
    return f"{name} [{text}]" if text else name


def observed_values(ds: xr.Dataset) -> np.ndarray:
    """``state`` as a float array ``(trajectory, time, variable)`` with NaN at unobserved samples (``mask``
    False), so a chart draws a gap there instead of a line across a value nobody measured."""
    values = np.array(ds["state"].values, dtype=float)
    values[~observation_mask(ds)] = np.nan
    return values


def axis_time(ds: xr.Dataset, t: float) -> Any:
    """Where the numeric time ``t`` of ``ds`` lies on the axis :func:`time_axis` draws: a ``datetime64``
    on a calendar axis, else ``t`` as a float."""
    dates = timeaxis.to_datetimes(ds, np.array([float(t)]))
    return dates[0] if dates is not None else float(t)


def time_axis(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    """The time values to plot and their axis title: dates for a calendar axis (``days since ...``),
    else the numbers with their unit (``time [s]``)."""
    dates = timeaxis.to_datetimes(ds)
    if dates is not None:
        return dates, "date"
    return ds["time"].values, unit_label("time", time_units(ds))


def duration_text(value: float, ds: xr.Dataset) -> str:
    """A span on the time axis of ``ds`` in words: ``"2.31 s"``, ``"14 days"``, ``"2.31 time units"``."""
    unit = time_units(ds)
    if unit is not None and timeaxis.is_calendar(ds):
        unit = timeaxis.step_label(ds)
    if unit in (None, "", DIMENSIONLESS):
        return f"{value:.3g} time units"
    return f"{value:.3g} {unit}"


def divergence_text(pred: xr.Dataset, ds: xr.Dataset) -> Optional[str]:
    """A sentence on the paths of ``pred`` (from ``Model.predict(on_divergence="mark")``) that left the
    finite numbers, with the earliest time after the start on the time axis of ``ds``; None if none did."""
    at = pred["diverged_at"]
    lost = int(at.notnull().sum())
    if not lost:
        return None
    first = duration_text(float(at.min()) - float(pred["time"][0]), ds)
    which = (f"{lost} of the model's {at.size} predicted paths" if pred.sizes["sample"] > 1
             else f"The model's rollout of {lost} of {at.size} trajectories")
    return (f"{which} left the finite numbers, the first {first} after the start: the charts "
            "show each path up to its blow-up, and the scores count it as infinitely wrong from there.")


# --- vector fields ---------------------------------------------------------------------------------

def field_on_grid(model: Any, ds: xr.Dataset, i: int, j: int, n: int = 16) -> xr.Dataset:
    """The learned and (where the system is known) the true drift on an ``n x n`` grid in the plane of
    variables ``i`` (horizontal) and ``j`` (vertical), with the per-point error.

    The grid spans the observed range of the two variables; the other variables sit at their observed
    mean. The per-point error is ``|f_learned - f_true| / RMS_grid |f_true|`` (norms over all
    variables): its root mean square over the grid equals :func:`workbench.evaluation.metrics.vector_field_error`
    on the same points, so the map and the scalar read on one scale without an arbitrary floor.

    Arguments:
        model: a fitted :class:`workbench.Model` whose variables are those of ``ds``.
        ds: dataset in the schema; its ``system``/``params`` attrs give the true field when the system is
            in the catalog (the first trajectory's parameters are used).
        i, j: positions of the horizontal and vertical variables (different).
        n: grid points per axis, 2 to 200.

    Returns:
        Dataset with dims ``(grid_y, grid_x, variable)``: ``learned_drift``, ``speed_learned`` (the drift's
        length in the (i, j) plane), and when the truth is known ``true_drift``, ``speed_true`` and
        ``error``; coords ``grid_x``/``grid_y`` (values of variables ``i`` and ``j``); attrs
        ``horizontal``, ``vertical``, ``slice`` (JSON: the fixed values of the other variables) and
        ``vector_field_error`` when the truth is known.
    """
    variables = [str(v) for v in ds["variable"].values]
    if variables != list(model.variables):
        raise DatasetError(f"the model predicts {list(model.variables)} but the dataset holds {variables}; "
                           "pick a dataset with the model's variables")
    dim = len(variables)
    if not (0 <= i < dim and 0 <= j < dim) or i == j:
        raise BadParameterError(f"pick two different variables among {variables} for the grid (got {i} and {j})")
    if not 2 <= int(n) <= 200:
        raise BadParameterError(f"grid size must be between 2 and 200 points per axis, got {n}")
    observed = ds["state"].values[observation_mask(ds)]
    observed = observed[np.isfinite(observed).all(axis=1)]
    if len(observed) == 0:
        raise DatasetError("the dataset has no finite observed state to span a grid")
    lo, hi, mid = observed.min(0), observed.max(0), observed.mean(0)
    xs, ys = np.linspace(lo[i], hi[i], int(n)), np.linspace(lo[j], hi[j], int(n))
    gx, gy = np.meshgrid(xs, ys)
    points = np.tile(mid, (gx.size, 1))
    points[:, i], points[:, j] = gx.ravel(), gy.ravel()
    shape = (int(n), int(n), dim)
    grid_dims = ("grid_y", "grid_x", "variable")
    learned = model.vector_field(points)
    out = xr.Dataset(
        {"learned_drift": (grid_dims, learned.reshape(shape), {"long_name": "learned drift dx/dt"}),
         "speed_learned": (grid_dims[:2], np.hypot(learned[:, i], learned[:, j]).reshape(shape[:2]),
                           {"long_name": "length of the learned drift in the plane"})},
        coords={"grid_x": ("grid_x", xs, {"long_name": variables[i]}),
                "grid_y": ("grid_y", ys, {"long_name": variables[j]}),
                "variable": ("variable", variables)},
        attrs={"horizontal": variables[i], "vertical": variables[j],
               "slice": json.dumps({variables[k]: float(mid[k]) for k in range(dim) if k not in (i, j)})})
    system = true_system(ds)
    if system is None:
        return out
    true = true_drift(ds, system, np.zeros(len(points), dtype=int), points)
    rms_true = np.sqrt(np.mean(np.sum(true ** 2, axis=1)))
    error = np.linalg.norm(learned - true, axis=1) / rms_true if rms_true > 0 else np.full(len(points), np.nan)
    out["true_drift"] = (grid_dims, true.reshape(shape), {"long_name": "true drift dx/dt"})
    out["speed_true"] = (grid_dims[:2], np.hypot(true[:, i], true[:, j]).reshape(shape[:2]),
                         {"long_name": "length of the true drift in the plane"})
    out["error"] = (grid_dims[:2], error.reshape(shape[:2]),
                    {"long_name": "|f_learned - f_true| / RMS |f_true| over the grid", "units": DIMENSIONLESS})
    if rms_true > 0:
        out.attrs["vector_field_error"] = float(metrics.vector_field_error(learned, true))
    return out


# --- discovered equations --------------------------------------------------------------------------

def has_term_library(model: Any) -> bool:
    """Whether the model's equations are coefficients on a library of terms (``sindy``), which
    :func:`equation_comparison` can set against the true system's term by term."""
    return hasattr(model.learner, "library") and hasattr(model.learner, "term_names")


def equation_comparison(model: Any, system: Any, params: dict[str, float], n_points: int = 2000,
                        seed: int = 0) -> xr.Dataset:
    """The learned coefficients of a ``sindy`` model beside the true system's on the same library.

    The true coefficients are the least-squares solution of ``theta(x) C^T = f_true(x)`` on ``n_points``
    states ``x`` drawn uniformly from the box mean +- 2 std of the model's training data, ``theta``
    being the model's own library. When the true drift lies in the library's span (a polynomial system
    within the library's degree) the fit is exact up to rounding and its relative residual is ~1e-15;
    otherwise the residual says how far the library is from the truth and ``representable`` is False.

    Arguments:
        model: a fitted :class:`workbench.Model` of learner ``sindy``.
        system: the catalog :class:`~systems.System` the data came from (same variables).
        params: the true parameter values (missing ones take the system's defaults).
        n_points: sample states for the least squares (at least the number of library terms).
        seed: seeds the sample states.

    Returns:
        Dataset over ``(variable, term)``: ``learned`` and ``true`` coefficients (physical units),
        ``error`` (learned - true) and ``relative_error`` (``|error| / |true|``, NaN where the true term is
        zero); attrs ``representable`` (bool), ``residual`` (relative RMS residual of the true fit),
        ``max_relative_error`` (over the true non-zero terms) and ``spurious_terms`` (learned non-zero
        where the truth is zero).

    References:
        Brunton, Proctor & Kutz (2016), PNAS 113, 3932 (the library and coefficient matrix).
    """
    learner = model.learner
    if not has_term_library(model):
        raise UnsupportedError(f"{model.name} has no equations to compare; fit learner 'sindy' for discovered "
                               "equations")
    if system.dim != len(model.variables):
        raise DatasetError(f"{system.name} has {system.dim} variables but the model {len(model.variables)}; "
                           "compare a model with the system it was fitted on")
    library_size = int(learner.coefficients.shape[1])
    if n_points < library_size:
        raise BadParameterError(f"n_points must be at least the library size {library_size}, got {n_points}")
    mean, std = np.asarray(model.scaler.mean, float), np.asarray(model.scaler.std, float)
    x = np.random.default_rng(seed).uniform(mean - 2 * std, mean + 2 * std, size=(n_points, len(mean)))
    values = {**system.defaults, **params}
    p = {k: torch.full((n_points,), float(values[k]), dtype=torch.float64) for k in system.params}
    xt = torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        f_true = system.drift(torch.zeros(n_points, dtype=torch.float64), xt, p).numpy()
        theta = learner.library(xt).numpy()
    true, *_ = np.linalg.lstsq(theta, f_true, rcond=None)
    true = true.T  # (variable, term), as the learner stores its coefficients
    residual = float(np.sqrt(np.mean((theta @ true.T - f_true) ** 2) / np.mean(f_true ** 2)))
    representable = residual < 1e-8
    if representable:  # exact zeros where the truth has no term (least squares leaves ~1e-15)
        true = np.where(np.abs(true) > 1e-9 * np.abs(true).max(), true, 0.0)
    learned = learner.coefficients.double().cpu().numpy()
    error = learned - true
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(true != 0, np.abs(error) / np.abs(true), np.nan)
    dims = ("variable", "term")
    coords = {"variable": model.variables, "term": learner.term_names(model.variables)}
    return xr.Dataset(
        {"learned": (dims, learned, {"long_name": "learned coefficient"}),
         "true": (dims, true, {"long_name": "true coefficient (least squares of the true drift on the library)"}),
         "error": (dims, error, {"long_name": "learned - true coefficient"}),
         "relative_error": (dims, relative, {"long_name": "|learned - true| / |true|", "units": DIMENSIONLESS})},
        coords=coords,
        attrs={"representable": bool(representable), "residual": residual,
               "max_relative_error": float(np.nanmax(relative)) if np.isfinite(relative).any() else float("nan"),
               "spurious_terms": int(np.count_nonzero((true == 0) & (learned != 0))) if representable else -1})


def parameter_comparison(model: Any, ds: xr.Dataset, level: float = 0.95) -> xr.Dataset:
    """A grey-box model's estimated parameters beside the truth the dataset was simulated with.

    Arguments:
        model: a fitted model with :meth:`workbench.Model.parameters` (``mechanistic``).
        ds: the data it is compared on; ``true`` comes from its system's parameters (shared by all
            trajectories) and is NaN for measured data or parameters that vary by trajectory.
        level: the confidence level of the intervals.

    Returns:
        ``model.parameters(level)`` plus ``true``, ``relative_error`` and ``covered`` (the interval
        holds the truth) over ``parameter``.
    """
    table = model.parameters(level)
    system = true_system(ds)
    truth = np.full(table.sizes["parameter"], np.nan)
    if system is not None and system.name == model.meta.get("options", {}).get("system"):
        values = parameters_per_trajectory(ds, system)
        for i, name in enumerate(table["parameter"].values):
            per_trajectory = np.asarray(values.get(str(name), [np.nan]), dtype=float)
            if np.ptp(per_trajectory) == 0:
                truth[i] = per_trajectory[0]
    table["true"] = ("parameter", truth)
    table["relative_error"] = ("parameter", np.abs(table["estimate"].values - truth) / np.abs(truth))
    table["covered"] = ("parameter", (table["ci_low"].values <= truth) & (truth <= table["ci_high"].values))
    return table


def parameter_frame(table: xr.Dataset) -> pd.DataFrame:
    """:func:`parameter_comparison` as a table to show: numbers to 4 significant digits, text for
    parameters the data cannot identify."""
    rows = []
    for i, name in enumerate(table["parameter"].values):
        identifiable = bool(table["identifiable"][i])
        estimate, std = float(table["estimate"][i]), float(table["std_error"][i])
        # enough digits that a narrow interval (noise-free data) does not print as [10, 10]
        digits = int(min(15, max(4, np.ceil(np.log10(abs(estimate) / std)) + 2))) if 0 < std < np.inf and estimate else 4
        row = {"parameter": str(name), "estimate": f"{estimate:.{digits}g}",
               "std. error": _number(std) if identifiable else "not identifiable",
               f"{100 * table.attrs['level']:g}% interval": (
                   f"[{float(table['ci_low'][i]):.{digits}g}, {float(table['ci_high'][i]):.{digits}g}]"
                   if identifiable else "-")}
        if "true" in table and np.isfinite(float(table["true"][i])):
            row["true"] = _number(float(table["true"][i]))
            row["relative error"] = f"{100 * float(table['relative_error'][i]):.2g}%"
            row["interval holds truth"] = "yes" if bool(table["covered"][i]) else "no"
        rows.append(row)
    return pd.DataFrame(rows)


def coefficient_table(comparison: xr.Dataset) -> pd.DataFrame:
    """The terms of :func:`equation_comparison` that the truth or the model uses, one row each:
    ``equation``, ``term``, ``true``, ``learned``, ``error``, ``relative error``."""
    rows = []
    for variable in comparison["variable"].values:
        row = comparison.sel(variable=variable)
        for k, term in enumerate(comparison["term"].values):
            true, learned = float(row["true"][k]), float(row["learned"][k])
            if true != 0 or learned != 0:
                rows.append({"equation": f"d{variable}/dt", "term": str(term), "true": true, "learned": learned,
                             "error": learned - true, "relative error": float(row["relative_error"][k])})
    return pd.DataFrame(rows, columns=["equation", "term", "true", "learned", "error", "relative error"])


# --- long runs: the attractor a surrogate keeps ----------------------------------------------------

def long_run(model: Any, ds: xr.Dataset, n_runs: int = 8, run_lyapunov_times: float = 40.0,
             transient_lyapunov_times: float = 5.0, max_steps: int = 4000, bins: int = 48,
             lyapunov_averaging: float = 20.0, seed: int = 0) -> xr.Dataset:
    """Learned vs true climate of a chaotic system: invariant marginals, power spectra, Lyapunov exponents.

    From the first ``n_runs`` test trajectories the model (:func:`workbench.evaluation.climate.model_free_run`) and
    the true system (DOP853 at 1e-7) each run freely for ``transient + run`` Lyapunov times at the
    data's spacing, at most ``max_steps`` samples (the bound on the cost); the transient is dropped.
    The marginals are histograms on bins spanning both runs; the spectra are Welch's
    (:func:`workbench.evaluation.climate.power_spectrum`); the distances are
    :func:`workbench.evaluation.climate.measure_distance` and :func:`workbench.evaluation.climate.spectrum_error`. The
    model's largest Lyapunov exponent is :func:`workbench.evaluation.climate.model_lyapunov` on up to 4 starts
    (``tau`` half a Lyapunov time, ``lyapunov_averaging`` Lyapunov times); the true one is the
    catalog's published value, else the same Benettin estimate on the true flow.

    Arguments:
        model: a fitted deterministic :class:`workbench.Model` with the dataset's variables.
        ds: dataset from a chaotic catalog ODE with a test split (or no split).
        n_runs, run_lyapunov_times, transient_lyapunov_times, max_steps: the runs (see above).
        bins: histogram bins per variable.
        lyapunov_averaging: averaging time of the exponents, in Lyapunov times.
        seed: seeds the Lyapunov perturbations.

    Returns:
        Dataset with ``density_true`` / ``density_learned`` ``(variable, bin)`` (probability density, with
        ``bin_center(variable, bin)``), ``psd_true`` / ``psd_learned`` ``(frequency, variable)``
        (cycles per time unit), ``w1``, ``hellinger``, ``spectrum_error`` over ``variable``, scalars
        ``lyapunov_true`` and ``lyapunov_learned``; attrs ``dt``, ``n_runs``, ``steps``, ``transient``
        (samples dropped) and ``diverged`` (the reason, empty when the model's run stayed finite; then the
        learned arrays are NaN and the distances infinite).
    """
    system = true_system(ds)
    if system is None or system.kind != "ode" or not system.facts.get("chaotic"):
        raise UnsupportedError("the long-run comparison needs data from a chaotic catalog ODE (facts 'chaotic'); "
                               "generate one on the Systems page")
    if model.stochastic:
        raise UnsupportedError(f"{model.name} is stochastic: compare its ensemble on the Uncertainty page")
    variables = [str(v) for v in ds["variable"].values]
    if variables != list(model.variables):
        raise DatasetError(f"the model predicts {list(model.variables)} but the dataset holds {variables}; "
                           "pick a dataset with the model's variables")
    if not (1 <= int(n_runs) <= 64 and 100 <= int(max_steps) <= 50_000 and 4 <= int(bins) <= 512):
        raise BadParameterError(f"long_run needs 1 <= n_runs <= 64, 100 <= max_steps <= 50000 and 4 <= bins <= 512; "
                                f"got n_runs={n_runs}, max_steps={max_steps}, bins={bins}")
    test = select_split(ds, "test")
    test = test if test.sizes["trajectory"] else ds
    runs = min(int(n_runs), test.sizes["trajectory"])
    test = test.isel(trajectory=slice(0, runs))
    dt = float(test["time"].values[1] - test["time"].values[0])
    horizon = 1.0 / system.lyapunov if system.lyapunov else 1.0
    steps = min(int(max_steps), int(round((transient_lyapunov_times + run_lyapunov_times) * horizon / dt)))
    transient = min(int(round(transient_lyapunov_times * horizon / dt)), steps // 5)
    context = int(model.learner.capabilities().context)
    states = test["state"].values
    params = parameters_per_trajectory(test, system)
    true_run = simulate(system, n=runs, times=np.arange(steps + 1) * dt, x0=states[:, 0], params=params, split=None,
                        rtol=1e-7, atol=1e-7, progress=False)["state"].values[:, transient:]
    tau = max(dt, 0.5 * horizon)
    lyapunov_true = _true_lyapunov(system, params, true_run[:4, 0], tau, lyapunov_averaging * horizon)
    try:
        learned = attractor.model_free_run(model, states[:, :context + 1], dt, steps - context)
        learned = learned[:, max(0, transient - context):]
        lyapunov_learned = float(np.mean(attractor.model_lyapunov(
            model, states[:4, :context + 1], dt, tau, lyapunov_averaging * horizon, transient=transient * dt,
            seed=seed)))
        diverged = "" if np.isfinite(learned).all() else "the model's run left the finite numbers"
    except (DivergenceError, SolverStallError) as exc:
        learned, lyapunov_learned, diverged = np.full_like(true_run, np.nan), float("nan"), str(exc)
    data_vars, coords = _climate(true_run, learned, bool(diverged), dt, int(bins), variables)
    return xr.Dataset(
        {**data_vars,
         "lyapunov_true": ((), lyapunov_true, {"long_name": "largest Lyapunov exponent of the true system",
                                               "units": "1 / time", "source": "catalog (published)"
                                               if system.lyapunov else "estimated (Benettin)"}),
         "lyapunov_learned": ((), lyapunov_learned, {"long_name": "largest Lyapunov exponent of the model",
                                                     "units": "1 / time"})},
        coords=coords,
        attrs={"dt": dt, "n_runs": runs, "steps": steps, "transient": transient, "diverged": diverged,
               "lyapunov_time": horizon})


def _true_lyapunov(system: Any, params: dict[str, np.ndarray], starts: np.ndarray, tau: float,
                   averaging: float) -> float:
    """The catalog's published largest exponent, else a Benettin estimate on the true flow from ``starts``."""
    if system.lyapunov:
        return float(system.lyapunov)
    p = {k: torch.as_tensor(np.tile(v[:len(starts)], 2), dtype=torch.float64) for k, v in params.items()}
    return float(np.mean(attractor.flow_lyapunov(lambda t, y: system.drift(t, y, p), torch.as_tensor(starts), tau,
                                                 averaging)))


def _climate(true_run: np.ndarray, learned: np.ndarray, diverged: bool, dt: float, bins: int,
             variables: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Invariant statistics of the true and learned runs ``(trajectory, time, variable)`` and their
    distances: marginal densities, Welch spectra, W1/Hellinger and spectrum error. For a ``diverged``
    model the learned statistics are NaN and the spectrum error infinite; its non-finite samples
    count as infinitely far in W1/Hellinger. Returns the data variables and coordinates of
    :func:`long_run`'s dataset."""
    centers, density_true, density_learned = _marginals(true_run, None if diverged else learned, bins)
    frequency, psd_true = attractor.power_spectrum(true_run, dt)
    psd_learned = np.full_like(psd_true, np.nan) if diverged else attractor.power_spectrum(learned, dt)[1]
    measure = attractor.measure_distance(np.where(np.isfinite(learned), learned, np.inf), true_run,
                                         variables=variables)
    spectrum_error = attractor.spectrum_error(np.full_like(true_run, np.inf) if diverged else learned, true_run, dt)
    data_vars = {
        "density_true": (("variable", "bin"), density_true, {"long_name": "invariant density of the true system"}),
        "density_learned": (("variable", "bin"), density_learned, {"long_name": "invariant density of the model"}),
        "psd_true": (("frequency", "variable"), psd_true, {"long_name": "Welch power spectral density, true"}),
        "psd_learned": (("frequency", "variable"), psd_learned, {"long_name": "Welch power spectral density, model"}),
        "w1": measure["w1"], "hellinger": measure["hellinger"],
        "spectrum_error": ("variable", spectrum_error,
                           {"long_name": "relative L1 error of the power spectrum", "units": DIMENSIONLESS})}
    coords = {"variable": variables, "bin_center": (("variable", "bin"), centers),
              "frequency": ("frequency", frequency, {"units": "1 / time"})}
    return data_vars, coords


def _marginals(true_run: np.ndarray, learned: Optional[np.ndarray],
               bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-variable histogram densities of the runs ``(trajectory, time, variable)`` on shared bins
    spanning both: bin centres, true and learned densities (NaN without a learned run)."""
    n_vars = true_run.shape[-1]
    flat_true = true_run.reshape(-1, n_vars)
    flat_learned = None if learned is None else learned.reshape(-1, n_vars)
    centers, density_true, density_learned = (np.full((n_vars, bins), np.nan) for _ in range(3))
    for v in range(n_vars):
        both = flat_true[:, v] if flat_learned is None else np.r_[flat_true[:, v], flat_learned[:, v]]
        edges = np.linspace(both.min(), max(both.max(), both.min() + 1e-12), bins + 1)
        centers[v] = 0.5 * (edges[1:] + edges[:-1])
        density_true[v] = np.histogram(flat_true[:, v], edges, density=True)[0]
        if flat_learned is not None:
            density_learned[v] = np.histogram(flat_learned[:, v], edges, density=True)[0]
    return centers, density_true, density_learned


# --- forecasts of measured series ------------------------------------------------------------------

def test_period(ds: xr.Dataset) -> Optional[tuple[float, int]]:
    """``(test_start, samples)``: where the held-out tail of a time-split dataset starts on the time axis
    and how many sample times it spans; None for data without a time split."""
    info = time_split_info(ds)
    if not info or info.get("test_start") is None:
        return None
    start = float(info["test_start"])
    return start, int((ds["time"].values >= start).sum())


def forecast_horizons(ds: xr.Dataset, count: int = 6) -> list[int]:
    """Forecast steps worth scoring on a time-split dataset: powers of two from 1 up to half the test
    period (at most ``count`` of them), so each horizon still has many forecast origins."""
    period = test_period(ds)
    if period is None:
        raise DatasetError("the dataset has no time split; split it in time on the Data page "
                           "(workbench.split_time) to score forecasts by horizon")
    longest = max(1, period[1] // 2)
    return [2 ** k for k in range(count) if 2 ** k <= longest] or [1]


def holdout_forecast(model: Any, ds: xr.Dataset, n_samples: int = 1, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """The full observed series and the model's forecast of its held-out tail from the start of the test
    period (using only the data before it), as :meth:`workbench.Model.forecast` gives it.

    Arguments:
        model: a fitted :class:`workbench.Model` with the dataset's variables.
        ds: a time-split dataset (:func:`workbench.split_time`).
        n_samples: forecast paths (stochastic learners).
        seed: seeds the paths.

    Returns:
        ``(series, forecast)``: the merged series ``state(trajectory, time, variable)`` and the forecast
        ``state(sample, trajectory, time, variable)`` over the test period's times.
    """
    period = test_period(ds)
    if period is None:
        raise DatasetError("the dataset has no time split, so there is no held-out tail to forecast; split it in "
                           "time on the Data page (workbench.split_time)")
    return merge_segments(ds), model.forecast(ds, period[1], n_samples=n_samples, seed=seed, origin="test")


# --- calibration -----------------------------------------------------------------------------------

def calibration_curve(pred: metrics.Data, truth: metrics.Data,
                      levels: Sequence[float] = tuple(np.round(np.arange(0.1, 1.0, 0.1), 2))) -> xr.DataArray:
    """Observed coverage of the ensemble's central intervals at several nominal levels, in one pass.

    Each value is :func:`workbench.evaluation.metrics.coverage` ``(pred, truth, level, over="all")``; the truth's
    rank among the members is computed once and shared by all levels.

    Arguments:
        pred: ensemble ``state(sample, trajectory, time, variable)`` (or the Dataset holding it).
        truth: true ``state(trajectory, time, variable)`` on the same coordinates.
        levels: nominal probabilities in (0, 1).

    Returns:
        DataArray ``coverage(level)``, dimensionless; a calibrated ensemble lies on the diagonal.
    """
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or levels.size == 0:
        raise BadParameterError("levels must be a non-empty list of probabilities in (0, 1)")
    p, t, observed = metrics._pair(pred, truth, "calibration_curve", min_samples=1)
    ranks = metrics._ranks(p, t)
    values = [float(metrics._coverage(ranks, p.sizes["sample"], observed, float(level), "all")) for level in levels]
    return xr.DataArray(np.array(values), dims="level", coords={"level": levels}, name="coverage",
                        attrs={"long_name": "fraction of truth inside the central ensemble interval",
                               "units": DIMENSIONLESS, "members": int(p.sizes["sample"])})


def calibration_report(model: Any, ds: xr.Dataset, n_samples: int, seed: int = 1) -> xr.Dataset:
    """Calibration curves on the test split of ``ds``: of ``n_samples`` paths of the model from each test
    initial state and, when the data comes from a catalog SDE, of as many paths of the true SDE.

    Returns:
        Dataset with ``calibration_learned(level)`` and, where the truth is a known SDE,
        ``calibration_oracle(level)`` (see :func:`calibration_curve`).
    """
    test = select_split(ds, "test")
    paths = model.predict(test, n_samples=n_samples, seed=seed, on_divergence="mark")  # +inf ranks above the truth
    out = xr.Dataset({"calibration_learned": calibration_curve(paths, test)})
    system = true_system(test)
    if system is not None and system.kind == "sde":
        out["calibration_oracle"] = calibration_curve(oracle_samples(test, system, n_samples, seed + 1), test)
    return out


def fan_quantiles(samples: metrics.Data, probabilities: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)
                  ) -> xr.DataArray:
    """Quantiles over the ``sample`` dim at Weibull plotting positions (as :func:`metrics.interval_width`),
    for fan charts: the 0.05/0.95 pair bounds the central 90% band that the coverage scores.

    Arguments:
        samples: ensemble ``state`` with a ``sample`` dim (or the Dataset holding it).
        probabilities: quantile levels in [0, 1].

    Returns:
        DataArray with a leading ``quantile`` dim and the remaining dims of ``samples``.
    """
    state = samples["state"] if isinstance(samples, xr.Dataset) else samples
    if "sample" not in state.dims:
        raise BadParameterError("fan_quantiles needs an ensemble with a 'sample' dim; predict with n_samples > 1")
    return metrics.sample_quantiles(state, probabilities)


# --- summaries -------------------------------------------------------------------------------------

def _number(value: float) -> str:
    return f"{value:.4g}"


def describe(ds: xr.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A readable summary of a dataset (simulated or imported) with units.

    Arguments:
        ds: dataset in the schema.

    Returns:
        ``(overview, variables)``: ``overview`` has columns ``property`` and ``value`` (source, kind,
        sizes, time span and step with units, split counts, observed share, generator/integrator where
        known); ``variables`` has one row per state variable with its unit, min, mean, max and std over
        the observed samples.
    """
    split_info = time_split_info(ds)
    whole = merge_segments(ds)  # the pieces of a time split are one series again
    t = ds["time"].values
    tu = time_units(ds)
    tu_text = "" if tu in (None, "", DIMENSIONLESS) else f" {tu}"
    simulated = ds.attrs.get("kind") in ("ode", "sde") and ds.attrs.get("system")
    source = ds.attrs["system"] if simulated else next(
        (str(ds.attrs[k]) for k in ("source_file", "source", "title") if ds.attrs.get(k)), "imported data")
    rows = [("source", str(source)),
            ("kind", {"ode": "simulated, deterministic (ODE)", "sde": "simulated, stochastic (SDE)"}.get(
                ds.attrs.get("kind"), "measured or imported")),
            ("size", f"{whole.sizes['trajectory']} {'series' if split_info else 'trajectories'} x "
                     f"{ds.sizes['time']} samples x {ds.sizes['variable']} variables")]
    dates = timeaxis.to_datetimes(ds)
    if dates is not None:
        rows.append(("dates", f"{np.datetime_as_string(dates[0], unit='D')} to "
                              f"{np.datetime_as_string(dates[-1], unit='D')} (time axis: {tu})"))
        tu_text = f" {timeaxis.step_label(ds)}"
    else:
        rows.append(("time span", f"{_number(float(t[0]))} to {_number(float(t[-1]))}{tu_text}" +
                     ("" if tu_text else " (dimensionless time)" if tu == DIMENSIONLESS else " (unit not given)")))
    if len(t) > 1:
        steps = np.diff(t)
        regular = evenly_spaced(torch.as_tensor(t))
        rows.append(("sampling step", f"{_number(float(steps[0]))}{tu_text}" if regular else
                     f"irregular, {_number(float(steps.min()))} to {_number(float(steps.max()))}{tu_text}"))
    if split_info:
        starts = {k: v for k, v in split_info.items() if k.endswith("_date") or k in ("val_start", "test_start")}
        rows.append(("split in time", ", ".join(f"{k.replace('_', ' ')} {str(v)[:10] if k.endswith('_date') else v}"
                                                for k, v in starts.items()
                                                if v is not None and not (dates is not None and k[-5:] == "start"))))
    elif "split" in ds.coords:
        names, counts = np.unique(ds["split"].values.astype(str), return_counts=True)
        order = {"train": 0, "val": 1, "test": 2}
        pairs = sorted(zip(names, counts), key=lambda pair: order.get(pair[0], 3))
        rows.append(("split (trajectories)", ", ".join(f"{name} {count}" for name, count in pairs)))
    observed = observation_mask(whole)
    if not observed.all():
        rows.append(("observed samples", f"{observed.mean():.1%}"))
    params = json_attr(ds, "params", None)
    if params:
        rows.append(("parameters", ", ".join(f"{k} = {_number(float(v))}" for k, v in params.items())))
    for key, label in (("integrator", "integrator"), ("generator", "generated by"), ("seed", "seed")):
        if key in ds.attrs:
            rows.append((label, str(ds.attrs[key])))
    overview = pd.DataFrame(rows, columns=["property", "value"])

    units = variable_units(ds)
    state = whole["state"].values[observed]
    table = []
    for k, name in enumerate(units):
        column = state[:, k][np.isfinite(state[:, k])]
        stats = [float(f(column)) if column.size else float("nan") for f in (np.min, np.mean, np.max, np.std)]
        table.append({"variable": name, "unit": unit_text(units[name], "not given"),
                      **dict(zip(("min", "mean", "max", "std"), stats))})
    return overview, pd.DataFrame(table)


def score_table(scores: xr.Dataset) -> pd.DataFrame:
    """The scalar scores of an :func:`workbench.evaluation.evaluate` result as rows ``metric``, ``meaning``, ``value``,
    ``unit`` (from each score's attrs; ``dimensionless`` for unit ``"1"``, blank when not stated)."""
    rows = []
    for name, var in scores.data_vars.items():
        if var.ndim == 0:
            unit = var.attrs.get("units")
            rows.append({"metric": str(name), "meaning": str(var.attrs.get("long_name", "")),
                         "value": float(var), "unit": unit_text(unit)})
    return pd.DataFrame(rows, columns=["metric", "meaning", "value", "unit"])


def facts_table(facts: dict[str, Any], time_unit: Optional[str] = None) -> pd.DataFrame:
    """A catalog system's ``facts`` as a two-column table (``fact``, ``value``) of readable text.

    Arguments:
        facts: mapping of fact names to numbers, booleans, strings, lists or nested mappings.
        time_unit: the system's time unit; Lyapunov exponents and times are stated in it.

    Returns:
        DataFrame with one row per fact (nested mappings flattened to ``outer: inner``).
    """
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return _number(value)
        if isinstance(value, (list, tuple)):
            return ", ".join(text(v) for v in value)
        return str(value)

    unit = "time unit" if time_unit in (None, "", DIMENSIONLESS) else time_unit
    suffix = {"max_lyapunov_exponent": f" per {unit}", "lyapunov_time": f" {unit}s" if unit == "time unit" else f" {unit}"}
    rows = []
    for key, value in facts.items():
        if key in suffix and isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((key.replace("_", " "), text(value) + suffix[key]))
        elif isinstance(value, dict):
            rows += [(f"{key.replace('_', ' ')}: {inner.replace('_', ' ')}", text(v)) for inner, v in value.items()]
        else:
            rows.append((key.replace("_", " "), text(value)))
    return pd.DataFrame(rows, columns=["fact", "value"])


__all__ = ["content_key", "model_key", "save_scores", "shipped_scores", "variable_units", "time_units", "unit_text",
           "unit_label", "observed_values", "axis_time", "time_axis", "duration_text", "divergence_text",
           "field_on_grid", "equation_comparison", "coefficient_table", "long_run", "test_period", "forecast_horizons",
           "holdout_forecast", "calibration_curve", "calibration_report", "fan_quantiles", "describe", "score_table",
           "facts_table"]
