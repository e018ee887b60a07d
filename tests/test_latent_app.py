"""Hidden variables beside their read-out from a latent model (issue 25, must-show 5): the labelled
read-out (workbench.evaluation.hidden) and the Compare page's panel drawing it."""
import re
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import workbench as wb
from workbench.data.schema import select_split
from workbench.errors import DatasetError, UnsupportedError
from workbench.evaluation import has_latent_state, hidden_r2, hidden_readout
from workbench.evaluation.hidden import latent_trajectories

from test_app import ENTRY, assert_clean, axis_titles, plotly_figures, show, trace_names, values
from test_latent import LastSample

TINY = {"latent": 4, "hidden": 16, "context": 6}


@pytest.fixture(scope="module")
def fitted():
    """Van der Pol with only x observed (30% of samples dropped) and a latent ODE trained briefly on it."""
    ds = wb.simulate("van_der_pol", n=12, t_end=8.0, dt=0.2, observe=["x"], missing=0.3, seed=3)
    model = wb.fit(ds, learner="latent_ode", epochs=2, steps_per_epoch=5, window=14, batch_size=32, seed=0,
                   progress=False, **TINY)
    return ds, model


def test_readout_is_labelled_and_scores_what_hidden_r2_reports(fitted):
    ds, model = fitted
    train, test = select_split(ds, "train"), select_split(ds, "test")
    out = hidden_readout(model, train, test)
    c = TINY["context"]
    assert out["readout"].dims == ("trajectory", "time", "hidden_variable")
    assert out["readout"].shape == (test.sizes["trajectory"], ds.sizes["time"] - c, 1)
    assert list(out["hidden_variable"].values) == ["y"] and list(out["hidden_units"].values) == ["1"]
    np.testing.assert_array_equal(out["time"].values, ds["time"].values[c:])
    np.testing.assert_array_equal(out["hidden_state"].values, test["hidden_state"].values[:, c:])
    np.testing.assert_allclose(out["r2"].values, hidden_r2(model, train, test).values, rtol=1e-12)
    # every history of this data holds two observations: a read-out at every time
    assert np.isfinite(out["readout"].values).all()


def test_readout_of_an_exactly_linear_latent_reproduces_the_hidden_variables():
    # a = x + y and b = x - y: the stub's latent state (the last sample) determines x and y linearly
    ds = wb.simulate("van_der_pol", n=8, t_end=4.0, dt=0.1, seed=5, observe={"a": {"x": 1, "y": 1},
                                                                              "b": {"x": 1, "y": -1}})
    stub = SimpleNamespace(learner=LastSample(2), name="last_sample_stub")
    out = hidden_readout(stub, select_split(ds, "train"), select_split(ds, "test"))
    np.testing.assert_allclose(out["readout"].values, out["hidden_state"].values, atol=1e-6)
    np.testing.assert_allclose(out["r2"].values, 1.0, atol=1e-9)


def test_a_history_with_one_observation_has_no_latent_state(fitted):
    ds, model = fitted
    one = select_split(ds, "test").copy(deep=True)
    one["mask"].values[0, :7] = [True] + [False] * 6  # the first history keeps one observation
    paths = latent_trajectories(model, one)
    assert paths.dims == ("trajectory", "time", "latent") and paths.sizes["latent"] == TINY["latent"]
    c = TINY["context"]
    counts = np.stack([one["mask"].values[:, end - c:end + 1].sum(1) for end in range(c, one.sizes["time"])], 1)
    assert counts[0, 0] == 1 and (counts >= 2).sum() > counts.size // 2
    np.testing.assert_array_equal(np.isfinite(paths.values).all(-1), counts >= 2)


def test_models_without_a_latent_state_and_data_without_hidden_variables_are_refused(fitted):
    ds, model = fitted
    full = wb.simulate("van_der_pol", n=4, t_end=2.0, dt=0.2, seed=1)
    node = wb.fit(full, "node", epochs=1, steps_per_epoch=1, progress=False)
    assert has_latent_state(model) and not has_latent_state(node)
    with pytest.raises(UnsupportedError, match="no latent state") as info:
        hidden_readout(node, full, full)
    assert "latent_ode" in info.value.fix
    with pytest.raises(DatasetError, match="no hidden variables") as info:
        hidden_readout(model, full, full)
    assert "observe" in info.value.fix


def test_compare_shows_the_forecast_and_the_hidden_variable_beside_its_readout(fitted):
    ds, model = fitted
    app = AppTest.from_file(ENTRY, default_timeout=180)
    app.session_state["datasets"] = {"van der pol, x observed": ds}
    app.session_state["models"] = {"latent_ode on x": model}
    app.run()
    show(app, "latent_ode on x", "van der pol, x observed")
    assert_clean(app)
    # the observed variable with the forecast, then the hidden one beside its read-out
    assert {"true", "learned"} <= trace_names(app)
    figure = next(f for f in plotly_figures(app) if any(t.get("name") == "true y (hidden)" for t in f["data"]))
    truth, readout = figure["data"]
    r2 = float(re.fullmatch(r"read-out of y from the latent state \(test R² (\S+)\)", readout["name"]).group(1))
    assert -np.inf < r2 <= 1.0
    expected = hidden_readout(model, select_split(ds, "train"), select_split(ds, "test"))
    assert r2 == pytest.approx(float(expected["r2"].values[0]), rel=5e-3)  # shown to 3 digits
    np.testing.assert_allclose(values(truth["y"]).astype(float), expected["hidden_state"].values[0, :, 0])
    np.testing.assert_allclose(values(readout["y"]).astype(float), expected["readout"].values[0, :, 0], rtol=1e-6)
    np.testing.assert_allclose(values(readout["x"]).astype(float), expected["time"].values)
    assert {"y [dimensionless]", "time [dimensionless]"} <= axis_titles(app)
    assert any("hidden_r2" in c.value for c in app.caption)
