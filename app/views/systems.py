"""Systems: browse the catalog, set parameters, generate and look at trajectories, download HDF5."""
import json

import numpy as np
import streamlit as st

import charts
import state
import workbench as wb

st.title("Systems catalog")
kind = st.radio("Kind", ["ode", "sde"], horizontal=True, format_func=str.upper)
names = wb.systems(kind)
name = st.selectbox("System", names, index=names.index("lorenz63") if "lorenz63" in names else 0)
system = wb.system(name)

left, right = st.columns([3, 2])
with left:
    st.markdown(f"**{system.name}** — {system.description}")
    for line in system.equations.split(r"\\"):
        if line.strip():
            st.latex(line.strip())
    st.caption(f"Reference: {system.reference}")
with right:
    st.markdown("**Facts**")
    st.json(system.facts, expanded=False)

st.subheader("Generate")
with st.form("generate"):
    cols = st.columns(min(4, max(1, len(system.params))))
    params = {}
    for i, (key, spec) in enumerate(system.params.items()):
        params[key] = cols[i % len(cols)].number_input(
            key, min_value=float(spec.low), max_value=float(spec.high), value=float(spec.default),
            help=spec.description, format="%.4g")
    c1, c2, c3, c4, c5 = st.columns(5)
    n = c1.number_input("trajectories", 1, 512, 16)
    t_end = c2.number_input("t_end", min_value=system.dt, value=float(system.t_end))
    dt = c3.number_input("dt", min_value=1e-4, value=float(system.dt), format="%.4g")
    noise = c4.number_input("observation noise (std)", min_value=0.0, value=0.0, format="%.4g")
    seed = c5.number_input("seed", 0, 2**31 - 1, 0)
    x0_text = st.text_input(f"initial condition {list(system.state_names)} (blank: sampled)", "")
    submitted = st.form_submit_button("Generate", type="primary")

if submitted:
    options = {"n": int(n), "t_end": float(t_end), "dt": float(dt), "seed": int(seed), "params": params,
               "obs_noise": float(noise)}
    if x0_text.strip():
        try:
            options["x0"] = [float(v) for v in x0_text.replace(",", " ").split()]
        except ValueError:
            st.error("initial condition: write numbers separated by spaces or commas")
            st.stop()
    ds = state.guarded(lambda: state.simulate_cached(name, json.dumps(options)))
    if ds is not None:
        st.session_state["last_generated"] = f"{name} (n={n}, seed={seed})"
        state.add_dataset(st.session_state["last_generated"], ds)

label = st.session_state.get("last_generated")
ds = state.datasets().get(label) if label else None
if ds is None:
    st.info("Set parameters and press **Generate** to integrate trajectories.")
    st.stop()

st.success(f"{label}: {ds.sizes['trajectory']} trajectories x {ds.sizes['time']} samples "
           f"({ds.attrs.get('integrator')})")
variables = [str(v) for v in ds["variable"].values]
shown = st.slider("trajectories shown", 1, int(ds.sizes["trajectory"]), min(5, int(ds.sizes["trajectory"])))
states = ds["state"].values[:shown]
shown_index = st.number_input("time series of trajectory", 0, shown - 1, 0)
st.plotly_chart(charts.timeseries(states[shown_index], None, ds["time"].values, variables), key="systems_timeseries")
if len(variables) >= 2:
    c1, c2, c3 = st.columns(3)
    i = variables.index(c1.selectbox("x axis", variables, index=0))
    j = variables.index(c2.selectbox("y axis", variables, index=1))
    k_name = c3.selectbox("z axis (3-D)", ["none"] + variables, index=3 if len(variables) >= 3 else 0)
    k = None if k_name == "none" else variables.index(k_name)
    st.plotly_chart(charts.phase(states, None, variables, i, j, k, title="phase portrait"), key="systems_phase")
st.download_button("Download HDF5", state.dataset_bytes(ds), file_name=f"{name}.h5",
                   mime="application/x-hdf5")
