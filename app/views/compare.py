"""Compare: learned vs true flows from the same initial conditions, vector fields, metrics."""
import json

import numpy as np
import streamlit as st

import charts
import state
import workbench as wb
from workbench.evaluate import summary, true_drift, true_system

st.title("Learned vs true flow")
models = state.models()
if not models:
    st.warning("No model yet: train one on the Train page (the shipped demo models are missing; "
               "rebuild them with `workbench demo`).")
    st.stop()
datasets = state.datasets()
c1, c2 = st.columns(2)
model_label = c1.selectbox("Model", list(models))
model = models[model_label]
default = state.matching_dataset(model, datasets)
data_options = list(datasets)
data_label = c2.selectbox("Dataset", data_options, index=data_options.index(default) if default else 0)
ds = datasets[data_label]
if [str(v) for v in ds["variable"].values] != model.variables:
    st.error(f"The model predicts {model.variables} but the dataset holds "
             f"{[str(v) for v in ds['variable'].values]}; pick a matching dataset.")
    st.stop()
variables = model.variables
test = wb.select_split(ds, "test")
scores = state.guarded(lambda: state.evaluate_cached(model_label, data_label, model, ds, 32, len(model.history)))
if scores is None:
    st.stop()

headline = summary(scores)
cols = st.columns(4)
for col, key, label in zip(cols, ("vpt_median", "vpt_lyapunov_median", "vector_field_error", "rmse_mean"),
                           ("median valid prediction time", "... in Lyapunov times", "vector-field rel. error",
                            "mean RMSE")):
    if key in headline:
        col.metric(label, f"{headline[key]:.3g}")


@st.cache_data(show_spinner="Rolling out...", max_entries=8)
def rollout(model_label: str, data_label: str, history_len: int, _model: wb.Model, _test):
    return _model.predict(_test, n_samples=16)


pred = rollout(model_label, data_label, len(model.history), model, test)
times = test["time"].values
traj = st.select_slider("test trajectory", options=list(range(test.sizes["trajectory"])), value=0)
truth_path = test["state"].values[traj]
pred_path = pred["state"].values[:, traj]
center = np.median(pred_path, axis=0)
vpt = float(scores["vpt"].values[traj])
st.plotly_chart(charts.timeseries(truth_path, center, times, variables, vpt=vpt, band=np.abs(center - truth_path)),
                key="compare_timeseries")

left, right = st.columns(2)
if len(variables) >= 2:
    with left:
        st.plotly_chart(charts.phase(test["state"].values[:3], pred["state"].values[0, :3], variables, 0, 1,
                                     title="phase portrait (3 test trajectories)"), key="compare_phase2d")
    if len(variables) >= 3:
        with right:
            st.plotly_chart(charts.phase(truth_path[None], center[None], variables, 0, 1, 2, title="3-D phase portrait"),
                            key="compare_phase3d")

system = true_system(ds)
if system is not None and len(variables) >= 2:
    st.subheader("Vector field")
    c1, c2, c3 = st.columns(3)
    i = variables.index(c1.selectbox("horizontal", variables, index=0))
    j = variables.index(c2.selectbox("vertical", variables, index=1))
    density = c3.slider("grid", 8, 30, 16)
    observed = ds["state"].values.reshape(-1, len(variables))
    observed = observed[np.isfinite(observed).all(1)]
    lo, hi, mid = observed.min(0), observed.max(0), observed.mean(0)
    gx, gy = np.meshgrid(np.linspace(lo[i], hi[i], density), np.linspace(lo[j], hi[j], density))
    points = np.tile(mid, (gx.size, 1))
    points[:, i], points[:, j] = gx.ravel(), gy.ravel()
    true_f = true_drift(ds, system, np.zeros(len(points), dtype=int), points)
    learned_f = model.vector_field(points)
    rel = np.linalg.norm(learned_f - true_f, axis=1) / np.maximum(np.linalg.norm(true_f, axis=1), 1e-9)
    if len(variables) > 2:
        st.caption("Slice through the data mean in the other variables: " +
                   ", ".join(f"{variables[k]}={mid[k]:.3g}" for k in range(len(variables)) if k not in (i, j)))
    st.caption("The grid spans the data's bounding box, so its corners may lie off the attractor where no "
               "training data was; the headline vector-field error is measured on test-data points.")
    names = (variables[i], variables[j])
    f1, f2, f3 = st.columns(3)
    shape = gx.shape
    speeds = np.hypot(np.r_[true_f[:, i], learned_f[:, i]], np.r_[true_f[:, j], learned_f[:, j]])
    shared = (float(speeds.min()), float(speeds.max()))
    f1.plotly_chart(charts.vector_field(gx, gy, true_f[:, i].reshape(shape), true_f[:, j].reshape(shape), names,
                                        "true drift", charts.TRUE_COLOR, shared), key="field_true")
    f2.plotly_chart(charts.vector_field(gx, gy, learned_f[:, i].reshape(shape), learned_f[:, j].reshape(shape),
                                        names, "learned drift", charts.LEARNED_COLOR, shared), key="field_learned")
    f3.plotly_chart(charts.heatmap(gx, gy, rel.reshape(shape), names, "relative error |f_learned - f_true| / |f_true|"),
                    key="field_error")

    st.subheader("Your own initial condition")
    st.caption("Type a state, or click a point of the phase portrait below to start both flows there.")
    picked = st.session_state.get("picked_x0", test["state"].values[traj, 0].tolist())
    x0_cols = st.columns(len(variables))
    x0 = [x0_cols[k].number_input(variables[k], value=float(picked[k]), format="%.4g", key=f"x0_{k}_{picked[k]}")
          for k in range(len(variables))]
    params = json.loads(ds.attrs.get("params", "{}") or "{}")
    truth_ic = state.guarded(lambda: state.simulate_cached(system.name, json.dumps(
        {"n": 1, "times": times.tolist(), "x0": x0, "params": params, "split": None, "seed": 0})))
    pred_ic = state.guarded(lambda: model.predict([x0], times))
    if truth_ic is not None and pred_ic is not None:
        event = st.plotly_chart(charts.phase(truth_ic["state"].values, pred_ic["state"].values[0], variables, i, j,
                                             title="from your initial condition"),
                                key="ic_phase", on_select="rerun", selection_mode="points")
        chosen = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
            getattr(getattr(event, "selection", None), "points", [])
        if chosen:
            new = list(x0)
            new[i], new[j] = float(chosen[0]["x"]), float(chosen[0]["y"])
            if new != list(picked):
                st.session_state["picked_x0"] = new
                st.rerun()
        st.plotly_chart(charts.timeseries(truth_ic["state"].values[0], pred_ic["state"].values[0, 0], times, variables),
                        key="ic_timeseries")

with st.expander("All metrics (xarray Dataset)"):
    st.dataframe({k: [v] for k, v in headline.items()})
    st.text(str(scores))
