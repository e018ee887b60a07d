"""Benchmark grids on a 2-worker Dask LocalCluster: results, skipped learners, resumption; the chaos preset."""
import json

import numpy as np
import pytest
import xarray as xr

import workbench as wb
from workbench import benchmark as bench
from workbench.learners import get_learner


def test_small_grid_records_skips_and_resumes_without_refitting(tmp_path):
    grid = bench.grid_from_names(["van_der_pol"], ["resnet", "hnn"], [0], budget=2.0, n=8)
    ds = bench.run_grid(grid, tmp_path, workers=2, progress=False)
    assert set(ds["learner"].values) == {"resnet", "hnn"}
    ok = ds["score"].sel(system="van_der_pol", learner="resnet", seed=0)
    assert float(ok.sel(metric="rmse_mean")) > 0 and float(ok.sel(metric="fit_seconds")) > 0
    # hnn cannot fit a state without a (q, p) split: skipped with the reason, never fitted
    reason = str(ds["skipped"].sel(system="van_der_pol", learner="hnn", seed=0).values)
    assert "needs canonical coordinates" in reason
    assert str(ds["error"].sel(system="van_der_pol", learner="hnn", seed=0).values) == ""
    assert "fit_seconds" not in json.loads((tmp_path / "cells" / "van_der_pol__hnn__seed0.json").read_text())
    board = (tmp_path / "leaderboard.md").read_text()
    assert "| van_der_pol | resnet |" in board and "| van_der_pol | hnn |" not in board
    assert board.splitlines()[2].endswith("| 1/1 | 0 |")  # one finished seed, no failure
    assert "Skipped (cannot fit): `hnn` (learner 'hnn' needs canonical coordinates" in board
    with xr.open_dataset(tmp_path / "results.h5", engine="h5netcdf") as saved:
        assert saved["score"].dims == ("system", "learner", "seed", "metric")
    cells = sorted((tmp_path / "cells").glob("*.json"))
    stamps = [c.stat().st_mtime_ns for c in cells]
    again = bench.run_grid(grid, tmp_path, workers=2, progress=False)  # nothing left to do: no refit
    assert [c.stat().st_mtime_ns for c in cells] == stamps
    xr.testing.assert_identical(again["score"], ds["score"])


def test_chaos_preset_covers_five_chaotic_attractors_and_every_deterministic_learner():
    grid = bench.preset("chaos", budget=15.0)
    systems = [spec.system for spec in grid.data]
    assert systems[:3] == ["lorenz63", "rossler", "lorenz96"] and len(systems) == 5
    for name in systems:
        facts = wb.system(name).facts
        assert facts["chaotic"]
        assert name == "lorenz96" or facts["max_lyapunov_exponent"] > 0  # VPT in Lyapunov times needs one
    assert wb.system("lorenz96").dim == 10 and all("dim" not in spec.simulate for spec in grid.data)
    learners = {entry.learner for entry in grid.entries}
    assert learners == set(bench.deterministic_learners())
    assert not {"nsde", "ensemble", "mechanistic"} & learners  # stochastic, or needs the system it estimates
    assert {"sindy", "nvar", "esn", "node"} <= learners
    assert grid.seeds == [0, 1] and grid.budget == 15.0
    assert all(spec.test is not None for spec in grid.data)  # scored on a separate held-out set
    assert [m for m, _ in grid.columns][:5] == ["vpt_lyapunov_median", "attractor_w1", "spectrum_error",
                                                "lyapunov_learned", "lyapunov_true"]


@pytest.mark.parametrize("name", ["hnn", "anode"])
def test_preset_entries_pass_the_capability_check_with_their_training_options(tmp_path, name):
    # entries mix learner options with fit's (window, patience): the check before fitting must read only
    # the learner's, or every cell of the preset fails before it starts
    grid = bench.preset(name, budget=1.0)
    for spec in grid.data:
        path = tmp_path / f"{spec.system}.h5"
        ds = spec.builder() if spec.builder is not None else wb.simulate(spec.system, **{**spec.simulate, "n": 4})
        wb.save(ds, path)
        assert any(set(entry.options) - set(get_learner(entry.learner).defaults) for entry in grid.entries)
        for entry in grid.entries:
            assert bench.skip_reason(str(path), entry) is None, (spec.system, entry.label)


def test_chaos_cell_scores_sindy_on_lorenz63_against_the_published_exponent(tmp_path):
    # clean Lorenz-63 data: SINDy recovers the equations, so its attractor is the true one (W1 of two
    # short runs still carries ~0.1 of sampling noise; a fixed point or a diverged model scores >> 0.25)
    train, test = tmp_path / "train.h5", tmp_path / "test.h5"
    wb.save(wb.simulate("lorenz63", n=4, t_end=10.0, seed=0, split=(0.75, 0.25, 0.0), progress=False), train)
    wb.save(wb.simulate("lorenz63", n=2, t_end=10.0, seed=1, split=(0.0, 0.0, 1.0), progress=False), test)
    result = bench.run_cell(str(train), str(test), "lorenz63", bench.Entry("sindy", "sindy"), 0, 5.0, str(tmp_path))
    assert "error" not in result
    assert result["lyapunov_true"] == 0.9056  # Sprott (2003), Appendix A
    assert abs(result["lyapunov_learned"] - 0.9056) < 0.15
    assert result["vpt_lyapunov_median"] > 3 and result["attractor_w1"] < 0.25 and result["spectrum_error"] < 0.3
    saved = json.loads((tmp_path / "cells" / "lorenz63__sindy__seed0.json").read_text())
    assert np.isclose(saved["vpt_lyapunov_median"], result["vpt_lyapunov_median"])


def test_leaderboard_cells_survive_huge_values_and_count_infinite_ones():
    assert bench._mean_std(np.array([1e194, 2e194])) == "1.5e+194 ± 5e+193"  # the plain std overflows to inf
    assert bench._mean_std(np.array([1.0, 3.0, np.inf, np.nan])) == "2 ± 1 (+1 ∞)"


def test_a_failed_cells_error_stays_inside_its_leaderboard_row(tmp_path):
    grid = bench.grid_from_names(["van_der_pol"], ["resnet"], [0], 1.0, n=4)
    (tmp_path / "cells").mkdir()
    record = {"system": "van_der_pol", "learner": "resnet", "seed": 0, "error": "ValueError: a | b\nsecond line"}
    (tmp_path / "cells" / "van_der_pol__resnet__seed0.json").write_text(json.dumps(record))
    bench.collect(grid, tmp_path)
    rows = [line for line in (tmp_path / "leaderboard.md").read_text().splitlines() if line.startswith("|")]
    assert len(rows) == 3                               # header, rule, one row: the newline did not end it
    assert rows[2].endswith("| 1: ValueError: a \\| b second line |")


def test_dask_nanny_kill_warning_is_hidden_while_the_cluster_runs():
    import logging

    nanny = logging.getLogger("distributed.nanny")
    before = nanny.level
    with bench.quiet_dask_shutdown():
        assert not nanny.isEnabledFor(logging.WARNING)
    assert nanny.level == before
