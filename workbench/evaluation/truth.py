"""The truth behind a dataset: the catalog system it came from, its parameters, drift and SDE paths.

Evaluation scores a model against these; the long-run climate (:mod:`.climate`), the fields on grids
(:mod:`.fields`) and :func:`~workbench.evaluation.evaluate.evaluate` all read them from here.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import xarray as xr

import systems as catalog

from ..data.schema import json_attr
from ..errors import DatasetError, WorkbenchError
from ..simulate import simulate


def true_system(ds: xr.Dataset) -> Optional[catalog.System]:
    """The catalog system a dataset was generated from, if it is known here.

    Raises:
        DatasetError: the ``system`` attribute names a catalog system whose state variables are not
            the dataset's (its drift, energy and facts would be scored against the wrong states).
    """
    name = ds.attrs.get("system")
    try:
        system = catalog.get(name).with_options(**(json_attr(ds, "options", {}) or {})) if name else None
    except WorkbenchError:
        return None
    if system is None:
        return None
    variables = [str(v) for v in ds["variable"].values]
    # partially observed data (hidden_state beside state: a subset or read-out of the system's
    # variables) keeps its system, for its Lyapunov time; nothing is scored against its drift
    observed_subset = "hidden_state" in ds
    if variables != list(system.state_names) and not observed_subset:
        raise DatasetError(f"the dataset's 'system' attribute names {name!r}, whose variables are "
                           f"{list(system.state_names)}, but the dataset's variables are {variables}",
                           fix="correct the 'system' attribute (or delete it to score without the system's "
                               "facts: ds.attrs.pop('system'))")
    return system


def parameters_per_trajectory(ds: xr.Dataset, system: catalog.System) -> dict[str, np.ndarray]:
    """Each trajectory's parameter values: per-trajectory coords, else the file's, else defaults."""
    fixed = {**system.defaults, **(json_attr(ds, "params", {}) or {})}
    n = ds.sizes["trajectory"]
    return {k: ds[f"param_{k}"].values if f"param_{k}" in ds.coords else np.full(n, float(fixed[k]))
            for k in system.params}


def true_drift(ds: xr.Dataset, system: catalog.System, traj: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The true drift at states ``x`` belonging to trajectories ``traj`` (positions in ``ds``)."""
    p = {k: torch.as_tensor(v[traj], dtype=torch.float64) for k, v in parameters_per_trajectory(ds, system).items()}
    with torch.no_grad():
        return system.drift(torch.zeros(len(x), dtype=torch.float64), torch.as_tensor(x), p).numpy()


def oracle_samples(test: xr.Dataset, system: catalog.System, k: int, seed: int) -> xr.Dataset:
    """``k`` paths of the true SDE from each test initial state, shaped like a prediction."""
    n = test.sizes["trajectory"]
    params = {name: np.tile(v, k) for name, v in parameters_per_trajectory(test, system).items()}
    x0 = np.tile(test["state"].isel(time=0).values, (k, 1))
    sims = simulate(system, n=n * k, times=test["time"].values, x0=x0, params=params, seed=seed + 1, split=None)
    state = sims["state"].values.reshape(k, n, *sims["state"].shape[1:])
    return xr.Dataset({"state": (("sample", "trajectory", "time", "variable"), state)},
                      coords={"time": test["time"], "variable": test["variable"], "trajectory": test["trajectory"]})
