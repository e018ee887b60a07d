"""The Streamlit app through streamlit.testing: every page renders, and a user's path works."""
import base64
import json
from pathlib import Path

import numpy as np

import pytest
from streamlit.testing.v1 import AppTest

ENTRY = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")


def plotly_figures(at):
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def values(array):
    """Plotly sends numeric arrays base64-encoded ({"dtype", "bdata"}) or as plain lists."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def trace_names(at):
    return {trace.get("name") for figure in plotly_figures(at) for trace in figure["data"]}


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture()
def app():
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.run()
    return at


def test_default_page_compares_learned_and_true_flows(app):
    assert_clean(app)
    assert app.title[0].value == "Learned vs true flow"
    names = trace_names(app)
    assert {"true", "learned", "true drift", "learned drift"} <= names
    series = plotly_figures(app)[0]
    true_x = next(t for t in series["data"] if t.get("name") == "true")
    learned_x = next(t for t in series["data"] if t.get("name") == "learned")
    assert len(values(true_x["x"])) == len(values(learned_x["x"])) > 100
    assert not np.allclose(values(true_x["y"]), values(learned_x["y"]))  # two different curves
    assert any(m.label == "median valid prediction time" for m in app.metric)


def test_systems_page_generates_and_plots(app):
    app.switch_page("views/systems.py").run()
    assert_clean(app)
    assert app.latex, "equations are rendered"
    app.selectbox[0].set_value("van_der_pol").run()
    app.button[0].click().run()  # the form's Generate button
    assert_clean(app)
    assert "van_der_pol" in app.success[0].value
    assert "true" in trace_names(app)
    assert app.get("download_button")


def test_generate_train_compare_round_trip(app):
    app.switch_page("views/systems.py").run()
    app.selectbox[0].set_value("van_der_pol").run()
    app.button[0].click().run()
    label = next(s for s in app.session_state["datasets"])
    app.switch_page("views/train.py").run()
    assert_clean(app)
    app.selectbox[0].set_value(label).run()
    app.selectbox[1].set_value("resnet").run()
    app.number_input[0].set_value(5).run()  # time budget in seconds
    app.button[0].click().run()
    assert_clean(app)
    trained = [k for k in app.session_state["models"] if k.startswith("resnet")]
    assert trained and app.get("download_button")
    app.switch_page("views/compare.py").run()
    app.selectbox[0].set_value(trained[0]).run()
    assert_clean(app)
    assert app.selectbox[1].value == label
    assert {"true", "learned"} <= trace_names(app)


def test_uncertainty_page_shows_fan_chart_and_calibration(app):
    app.switch_page("views/uncertainty.py").run()
    assert_clean(app)
    names = trace_names(app)
    assert {"90% band", "50% band", "learned median", "true paths", "ideal", "true SDE samples"} <= names


def test_bad_upload_shows_an_error_not_a_traceback(app):
    app.switch_page("views/data.py").run()
    app.file_uploader[0].set_value(("broken.h5", b"this is not hdf5", "application/x-hdf5")).run()
    assert_clean(app)
    assert app.error and "not an HDF5 file" in app.error[0].value
    csv = b"trajectory,time,x\n0,0.0,1.0\n0,1.0,2.0\n"
    app.file_uploader[0].set_value(("good.csv", csv, "text/csv")).run()
    assert_clean(app)
    assert "is valid" in app.success[0].value
