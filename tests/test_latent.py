"""Latent models for hidden variables and irregular samples (issue 25): latent_ode, ncde, hidden_r2."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.data.schema import select_split
from workbench.errors import BadParameterError, DatasetError
from workbench.learners import latent
from workbench.learners.base import Capabilities

TINY = {"latent": 4, "hidden": 16, "context": 6}


@pytest.fixture(scope="module")
def vdp():
    """Van der Pol, only x observed, 30% of samples dropped at random."""
    return wb.simulate("van_der_pol", n=12, t_end=8.0, dt=0.2, observe=["x"], missing=0.3, seed=3)


def test_latent_ode_elbo_falls_by_half_and_forecasts_samples_from_gappy_histories(vdp):
    model = wb.fit(vdp, learner="latent_ode", epochs=6, steps_per_epoch=10, window=14, batch_size=32,
                   seed=0, **TINY)
    losses = [r["val_loss"] for r in model.history]
    assert min(losses[1:]) < 0.5 * losses[0]
    test = select_split(vdp, "test")
    assert not test["mask"].values[:, :7].all()  # the histories have gaps
    pred = latent.history_forecast(model, test, n_samples=5, seed=1)
    assert pred["state"].shape == (5, test.sizes["trajectory"], vdp.sizes["time"] - 6, 1)
    assert float(pred["state"].std("sample").mean()) > 0  # samples of z0 differ
    scores = wb.evaluate(model, vdp, n_samples=4)
    for name in ("extrapolation_rmse", "interpolation_rmse", "vpt_median"):
        assert np.isfinite(float(scores[name]))
    assert scores["hidden_r2"].dims == ("hidden_variable",) and list(scores["hidden_variable"].values) == ["y"]


def test_predict_from_a_full_history_equals_the_history_forecast():
    ds = wb.simulate("van_der_pol", n=4, t_end=4.0, dt=0.2, observe=["x"], seed=2)
    model = wb.fit(ds, learner="latent_ode", epochs=1, steps_per_epoch=2, window=10, **TINY)
    via_predict = model.predict(ds)["state"].values
    via_history = latent.history_forecast(model, ds)["state"].values
    np.testing.assert_allclose(via_predict, via_history, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("interpolation", ["cubic", "rectilinear"])
def test_ncde_training_error_falls(vdp, interpolation):
    model = wb.fit(vdp, learner="ncde", epochs=6, steps_per_epoch=10, window=14, batch_size=32, seed=0, lr=1e-2,
                   interpolation=interpolation, **TINY)
    losses = [r["val_loss"] for r in model.history]
    assert min(losses[1:]) < 0.7 * losses[0]
    assert wb.evaluate(model, vdp)["hidden_r2"].shape == (1,)


class LastSample(latent.HistoryLearner):
    """A stub whose latent state is the history's last standardised sample (or zeros)."""

    name = "last_sample_stub"
    supports = Capabilities(irregular=True, objectives=("likelihood",))
    defaults = {"latent": 2, "hidden": 1, "context": 2, "substeps": 1, "dt": None, "zero": False}

    def encode_end(self, z, t, mask):
        return torch.zeros_like(z[:, -1]) if self.options["zero"] else z[:, -1]


def test_hidden_r2_is_one_for_an_exactly_linear_latent_and_not_for_a_constant():
    # the observed channels a = x + y, b = x - y determine the hidden x, y linearly
    ds = wb.simulate("van_der_pol", n=8, t_end=4.0, dt=0.1, seed=5, observe={"a": {"x": 1, "y": 1},
                                                                              "b": {"x": 1, "y": -1}})
    train, test = select_split(ds, "train"), select_split(ds, "test")
    exact = latent.hidden_r2(SimpleNamespace(learner=LastSample(2)), train, test)
    np.testing.assert_allclose(exact.values, 1.0, atol=1e-9)
    assert list(exact["hidden_variable"].values) == ["x", "y"]
    constant = latent.hidden_r2(SimpleNamespace(learner=LastSample(2, zero=True)), train, test)
    assert (constant.values < 0.05).all()


def test_histories_with_one_observation_are_refused_by_name():
    mask = np.array([[True, False, False], [True, True, False]])
    with pytest.raises(DatasetError, match="fewer than two observed samples") as info:
        latent.check_histories(mask)
    assert "context" in info.value.fix


@pytest.mark.parametrize("options, pattern", [
    ({"latent": 0}, r"latent \(the latent dimension\) must be an integer in \[1, 1024\]"),
    ({"latent": 10**9}, "latent"),
    ({"context": 0}, "context"),
    ({"interpolation": "quintic"}, "unknown interpolation"),
])
def test_bad_options_are_named(options, pattern):
    cls = latent.NeuralCDE if "interpolation" in options else latent.LatentODE
    with pytest.raises(BadParameterError, match=pattern):
        cls(1, **options)


def test_a_context_longer_than_the_trajectories_is_refused_before_training():
    ds = wb.simulate("van_der_pol", n=3, t_end=1.0, dt=0.2, observe=["x"])
    with pytest.raises(BadParameterError, match="context=8 needs trajectories of at least 10 samples"):
        wb.fit(ds, learner="latent_ode", epochs=1)


def test_predict_on_a_gappy_dataset_encodes_each_history_at_its_own_times():
    ds = wb.simulate("van_der_pol", n=12, t_end=8.0, dt=0.1, seed=0, observe=["x"], missing=0.3)
    model = wb.fit(ds, "latent_ode", epochs=2, steps_per_epoch=5, progress=False)
    test = wb.select_split(ds, "test")
    assert not bool(test["mask"].values[:, :9].all())  # the history has gaps: the plain path refused this
    pred = model.predict(test, n_samples=4, seed=1)
    assert pred.sizes["sample"] == 4 and np.isfinite(pred["state"].values).all()
    np.testing.assert_array_equal(pred["state"].values, model.predict(test, n_samples=4, seed=1)["state"].values)
