"""Benchmark grids on a 2-worker Dask LocalCluster: results, failures recorded, resumption."""
import xarray as xr

from workbench import benchmark as bench


def test_small_grid_records_failures_and_resumes_without_refitting(tmp_path):
    grid = bench.grid_from_names(["van_der_pol"], ["resnet", "hnn"], [0], budget=2.0, n=8)
    ds = bench.run_grid(grid, tmp_path, workers=2, progress=False)
    assert set(ds["learner"].values) == {"resnet", "hnn"}
    ok = ds["score"].sel(system="van_der_pol", learner="resnet", seed=0)
    assert float(ok.sel(metric="rmse_mean")) > 0 and float(ok.sel(metric="fit_seconds")) > 0
    assert "needs canonical coordinates" in str(ds["error"].sel(system="van_der_pol", learner="hnn", seed=0).values)
    board = (tmp_path / "leaderboard.md").read_text()
    assert "| van_der_pol | resnet |" in board and "| van_der_pol | hnn |" in board
    with xr.open_dataset(tmp_path / "results.h5", engine="h5netcdf") as saved:
        assert saved["score"].dims == ("system", "learner", "seed", "metric")
    cells = sorted((tmp_path / "cells").glob("*.json"))
    stamps = [c.stat().st_mtime_ns for c in cells]
    again = bench.run_grid(grid, tmp_path, workers=2, progress=False)  # nothing left to do: no refit
    assert [c.stat().st_mtime_ns for c in cells] == stamps
    xr.testing.assert_identical(again["score"], ds["score"])


def test_crossing_task_dataset_matches_dupont_et_al():
    ds = bench.crossing_dataset(n=16)
    x = ds["state"].values[..., 0]
    assert ((x[:, 1] == 1) == (x[:, 0] < 0)).all()  # g(-1) = 1 and g(1) = -1
