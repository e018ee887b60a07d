"""One rollout path: predict, forecast, the climate scores' free runs and validation all go through
Model.rollout, so the same states, times and seed give the same paths to the last bit; and a model
rolls out with the solver it trained with unless told otherwise."""
import json

import numpy as np
import pytest
import torch

import workbench as wb
from conftest import forge_run_folder
from workbench.errors import BadParameterError, UnsupportedError
from workbench.evaluation.climate import model_free_run
from workbench.learners.closed_form import validation_rollout
from workbench.model import run_files
from workbench.numerics import fixed_step_solve
from workbench.training.prepare import prepare
from workbench.training.runs import current_generation

TINY = {"epochs": 2, "steps_per_epoch": 5, "window": 8, "hidden": 16, "seed": 0, "precision": "float64"}
HORIZON = 12


@pytest.fixture(scope="module")
def vdp():
    return wb.simulate("van_der_pol", n=12, t_end=4.0, dt=0.1, seed=0)


@pytest.fixture(scope="module", params=["node", "nvar", "nsde"])
def model(request, vdp):
    """float64 models, so the climate runner's float64 copy of the learner is the learner itself."""
    options = {"precision": "float64"} if request.param == "nvar" else TINY
    fitted = wb.fit(vdp, request.param, **options)
    assert fitted.learner.scale.dtype == torch.float64
    return fitted


def _step(ds) -> float:
    """The step forecast rolls out on for a model without a series recipe (the median spacing)."""
    return float(np.median(np.diff(ds["time"].values)))


def test_predict_forecast_climate_and_validation_roll_out_the_same_paths(model, vdp):
    context = model.learner.capabilities().context
    samples = 3 if model.stochastic else 1
    test = wb.select_split(vdp, "test")
    history = test["state"].values[:, : context + 1]
    t = np.arange(HORIZON + 1) * _step(vdp)

    direct = model.rollout(history if context else history[:, 0], t, n_samples=samples, seed=7)
    assert direct.shape == (samples, test.sizes["trajectory"], HORIZON + 1, 2) and np.isfinite(direct).all()
    predicted = model.predict(test, times=t, n_samples=samples, seed=7)["state"].values
    assert np.array_equal(predicted, direct)

    # forecast continues one series from its last sample (the second after the learner's context: the
    # forecast's step is the series' median spacing)
    one = test.isel(trajectory=[0], time=slice(0, context + 2))
    forecast = model.forecast(one, HORIZON, n_samples=samples, seed=7)["state"].values
    alone = model.predict(one.isel(time=slice(1, None)), times=np.arange(HORIZON + 1) * _step(one),
                          n_samples=samples, seed=7)["state"].values
    assert np.array_equal(forecast, alone[:, :, 1:])

    # the climate scores' free run: one path (seed 0) from the same histories
    free = model_free_run(model, history, _step(vdp), HORIZON)
    assert np.array_equal(free, model.predict(test, times=t)["state"].values[0])

    # validation scores in standardised units; mapped back as predict maps back, the paths agree
    data = prepare(vdp, torch.device("cpu"), torch.float64)
    val = wb.select_split(vdp, "val")
    pred, target = validation_rollout(model.learner, data.val, data.times, HORIZON)
    times = val["time"].values[context: context + HORIZON]
    expected = model.predict(val, times=times)["state"].values[0]
    assert np.array_equal(pred * model.scaler.std + model.scaler.mean, expected)
    assert np.array_equal(target, model.scaler.to_z(val["state"].values[:, context: context + HORIZON]))


def test_different_seeds_give_different_stochastic_paths(vdp):
    model = wb.fit(vdp, "nsde", **TINY)
    x0 = wb.select_split(vdp, "test")["state"].values[:, 0]
    t = np.arange(HORIZON + 1) * _step(vdp)
    assert not np.array_equal(model.rollout(x0, t, 2, seed=0), model.rollout(x0, t, 2, seed=1))
    assert np.array_equal(model.rollout(x0, t, 2, seed=1), model.rollout(x0, t, 2, seed=1))


def test_rollout_refuses_histories_of_the_wrong_length(vdp):
    nvar = wb.fit(vdp, "nvar", precision="float64")
    assert nvar.learner.capabilities().context == 1
    t = np.arange(3) * _step(vdp)
    with pytest.raises(BadParameterError, match=r"\(N, 2, 2\)"):
        nvar.rollout(np.zeros((4, 2)), t)
    with pytest.raises(BadParameterError, match="finite"):
        nvar.rollout(np.full((4, 2, 2), np.nan), t)


@pytest.fixture(scope="module")
def rk4_model(vdp):
    return wb.fit(vdp, "node", solver="rk4", substeps=2, **TINY)


def test_a_model_trained_with_rk4_predicts_with_rk4(rk4_model, vdp):
    model = rk4_model
    x0 = wb.select_split(vdp, "test")["state"].values[:, 0]
    t = np.arange(HORIZON + 1) * _step(vdp)
    predicted = model.predict(x0, times=t)["state"].values[0]
    z0 = torch.as_tensor(model.scaler.to_z(x0))
    with torch.no_grad():
        z = fixed_step_solve(model.learner.rhs(None), z0, torch.as_tensor(t), 2, "rk4")
    assert np.array_equal(predicted, np.moveaxis(z.numpy(), 0, 1) * model.scaler.std + model.scaler.mean)
    assert model.learner.last_nfe == 4 * 2 * HORIZON
    # the user may choose another solver for one prediction; it differs by the solvers' error only
    dopri5 = model.predict(x0, times=t, solver="dopri5")["state"].values[0]
    assert not np.array_equal(predicted, dopri5)
    np.testing.assert_allclose(dopri5, predicted, rtol=1e-3, atol=1e-3)
    finer = model.predict(x0, times=t, solver={"substeps": 8})["state"].values[0]
    assert not np.array_equal(predicted, finer)
    with pytest.raises(BadParameterError, match="unknown node solver"):
        model.predict(x0, times=t, solver="rk5")
    with pytest.raises(BadParameterError, match="not \\['adjoint'\\]"):
        model.predict(x0, times=t, solver={"adjoint": True})


def test_fixed_steps_stay_per_sample_when_the_outputs_are_further_apart(rk4_model, vdp):
    """rk4 takes its substeps per sample spacing of the training data, so asking for every other sample
    gives the same path (up to the rounding of the inserted times), not one on steps twice as long."""
    x0 = wb.select_split(vdp, "test")["state"].values[:, 0]
    fine = np.arange(2 * HORIZON + 1) * rk4_model.meta["dt"]
    every = rk4_model.predict(x0, times=fine)["state"].values
    coarse = rk4_model.predict(x0, times=fine[::2])["state"].values
    assert rk4_model.learner.last_nfe == 4 * 2 * 2 * HORIZON
    np.testing.assert_allclose(coarse, every[:, :, ::2], rtol=1e-12, atol=1e-12)
    long_steps = rk4_model.predict(x0, times=fine[::2], solver={"dt": 2 * rk4_model.meta["dt"]})["state"].values
    assert np.abs(long_steps - coarse).max() > 1e3 * np.abs(coarse - every[:, :, ::2]).max()


def test_a_model_trained_with_dopri5_predicts_at_its_tolerances(vdp):
    model = wb.fit(vdp, "node", solver="dopri5", rtol=1e-4, atol=1e-5, **TINY)
    x0 = wb.select_split(vdp, "test")["state"].values[:, 0]
    t = np.arange(HORIZON + 1) * _step(vdp)
    predicted = model.predict(x0, times=t)["state"].values
    assert np.array_equal(predicted, model.predict(x0, times=t, solver={"rtol": 1e-4, "atol": 1e-5})["state"].values)
    assert not np.array_equal(predicted, model.predict(x0, times=t, solver={"atol": 1e-9})["state"].values)


def test_models_without_a_solver_refuse_one(vdp):
    nvar = wb.fit(vdp, "nvar", precision="float64")
    with pytest.raises(UnsupportedError, match="no ODE solver"):
        nvar.predict(wb.select_split(vdp, "test"), solver="rk4")


def test_a_model_file_without_its_solver_keeps_predicting_with_dopri5(tmp_path, rk4_model, vdp):
    """Before rollouts honoured the training solver they ran dopri5 at atol = rtol / 10; a file whose
    options do not name its solver still predicts so, and saving it again keeps that. A file that
    names it predicts with it."""
    model = rk4_model
    config = json.loads(run_files(model)["config.json"])
    del config["options"]["solver"]
    weights = (current_generation(model.save(tmp_path / "new")) / "model.safetensors").read_bytes()
    old = wb.load_model(forge_run_folder(tmp_path / "old", weights, config))
    atol = old.meta["rollout_solver"]["atol"]
    assert old.meta["rollout_solver"]["solver"] == "dopri5" and atol == pytest.approx(1e-6)  # rtol 1e-5 / 10
    x0 = wb.select_split(vdp, "test")["state"].values[:, 0]
    t = np.arange(HORIZON + 1) * _step(vdp)
    legacy = model.predict(x0, times=t, solver={"solver": "dopri5", "atol": atol})["state"].values
    assert np.array_equal(old.predict(x0, times=t)["state"].values, legacy)
    again = wb.load_model(old.save(tmp_path / "again"))
    assert np.array_equal(again.predict(x0, times=t)["state"].values, legacy)
    named = wb.load_model(tmp_path / "new")
    assert "rollout_solver" not in named.meta
    assert np.array_equal(named.predict(x0, times=t)["state"].values, model.predict(x0, times=t)["state"].values)
