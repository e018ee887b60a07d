"""learner='auto': forecast combinations scored on validation origins, and conformal intervals."""
import warnings

import numpy as np
import pytest

import workbench as wb
from conftest import ar1, series_ds
from workbench.errors import BadParameterError
from workbench.training import autoselect
from workbench.evaluation.conformal import conformal_table
from workbench.training.autoselect import combined, cross_fitted, fit_auto, inverse_mse_weights


def rmse(r):
    return np.sqrt(np.mean(r ** 2, axis=(0, 2)))


def test_inverse_mse_combination_of_independent_errors_beats_each_member():
    # two forecasters with independent errors (sd 1 and 1.3): the Bates-Granger weights are
    # ~(0.63, 0.37) and the combination's error variance 1/(1 + 1/1.69) ~ 0.63 < 1
    rng = np.random.default_rng(1)
    a = rng.standard_normal((400, 3, 1))
    b = 1.3 * rng.standard_normal((400, 3, 1))
    scale = np.ones(1)
    weights = inverse_mse_weights([a, b], scale)
    np.testing.assert_allclose(weights.sum(1), 1.0)
    np.testing.assert_allclose(weights[:, 0], 1.69 / 2.69, atol=0.06)
    for mixed in (combined([a, b], weights), cross_fitted([a, b], scale, per_horizon=True)):
        assert (rmse(mixed) < rmse(a)).all() and (rmse(mixed) < rmse(b)).all()
        assert (rmse(mixed) < 0.85).all()
    flat = inverse_mse_weights([a, b], scale, per_horizon=False)
    assert np.allclose(flat, flat[:1])


def test_a_single_candidate_must_beat_the_combination_significantly():
    rng = np.random.default_rng(6)
    keys = np.stack([np.zeros(200, int), np.arange(200)], 1)
    noise = rng.standard_normal((200, 2, 1))

    def entry(residuals, weights):
        return {"score": float(np.sqrt(np.mean(residuals ** 2))), "residuals": residuals, "keys": keys,
                "weights": weights, "members": [("arima", {})]}
    combo = entry(noise, np.full((2, 2), 0.5))
    other = rng.standard_normal((200, 2, 1))
    close = entry(0.97 * other * np.sqrt(np.mean(noise ** 2) / np.mean(other ** 2)), None)  # 3% better: noise
    clear = entry(0.6 * other, None)                                                         # 40% better
    assert close["score"] < combo["score"] and autoselect.preferred([close, combo], np.ones(1), 2) is combo
    assert autoselect.preferred([clear, combo], np.ones(1), 2) is clear
    assert autoselect.preferred([close], np.ones(1), 2) is close


def test_conformal_table_is_symmetric_monotone_and_conservative():
    rng = np.random.default_rng(2)
    residuals = rng.standard_normal((60, 4, 1)) * np.array([1.0, 0.5, 2.0, 3.0])[None, :, None]
    table = np.asarray(conformal_table(residuals))                                  # (H, L, D)
    np.testing.assert_allclose(table, -table[:, ::-1])                             # mirrored about the point
    assert (np.diff(table[:, :, 0], axis=1) >= 0).all()                            # quantiles increase
    upper = table[:, -5, 0]                                                        # level 0.8875: |r| at 77.5%
    assert (np.diff(upper) >= 0).all()                                             # never narrower further out
    assert upper[1] == upper[0]                                                    # h=2's smaller errors pooled up
    # finite-sample level: at least ceil((n + 1) c) / n of |r| at h=1 lies inside
    inside = np.mean(np.abs(residuals[:, 0, 0]) <= upper[0])
    assert inside >= np.ceil(61 * 0.775) / 60 - 1e-12


@pytest.fixture(scope="module")
def auto_pair():
    """The same AR(1) series and one whose test period is wrecked, each through fit_auto with a combination."""
    y = ar1(220, seed=3)
    wrecked = y.copy()
    wrecked[-44:] = 1e6 * np.sign(np.sin(np.arange(44)))                           # the test period only
    fits = []
    for series in (y, wrecked):
        ds = series_ds(series)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append((ds, fit_auto(ds, candidates=[("arima", {}), ("theta", {}), ("nvar", {"delays": 2})],
                                      combine=True, time_budget=60)))
    return fits


def test_combinations_are_candidates_scored_on_validation_origins_only(auto_pair):
    (ds, model), (_, wrecked) = auto_pair
    table = model.selection
    combos = [r for r in table if r["learner"] == "combination"]
    assert {r["rule"].split(",")[0] for r in combos} == {"equal weights of the backbones",
                                                         "inverse validation MSE"}
    for row in combos:
        weights = np.asarray(row["options"]["weights"])
        assert weights.shape[1] == len(row["options"]["members"])
        np.testing.assert_allclose(weights.sum(1), 1.0)
        assert np.isfinite(row["score"])
    chosen = [r for r in table if r.get("chosen")]
    lowest = min(r["score"] for r in table if r["status"] == "ok")
    # the lowest score, or the best combination when no single candidate beats it significantly
    assert len(chosen) == 1 and (chosen[0]["score"] == lowest or
                                 chosen[0]["score"] == min(r["score"] for r in combos))
    assert model.name == chosen[0]["learner"]
    assert model.meta["auto"]["why"].startswith("the lowest" if chosen[0]["score"] == lowest else "the best comb")
    # the test period never enters: wrecking it changes no score, weight or calibration quantile
    for mine, other in zip(table, wrecked.selection):
        assert mine["score"] == other["score"] and mine["options"] == other["options"]
    assert model.meta["calibration"]["quantiles"] == wrecked.meta["calibration"]["quantiles"]


def test_combination_model_forecasts_and_round_trips(auto_pair, tmp_path):
    (ds, _), _ = auto_pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        members = [wb.fit(ds, learner=name) for name in ("arima", "theta")]
    model = autoselect.assemble(members, np.array([[0.25, 0.75], [0.6, 0.4]]))
    fc = model.forecast(ds, horizon=3)
    parts = [m.forecast(ds, horizon=3)["state"].values for m in members]
    steps = fc["state"].values
    # step 1 takes row 0, steps 2-3 the last row (float32 models: rounding only)
    np.testing.assert_allclose(steps[..., 0, :], 0.25 * parts[0][..., 0, :] + 0.75 * parts[1][..., 0, :], rtol=1e-5)
    np.testing.assert_allclose(steps[..., 2, :], 0.6 * parts[0][..., 2, :] + 0.4 * parts[1][..., 2, :], rtol=1e-5)
    model.save(tmp_path / "combo")
    loaded = wb.load_model(tmp_path / "combo")
    assert loaded.name == "combination" and loaded.learner.options["weights"] == [[0.25, 0.75], [0.6, 0.4]]
    np.testing.assert_array_equal(loaded.forecast(ds, horizon=3)["state"].values, steps)
    scores = wb.evaluate(loaded, ds, mode="rolling", horizons=[1, 2])
    assert np.isfinite(scores["rmse"].values).all()


def test_combination_fits_directly_and_refuses_bad_weights():
    ds = series_ds(ar1(120, seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = wb.fit(ds, learner="combination", members=[{"learner": "arima"}, {"learner": "theta"}],
                       weights=[0.5, 0.5])
        single = wb.fit(ds, learner="theta")
    assert [m["learner"] for m in model.learner.options["members"]] == ["arima", "theta"]
    np.testing.assert_allclose(model.learner.members[1].coef.numpy(), single.learner.coef.numpy())
    with pytest.raises(BadParameterError, match="summing to 1"):
        wb.fit(ds, learner="combination", members=[{"learner": "arima"}, {"learner": "theta"}], weights=[0.9, 0.3])


def test_conformal_80_interval_covers_about_80_percent_on_a_long_ar_series():
    ds = series_ds(ar1(1000, phi=0.8, seed=5), val=0.1, test=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_auto(ds, candidates=[("arima", {})], horizon=4, time_budget=60)
        scores = wb.evaluate(model, ds, mode="rolling", horizons=[1, 2, 4], n_samples=50)
    assert model.meta["calibration"]["origins"] >= 100
    coverage = scores["coverage"].values.ravel()
    assert ((coverage > 0.7) & (coverage < 0.9)).all(), coverage


def test_a_handful_of_overlapping_origins_is_little_or_no_evidence_for_a_single_candidate():
    # Harvey, Leybourne & Newbold's small-sample factor (n + 1 - 2h + h(h - 1)/n) / n: 0.89 for 9
    # one-step origins, 0.025 for 9 origins of 8 steps, 0 for 8 of 8 (no evidence however clear)
    def entry(residuals, weights):
        keys = np.stack([np.zeros(len(residuals), int), np.arange(len(residuals))], 1)
        return {"score": float(np.sqrt(np.mean(residuals ** 2))), "residuals": residuals, "keys": keys,
                "weights": weights, "members": [("nvar", {})]}
    rng = np.random.default_rng(0)
    combo = entry(rng.standard_normal((9, 8, 1)), np.full((8, 2), 0.5))
    single = entry(0.7 * rng.standard_normal((9, 8, 1)), None)
    assert autoselect.preferred([single, combo], np.ones(1), 1) is single
    assert autoselect.preferred([single, combo], np.ones(1), 8) is combo
    noise = 1 + 0.1 * rng.standard_normal((8, 8, 1))
    combo, single = entry(noise, np.full((8, 2), 0.5)), entry(0.6 * noise, None)     # better at every origin
    assert autoselect.preferred([single, combo], np.ones(1), 1) is single
    assert autoselect.preferred([single, combo], np.ones(1), 8) is combo


def test_a_nonlinear_learner_joins_only_where_it_beats_the_linear_autoregression():
    def entry(name, options, residuals):
        keys = np.stack([np.zeros(len(residuals), int), np.arange(len(residuals))], 1)
        return {"score": float(np.sqrt(np.mean(residuals ** 2))), "residuals": residuals, "keys": keys,
                "weights": None, "members": [(name, options)]}
    rng = np.random.default_rng(3)
    base = rng.standard_normal((120, 4, 1))
    ar = entry("nvar", {"degree": 1, "delays": 3}, base)
    lucky = entry("nvar", {"delays": 2}, 0.97 * rng.standard_normal((120, 4, 1)))     # lower score by chance
    real = entry("esn", {}, 0.5 * rng.standard_normal((120, 4, 1)))                   # clearly better
    theta = entry("theta", {}, 1.2 * base)                                            # linear: always stays
    scored = [ar, lucky, real, theta]
    table = [{"learner": e["members"][0][0], "status": "ok"} for e in scored]
    kept = autoselect.admit_nonlinear(table, scored, np.ones(1), 4)
    assert lucky["score"] < ar["score"]
    assert kept == [ar, real, theta]
    assert table[1]["status"].startswith("not admitted") and table[2]["status"] == "ok"
    assert autoselect.admit_nonlinear(table[1:], scored[1:], np.ones(1), 4) == scored[1:]   # no AR: all stay
    # on a series that is not level-stationary no nonlinear learner is admitted, however good
    table = [{"learner": e["members"][0][0], "status": "ok"} for e in scored]
    assert autoselect.admit_nonlinear(table, scored, np.ones(1), 4, stationary=False) == [ar, theta]
    assert "level-stationary" in table[2]["status"]


def test_kpss_finds_a_trend_and_a_random_walk_not_level_stationary_and_an_ar1_stationary():
    rng = np.random.default_rng(0)
    t = np.arange(200.0)
    assert autoselect.level_stationary([ar1(200)[:, None]], differenced=False)
    assert not autoselect.level_stationary([(0.05 * t + rng.standard_normal(200))[:, None]], differenced=False)
    walk = np.cumsum(rng.standard_normal(400))[:, None]
    assert not autoselect.level_stationary([walk], differenced=False)
    assert autoselect.level_stationary([walk], differenced=True)          # its increments are
