"""Dataset schema, HDF5 round trip, imports, and refusal of malformed or hostile files."""
import errno
import json
import os

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import workbench as wb
from workbench.errors import DatasetError, ResourceLimitError, StorageError
from workbench.safety import MEMORY_ENV, memory_limit, parse_size, read_json_bounded


def test_round_trip_is_exact_and_readable_without_workbench(tmp_path, lorenz_small):
    path = wb.save(lorenz_small, tmp_path / "lorenz.h5")
    back = wb.load(path)
    xr.testing.assert_identical(back, lorenz_small)
    assert back.attrs == lorenz_small.attrs
    with xr.open_dataset(path, engine="h5netcdf") as plain:
        assert plain["state"].dims == ("trajectory", "time", "variable")
        assert list(plain["variable"].values) == ["x", "y", "z"]
        assert plain["time"].attrs["standard_name"] == "time"
    with h5py.File(path, "r") as f:
        state = f["state"]
        assert [d[0].name for d in state.dims] == ["/trajectory", "/time", "/variable"]
        assert state.compression == "gzip" and state.shuffle
        assert state.chunks == (1, lorenz_small.sizes["time"], 3)
        np.testing.assert_array_equal(state[...], lorenz_small["state"].values)
        assert json.loads(f.attrs["params"])["rho"] == 28.0


def test_same_seed_gives_same_file_content(tmp_path):
    a = wb.simulate("van_der_pol", n=4, t_end=1.0, dt=0.1, seed=5, obs_noise=0.1)
    b = wb.simulate("van_der_pol", n=4, t_end=1.0, dt=0.1, seed=5, obs_noise=0.1)
    c = wb.simulate("van_der_pol", n=4, t_end=1.0, dt=0.1, seed=6, obs_noise=0.1)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.state.values, c.state.values)


def test_split_selects_whole_trajectories(lorenz_small):
    counts = {s: wb.select_split(lorenz_small, s).sizes["trajectory"] for s in ("train", "val", "test")}
    assert sum(counts.values()) == 12 and min(counts.values()) >= 1
    test = lorenz_small.where(lorenz_small.split == "test", drop=True)
    assert test.sizes["trajectory"] == counts["test"]


def test_failed_rename_keeps_old_file_and_leaves_no_temporary(tmp_path, lorenz_small, monkeypatch):
    path = wb.save(lorenz_small, tmp_path / "keep.h5")
    before = path.read_bytes()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StorageError, match="cannot write .*keep.h5"):
        wb.save(lorenz_small.isel(trajectory=[0]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.h5"]


def test_full_disk_is_named_with_the_space_needed(tmp_path, lorenz_small, monkeypatch):
    path = wb.save(lorenz_small, tmp_path / "keep.h5")
    before = path.read_bytes()
    real_open = open

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k: FullDisk(real_open(p, mode, *a, **k))
                        if str(p).endswith(".tmp") else real_open(p, mode, *a, **k))
    with pytest.raises(StorageError, match=r"disk is full writing .*keep.h5: it needs about [0-9.]+ KiB"):
        wb.save(lorenz_small, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["keep.h5"]


def test_memory_budget_is_checked_before_reading_and_can_be_overridden(tmp_path, monkeypatch):
    ds = wb.simulate("lorenz63", n=40, t_end=2.0, dt=0.01, seed=0)  # 40 x 201 x 3 float64 = 188 KiB
    path = wb.save(ds, tmp_path / "d.h5")
    monkeypatch.setenv(MEMORY_ENV, "100K")
    with pytest.raises(ResourceLimitError, match=f"memory budget of 100.0 KiB.*{MEMORY_ENV}"):
        wb.load(path)
    monkeypatch.setenv(MEMORY_ENV, "1M")
    xr.testing.assert_identical(wb.load(path), ds)
    monkeypatch.setenv(MEMORY_ENV, "unlimited")
    assert memory_limit() is None
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(ResourceLimitError, match="not a size"):
        memory_limit()


@pytest.mark.parametrize("text, size", [("4G", 4 * 2**30), ("512 MiB", 512 * 2**20), ("1e9", 10**9), ("1536", 1536)])
def test_sizes_parse_in_binary_units(text, size):
    assert parse_size(text) == size


def test_json_is_bounded_in_depth_and_size(tmp_path):
    assert read_json_bounded(("[" * 64 + "]" * 64).encode()) == json.loads("[" * 64 + "]" * 64)
    with pytest.raises(DatasetError, match="deeper than 64"):
        read_json_bounded(("[" * 65 + "]" * 65).encode())
    path = tmp_path / "big.json"
    path.write_text(json.dumps(["x" * 1000]))
    with pytest.raises(DatasetError, match="more than the limit"):
        read_json_bounded(path, max_bytes=1000)
    assert read_json_bounded(path, max_bytes=2000) == ["x" * 1000]


def test_csv_long_format_import_with_irregular_times(tmp_path):
    rows = [(0, 0.0, 1.0, 2.0), (0, 0.5, 1.5, 2.5), (0, 1.0, 2.0, 3.0), (1, 0.0, -1.0, 0.0), (1, 1.0, -2.0, 0.5)]
    path = tmp_path / "data.csv"
    pd.DataFrame(rows, columns=["trajectory", "time", "q", "p"]).to_csv(path, index=False)
    ds = wb.from_csv(path)
    assert ds.state.dims == ("trajectory", "time", "variable")
    assert list(ds.variable.values) == ["q", "p"]
    np.testing.assert_array_equal(ds.time.values, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(ds["mask"].values, [[True, True, True], [True, False, True]])
    assert ds.state.sel(trajectory=1, time=1.0, variable="p").item() == 0.5
    wb.save(ds, tmp_path / "data.h5")
    xr.testing.assert_identical(wb.load(tmp_path / "data.h5"), ds)


def test_numpy_import():
    states = np.random.default_rng(0).normal(size=(3, 5, 2))
    ds = wb.from_numpy(states, np.linspace(0, 1, 5), ["a", "b"])
    np.testing.assert_array_equal(ds.state.values, states)
    with pytest.raises(DatasetError, match="2 variable names given for 3"):
        wb.from_numpy(np.zeros((1, 5, 3)), np.linspace(0, 1, 5), ["a", "b"])


def _write_netcdf(path, ds):
    ds.to_netcdf(path, engine="h5netcdf")
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda ds: ds.rename({"state": "x"}), "no data variable 'state'"),
    (lambda ds: ds.transpose("time", "trajectory", "variable"), "has dims"),
    (lambda ds: ds.assign_coords(time=ds.time.values[::-1].copy()), "not strictly increasing"),
    (lambda ds: ds.assign(state=ds.state.where(ds.time < 0.5)), "NaN"),
])
def test_schema_violations_are_refused(tmp_path, lorenz_small, mutate, message):
    path = _write_netcdf(tmp_path / "bad.h5", mutate(lorenz_small))
    with pytest.raises(DatasetError, match=message):
        wb.load(path)


def test_wrongly_shaped_state_is_refused(tmp_path):
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f["state"] = np.zeros(10)
    with pytest.raises(DatasetError, match="dims"):
        wb.load(tmp_path / "flat.h5")


def test_external_link_is_refused(tmp_path, lorenz_small):
    path = wb.save(lorenz_small, tmp_path / "a.h5")
    with h5py.File(path, "a") as f:
        f["sneaky"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(DatasetError, match="external link"):
        wb.load(path)


def test_external_storage_is_refused(tmp_path):
    raw = tmp_path / "raw.bin"
    np.zeros(12).tofile(raw)
    with h5py.File(tmp_path / "ext.h5", "w") as f:
        f.create_dataset("state", shape=(12,), dtype="f8", external=[(str(raw), 0, 96)])
    with pytest.raises(DatasetError, match="external storage"):
        wb.load(tmp_path / "ext.h5")


def test_virtual_dataset_is_refused(tmp_path):
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["data"] = np.arange(4.0)
    layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "data", shape=(4,))
    with h5py.File(tmp_path / "virtual.h5", "w") as f:
        f.create_virtual_dataset("state", layout)
    with pytest.raises(DatasetError, match="virtual dataset"):
        wb.load(tmp_path / "virtual.h5")


def test_not_hdf5_and_truncated_files_are_refused(tmp_path, lorenz_small):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        wb.load(text)
    good = wb.save(lorenz_small, tmp_path / "good.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[:4000])
    with pytest.raises(DatasetError):
        wb.load(cut)
    with pytest.raises(DatasetError, match="no such file"):
        wb.load(tmp_path / "missing.h5")


def test_masked_nan_is_allowed_but_unmasked_nan_is_not(tmp_path):
    ds = wb.simulate("van_der_pol", n=3, t_end=2.0, dt=0.1, seed=0, missing=0.3)
    assert ds["mask"].values.mean() < 1.0
    assert np.isnan(ds.state.values).any()
    back = wb.load(wb.save(ds, tmp_path / "m.h5"))
    xr.testing.assert_identical(back, ds)
    with pytest.raises(DatasetError, match="NaN"):
        wb.from_numpy(ds.state.values, ds.time.values)
