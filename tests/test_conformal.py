"""Conformal intervals per horizon and their online update (workbench.evaluation.conformal)."""
import warnings

import numpy as np
import pytest

import workbench as wb
from conftest import ar1, series_ds
from workbench.training.autoselect import fit_auto
from workbench.evaluation import conformal
from workbench.evaluation.conformal import calibrated, conformal_table, online_tables


def _setting(window=10, horizon=2):
    """Calibration residuals of size 1 fitted up to t = 19; the series' errors are 3 from t = 20 on
    (a zero point forecast against values of +-3)."""
    signs = np.where(np.arange(window) % 2, 1.0, -1.0)
    residuals = np.repeat(signs[:, None, None], horizon, axis=1)           # (N, H, 1), |r| = 1
    times = np.arange(60.0)
    values = np.where(np.arange(60) % 2, 3.0, -3.0)[:, None]
    calibration = {"residuals": residuals.tolist(), "window": window, "fitted_until": 19.0}

    def zero_points(origins, steps):
        return np.zeros((len(origins), steps, 1))

    return calibration, zero_points, values, times


def test_the_window_takes_the_errors_observed_since_the_fit_and_forgets_the_old_ones(monkeypatch):
    monkeypatch.setattr(conformal, "ADAPTATION_RATE", 0.0)      # the window alone
    calibration, points, values, times = _setting()
    tables = online_tables(calibration, points, values, times, np.array([10, 19, 45]))
    upper = tables[:, :, -1, 0]                              # the highest stored level, by horizon
    np.testing.assert_array_equal(upper[0], 1.0)             # before the end of the fit: as calibrated
    np.testing.assert_array_equal(upper[1], 1.0)             # at the last fitted sample: nothing new yet
    np.testing.assert_array_equal(upper[2], 3.0)             # the window holds only the new residuals
    np.testing.assert_array_equal(tables[2, :, 0, 0], -3.0)  # mirrored about the point
    np.testing.assert_array_equal(tables[0], conformal_table(np.asarray(calibration["residuals"])))


def test_nothing_after_the_origin_enters_its_interval():
    calibration, points, values, times = _setting()
    origins = np.array([22, 30])
    before = online_tables(calibration, points, values, times, origins)
    changed = values.copy()
    changed[31:] = 100.0                                     # after the last origin
    changed[23:30] = 50.0                                    # after the first origin, before the second
    after = online_tables(calibration, points, changed, times, origins)
    np.testing.assert_array_equal(after[0], before[0])
    assert not np.array_equal(after[1], before[1])


@pytest.mark.parametrize("spread_after_fit, lowest, highest", [(1.0, 0.75, 0.85), (2.0, 0.75, 0.85)])
def test_the_scale_brings_the_central_interval_to_its_level_after_a_change_in_spread(spread_after_fit, lowest,
                                                                                     highest):
    # a window far longer than the test keeps the calibration's scores: only the scale can adapt
    rng = np.random.default_rng(0)
    calibration = {"residuals": rng.standard_normal((5000, 1, 1)).tolist(), "window": 5000, "fitted_until": 0.0}
    values = np.concatenate([[0.0], spread_after_fit * rng.standard_normal(1200)])[:, None]
    times = np.arange(len(values), dtype=float)
    origins = np.arange(600, 1200)

    def zero_points(earlier, steps):
        return np.zeros((len(earlier), steps, 1))

    radius = conformal.upper_radius(np.moveaxis(online_tables(calibration, zero_points, values, times, origins),
                                                0, 1)[0])[:, 0]
    covered = np.abs(values[origins + 1, 0]) <= radius
    static = np.abs(values[origins + 1, 0]) <= conformal.upper_radius(conformal_table(
        np.asarray(calibration["residuals"])))[0, 0]
    assert lowest <= covered.mean() <= highest, covered.mean()
    if spread_after_fit > 1:  # without the scale the interval would hold about half the outcomes
        assert static.mean() < 0.6


def test_a_per_origin_table_moves_only_its_own_origin():
    table = np.linspace(-1, 1, 40)[None, :, None].repeat(2, axis=0)
    tables = np.stack([table, 2 * table])
    paths = np.zeros((2, 1, 2, 1))
    out = calibrated(paths, tables, 40)
    np.testing.assert_allclose(out[1], 2 * out[0])
    np.testing.assert_allclose(out[0, :, 0, 0], np.linspace(-1, 1, 40))


def test_auto_calibrates_on_more_origins_than_it_selects_on_and_keeps_the_residuals():
    ds = series_ds(ar1(300, phi=0.7, seed=3), val=0.1, test=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_auto(ds, candidates=[("nvar", {"delays": 2}), ("theta", {})])
    calibration = model.meta["calibration"]
    selection_origins = 0.2 * 240
    assert calibration["origins"] >= 2 * selection_origins          # half of the 240 pre-test samples
    assert np.asarray(calibration["residuals"]).shape == (calibration["origins"], 8, 1)
    assert calibration["fitted_until"] < float(wb.data.splits.time_split_info(ds)["test_start"])


def test_a_forecast_far_past_the_fit_replays_a_bounded_stretch_of_outcomes():
    calibration, _, _, _ = _setting(window=10)
    values = np.where(np.arange(2000) % 2, 3.0, -3.0)[:, None]
    times = np.arange(2000.0)
    asked = []

    def counting_points(origins, steps):
        asked.append(len(origins))
        return np.zeros((len(origins), steps, 1))

    tables = online_tables(calibration, counting_points, values, times, np.array([1990]))
    assert asked == [conformal.LOOKBACK * 10]           # not the 1,970 samples since the fit
    assert tables[0, :, -1, 0].max() >= 2.9             # the window holds the errors of size 3
