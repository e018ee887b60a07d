"""evaluate(): the applicable metrics for deterministic, Hamiltonian and stochastic models."""
import numpy as np
import pytest

import workbench as wb
from workbench.evaluation.evaluate import summary

FAST = {"epochs": 8, "steps_per_epoch": 25, "window": 8, "seed": 0}


def test_hamiltonian_model_gets_energy_and_field_scores():
    ds = wb.simulate("mass_spring", n=12, t_end=3.0, dt=0.1, seed=0, derivative=True)
    scores = wb.evaluate(wb.fit(ds, "hnn", **FAST), ds)
    assert scores["rmse"].dims == ("time",) and scores["vpt"].dims == ("trajectory",)
    table = summary(scores)
    assert 0 <= table["vector_field_error"] < 0.3
    assert 0 <= table["energy_mse"] < 0.05 and table["nfe"] > 0
    assert float(scores["rmse"].isel(time=0)) < 1e-5  # rollouts start on the data


def test_chaotic_system_reports_vpt_in_lyapunov_times():
    ds = wb.simulate("lorenz63", n=10, t_end=2.0, dt=0.02, seed=0)
    scores = wb.evaluate(wb.fit(ds, "resnet", **FAST), ds)
    np.testing.assert_allclose(float(scores["vpt_lyapunov_median"]), float(scores["vpt_median"]) * 0.9056)


def test_stochastic_model_gets_probabilistic_and_oracle_scores():
    ds = wb.simulate("ornstein_uhlenbeck", n=24, t_end=2.0, dt=0.05, seed=0)
    scores = wb.evaluate(wb.fit(ds, "nsde", **FAST), ds, n_samples=64)
    for name in ("crps", "energy_score", "coverage_50", "coverage_90", "width_90"):
        assert scores[name].dims == ("time",)
    table = summary(scores)
    assert table["crps_oracle"] > 0 and 0.5 < table["crps_relative"] < 3
    assert 0.5 < table["coverage_90_mean"] <= 1.0


def test_mismatched_model_and_data_are_refused():
    model = wb.fit(wb.simulate("van_der_pol", n=6, t_end=1.0, dt=0.1), "resnet", epochs=1)
    with pytest.raises(wb.WorkbenchError, match="variables"):
        wb.evaluate(model, wb.simulate("lorenz63", n=6, t_end=1.0, dt=0.1))
