"""Crafted files, bad arguments and bad output targets: each must fail fast with a named WorkbenchError.

Every case runs in a forked child under memory and CPU limits (see ``hostile_harness``) and must
raise a ``WorkbenchError`` subclass of the stated class whose message matches the stated pattern,
from the API, or exit 2 with one ``error:`` line from the CLI; nothing in the sandbox may change
except the named target, and no ``*.tmp`` may be left behind. Add a case for every new bug.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import h5py
import numpy as np
import pytest

import workbench as wb
from hostile_harness import changed, run_isolated, snapshot, temporaries

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL, DEMO_DATA = ROOT / "data" / "demo-lorenz63-node", ROOT / "data" / "demo-lorenz63.h5"
NOBODY = 65534


@dataclass
class Case:
    """A hostile input: ``setup`` crafts files in the sandbox (parent), ``act`` runs in the child."""

    name: str
    act: Callable[[Path], Any]
    error: str
    pattern: str
    setup: Optional[Callable[[Path, Any], None]] = None
    touches: frozenset = field(default_factory=frozenset)
    cli: bool = False
    unprivileged: bool = False
    max_seconds: float = 30.0


# --- crafted files ---------------------------------------------------------------------------

def _write_raw(ds, path: Path) -> None:
    """Write ``ds`` as netCDF without the workbench's validation (how a hostile file is made)."""
    ds.to_netcdf(path, engine="h5netcdf")


def _with(**changes: Any) -> Callable[[Path, Any], None]:
    def setup(sandbox: Path, ds) -> None:
        crafted = ds.copy(deep=True)
        for key, value in changes.items():
            if key == "attrs":
                crafted.attrs.update(value)
            else:
                crafted[key] = value(crafted)
        _write_raw(crafted, sandbox / "in.h5")
    return setup


def _self_linked(sandbox: Path, ds) -> None:
    _write_raw(ds, sandbox / "in.h5")
    with h5py.File(sandbox / "in.h5", "a") as f:
        group = f.create_group("loop")
        group["again"] = group


def _deeply_nested(sandbox: Path, ds) -> None:
    _write_raw(ds, sandbox / "in.h5")
    with h5py.File(sandbox / "in.h5", "a") as f:
        group = f
        for _ in range(1500):
            group = group.create_group("g")


def _fill_value_bomb(sandbox: Path, ds) -> None:
    with h5py.File(sandbox / "in.h5", "w") as f:  # 2.4 GB declared, nothing written
        f.create_dataset("state", shape=(1000, 100_000, 3), dtype="f8", fillvalue=1.0, chunks=(1, 10_000, 3))


def _gzip_bomb(sandbox: Path, ds) -> None:
    """200 chunks of 8 MB of zeros, each stored as the same ~8 KB gzip stream: 1.6 GB from ~1.7 MB."""
    chunk = zlib.compress(np.zeros(1_000_000).tobytes(), 9)
    with h5py.File(sandbox / "in.h5", "w") as f:
        data = f.create_dataset("state", shape=(200, 1_000_000), dtype="f8", chunks=(1, 1_000_000),
                                compression="gzip")
        for row in range(200):
            data.id.write_direct_chunk((row, 0), chunk)


def _external_link(sandbox: Path, ds) -> None:
    _write_raw(ds, sandbox / "in.h5")
    with h5py.File(sandbox / "in.h5", "a") as f:
        f["leak"] = h5py.ExternalLink("/etc/passwd", "/")


def _soft_link(sandbox: Path, ds) -> None:
    _write_raw(ds, sandbox / "in.h5")
    with h5py.File(sandbox / "in.h5", "a") as f:
        f["alias"] = h5py.SoftLink("/state")


def _virtual(sandbox: Path, ds) -> None:
    with h5py.File(sandbox / "other.h5", "w") as f:
        f["x"] = np.arange(10.0)
    layout = h5py.VirtualLayout(shape=(10,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(sandbox / "other.h5"), "x", shape=(10,))
    with h5py.File(sandbox / "in.h5", "w") as f:
        f.create_virtual_dataset("state", layout)


def _external_storage(sandbox: Path, ds) -> None:
    (sandbox / "raw.bin").write_bytes(np.arange(10.0).tobytes())
    with h5py.File(sandbox / "in.h5", "w") as f:
        f.create_dataset("state", shape=(10,), dtype="f8", external=[(str(sandbox / "raw.bin"), 0, 80)])


def _text(sandbox: Path, ds) -> None:
    (sandbox / "in.h5").write_text("trajectory,time,x\n0,0,1\n")


def _truncated(sandbox: Path, ds) -> None:
    wb.save(ds, sandbox / "full.h5")
    (sandbox / "in.h5").write_bytes((sandbox / "full.h5").read_bytes()[:3000])


def _fifo(sandbox: Path, ds) -> None:
    os.mkfifo(sandbox / "in.h5")


def _folder(sandbox: Path, ds) -> None:
    (sandbox / "in.h5").mkdir()


def _unreadable(sandbox: Path, ds) -> None:
    wb.save(ds, sandbox / "in.h5")
    os.chmod(sandbox / "in.h5", 0)


def _saved(sandbox: Path, ds) -> None:
    wb.save(ds, sandbox / "in.h5")


def _deep_json_file(sandbox: Path, ds) -> None:
    (sandbox / "in.json").write_text("[" * 100_000 + "]" * 100_000)


def _big_json_file(sandbox: Path, ds) -> None:
    (sandbox / "in.json").write_text(json.dumps({"pad": "x" * (9 * 2**20)}))


def _out_fifo(sandbox: Path, ds) -> None:
    os.mkfifo(sandbox / "out.h5")


def _out_folder(sandbox: Path, ds) -> None:
    (sandbox / "out.h5").mkdir()


def _out_under_file(sandbox: Path, ds) -> None:
    (sandbox / "file").write_text("not a folder")


def _read_only_folder(sandbox: Path, ds) -> None:
    (sandbox / "ro").mkdir()
    os.chmod(sandbox / "ro", 0o555)


# --- actions (run in the child) --------------------------------------------------------------

def _load(sandbox: Path) -> Any:
    return wb.load(sandbox / "in.h5")


def _read_json(sandbox: Path) -> Any:
    from workbench.safety import read_json_bounded

    return read_json_bounded(sandbox / "in.json")


def _small() -> Any:
    return wb.simulate("lorenz63", n=3, t_end=0.5, dt=0.1, seed=1)


def _save_to(target: str) -> Callable[[Path], Any]:
    return lambda sandbox: wb.save(_small(), target if target.startswith("/") else sandbox / target)


def _cli(*argv: str) -> Callable[[Path], Any]:
    from workbench.cli import main

    return lambda sandbox: main([a.replace("{sandbox}", str(sandbox)) for a in argv])


def _simulate(**kwargs: Any) -> Callable[[Path], Any]:
    system = kwargs.pop("system", "lorenz63")
    args = {"n": 2, "t_end": 1.0, "dt": 0.1, **kwargs}
    return lambda sandbox: wb.simulate(system, **args)


def _save_modified(change: Callable[[Any], Any]) -> Callable[[Path], Any]:
    def act(sandbox: Path) -> Any:
        ds = _small()
        return wb.save(change(ds), sandbox / "out.h5")
    return act


def _nan_derivative(ds):
    ds["derivative"] = ds["state"] * np.nan
    return ds


def _all_missing(ds):
    ds["mask"] = (("trajectory", "time"), np.zeros((ds.sizes["trajectory"], ds.sizes["time"]), dtype=bool))
    return ds


def _fit_nan_derivative(sandbox: Path) -> Any:
    return wb.fit(_nan_derivative(_small()), "node", epochs=1)


def _fit_array(sandbox: Path) -> Any:
    return wb.fit(np.zeros((4, 10, 3)), "node", epochs=1)


def _evaluate_malformed(sandbox: Path) -> Any:
    ds = wb.load(DEMO_DATA)
    ds.attrs["params"] = "[1, 2"
    return wb.evaluate(wb.load_model(DEMO_MODEL), ds)


def _evaluate_wrong_type(sandbox: Path) -> Any:
    ds = wb.load(DEMO_DATA)
    ds.attrs["params"] = json.dumps(["rho", 28])
    return wb.evaluate(wb.load_model(DEMO_MODEL), ds)


def _evaluate_array(sandbox: Path) -> Any:
    return wb.evaluate(wb.load_model(DEMO_MODEL), np.zeros((4, 10, 3)))


def _predict_without_test_split(sandbox: Path) -> Any:
    ds = _small()
    ds = ds.assign_coords(split=("trajectory", ["train"] * ds.sizes["trajectory"]))
    return wb.select_split(ds, "test", required=True)


def _fit_kind_banana(sandbox: Path) -> Any:
    ds = _small()
    ds.attrs["kind"] = "banana"
    return wb.fit(ds, "node", epochs=1)


def _fit_time_offset_rk4(sandbox: Path) -> Any:
    ds = _small()
    return wb.fit(ds.assign_coords(time=ds["time"].values + 1e12), "node", epochs=1, solver="rk4")


def _train_only(sandbox: Path, ds) -> None:
    wb.save(ds.assign_coords(split=("trajectory", ["train"] * ds.sizes["trajectory"])), sandbox / "in.h5")


def _encrypted_model_zip(sandbox: Path, ds) -> None:
    """A model zip whose members are flagged as encrypted (general-purpose bit 0), as `zip -P` makes."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.safetensors", b"x")
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start >= 0:
            data[start + offset] |= 1
            start = data.find(signature, start + 4)
    (sandbox / "model.zip").write_bytes(bytes(data))


def _upload_model_zip(sandbox: Path) -> Any:
    import sys

    sys.path.insert(0, str(ROOT))
    from app.state import model_from_zip

    return model_from_zip("model.zip", (sandbox / "model.zip").read_bytes())


def _demo_model_with(edit: Callable[[Path], None]) -> Callable[[Path, Any], None]:
    """A copy of the shipped demo model folder, then ``edit`` applied to it."""
    def setup(sandbox: Path, ds) -> None:
        shutil.copytree(DEMO_MODEL, sandbox / "run")
        edit(sandbox / "run")
    return setup


def _edit_config(**changes: Any) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key in ("hidden", "depth", "members"):
                config["options"][key] = value
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _write_file(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def _load_model(sandbox: Path) -> Any:
    return wb.load_model(sandbox / "run")


def _csv(text: str) -> Callable[[Path, Any], None]:
    return lambda sandbox, ds: (sandbox / "in.csv").write_text(text)


def _union_grid_csv(sandbox: Path, ds) -> None:
    """0.7 MB: 6,000 series of 5 rows, each at its own times, so the union grid has 30,000 times."""
    lines = ["trajectory,time,x,y,z"] + [f"{i},{5 * i + k + 0.5},1,2,3" for i in range(6000) for k in range(5)]
    (sandbox / "in.csv").write_text("\n".join(lines) + "\n")


def _from_csv(sandbox: Path) -> Any:
    return wb.from_csv(sandbox / "in.csv")


def _fit_with(**options: Any) -> Callable[[Path], Any]:
    return lambda sandbox: wb.fit(_small(), "node", epochs=1, **options)


NAN = lambda ds: ds["state"] * np.nan  # noqa: E731

CASES = [
    # hostile HDF5
    Case("hdf5 self-linked group", _load, "DatasetError", "links back", _self_linked),
    Case("hdf5 groups nested 1500 deep", _load, "DatasetError", "nested deeper", _deeply_nested),
    Case("hdf5 fill-value bomb", _load, "ResourceLimitError", "declares .* GiB|memory budget", _fill_value_bomb),
    Case("hdf5 gzip bomb", _load, "ResourceLimitError", "declares .* GiB|memory budget", _gzip_bomb),
    Case("hdf5 external link", _load, "DatasetError", "external link", _external_link),
    Case("hdf5 soft link", _load, "DatasetError", "soft link", _soft_link),
    Case("hdf5 virtual dataset", _load, "DatasetError", "virtual dataset", _virtual),
    Case("hdf5 external storage", _load, "DatasetError", "external storage", _external_storage),
    Case("not hdf5 at all", _load, "DatasetError", "not an HDF5 file", _text),
    Case("truncated hdf5", _load, "DatasetError", "truncated or corrupt|not a readable", _truncated),
    Case("input is a fifo (would block)", _load, "DatasetError", "FIFO, not a regular file", _fifo),
    Case("input is /dev/zero (endless)", lambda sandbox: wb.load("/dev/zero"), "DatasetError", "character device"),
    Case("input is /proc/self/mem", lambda sandbox: wb.load("/proc/self/mem"), "DatasetError", "could not be read"),
    Case("input is a folder", _load, "DatasetError", "is a folder", _folder),
    Case("input is missing", _load, "DatasetError", "no such file", None),
    Case("input path is None", lambda sandbox: wb.load(None), "BadParameterError", "file path"),
    Case("output path is a number", lambda sandbox: wb.save(_small(), 5), "BadParameterError", "file path"),
    Case("input unreadable", _load, "StorageError", "permission denied", _unreadable, unprivileged=True),
    # data that would be silently wrong
    Case("file with NaN derivative", _load, "DatasetError", "'derivative' holds NaN", _with(derivative=NAN)),
    Case("file with every sample missing", _load, "DatasetError", "no observed sample",
         _with(mask=lambda ds: (("trajectory", "time"), np.zeros((4, 11), dtype="i1")))),
    Case("file with mask values 0/2", _load, "DatasetError", "'mask' must hold booleans",
         _with(mask=lambda ds: (("trajectory", "time"), np.full((4, 11), 2, dtype="i1")))),
    Case("file with integer state", _load, "DatasetError", "floating-point",
         _with(state=lambda ds: ds["state"].astype("i8"))),
    Case("params JSON nested 100k deep", _load, "DatasetError", "deeper than",
         _with(attrs={"params": "[" * 100_000 + "]" * 100_000})),
    Case("facts JSON nested 100k deep", _load, "DatasetError", "deeper than",
         _with(attrs={"facts": "{\"a\":" * 100_000 + "1" + "}" * 100_000})),
    Case("params JSON padded to 2 MB", _load, "DatasetError", "more than the limit",
         _with(attrs={"params": json.dumps({"rho": 28.0, "pad": "x" * 2**21})})),
    Case("params attribute not a dict", _load, "DatasetError", "should hold a JSON dict",
         _with(attrs={"params": "[1, 2]"})),
    Case("params attribute with a string value", _load, "DatasetError", "finite numbers",
         _with(attrs={"params": json.dumps({"rho": "abc"})})),
    Case("params attribute broken JSON", _load, "DatasetError", "not valid JSON", _with(attrs={"params": "{"})),
    Case("JSON file nested 100k deep", _read_json, "DatasetError", "deeper than", _deep_json_file),
    Case("JSON file of 9 MB", _read_json, "DatasetError", "more than the limit", _big_json_file),
    # output targets
    Case("save over a fifo", _save_to("out.h5"), "StorageError", "FIFO.*refusing", _out_fifo),
    Case("save over /dev/null", _save_to("/dev/null"), "StorageError", "character device"),
    Case("save over a folder", _save_to("out.h5"), "StorageError", "is a folder", _out_folder),
    Case("save below a file", _save_to("file/out.h5"), "StorageError", "not a folder", _out_under_file),
    Case("save into a read-only folder", _save_to("ro/out.h5"), "StorageError", "cannot write|permission",
         _read_only_folder, unprivileged=True),
    Case("save NaN derivative", _save_modified(_nan_derivative), "DatasetError", "'derivative' holds NaN"),
    Case("save with every sample missing", _save_modified(_all_missing), "DatasetError", "no observed sample"),
    # arguments
    Case("simulate n=True", _simulate(n=True), "BadParameterError", "n .*integer"),
    Case("simulate n=0", _simulate(n=0), "BadParameterError", "n .*integer"),
    Case("simulate seed=-1", _simulate(seed=-1), "BadParameterError", "seed"),
    Case("simulate seed='abc'", _simulate(seed="abc"), "BadParameterError", "seed"),
    Case("simulate seed=2**70", _simulate(seed=2**70), "BadParameterError", "seed"),
    Case("simulate params as a string", _simulate(params="rho=28"), "BadParameterError", "mapping"),
    Case("simulate parameter None", _simulate(params={"rho": None}), "BadParameterError", "number"),
    Case("simulate parameter as text", _simulate(params={"rho": "28"}), "BadParameterError", "number"),
    Case("simulate method='bogus'", _simulate(method="bogus"), "BadParameterError", "unknown ODE method"),
    Case("simulate t_end as text", _simulate(t_end="10"), "BadParameterError", "t_end"),
    Case("simulate dim=4.7", _simulate(system="lorenz96", options={"dim": 4.7}), "BadParameterError", "dim"),
    Case("simulate 1e9 trajectories", _simulate(n=10**9), "ResourceLimitError", "memory budget"),
    Case("simulate lorenz96 dim=1e9 (was killed by the OOM killer)", _simulate(system="lorenz96",
         options={"dim": 10**9}), "BadParameterError", "dim"),
    Case("simulate 2e7 explicit times", _simulate(times=np.arange(2e7)), "ResourceLimitError", "memory budget"),
    Case("simulate brownian='x'", _simulate(system="double_well", brownian="x"), "BadParameterError", "brownian"),
    Case("simulate derivative='yes'", _simulate(derivative="yes"), "BadParameterError", "derivative"),
    Case("simulate progress='no'", _simulate(progress="no"), "BadParameterError", "progress"),
    Case("from_numpy of text", lambda sandbox: wb.from_numpy("abc", [0.0]), "DatasetError", "numbers"),
    Case("from_numpy variables=5", lambda sandbox: wb.from_numpy(np.zeros((2, 3, 1)), [0, 1, 2], variables=5),
         "DatasetError", "variables"),
    Case("sde_dt=1e-7 over t_end=50 (hang)", _simulate(system="double_well", t_end=50.0, dt=0.05, sde_dt=1e-7),
         "ResourceLimitError", "max_steps", max_seconds=5),
    Case("x0=[1e200, 1, 1] (slow stall)", _simulate(x0=[1e200, 1.0, 1.0]), "BadParameterError", "bound",
         max_seconds=5),
    Case("fit an ndarray", _fit_array, "WorkbenchError", "xarray.Dataset"),
    Case("fit on NaN derivative", _fit_nan_derivative, "DatasetError", "'derivative' holds NaN"),
    Case("evaluate with broken params attribute", _evaluate_malformed, "DatasetError", "params"),
    Case("evaluate with params as a list", _evaluate_wrong_type, "DatasetError", "params"),
    Case("evaluate an ndarray", _evaluate_array, "DatasetError", "xarray.Dataset"),
    Case("empty test split", _predict_without_test_split, "DatasetError", "no 'test' trajectories"),
    Case("fit data of kind 'banana'", _fit_kind_banana, "DatasetError", "attribute 'kind'"),
    Case("fit rk4 on times offset by 1e12 (float32 steps of 0)", _fit_time_offset_rk4, "DatasetError",
         "subtract the start time"),
    Case("app upload of an encrypted model zip", _upload_model_zip, "DatasetError", "cannot be extracted",
         _encrypted_model_zip),
    # model folders (written by the lead's run format; the attacker recomputes nothing)
    Case("model config.json nested 100k deep", _load_model, "DatasetError", "config.json",
         _demo_model_with(_write_file("config.json", "{\"a\":" * 100_000 + "1" + "}" * 100_000))),
    Case("model history.json nested 100k deep", _load_model, "DatasetError", "history.json",
         _demo_model_with(_write_file("history.json", "[" * 100_000 + "]" * 100_000))),
    Case("model history.json broken", _load_model, "DatasetError", "history.json",
         _demo_model_with(_write_file("history.json", "{\"a\": "))),
    Case("model config hidden=30000 depth=8", _load_model, "WorkbenchError", "config",
         _demo_model_with(_edit_config(hidden=30000, depth=8))),
    Case("model config depth=2_000_000", _load_model, "WorkbenchError", "config",
         _demo_model_with(_edit_config(depth=2_000_000))),
    Case("model config format_version '999'", _load_model, "DatasetError", "format_version",
         _demo_model_with(_edit_config(format_version="999"))),
    # CSV imports
    Case("csv whose union time grid needs 5 GiB", _from_csv, "ResourceLimitError", "memory budget", _union_grid_csv),
    Case("csv with a header only", _from_csv, "DatasetError", "no data rows", _csv("trajectory,time,x\n")),
    Case("csv with an empty trajectory id", _from_csv, "DatasetError", "empty",
         _csv("trajectory,time,x\n,0,1\n,1,2\n1,0,3\n1,1,4\n")),
    Case("csv with booleans as numbers", _from_csv, "DatasetError", "not a number",
         _csv("trajectory,time,x\n0,0,True\n0,1,False\n")),
    Case("csv split changing within a trajectory", _from_csv, "DatasetError", "split",
         _csv("trajectory,time,x,split\n0,0,1,train\n0,1,2,test\n1,0,1,train\n1,1,1,train\n")),
    # training options (fit's own checks)
    Case("fit clip=-1", _fit_with(clip=-1.0), "WorkbenchError", "clip"),
    Case("fit lr=inf", _fit_with(lr=float("inf")), "WorkbenchError", "lr"),
    Case("fit batch_size=10**9", _fit_with(batch_size=10**9), "WorkbenchError", "batch"),
    Case("fit solver='bogus'", _fit_with(solver="bogus"), "WorkbenchError", "solver"),
    Case("fit hidden='abc'", _fit_with(hidden="abc"), "WorkbenchError", "hidden"),
    # the CLI: one line, exit 2
    Case("cli generate --out fifo", _cli("generate", "lorenz63", "--n", "3", "--t-end", "0.5", "--dt", "0.1",
                                         "--out", "{sandbox}/out.h5", "-q"), "exit 2", "FIFO", _out_fifo, cli=True),
    Case("cli generate --out folder", _cli("generate", "lorenz63", "--n", "3", "--t-end", "0.5", "--dt", "0.1",
                                           "--out", "{sandbox}/out.h5", "-q"), "exit 2", "is a folder", _out_folder,
         cli=True),
    Case("cli generate --out below a file", _cli("generate", "lorenz63", "--n", "3", "--t-end", "0.5", "--dt", "0.1",
                                                 "--out", "{sandbox}/file/out.h5", "-q"), "exit 2", "not a folder",
         _out_under_file, cli=True),
    Case("cli generate --n 0", _cli("generate", "lorenz63", "--n", "0", "--out", "{sandbox}/out.h5"), "exit 2", "n ",
         cli=True),
    Case("cli generate --option dim=4.7", _cli("generate", "lorenz96", "--option", "dim=4.7", "--n", "2",
                                               "--out", "{sandbox}/out.h5"), "exit 2", "dim", cli=True),
    Case("cli fit on a folder", _cli("fit", "{sandbox}/in.h5", "--out", "{sandbox}/run", "--epochs", "1"),
         "exit 2", "is a folder", _folder, cli=True),
    Case("cli predict without a test split", _cli("predict", str(DEMO_MODEL), "--data", "{sandbox}/in.h5", "--out",
                                                  "{sandbox}/out.h5"), "exit 2", "no 'test' trajectories", _train_only,
         cli=True),
    Case("cli evaluate on a NaN-derivative file", _cli("evaluate", str(DEMO_MODEL), "--data", "{sandbox}/in.h5"),
         "exit 2", "'derivative' holds NaN", _with(derivative=NAN), cli=True),
]


@pytest.fixture(scope="module")
def small_dataset():
    return wb.simulate("lorenz63", n=4, t_end=1.0, dt=0.1, seed=0)


@pytest.fixture
def sandbox():
    """A fresh folder in the system's temp folder, which an unprivileged user can reach (tmp_path cannot)."""
    folder = Path(tempfile.mkdtemp(prefix="wb-hostile-"))
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case_fails_with_a_named_error(case: Case, sandbox: Path, small_dataset) -> None:
    if ("evaluate" in case.name or "predict" in case.name or "model " in case.name) and not (DEMO_MODEL.is_dir() and DEMO_DATA.is_file()):
        pytest.skip("the shipped demo model is missing (run `workbench demo`)")
    if case.setup is not None:
        case.setup(sandbox, small_dataset)
    user = None
    if case.unprivileged:
        if os.geteuid() == 0:
            user = NOBODY
            for path in sandbox.rglob("*"):
                if path.is_dir():
                    os.chmod(path, 0o555 if path.name == "ro" else 0o777)
    before = snapshot(sandbox)
    outcome = run_isolated(case.act, sandbox, user=user)
    assert outcome.status not in ("hung", "crashed"), f"{case.name}: {outcome.status} ({outcome.exit_code})"
    if case.cli:
        lines = outcome.stderr.strip().splitlines()
        assert outcome.status == "exited" and outcome.exit_code == 2, (outcome.status, outcome.message, outcome.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
        assert re.search(case.pattern, lines[0], re.I), lines[0]
    else:
        assert outcome.status == "raised", f"{case.name}: {outcome.status} {outcome.value!r}"
        assert outcome.workbench_error, f"{case.name}: {outcome.error}: {outcome.message}"
        assert case.error in outcome.family, f"{case.name}: {outcome.error}: {outcome.message}"
        assert re.search(case.pattern, outcome.message, re.I), outcome.message
    assert outcome.seconds < case.max_seconds, f"{case.name} took {outcome.seconds:.1f} s to fail"
    assert changed(before, snapshot(sandbox)) <= case.touches
    assert temporaries(sandbox) == []
    if case.name == "save over /dev/null":
        assert Path("/dev/null").is_char_device()
