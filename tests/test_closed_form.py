"""Closed-form learners: SINDy recovers Lorenz-63's equations, NVAR forecasts a linear oscillator,
and every closed-form model survives save -> load unchanged."""
import json
import math
import warnings

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.learners import compatibility
from workbench.errors import BadParameterError, DivergenceError, SolverStallError
from workbench.learners.closed_form import validation_valid_steps
from workbench.learners.reservoir import RIDGE_GRID
from workbench.learners.sindy import SINDy
from workbench.data.realdata import load_real
from workbench.training.prepare import prepare

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
# PySINDy's degree-2 library order: 1, x, y, z, x^2, x y, x z, y^2, y z, z^2
LORENZ = np.zeros((3, 10))
LORENZ[0, [1, 2]] = -SIGMA, SIGMA
LORENZ[1, [1, 2, 6]] = RHO, -1.0, -1.0
LORENZ[2, [3, 5]] = -BETA, 1.0
THRESHOLD = 0.1  # sindy's default STLSQ threshold: every coefficient below it is zeroed


def lorenz_data(noise: float = 0.0, derivative: bool = False):
    return wb.simulate("lorenz63", n=10, t_end=10.0, dt=0.01, seed=0, obs_noise=noise, obs_noise_kind="relative",
                       derivative=derivative)


def assert_recovers_lorenz(model, rel: float) -> None:
    coefficients = model.learner.coefficients.double().numpy()
    true = LORENZ != 0
    np.testing.assert_allclose(coefficients[true], LORENZ[true], rtol=rel)
    assert (coefficients[~true] == 0).all(), f"spurious terms survive: {coefficients[~true]}"


def test_sindy_recovers_lorenz_from_clean_data_within_1_percent():
    model = wb.fit(lorenz_data(), "sindy", threshold=THRESHOLD)
    assert model.history[-1]["degree"] == 2  # degree="auto" keeps the lowest degree that explains the data
    assert_recovers_lorenz(model, 0.01)
    assert model.equations()[0] == "dx/dt = -10 x + 10 y"
    assert model.equations(latex=True)[2] == r"\frac{dz}{dt} = -2.667 z + 1 x y"


def test_sindy_recovers_lorenz_at_1_percent_noise_within_5_percent():
    # observation noise with 1% of each variable's standard deviation; weak form (the default)
    model = wb.fit(lorenz_data(noise=0.01), "sindy", threshold=THRESHOLD)
    assert_recovers_lorenz(model, 0.05)


def test_sindy_uses_stored_derivatives_and_sr3():
    model = wb.fit(lorenz_data(derivative=True), "sindy", optimizer="sr3")
    assert_recovers_lorenz(model, 1e-3)


def test_sindy_ensemble_gives_coefficient_samples_and_spread():
    ds = lorenz_data(noise=0.05)
    model = wb.fit(ds, "sindy", ensemble=8, derivative="smoothed")
    samples = model.learner.coefficient_samples.double().numpy()
    assert samples.shape == (8, 3, 10) and samples.std(0).max() > 0
    pred = model.predict(wb.select_split(ds, "test").isel(time=slice(0, 50)), n_samples=4, seed=0)
    assert pred.sizes["sample"] == 4
    assert float(pred.state.std("sample").isel(time=-1).max()) > 0


def test_nvar_forecasts_a_linear_oscillator_to_1e_6():
    ds = wb.simulate("harmonic_oscillator", n=8, t_end=10.0, dt=0.01, seed=0)
    model = wb.fit(ds, "nvar", precision="float64")
    test = wb.select_split(ds, "test")
    pred = model.predict(test)
    truth = test.state.sel(time=pred.time).values
    assert pred.time.values[0] == pytest.approx(0.01)  # one delay of context: predictions start a step late
    assert np.abs(pred.state.values[0] - truth).max() < 1e-6 * np.abs(truth).max()


@pytest.mark.parametrize("learner, options", [("sindy", {"ensemble": 3}), ("nvar", {"delays": 3}),
                                              ("esn", {"size": 40, "washout": 20})])
def test_save_load_predict_identical(tmp_path, learner, options):
    ds = wb.simulate("lorenz63", n=6, t_end=2.0, dt=0.01, seed=1)
    model = wb.fit(ds, learner, **options)
    model.save(tmp_path / learner)
    loaded = wb.load_model(tmp_path / learner)
    test = wb.select_split(ds, "test")
    a, b = model.predict(test, n_samples=2, seed=3), loaded.predict(test, n_samples=2, seed=3)
    np.testing.assert_array_equal(a.state.values, b.state.values)
    assert np.isfinite(a.state.values).all()


def test_equations_refused_for_learners_without_them():
    model = wb.fit(wb.simulate("van_der_pol", n=4, t_end=1.0, dt=0.1), "resnet", epochs=1)
    with pytest.raises(wb.WorkbenchError, match="sindy"):
        model.equations()


def test_closed_form_learners_refuse_missing_samples():
    ds = wb.simulate("lorenz63", n=4, t_end=1.0, dt=0.01, missing=0.1)
    verdicts = compatibility(ds)
    for name in ("sindy", "nvar", "esn"):
        assert verdicts[name] and "irregular" in verdicts[name]


@pytest.fixture(scope="module")
def rossler():
    return wb.simulate("rossler", n=16, seed=0, split=(0.75, 0.25, 0.0))


@pytest.mark.parametrize("learner", ["nvar", "esn"])
def test_auto_ridge_keeps_the_weight_that_forecasts_the_validation_data_longest(learner, rossler):
    ds = rossler
    val = prepare(ds, torch.device("cpu"))
    options = {"size": 100} if learner == "esn" else {}
    auto = wb.fit(ds, learner, **options)
    chosen = auto.history[-1]["ridge"]
    assert chosen in RIDGE_GRID
    best = validation_valid_steps(auto.learner.float(), val.val, val.times)
    for ridge in (RIDGE_GRID[0], 1e-6, 2.5e-6, RIDGE_GRID[-1]):  # the grid's ends and the published weights
        fixed = wb.fit(ds, learner, ridge=ridge, **options)
        assert fixed.history[-1]["ridge"] == ridge
        assert validation_valid_steps(fixed.learner.float(), val.val, val.times) <= best, (ridge, chosen)


def test_nvar_at_its_published_ridge_runs_away_on_rossler_and_auto_does_not(rossler):
    ds = rossler
    test = wb.simulate("rossler", n=4, seed=1, split=(0.0, 0.0, 1.0))
    published = wb.evaluate(wb.fit(ds, "nvar", ridge=2.5e-6), test, attractor=False)
    auto = wb.evaluate(wb.fit(ds, "nvar"), test, attractor=False)
    assert int(published["diverged_trajectories"]) == 4 and int(auto["diverged_trajectories"]) == 0
    assert float(auto["vpt_lyapunov_median"]) > 10 * float(published["vpt_lyapunov_median"])


def test_auto_ridge_without_validation_data_uses_the_published_weight():
    ds = wb.simulate("lorenz63", n=4, t_end=2.0, dt=0.01, seed=0, split=(1.0, 0.0, 0.0))
    assert wb.fit(ds, "nvar").history[-1]["ridge"] == 2.5e-6


def test_sindy_chooses_degree_3_for_van_der_pol_and_finds_mu_x2_y():
    ds = wb.simulate("van_der_pol", n=16, seed=0)
    mu = json.loads(ds.attrs["params"])["mu"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the chosen library explains the data: no warning
        model = wb.fit(ds, "sindy")
    assert model.history[-1]["degree"] == 3
    names = model.learner.term_names(["x", "y"])
    coefficient = float(model.learner.coefficients[1, names.index("x^2 y")])
    assert coefficient == pytest.approx(-mu, rel=0.05)


def test_sindy_warns_when_a_fixed_degree_cannot_explain_van_der_pol():
    ds = wb.simulate("van_der_pol", n=8, seed=0)
    with pytest.warns(UserWarning, match=r"unexplained.*try degree=3"):
        model = wb.fit(ds, "sindy", degree=2)
    assert model.history[-1]["unexplained"] > 0.2


def test_sindy_rollout_of_a_blowing_up_model_ends_in_a_named_error():
    learner = SINDy(1, degree=2)  # dx/dt = x^2 from x = 1 blows up at t = 1
    learner.coefficients.copy_(torch.tensor([[0.0, 0.0, 1.0]]))
    with pytest.raises((DivergenceError, SolverStallError), match="discovered equations"):
        learner.rollout(torch.ones(1, 1), torch.linspace(0.0, 2.0, 21))


@pytest.fixture(scope="module")
def sunspots_split():
    return wb.split_time(load_real("sunspots"))


def test_esn_defaults_fit_a_time_split_real_series(sunspots_split):
    model = wb.fit(sunspots_split, "esn", size=50)  # chunks of 31 samples: washout follows them
    assert model.learner.options["washout"] == 15
    assert math.isfinite(model.history[-1]["val_loss"])


def test_sindy_fits_a_time_split_real_series_and_says_what_it_cannot_explain(sunspots_split):
    with pytest.warns(UserWarning, match="unexplained.*embed"):
        model = wb.fit(sunspots_split, "sindy", derivative="smoothed")
    assert math.isfinite(model.history[-1]["val_loss"])
    assert model.history[-1]["threshold"] < 0.1  # scaled to the series' slow rate


@pytest.mark.parametrize("ridge", [math.inf, 0.0, -1.0])
def test_reservoir_refuses_a_ridge_that_is_not_finite_and_positive(ridge):
    with pytest.raises(BadParameterError, match="ridge"):
        wb.fit(wb.simulate("lorenz63", n=4, t_end=1.0, dt=0.01), "nvar", ridge=ridge)


def test_a_closed_form_fit_reports_once_to_the_callback_with_its_scores():
    ds = wb.simulate("lorenz63", n=6, t_end=5.0, dt=0.02, seed=0)
    seen = []
    model = wb.fit(ds, "sindy", callback=seen.append)
    assert len(seen) == 1 and seen[0]["epoch"] == 1 and seen[0]["epochs"] == 1
    assert seen[0]["val_loss"] == model.history[-1]["val_loss"] == seen[0]["best_val"]
