"""Hidden variables beside their best linear read-out from a latent model's state.

On partially observed simulated data (``hidden_state``) a model that encodes histories into a latent
state (``latent_ode``, ``ncde``, ``latent_sde``) can be asked how much of the unobserved variables
that state holds: a linear read-out (least squares with an intercept) is fitted on the latent states
at up to ``READOUT_ORIGINS`` history ends per training trajectory and scored on the test
trajectories' (:func:`hidden_r2`, which ``evaluate`` reports); :func:`hidden_readout` returns the
same read-out as labelled series on the test trajectories, with the same R^2.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from ..errors import DatasetError, UnsupportedError
from ..learners.latent import HistoryLearner, standardised_history

# Histories per trajectory whose end states feed the read-out
READOUT_ORIGINS = 16
READOUT_RIDGE = 1e-6
R2_NAME = "R^2 on test trajectories of a linear read-out of the latent state fitted on training trajectories"


def has_latent_state(model: Any) -> bool:
    """Whether ``model`` encodes histories into a latent state that a read-out can be fitted on."""
    return isinstance(getattr(model, "learner", None), HistoryLearner)


def readout_coefficients(latents: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Least squares with an intercept (ridge ``READOUT_RIDGE`` against a singular Gram matrix) from
    latent states (M, latent) to hidden values (M, H): coefficients (latent + 1, H), intercept last."""
    design = np.hstack([latents, np.ones((len(latents), 1))])
    gram = design.T @ design + READOUT_RIDGE * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ hidden)


def apply_readout(coefficients: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """The read-out (..., H) of latent states (..., latent); NaN rows stay NaN."""
    return latents @ coefficients[:-1] + coefficients[-1]


def r2_score(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1 - SSE / SST per column of (M, H) arrays; NaN for a constant truth (nothing to explain)."""
    residual = ((prediction - truth) ** 2).sum(0)
    total = ((truth - truth.mean(0)) ** 2).sum(0)
    return 1.0 - residual / np.where(total > 0, total, np.nan)


def _encoded_at(model: Any, ds: xr.Dataset, ends: Sequence[int]) -> np.ndarray:
    """The latent state (trajectory, end, latent) from the history of the ``context + 1`` samples
    ending at each index of ``ends``; NaN where that history holds fewer than two observed samples."""
    learner = model.learner
    c = int(learner.options["context"])
    z, t, mask = standardised_history(model, ds)
    out = None
    learner.eval()
    with torch.no_grad():
        # one end at a time: the encoders take one time axis per batch, and histories ending at
        # different samples of an irregular series have different relative times
        for k, end in enumerate(ends):
            window = slice(end - c, end + 1)
            keep = mask[:, window].sum(1) >= 2
            if bool(keep.any()):
                zz, mm = z[keep, window], mask[keep, window]
                state = learner.encode_end(zz, t[window].expand(zz.shape[0], -1), mm).double().cpu().numpy()
                if out is None:
                    out = np.full((z.shape[0], len(ends), state.shape[-1]), np.nan)
                out[keep.cpu().numpy(), k] = state
    return np.full((z.shape[0], len(ends), int(learner.options["latent"])), np.nan) if out is None else out


def latent_trajectories(model: Any, ds: xr.Dataset) -> xr.DataArray:
    """The latent state at every time of ``ds`` from the model's ``context`` on, each from the history
    of the ``context + 1`` samples ending there (the state the read-out reads): (trajectory, time,
    latent), NaN where that history holds fewer than two observed samples."""
    c = int(model.learner.options["context"])
    out = _encoded_at(model, ds, range(c, ds.sizes["time"]))
    return xr.DataArray(out, dims=("trajectory", "time", "latent"),
                        coords={"trajectory": ds["trajectory"].values, "time": ds["time"].values[c:]})


def latent_states(model: Any, ds: xr.Dataset, origins: int = READOUT_ORIGINS) -> tuple[np.ndarray, np.ndarray]:
    """Latent states at the ends of up to ``origins`` evenly spaced histories per trajectory and the
    dataset's ``hidden_state`` there: arrays (M, latent) and (M, H), histories with fewer than two
    observed samples left out."""
    c, length = int(model.learner.options["context"]), ds.sizes["time"]
    ends = np.unique(np.linspace(c, length - 1, min(origins, length - c)).astype(int))
    states = _encoded_at(model, ds, ends)
    hidden = ds["hidden_state"].values[:, ends]
    kept = np.isfinite(states).all(-1)
    if not kept.any():
        raise DatasetError("no history of the data holds two observed samples to read a latent state from",
                           fix="give trajectories with at least two observations within the model's context")
    return states[kept], hidden[kept]


def hidden_r2(model: Any, train: xr.Dataset, test: xr.Dataset) -> xr.DataArray:
    """How much of each hidden variable a linear read-out of the latent state explains.

    Arguments:
        model: a fitted model whose learner encodes histories (:func:`has_latent_state`).
        train, test: trajectories with ``hidden_state``; the read-out is fitted on ``train``'s
            latent states (:func:`latent_states`) and scored on ``test``'s.

    Returns:
        R^2 over ``hidden_variable`` (NaN for a hidden variable that is constant on ``test``).
    """
    return _fitted_readout(model, train, test)[1]


def _fitted_readout(model: Any, train: xr.Dataset, test: xr.Dataset) -> tuple[np.ndarray, xr.DataArray]:
    """The read-out's coefficients fitted on ``train`` and its R^2 on ``test`` (:func:`hidden_r2`)."""
    coefficients = readout_coefficients(*latent_states(model, train))
    states, truth = latent_states(model, test)
    r2 = xr.DataArray(r2_score(apply_readout(coefficients, states), truth), dims=("hidden_variable",),
                      coords={"hidden_variable": test["hidden_variable"].values}, attrs={"long_name": R2_NAME})
    return coefficients, r2


def hidden_readout(model: Any, train: xr.Dataset, test: xr.Dataset) -> xr.Dataset:
    """The hidden variables of ``test`` beside their linear read-out from the model's latent state.

    The read-out is fitted and scored as in :func:`hidden_r2` (same histories, same least squares),
    so ``r2`` equals the ``hidden_r2`` that ``evaluate`` reports; it is then applied at every time of
    the test trajectories from the model's context on.

    Arguments:
        model: a fitted model whose learner encodes histories (:func:`has_latent_state`).
        train: trajectories to fit the read-out on (the training split of simulated data).
        test: trajectories to show and score it on, with ``hidden_state``.

    Returns:
        A dataset over (trajectory, time, hidden_variable): ``readout`` (the linear read-out, NaN
        where a history holds fewer than two observed samples), ``hidden_state`` (the truth at the
        same times) and ``r2`` (hidden_variable); ``hidden_units`` labels the variables where the
        data names their units.

    Raises:
        UnsupportedError: the model has no latent state.
        DatasetError: the data have no hidden variables, or ``train`` no trajectory.
    """
    if not has_latent_state(model):
        raise UnsupportedError(f"{getattr(model, 'name', 'this model')} has no latent state to read the hidden "
                               "variables from", fix="fit latent_ode, ncde or latent_sde")
    if "hidden_state" not in test or "hidden_state" not in train:
        raise DatasetError("the data have no hidden variables (hidden_state)",
                           fix="simulate with observe=[...] naming the observed variables")
    if train.sizes["trajectory"] == 0:
        raise DatasetError("no training trajectory to fit the read-out on",
                           fix="split the data so that the train split holds trajectories")
    coefficients, r2 = _fitted_readout(model, train, test)
    paths = latent_trajectories(model, test)
    c = int(model.learner.options["context"])
    hidden = test["hidden_state"].isel(time=slice(c, None))
    out = xr.Dataset(
        {"readout": (("trajectory", "time", "hidden_variable"), apply_readout(coefficients, paths.values),
                     {"long_name": "linear read-out of the latent state, fitted on training trajectories"}),
         "hidden_state": hidden,
         "r2": r2},
        coords={"trajectory": test["trajectory"].values, "time": hidden["time"].values,
                "hidden_variable": test["hidden_variable"].values})
    if "hidden_units" in test.coords:
        out = out.assign_coords(hidden_units=("hidden_variable", test["hidden_units"].values))
    return out
