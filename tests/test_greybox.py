"""Grey-box learners: parameters of a known system estimated from data, checked against scipy's
single-shooting least squares, closed-form identifiability and the profile likelihood."""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

import workbench as wb
from systems import Param, System

TRUTH = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}


@pytest.fixture(scope="module")
def lotka():
    ds = wb.simulate("lotka_volterra", n=3, t_end=5.0, dt=0.25, seed=1, params=TRUTH, obs_noise=0.05,
                     obs_noise_kind="relative", split=None)
    return ds, wb.fit(ds, "mechanistic", system="lotka_volterra", precision="float64")


def _scipy_single_shooting(ds, start, sigma):
    """The independent reference: solve_ivp (DOP853) inside scipy's least_squares, residuals divided by
    ``sigma`` (per variable); returns the parameters and the unweighted residuals (trajectory, time, variable)."""
    y, t = ds["state"].values, ds["time"].values

    def residuals(u):
        a, b, d, g = u[:4]
        out = []
        for i, x0 in enumerate(u[4:].reshape(-1, 2)):
            rhs = lambda _, x: [a * x[0] - b * x[0] * x[1], d * x[0] * x[1] - g * x[1]]  # noqa: E731
            sol = solve_ivp(rhs, (t[0], t[-1]), x0, t_eval=t, method="DOP853", rtol=1e-10, atol=1e-10)
            out.append(((sol.y.T - y[i]) / sigma).ravel())
        return np.concatenate(out)

    fit = least_squares(residuals, np.concatenate([start, y[:, 0].ravel()]), method="lm")
    return fit.x[:4], residuals(fit.x).reshape(y.shape) * sigma


def test_estimates_match_scipy_single_shooting_and_cover_the_truth(lotka):
    ds, model = lotka
    table = model.parameters()
    names = [str(p) for p in table["parameter"].values]
    assert names == ["alpha", "beta", "delta", "gamma"]
    noise = model.learner.noise_std.numpy()
    reference, residuals = _scipy_single_shooting(ds, np.array([TRUTH[n] for n in names]), noise)
    np.testing.assert_allclose(table["estimate"].values, reference, rtol=2e-4)  # RK4 grid vs DOP853
    # the weights are the fixed point of reweighting: each variable's residual variance on its share
    # of the n - k degrees of freedom (3 trajectories x 21 samples, 4 parameters + 3 x 2 initial states)
    np.testing.assert_allclose(noise, np.sqrt((residuals ** 2).sum((0, 1)) / ((126 - 10) / 2)), rtol=3e-3)
    truth = np.array([TRUTH[n] for n in names])
    assert (np.abs(table["estimate"].values - truth) / truth < 0.03).all()
    assert ((table["ci_low"].values < truth) & (truth < table["ci_high"].values)).all()
    assert table["identifiable"].values.all() and table.attrs["level"] == 0.95


def test_profile_likelihood_is_quadratic_near_a_well_determined_estimate(lotka):
    _, model = lotka
    table = model.parameters()
    profile = model.profile("beta", points=9)
    assert profile.min() == pytest.approx(0.0, abs=1e-6)
    # +-4 standard errors of a near-linear model: (SSR - SSR_min)/s^2 ~ 16 at the ends
    assert 10 < float(profile[0]) < 24 and 10 < float(profile[-1]) < 24
    wald = float(table["ci_high"].sel(parameter="beta") - table["ci_low"].sel(parameter="beta"))
    assert profile.attrs["ci_high"] - profile.attrs["ci_low"] == pytest.approx(wald, rel=0.2)


def test_saved_model_keeps_its_parameters(lotka, tmp_path):
    _, model = lotka
    model.save(tmp_path / "lv")
    again = wb.load_model(tmp_path / "lv")
    np.testing.assert_array_equal(again.parameters()["estimate"].values, model.parameters()["estimate"].values)
    with pytest.raises(wb.errors.UnsupportedError, match="no physical parameters"):
        wb.fit(wb.simulate("lotka_volterra", n=4, seed=0), "nvar").parameters()


def test_a_product_of_two_parameters_is_reported_unidentifiable():
    decay = System(name="decay_product_test", kind="ode", state_names=("x",),
                   drift=lambda t, x, p: -p["a"] * p["b"] * x,
                   params={"a": Param(1.0, 0.1, 5.0, "rate"), "b": Param(0.5, 0.1, 5.0, "gain")},
                   x0_low=(1.0,), x0_high=(2.0,), t_end=3.0, dt=0.1, reference="test", equations=r"\dot x = -a b x")
    ds = wb.simulate(decay, n=3, seed=0, params={"a": 2.0, "b": 0.4}, obs_noise=0.02, split=None)
    table = wb.fit(ds, "mechanistic", system=decay, precision="float64").learner.parameter_table()
    assert not table["identifiable"].values.any() and np.isnan(table["ci_low"].values).all()
    assert table.attrs["identifiable_combinations"] == "a * b"
    one = wb.fit(ds, "mechanistic", system=decay, estimate=["a"], fixed={"b": 0.4},
                 precision="float64").learner.parameter_table()
    assert bool(one["identifiable"][0]) and abs(float(one["estimate"][0]) - 2.0) < 0.05


def test_intervals_weight_each_variable_by_its_own_noise_as_exact_linear_least_squares():
    """x' = a, y' = b is linear in (a, b, initial states): the exact covariance is ordinary least squares
    per variable. y's noise is 100x x's (relative to their spreads 30x): one residual variance pooled
    over both variables would put a's standard error about 20x too wide and b's too narrow."""
    drift = System(name="two_rates_test", kind="ode", state_names=("x", "y"),
                   drift=lambda t, x, p: torch.stack([p["a"] * torch.ones_like(x[..., 0]),
                                                      p["b"] * torch.ones_like(x[..., 1])], dim=-1),
                   params={"a": Param(1.0, 0.1, 5.0, "rate of x"), "b": Param(1.0, 0.1, 5.0, "rate of y")},
                   x0_low=(0.0, 0.0), x0_high=(1.0, 1.0), t_end=2.0, dt=0.1, reference="test",
                   equations=r"\dot x = a \\ \dot y = b")
    ds = wb.simulate(drift, n=3, seed=0, params={"a": 1.5, "b": 0.5}, split=None)
    t = ds["time"].values
    noise = np.random.default_rng(0).standard_normal(ds["state"].shape) * np.array([0.01, 1.0])
    ds["state"] = ds["state"] + noise
    table = wb.fit(ds, "mechanistic", system=drift, start={"a": 1.2, "b": 0.8},
                   precision="float64").learner.parameter_table()
    n_traj, n_t = ds["state"].shape[:2]
    design = np.hstack([np.tile(t, n_traj)[:, None], np.kron(np.eye(n_traj), np.ones((n_t, 1)))])
    for v, name in enumerate(("a", "b")):
        y = ds["state"].values[:, :, v].ravel()
        coef, ssr = np.linalg.lstsq(design, y, rcond=None)[:2]
        s2 = ssr[0] / (len(y) - design.shape[1])  # this variable's n_v - k_v = its share of n - k here
        std = np.sqrt(s2 * np.linalg.inv(design.T @ design)[0, 0])
        assert float(table["estimate"].sel(parameter=name)) == pytest.approx(coef[0], rel=1e-6)
        assert float(table["std_error"].sel(parameter=name)) == pytest.approx(std, rel=0.01)
    assert table.attrs["degrees_of_freedom"] == 2 * n_traj * n_t - 2 - 2 * n_traj


@pytest.mark.parametrize("options, error, pattern", [
    ({"estimate": ["alpha", "omega"]}, wb.errors.UnknownNameError, "no parameter"),
    ({"bounds": {"alpha": (2.0, 3.0)}}, wb.errors.BadParameterError, "outside its bounds"),
    ({"system": "ornstein_uhlenbeck"}, wb.errors.UnsupportedError, "SDE"),
    ({"system": "lorenz63"}, wb.errors.UnsupportedError, "not the states"),
    ({"level": 1.5}, wb.errors.BadParameterError, "level"),
])
def test_bad_options_are_refused_before_fitting(options, error, pattern):
    ds = wb.simulate("lotka_volterra", n=2, t_end=2.0, dt=0.5, seed=0, split=None)
    with pytest.raises(error, match=pattern):
        wb.fit(ds, "mechanistic", **{"system": "lotka_volterra", **options})


def test_data_too_short_to_estimate_is_refused():
    ds = wb.simulate("lotka_volterra", n=1, t_end=0.5, dt=0.5, seed=0, split=None)  # 2 samples, 6 unknowns
    with pytest.raises(wb.errors.DatasetError, match="cannot determine"):
        wb.fit(ds, "mechanistic", system="lotka_volterra")


def test_a_time_budget_ends_the_fit_at_its_best_point_with_a_warning():
    ds = wb.simulate("lotka_volterra", n=8, t_end=10.0, dt=0.1, seed=2, obs_noise=0.02, split=None)
    with pytest.warns(RuntimeWarning, match="time budget"):
        model = wb.fit(ds, "mechanistic", system="lotka_volterra", time_budget=0.5)
    assert np.isfinite(model.parameters()["estimate"].values).all()
