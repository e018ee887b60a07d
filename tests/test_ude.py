"""Universal differential equations: known terms plus a network, the residual as equations (SINDy),
and the refusals of bad known parts before training."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.learners.ude import register_known

# the paper's Lotka-Volterra (Rackauckas et al. 2020: x' = 1.3 x - 0.9 x y, y' = 0.8 x y - 1.8 y) in the
# catalog's names: prey' = alpha prey - beta prey predator, predator' = delta prey predator - gamma predator
TRUTH = {"alpha": 1.3, "beta": 0.9, "delta": 0.8, "gamma": 1.8}
X0 = [0.44249296, 4.6280594]
LINEAR = {"prey": "alpha*prey", "predator": "-gamma*predator"}


def _data(n=1, t_end=5.0, dt=0.25):
    return wb.simulate("lotka_volterra", n=n, t_end=t_end, dt=dt, seed=1, params=TRUTH, x0=[X0] * n,
                       obs_noise=0.05, obs_noise_kind="relative", split=None)


def test_known_system_with_zero_network_is_the_system():
    ds = _data()
    model = wb.fit(ds, "ude", system="lotka_volterra", known="system", fixed=dict(TRUTH), estimate=[], epochs=1, steps_per_epoch=1, lr=1e-12,
                   precision="float64")
    x = ds["state"].values[0]
    truth = np.stack([1.3 * x[:, 0] - 0.9 * x[:, 0] * x[:, 1], 0.8 * x[:, 0] * x[:, 1] - 1.8 * x[:, 1]], 1)
    np.testing.assert_allclose(model.vector_field(x), truth, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.residual(x), 0.0, atol=1e-8)  # zero-initialised last layer, lr 1e-12


def test_expressions_and_a_function_give_the_same_known_part():
    def linear(x, t, p):
        return torch.stack([p["alpha"] * x[:, 0], -p["gamma"] * x[:, 1]], dim=-1)

    ds = _data()
    a = wb.fit(ds, "ude", system="lotka_volterra", known=LINEAR, fixed=dict(TRUTH), estimate=[], epochs=1, steps_per_epoch=1, lr=1e-12,
               precision="float64")
    b = wb.fit(ds, "ude", known=linear, start={"alpha": 1.3, "gamma": 1.8}, estimate=[], epochs=1, steps_per_epoch=1, lr=1e-12,
               precision="float64")
    x = ds["state"].values[0]
    np.testing.assert_allclose(a.vector_field(x), np.stack([1.3 * x[:, 0], -1.8 * x[:, 1]], 1), atol=1e-8)
    np.testing.assert_allclose(b.vector_field(x), a.vector_field(x), atol=1e-8)


def test_saved_model_reloads_with_its_expressions(tmp_path):
    ds = _data()
    model = wb.fit(ds, "ude", system="lotka_volterra", known=LINEAR, fixed={"beta": 0.9, "delta": 0.8}, epochs=1,
                   steps_per_epoch=2, precision="float64")
    model.save(tmp_path / "ude")
    again = wb.load_model(tmp_path / "ude")
    x = ds["state"].values[0]
    np.testing.assert_allclose(again.vector_field(x), model.vector_field(x), rtol=1e-12)
    np.testing.assert_allclose(again.residual(x), model.residual(x), rtol=1e-12)
    assert again.learner.estimated == ["alpha", "gamma"]


def _shape_wrong(x, t, p):
    return x[:, :1]


def _not_finite(x, t, p):
    return torch.log(x - 100.0)


@pytest.mark.parametrize("options, error, pattern", [
    ({"known": LINEAR, "estimate": ["alpha", "omega"]}, wb.errors.UnknownNameError, "no parameter"),
    ({"known": LINEAR, "estimate": ["beta"]}, wb.errors.BadParameterError, "do not appear in the known part"),
    ({"known": {"prey": "alpha*prey + kappa"}}, wb.errors.UnknownNameError, "'kappa'"),
    ({"known": {"prey": "__import__('os')"}}, wb.errors.BadParameterError, "calls something other"),
    ({"known": {"wolves": "alpha"}}, wb.errors.UnknownNameError, "variable"),
    ({"known": ["alpha*prey"]}, wb.errors.BadParameterError, "1 expressions for 2 variables"),
    ({"known": _shape_wrong}, wb.errors.BadParameterError, r"returned \(4, 1\)"),
    ({"known": _not_finite}, wb.errors.BadParameterError, "not finite"),
    ({"known": LINEAR, "bounds": {"alpha": (2.0, 3.0)}}, wb.errors.BadParameterError, "outside its bounds"),
    ({"system": "ornstein_uhlenbeck"}, wb.errors.UnsupportedError, "SDE"),
    ({"system": "lorenz63"}, wb.errors.UnsupportedError, "not the states"),
])
def test_bad_known_parts_are_refused_before_training(options, error, pattern):
    calls = []
    with pytest.raises(error, match=pattern):
        wb.fit(_data(), "ude", **{"system": "lotka_volterra", **options}, callback=calls.append)
    assert calls == []  # refused before the first epoch


def test_non_finite_only_on_the_data_is_refused_at_scaling():
    def blows_up_at_large_prey(x, t, p):  # finite on the construction probe (states up to 3.5), not on the data
        return torch.stack([torch.log(5.5 - x[:, 0]), 0 * x[:, 1]], dim=-1)

    ds = _data()
    ds["state"][:] = ds["state"].values * 4.0
    with pytest.raises(wb.errors.BadParameterError, match="not finite"):
        wb.fit(ds, "ude", known=blows_up_at_large_prey, epochs=1)


def test_a_function_registered_again_reloads_and_one_missing_is_named(tmp_path):
    def linear(x, t, p):
        return torch.stack([p["a"] * x[:, 0], 0 * x[:, 1]], dim=-1)

    model = wb.fit(_data(), "ude", known=linear, start={"a": 1.0}, epochs=1, steps_per_epoch=2)
    model.save(tmp_path / "fn")
    assert wb.load_model(tmp_path / "fn").learner.estimated == ["a"]
    from workbench.learners import ude
    name = model.learner.options["known"].split(":", 1)[1]
    del ude._KNOWN[name]
    with pytest.raises(wb.errors.DatasetError, match="register_known"):
        wb.load_model(tmp_path / "fn")
    register_known(linear, name)
    assert wb.load_model(tmp_path / "fn").learner.estimated == ["a"]
