"""Session registry of datasets and models, and cached calls into the workbench API."""
from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import streamlit as st
import xarray as xr

import workbench as wb
from workbench.demo import DEMOS, demo_paths
from workbench.evaluate import evaluate

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MODEL_FILES = {"config.json", "model.safetensors", "history.json"}


@st.cache_data(show_spinner=False)
def load_file(path: str, mtime: float) -> xr.Dataset:
    return wb.load(path)


@st.cache_resource(show_spinner=False)
def load_model_folder(path: str, mtime: float) -> wb.Model:
    return wb.load_model(path, device="cpu")


@st.cache_data(show_spinner="Integrating...", max_entries=32)
def simulate_cached(system: str, options_json: str) -> xr.Dataset:
    return wb.simulate(system, **json.loads(options_json), progress=False)


def datasets() -> dict[str, xr.Dataset]:
    """Demo datasets first, then those generated or uploaded in this session."""
    out = {}
    for kind, spec in DEMOS.items():
        path, _ = demo_paths(kind)
        if path.is_file():
            out[f"demo: {spec['system']}"] = load_file(str(path), path.stat().st_mtime)
    out.update(st.session_state.setdefault("datasets", {}))
    return out


def models() -> dict[str, wb.Model]:
    """Demo models first, then those trained or uploaded in this session."""
    out = {}
    for kind, spec in DEMOS.items():
        _, folder = demo_paths(kind)
        if (folder / "config.json").is_file():
            out[f"demo: {spec['fit']['learner']} on {spec['system']}"] = load_model_folder(
                str(folder), (folder / "model.safetensors").stat().st_mtime)
    out.update(st.session_state.setdefault("models", {}))
    return out


def add_dataset(label: str, ds: xr.Dataset) -> None:
    st.session_state.setdefault("datasets", {})[label] = ds


def add_model(label: str, model: wb.Model) -> None:
    st.session_state.setdefault("models", {})[label] = model


def matching_dataset(model: wb.Model, options: dict[str, xr.Dataset]) -> Optional[str]:
    """The first dataset label whose system and variables match the model's."""
    for label, ds in options.items():
        if ds.attrs.get("system") == model.meta.get("system") and \
                [str(v) for v in ds["variable"].values] == model.variables:
            return label
    return None


@st.cache_data(show_spinner="Scoring...", max_entries=16)
def evaluate_cached(model_label: str, data_label: str, _model: wb.Model, _ds: xr.Dataset,
                    n_samples: int, history_len: int) -> xr.Dataset:
    # models and datasets are keyed by their labels (and training length) rather than hashed
    return evaluate(_model, _ds, n_samples=n_samples)


def guarded(action: Callable[[], Any]) -> Any:
    """Run ``action``; show a user error in the page instead of a traceback."""
    try:
        return action()
    except wb.WorkbenchError as exc:
        st.error(f"{type(exc).__name__}: {exc}", icon=":material/error:")
        return None


def dataset_bytes(ds: xr.Dataset) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = wb.save(ds, Path(tmp) / "data.h5")
        return path.read_bytes()


def model_zip(model: wb.Model) -> bytes:
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "model")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(MODEL_FILES):
                archive.write(folder / name, name)
    return buffer.getvalue()


def model_from_zip(data: bytes) -> wb.Model:
    """Load a model zip (safetensors + JSON only); anything else in the archive is refused."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise wb.WorkbenchError(f"the archive is larger than {MAX_UPLOAD_BYTES >> 20} MB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise wb.WorkbenchError("not a zip archive; upload the zip downloaded from the Train page") from None
    names = set(archive.namelist())
    if not names <= MODEL_FILES or not {"config.json", "model.safetensors"} <= names:
        raise wb.WorkbenchError(f"a model zip holds exactly {sorted(MODEL_FILES)}; found {sorted(names)}")
    if sum(info.file_size for info in archive.infolist()) > 4 * MAX_UPLOAD_BYTES:
        raise wb.WorkbenchError("the archive expands to more than allowed")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:  # names were checked against a fixed list: no paths can escape tmp
            (Path(tmp) / name).write_bytes(archive.read(name))
        return wb.load_model(tmp, device="cpu")


def uploaded_dataset(name: str, data: bytes) -> xr.Dataset:
    """Validate an uploaded HDF5 or long-format CSV with the same loaders as the Python API."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise wb.WorkbenchError(f"the file is larger than {MAX_UPLOAD_BYTES >> 20} MB")
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        if suffix == ".csv":
            return wb.from_csv(path)
        return wb.load(path)
