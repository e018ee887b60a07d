"""What a model's learned structure looks like beside the truth: fields on grids, equations and
parameters, calibration of ensembles.

Each function returns labelled xarray data that the app lays out and a script reads the same way.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from . import metrics
from .truth import oracle_samples, parameters_per_trajectory, true_drift, true_system
from ..data.schema import observation_mask, select_split
from ..errors import BadParameterError, DatasetError, UnsupportedError

DIMENSIONLESS = "1"


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


def ude_terms(model: Any, ds: xr.Dataset, trajectory: int = 0) -> xr.Dataset:
    """A universal differential equation's drift split into its parts along one trajectory.

    Arguments:
        model: a fitted ``ude`` model.
        ds: data whose trajectory ``trajectory`` (a position) gives the states; its observed samples
            are used.
        trajectory: which trajectory.

    Returns:
        A dataset over ``(time, variable)`` in the data's units per unit time: ``known`` (the known
        terms), ``learned`` (the network's residual), ``discovered`` (the sparse equations found for
        it) and, where ``ds`` names the true system, ``missing``: the true drift minus the known
        terms, what the residual should have learned (Rackauckas et al. 2020, Fig. 3).

    Raises:
        UnsupportedError: the model is not a universal differential equation.
        DatasetError: the trajectory has no fully observed sample.
    """
    parts_of = getattr(model.learner, "drift_parts", None)
    if parts_of is None:
        raise UnsupportedError(f"a {model.name} model has no known/learned split of its drift",
                               fix="fit learner='ude' with known=... to learn a residual beside known terms")
    one = ds.isel(trajectory=trajectory)
    x = np.asarray(one["state"].values, dtype=np.float64)
    keep = np.isfinite(x).all(-1)
    if not keep.any():
        raise DatasetError(f"trajectory {trajectory} has no fully observed sample to evaluate the drift at",
                           fix="pick another trajectory")
    x, times = x[keep], np.asarray(one["time"].values, dtype=np.float64)[keep]
    like = model.learner.scale
    with torch.no_grad():
        parts = parts_of(torch.as_tensor(times, dtype=like.dtype), torch.as_tensor(x, dtype=like.dtype))
    dims = ("time", "variable")
    out = xr.Dataset({name: (dims, value.double().cpu().numpy()) for name, value in parts.items()},
                     coords={"time": times, "variable": ds["variable"].values})
    system = true_system(ds)
    if system is not None and system.dim == x.shape[1]:
        position = np.full(len(x), trajectory)
        out["missing"] = (dims, true_drift(ds, system, position, x) - out["known"].values)
    if "units" in ds.coords:
        out = out.assign_coords(units=("variable", ds["units"].values))
    out.attrs["trajectory"] = int(np.asarray(ds["trajectory"].values)[trajectory])
    return out


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
    # a learner that reads a history forecasts from the end of its context: score the times it predicts
    held = test.sel(time=paths["time"].values)
    out = xr.Dataset({"calibration_learned": calibration_curve(paths, held)})
    system = true_system(test)
    starts_observed = bool(np.isfinite(test["state"].isel(time=0).values).all())
    if system is not None and system.kind == "sde" and starts_observed:
        oracle = oracle_samples(test, system, n_samples, seed + 1).sel(time=held["time"].values)
        out["calibration_oracle"] = calibration_curve(oracle, held)
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
