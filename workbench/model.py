"""A fitted surrogate: predictions as labelled datasets, vector fields, and safe save/load.

A run folder holds ``model.safetensors`` (weights), ``config.json`` (learner, options,
standardisation, data description, weights checksum) and ``history.json``. Nothing is pickled.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import xarray as xr
from safetensors.torch import load_file

from .dataset import PathLike, atomic_write_bytes, make_dataset
from .devices import DeviceLike, resolve_device
from .errors import BadParameterError, DatasetError
from .learners import Learner, get_learner
from .windows import Standardiser

FORMAT = "workbench-model"
FORMAT_VERSION = 1


class Model:
    """A learner fitted to data, with everything needed to use it in the data's physical units.

    Attributes:
        learner: the torch module (standardised coordinates).
        scaler: the standardisation fitted on the training split.
        meta: JSON-friendly description (learner name/options, variables, units, system, dt...).
        history: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``elapsed``...).
    """

    def __init__(self, learner: Learner, scaler: Standardiser, meta: dict[str, Any],
                 history: Optional[list[dict[str, Any]]] = None):
        self.learner, self.scaler, self.meta = learner, scaler, meta
        self.history = history or []

    # --- description -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.meta["learner"]

    @property
    def variables(self) -> list[str]:
        return list(self.meta["variables"])

    @property
    def stochastic(self) -> bool:
        return self.learner.supports.stochastic

    @property
    def device(self) -> torch.device:
        return self.learner.scale.device

    def to(self, device: DeviceLike) -> "Model":
        self.learner.to(resolve_device(device))
        return self

    def __repr__(self) -> str:
        best = min((h["val_loss"] for h in self.history if h.get("val_loss") is not None), default=float("nan"))
        return (f"Model({self.name!r}, system={self.meta.get('system')!r}, variables={self.variables}, "
                f"epochs={len(self.history) - 1 if self.history else 0}, best_val_loss={best:.3g})")

    # --- numerics in physical units ----------------------------------------------------------
    def _to_z(self, x: np.ndarray) -> torch.Tensor:
        p = next(self.learner.parameters())
        return torch.as_tensor(self.scaler.to_z(x), dtype=p.dtype, device=p.device)

    def _from_z(self, z: torch.Tensor) -> np.ndarray:
        return z.detach().cpu().double().numpy() * self.scaler.std + self.scaler.mean

    def vector_field(self, x: np.ndarray) -> np.ndarray:
        """The learned drift dx/dt at states ``x`` (N, D), in physical units (the ensemble's mean)."""
        x = self._check_states(x)
        with torch.no_grad():
            dz = self.learner.drift(self._to_z(x))
        return dz.detach().cpu().double().numpy() * self.scaler.std

    def member_vector_fields(self, x: np.ndarray) -> np.ndarray:
        """Each ensemble member's drift, shape (K, N, D); a deterministic model gives K = 1."""
        x = self._check_states(x)
        with torch.no_grad():
            z = self._to_z(x)
            dz = self.learner.member_drifts(z) if hasattr(self.learner, "member_drifts") else self.learner.drift(z)[None]
        return dz.detach().cpu().double().numpy() * self.scaler.std

    def diffusion(self, x: np.ndarray) -> np.ndarray:
        """The learned diagonal diffusion g(x) (N, D) in physical units (stochastic learners only)."""
        if not hasattr(self.learner, "diffusion"):
            raise BadParameterError(f"learner {self.name!r} has no diffusion; only 'nsde' learns one")
        x = self._check_states(x)
        with torch.no_grad():
            g = self.learner.diffusion(self._to_z(x))
        return g.detach().cpu().double().numpy() * self.scaler.std

    def _check_states(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != len(self.variables):
            raise BadParameterError(f"states must have shape (N, {len(self.variables)}) for variables "
                                    f"{self.variables}, got {x.shape}")
        if not np.isfinite(x).all():
            raise BadParameterError("states must be finite")
        return x

    def predict(self, x0: Union[np.ndarray, Sequence[float], xr.Dataset], times: Optional[Sequence[float]] = None,
                n_samples: int = 1, seed: int = 0) -> xr.Dataset:
        """Roll the surrogate out from initial states.

        Arguments:
            x0: initial states (N, D) or (D,), or a dataset in the schema (its states at the first
                time are used, and its trajectory ids, split and time axis are kept).
            times: increasing output times starting at the initial time (default: the dataset's).
            n_samples: sample paths per initial state for stochastic learners (an ensemble
                returns one path per member; deterministic learners one path).
            seed: seeds the noise of stochastic rollouts.

        Returns:
            Dataset in the workbench schema with dims (sample, trajectory, time, variable).
        """
        coords: dict[str, Any] = {}
        if isinstance(x0, xr.Dataset):
            ds = x0
            if [str(v) for v in ds["variable"].values] != self.variables:
                raise DatasetError(f"dataset variables {list(ds['variable'].values)} differ from the model's {self.variables}")
            if "mask" in ds and not ds["mask"].values[:, 0].all():
                raise DatasetError("some trajectories have no observation at the first time; cannot start a rollout")
            times = ds["time"].values if times is None else times
            coords["trajectory"] = ds["trajectory"].values
            if "split" in ds.coords:
                coords["split"] = list(ds["split"].values)
            x0 = ds["state"].isel(time=0).values
        if times is None:
            raise BadParameterError("predict needs times (or a dataset to take them from)")
        x0 = self._check_states(x0)
        t = np.array(times, dtype=np.float64)
        if t.ndim != 1 or t.size < 1 or (np.diff(t) <= 0).any():
            raise BadParameterError("times must be a 1-D strictly increasing sequence")
        if int(n_samples) < 1:
            raise BadParameterError(f"n_samples must be >= 1, got {n_samples}")
        samples = int(n_samples) if self.stochastic and self.name != "ensemble" else 1
        generator = torch.Generator().manual_seed(int(seed))
        self.learner.eval()
        with torch.no_grad():
            z0 = self._to_z(x0)
            tt = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
            z = self.learner.rollout(z0, tt, samples, generator=generator)
        state = self._from_z(z)
        attrs = {"title": f"{self.name} predictions", "system": self.meta.get("system"),
                 "kind": self.meta.get("kind"), "generator": "workbench.Model.predict", "learner": self.name,
                 "learner_options": self.meta.get("options", {}), "seed": int(seed)}
        return make_dataset(state, t, self.variables, units=self.meta.get("units"),
                            time_units=self.meta.get("time_units", "1"), trajectory=coords.get("trajectory"),
                            split=coords.get("split"), attrs=attrs)

    # --- files -------------------------------------------------------------------------------
    def save(self, path: PathLike) -> Path:
        """Write the run folder (weights, config, history); each file is written atomically."""
        return write_run(path, self.learner.state_dict(), self.scaler, self.meta, self.history)


def write_run(path: PathLike, weights_state: dict[str, torch.Tensor], scaler: Standardiser,
              meta: dict[str, Any], history: list[dict[str, Any]]) -> Path:
    """Write a run folder from a learner's state dict (the fit loop saves its best weights this way)."""
    folder = Path(path)
    weights = _weights_bytes(weights_state)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
              "scaler": {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()},
              "weights_sha256": hashlib.sha256(weights).hexdigest()}
    atomic_write_bytes(folder / "model.safetensors", weights)
    atomic_write_bytes(folder / "history.json", json.dumps(history, indent=1).encode())
    atomic_write_bytes(folder / "config.json", json.dumps(config, indent=1).encode())
    return folder


def _weights_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state.items()})


def read_config(folder: Path) -> dict[str, Any]:
    """The run folder's config, checked to be ours."""
    path = folder / "config.json"
    if not path.is_file():
        raise DatasetError(f"{folder} is not a model folder (no config.json); save models with model.save(path)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DatasetError(f"{path} does not describe a workbench model")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise DatasetError(f"{path} was written by a newer workbench (format {config['format_version']}); upgrade")
    return config


def load_model(path: PathLike, device: DeviceLike = None) -> Model:
    """Load a run folder written by :meth:`Model.save` (safetensors + JSON; nothing is unpickled)."""
    folder = Path(path)
    config = read_config(folder)
    weights_path = folder / "model.safetensors"
    if not weights_path.is_file():
        raise DatasetError(f"{folder} has no model.safetensors")
    raw = weights_path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != config.get("weights_sha256"):
        raise DatasetError(f"{weights_path} does not match its config.json (checksum differs); the folder was "
                           "modified or partially copied")
    try:
        cls = get_learner(config["learner"])
        learner = cls(len(config["variables"]), **config["options"])
        scaler = Standardiser(mean=np.asarray(config["scaler"]["mean"], dtype=float),
                              std=np.asarray(config["scaler"]["std"], dtype=float))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{folder / 'config.json'} is incomplete or malformed ({type(exc).__name__}: {exc}); "
                           "save models with model.save(path)") from None
    try:
        state = load_file(str(weights_path))
        learner.load_state_dict(state)
    except Exception as exc:  # safetensors raises its own types for malformed headers
        raise DatasetError(f"{weights_path} could not be loaded into a {config['learner']} learner ({exc})") from None
    dtype = next(iter(state.values())).dtype if state else torch.float32
    learner.to(device=resolve_device(device), dtype=dtype)
    history_path = folder / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    meta = {k: v for k, v in config.items() if k not in ("format", "format_version", "scaler", "weights_sha256")}
    return Model(learner, scaler, meta, history)


__all__ = ["Model", "load_model"]
