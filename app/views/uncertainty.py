"""Uncertainty: fan charts, calibration and marginals of stochastic surrogates (nsde, ensemble)."""
import numpy as np
import streamlit as st

import charts
import format as fmt
import state
import workbench as wb
from workbench.evaluation import calibration_curve, fan_quantiles, test_period

st.title("Uncertainty")
models = {k: m for k, m in state.models().items() if m.stochastic}
if not models:
    st.info("No stochastic model yet. Train an `nsde` (SDE data) or an `ensemble` on the Train page.")
    st.stop()
c1, c2, c3 = st.columns(3)
model, ds = state.pick_model_and_dataset(models, c1, c2)
n_samples = c3.slider("sample paths", 16, 512, 32, step=16)
variables = model.variables
units = fmt.variable_units(ds)
labels = [fmt.unit_label(v, units[v]) for v in variables]

if test_period(ds) is not None:  # a measured series split in time: the forecast of its held-out tail
    held = state.guarded(lambda: state.holdout_cached(model, ds, n_samples))
    if held is None:
        st.stop()
    series, forecast = held
    truth = series.sel(time=forecast["time"].values)[["state", "mask"] if "mask" in series else ["state"]]
    forecast_times, time_label = fmt.time_axis(forecast)
    var = variables.index(st.selectbox("variable", variables)) if len(variables) > 1 else 0
    quantiles = fan_quantiles(forecast.isel(trajectory=0, variable=var)).values
    st.plotly_chart(charts.fan_chart(forecast_times, quantiles, fmt.observed_values(truth)[:, :, var], labels[var],
                                     time_label, "observed (held out)"), key="fan_chart")
    curve = state.guarded(lambda: calibration_curve(forecast, truth.assign_coords(
        trajectory=forecast["trajectory"].values)))
    if curve is not None:
        st.plotly_chart(charts.coverage_curve(curve["level"].values, curve.values, None), key="coverage")
        st.caption(f"Share of the held-out observations inside the forecast's central interval "
                   f"({curve.attrs['members']} paths from the test start, one forecast per series: the curve is "
                   "noisy for a short test period).")
    st.stop()

test = wb.select_split(ds, "test")
if test.sizes["trajectory"] == 0:
    st.warning("This dataset has no test trajectories; regenerate it with a split on the Systems page.")
    st.stop()

c1, c2 = st.columns(2)
traj = c1.number_input("test trajectory", 0, test.sizes["trajectory"] - 1, 0)
var = variables.index(c2.selectbox("variable", variables))
one = test.isel(trajectory=[traj])  # paths from this trajectory's initial state, of the model and of the truth
pred = state.guarded(lambda: state.predict_cached(model, one, n_samples, seed=1))
# the true SDE starts from the trajectory's first state; a missing one leaves only the observed path to show
oracle = state.guarded(lambda: state.oracle_cached(one, n_samples, 2)) \
    if np.isfinite(one["state"].isel(time=0).values).all() else None
if pred is None:
    st.stop()
if (blown_up := fmt.divergence_text(pred, ds)) is not None:
    st.warning(blown_up)
# a learner that reads a history forecasts from the end of its context: show the times it predicts
shown = pred["time"].values
one, oracle = one.sel(time=shown), (oracle.sel(time=shown) if oracle is not None else None)
times, time_label = fmt.time_axis(one)
quantiles = fan_quantiles(pred.isel(trajectory=0, variable=var)).values
truth_paths = oracle["state"].values[:20, 0, :, var] if oracle is not None else \
    fmt.observed_values(one)[0, :, var][None]
st.plotly_chart(charts.fan_chart(times, quantiles, truth_paths, labels[var], time_label,
                                 "true SDE paths" if oracle is not None else "true path"), key="fan_chart")

left, right = st.columns(2)
curves = state.guarded(lambda: state.calibration_cached(model, ds, n_samples))
if curves is not None:
    learned_cov = curves["calibration_learned"]
    oracle_cov = curves["calibration_oracle"].values if "calibration_oracle" in curves else None
    left.plotly_chart(charts.coverage_curve(learned_cov["level"].values, learned_cov.values, oracle_cov),
                      key="coverage")
    left.caption(f"Share of the truth inside the central interval of {n_samples} paths, over all "
                 f"{test.sizes['trajectory']} test trajectories (rank-based, unbiased for any number of paths); a "
                 "calibrated model lies on the diagonal.")
t_index = right.slider("marginal at sample", 0, len(times) - 1, len(times) - 1, format="%d")
true_marginal = (oracle if oracle is not None else one)["state"].values[..., t_index, var].ravel()
when = str(times[t_index])[:10] if np.issubdtype(np.asarray(times).dtype, np.datetime64) else \
    fmt.duration_text(float(times[t_index]), ds)
right.plotly_chart(charts.marginals(pred["state"].values[:, :, t_index, var].ravel(), true_marginal,
                                    f"{labels[var]} at t = {when} (test trajectory {traj})"), key="marginals")

scores = state.guarded(lambda: state.evaluate_cached(model, ds, 32))
if scores is not None:
    table = fmt.score_table(scores)
    keep = table["metric"].str.startswith(("crps", "energy_score", "coverage", "width")) | \
        table["metric"].str.endswith("relative")
    st.subheader("Scores (test split)")
    st.caption("`*_relative` divides the model's score by that of samples of the true SDE from the same initial "
               f"states: 1 is the best possible in expectation. With {test.sizes['trajectory']} test trajectories "
               "both scores carry sampling noise, so values somewhat below 1 occur by chance.")
    st.table(table[keep], hide_index=True)  # long meanings wrap instead of being cut
