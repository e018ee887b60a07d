"""Statistical backbones (auto-ARIMA, ETS, Theta), their rolling scores, learners and learner='auto'."""
import warnings

import numpy as np
import pytest

import workbench as wb
from conftest import ar1, series_ds
from workbench.learners.backbones import fit_backbone, forecast_backbone, gaussian_members
from workbench.evaluation.rolling import naive_scale


def test_arima_forecast_matches_statsmodels_with_the_chosen_order():
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = ar1()
    fitted = fit_backbone("arima", y)
    assert fitted.spec["order"][1] == 0  # KPSS: stationary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SARIMAX(y, order=tuple(fitted.spec["order"]), trend="c").fit(disp=False).get_forecast(4)
    mean, sd = forecast_backbone(fitted, y, 4)
    np.testing.assert_allclose(mean, ref.predicted_mean, rtol=1e-6)
    np.testing.assert_allclose(sd, np.sqrt(ref.var_pred_mean), rtol=1e-6)


def test_theta_matches_statsmodels_theta_model():
    from statsmodels.tsa.forecasting.theta import ThetaModel

    y = np.cumsum(ar1(level=0.0)) + 0.2 * np.arange(160)
    fitted = fit_backbone("theta", y)
    mean, sd = forecast_backbone(fitted, y, 5)
    ref = ThetaModel(y, deseasonalize=False).fit()
    np.testing.assert_allclose(mean, ref.forecast(5), rtol=1e-6)


def test_gaussian_members_have_the_mean_exactly_and_80pct_inside():
    members = gaussian_members(np.array([1.0, 2.0]), np.array([1.0, 3.0]), 100)
    np.testing.assert_allclose(members.mean(0), [1.0, 2.0], atol=1e-12)
    inside = (np.abs(members - [1.0, 2.0]) <= 1.2816 * np.array([1.0, 3.0])).mean(0)
    np.testing.assert_allclose(inside, 0.8, atol=0.011)


def test_naive_scale_is_the_in_sample_naive_mae():
    y = np.array([[1.0], [3.0], [2.0], [np.nan], [5.0]])
    np.testing.assert_allclose(naive_scale([y]), [1.5])
    np.testing.assert_allclose(naive_scale([y], season=2), [2.0])  # |2 - 1| and |5 - 2|; the gap is skipped


def test_arima_learner_forecasts_like_the_arima_baseline_and_survives_save(tmp_path):
    ds = series_ds(ar1(120))
    model = wb.fit(ds, learner="arima")
    fc = model.forecast(ds, horizon=3, n_samples=20)
    assert {"lower_80", "upper_80"} <= set(fc.data_vars)
    assert (fc["lower_80"] < fc["state"].mean("sample")).all() and (fc["upper_80"] > fc["state"].mean("sample")).all()
    scores = wb.evaluate(model, ds, mode="rolling", horizons=[1, 2])
    # same structure fitted on the same history (standardised or not): the same forecasts
    np.testing.assert_allclose(scores["rmse"], scores["rmse_arima"], rtol=1e-3)
    assert {"mase", "coverage", "crps", "rmse_skill_vs_best", "rmse_skill_vs_theta"} <= set(scores.data_vars)
    model.save(tmp_path / "m")
    again = wb.load_model(tmp_path / "m").forecast(ds, horizon=3, n_samples=20)
    np.testing.assert_allclose(again["state"], fc["state"], rtol=1e-6)


def test_calibrated_samples_are_the_point_plus_residual_quantiles():
    from workbench.evaluation.conformal import calibrated

    table = np.linspace(-1, 1, 4)[None, :, None].repeat(2, axis=0) * np.array([1.0, 2.0])[:, None, None]
    paths = np.full((1, 1, 3, 1), 5.0)
    out = calibrated(paths, table, 4)
    np.testing.assert_allclose(out[0, :, 0, 0], 5 + np.linspace(-1, 1, 4))
    np.testing.assert_allclose(out[0, :, 2, 0], 5 + 2 * np.linspace(-1, 1, 4))  # past the table: its last horizon
    np.testing.assert_allclose(calibrated(paths, table, 1)[0, 0, :, 0], 5.0)


def test_auto_chooses_on_validation_records_the_table_and_calibrates():
    from workbench.training.autoselect import fit_auto

    ds = series_ds(ar1(140))
    model = fit_auto(ds, candidates=[("arima", {}), ("nvar", {"delays": 2}), ("nvar", {"delays": 1000})])
    table = model.meta["selection"]
    assert [r["learner"] for r in table] == ["arima", "nvar", "nvar"]
    assert table[2]["status"].startswith("rejected")
    ok = [r for r in table if r["status"] == "ok"]
    chosen = [r for r in table if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["score"] == min(r["score"] for r in ok)
    assert model.name == chosen[0]["learner"]
    quantiles = np.asarray(model.meta["calibration"]["quantiles"])
    assert quantiles.shape[1:] == (40, 1) and (np.diff(quantiles[:, :, 0], axis=1) >= 0).all()
    fc = model.forecast(ds, horizon=4, n_samples=50)
    width = (fc["upper_80"] - fc["lower_80"]).values.ravel()
    assert (width > 0).all()


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 1, 1), (0, 1, 2), (2, 2, 1)])
def test_numpy_arima_forecast_is_the_kalman_filter_forecast(order):
    # the rolling evaluation forecasts from every origin: the held-parameter forecast runs in numpy
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    from workbench.learners.backbones import MAX_FILTER_SAMPLES, _arima_forecast

    rng = np.random.default_rng(0)
    e, y = rng.normal(size=800), np.zeros(800)
    for t in range(2, 800):
        y[t] = 0.5 * y[t - 1] - 0.2 * y[t - 2] + e[t] + 0.3 * e[t - 1] + 0.1
    for _ in range(order[1]):
        y = np.cumsum(y) / 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = SARIMAX(y, order=order, trend="c").fit(disp=False)
    reference = result.get_forecast(12)
    mean, var = _arima_forecast(y[-MAX_FILTER_SAMPLES:], order, np.asarray(result.params), 12)
    np.testing.assert_allclose(mean, reference.predicted_mean, rtol=1e-9, atol=1e-9 * np.std(y))
    np.testing.assert_allclose(var, reference.var_pred_mean, rtol=1e-9)


def test_an_ma_root_near_the_unit_circle_forecasts_the_same_from_any_history_start():
    # ARIMA(1,1,1) on a level series fits theta ~ -0.99: conditional innovations never forget their zero
    # start, so such a model goes through the exact filter (a forecast moved 524-968 with the start before)
    from workbench.learners.backbones import Backbone

    rng = np.random.default_rng(3)
    y = 900 + np.cumsum(rng.normal(0, 5, 80)) * 0.1 + rng.normal(0, 120, 80)
    fitted = Backbone("arima", None, {"order": [1, 1, 1]}, np.array([-2.76, 0.34, -0.9896, 19493.0]))
    starts = [forecast_backbone(fitted, y[s:], 3)[0] for s in (0, 1, 2, 5)]
    spread = np.ptp(np.stack(starts), axis=0)
    assert (spread < 0.02 * np.std(y)).all()


def test_auto_fills_the_gaps_of_a_measured_series_for_the_learners_that_need_a_grid():
    # Mauna Loa CO2 misses 59 weeks: every candidate was refused, reported as "diverged" (QA run)
    from workbench.data.realdata import load_real

    co2 = wb.split_time(load_real("co2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = wb.fit(co2, learner="auto", time_budget="1m")
    ok = [row for row in model.selection if row["status"] == "ok"]
    assert {"arima", "nvar"} <= {row["learner"] for row in ok}
    assert sum(row.get("chosen", False) for row in model.selection) == 1
    # the linear AR candidate: a weekly series with a yearly cycle needs a long order
    linear = [row for row in ok if row["learner"] == "nvar" and row["options"].get("degree") == 1]
    assert len(linear) == 1 and linear[0]["options"]["delays"] >= 10


def test_the_linear_ar_candidate_takes_the_order_aic_picks():
    from workbench.evaluation.baselines import AR
    from workbench.training.autoselect import linear_autoregression

    rng = np.random.default_rng(3)
    y = np.zeros(600)
    for k in range(3, 600):
        y[k] = 0.5 * y[k - 1] - 0.3 * y[k - 2] + 0.4 * y[k - 3] + rng.standard_normal()
    name, options = linear_autoregression([y[:, None]], np.arange(600.0))
    assert name == "nvar" and options["degree"] == 1
    assert options["delays"] == AR().fit([y[:, None]], np.arange(600.0)).order
    assert 3 <= options["delays"] <= 6     # AIC finds the three lags (it may add one or two, never drop one)
    assert linear_autoregression([y[:3, None]], np.arange(3.0)) == ("nvar", {"degree": 1, "delays": 1})


def test_ets_forecasts_the_same_from_a_history_that_starts_later():
    # a near-deterministic trend (ETS's smoothing weights fit to ~0): start states fitted at the series'
    # start and carried to a window 40 samples later were off by the trend since then (0.8 here)
    rng = np.random.default_rng(0)
    y = 10 + 0.02 * np.arange(120) + 0.3 * rng.standard_normal(120)
    fitted = fit_backbone("ets", y)
    full, _ = forecast_backbone(fitted, y, 3)
    later, _ = forecast_backbone(fitted, y[40:], 3)
    np.testing.assert_allclose(later, full, atol=0.1)
    np.testing.assert_allclose(full, 10 + 0.02 * np.arange(120, 123), atol=0.15)
