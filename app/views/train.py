"""Train: pick a dataset and a learner, fit with live progress (stoppable), keep/download the model."""
import tempfile
from pathlib import Path

import streamlit as st

import charts
import state
import workbench as wb
from workbench.learners import LEARNERS

st.title("Train a surrogate")
options = state.datasets()
if not options:
    st.warning("No dataset yet: generate one on the Systems page or upload one on the Data page.")
    st.stop()
data_label = st.selectbox("Dataset", list(options))
ds = options[data_label]
kind = ds.attrs.get("kind", "ode")
usable = [n for n, cls in sorted(LEARNERS.items()) if kind in cls.supports.kinds]
learner = st.selectbox("Learner", usable, index=usable.index("node") if "node" in usable else 0,
                       format_func=lambda n: f"{n} — {LEARNERS[n].reference.split(',')[0]}")

with st.form("train"):
    c1, c2, c3, c4 = st.columns(4)
    budget = c1.number_input("time budget (s)", 5, 3600, 30)
    epochs = c2.number_input("max epochs", 1, 10_000, 200)
    lr = c3.number_input("learning rate", 1e-5, 1.0, 3e-3, format="%.0e")
    window = c4.number_input("window (samples)", 2, 500, 16)
    c5, c6, c7 = st.columns(3)
    hidden = c5.number_input("hidden units", 4, 1024, 64)
    depth = c6.number_input("hidden layers", 1, 8, 2)
    members = c7.number_input("ensemble members", 2, 16, 4, help="only for the ensemble learner")
    start = st.form_submit_button("Train", type="primary")

if start:
    extra = {"members": int(members), "base_options": {"hidden": int(hidden), "depth": int(depth)}} \
        if learner == "ensemble" else {"hidden": int(hidden), "depth": int(depth)}
    run_dir = Path(tempfile.mkdtemp(prefix="workbench-run-"))
    st.session_state["active_run"] = {"dir": str(run_dir), "learner": learner, "data": data_label}
    st.button("Stop", help="ends training at the best weights so far")  # a click reruns the page: training stops
    bar = st.progress(0.0, text="starting...")
    curve = st.empty()

    def report(record):
        bar.progress(min(1.0, max(record["elapsed"] / budget, record["epoch"] / record["epochs"])),
                     text=f"epoch {record['epoch']}: train {record['train_loss']:.4g}, validation "
                          f"{record['val_loss']:.4g} (best {record['best_val']:.4g})")
        curve.plotly_chart(charts.loss_curve(st.session_state.setdefault("live_history", []) + [record]),
                           key=f"live_{record['epoch']}")
        st.session_state["live_history"].append(record)

    st.session_state["live_history"] = []
    model = state.guarded(lambda: wb.fit(ds, learner, time_budget=float(budget), epochs=int(epochs), lr=float(lr),
                                         window=int(window), out=run_dir, callback=report, progress=False, **extra))
    st.session_state.pop("active_run", None)
    if model is not None:
        label = f"{learner} on {data_label} #{len(st.session_state.get('models', {})) + 1}"
        state.add_model(label, model)
        st.session_state["last_model"] = label
        bar.progress(1.0, text="done")

run = st.session_state.pop("active_run", None)
if run and (Path(run["dir"]) / "config.json").is_file():  # training was stopped: keep its best weights
    model = wb.load_model(run["dir"], device="cpu")
    label = f"{run['learner']} on {run['data']} (stopped) #{len(st.session_state.get('models', {})) + 1}"
    state.add_model(label, model)
    st.session_state["last_model"] = label
    st.info(f"Training stopped after epoch {model.history[-1]['epoch']}; kept the best weights as '{label}'.")

models = state.models()
label = st.session_state.get("last_model")
if label in models:
    model = models[label]
    st.subheader(f"Model: {label}")
    st.plotly_chart(charts.loss_curve(model.history), key="final_loss")
    st.download_button("Download model (safetensors + JSON, zip)", state.model_zip(model),
                       file_name=f"{model.name}-model.zip", mime="application/zip")
    st.page_link("views/compare.py", label="Compare it with the truth", icon=":material/compare_arrows:")

st.subheader("Load a model")
upload = st.file_uploader("model zip from this page", type=["zip"], key="model_upload")
if upload is not None:
    model = state.guarded(lambda: state.model_from_zip(upload.getvalue()))
    if model is not None:
        state.add_model(f"uploaded: {upload.name}", model)
        st.success(f"loaded {model}")
