"""The embedded default shown by the app: small demo datasets and models shipped in ``data/``.

``workbench demo`` rebuilds them (a few CPU-minutes); the app only reads them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import xarray as xr

from .data.schema import SPLITS
from .data.io import save
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
    from .data.io import load
    from .evaluation.evaluate import evaluate
    from .model import load_model
    from .evaluation.views import save_scores

    ds, model = load(data_path), load_model(model_path, device="cpu")
    return save_scores(evaluate(model, ds, n_samples=n_samples), model, ds, scores_path(data_path), n_samples)
