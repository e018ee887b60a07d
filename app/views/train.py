"""Train: pick a dataset and a learner, fit in the background with a live loss curve, keep/download the model."""
import streamlit as st

import charts
import jobs
import state
from workbench.data import time_split_info
from workbench.learners import LEARNERS, compatibility

LOSS_EXPLAINED = (
    "**Reading the curves.** Training follows a horizon curriculum: early epochs fit short windows, so the "
    "training loss (blue) is measured at the current training horizon. The orange dashed curve is the validation "
    "loss at that same horizon, directly comparable with the blue one; the green dotted curve is the validation "
    "loss over the full window, which selects the best weights and is larger because errors grow with horizon. "
    "Losses are in standardised units (data scaled to unit variance).")

AUTO_LABEL = ("auto — chooses and combines ARIMA, ETS, Theta, AR(p), NVAR and ESN on validation origins "
              "before the test period; conformal 80% intervals")


def selection_table(rows: list) -> list:
    """``model.selection`` as table rows: candidate, options or members, score, status, chosen."""
    def options(row: dict) -> str:
        if row["learner"] == "combination":
            return ", ".join(m["learner"] + (f" {m['options']}" if m["options"] else "")
                             for m in row["options"]["members"])
        return ", ".join(f"{k}={v}" for k, v in row["options"].items())
    return [{"candidate": row["learner"], "options / members": options(row),
             "score": None if row["score"] is None else round(float(row["score"]), 4),
             "status": row["status"], "chosen": bool(row.get("chosen"))} for row in rows]


st.title("Train a surrogate")
job = st.session_state.get("job")  # a finished job was collected by state.collect_training

options = state.datasets()
if not options:
    st.warning("No dataset yet: generate one on the Systems page or upload one on the Data page.")
    st.stop()
data_label = st.selectbox("Dataset", list(options), index=state.dataset_index(list(options)))
ds = options[data_label]
# a series with unobserved samples: learners that need a complete regular grid can fit it with its gaps filled
series_options = {}
if "mask" in ds and not bool(ds["mask"].all()) and st.toggle(
        "Fill gaps (fill_gaps=True)", value=False,
        help="Unobserved samples are filled by linear interpolation inside each series, so learners that need "
             "regularly sampled data without missing samples (nvar, esn, sindy, resnet, ...) can fit it."):
    series_options["fill_gaps"] = True
verdicts = state.guarded(lambda: compatibility(ds, **series_options)) or {}
usable = [name for name, reason in sorted(verdicts.items()) if reason is None]
# a series split in time can be forecast: learner="auto" chooses (and combines) a forecaster for it
forecastable = (time_split_info(ds) or {}).get("test_start") is not None
choices = (["auto"] if forecastable else []) + usable
if not choices:
    st.error("No learner can fit this dataset; the reasons are listed below.")
default = "auto" if forecastable else "node"
learner = st.selectbox("Learner", choices, index=choices.index(default) if default in choices else 0,
                       format_func=lambda n: AUTO_LABEL if n == "auto" else f"{n} — {LEARNERS[n].reference}")
unusable = {name: reason for name, reason in sorted(verdicts.items()) if reason is not None}
if unusable:
    st.markdown("Not available for this dataset:\n" + "\n".join(
        f"- :gray[**{name}** — {reason}]" for name, reason in unusable.items()))

running = job is not None
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
    start = st.form_submit_button("Train", type="primary", disabled=running or learner is None)

if start and learner is not None and not running:
    if learner == "auto":  # the budget bounds the choice; the training and network fields do not apply
        options = {}
    else:
        defaults = LEARNERS[learner].defaults
        network = {k: int(v) for k, v in (("hidden", hidden), ("depth", depth))}
        options = {k: v for k, v in network.items() if k in defaults}
        if "base_options" in defaults:  # a learner built on a base learner (an ensemble) hands the network on
            options = {"base_options": network}
        if "members" in defaults:
            options["members"] = int(members)
        options.update(epochs=int(epochs), lr=float(lr), window=int(window))
    job = jobs.TrainingJob(ds, learner, data_label, time_budget=float(budget), **options, **series_options).start()
    st.session_state["job"] = job
    st.session_state.pop("train_notice", None)
    st.session_state.pop("train_error", None)


@st.fragment(run_every=1.0)
def progress() -> None:
    """Redraws the live progress every second while the job runs; a full rerun shows the result once."""
    current = st.session_state.get("job")
    if current is None:
        return
    if not current.running:
        st.rerun()
    state.guarded(lambda: draw_progress(current))  # a fragment rerun is outside the app's error handler


def draw_progress(current: jobs.TrainingJob) -> None:
    """The Stop button, the progress bar and the live loss curve of a running job."""
    last = current.history[-1] if current.history else None
    if st.button("Stop", help="ends training after the current epoch and keeps the best weights so far"):
        current.stop()
    if last is None:
        st.progress(0.0, text=f"starting {current.learner}...")
        return
    budget_s = current.options.get("time_budget") or float("inf")
    losses = (f": validation loss {last['val_loss']:.4g} (best {last['best_val']:.4g})"
              if isinstance(last.get("val_loss"), float) and isinstance(last.get("best_val"), float) else "")
    st.progress(min(1.0, max(last["elapsed"] / budget_s, last["epoch"] / max(last.get("epochs", 1), 1))),
                text=f"epoch {last['epoch']}, {last['elapsed']:.0f} s of {budget_s:.0f} s{losses}")
    st.plotly_chart(charts.loss_curve(current.history), key="live_loss")


if job is not None:
    progress()
    st.markdown(LOSS_EXPLAINED)

if st.session_state.get("train_error") is not None:
    state.report(st.session_state["train_error"])
if st.session_state.get("train_notice"):
    st.success(st.session_state["train_notice"])

models = state.models()
label = st.session_state.get("last_model")
if job is None and label in models:
    model = models[label]
    st.subheader(f"Model: {label}")
    if any(h.get("train_loss") is not None for h in model.history):
        st.plotly_chart(charts.loss_curve(model.history), key="final_loss")
        st.markdown(LOSS_EXPLAINED)
    else:
        facts = ", ".join(f"{k.replace('_', ' ')} {v:.4g}{' s' if k == 'elapsed' else ''}"
                          for k, v in (model.history[-1] if model.history else {}).items() if isinstance(v, float))
        st.caption("Fitted in closed form (no training epochs)" + (f": {facts}" if facts else "."))
    if model.meta.get("selection"):
        st.markdown(f"**How `auto` chose** ({model.meta['auto']['why']}; scores: validation RMSE over the naive "
                    "forecast's MAE, averaged over horizons; lower is better)")
        st.dataframe(selection_table(model.meta["selection"]), hide_index=True)
    st.download_button("Download model (safetensors + JSON, zip)", state.model_zip(model),
                       file_name=f"{model.name}-model.zip", mime="application/zip")
    st.page_link("views/compare.py", label="Compare it with the truth", icon=":material/compare_arrows:")

st.subheader("Load a model")
upload = st.file_uploader("model zip from this page", type=["zip"], key="model_upload")
if upload is not None:
    model = state.guarded(lambda: state.model_from_zip(upload.name, upload.getvalue()))
    if model is not None:
        state.add_model(f"uploaded: {upload.name}", model)
        st.success(f"Loaded '{upload.name}': {model.name} for variables {model.variables}.")
