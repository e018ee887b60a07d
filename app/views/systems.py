"""Systems: browse the catalog, set parameters, generate and look at trajectories, download HDF5."""
import json

import streamlit as st

import charts
import format as fmt
import state
import workbench as wb

MAX_TRAJECTORIES = 512
MAX_SAMPLES = 20_000          # samples per trajectory (t_end / dt)
MAX_VALUES = 5_000_000        # trajectories x samples x variables held in the page

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
    st.table(fmt.facts_table(system.facts, system.time_units), hide_index=True)  # wraps, never cuts
    st.caption(f"State units: {', '.join(fmt.unit_label(v, u) for v, u in zip(system.state_names, system.state_units))}"
               f"; time: {fmt.unit_label('t', system.time_units)}")

st.subheader("Generate")
with st.form("generate"):
    cols = st.columns(min(4, max(1, len(system.params))))
    params = {}
    for i, (key, spec) in enumerate(system.params.items()):
        params[key] = cols[i % len(cols)].number_input(
            key, min_value=float(spec.low), max_value=float(spec.high), value=float(spec.default),
            help=spec.description, format="%.4g")
    c1, c2, c3, c4, c5 = st.columns(5)
    n = c1.number_input("trajectories", 1, MAX_TRAJECTORIES, 16,
                        help="16 or more leave at least 8 test trajectories for honest scores")
    t_end = c2.number_input(f"t_end [{system.time_units if system.time_units != '1' else 'time units'}]",
                            min_value=float(system.dt), max_value=float(system.dt) * MAX_SAMPLES,
                            value=float(system.t_end))
    dt = c3.number_input("dt (sampling step)", min_value=float(system.dt) / 100, max_value=float(system.t_end),
                         value=float(system.dt), format="%.4g")
    noise = c4.number_input("observation noise (std)", min_value=0.0, value=0.0, format="%.4g")
    seed = c5.number_input("seed", 0, 2**31 - 1, 0)
    x0_text = st.text_input(f"initial condition {list(system.state_names)} (blank: sampled)", "")
    submitted = st.form_submit_button("Generate", type="primary")

if submitted:
    options = {"n": int(n), "t_end": float(t_end), "dt": float(dt), "seed": int(seed), "params": params,
               "obs_noise": float(noise)}
    samples = int(round(t_end / dt)) + 1
    if samples > MAX_SAMPLES or n * samples * system.dim > MAX_VALUES:
        st.error(f"{int(n)} trajectories x {samples} samples x {system.dim} variables is more than this page holds "
                 f"(at most {MAX_SAMPLES} samples per trajectory and {MAX_VALUES:,} values): raise dt, shorten "
                 "t_end or generate fewer trajectories.")
        st.stop()
    if x0_text.strip():
        try:
            options["x0"] = [float(v) for v in x0_text.replace(",", " ").split()]
        except ValueError:
            st.error("initial condition: write numbers separated by spaces or commas")
            st.stop()
    ds = state.guarded(lambda: state.simulate_cached(name, json.dumps(options)))
    if ds is not None:
        label = f"{name} (n={n}, seed={seed})"
        state.add_dataset(label, ds)
        st.session_state["generated"] = {"system": name, "label": label, "file": f"{name}-n{n}-seed{seed}.h5"}

generated = st.session_state.get("generated")
ds = state.datasets().get(generated["label"]) if generated else None
if ds is None or generated["system"] != name:  # never show (or download) another system's data
    st.info(f"Set parameters and press **Generate** to integrate {name} trajectories.")
    st.stop()

overview, _ = fmt.describe(ds)
facts = dict(zip(overview["property"], overview["value"]))
st.success(f"{generated['label']}: {facts['size']}, {facts['time span']} ({facts.get('integrator', '')}); "
           f"split {facts.get('split (trajectories)', 'none')}")
variables = [str(v) for v in ds["variable"].values]
units = fmt.variable_units(ds)
labels = [fmt.unit_label(v, units[v]) for v in variables]
times, time_label = fmt.time_axis(ds)
shown = st.slider("trajectories shown", 1, int(ds.sizes["trajectory"]), min(5, int(ds.sizes["trajectory"])))
states = ds["state"].values[:shown]
shown_index = st.number_input("time series of trajectory", 0, shown - 1, 0)
st.plotly_chart(charts.timeseries(states[shown_index], None, times, labels, time_label), key="systems_timeseries")
if len(variables) >= 2:
    c1, c2, c3 = st.columns(3)
    i = variables.index(c1.selectbox("x axis", variables, index=0))
    j = variables.index(c2.selectbox("y axis", variables, index=1))
    k_name = c3.selectbox("z axis (3-D, drawn with WebGL)", ["none"] + variables, index=0)
    k = None if k_name == "none" else variables.index(k_name)
    st.plotly_chart(charts.phase(states, None, labels, i, j, k, title="phase portrait"), key="systems_phase")
st.download_button("Download HDF5", state.dataset_bytes(ds), file_name=generated["file"],
                   mime="application/x-hdf5")
