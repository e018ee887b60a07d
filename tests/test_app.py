"""The Streamlit app through streamlit.testing: every page renders, a user's path works, and the
defects users hit (stale data, tracebacks, label-keyed caches, unusable training page) stay fixed."""
import base64
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import workbench as wb
from workbench.demo import demo_paths, model_key

APP = Path(__file__).resolve().parent.parent / "app"
ENTRY = str(APP / "streamlit_app.py")
sys.path.insert(0, str(APP))
import charts  # noqa: E402  (the app folder is not a package)
import state  # noqa: E402
LORENZ_MODEL = "demo: node on lorenz63"


def plotly_figures(at):
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def values(array):
    """Plotly sends numeric arrays base64-encoded ({"dtype", "bdata"}) or as plain lists."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def trace_names(at):
    return {trace.get("name") for figure in plotly_figures(at) for trace in figure["data"]}


def trace_values(at, name):
    """The y values of the first plotted trace called ``name``, as floats."""
    trace = next(trace for figure in plotly_figures(at) for trace in figure["data"] if trace.get("name") == name)
    return values(trace["y"]).astype(float)


def show(at, model_label, data_label):
    """Pick a model and a dataset in the page's two select boxes, and check the page renders cleanly."""
    at.selectbox[0].set_value(model_label).run()
    at.selectbox[1].set_value(data_label).run()
    assert_clean(at)


def axis_titles(at):
    titles = set()
    for figure in plotly_figures(at):
        for key, axis in figure["layout"].items():
            if key.startswith(("xaxis", "yaxis")) and isinstance(axis, dict) and "title" in axis:
                titles.add(axis["title"]["text"])
    return titles


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not any("Unexpected error" in e.value for e in at.error), [e.value for e in at.error]


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture()
def app():
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.run()
    return at


def test_default_page_compares_learned_and_true_flows_with_units(app):
    assert_clean(app)
    assert app.title[0].value == "Learned vs true flow"
    names = trace_names(app)
    assert {"true", "learned", "true drift", "learned drift", "click to start here"} <= names
    series = plotly_figures(app)[0]
    true_x = next(t for t in series["data"] if t.get("name") == "true")
    learned_x = next(t for t in series["data"] if t.get("name") == "learned")
    assert len(values(true_x["x"])) == len(values(learned_x["x"])) > 100
    assert not np.allclose(values(true_x["y"]), values(learned_x["y"]))  # two different curves
    # lorenz63 is dimensionless: every axis says so, and VPT is given in time units and Lyapunov times
    assert {"x [dimensionless]", "time [dimensionless]"} <= axis_titles(app)
    assert metric(app, "median valid prediction time").endswith("time units")
    assert float(metric(app, "VPT [Lyapunov times]")) > 0


def lorenz(seed, rho=28.0):
    return wb.simulate("lorenz63", n=16, t_end=4.0, dt=0.02, seed=seed, params={"rho": rho})


def test_cached_scores_follow_content_not_labels(app):
    app.session_state["datasets"] = {"mine": lorenz(1)}
    app.run()
    app.selectbox[1].set_value("mine").run()
    assert_clean(app)
    first = metric(app, "mean RMSE [dimensionless]")
    app.session_state["datasets"] = {"mine": lorenz(2, rho=35.0)}  # same label, other data
    app.run()
    assert_clean(app)
    assert app.selectbox[1].value == "mine"
    assert metric(app, "mean RMSE [dimensionless]") != first
    app.session_state["datasets"] = {"mine": lorenz(1)}  # the first content again: same scores
    app.run()
    assert metric(app, "mean RMSE [dimensionless]") == first


def test_systems_page_generates_plots_with_units_and_facts_table(app):
    app.switch_page("views/systems.py").run()
    assert_clean(app)
    assert app.latex, "equations are rendered"
    assert not app.json, "facts are a table, not raw JSON"
    assert app.table, "facts are a table whose text wraps"
    app.selectbox[0].set_value("damped_pendulum").run()
    app.button[0].click().run()  # the form's Generate button
    assert_clean(app)
    assert "damped_pendulum" in app.success[0].value
    assert "true" in trace_names(app)
    assert {"theta [rad]", "omega [rad/s]", "time [s]"} <= axis_titles(app)
    assert app.get("download_button")


def test_systems_page_never_shows_the_previous_systems_data(app):
    app.switch_page("views/systems.py").run()
    app.selectbox[0].set_value("van_der_pol").run()
    app.button[0].click().run()
    assert app.get("download_button")
    app.selectbox[0].set_value("duffing").run()  # switched, not generated
    assert_clean(app)
    assert not app.success and not app.get("download_button") and not app.get("plotly_chart")
    assert "duffing" in app.info[0].value


def test_systems_page_bounds_the_request(app):
    app.switch_page("views/systems.py").run()
    t_end = next(w for w in app.number_input if w.label.startswith("t_end"))
    dt = next(w for w in app.number_input if w.label.startswith("dt"))
    assert t_end.max is not None and dt.min > 0
    dt.set_value(dt.min)
    t_end.set_value(t_end.max)
    app.button[0].click().run()
    assert_clean(app)
    assert app.error and "more than this page holds" in app.error[0].value
    assert not app.session_state["datasets"]


def wait_for_training(app, timeout_s=120):
    app.session_state["job"].wait(timeout_s)
    app.run()


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
    assert any(b.label == "Stop" for b in app.button), "the page stays usable and offers Stop while training"
    wait_for_training(app)
    assert_clean(app)
    trained = [k for k in app.session_state["models"] if k.startswith("resnet")]
    assert trained and app.get("download_button")
    # after a normal finish: no Stop button, one loss chart with comparable curves
    assert not any(b.label == "Stop" for b in app.button)
    assert len(plotly_figures(app)) == 1
    assert {"training (at the training horizon)", "validation (at the training horizon)",
            "validation (full window)"} <= trace_names(app)
    app.switch_page("views/compare.py").run()
    app.selectbox[0].set_value(trained[0]).run()
    assert_clean(app)
    assert app.selectbox[1].value == label
    assert {"true", "learned"} <= trace_names(app)


def test_stop_keeps_the_best_weights(app):
    app.switch_page("views/train.py").run()
    app.selectbox[1].set_value("resnet").run()
    app.number_input[0].set_value(60).run()
    app.button[0].click().run()
    job = app.session_state["job"]
    while not job.history:
        time.sleep(0.2)
    next(b for b in app.button if b.label == "Stop").click().run()
    job.wait(60)
    app.run()
    assert_clean(app)
    assert "Stopped after epoch" in app.success[0].value
    assert any("(stopped)" in k for k in app.session_state["models"])


def test_train_page_offers_only_learners_that_fit(app):
    app.switch_page("views/train.py").run()
    app.selectbox[0].set_value("demo: lorenz63").run()
    assert_clean(app)
    offered = [option.split(" — ")[0] for option in app.selectbox[1].options]
    assert "node" in offered and "hnn" not in offered and "sonode" not in offered  # 3 variables: no (q, p)
    greyed = " ".join(m.value for m in app.markdown)
    assert "hnn" in greyed and "sonode" in greyed


def test_uncertainty_page_shows_fan_chart_and_calibration(app):
    app.switch_page("views/uncertainty.py").run()
    assert_clean(app)
    names = trace_names(app)
    assert {"90% band", "50% band", "learned median", "true SDE paths", "ideal", "true SDE samples"} <= names


def test_uncertainty_page_offers_only_matching_datasets(app):
    app.switch_page("views/uncertainty.py").run()
    assert "demo: lorenz63" not in app.selectbox[1].options
    assert app.selectbox[1].options == ["demo: double_well"]
    assert_clean(app)


def test_bad_upload_names_the_users_file_and_gives_page_advice(app):
    app.switch_page("views/data.py").run()
    app.file_uploader[0].set_value(("broken.h5", b"this is not hdf5", "application/x-hdf5")).run()
    assert_clean(app)
    message = app.error[0].value
    assert "'broken.h5'" in message and "/tmp" not in message
    # the problem, then the page's own advice as the fix (not the API's 'write it with workbench.save')
    assert message.startswith("DatasetError: 'broken.h5'") and "**Fix:** upload an HDF5 file" in message
    assert "workbench.save" not in message and "Systems page" in message
    csv = b"trajectory,time,x\n0,0.0,1.0\n0,1.0,2.0\n"
    app.file_uploader[0].set_value(("good.csv", csv, "text/csv")).run()
    assert_clean(app)
    assert "is valid" in app.success[0].value


def test_csv_with_dates_is_plotted_on_a_date_axis(app):
    app.switch_page("views/data.py").run()
    rows = "\n".join(f"2020-{m:02d}-01,{410 + m / 10 if m != 3 else ''}" for m in range(1, 13))
    app.file_uploader[0].set_value(("co2.csv", f"date,co2 [ppm]\n{rows}\n".encode(), "text/csv")).run()
    assert_clean(app)
    assert app.selectbox[0].value == "date"
    assert "is valid" in app.success[0].value
    assert {"date", "co2 [ppm]"} <= axis_titles(app)
    x = values(plotly_figures(app)[0]["data"][0]["x"])
    assert str(x[0]).startswith("2020-01-01")  # dates on the axis, not offsets
    next(b for b in app.button if b.label == "Split").click().run()  # the time split chooser
    assert_clean(app)
    split = app.session_state["datasets"]["uploaded: co2.csv (time split)"]
    assert set(split["split"].values) == {"train", "val", "test"}


def test_measured_series_forecast_of_the_held_out_tail_with_baselines(app):
    app.switch_page("views/train.py").run()
    app.selectbox[0].set_value("real: sunspots (time split)").run()
    app.selectbox[1].set_value("nsde").run()
    app.number_input[0].set_value(5).run()
    app.button[0].click().run()
    wait_for_training(app)
    assert_clean(app)
    trained = next(k for k in app.session_state["models"] if k.startswith("nsde"))
    app.switch_page("views/compare.py").run()
    app.selectbox[0].set_value(trained).run()
    assert_clean(app)
    assert app.selectbox[1].value == "real: sunspots (time split)"
    names = trace_names(app)
    assert {"observed", "forecast from the test start", "learned", "persistence", "AR(p)"} <= names
    assert any(n.startswith("climatology") for n in names)
    assert {"year", "forecast horizon [year]"} & axis_titles(app)
    app.switch_page("views/uncertainty.py").run()
    app.selectbox[0].set_value(trained).run()
    assert_clean(app)
    assert {"90% band", "learned median", "observed (held out)", "ideal"} <= trace_names(app)


def test_sindy_model_shows_discovered_and_true_equations_with_coefficient_errors(app):
    data = wb.load(demo_paths("ode")[0])
    app.session_state["models"] = {"sindy on lorenz63": wb.fit(data, "sindy", progress=False)}
    app.run()
    app.selectbox[0].set_value("sindy on lorenz63").run()
    assert_clean(app)
    latex = [element.value for element in app.latex]
    assert any("\\frac{dx}{dt} = -10 x + 10 y" in line for line in latex)
    assert any("\\sigma (y - x)" in line for line in latex), "the catalog's true equations beside them"
    table = next(frame.value for frame in app.dataframe if "relative error" in frame.value.columns)
    assert len(table) == 7 and table["relative error"].max() < 0.01
    assert not any(chart.key == "long_run_density" for chart in app.get("plotly_chart")), "computed only on demand"


def test_long_run_panel_draws_densities_spectra_and_exponents(app):
    app.toggle(key="long_run_on").set_value(True).run()
    assert_clean(app)
    assert {"invariant density (long free runs)", "power spectrum of x"} <= {
        figure["layout"]["title"]["text"] for figure in plotly_figures(app) if "title" in figure["layout"]}
    true_exponent = float(metric(app, "Lyapunov exponent, true"))
    assert true_exponent == pytest.approx(0.9056, abs=5e-4)  # the catalog value, shown to 3 digits
    assert float(metric(app, "Lyapunov exponent, learned")) == pytest.approx(0.9056, rel=0.2)


def test_compare_page_draws_a_context_map_that_blows_up_up_to_the_blow_up(app):
    data = wb.simulate("rossler", n=16, seed=0, split=(0.5, 0.25, 0.25))
    app.session_state["datasets"] = {"rossler": data}
    # at Lorenz-63's published ridge nvar runs away on rossler in ~20 samples
    app.session_state["models"] = {"nvar on rossler": wb.fit(data, "nvar", ridge=2.5e-6, progress=False)}
    app.run()
    show(app, "nvar on rossler", "rossler")
    assert any("rollout of 4 of 4 trajectories left the finite numbers" in w.value for w in app.warning)
    path = trace_values(app, "learned")
    assert np.isfinite(path[:5]).all() and np.isnan(path[-1]), "drawn up to the blow-up, a gap after it"
    assert metric(app, "mean RMSE [dimensionless]") == "inf"
    assert any("no vector field to draw" in i.value for i in app.info), "a map on histories: panels left out"


def test_uncertainty_page_keeps_the_fan_when_one_path_blows_up(app):
    data = wb.simulate("harmonic_oscillator", n=8, seed=0, split=(0.5, 0.25, 0.25))
    model = wb.fit(data, "ensemble", epochs=1, steps_per_epoch=1, window=4, progress=False)
    rollout = model.learner.rollout

    def first_path_blows_up_halfway(z0, t, n_samples=1, **kwargs):
        z = rollout(z0, t, n_samples, **kwargs).clone()
        z[0, :, z.shape[2] // 2:] = float("nan")
        return z

    model.learner.rollout = first_path_blows_up_halfway
    app.session_state["datasets"] = {"oscillator": data}
    app.session_state["models"] = {"ensemble (one path blows up)": model}
    app.switch_page("views/uncertainty.py").run()
    show(app, "ensemble (one path blows up)", "oscillator")
    assert any("left the finite numbers" in w.value for w in app.warning)
    assert np.isfinite(trace_values(app, "learned median")).all(), "one path of several does not move the median"


def test_downloaded_model_zip_uploads_back_to_the_same_model():
    model = wb.load_model(demo_paths("ode")[1], device="cpu")
    data = state.model_zip(model)
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["config.json", "history.json", "model.safetensors"]
    assert len(data) > 10_000  # the weights, not an empty archive (it was 22 bytes)
    back = state.model_from_zip("node-model.zip", data)
    assert model_key(back) == model_key(model)
    test = wb.select_split(wb.load(demo_paths("ode")[0]), "test").isel(trajectory=[0, 1])
    np.testing.assert_array_equal(back.predict(test)["state"].values, model.predict(test)["state"].values)


def test_netcdf_upload_with_a_time_dimension_is_read_as_the_page_says(tmp_path):
    import xarray as xr

    times = np.arange(30.0)
    raw = xr.Dataset({"level": ("time", np.sin(times / 5), {"units": "m"})},
                     coords={"time": ("time", times, {"units": "s"})})
    raw.to_netcdf(tmp_path / "gauge.nc", engine="h5netcdf")
    ds = state.uploaded_dataset("gauge.nc", (tmp_path / "gauge.nc").read_bytes())
    assert [str(v) for v in ds["variable"].values] == ["level"]
    np.testing.assert_allclose(ds["state"].values[0, :, 0], np.sin(times / 5))
    assert "NetCDF file with a time dimension" in state.UPLOAD_ADVICE[".nc"]


def dated_series(gap: bool):
    """Three van der Pol series as a daily CSV with ISO dates, read by wb.from_csv (no split in time);
    with ``gap`` the first series misses x on days 40 to 49."""
    x = wb.simulate("van_der_pol", n=3, t_end=30.0, dt=0.1, seed=0)["state"].values
    dates = np.datetime64("2020-01-01") + np.arange(x.shape[1])
    rows = ["trajectory,date,x,y"] + [
        f"{k},{day},{'' if gap and k == 0 and 40 <= i < 50 else f'{x[k, i, 0]:.6f}'},{x[k, i, 1]:.6f}"
        for k in range(3) for i, day in enumerate(dates)]
    return wb.from_csv(("\n".join(rows) + "\n").encode())


def test_compare_draws_a_dated_series_not_split_in_time_with_gaps_as_breaks(app):
    data = dated_series(gap=True)
    app.session_state["datasets"] = {"dated": data}
    app.session_state["models"] = {"nvar on dates": wb.fit(dated_series(gap=False), "nvar", ridge=1e-6,
                                                           progress=False)}
    app.run()
    show(app, "nvar on dates", "dated")  # was a UFuncTypeError: times[0] + vpt with datetime64
    figure = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if c.key == "compare_timeseries")
    true_x = next(t for t in figure["data"] if t.get("name") == "true")
    assert str(values(true_x["x"])[0]).startswith("2020-01-02")  # dates (nvar starts after its 1-sample context)
    assert figure["layout"]["shapes"][0]["x0"].startswith("2020-")  # the valid-prediction-time line, a date
    # the 10 unmeasured days of x are a break in the true curve, not a straight line across
    true = trace_values(app, "true")
    assert np.isnan(true).sum() == 10 and all(t.get("connectgaps") is False for t in figure["data"])
    # the error band is the truth +- |learned - true|: it is centred on the truth, not on the prediction
    upper = next(values(t["y"]).astype(float) for t in figure["data"] if t.get("name") == charts.ERROR_BAND_NAME)
    learned = trace_values(app, "learned")
    finite = np.isfinite(upper)
    np.testing.assert_allclose(upper[finite] - true[finite], np.abs(learned - true)[finite], rtol=1e-9, atol=1e-12)


def test_loss_chart_after_one_epoch_shows_a_point_on_log_ticks_1_2_5():
    figure = charts.loss_curve([{"epoch": 1, "train_loss": 0.5, "val_loss": 0.7, "val_loss_at_horizon": 0.6}])
    assert [trace.mode for trace in figure.data] == ["lines+markers"] * 3
    assert figure.layout.yaxis.type == "log"
    assert list(figure.layout.yaxis.ticktext) == ["0.2", "0.5", "1"]  # full values, not bare digits
    axis = charts.log_axis([7.0, 14.0, 28.0, 56.0, 112.0, 224.0])  # forecast horizons in days
    assert axis["ticktext"] == ["5", "10", "20", "50", "100", "200", "500"]
    many = charts.loss_curve([{"epoch": k, "train_loss": 1 / k, "val_loss": 1 / k} for k in range(1, 200)])
    assert {trace.mode for trace in many.data} == {"lines"}  # long curves stay plain lines


def test_new_data_and_a_model_trained_in_the_background_are_what_the_pages_select(app):
    app.switch_page("views/systems.py").run()
    app.selectbox[0].set_value("van_der_pol").run()
    app.button[0].click().run()
    label = next(iter(app.session_state["datasets"]))
    app.switch_page("views/train.py").run()
    assert app.selectbox[0].value == label  # the dataset just generated, not the first demo
    app.selectbox[1].set_value("resnet").run()
    app.number_input[0].set_value(5).run()
    app.button[0].click().run()
    job = app.session_state["job"]
    app.switch_page("views/compare.py").run()  # away from Train while the model trains
    assert_clean(app)
    job.wait(120)
    app.run()  # the next rerun of any page (the sidebar's status fragment triggers it in a browser)
    assert_clean(app)
    trained = next(k for k in app.session_state["models"] if k.startswith("resnet"))
    assert app.selectbox[0].value == trained and app.selectbox[1].value == label
    app.switch_page("views/data.py").run()
    app.file_uploader[0].set_value(("mine.csv", b"time,x,y\n0,1.0,2.0\n1,1.5,2.5\n2,2.0,3.0\n", "text/csv")).run()
    assert_clean(app)
    assert app.selectbox[-1].value == "uploaded: mine.csv"
    app.switch_page("views/train.py").run()
    assert app.selectbox[0].value == "uploaded: mine.csv"


def test_browser_timeouts_stretch_with_the_measured_slowdown(monkeypatch):
    import browser

    assert browser.slowdown() >= 1.0
    monkeypatch.setattr(browser, "slowdown", lambda: 3.0)  # three runnable processes per core
    assert browser.scaled(30.0) == 90.0


def test_train_page_offers_fill_gaps_for_a_series_with_missing_samples(app):
    app.switch_page("views/train.py").run()
    app.selectbox[0].set_value("real: co2 (time split)").run()  # 97% of its weeks observed
    offered = [option.split(" — ")[0] for option in app.selectbox[1].options]
    assert "nvar" not in offered
    app.toggle[0].set_value(True).run()
    assert_clean(app)
    assert "nvar" in [option.split(" — ")[0] for option in app.selectbox[1].options]


def test_compare_shows_estimated_parameters_beside_the_truth_and_a_profile(app):
    truth = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}
    ds = wb.simulate("lotka_volterra", n=8, t_end=5.0, dt=0.25, seed=1, params=truth, obs_noise=0.05,
                     obs_noise_kind="relative", split=(0.5, 0.0, 0.5))
    model = wb.fit(ds, "mechanistic", precision="float64")
    app.session_state["datasets"] = {"lv": ds}
    app.session_state["models"] = {"mechanistic on lv": model}
    app.switch_page("views/compare.py").run()
    show(app, "mechanistic on lv", "lv")
    table = app.table[0].value
    assert list(table["parameter"]) == ["alpha", "beta", "delta", "gamma"]
    assert [float(v) for v in table["true"]] == [1.3, 0.9, 1.8, 0.8]
    assert (table["interval holds truth"] == "yes").sum() >= 3  # 95% intervals: one miss in four is possible
    next(b for b in app.button if b.label == "compute profile").click().run()
    assert_clean(app)
    assert "profile" in trace_names(app)


def test_compare_shows_a_ude_s_known_learned_and_discovered_terms_beside_the_missing_truth(app):
    truth = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}
    ds = wb.simulate("lotka_volterra", n=4, t_end=5.0, dt=0.25, seed=1, params=truth, split=(0.5, 0.0, 0.5))
    model = wb.fit(ds, "ude", system="lotka_volterra", known={"prey": "alpha*prey", "predator": "-gamma*predator"},
                   fixed=truth, estimate=[], iterations=0, refine_iterations=0, precision="float64")
    app.session_state["datasets"] = {"lv": ds}
    app.session_state["models"] = {"ude on lv": model}
    app.switch_page("views/compare.py").run()
    show(app, "ude on lv", "lv")
    assert {"known terms", "network (learned residual)", "discovered equations",
            "true drift minus the known terms"} <= trace_names(app)
    test = wb.select_split(ds, "test").isel(trajectory=0)["state"].values
    np.testing.assert_allclose(trace_values(app, "true drift minus the known terms"),
                               -0.9 * test[:, 0] * test[:, 1], rtol=1e-9)   # prey's missing term: -beta x y
    assert {"dprey/dt [dimensionless]", "dpredator/dt [dimensionless]"} <= axis_titles(app)


def test_uncertainty_page_shows_a_history_learner_from_the_end_of_its_context(app):
    """A latent SDE forecasts from the end of its context: the fan, calibration and marginal cover the
    times it predicts, not the whole test trajectory (the page indexed past its forecast)."""
    data = wb.simulate("double_well", n=24, t_end=6.0, dt=0.1, seed=0, missing=0.3)
    model = wb.fit(data, "latent_sde", epochs=2, steps_per_epoch=2, seed=0, progress=False)
    app.session_state["datasets"] = {"gappy double well": data}
    app.session_state["models"] = {"latent_sde": model}
    app.switch_page("views/uncertainty.py").run()
    show(app, "latent_sde", "gappy double well")
    assert not app.error
    assert {"90% band", "learned median", "learned"} <= trace_names(app)
    context = int(model.learner.capabilities().context)
    assert len(trace_values(app, "learned median")) == data.sizes["time"] - context


def test_a_series_split_in_time_is_offered_auto_first_and_shows_how_it_chose(app):
    app.switch_page("views/train.py").run()
    app.selectbox[0].set_value("real: sunspots (time split)").run()
    assert app.selectbox[1].value == "auto"                       # the forecaster a newcomer should get
    app.number_input[0].set_value(20).run()
    app.button[0].click().run()
    wait_for_training(app)
    assert_clean(app)
    trained = next(k for k in app.session_state["models"] if k.startswith("auto on real: sunspots"))
    table = app.dataframe[0].value
    assert {"arima", "ets", "theta"} <= set(table["candidate"]) and table["chosen"].sum() == 1
    app.switch_page("views/compare.py").run()
    app.selectbox[0].set_value(trained).run()
    assert_clean(app)
    assert {"observed", "forecast from the test start", "learned", "arima"} <= trace_names(app)
    app.switch_page("views/train.py").run()
    app.selectbox[0].set_value("demo: lorenz63").run()
    assert "auto" not in app.selectbox[1].options                 # trajectories, not a series to forecast
