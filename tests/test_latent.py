"""Latent models for hidden variables and irregular samples (issue 25): latent_ode, ncde, hidden_r2."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchdiffeq

import workbench as wb
from workbench.data.schema import select_split
from workbench.errors import BadParameterError, DatasetError
from workbench.learners import compatibility, latent
from workbench.evaluation import hidden_r2
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
    exact = hidden_r2(SimpleNamespace(learner=LastSample(2)), train, test)
    np.testing.assert_allclose(exact.values, 1.0, atol=1e-9)
    assert list(exact["hidden_variable"].values) == ["x", "y"]
    constant = hidden_r2(SimpleNamespace(learner=LastSample(2, zero=True)), train, test)
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
    ({"anchor": "middle"}, "unknown anchor"),
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


# --- latent_sde ------------------------------------------------------------------------------------

SDE_TINY = {"latent": 2, "hidden": 8, "context": 5}


@pytest.fixture(scope="module")
def well():
    """The double well SDE with 30% of samples dropped, and a latent SDE fitted briefly on it."""
    ds = wb.simulate("double_well", n=10, t_end=3.0, dt=0.1, missing=0.3, seed=4)
    model = wb.fit(ds, learner="latent_sde", epochs=3, steps_per_epoch=4, window=12, batch_size=16, seed=0,
                   progress=False, **SDE_TINY)
    return ds, model


def test_latent_sde_fits_declares_its_capabilities_and_is_listed_for_stochastic_gappy_data(well):
    ds, model = well
    losses = [r["val_loss"] for r in model.history]
    assert np.isfinite(losses).all() and min(losses[1:]) < losses[0]
    caps = model.learner.capabilities()
    assert caps.stochastic and caps.irregular and "sde" in caps.kinds and caps.context == SDE_TINY["context"]
    assert "latent_sde" in wb.learners()
    verdicts = compatibility(ds, **SDE_TINY)
    assert verdicts["latent_sde"] is None and verdicts["latent_ode"] is not None  # an ODE model refuses SDE data


def test_latent_sde_samples_differ_and_a_seed_reproduces_them(well):
    ds, model = well
    test = select_split(ds, "test")
    first = latent.history_forecast(model, test, n_samples=6, seed=1)["state"].values
    assert first.shape[0] == 6 and np.isfinite(first).all()
    assert first[:, :, 1:].std(0).min() > 0  # every path after the origin is its own draw
    np.testing.assert_array_equal(first, latent.history_forecast(model, test, n_samples=6, seed=1)["state"].values)
    assert not np.allclose(first, latent.history_forecast(model, test, n_samples=6, seed=2)["state"].values)


def test_calibrate_scales_the_spread_and_the_model_saves_it(well, tmp_path):
    ds, model = well
    test = select_split(ds, "test")
    model.learner.spread.fill_(1.0)
    before = latent.history_forecast(model, test, n_samples=8, seed=3)["state"].values
    factor = latent.calibrate(model, ds, n_samples=8, seed=0)
    assert factor.shape == (1,) and latent.SPREAD_GRID[0] <= factor[0] <= latent.SPREAD_GRID[-1]
    after = latent.history_forecast(model, test, n_samples=8, seed=3)["state"].values
    # the same paths, their deviations from the sample mean multiplied by the factor
    np.testing.assert_allclose(after - after.mean(0), factor[0] * (before - before.mean(0)), rtol=1e-4, atol=1e-6)
    loaded = wb.load_model(model.save(tmp_path / "sde"))
    np.testing.assert_array_equal(loaded.learner.spread.numpy(), model.learner.spread.numpy())
    np.testing.assert_array_equal(latent.history_forecast(loaded, test, n_samples=8, seed=3)["state"].values, after)


def test_latent_sde_bad_input_is_refused_by_name(well):
    ds, model = well
    with pytest.raises(BadParameterError, match=r"latent \(the latent dimension\) must be an integer"):
        latent.LatentSDE(1, latent=0)
    with pytest.raises(BadParameterError, match="latent"):
        latent.LatentSDE(1, latent=10**9)
    with pytest.raises(BadParameterError, match="noise"):
        latent.LatentSDE(1, noise=0.0)
    one = select_split(ds, "test").copy(deep=True)
    one["mask"].values[0, 1:6] = False  # the first history keeps one observation
    one["state"].values[0, 1:6] = np.nan
    with pytest.raises(DatasetError, match="fewer than two observed samples") as info:
        model.predict(one, n_samples=2)
    assert "context" in info.value.fix
    node_like = SimpleNamespace(learner=latent.LatentODE(1), name="latent_ode")
    with pytest.raises(BadParameterError, match="calibrate fits a latent SDE"):
        latent.calibrate(node_like, ds)


def test_near_continuous_sample_times_cost_steps_by_the_median_gap_not_the_smallest():
    # 60 uniform random times on [0, 5]: the smallest gap is ~2% of the median, which at one
    # step per smallest gap would take thousands of RK4 steps per solve
    torch.manual_seed(0)
    learner = latent.LatentODE(1, latent=3, hidden=8)
    rel = torch.sort(torch.rand(60, dtype=torch.float64) * 5.0).values
    rel = rel - rel[0]
    z0 = torch.randn(4, 3, dtype=torch.float64)
    learner.double()
    calls = []
    counting = learner.field.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        path = learner.latent_path(z0, rel)
        counting.remove()
        reference = torchdiffeq.odeint(lambda t, y: learner.field(y), z0, rel, rtol=1e-10, atol=1e-10)
    reference = reference.transpose(0, 1)
    gaps = rel[1:] - rel[:-1]
    steps = float(rel[-1]) / (float(gaps.median()) / latent.MEDIAN_GAP_STEPS)
    assert len(calls) <= 4 * (steps + 1) + len(rel)   # 4 evaluations a step, one per output for the interpolant
    assert float(gaps.min()) < 0.05 * float(gaps.median())   # the old rule: over 4,000 steps
    np.testing.assert_allclose(path.numpy(), reference.numpy(), atol=1e-4)


def test_the_latent_path_on_a_uniform_grid_matches_torchdiffeqs_rk4_and_runs_back_to_its_start():
    torch.manual_seed(1)
    learner = latent.LatentODE(1, latent=3, hidden=8, substeps=2).double()
    z0 = torch.randn(4, 3, dtype=torch.float64)
    rel = torch.arange(12, dtype=torch.float64) * 0.2
    with torch.no_grad():
        path = learner.latent_path(z0, rel)
        reference = torchdiffeq.odeint(lambda t, y: learner.field(y), z0, rel, method="rk4",
                                       options={"step_size": 0.1}).transpose(0, 1)
        # the same grid; classical RK4 here, torchdiffeq's 3/8 rule there (both fourth order)
        np.testing.assert_allclose(path.numpy(), reference.numpy(), atol=1e-8)
        # decreasing times solve back in time: from the path's end back over the same times to z0
        back = learner.latent_path(path[:, -1], rel.flip(0) - rel[-1])
        np.testing.assert_allclose(back.flip(1).numpy(), path.numpy(), atol=1e-8)
        irregular = torch.tensor([0.0, 0.15, 0.2, 0.55, 0.9], dtype=torch.float64)
        ahead = learner.latent_path(z0, irregular)
        back = learner.latent_path(ahead[:, -1], (irregular - irregular[-1]).flip(0))
        np.testing.assert_allclose(back[:, -1].numpy(), z0.numpy(), atol=1e-6)


@pytest.mark.parametrize("anchor", ["last", "first"])
def test_both_anchors_decode_the_history_and_forecast_from_the_same_latent_state(anchor):
    # the forecast's first value and the reconstruction's last value are the decoded state at the
    # history's end, which is also what hidden_r2 reads
    torch.manual_seed(2)
    learner = latent.LatentODE(1, latent=3, hidden=8, context=6, anchor=anchor).double().eval()
    t = (torch.arange(7, dtype=torch.float64) * 0.2).expand(3, -1)
    z = torch.randn(3, 7, 1, dtype=torch.float64)
    mask = torch.rand(3, 7, generator=torch.Generator().manual_seed(0)) > 0.3
    mask[:, -1] = True
    with torch.no_grad():
        history = learner.reconstruct(z, t, mask)
        ahead = learner.forecast(z, t, mask, t[0, -1] + torch.arange(5, dtype=torch.float64) * 0.2)[0]
        end = learner.decoder(learner.encode_end(z, t, mask))
    assert history.shape == (3, 7, 1) and ahead.shape == (3, 5, 1)
    np.testing.assert_allclose(history[:, -1].numpy(), ahead[:, 0].numpy(), atol=1e-8)
    np.testing.assert_allclose(end.numpy(), ahead[:, 0].numpy(), atol=1e-8)


def test_the_default_recipe_forecasts_van_der_pol_from_x_alone_after_a_short_fit():
    # 200 steps on 32 trajectories, x only, 30% missing: forecast 16 samples (3.2 time units, half a
    # period) from gappy histories. The default reached 0.077 on this draw; the recipe before
    # anchor="last" (q(z0) at the history's first time, width 32, learned noise level, RK4 encoder,
    # sampled validation) 0.374. Not every draw shows such a gap: on seed 3's they reached 0.054 and 0.097.
    ds = wb.simulate("van_der_pol", n=32, t_end=10.0, dt=0.2, observe=["x"], missing=0.3, seed=4)
    model = wb.fit(ds, learner="latent_ode", context=8, window=25, epochs=20, steps_per_epoch=10, lr=1e-2, seed=0,
                   progress=False)
    test = select_split(ds, "test")
    pred = latent.history_forecast(model, test)["state"].values[0, :, 1:17, 0]
    truth = test["state"].values[:, 9:25, 0]
    error = np.sqrt(np.nanmean((pred - truth) ** 2)) / np.nanstd(test["state"].values)
    assert error < 0.15


def test_a_file_from_before_the_anchor_option_loads_as_the_reconstruction_model_it_was(tmp_path, vdp):
    """Files saved before ``anchor`` and ``noise`` existed were trained with q(z0) at the history's
    first time and a learned noise: they load so, and forecast what that model forecasts."""
    import json

    from conftest import forge_run_folder
    from workbench.model import run_files, weights_bytes

    model = wb.fit(vdp, learner="latent_ode", epochs=1, steps_per_epoch=2, window=10, anchor="first", noise=None,
                   **TINY)
    config = json.loads(run_files(model)["config.json"])
    for name in ("anchor", "noise"):
        del config["options"][name]
    old = wb.load_model(forge_run_folder(tmp_path / "old", weights_bytes(model.learner.state_dict()), config))
    assert old.learner.options["anchor"] == "first" and old.learner.options["noise"] is None
    test = select_split(vdp, "test")
    np.testing.assert_allclose(latent.history_forecast(old, test, 1, 0)["state"].values,
                               latent.history_forecast(model, test, 1, 0)["state"].values, rtol=1e-6)
