"""Every learner through the one fit loop: learning, refusal, save/load, resume, NaN guard."""
import numpy as np
import pytest
import torch
import xarray as xr

import workbench as wb
from workbench.training.runs import current_generation
from workbench.errors import BadParameterError, DivergenceError

FAST = {"epochs": 8, "steps_per_epoch": 25, "window": 8, "seed": 0}


@pytest.fixture(scope="module")
def vdp():
    return wb.simulate("van_der_pol", n=12, t_end=4.0, dt=0.1, seed=0)


@pytest.fixture(scope="module")
def spring():
    return wb.simulate("mass_spring", n=12, t_end=3.0, dt=0.1, seed=0, derivative=True)


@pytest.mark.parametrize("learner, options", [
    ("node", {}), ("anode", {}), ("sonode", {}), ("resnet", {}), ("rknet", {}), ("lmnet", {}),
    ("ensemble", {"members": 2, "base": "resnet"}),
])
def test_validation_loss_drops_tenfold(vdp, learner, options):
    model = wb.fit(vdp, learner, **FAST, **options)
    initial, best = model.history[0]["val_loss"], min(h["val_loss"] for h in model.history)
    assert best < initial / 10, f"{learner}: val loss {initial:.3g} -> {best:.3g}"
    pred = model.predict(wb.select_split(vdp, "test"))
    assert pred.state.dims == ("sample", "trajectory", "time", "variable")
    assert pred.sizes["sample"] == (2 if learner == "ensemble" else 1)
    assert np.isfinite(pred.state.values).all()


def test_hnn_learns_mass_spring_from_derivatives(spring):
    model = wb.fit(spring, "hnn", **FAST)
    assert model.meta["objective"] == "derivative"
    assert min(h["val_loss"] for h in model.history) < model.history[0]["val_loss"] / 10
    # the learned field is a symplectic gradient: dq/dt = 2p, dp/dt = -2q for this system
    x = np.array([[0.5, 0.0], [0.0, 0.5]])
    np.testing.assert_allclose(model.vector_field(x), [[0.0, -1.0], [1.0, 0.0]], atol=0.15)


def test_nsde_learns_ornstein_uhlenbeck_diffusion():
    ds = wb.simulate("ornstein_uhlenbeck", n=32, seed=0)
    model = wb.fit(ds, "nsde", **{**FAST, "epochs": 10})
    sigma = wb.system("ornstein_uhlenbeck").defaults["sigma"]
    g = model.diffusion(np.linspace(-0.5, 0.5, 5)[:, None])
    np.testing.assert_allclose(g, sigma, rtol=0.15)
    # the transition NLL drops by >= 0.15 nats per sample (measured with the default 26/3/3 split)
    assert min(h["val_loss"] for h in model.history) < model.history[0]["val_loss"] - 0.15
    paths = model.predict([[1.0]], np.linspace(0, 1, 11), n_samples=64, seed=1)
    assert paths.sizes["sample"] == 64 and paths.state.isel(time=-1).std() > 0.1


def test_save_load_predict_identical(tmp_path, vdp):
    model = wb.fit(vdp, "node", **{**FAST, "epochs": 2})
    model.save(tmp_path / "run")
    back = wb.load_model(tmp_path / "run")
    a = model.predict(wb.select_split(vdp, "test"))
    b = back.predict(wb.select_split(vdp, "test"))
    xr.testing.assert_identical(a, b)
    assert back.history == model.history
    assert float(back.learner.rate) == float(model.learner.rate) != 1.0  # the data's rate travels with the weights
    path = wb.save(a, tmp_path / "pred.h5")
    with xr.open_dataset(path, engine="h5netcdf") as opened:
        assert opened.state.dims == ("sample", "trajectory", "time", "variable")


def test_version_2_models_load_with_the_rate_they_were_trained_at(tmp_path, vdp):
    """Files saved before learners carried the data's rate trained at rate 1; they load so, and
    predict what that network predicts at rate 1."""
    import json

    from conftest import forge_run_folder
    from workbench.model import run_files, weights_bytes

    model = wb.fit(vdp, "node", **{**FAST, "epochs": 1})
    state = {k: v for k, v in model.learner.state_dict().items() if k != "rate"}
    config = json.loads(run_files(model)["config.json"])
    config["format_version"] = 2
    old = wb.load_model(forge_run_folder(tmp_path / "v2", weights_bytes(state), config))
    assert float(old.learner.rate) == 1.0
    model.learner.rate.fill_(1.0)
    test = wb.select_split(vdp, "test")
    xr.testing.assert_allclose(old.predict(test), model.predict(test))


def test_tampered_weights_are_refused(tmp_path, vdp):
    wb.fit(vdp, "resnet", **{**FAST, "epochs": 1}).save(tmp_path / "run")
    weights = current_generation(tmp_path / "run") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(wb.WorkbenchError, match="checksum"):
        wb.load_model(tmp_path / "run")


def test_resume_continues_from_the_saved_step(tmp_path, vdp):
    options = {**FAST, "epochs": 6, "patience": 100}
    interrupted = wb.fit(vdp, "resnet", out=tmp_path / "run", callback=lambda r: r["epoch"] < 3, **options)
    assert len(interrupted.history) == 4
    resumed = wb.fit(vdp, "resnet", out=tmp_path / "run", resume=True, **options)
    straight = wb.fit(vdp, "resnet", **options)
    assert [h["epoch"] for h in resumed.history] == list(range(7))
    np.testing.assert_allclose([h["val_loss"] for h in resumed.history],
                               [h["val_loss"] for h in straight.history], rtol=1e-5)


def test_nan_guard_restores_weights_and_halves_lr(vdp, monkeypatch):
    from workbench.learners.discrete import DiscreteMap

    original = DiscreteMap.loss
    calls = {"n": 0}

    def poisoned(self, batch, horizon, objective):
        loss = original(self, batch, horizon, objective)
        if self.training:
            calls["n"] += 1
        return loss * float("nan") if calls["n"] in (3, 4) else loss

    monkeypatch.setattr(DiscreteMap, "loss", poisoned)
    model = wb.fit(vdp, "resnet", **{**FAST, "epochs": 2})
    assert model.history[1]["lr"] == pytest.approx(3e-3 / 4)
    assert all(np.isfinite(h["val_loss"]) for h in model.history)
    monkeypatch.setattr(DiscreteMap, "loss", lambda self, *a: original(self, *a) * (float("nan") if self.training else 1.0))
    with pytest.raises(DivergenceError, match="diverged"):
        wb.fit(vdp, "resnet", **{**FAST, "epochs": 2})


@pytest.mark.parametrize("data, learner, message", [
    ("vdp", "hnn", "needs canonical coordinates"),
    ("ou", "node", "use 'nsde'"),
    ("masked", "resnet", "regularly sampled"),
    ("vdp", "nosuch", "unknown learner"),
])
def test_unsupported_data_is_refused(vdp, data, learner, message):
    datasets = {"vdp": vdp, "ou": wb.simulate("ornstein_uhlenbeck", n=4, t_end=1.0, dt=0.1),
                "masked": wb.simulate("van_der_pol", n=4, t_end=1.0, dt=0.1, missing=0.2)}
    with pytest.raises(wb.WorkbenchError, match=message):
        wb.fit(datasets[data], learner, epochs=1)


def test_bad_options_and_devices_are_named(vdp):
    with pytest.raises(BadParameterError, match="no option"):
        wb.fit(vdp, "node", epochs=1, hiden=3)
    if not torch.cuda.is_available():
        with pytest.raises(BadParameterError, match="CUDA is not available"):
            wb.fit(vdp, "node", epochs=1, device="cuda")
    with pytest.raises(BadParameterError, match="duration"):
        wb.fit(vdp, "node", time_budget="soon")


def test_callback_can_stop_and_time_budget_ends_training(vdp):
    seen = []
    model = wb.fit(vdp, "resnet", **{**FAST, "epochs": 50}, callback=lambda r: seen.append(r) or r["epoch"] < 2)
    assert len(model.history) == 3 and seen[-1]["epoch"] == 2
    # patience out of reach, so only the budget can end the run: the last epoch is the first to end past it
    model = wb.fit(vdp, "resnet", time_budget=1.5, steps_per_epoch=5, patience=10**6)
    assert model.history[-1]["elapsed"] >= 1.5 > model.history[-2]["elapsed"]


def test_masked_irregular_data_trains_continuous_learner():
    ds = wb.simulate("van_der_pol", n=12, t_end=4.0, dt=0.1, seed=0, missing=0.3)
    model = wb.fit(ds, "node", **FAST)
    assert min(h["val_loss"] for h in model.history) < model.history[0]["val_loss"] / 5


def test_stalled_rollout_is_reported_not_hung(vdp):
    model = wb.fit(vdp, "node", epochs=1, steps_per_epoch=2, max_steps=5)
    with pytest.raises(wb.WorkbenchError, match="budget of 5 steps"):
        model.predict([[1.0, 0.0]], np.linspace(0.0, 200.0, 11))


def test_adjoint_gradients_match_backprop_through_the_solver(vdp):
    from workbench.learners import get_learner
    from workbench.training.prepare import WindowSampler, prepare

    data = prepare(vdp, torch.device("cpu"), torch.float64)
    batch = WindowSampler(data.train, data.times, 6, torch.Generator().manual_seed(0)).sample(8)
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(0)
        learner = get_learner("node")(2, solver="dopri5", rtol=1e-9, atol=1e-10, adjoint=adjoint).double()
        learner.loss(batch, 6, "trajectory").backward()
        grads.append(torch.cat([p.grad.ravel() for p in learner.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-8)


def test_edited_model_config_is_refused(tmp_path, vdp):
    """The checksum covers the config too: a changed scaler or a removed key is caught before use."""
    import json

    wb.fit(vdp, "resnet", epochs=1, steps_per_epoch=2).save(tmp_path / "run")
    path = current_generation(tmp_path / "run") / "config.json"
    original = json.loads(path.read_text())
    for edit in ({"scaler": {**original["scaler"], "std": [1.0] * 2}}, {"variables": None}):
        path.write_text(json.dumps({**original, **edit}))
        with pytest.raises(wb.WorkbenchError, match="modified after saving"):
            wb.load_model(tmp_path / "run")


def test_patience_waits_for_the_curriculum_to_reach_the_full_window(vdp):
    """The validation loss is taken on full windows; while the curriculum still trains on shorter
    ones it need not improve, and stopping then ended the shipped demo's 240 s run after 16 s on
    windows of 4 samples. Patience counts only epochs trained on the full window."""
    model = wb.fit(vdp, "node", epochs=20, steps_per_epoch=5, window=8, lr=0.05, patience=1, seed=0,
                   progress=False)
    horizons = [h["horizon"] for h in model.history[1:]]
    assert horizons[-1] == 8, f"stopped at horizon {horizons[-1]} after {len(horizons)} epochs"
    growing = [h for h in model.history[1:] if h["horizon"] < 8]
    assert len(growing) >= 9  # the curriculum grows over the first half of the 20 epochs
