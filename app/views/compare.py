"""Compare: learned vs true flows from the same initial conditions, vector fields, metrics."""
import json

import numpy as np
import streamlit as st

import charts
import format as fmt
import state
import workbench as wb
from workbench.evaluation import (LongRunRecipe, climate_scores, fan_quantiles, has_latent_state, has_term_library,
                                  long_run_refusal, parameter_comparison, summary, test_period, true_system,
                                  ude_terms)


st.title("Learned vs true flow")
models = state.models()
if not models:
    st.warning("No model yet: train one on the Train page (the shipped demo models are missing; "
               "rebuild them with `workbench demo`).")
    st.stop()
c1, c2 = st.columns(2)
model, ds = state.pick_model_and_dataset(models, c1, c2)
variables = model.variables
units = fmt.variable_units(ds)
labels = [fmt.unit_label(v, units[v]) for v in variables]

if test_period(ds) is not None:  # a measured series split in time: forecasts of its held-out tail
    st.caption("Data split in time: the model forecasts the held-out test period from its start, using only the "
               "data before it; below, rolling-origin errors by horizon beside the baselines (persistence, "
               "climatology, AR(p) fitted by least squares, auto-ARIMA, ETS and Theta).")
    held = state.guarded(lambda: state.holdout_cached(model, ds, 64 if model.stochastic else 1))
    scores = state.guarded(lambda: state.rolling_cached(model, ds, 32))
    if held is None or scores is None:
        st.stop()
    series, forecast = held
    times, time_label = fmt.time_axis(series)
    forecast_times, _ = fmt.time_axis(forecast)
    quantiles = fan_quantiles(forecast, [0.05, 0.5, 0.95]).isel(trajectory=0).values
    start = forecast_times[0]
    st.plotly_chart(charts.holdout(times, fmt.observed_values(series)[0], forecast_times, quantiles, labels,
                                   time_label, start), key="holdout")
    var = variables[0] if len(variables) == 1 else st.selectbox("variable", variables)
    step = fmt.duration_text(float(np.diff(ds["time"].values[:2])[0]), ds)
    st.plotly_chart(charts.skill_by_horizon(scores, var, fmt.unit_label(var, units[var]),
                                            f"forecast horizon [{step.split(' ', 1)[1]}]"), key="skill_by_horizon")
    st.caption(f"Skill = 1 - RMSE_model / RMSE_baseline (positive: the model beats the baseline); "
               f"{int(scores['n_origins'].values[0])} forecast origins at the shortest horizon.")
    skill_names = [n for n in scores.data_vars if n.startswith("rmse_skill_vs_")]
    st.dataframe({"horizon [samples]": scores["horizon"].values,
                  **{n.replace("rmse_skill_vs_", "skill vs "): scores[n].sel(variable=var).values.round(3)
                     for n in skill_names}}, hide_index=True)
    st.stop()

test = wb.select_split(ds, "test")
if test.sizes["trajectory"] == 0:
    st.warning("This dataset has no test trajectories; regenerate it with a split on the Systems page.")
    st.stop()
scores = state.guarded(lambda: state.evaluate_cached(model, ds, 32))
if scores is None:
    st.stop()

headline = summary(scores)
cols = st.columns(4)
if "vpt_median" in headline:
    cols[0].metric("median valid prediction time", fmt.duration_text(headline["vpt_median"], ds),
                   help=f"first time the normalised error exceeds {scores.attrs['threshold']:g}, median over "
                        f"{scores.attrs['n_trajectories']} test trajectories")
if "vpt_lyapunov_median" in headline:
    cols[1].metric("VPT [Lyapunov times]", f"{headline['vpt_lyapunov_median']:.3g}",
                   help="median valid prediction time x largest Lyapunov exponent")
if "vector_field_error" in headline:
    cols[2].metric("vector-field error [relative]", f"{headline['vector_field_error']:.3g}",
                   help="||f_learned - f_true|| / ||f_true|| on test-data points, dimensionless")
if "rmse_mean" in headline:
    rmse_unit = scores["rmse"].attrs.get("units")
    cols[3].metric(f"mean RMSE [{fmt.unit_text(rmse_unit, 'state units')}]",
                   f"{headline['rmse_mean']:.3g}",
                   help="root-mean-square error over variables, test trajectories and times")

pred = state.guarded(lambda: state.predict_cached(model, test, 16))
if pred is None:
    st.stop()
if (blown_up := fmt.divergence_text(pred, ds)) is not None:
    st.warning(blown_up)
test = test.sel(time=pred["time"].values)  # learners with context predict from their C-th sample on
times, time_label = fmt.time_axis(test)
traj = st.number_input("test trajectory", 0, test.sizes["trajectory"] - 1, 0)
observed = fmt.observed_values(test)  # unobserved samples are gaps in the charts
truth_path = observed[traj]
pred_path = pred["state"].values[:, traj]
center = np.median(pred_path, axis=0)
vpt = float(scores["vpt"].values[traj])
vpt_at = fmt.axis_time(test, float(test["time"].values[0]) + vpt) if np.isfinite(vpt) else None
st.plotly_chart(charts.timeseries(truth_path, center, times, labels, time_label, vpt_at=vpt_at,
                                  vpt_text=fmt.duration_text(vpt, ds), error_band=True),
                key="compare_timeseries")
st.caption("The shaded band is the truth ± |learned - true|: how far the prediction is from the truth at each "
           "time, drawn around the truth (it is an error, not an uncertainty of the model).")

if "hidden_state" in ds and has_latent_state(model):
    st.subheader("Hidden variables")
    readout = state.guarded(lambda: state.hidden_readout_cached(model, ds))
    if readout is not None:
        row = readout.isel(trajectory=traj)
        hidden_names = [str(v) for v in readout["hidden_variable"].values]
        hidden_units = (readout["hidden_units"].values if "hidden_units" in readout.coords
                        else [None] * len(hidden_names))
        readout_times, readout_time_label = fmt.time_axis(test.sel(time=row["time"].values))
        st.plotly_chart(charts.hidden_readout(readout_times, row["hidden_state"].values, row["readout"].values,
                                              hidden_names, [fmt.unit_label(n, u) for n, u in
                                                             zip(hidden_names, hidden_units)],
                                              readout["r2"].values, readout_time_label), key="hidden_readout")
        history = int(model.learner.capabilities().context) + 1
        st.caption(f"The model never saw these variables. The dashed line is their best linear read-out (least "
                   f"squares with an intercept) from the model's latent state, each point encoded from the "
                   f"{history} samples ending there; it is fitted on the training trajectories and drawn on "
                   "this test trajectory. R² (in the legend) is measured on all test trajectories: the "
                   "hidden_r2 that workbench.evaluate reports.")

left, right = st.columns(2)
if len(variables) >= 2:
    with left:
        st.plotly_chart(charts.phase(observed[:3], pred["state"].values[0, :3], labels, 0, 1,
                                     title=f"phase portrait ({min(3, len(observed))} test "
                                           f"trajector{'y' if len(observed) == 1 else 'ies'})"), key="compare_phase2d")
    # 3-D charts are WebGL: slow to draw without a GPU, so they are drawn when asked for
    if len(variables) >= 3 and right.toggle("3-D phase portrait", value=False):
        with right:
            st.plotly_chart(charts.phase(truth_path[None], center[None], labels, 0, 1, 2, title="3-D phase portrait"),
                            key="compare_phase3d")

system = true_system(ds)
if getattr(model.learner, "parameter_table", None) is not None:
    st.subheader("Estimated parameters")
    table = state.guarded(lambda: parameter_comparison(model, ds))
    if table is not None:
        st.table(fmt.parameter_frame(table))
        combos = table.attrs.get("identifiable_combinations")
        st.caption(f"{table.attrs['method']}; residual variance {table.attrs['residual_variance']:.3g} "
                   f"(standardised units), {table.attrs['degrees_of_freedom']} degrees of freedom."
                   + (f" The data determine only the combination(s) {combos}." if combos else "")
                   + (" The data look noise-free: the intervals then measure the solver's step error, not noise."
                      if table.attrs["residual_variance"] < 1e-10 else ""))
        name = st.selectbox("profile likelihood of", [str(p) for p in table["parameter"].values])
        if st.button("compute profile", key="profile_button"):
            profile = state.guarded(lambda: model.profile(name, points=11))
            if profile is not None:
                st.plotly_chart(charts.profile(profile), key="profile_chart")
if model.learner.capabilities().has_equations:
    st.subheader("Equations")
    learned_col, true_col = st.columns(2)
    learned_col.caption(f"learned ({model.name})")
    for line in model.equations(latex=True):
        learned_col.latex(line)
    if system is not None:
        true_col.caption(f"true ({system.name})")
        true_col.latex(system.equations)
    if getattr(model.learner, "drift_parts", None) is not None:
        parts = state.guarded(lambda: ude_terms(model, test, int(traj)))
        if parts is not None:
            st.caption("The drift split into its parts along the test trajectory above: the known terms, the network "
                       "trained beside them, and the sparse equations found for the network"
                       + (", against the part of the true drift that the known terms miss (what the network "
                          "should learn)." if "missing" in parts else "."))
            rates = [fmt.rate_label(v, units[v], test["time"].attrs.get("units")) for v in variables]
            st.plotly_chart(charts.ude_terms(parts, rates, time_label), key="ude_terms")
    if system is not None and has_term_library(model):
        comparison = state.guarded(lambda: state.equations_cached(model, ds))
        if comparison is not None and comparison.attrs["representable"]:
            st.caption(f"Coefficient errors against the true parameters (the true coefficients are the least-squares "
                       f"fit of the true drift on the same library: exact for this polynomial system). Largest "
                       f"relative error {comparison.attrs['max_relative_error']:.2g}; "
                       f"{comparison.attrs['spurious_terms']} spurious terms.")
            st.dataframe(fmt.coefficient_table(comparison), hide_index=True)
        elif comparison is not None:
            st.caption(f"The true drift is not in the span of this library (relative residual "
                       f"{comparison.attrs['residual']:.2g}), so its coefficients cannot be compared term by term.")

if long_run_refusal(model, ds) is None:
    with st.expander("Long run: does the model keep the attractor?"):
        st.caption("After a few Lyapunov times any surrogate of a chaotic system loses the weather; a good one keeps "
                   f"the climate. Both flows run freely from the first test states (at most "
                   f"{LongRunRecipe().max_steps} samples each, transient dropped); these are the runs and scores "
                   "that workbench.evaluate reports. Computing takes seconds to a minute.")
        if st.toggle("Compute the long run", value=False, key="long_run_on"):
            with st.spinner("Running both flows..."):
                run = state.guarded(lambda: state.long_run_cached(model, ds))
            if run is not None:
                if run.attrs["diverged"]:
                    st.warning(f"The model's long run diverged: {run.attrs['diverged']}")
                lyap_unit = fmt.time_units(ds)
                per = "per time unit" if lyap_unit in (None, "", fmt.DIMENSIONLESS) else f"per {lyap_unit}"
                climate = climate_scores(run)  # what evaluate reports from the same runs
                m1, m2, m3, m4 = st.columns(4)
                m1.metric("Lyapunov exponent, true", f"{float(climate['lyapunov_true']):.3g}",
                          help=f"largest Lyapunov exponent [{per}]; {climate['lyapunov_true'].attrs['source']}")
                m2.metric("Lyapunov exponent, learned", f"{float(climate['lyapunov_learned']):.3g}",
                          help=f"largest Lyapunov exponent [{per}], Benettin's two-trajectory estimate on the "
                               f"model's own rollout from {run.attrs['lyapunov_starts']} starts")
                m3.metric("W1 / true std (mean)", f"{float(climate['attractor_w1']):.3g}",
                          help="Wasserstein-1 distance of the invariant marginals over the true standard deviation, "
                               "mean over variables (evaluate's attractor_w1)")
                m4.metric("spectrum error (mean)", f"{float(climate['spectrum_error']):.3g}",
                          help="sum |P_learned - P_true| / sum P_true of the Welch spectra, mean over variables; "
                               "1 for a fixed point")
                var = st.selectbox("variable of the long run", variables, key="long_run_variable")
                frequency_unit = "cycles per time unit" if fmt.time_units(ds) in (None, "", fmt.DIMENSIONLESS) \
                    else f"cycles per {fmt.time_units(ds)}"
                d1, d2 = st.columns(2)
                d1.plotly_chart(charts.invariant_density(run, var, labels[variables.index(var)]), key="long_run_density")
                d2.plotly_chart(charts.power_spectra(run, var, f"frequency [{frequency_unit}]"), key="long_run_spectrum")
                st.caption(f"{run.attrs['n_runs']} runs of {run.attrs['steps']} samples "
                           f"({fmt.duration_text(run.attrs['steps'] * run.attrs['dt'], ds)}), the first "
                           f"{run.attrs['transient']} dropped as transient.")
                st.dataframe({"variable": variables, "W1 [state units]": run["w1"].values.round(4),
                              "Hellinger": run["hellinger"].values.round(4),
                              "spectrum error": run["spectrum_error"].values.round(4)}, hide_index=True)

context = model.learner.capabilities().context
if system is not None and len(variables) >= 2 and context:
    st.info(f"{model.name} maps a history of {context + 1} samples to the next one: it has no vector field to "
            "draw and cannot start from a single state, so the vector-field and initial-condition panels are "
            "left out.")
elif system is not None and len(variables) >= 2:
    st.subheader("Vector field")
    c1, c2, c3 = st.columns(3)
    i = variables.index(c1.selectbox("horizontal", variables, index=0))
    j = variables.index(c2.selectbox("vertical", variables, index=1))
    density = c3.slider("grid", 8, 30, 16)
    if i == j:
        st.info("Pick two different variables for the horizontal and vertical axes.")
        st.stop()
    grid = state.guarded(lambda: state.field_cached(model, ds, i, j, density))
    if grid is None:
        st.stop()
    fixed = json.loads(grid.attrs["slice"])
    if fixed:
        st.caption("Slice through the data mean in the other variables: " +
                   ", ".join(f"{name} = {value:.3g}" for name, value in fixed.items()))
    st.caption("The grid spans the data's bounding box, so its corners may lie off the attractor where no "
               "training data was. Arrows have equal length; colour is the drift's speed in the plane "
               f"[{fmt.unit_label(variables[i], units[variables[i]])} per unit time]. The error map is "
               "|f_learned - f_true| / RMS |f_true| over the grid; the headline vector-field error is "
               "measured on test-data points.")
    names = (labels[i], labels[j])
    f1, f2, f3 = st.columns(3)
    speeds = np.r_[grid["speed_true"].values.ravel(), grid["speed_learned"].values.ravel()]
    shared = (float(speeds.min()), float(speeds.max()))
    f1.plotly_chart(charts.vector_field(grid, "true", names, "true drift", charts.TRUE_COLOR, shared),
                    key="field_true")
    f2.plotly_chart(charts.vector_field(grid, "learned", names, "learned drift", charts.LEARNED_COLOR, shared),
                    key="field_learned")
    f3.plotly_chart(charts.heatmap(grid, names, "relative error of the learned drift"), key="field_error")

    st.subheader("Your own initial condition")
    st.caption("Type a state, or click a point of the phase portrait below (the grey dots) to start both "
               "flows there.")
    picked = st.session_state.get("picked_x0") or test["state"].values[traj, 0].tolist()
    if len(picked) != len(variables):
        picked = test["state"].values[traj, 0].tolist()
    x0_cols = st.columns(len(variables))
    x0 = [x0_cols[k].number_input(labels[k], value=float(picked[k]), format="%.4g", key=f"x0_{k}_{picked[k]}")
          for k in range(len(variables))]
    if x0 == test["state"].values[traj, 0].tolist():  # the test trajectory's own start: both flows are above
        truth_ic, pred_ic = test.isel(trajectory=[traj]), pred.isel(sample=[0], trajectory=[traj])
    else:
        params = json.loads(ds.attrs.get("params", "{}") or "{}")
        truth_ic = state.guarded(lambda: state.simulate_cached(system.name, json.dumps(
            {"n": 1, "times": test["time"].values.tolist(), "x0": x0, "params": params, "split": None, "seed": 0})))
        pred_ic = state.guarded(lambda: state.predict_from_cached(model, tuple(x0),
                                                                  tuple(test["time"].values.tolist())))
    if truth_ic is not None and pred_ic is not None:
        pick_grid = (np.linspace(*grid["grid_x"].values[[0, -1]], 21), np.linspace(*grid["grid_y"].values[[0, -1]], 21))
        event = st.plotly_chart(charts.phase(truth_ic["state"].values, pred_ic["state"].values[0], labels, i, j,
                                             title="from your initial condition", pick_grid=pick_grid),
                                key="ic_phase", on_select="rerun", selection_mode="points")
        points = [(float(p["x"]), float(p["y"])) for p in event.selection.points] if event else []
        if points and points != st.session_state.get("ic_selection"):
            st.session_state["ic_selection"] = points
            new = list(x0)
            new[i], new[j] = points[0]
            st.session_state["picked_x0"] = new
            st.rerun()
        if x0 != test["state"].values[traj, 0].tolist():  # else it is the time series at the top of the page
            st.plotly_chart(charts.timeseries(truth_ic["state"].values[0], pred_ic["state"].values[0, 0], times,
                                              labels, time_label), key="ic_timeseries")

with st.expander("All metrics"):
    st.table(fmt.score_table(scores), hide_index=True)  # long meanings wrap instead of being cut
    st.text(str(scores))
