"""What the app shows (workbench.evaluation.fields, .holdout, .climate; app/format.py; content keys), checked
against analytic fields, metrics and known data."""
import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import workbench as wb
from workbench import demo
from workbench.data import schema
from workbench.evaluation import climate, fields, holdout, metrics
from workbench.errors import DatasetError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import format as fmt  # noqa: E402  (the app folder is not a package)


@pytest.fixture(scope="module")
def oscillator():
    # omega = 2: true field (p, -4 q)
    return wb.simulate("harmonic_oscillator", n=8, t_end=2.0, dt=0.1, seed=0, params={"omega": 2.0})


class FieldModel:
    """A stand-in for a fitted model whose learned drift is a known function (duck-typed Model)."""

    def __init__(self, variables, field):
        self.variables, self.field = list(variables), field

    def vector_field(self, x):
        return self.field(np.asarray(x, dtype=float))


def exact_field(x):
    return np.stack([x[:, 1], -4.0 * x[:, 0]], axis=1)


def test_content_key_follows_content_not_identity(oscillator, tmp_path):
    key = schema.content_key(oscillator)
    assert key == schema.content_key(oscillator.copy(deep=True))
    assert key == schema.content_key(wb.load(wb.save(oscillator, tmp_path / "osc.h5")))
    nudged = oscillator.copy(deep=True)
    nudged["state"].values[3, 5, 1] += 1e-12
    resplit = oscillator.assign_coords(split=("trajectory", ["test"] * oscillator.sizes["trajectory"]))
    retitled = oscillator.assign_attrs(title="something else")
    shifted = oscillator.assign_coords(time=oscillator["time"] + 1.0)
    keys = {key, *(schema.content_key(d) for d in (nudged, resplit, retitled, shifted))}
    assert len(keys) == 5


def test_model_key_follows_weights(tmp_path):
    from workbench.demo import demo_paths

    model = wb.load_model(demo_paths("ode")[1], device="cpu")
    key = demo.model_key(model)
    assert key == demo.model_key(wb.load_model(model.save(tmp_path / "m"), device="cpu"))
    first = next(model.learner.parameters())
    with torch.no_grad():
        first.view(-1)[0] += 1e-6
    assert demo.model_key(model) != key


def test_field_on_grid_matches_the_analytic_field(oscillator):
    grid = fields.field_on_grid(FieldModel(["q", "p"], exact_field), oscillator, 0, 1, n=7)
    q, p = np.meshgrid(grid["grid_x"].values, grid["grid_y"].values)
    np.testing.assert_allclose(grid["true_drift"].sel(variable="q"), p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grid["true_drift"].sel(variable="p"), -4.0 * q, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grid["error"], 0.0, atol=1e-12)
    np.testing.assert_allclose(grid["speed_true"], np.hypot(p, 4.0 * q), rtol=1e-12)
    observed = oscillator["state"].values.reshape(-1, 2)
    assert grid["grid_x"].values[[0, -1]] == pytest.approx([observed[:, 0].min(), observed[:, 0].max()])
    assert (grid.attrs["horizontal"], grid.attrs["vertical"]) == ("q", "p")


def test_field_error_is_per_point_and_agrees_with_the_metric(oscillator):
    # learned = true + (1, 0): error at a point = 1 / RMS|f_true|; its RMS over the grid = vector_field_error
    grid = fields.field_on_grid(FieldModel(["q", "p"], lambda x: exact_field(x) + np.array([1.0, 0.0])),
                               oscillator, 0, 1, n=9)
    true = grid["true_drift"].values.reshape(-1, 2)
    rms_true = np.sqrt(np.mean(np.sum(true ** 2, axis=1)))
    np.testing.assert_allclose(grid["error"], 1.0 / rms_true, rtol=1e-12)
    learned = grid["learned_drift"].values.reshape(-1, 2)
    assert np.sqrt(np.mean(grid["error"].values ** 2)) == pytest.approx(
        float(metrics.vector_field_error(learned, true)), rel=1e-12)
    assert grid.attrs["vector_field_error"] == pytest.approx(float(metrics.vector_field_error(learned, true)))


def test_field_on_grid_slices_higher_dimensions_at_the_mean():
    ds = wb.simulate("lorenz63", n=4, t_end=1.0, dt=0.05, seed=0)
    grid = fields.field_on_grid(FieldModel(["x", "y", "z"], lambda x: np.zeros_like(x)), ds, 0, 2, n=5)
    z_mean = float(ds["state"].sel(variable="y").mean())
    assert json.loads(grid.attrs["slice"]) == {"y": pytest.approx(z_mean)}
    # lorenz dx/dt = sigma (y - x) with y fixed at its mean
    x = grid["grid_x"].values[None, :]
    np.testing.assert_allclose(grid["true_drift"].sel(variable="x"), np.broadcast_to(10.0 * (z_mean - x), (5, 5)),
                               rtol=1e-10)


def test_field_on_grid_without_a_known_system_has_only_the_learned_field(oscillator):
    imported = oscillator.assign_attrs(system="")
    grid = fields.field_on_grid(FieldModel(["q", "p"], exact_field), imported, 0, 1, n=4)
    assert "true_drift" not in grid and "error" not in grid and "learned_drift" in grid


@pytest.mark.parametrize("bad", [dict(i=0, j=0), dict(i=0, j=5), dict(i=0, j=1, n=1)])
def test_field_on_grid_refuses_bad_requests(oscillator, bad):
    with pytest.raises(wb.WorkbenchError):
        fields.field_on_grid(FieldModel(["q", "p"], exact_field), oscillator, **{"n": 4, **bad})


def test_field_on_grid_refuses_a_model_of_other_variables(oscillator):
    with pytest.raises(DatasetError, match="pick a dataset"):
        fields.field_on_grid(FieldModel(["x", "y"], exact_field), oscillator, 0, 1)


def ensemble(members, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    dims = ("trajectory", "time", "variable")
    truth = xr.DataArray(rng.standard_normal((n, 2, 1)), dims=dims)
    pred = xr.DataArray(rng.standard_normal((members, n, 2, 1)), dims=("sample",) + dims)
    return pred, truth


def test_calibration_curve_equals_coverage_level_by_level():
    pred, truth = ensemble(8, n=300)
    levels = [0.2, 0.5, 0.9]
    curve = fields.calibration_curve(pred, truth, levels)
    expected = [float(metrics.coverage(pred, truth, level, over="all")) for level in levels]
    np.testing.assert_allclose(curve.values, expected, rtol=1e-12)
    assert list(curve["level"].values) == levels


@pytest.mark.parametrize("members", [8, 32])
def test_calibration_curve_of_a_calibrated_ensemble_is_the_diagonal(members):
    pred, truth = ensemble(members)
    curve = fields.calibration_curve(pred, truth)
    # 8000 independent truths: binomial standard error <= 0.0056
    np.testing.assert_allclose(curve.values, curve["level"].values, atol=0.025)


def test_fan_quantiles_bracket_the_samples():
    pred, _ = ensemble(99, n=3)
    q = fields.fan_quantiles(pred, [0.05, 0.5, 0.95])
    ordered = np.sort(pred.values, axis=0)
    # Weibull positions: with 99 members, quantile k/100 is the k-th order statistic
    np.testing.assert_allclose(q.sel(quantile=0.05), ordered[4])
    np.testing.assert_allclose(q.sel(quantile=0.95), ordered[94])


def test_describe_states_units_split_and_ranges():
    ds = wb.simulate("damped_pendulum", n=16, t_end=2.0, dt=0.1, seed=0)
    overview, table = fmt.describe(ds)
    facts = dict(zip(overview["property"], overview["value"]))
    assert facts["source"] == "damped_pendulum"
    assert facts["time span"] == "0 to 2 s" and facts["sampling step"] == "0.1 s"
    counts = {s: int((ds["split"].values == s).sum()) for s in ("train", "val", "test")}
    assert facts["split (trajectories)"] == f"train {counts['train']}, val {counts['val']}, test {counts['test']}"
    assert list(table["unit"]) == ["rad", "rad/s"]
    theta = ds["state"].sel(variable=ds["variable"].values[0]).values
    assert table["max"][0] == pytest.approx(theta.max()) and table["mean"][0] == pytest.approx(theta.mean())


def test_describe_imported_data_without_units(tmp_path):
    path = tmp_path / "my.csv"
    path.write_text("trajectory,time,a\n0,0.0,1.0\n0,1.0,3.0\n1,0.0,2.0\n")
    overview, table = fmt.describe(wb.from_csv(path))
    facts = dict(zip(overview["property"], overview["value"]))
    assert "my" in facts["source"] and facts["observed samples"] == "75.0%"
    assert facts["kind"] == "measured or imported"
    assert table["mean"][0] == pytest.approx(2.0) and table["max"][0] == pytest.approx(3.0)


def test_unit_labels():
    assert fmt.unit_label("theta", "rad") == "theta [rad]"
    assert fmt.unit_label("x", "1") == "x [dimensionless]"
    assert fmt.unit_label("x", None) == "x"


def test_facts_table_is_readable_text():
    table = fmt.facts_table(wb.system("lorenz63").facts, "1")
    facts = dict(zip(table["fact"], table["value"]))
    assert facts["chaotic"] == "yes" and facts["max lyapunov exponent"] == "0.9056 per time unit"
    assert facts["lyapunov time"] == "1.104 time units"
    assert dict(zip(*fmt.facts_table({"lyapunov_time": 2.0}, "s").values.T))["lyapunov time"] == "2 s"


class RecordingForecaster:
    """Stands in for a model: records what it is asked to forecast and returns a constant forecast."""

    variables = ["y"]

    def forecast(self, ds, horizon, n_samples=1, seed=0, origin=None):
        self.asked = (horizon, n_samples, origin)
        return xr.Dataset({"state": (("sample", "trajectory", "time", "variable"), np.zeros((n_samples, 1, horizon, 1)))})


def series_split(n=100):
    t = np.arange(n, dtype=float)
    ds = wb.from_numpy(np.sin(t / 5.0)[None, :, None], t, ["y"])
    return wb.split_time(ds, val=0.1, test=0.2)


def test_holdout_forecast_starts_at_the_test_period_and_spans_it():
    ds = series_split()
    start, samples = holdout.test_period(ds)
    assert samples == int((ds["time"].values >= start).sum()) == 20
    model = RecordingForecaster()
    series, forecast = holdout.holdout_forecast(model, ds, n_samples=3)
    assert model.asked == (20, 3, "test")
    np.testing.assert_allclose(series["state"].values[0, :, 0], np.sin(np.arange(100) / 5.0))
    assert holdout.forecast_horizons(ds) == [1, 2, 4, 8]


def test_forecasts_need_a_time_split(oscillator):
    assert holdout.test_period(oscillator) is None
    with pytest.raises(DatasetError, match="time split"):
        holdout.holdout_forecast(RecordingForecaster(), oscillator)
    with pytest.raises(DatasetError, match="time split"):
        holdout.forecast_horizons(oscillator)


# --- discovered equations and long runs ------------------------------------------------------------

@pytest.fixture(scope="module")
def lorenz_data():
    return wb.simulate("lorenz63", n=12, t_end=6.0, dt=0.02, seed=0, split=(0.5, 0.0, 0.5))


@pytest.fixture(scope="module")
def lorenz_sindy(lorenz_data):
    return wb.fit(lorenz_data, "sindy", progress=False)


def with_coefficients(model, coefficients):
    """A copy of a sindy model whose coefficient matrix is replaced."""
    other = copy.deepcopy(model)
    other.learner.coefficients.copy_(torch.as_tensor(coefficients))
    return other


# Lorenz-63 at sigma = 10, rho = 28, beta = 8/3 on the polynomial library of degree 2 (terms in
# PySINDy's order 1, x, y, z, x^2, x y, x z, y^2, y z, z^2), written out by hand
LORENZ_TRUE = np.zeros((3, 10))
LORENZ_TRUE[0, [1, 2]] = [-10.0, 10.0]
LORENZ_TRUE[1, [1, 2, 6]] = [28.0, -1.0, -1.0]
LORENZ_TRUE[2, [3, 5]] = [-8.0 / 3.0, 1.0]


def test_equation_comparison_recovers_the_hand_written_coefficients(lorenz_sindy):
    exact = with_coefficients(lorenz_sindy, LORENZ_TRUE)
    comparison = fields.equation_comparison(exact, wb.system("lorenz63"), {})
    assert list(comparison["term"].values) == ["1", "x", "y", "z", "x^2", "x y", "x z", "y^2", "y z", "z^2"]
    np.testing.assert_allclose(comparison["true"].values, LORENZ_TRUE, atol=1e-9)
    assert comparison.attrs["representable"] and comparison.attrs["residual"] < 1e-10
    assert comparison.attrs["spurious_terms"] == 0
    assert comparison.attrs["max_relative_error"] < 1e-6  # float32 storage of the learned coefficients


def test_equation_comparison_measures_a_known_error_and_a_spurious_term(lorenz_sindy):
    wrong = LORENZ_TRUE.copy()
    wrong[1, 1] = 28.0 * 1.03  # 3% off
    wrong[0, 0] = 0.5  # a constant that the truth does not have
    comparison = fields.equation_comparison(with_coefficients(lorenz_sindy, wrong), wb.system("lorenz63"), {})
    assert float(comparison["relative_error"].sel(variable="y", term="x")) == pytest.approx(0.03, rel=1e-5)
    assert comparison.attrs["spurious_terms"] == 1
    table = fmt.coefficient_table(comparison)
    assert len(table) == 8 and set(table["equation"]) == {"dx/dt", "dy/dt", "dz/dt"}


def test_equation_comparison_uses_the_true_parameters(lorenz_sindy):
    comparison = fields.equation_comparison(lorenz_sindy, wb.system("lorenz63"), {"rho": 35.0})
    assert float(comparison["true"].sel(variable="y", term="x")) == pytest.approx(35.0)


def test_sindy_on_clean_lorenz_has_coefficient_errors_below_one_percent(lorenz_sindy, lorenz_data):
    params = {k: float(v) for k, v in json.loads(lorenz_data.attrs["params"]).items()}
    comparison = fields.equation_comparison(lorenz_sindy, wb.system("lorenz63"), params)
    assert comparison.attrs["max_relative_error"] < 0.01
    assert comparison.attrs["spurious_terms"] == 0


def test_equation_comparison_flags_a_library_without_the_truth(lorenz_sindy):
    pendulum = wb.simulate("damped_pendulum", n=4, t_end=4.0, dt=0.05, seed=0)
    model = wb.fit(pendulum, "sindy", progress=False)
    comparison = fields.equation_comparison(model, wb.system("damped_pendulum"), {})
    assert not comparison.attrs["representable"] and comparison.attrs["residual"] > 1e-3
    with pytest.raises(wb.WorkbenchError, match="variables"):
        fields.equation_comparison(model, wb.system("lorenz63"), {})


def test_long_run_of_the_true_system_against_itself_is_near_zero(lorenz_sindy, lorenz_data):
    run = climate.long_run(with_coefficients(lorenz_sindy, LORENZ_TRUE), lorenz_data, n_runs=4, max_steps=2000)
    assert not run.attrs["diverged"]
    assert float(run["hellinger"].max()) < 0.1
    assert float(run["spectrum_error"].max()) < 0.35
    assert float(run["lyapunov_learned"]) == pytest.approx(0.9056, rel=0.15)  # Sprott's published value
    assert float(run["lyapunov_true"]) == pytest.approx(0.9056)
    widths = np.diff(run["bin_center"].values, axis=1)[:, :1]
    np.testing.assert_allclose((run["density_true"] * widths).sum("bin"), 1.0, rtol=1e-9)
    # a model of another attractor (rho = 40, sigma = 10, beta = 8/3: larger and faster) is far from it
    other = LORENZ_TRUE.copy()
    other[1, 1] = 40.0
    far = climate.long_run(with_coefficients(lorenz_sindy, other), lorenz_data, n_runs=4, max_steps=2000)
    assert float(far["hellinger"].mean()) > 2 * float(run["hellinger"].mean())
    assert float(far["w1"].mean()) > 3 * float(run["w1"].mean())


def test_long_run_needs_a_chaotic_system(oscillator):
    model = wb.fit(oscillator, "sindy", progress=False)
    with pytest.raises(wb.WorkbenchError, match="chaotic"):
        climate.long_run(model, oscillator)


def test_units_read_the_same_in_every_table_and_label():
    lorenz = wb.simulate("lorenz63", n=2, t_end=0.2, dt=0.01, seed=0)  # state units "1"
    _, table = fmt.describe(lorenz)
    assert set(table["unit"]) == {"dimensionless"}  # was "1" beside axis titles "x [dimensionless]"
    assert fmt.unit_label("x", "1") == "x [dimensionless]" and fmt.unit_text("1") == "dimensionless"
    assert fmt.unit_text(None, "not given") == "not given" and fmt.unit_label("x", None) == "x"
    assert fmt.unit_text("rad") == "rad"


def test_observed_values_and_axis_time_on_a_calendar_axis():
    ds = wb.from_csv(b"date,x\n2020-01-01,1.0\n2020-01-02,\n2020-01-03,3.0\n")
    np.testing.assert_array_equal(fmt.observed_values(ds)[0, :, 0], [1.0, np.nan, 3.0])
    assert fmt.axis_time(ds, 1.5) == np.datetime64("2020-01-02T12:00")
    assert fmt.axis_time(wb.simulate("lorenz63", n=1, t_end=0.1, dt=0.01, seed=0), 0.25) == 0.25


@pytest.mark.parametrize("kind", ["ode", "sde"])
def test_shipped_demo_scores_belong_to_the_shipped_demo_models(kind):
    """The app's first visits read these instead of evaluating (Uncertainty: 21 s -> under 2 s); they had
    stopped matching when loading started to add a unit 'rate' buffer to format-2 models."""
    from workbench.demo import demo_paths, scores_path

    data, folder = demo_paths(kind)
    model = wb.load_model(folder, device="cpu")
    assert demo.shipped_scores(scores_path(data), model, wb.load(data), 32) is not None
    key = demo.model_key(model)
    model.learner.rate.fill_(2.0)  # a real rate is part of the model
    assert demo.model_key(model) != key
