"""Hostile run folders, model files, mismatched datasets and benchmark targets (issue 22).

Each case crafts its input in a temporary folder, runs the call in a forked child under memory and
CPU limits (``hostile_harness.run_isolated``) and asserts the WorkbenchError class, a message
pattern and the time taken.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import workbench as wb
from hostile_harness import assert_refused, run_isolated

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL, DEMO_DATA = ROOT / "data" / "demo-lorenz63-node", ROOT / "data" / "demo-lorenz63.h5"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """The demo model saved by this version (a run folder with CURRENT and one generation)."""
    folder = tmp_path_factory.mktemp("runs") / "demo"
    wb.load_model(DEMO_MODEL).save(folder)
    return folder


def _copy(saved: Path, target: Path) -> Path:
    shutil.copytree(saved, target)
    return target


def _generation(folder: Path) -> Path:
    return folder / (folder / "CURRENT").read_text().strip()


def _weights_folder(folder: Path) -> None:
    weights = _generation(folder) / "model.safetensors"
    weights.unlink()
    weights.mkdir()


def _huge_pointer(folder: Path) -> None:
    # matches gen-\d+ all the way: opening it used to fail with ENAMETOOLONG
    (folder / "CURRENT").write_bytes(b"gen-" + b"0" * (50 * 2**20))


def _missing_generation(folder: Path) -> None:
    (folder / "CURRENT").write_text("gen-999999")


@pytest.mark.parametrize("craft, pattern", [
    (_weights_folder, r"cannot read model\.safetensors in gen-\d+ \(Is a directory\)"),
    (_huge_pointer, r"CURRENT does not name a generation \(found more than 64 bytes\)"),
    (_missing_generation, r"names the generation gen-999999, which does not exist.*gen-000001"),
], ids=["weights-are-a-folder", "50MB-pointer", "pointer-to-missing-generation"])
def test_broken_run_folder_is_a_dataset_error(saved_model: Path, tmp_path: Path,
                                              craft: Callable[[Path], None], pattern: str) -> None:
    folder = _copy(saved_model, tmp_path / "run")
    craft(folder)
    outcome = run_isolated(wb.load_model, folder)
    assert_refused(outcome, "DatasetError", pattern)
    assert "kept changing" not in outcome.message


def _downgrade_to_v1(folder: Path, mean_shift: float) -> None:
    """What an attacker does: format_version 1 (weights-only checksum) and a shifted scaler."""
    config_path = _generation(folder) / "config.json"
    config = json.loads(config_path.read_text())
    config["scaler"]["mean"] = [m + mean_shift for m in config["scaler"]["mean"]]
    config["format_version"] = 1
    config.pop("sha256")
    config["weights_sha256"] = hashlib.sha256((_generation(folder) / "model.safetensors").read_bytes()).hexdigest()
    config_path.write_text(json.dumps(config))


def test_a_version_1_config_with_a_tampered_scaler_is_refused(saved_model: Path, tmp_path: Path) -> None:
    folder = _copy(saved_model, tmp_path / "run")
    _downgrade_to_v1(folder, mean_shift=6.0)
    outcome = run_isolated(wb.load_model, folder)
    assert_refused(outcome, "DatasetError", r"format_version 1, whose checksum covers only the weights.*save it again")


def test_evaluate_on_data_labelled_as_another_system(tmp_path: Path) -> None:
    def act() -> Any:
        ds = wb.load(DEMO_DATA)
        ds.attrs["system"] = "van_der_pol"   # 2 variables; the data has lorenz63's x, y, z
        return wb.evaluate(wb.load_model(DEMO_MODEL), ds, attractor=False)

    assert_refused(run_isolated(act), "DatasetError",
                  r"names 'van_der_pol', whose variables are \['x', 'y'\], but the dataset's variables are "
                  r"\['x', 'y', 'z'\]")


@pytest.mark.parametrize("q, p", [(["x", "y"], ["z"]), (["x"], ["y"])], ids=["unequal", "z-left-out"])
def test_hnn_with_an_impossible_canonical_split(q: list[str], p: list[str]) -> None:
    def act() -> Any:
        ds = wb.simulate("lorenz63", n=4, t_end=0.5, dt=0.05, seed=0)
        return wb.fit(ds, "hnn", q=q, p=p, epochs=1)

    assert_refused(run_isolated(act), "BadParameterError",
                  r"q and p of equal length that together name each of the 3 variables once")


def test_fit_refuses_values_whose_standardisation_overflows() -> None:
    def act() -> Any:
        ds = wb.simulate("van_der_pol", n=6, t_end=1.0, dt=0.05, seed=0)
        ds["state"] = ds["state"] * 1e300
        return wb.fit(ds, "node", epochs=1)

    assert_refused(run_isolated(act), "DatasetError", r"state values overflow their standardisation.*rescale")


def test_large_but_representable_values_fit_save_and_load_to_the_same_predictions(tmp_path: Path) -> None:
    ds = wb.simulate("van_der_pol", n=6, t_end=1.0, dt=0.05, seed=0)
    ds["state"] = ds["state"] * 1e150
    model = wb.fit(ds, "node", epochs=1)
    model.save(tmp_path / "run")
    loaded = wb.load_model(tmp_path / "run")
    x0 = ds["state"].values[:2, 0]
    before, after = model.predict(x0, [0.0, 0.1]).state.values, loaded.predict(x0, [0.0, 0.1]).state.values
    assert np.isfinite(before).all() and np.abs(before).max() > 1e149
    np.testing.assert_array_equal(before, after)


def test_benchmark_into_an_existing_file(tmp_path: Path) -> None:
    from workbench.benchmark import grid_from_names, run_grid

    target = tmp_path / "results"
    target.write_text("not a folder")
    grid = grid_from_names(["van_der_pol"], ["resnet"], [0], 1.0, n=4)
    outcome = run_isolated(run_grid, grid, target)
    assert_refused(outcome, "StorageError", r"results.*exists and is not a folder.*choose")
    assert target.read_text() == "not a folder"
