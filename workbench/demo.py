"""The embedded default shown by the app: small demo datasets and models shipped in ``data/``.

``workbench demo`` rebuilds them; the app only reads them.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import xarray as xr

from .data.schema import SPLITS, content_key, digest_array, digest_json
from .data.io import load, read_netcdf, save, write_netcdf
from .evaluation.evaluate import evaluate
from .evaluation.fields import calibration_report
from .model import load_model
from .simulate import simulate
from .training.fitting import fit

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """The folder of shipped files ``"app"`` or ``"data"``.

    A wheel carries them inside the package (``workbench/_app``, ``workbench/_data``; see ``setup.py``);
    a source checkout or an editable install keeps them at the repository's top level.
    """
    installed = _PACKAGE / f"_{name}"
    return installed if installed.is_dir() else _PACKAGE.parent / name


DATA_DIR = shipped("data")

DEMOS = {
    "ode": {"system": "lorenz63", "data": "demo-lorenz63.h5", "model": "demo-lorenz63-node",
            # the shipped demo's 36/4/8 split, stated (the default split rounds 0.8/0.1/0.1 since)
            "simulate": {"n": 48, "t_end": 10.0, "dt": 0.02, "seed": 0, "split": (0.75, 1 / 12, 1 / 6)},
            "fit": {"learner": "node", "time_budget": 240, "hidden": 128, "depth": 2, "window": 16,
                    "batch_size": 128, "seed": 0}},
    # An oracle-relative CRPS from the 6 test paths of 64 was 0.85 +- 0.11 (the learned SDE looked better
    # than the true one): 192 more test paths from another seed make its standard error a few percent.
    "sde": {"system": "double_well", "data": "demo-double-well.h5", "model": "demo-double-well-nsde",
            "simulate": {"n": 64, "t_end": 10.0, "dt": 0.05, "seed": 0, "split": (0.8, 0.1, 0.1)},
            "held_out": {"n": 192, "seed": 1},
            "fit": {"learner": "nsde", "time_budget": 90, "window": 16, "batch_size": 128, "seed": 0}},
}


def demo_paths(kind: str, folder: Optional[Path] = None) -> tuple[Path, Path]:
    """(dataset file, model folder) of the ``"ode"`` or ``"sde"`` demo."""
    folder = folder or DATA_DIR
    spec = DEMOS[kind]
    return folder / spec["data"], folder / spec["model"]


def build_demo(folder: Optional[Path] = None, progress: Optional[bool] = None,
               kinds: Optional[list[str]] = None) -> list[Path]:
    """Generate the demo datasets and fit their models; returns the paths written.

    Arguments:
        folder: where to write (default: the shipped data folder).
        progress: progress bars (default: on a terminal).
        kinds: which demos (``"ode"``, ``"sde"``; default: all).
    """
    written = []
    for kind, spec in DEMOS.items():
        if kinds is not None and kind not in kinds:
            continue
        data_path, model_path = demo_paths(kind, folder)
        ds = demo_dataset(spec, progress)
        save(ds, data_path)
        options = dict(spec["fit"])
        learner = options.pop("learner")
        model = fit(ds, learner, progress=progress, **options)
        shutil.rmtree(model_path, ignore_errors=True)  # one clean generation, no training checkpoint
        model.save(model_path)
        written += [data_path, model_path, ship_scores(data_path, model_path)]
    return written


def demo_dataset(spec: dict[str, Any], progress: Optional[bool] = None) -> xr.Dataset:
    """A demo's dataset: its simulated paths split train/val/test, then ``held_out`` extra test paths.

    The extra paths come from their own seed, so the training paths stay those of the first part.
    """
    ds = simulate(spec["system"], **spec["simulate"], progress=progress)
    if "held_out" not in spec:
        return ds
    more = simulate(spec["system"], **{**spec["simulate"], **spec["held_out"], "split": (0.0, 0.0, 1.0)},
                    progress=progress)
    more = more.assign_coords(trajectory=more["trajectory"] + ds.sizes["trajectory"])
    ds = xr.concat([ds, more], "trajectory", combine_attrs="override")
    labels = ds["split"].values
    ds.attrs["split"] = json.dumps({name: float(np.mean(labels == name)) for name in SPLITS})
    ds.attrs["held_out_seed"] = int(spec["held_out"]["seed"])
    return ds


def scores_path(data_path: Path) -> Path:
    """Where a demo's precomputed evaluation lives; the app reuses it only when the content keys match."""
    return data_path.with_name(f"{data_path.stem}-scores.h5")


def ship_scores(data_path: Path, model_path: Path, n_samples: int = 32) -> Path:
    """Evaluate the saved demo model on its saved dataset (as the app loads them) and store the scores."""
    ds, model = load(data_path), load_model(model_path, device="cpu")
    return save_scores(evaluate(model, ds, n_samples=n_samples), model, ds, scores_path(data_path), n_samples)


# --- the shipped scores, reused only for exactly the model and data they belong to ---------------------

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
        digest_array(digest, name, tensor.detach().cpu().numpy())
    digest_array(digest, "scaler.mean", model.scaler.mean)
    digest_array(digest, "scaler.std", model.scaler.std)
    digest_json(digest, model.meta)
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
    scores = read_netcdf(path)
    stored = (scores.attrs.get("model_key"), scores.attrs.get("data_key"), str(scores.attrs.get("n_samples")))
    if stored != (model_key(model), content_key(ds), str(int(n_samples))):
        return None
    scores.attrs = {k: v for k, v in scores.attrs.items() if k not in ("model_key", "data_key", "n_samples")}
    return scores
