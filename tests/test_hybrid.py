"""Hybrids (a learner on a statistical backbone's residuals, Zhang 2003) and their backbone residuals."""
import numpy as np
import pytest

import workbench as wb
from conftest import ar1, series_ds
from workbench.errors import BadParameterError, UnsupportedError
from workbench.evaluation.forecast import rollout_from
from workbench.evaluation import rolling
from workbench.learners.backbones import Backbone, fit_backbone, forecast_backbone, one_step_residuals


def logistic_on_a_trend(n=240, seed=0):
    """A chaotic logistic map (r = 3.8) on a linear trend: the trend is the backbone's, the map is
    what a linear or smoothing model leaves in its errors."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = 0.3
    for i in range(1, n):
        x[i] = 3.8 * x[i - 1] * (1 - x[i - 1])
    return 10 + 2 * x + 0.05 * rng.standard_normal(n) + 0.02 * np.arange(n)


@pytest.mark.parametrize("kind", ["ets", "theta", "arima"])
def test_residuals_are_each_sample_less_its_one_step_forecast_from_the_samples_before(kind):
    y = logistic_on_a_trend(120)
    # ARIMA(1,1,1) with a drift, its parameters given (the order search is tested elsewhere)
    fitted = Backbone("arima", None, {"order": [1, 1, 1]}, np.array([0.02, 0.4, 0.3, 0.25])) if kind == "arima" \
        else fit_backbone(kind, y)
    r = one_step_residuals(fitted, y)
    # ETS estimates its start states on the history it filters: the whole series here, y[:t] there
    tolerance = 0.1 if kind == "ets" else 1e-9
    for t in (30, 77, len(y) - 1):
        assert r[t] == pytest.approx(y[t] - forecast_backbone(fitted, y[:t], 1)[0][0], abs=tolerance)
    # a history that starts 40 samples later gives about the same errors near its end: ETS re-estimates
    # its start states (the fitted ones, 40 samples of a 0.02 trend out of date, were off by ~0.8 here)
    np.testing.assert_allclose(one_step_residuals(fitted, y[40:])[-5:], r[-5:], atol=0.1)


def test_a_hybrid_on_white_noise_residuals_forecasts_the_backbone_and_survives_save(tmp_path):
    # a level plus unit white noise: ETS's level is all there is, what it leaves is the noise
    ds = series_ds(10 + np.random.default_rng(0).standard_normal(400))
    hybrid = wb.fit(ds, learner="nvar", backbone="ets")
    alone = wb.fit(ds, learner="ets")
    caps = hybrid.learner.capabilities()
    assert caps.stochastic and not caps.irregular and not caps.inputs and not caps.has_vector_field
    assert caps.context == alone.learner.capabilities().context
    (values,), times = rolling.series_arrays(ds)
    origins = np.arange(int(np.searchsorted(times, rolling.test_start_time(ds, None))) - 1, len(times) - 1)
    points = {name: rollout_from(m, values, times, origins, 1)[:, 0, 0, 0] for name, m in
              (("hybrid", hybrid), ("alone", alone))}
    # the learner's forecast of white noise is ~0 (a fifth of the noise's unit spread on average), and
    # the hybrid's one-step errors are the backbone's within 5%
    assert np.abs(points["hybrid"] - points["alone"]).mean() < 0.2
    rmse = {name: np.sqrt(np.mean((p - values[origins + 1, 0]) ** 2)) for name, p in points.items()}
    assert abs(rmse["hybrid"] / rmse["alone"] - 1) < 0.05, rmse
    fc = hybrid.forecast(ds, horizon=4, n_samples=50)
    ref = alone.forecast(ds, horizon=4, n_samples=50)
    # a deterministic learner moves every member of the backbone's distribution by its path
    np.testing.assert_allclose(fc["upper_80"] - fc["lower_80"], ref["upper_80"] - ref["lower_80"], rtol=1e-6)
    hybrid.save(tmp_path / "h")
    again = wb.load_model(tmp_path / "h")
    assert again.meta["options"]["learner"] == "nvar" and again.meta["options"]["backbone"] == "ets"
    np.testing.assert_array_equal(again.forecast(ds, horizon=4, n_samples=50)["state"], fc["state"])


@pytest.mark.parametrize("backbone", ["theta", "ets"])
def test_the_learner_forecasts_what_the_backbone_leaves(backbone):
    ds = series_ds(logistic_on_a_trend())
    hybrid = wb.fit(ds, learner="nvar", backbone=backbone)
    alone = wb.fit(ds, learner=backbone)
    (values,), times = rolling.series_arrays(ds)
    origins = np.arange(int(np.searchsorted(times, rolling.test_start_time(ds, None))) - 1, len(times) - 1)
    errors = {name: rollout_from(m, values, times, origins, 1)[:, 0, 0, 0] - values[origins + 1, 0]
              for name, m in (("hybrid", hybrid), ("alone", alone))}
    rmse = {name: float(np.sqrt(np.mean(e ** 2))) for name, e in errors.items()}
    # the map's one-step predictability: the backbone alone errs by its spread (~0.5), the hybrid by far less
    assert rmse["alone"] > 0.4 and rmse["hybrid"] < 0.5 * rmse["alone"], rmse


def test_a_hybrid_refuses_an_unknown_backbone_and_learners_that_cannot_fit_a_series():
    ds = series_ds(ar1(120))
    with pytest.raises(BadParameterError, match="unknown backbone 'sarima'") as info:
        wb.fit(ds, learner="nvar", backbone="sarima")
    assert "arima" in info.value.fix
    with pytest.raises(BadParameterError, match="'auto' cannot be fitted on a backbone's residuals"):
        wb.fit(ds, learner="auto", backbone="ets")
    for learner, why in (("latent_ode", "irregular histories"), ("mechanistic", "named system's equations"),
                         ("hnn", "canonical coordinates")):
        with pytest.raises(UnsupportedError, match=why) as info:
            wb.fit(ds, learner=learner, backbone="theta")
        assert "nvar" in info.value.fix and "backbone='theta'" in info.value.fix
    with pytest.raises(UnsupportedError, match="at least 88 samples") as info:
        wb.fit(series_ds(ar1(60)), learner="nvar", backbone="theta")
    assert "learner='theta'" in info.value.fix
