"""Universal differential equations: known terms plus a network, the residual as equations (SINDy
proposals chosen by BIC on the data), and the refusals of bad known parts before training."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.learners.ude import UniversalDE, register_known
from workbench.learners.ude_discovery import choose, stlsq_supports

# the paper's Lotka-Volterra (Rackauckas et al. 2020: x' = 1.3 x - 0.9 x y, y' = 0.8 x y - 1.8 y) in the
# catalog's names: prey' = alpha prey - beta prey predator, predator' = delta prey predator - gamma predator
TRUTH = {"alpha": 1.3, "beta": 0.9, "delta": 0.8, "gamma": 1.8}
X0 = [0.44249296, 4.6280594]
LINEAR = {"prey": "alpha*prey", "predator": "-gamma*predator"}
UNTRAINED = {"iterations": 0, "refine_iterations": 0}  # the network stays the zero function


def _data(n=1, t_end=5.0, dt=0.25):
    return wb.simulate("lotka_volterra", n=n, t_end=t_end, dt=dt, seed=1, params=TRUTH, x0=[X0] * n,
                       obs_noise=0.05, obs_noise_kind="relative", split=None)


def test_known_system_with_zero_network_is_the_system():
    ds = _data()
    model = wb.fit(ds, "ude", system="lotka_volterra", known="system", fixed=dict(TRUTH), estimate=[], **UNTRAINED,
                   precision="float64")
    x = ds["state"].values[0]
    truth = np.stack([1.3 * x[:, 0] - 0.9 * x[:, 0] * x[:, 1], 0.8 * x[:, 0] * x[:, 1] - 1.8 * x[:, 1]], 1)
    np.testing.assert_allclose(model.vector_field(x), truth, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.residual(x), 0.0, atol=1e-8)  # zero-initialised last layer, no training
    assert all(line.endswith("+ [0]") or "+ [0]   with" in line for line in model.equations())


def test_expressions_and_a_function_give_the_same_known_part():
    def linear(x, t, p):
        return torch.stack([p["alpha"] * x[:, 0], -p["gamma"] * x[:, 1]], dim=-1)

    ds = _data()
    a = wb.fit(ds, "ude", system="lotka_volterra", known=LINEAR, fixed=dict(TRUTH), estimate=[], **UNTRAINED,
               precision="float64")
    b = wb.fit(ds, "ude", known=linear, start={"alpha": 1.3, "gamma": 1.8}, estimate=[], **UNTRAINED,
               precision="float64")
    x = ds["state"].values[0]
    np.testing.assert_allclose(a.vector_field(x), np.stack([1.3 * x[:, 0], -1.8 * x[:, 1]], 1), atol=1e-8)
    np.testing.assert_allclose(b.vector_field(x), a.vector_field(x), atol=1e-8)


def test_saved_model_reloads_with_its_expressions(tmp_path):
    ds = _data()
    model = wb.fit(ds, "ude", system="lotka_volterra", known=LINEAR, fixed={"beta": 0.9, "delta": 0.8},
                   iterations=5, refine_iterations=2, precision="float64")
    model.save(tmp_path / "ude")
    again = wb.load_model(tmp_path / "ude")
    x = ds["state"].values[0]
    np.testing.assert_allclose(again.vector_field(x), model.vector_field(x), rtol=1e-12)
    np.testing.assert_allclose(again.residual(x), model.residual(x), rtol=1e-12)
    assert again.learner.estimated == ["alpha", "gamma"]
    assert again.equations() == model.equations()


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
def test_bad_known_parts_are_refused_before_training(options, error, pattern, monkeypatch):
    calls = []
    monkeypatch.setattr(UniversalDE, "_shooting", lambda *args: calls.append(args))
    with pytest.raises(error, match=pattern):
        wb.fit(_data(), "ude", **{"system": "lotka_volterra", **options})
    assert calls == []  # refused before the first training stage


def test_non_finite_only_on_the_data_is_refused_at_scaling():
    def blows_up_at_large_prey(x, t, p):  # finite on the construction probe (states up to 3.5), not on the data
        return torch.stack([torch.log(5.5 - x[:, 0]), 0 * x[:, 1]], dim=-1)

    ds = _data()
    ds["state"][:] = ds["state"].values * 4.0
    with pytest.raises(wb.errors.BadParameterError, match="not finite"):
        wb.fit(ds, "ude", known=blows_up_at_large_prey, **UNTRAINED)


def test_a_function_registered_again_reloads_and_one_missing_is_named(tmp_path):
    def linear(x, t, p):
        return torch.stack([p["a"] * x[:, 0], 0 * x[:, 1]], dim=-1)

    model = wb.fit(_data(), "ude", known=linear, start={"a": 1.0}, **UNTRAINED)
    model.save(tmp_path / "fn")
    assert wb.load_model(tmp_path / "fn").learner.estimated == ["a"]
    from workbench.learners import ude
    name = model.learner.options["known"].split(":", 1)[1]
    del ude._KNOWN[name]
    with pytest.raises(wb.errors.DatasetError, match="register_known"):
        wb.load_model(tmp_path / "fn")
    register_known(linear, name)
    assert wb.load_model(tmp_path / "fn").learner.estimated == ["a"]


def test_stlsq_path_proposes_the_sparse_residual_first():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 4.0, size=(200, 2))
    library = np.stack([np.ones(200), x[:, 0], x[:, 1], x[:, 0] ** 2, x[:, 0] * x[:, 1], x[:, 1] ** 2], 1)
    target = np.stack([-0.9 * library[:, 4], 0.8 * library[:, 4] + 0.01 * library[:, 2]], 1)
    supports = stlsq_supports(library, target)
    assert not supports[0].any()  # the empty model is always a candidate
    only_xy = np.zeros((2, 6), bool)
    only_xy[:, 4] = True
    assert any((s == only_xy).all() for s in supports)
    assert [int(s.sum()) for s in supports] == sorted(int(s.sum()) for s in supports)


def test_choice_is_the_lowest_bic_of_the_data_refits():
    library, target = np.ones((10, 3)), np.ones((10, 1))
    supports = [np.array([[False, False, False]]), np.array([[True, False, False]]),
                np.array([[True, True, False]])]
    ssr = {0: 100.0, 1: 1.0, 2: 0.99}  # the third term barely helps: BIC keeps the sparser model

    def refit(support, start, shift):
        return start, shift, torch.zeros(1, 1), ssr[int(support.sum())]

    scored = choose(supports, library, target, np.zeros((10, 1, 0)), refit, n_observations=42, n_fixed_unknowns=2,
                    out_of_time=lambda: False)
    assert int(scored[0].support.sum()) == 1
    assert [round(c.ssr, 2) for c in scored] == [1.0, 0.99, 100.0]


def test_paper_case_residual_is_the_two_interaction_terms():
    """Rackauckas et al. 2020's Lotka-Volterra case (one trajectory, 21 samples, 5% noise, known
    alpha x and -gamma y) with fewer optimiser steps than the defaults, noise draw 0: the residual's
    equations are exactly -beta x y and +delta x y within 10%, and they forecast to t = 10 within 10%."""
    ds = wb.simulate("lotka_volterra", n=1, t_end=5.0, dt=0.25, seed=0, params=TRUTH, x0=[X0], obs_noise=0.05,
                     obs_noise_kind="relative", split=None)
    model = wb.fit(ds, "ude", system="lotka_volterra", known=LINEAR, estimate=[], fixed=TRUTH, iterations=300,
                   refine_iterations=100)
    coefficients, _, terms = model.learner.residual_equations(model.variables)
    xy = terms.index("prey predator")
    assert [list(np.flatnonzero(row)) for row in coefficients] == [[xy], [xy]], model.equations()
    np.testing.assert_allclose(coefficients[:, xy], [-0.9, 0.8], rtol=0.10)
    truth = wb.simulate("lotka_volterra", n=1, t_end=10.0, dt=0.25, params=TRUTH, x0=[X0], split=None)
    pred = model.predict(np.array([X0]), truth["time"].values)["state"].values[0, 0]
    late = truth["time"].values > 5.0
    error = np.abs(pred[late] - truth["state"].values[0, late]).max(0) / np.abs(truth["state"].values[0]).max(0)
    assert error.max() < 0.10, error


def test_drift_parts_along_a_trajectory_split_known_learned_discovered_and_the_true_missing_part():
    from workbench.evaluation import ude_terms

    ds = _data()
    model = wb.fit(ds, "ude", system="lotka_volterra", known=LINEAR, fixed=dict(TRUTH), estimate=[], **UNTRAINED,
                   precision="float64")
    parts = ude_terms(model, ds)
    x = ds["state"].values[0]
    assert parts["known"].dims == ("time", "variable") and parts["known"].shape == x.shape
    np.testing.assert_allclose(parts["known"].values, np.stack([1.3 * x[:, 0], -1.8 * x[:, 1]], 1), rtol=1e-12)
    # what the residual should learn is the two interaction terms (the paper's case)
    np.testing.assert_allclose(parts["missing"].values, np.stack([-0.9, 0.8]) * (x[:, 0] * x[:, 1])[:, None],
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(parts["learned"].values, model.residual(x), rtol=1e-12)
    np.testing.assert_allclose(parts["discovered"].values, 0.0)   # nothing trained, nothing found
    with pytest.raises(wb.WorkbenchError, match="no known/learned split"):
        ude_terms(wb.fit(ds, "sindy"), ds)
