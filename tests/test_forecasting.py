"""Statistical backbones (auto-ARIMA, ETS, Theta), their rolling scores, learners and learner='auto'."""
import warnings

import numpy as np
import pytest

import workbench as wb
from workbench.backbones import fit_backbone, forecast_backbone, gaussian_members
from workbench.rolling import naive_scale, rolling_evaluation


def ar1(n=160, phi=0.7, seed=0, level=10.0):
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + rng.standard_normal()
    return level + x


def series_ds(y, val=0.15, test=0.2):
    ds = wb.from_numpy(np.asarray(y)[None, :, None], times=np.arange(len(y), dtype=float), variables=["y"])
    return wb.split_time(ds, val=val, test=test)


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
