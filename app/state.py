"""Session registry of datasets and models, and cached calls into the workbench API.

Every cache is keyed by content: a dataset by :func:`workbench.data.schema.content_key` (its state, time,
coordinates and attrs), a model by :func:`workbench.demo.model_key` (weights, scaling, description).
Labels are only names for the user: a regenerated or re-uploaded dataset under an old label, or a
retrained model, never reuses the old entry, and the same content is never computed twice.
"""
from __future__ import annotations

import inspect
import io
import json
import os
import tempfile
import threading
import traceback
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import streamlit as st
import xarray as xr

import workbench as wb
from workbench.demo import DEMOS, demo_paths, model_key, scores_path, shipped_scores
from workbench.errors import BadParameterError, DatasetError, ResourceLimitError, UnknownNameError
from workbench.evaluation import (calibration_report, equation_comparison, evaluate, field_on_grid, forecast_horizons,
                                  hidden_readout, holdout_forecast, long_run, oracle_samples, parameters_per_trajectory,
                                  true_system)
from workbench.data import content_key, load_real, real_dataset_path, real_datasets
from workbench.training import current_generation

# Page scripts hold Python's GIL in many short stretches (numerics, Plotly figures, serialisation); twenty
# of them at once starved the server's event loop, so its health check took up to 5 s and every socket
# stalled. At most this many scripts run at a time (one per core, up to 4); the others wait their turn
# while the event loop keeps answering. Training runs in its own thread and is not counted.
SCRIPT_SLOTS = threading.BoundedSemaphore(min(4, os.cpu_count() or 1))
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MODEL_FILES = {"config.json", "model.safetensors", "history.json"}
# content hashes instead of Streamlit's default hashing (which would pickle whole objects)
BY_CONTENT = {xr.Dataset: content_key, wb.Model: model_key}


@st.cache_resource(show_spinner=False, max_entries=16)
def load_file(path: str, mtime: float) -> xr.Dataset:
    return wb.load(path)


@st.cache_resource(show_spinner=False, max_entries=16)
def load_model_folder(path: str, mtime: float) -> wb.Model:
    return wb.load_model(path, device="cpu")


@st.cache_data(show_spinner=False, max_entries=32)
def simulate_cached(system: str, options_json: str) -> xr.Dataset:
    return wb.simulate(system, **json.loads(options_json), progress=False)


def shipped_demo_scores(model: wb.Model, ds: xr.Dataset, n_samples: int) -> Optional[xr.Dataset]:
    """The scores shipped with a demo (``workbench demo`` writes them) if they belong to exactly this
    model, dataset and ``n_samples`` (content keys compared), else None."""
    for kind in DEMOS:
        shipped = shipped_scores(scores_path(demo_paths(kind)[0]), model, ds, n_samples)
        if shipped is not None:
            return shipped
    return None


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def evaluate_cached(model: wb.Model, ds: xr.Dataset, n_samples: int = 32) -> xr.Dataset:
    """:func:`workbench.evaluation.evaluate` on the test split, cached by the model's and the dataset's content;
    the scores shipped with the demo (written by `workbench demo`) are used when they belong to exactly
    this model and dataset."""
    shipped = shipped_demo_scores(model, ds, n_samples)
    if shipped is not None:
        return shipped
    # the long-run climate scores (seconds to a minute) are the Compare page's on-demand panel instead
    return evaluate(model, ds, n_samples=n_samples, attractor=False)


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def equations_cached(model: wb.Model, ds: xr.Dataset) -> Optional[xr.Dataset]:
    """:func:`workbench.evaluation.equation_comparison` against the dataset's true system at its first
    trajectory's parameters (None when the data comes from no known system)."""
    system = true_system(ds)
    if system is None:
        return None
    params = {k: float(v[0]) for k, v in parameters_per_trajectory(ds, system).items()}
    return equation_comparison(model, system, params)


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_CONTENT)
def hidden_readout_cached(model: wb.Model, ds: xr.Dataset) -> xr.Dataset:
    """:func:`workbench.evaluation.hidden_readout`: the test split's hidden variables beside their
    read-out fitted on the training split, cached by content."""
    return hidden_readout(model, wb.select_split(ds, "train"), wb.select_split(ds, "test"))


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_CONTENT)
def long_run_cached(model: wb.Model, ds: xr.Dataset) -> xr.Dataset:
    """:func:`workbench.evaluation.long_run` with its default, bounded run length, cached by content."""
    return long_run(model, ds)


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def predict_cached(model: wb.Model, ds: xr.Dataset, n_samples: int, seed: int = 0) -> xr.Dataset:
    """``model.predict`` from the initial states of ``ds``, cached by content. A path that blows up
    is +inf from its blow-up on (the charts leave a gap there) and ``diverged_at`` says when."""
    return model.predict(ds, n_samples=n_samples, seed=seed, on_divergence="mark")


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def predict_from_cached(model: wb.Model, x0: tuple[float, ...], times: tuple[float, ...]) -> xr.Dataset:
    """``model.predict`` from one initial state, cached by content."""
    return model.predict([list(x0)], list(times))


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_CONTENT)
def oracle_cached(test: xr.Dataset, n_samples: int, seed: int) -> Optional[xr.Dataset]:
    """Samples of the true SDE from the test initial states (None when the truth is not a known SDE)."""
    system = true_system(test)
    if system is None or system.kind != "sde":
        return None
    return oracle_samples(test, system, n_samples, seed)


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def calibration_cached(model: wb.Model, ds: xr.Dataset, n_samples: int) -> xr.Dataset:
    """Calibration curves on the test split; the demo ships them with its scores for ``n_samples=32``.
    Without shipped curves only the curves are computed, so the page's charts never wait for the full
    evaluation (CRPS, energy scores)."""
    scores = shipped_demo_scores(model, ds, n_samples)
    if scores is not None and "calibration_learned" in scores:
        return scores[[name for name in scores.data_vars if name.startswith("calibration_")]]
    return calibration_report(model, ds, n_samples)


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def field_cached(model: wb.Model, ds: xr.Dataset, i: int, j: int, n: int) -> xr.Dataset:
    return field_on_grid(model, ds, i, j, n)


@st.cache_resource(show_spinner=False, max_entries=8)
def load_real_series(name: str, mtime: float) -> xr.Dataset:
    """A shipped real series, split in time (train on the past, test on the latest 15%)."""
    return wb.split_time(load_real(name))


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def holdout_cached(model: wb.Model, ds: xr.Dataset, n_samples: int) -> tuple[xr.Dataset, xr.Dataset]:
    return holdout_forecast(model, ds, n_samples=n_samples)


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs=BY_CONTENT)
def rolling_cached(model: wb.Model, ds: xr.Dataset, n_samples: int = 32) -> xr.Dataset:
    """Rolling-origin scores by horizon with the baselines, cached by content."""
    return evaluate(model, ds, n_samples=n_samples, mode="rolling", horizons=forecast_horizons(ds))


def datasets() -> dict[str, xr.Dataset]:
    """Demo datasets first, the shipped real series, then those generated or uploaded in this session."""
    out = {}
    for kind, spec in DEMOS.items():
        path, _ = demo_paths(kind)
        if path.is_file():
            out[f"demo: {spec['system']}"] = load_file(str(path), path.stat().st_mtime)
    for name in real_datasets():
        path = real_dataset_path(name)
        if path.is_file():
            out[f"real: {name} (time split)"] = load_real_series(name, path.stat().st_mtime)
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
    """Keep a generated, uploaded or split dataset; it becomes what the pages select by default."""
    st.session_state.setdefault("datasets", {})[label] = ds
    st.session_state["latest_dataset"] = label


def add_model(label: str, model: wb.Model, data_label: Optional[str] = None) -> None:
    """Keep a trained or uploaded model (fitted on the dataset ``data_label``, when known); it becomes
    what the pages select by default, with that dataset beside it."""
    st.session_state.setdefault("models", {})[label] = model
    st.session_state["latest_model"] = label
    if data_label is not None:
        st.session_state.setdefault("trained_on", {})[label] = data_label


def default_index(options: list[str], *preferred: Optional[str]) -> int:
    """Position in ``options`` of the first of ``preferred`` that is there, else 0 (the first option)."""
    return next((options.index(label) for label in preferred if label in options), 0)


def model_index(options: list[str]) -> int:
    """The default of a page's model box: the model trained or uploaded last, if the page offers it."""
    return default_index(options, st.session_state.get("latest_model"))


def dataset_index(options: list[str], model_label: Optional[str] = None) -> int:
    """The default of a page's dataset box: the dataset ``model_label`` was trained on, else the dataset
    generated, uploaded or split last, if the page offers them."""
    trained_on = st.session_state.get("trained_on", {}).get(model_label)
    return default_index(options, trained_on, st.session_state.get("latest_dataset"))


def collect_training() -> None:
    """Keep the model of a training job that has finished (once), whichever page is open: a model
    trained in the background is on every page's model list at the next rerun, selected by default."""
    job = st.session_state.get("job")
    if job is None or job.running:
        return
    st.session_state.pop("job")
    if job.model is None:
        st.session_state["train_error"] = job.error
        return
    stopped = job.stop_requested.is_set()
    label = f"{job.learner} on {job.data_label}{' (stopped)' if stopped else ''} " \
            f"#{len(st.session_state.get('models', {})) + 1}"
    add_model(label, job.model, job.data_label)
    st.session_state["last_model"] = label
    st.session_state["train_notice"] = (f"Stopped after epoch {job.history[-1]['epoch']}; kept the best weights "
                                        f"as '{label}'.") if stopped and job.history else f"Trained '{label}'."


@st.fragment(run_every=2.0)
def training_status() -> None:
    """A line in the sidebar while a model trains; reruns the open page when it has finished, so the
    new model appears there without a visit to the Train page."""
    job = st.session_state.get("job")
    if job is None:
        return
    if not job.running:
        st.rerun()
    epoch = f", epoch {job.history[-1]['epoch']}" if job.history else ""
    st.caption(f"Training {job.learner} on {job.data_label}{epoch}...")


def variables_of(ds: xr.Dataset) -> list[str]:
    return [str(v) for v in ds["variable"].values]


def pick_model_and_dataset(models: dict[str, wb.Model], model_column: Any, data_column: Any
                           ) -> tuple[wb.Model, xr.Dataset]:
    """The page's model box and, beside it, the box of the loaded datasets with the model's variables;
    stops the page with a note when no dataset matches. Returns (model, dataset)."""
    model_label = model_column.selectbox("Model", list(models), index=model_index(list(models)))
    model = models[model_label]
    loaded = datasets()
    matching = matching_datasets(model, loaded)
    if not matching:
        st.warning(f"No loaded dataset has this model's variables {model.variables}; generate one on the Systems "
                   "page or upload one on the Data page.")
        st.stop()
    data_label = data_column.selectbox("Dataset (those with the model's variables)", matching,
                                       index=dataset_index(matching, model_label))
    return model, loaded[data_label]


def matching_datasets(model: wb.Model, options: dict[str, xr.Dataset]) -> list[str]:
    """Labels of the datasets the model can run on (same variables), those of its own system first."""
    fits = [label for label, ds in options.items() if variables_of(ds) == model.variables]
    return sorted(fits, key=lambda label: options[label].attrs.get("system") != model.meta.get("system"))


def error_text(exc: wb.WorkbenchError) -> str:
    """A workbench error as page text (Markdown): its class and problem, then its fix on a line of its own.

    The fix is shown as the error states it, also when it is written for Python callers (``pass
    fill_gaps=True``): it names the option a page offers under the same name, and hiding it left users
    with a problem and no way out. Errors about uploads carry the page's own advice as their fix.
    """
    problem = getattr(exc, "problem", None) or str(exc)
    fix = getattr(exc, "fix", None)
    return f"{type(exc).__name__}: {problem}" + (f"  \n**Fix:** {fix}" if fix else "")


def report(exc: BaseException) -> None:
    """Show an error in the page: a user's mistake with its problem and fix, anything else as a bug to report."""
    if isinstance(exc, wb.WorkbenchError):
        st.error(error_text(exc), icon=":material/error:")
    else:
        print("".join(traceback.format_exception(exc)), flush=True)  # the details go to the server log
        st.error(f"Unexpected error ({type(exc).__name__}: {exc}). This is a bug in the workbench; "
                 "the server log has the details.", icon=":material/bug_report:")


def guarded(action: Callable[[], Any]) -> Any:
    """Run ``action``; show any error in the page (never a traceback) and return None."""
    try:
        return action()
    except Exception as exc:  # every failure becomes a message in the page
        report(exc)
        return None


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_CONTENT)
def dataset_bytes(ds: xr.Dataset) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = wb.save(ds, Path(tmp) / "data.h5")
        return path.read_bytes()


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_CONTENT)
def model_zip(model: wb.Model) -> bytes:
    """The model's files (config, weights, history) as a zip that :func:`model_from_zip` loads.

    ``model.save`` writes a run folder of generations (``CURRENT`` names ``gen-NNNNNN/``); the zip holds
    the files of the current generation, flat.
    """
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        folder = current_generation(model.save(Path(tmp) / "model"))
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(MODEL_FILES):
                if (folder / name).is_file():
                    archive.write(folder / name, name)
    return buffer.getvalue()


MODEL_ZIP_FIX = "upload the zip that the Train page's 'Download model' button saves"


def model_from_zip(name: str, data: bytes) -> wb.Model:
    """Load a model zip (safetensors + JSON only) through :func:`workbench.load_model` and all its checks
    (checksums, option ceilings); anything else in the archive is refused.

    Arguments:
        name: the user's file name (only shown in messages).
        data: the zip's bytes.

    Returns:
        The model, on the CPU.

    Raises:
        ResourceLimitError: the zip or its contents are too large. DatasetError: anything else,
        naming the user's file, with :data:`MODEL_ZIP_FIX` as the fix.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ResourceLimitError(f"'{name}' is larger than {MAX_UPLOAD_BYTES >> 20} MB", fix=MODEL_ZIP_FIX)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DatasetError(f"'{name}' is not a zip archive", fix=MODEL_ZIP_FIX) from None
    names = set(archive.namelist())
    if not names <= MODEL_FILES or not {"config.json", "model.safetensors"} <= names:
        raise DatasetError(f"'{name}': a model zip holds exactly {sorted(MODEL_FILES)}; found {sorted(names)}",
                           fix=MODEL_ZIP_FIX)
    if sum(info.file_size for info in archive.infolist()) > 4 * MAX_UPLOAD_BYTES:
        raise ResourceLimitError(f"'{name}' expands to more than {4 * MAX_UPLOAD_BYTES >> 20} MB", fix=MODEL_ZIP_FIX)
    with tempfile.TemporaryDirectory() as tmp:
        for member in names:  # names were checked against a fixed list: no paths can escape tmp
            try:
                (Path(tmp) / member).write_bytes(archive.read(member))
            except (RuntimeError, NotImplementedError, zipfile.BadZipFile, EOFError) as exc:  # encrypted, exotic, corrupt
                raise DatasetError(f"'{name}': {member} cannot be extracted ({exc})",
                                   fix="upload an unencrypted zip as the Train page's 'Download model' button "
                                       "saves it") from None
        try:
            return wb.load_model(tmp, device="cpu")
        except wb.WorkbenchError as exc:
            raise retold(exc, user_message(exc.problem, tmp, name), MODEL_ZIP_FIX) from None


def retold(exc: wb.WorkbenchError, problem: str, fix: str) -> wb.WorkbenchError:
    """An error of the same class as ``exc`` (DatasetError for a class with its own constructor) with
    ``problem`` and the page's ``fix`` in place of one written for Python callers."""
    cls = type(exc) if type(exc).__init__ is wb.WorkbenchError.__init__ else DatasetError
    return cls(problem, fix=fix)


def user_message(message: str, server_path: str, name: str) -> str:
    """An error message about a temporary server file, retold about the user's file ``name``."""
    return message.replace(f"{server_path}/", "").replace(server_path, f"'{name}'")


UPLOAD_ADVICE = {
    ".csv": "check that the file is a comma-separated table with a header row, then pick its time column and "
            "the role of each column above",
    ".nc": "upload a NetCDF file with a time dimension (named 'time', or a coordinate with standard_name 'time' "
           "or axis 'T') and numeric variables along it, or an HDF5 file saved by the Systems page's Download button",
    "other": "upload an HDF5 file saved by the Systems page's Download button, a NetCDF file (.nc) with a time "
             "dimension, or a CSV table",
}
# a Linux file name is at most 255 bytes; the server's copy of an upload keeps the user's name
MAX_UPLOAD_NAME_BYTES = 200
RENAME_FIX = "rename the file to a short plain name such as 'data.csv' and upload it again"
# the keyword options of workbench.from_csv, the only options an upload takes
CSV_OPTIONS = frozenset(name for name, parameter in inspect.signature(wb.from_csv).parameters.items()
                        if parameter.kind is inspect.Parameter.KEYWORD_ONLY)


def check_upload_name(name: str) -> str:
    """``name`` if it can be the name of the server's copy of an upload: one plain file name, without
    control characters, at most :data:`MAX_UPLOAD_NAME_BYTES` bytes; else a :class:`DatasetError`."""
    shown = repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} characters)"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        problem = f"the file name {shown} contains control characters"
    elif name in ("", ".", "..") or Path(name).name != name:
        problem = f"the file name {shown} is not a plain file name"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_UPLOAD_NAME_BYTES:
        problem = f"the file name {shown} is longer than {MAX_UPLOAD_NAME_BYTES} bytes"
    else:
        return name
    raise DatasetError(problem, fix=RENAME_FIX)


def uploaded_dataset(name: str, data: bytes, **csv_options: Any) -> xr.Dataset:
    """Validate an uploaded HDF5, NetCDF or CSV file with the same loaders as the Python API
    (:func:`workbench.load`, :func:`workbench.from_netcdf`, :func:`workbench.from_csv`).

    Arguments:
        name: the user's file name; its suffix picks the loader.
        data: the file's bytes.
        csv_options: keyword options of :func:`workbench.from_csv` (time column, roles), CSV only.

    Returns:
        The dataset.

    Raises:
        UnknownNameError: an option that :func:`workbench.from_csv` does not take. BadParameterError:
        CSV options for another kind of file. DatasetError (or ResourceLimitError): an unusable file
        name or file; the problem names the user's file (never the server's copy), the fix is advice a
        page user can follow.
    """
    unknown = sorted(set(csv_options) - CSV_OPTIONS)
    if unknown:
        raise UnknownNameError(f"unknown upload option(s) {unknown}", fix=f"use options among {sorted(CSV_OPTIONS)}")
    suffix = Path(name).suffix.lower()
    if csv_options and suffix != ".csv":
        raise BadParameterError(f"options {sorted(csv_options)} apply to CSV files, not to '{suffix}' files",
                                fix="pass them only with a .csv upload")
    advice = UPLOAD_ADVICE.get(suffix, UPLOAD_ADVICE["other"])
    if len(data) > MAX_UPLOAD_BYTES:
        raise ResourceLimitError(f"'{name}' is larger than {MAX_UPLOAD_BYTES >> 20} MB", fix=advice)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / check_upload_name(name)
        path.write_bytes(data)
        load = {".csv": lambda: wb.from_csv(path, **csv_options), ".nc": lambda: wb.from_netcdf(path)}.get(
            suffix, lambda: wb.load(path))
        try:
            return load()
        except wb.WorkbenchError as exc:
            raise retold(exc, user_message(exc.problem, str(path), name), advice) from None
