"""Uncertainty: fan charts, calibration and marginals of stochastic surrogates (nsde, ensemble)."""
import numpy as np
import streamlit as st

import charts
import state
import workbench as wb
from workbench import metrics
from workbench.evaluate import oracle_samples, summary, true_system

st.title("Uncertainty")
models = {k: m for k, m in state.models().items() if m.stochastic}
if not models:
    st.info("No stochastic model yet. Train an `nsde` (SDE data) or an `ensemble` on the Train page.")
    st.stop()
datasets = state.datasets()
c1, c2, c3 = st.columns(3)
model_label = c1.selectbox("Model", list(models))
model = models[model_label]
default = state.matching_dataset(model, datasets)
if default is None:
    st.warning("No loaded dataset matches this model's system; generate or upload one.")
    st.stop()
data_label = c2.selectbox("Dataset", list(datasets), index=list(datasets).index(default))
ds = datasets[data_label]
n_samples = c3.slider("sample paths", 16, 512, 64, step=16)
test = wb.select_split(ds, "test")
system = true_system(ds)


@st.cache_data(show_spinner="Sampling...", max_entries=8)
def samples(model_label, data_label, n, history_len, _model, _test, _system):
    pred = _model.predict(_test, n_samples=n, seed=1)
    oracle = oracle_samples(_test, _system, n, seed=2) if _system is not None and _system.kind == "sde" else None
    return pred, oracle


pred, oracle = samples(model_label, data_label, n_samples, len(model.history), model, test, system)
variables = model.variables
times = test["time"].values
c1, c2 = st.columns(2)
traj = c1.select_slider("test trajectory", options=list(range(test.sizes["trajectory"])), value=0)
var = variables.index(c2.selectbox("variable", variables))
truth_paths = oracle["state"].values[:20, traj, :, var] if oracle is not None else test["state"].values[traj, :, var][None]
st.plotly_chart(charts.fan_chart(times, pred["state"].values[:, traj, :, var], truth_paths, variables[var]),
                key="fan_chart")

levels = np.round(np.arange(0.1, 1.0, 0.1), 2)
learned_cov = [float(metrics.coverage(pred, test, level, over="all")) for level in levels]
oracle_cov = [float(metrics.coverage(oracle, test, level, over="all")) for level in levels] if oracle is not None else None
left, right = st.columns(2)
left.plotly_chart(charts.coverage_curve(levels, np.array(learned_cov), None if oracle_cov is None else np.array(oracle_cov)),
                  key="coverage")
t_index = right.slider("marginal at time", 0, len(times) - 1, len(times) - 1, format="%d")
true_marginal = (oracle if oracle is not None else test)["state"].values[..., t_index, var].ravel()
right.plotly_chart(charts.marginals(pred["state"].values[:, :, t_index, var].ravel(), true_marginal,
                                    f"{variables[var]} at t={times[t_index]:.3g}"), key="marginals")

scores = state.guarded(lambda: state.evaluate_cached(model_label, data_label, model, ds, 32, len(model.history)))
if scores is not None:
    table = {k: v for k, v in summary(scores).items()
             if k.startswith(("crps", "energy_score", "coverage", "width")) or k.endswith("relative")}
    st.subheader("Scores (test split)")
    st.caption("`*_relative` divides the model's score by that of samples of the true SDE from the same initial "
               f"states: 1 is the best possible in expectation. With {test.sizes['trajectory']} test trajectories "
               "both scores carry sampling noise, so values somewhat below 1 occur by chance.")
    st.dataframe({"metric": list(table), "value": [f"{v:.4g}" for v in table.values()]}, hide_index=True)
