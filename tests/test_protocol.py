"""The training protocol: declared capabilities vs what fit accepts, both training styles,
exogenous inputs, and exact resume."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.evaluation import metrics
from workbench.errors import UnsupportedError
from workbench.learners import LEARNERS, Capabilities, Learner, compatibility, get_learner

TINY = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 4, "window": 10, "patience": 5}  # 10: history models read 9
# closed-form learners that iterate on their own counts (epochs do not reach them): as short
ITERATIONS = {"ude": {"iterations": 5, "refine_iterations": 2}}


@pytest.fixture(scope="module")
def datasets():
    masked = wb.simulate("van_der_pol", n=6, t_end=2.0, dt=0.1, seed=1, missing=0.2)
    return {
        "ode": wb.simulate("lorenz63", n=6, t_end=1.0, dt=0.05, seed=0),
        "masked": masked,
        "sde": wb.simulate("ornstein_uhlenbeck", n=6, t_end=1.0, dt=0.05, seed=0),
        "hamiltonian": wb.simulate("mass_spring", n=6, t_end=2.0, dt=0.1, seed=0),
        "forced": wb.simulate("forced_duffing", n=6, t_end=2.0, dt=0.1, seed=0),
    }


@pytest.mark.parametrize("kind", ["ode", "masked", "sde", "hamiltonian", "forced"])
def test_every_declaration_matches_what_fit_accepts(datasets, kind):
    """Table-driven: compatibility() says yes exactly when fit trains, and fit's refusal is the same message."""
    ds = datasets[kind]
    verdicts = compatibility(ds)
    assert set(verdicts) == set(wb.learners())
    for name, reason in verdicts.items():
        if reason is None:
            model = wb.fit(ds, name, **TINY, **ITERATIONS.get(name, {}))
            assert model.history, name
        else:
            with pytest.raises(UnsupportedError) as info:
                wb.fit(ds, name, **TINY)
            assert str(info.value) == reason
            assert "use" in reason  # names the fix


def test_declarations_are_per_instance_and_ensembles_inherit_them(datasets):
    ensemble = get_learner("ensemble")(3, base="resnet", base_options={"dt": 0.1})
    assert not ensemble.capabilities().irregular      # from its resnet base
    assert ensemble.capabilities().stochastic
    with pytest.raises(UnsupportedError, match="regularly sampled"):
        wb.fit(datasets["masked"], "ensemble", base="resnet", **TINY)
    # the class-level declaration alone (node's) would have accepted it
    assert LEARNERS["ensemble"].supports.irregular


def test_hnn_without_stored_derivatives_trains_by_trajectory_matching():
    ds = wb.simulate("mass_spring", n=16, t_end=3.0, dt=0.1, seed=0)
    assert "derivative" not in ds
    model = wb.fit(ds, "hnn", epochs=8, steps_per_epoch=10, seed=0, hidden=32)
    assert model.meta["objective"] == "trajectory"
    losses = [h["val_loss"] for h in model.history]
    assert min(losses[1:]) < 0.5 * losses[0]


def test_unknown_objective_and_missing_derivative_are_refused_before_training():
    ds = wb.simulate("mass_spring", n=6, t_end=1.0, dt=0.1, seed=0)
    with pytest.raises(UnsupportedError, match="derivative"):
        wb.fit(ds, "node", objective="derivative", **TINY)
    with pytest.raises(wb.WorkbenchError, match="objective"):
        wb.fit(ds, "node", objective="banana", **TINY)


class LeastSquaresMap(Learner):
    """A closed-form toy: x_{k+1} = A x_k + b fitted by least squares on every training pair."""

    name = "lsq_map"
    supports = Capabilities(kinds=("ode",), irregular=False, training="closed_form")
    defaults = {"dt": 1.0}

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        self.register_buffer("weights", torch.zeros(dim + 1, dim))

    def fit_closed_form(self, train, val, times):
        x, y = train.z[:, :-1].reshape(-1, self.dim), train.z[:, 1:].reshape(-1, self.dim)
        design = torch.cat([x, torch.ones_like(x[:, :1])], dim=1).double()
        self.weights.copy_(torch.linalg.lstsq(design, y.double()).solution.to(self.weights.dtype))
        return {"train_loss": float(((design @ self.weights.double() - y) ** 2).mean())}

    def rollout(self, z0, t, n_samples=1, generator=None, inputs=None, context=None):
        steps = int(round(float((t[-1] - t[0]) / self.options["dt"])))
        states = [z0]
        for _ in range(steps):
            states.append(torch.cat([states[-1], torch.ones_like(z0[:, :1])], 1) @ self.weights)
        return torch.stack(states, 1)[None]


@pytest.fixture
def toy_registered():
    LEARNERS[LeastSquaresMap.name] = LeastSquaresMap
    yield
    del LEARNERS[LeastSquaresMap.name]


def test_closed_form_learner_trains_saves_loads_and_predicts(tmp_path, toy_registered):
    """A linear system's exact flow map is linear, so least squares recovers it to round-off."""
    ds = wb.simulate("damped_oscillator", n=8, t_end=5.0, dt=0.1, seed=0)
    model = wb.fit(ds, "lsq_map", precision="float64", out=tmp_path / "run")
    assert model.history[0]["train_loss"] < 1e-16
    loaded = wb.load_model(tmp_path / "run")
    test = wb.select_split(ds, "test")
    pred = loaded.predict(test)
    np.testing.assert_allclose(pred["state"].values[0], test["state"].values, atol=1e-6)
    np.testing.assert_array_equal(pred["state"].values, model.predict(test)["state"].values)


def test_inputs_round_trip_and_a_forced_node_beats_the_same_node_without_them(tmp_path):
    ds = wb.simulate("forced_duffing", n=32, t_end=10.0, dt=0.1, seed=0,
                     params={"delta": 0.3, "alpha": 1.0, "beta": 0.5},
                     sample_params={"amplitude": (0.3, 1.0), "omega": (0.6, 1.8)}, split=(0.75, 0.125, 0.125))
    wb.save(ds, tmp_path / "forced.h5")
    ds = wb.load(tmp_path / "forced.h5")
    assert ds["input"].dims == ("trajectory", "time", "input_variable")
    np.testing.assert_allclose(ds["input"].values[..., 0],
                               ds["param_amplitude"].values[:, None]
                               * np.cos(ds["param_omega"].values[:, None] * ds["time"].values[None]))
    test = wb.select_split(ds, "test")
    options = dict(epochs=15, steps_per_epoch=10, seed=0, window=20, lr=1e-2, batch_size=32)
    forced = wb.fit(ds, "node", **options)
    autonomous = wb.fit(ds.drop_vars("input"), "node", **options)
    with pytest.raises(UnsupportedError, match="inputs"):
        forced.predict(test["state"].values[:, 0], test["time"].values)
    rmse_forced = float(metrics.rmse(forced.predict(test), test).mean())
    rmse_autonomous = float(metrics.rmse(autonomous.predict(test.drop_vars("input")), test).mean())
    assert rmse_forced * 2 < rmse_autonomous


def test_input_interpolation_is_exact_for_linear_and_cubic_signals():
    from workbench.learners import InputSignal

    t = torch.linspace(0.0, 2.0, 21, dtype=torch.float64)
    line = (3 * t - 1)[None, :, None]
    assert torch.allclose(InputSignal(t, line).at(torch.tensor(0.731, dtype=torch.float64)),
                          torch.tensor([[3 * 0.731 - 1]], dtype=torch.float64))
    wave = torch.sin(t)[None, :, None]
    hermite = InputSignal(t, wave, "hermite").at(torch.tensor(1.05, dtype=torch.float64))
    assert abs(float(hermite) - math.sin(1.05)) < 1e-4


def test_exact_resume_of_an_epoch_run_with_a_cosine_schedule(tmp_path):
    ds = wb.simulate("van_der_pol", n=8, t_end=4.0, dt=0.1, seed=0)
    options = dict(epochs=6, steps_per_epoch=4, patience=100, schedule="cosine", seed=0, batch_size=8)
    wb.fit(ds, "node", out=tmp_path / "run", callback=lambda r: r["epoch"] < 3, **options)
    resumed = wb.fit(ds, "node", out=tmp_path / "run", resume=True, **options)
    straight = wb.fit(ds, "node", **options)
    assert [h["epoch"] for h in resumed.history] == list(range(7))
    for key in ("val_loss", "train_loss", "lr", "horizon"):
        np.testing.assert_allclose([h[key] or 0 for h in resumed.history], [h[key] or 0 for h in straight.history],
                                   rtol=1e-6, err_msg=key)


def test_resume_of_a_budgeted_run_keeps_its_clock_and_schedule(tmp_path):
    """The resumed run continues the elapsed time and cosine position; it does not restart the budget."""
    ds = wb.simulate("van_der_pol", n=8, t_end=4.0, dt=0.1, seed=0)
    options = dict(time_budget=4.0, steps_per_epoch=4, patience=1000, seed=0, batch_size=8)
    first = wb.fit(ds, "node", out=tmp_path / "run", callback=lambda r: r["elapsed"] < 1.5, **options)
    stopped_at = first.history[-1]
    resumed = wb.fit(ds, "node", out=tmp_path / "run", resume=True, **options)
    epochs = [h["epoch"] for h in resumed.history]
    assert epochs == list(range(len(epochs)))                      # nothing repeated or skipped
    after = resumed.history[len(first.history)]
    assert after["elapsed"] > stopped_at["elapsed"]                 # the clock continued
    assert after["lr"] <= stopped_at["lr"] + 1e-12                 # the cosine continued downwards
    epoch_time = max(b["elapsed"] - a["elapsed"] for a, b in zip(resumed.history, resumed.history[1:]))
    assert 4.0 <= resumed.history[-1]["elapsed"] <= 4.0 + epoch_time + 0.5   # one budget in total


def test_fit_refuses_to_overwrite_a_run_and_a_second_writer(tmp_path):
    from workbench.training.runs import RunBusyError, RunWriter

    ds = wb.simulate("van_der_pol", n=6, t_end=2.0, dt=0.1, seed=0)
    wb.fit(ds, "resnet", out=tmp_path / "run", **TINY)
    with pytest.raises(wb.WorkbenchError, match="--resume.*--overwrite"):
        wb.fit(ds, "resnet", out=tmp_path / "run", **TINY)
    wb.fit(ds, "resnet", out=tmp_path / "run", overwrite=True, **TINY)
    with RunWriter(tmp_path / "run"):
        with pytest.raises(RunBusyError, match="another process"):
            wb.fit(ds, "resnet", out=tmp_path / "run", overwrite=True, **TINY)


@pytest.mark.parametrize("bad", [{"lr": float("inf")}, {"lr": 1e6}, {"clip": -1.0}, {"batch_size": 10 ** 9},
                                 {"epochs": True}, {"seed": -1}, {"seed": 2 ** 70}, {"window": 1},
                                 {"hidden": "abc"}, {"members": 200_000}])
def test_out_of_range_options_are_refused_before_training(bad):
    ds = wb.simulate("van_der_pol", n=6, t_end=2.0, dt=0.1, seed=0)
    learner = "ensemble" if "members" in bad else "node"
    with pytest.raises(wb.WorkbenchError):
        wb.fit(ds, learner, **{**TINY, **bad})


def test_training_options_accept_numpy_numbers_and_print_them_as_numbers():
    from workbench.training import TrainConfig

    config = TrainConfig(epochs=np.int64(3), batch_size=np.int64(8), lr=np.float64(0.01), seed=np.int64(2))
    assert (config.epochs, config.batch_size, config.lr, config.seed) == (3, 8, 0.01, 2)
    assert all(type(v) in (int, float) for v in (config.epochs, config.batch_size, config.lr, config.seed))
    with pytest.raises(wb.errors.BadParameterError, match=r"epochs must be an integer in \[1, 1,000,000,000\], got 0$"):
        TrainConfig(epochs=np.int64(0))
    with pytest.raises(wb.errors.BadParameterError, match=r"lr must be a finite number in \(0, 1\], got 2.0$"):
        TrainConfig(lr=np.float64(2.0))


def test_a_loss_that_explodes_is_reported_as_divergence():
    from workbench.training.guards import DivergenceGuard

    module = torch.nn.Linear(2, 2)
    guard = DivergenceGuard(module, torch.optim.SGD(module.parameters(), lr=1.0), "node")
    assert guard.accept(1.0, 1.0)
    with pytest.raises(wb.WorkbenchError, match="diverged"):
        for _ in range(10):
            guard.accept(2.7e11, 1.0)
    assert guard.lr_scale == 0.5 ** 5


def test_fit_leaves_the_callers_threads_and_random_state_alone():
    ds = wb.simulate("van_der_pol", n=6, t_end=2.0, dt=0.1, seed=0)
    torch.set_num_threads(2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    wb.fit(ds, "resnet", threads=1, **TINY)
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.rand(3), expected)
    torch.set_num_threads(1)


def test_fit_seed_reaches_learners_with_their_own_random_draws():
    ds = wb.simulate("lorenz63", n=16, t_end=6.0, dt=0.02, seed=0)
    first, second = wb.fit(ds, "esn", seed=0, washout=20), wb.fit(ds, "esn", seed=1, washout=20)
    assert (first.meta["options"]["seed"], second.meta["options"]["seed"]) == (0, 1)
    assert not torch.equal(first.learner.weights, second.learner.weights)  # different random reservoirs


def test_a_rollout_that_leaves_the_finite_range_is_reported_as_divergence(datasets):
    model = wb.fit(datasets["ode"], "resnet", **TINY)
    with torch.no_grad():
        for parameter in model.learner.parameters():
            parameter.fill_(float("inf"))
    with pytest.raises(wb.WorkbenchError, match="rollout left the finite range"):
        model.predict(wb.select_split(datasets["ode"], "test"))


def test_a_rollout_that_blows_up_is_scored_up_to_the_blow_up(tmp_path):
    train = wb.simulate("rossler", n=16, seed=0, split=(0.75, 0.25, 0.0))
    test = wb.simulate("rossler", n=4, seed=1, split=(0.0, 0.0, 1.0))
    # at the published ridge (Lorenz-63's) nvar's quadratic map runs away on rossler within ~20 samples
    model = wb.fit(train, "nvar", ridge=2.5e-6, progress=False)
    with pytest.raises(wb.errors.DivergenceError):
        model.predict(test)
    pred = model.predict(test, on_divergence="mark")
    blow_up, times, state = pred["diverged_at"].values[0], pred["time"].values, pred["state"].values[0]
    assert np.isfinite(blow_up).all() and (blow_up > times[1]).all(), "every path blows up, after a few steps"
    for path, at in zip(state, blow_up):
        assert np.isfinite(path[times < at]).all() and np.isposinf(path[times >= at]).all()
    with pytest.raises(wb.errors.DatasetError, match="infinite"):
        wb.save(pred, tmp_path / "pred.h5")
    scores = wb.evaluate(model, test, attractor=False)
    assert int(scores["diverged_trajectories"]) == 4
    assert (scores["vpt"].values > 0).all() and (scores["vpt"].values <= blow_up - times[0]).all()
    assert np.isinf(float(scores["rmse"].isel(time=-1))) and np.isfinite(float(scores["rmse"].isel(time=0)))


def test_marking_divergence_leaves_a_finite_rollout_unchanged(datasets):
    model = wb.fit(datasets["ode"], "resnet", **TINY)
    test = wb.select_split(datasets["ode"], "test")
    marked = model.predict(test, on_divergence="mark")
    assert marked["diverged_at"].isnull().all()
    np.testing.assert_array_equal(marked["state"].values, model.predict(test)["state"].values)
    with pytest.raises(wb.errors.BadParameterError, match="on_divergence"):
        model.predict(test, on_divergence="ignore")


def test_one_blown_up_path_of_an_ensemble_makes_its_stochastic_and_energy_scores_infinite(monkeypatch):
    data = wb.simulate("pendulum", n=8, seed=0, split=(0.5, 0.25, 0.25))
    model = wb.fit(data, "ensemble", **TINY)
    rollout = model.learner.rollout

    def member_zero_of_trajectory_zero_blows_up_halfway(z0, t, n_samples=1, **kwargs):
        z = rollout(z0, t, n_samples, **kwargs).clone()
        z[0, 0, z.shape[2] // 2:, 0] = float("-inf")  # an overflow: -inf in one variable, NaN in the other
        z[0, 0, z.shape[2] // 2 + 2:, 1] = float("nan")
        return z

    monkeypatch.setattr(model.learner, "rollout", member_zero_of_trajectory_zero_blows_up_halfway)
    scores = wb.evaluate(model, data, n_samples=4)
    assert int(scores["diverged_trajectories"]) == 1
    for name in ("crps", "energy_score", "width_90"):
        second_half = scores[name].isel(time=slice(scores.sizes["time"] // 2, None))
        assert np.isposinf(second_half).all(), f"{name}: infinite, never NaN (read as unobserved)"
    assert np.isposinf(float(scores["energy_mse"])), "cos(inf) is NaN: the energy of a blown-up path is inf"


def test_a_forecast_that_blows_up_raises_and_scores_infinite_by_horizon():
    series = wb.split_time(wb.simulate("rossler", n=1, seed=0, t_end=200.0, split=None))
    model = wb.fit(series, "nvar", ridge=2.5e-6, progress=False)  # runs away at Lorenz-63's published ridge
    with pytest.raises(wb.errors.DivergenceError, match="forecast ran away"):
        model.forecast(series, 2000)
    scores = wb.evaluate(model, series, horizons=[1, 100])
    assert np.isfinite(scores["rmse"].sel(horizon=1)).all()
    assert np.isposinf(scores["rmse"].sel(horizon=100)).all(), "infinitely wrong, not NaN (read as unobserved)"
