"""Data: upload HDF5/NetCDF or CSV, validate it with the API's own loaders, and summarise it."""
import io

import pandas as pd
import streamlit as st

import charts
import state
from workbench import views
from workbench.imports import TIME_NAMES

st.title("Your data")
st.markdown(
    "Upload an **HDF5** file in the workbench schema (as saved by the Systems page), **NetCDF** with a time "
    "dimension, or a **CSV** table: one row per sample with a time column (numbers, ISO dates or datetimes) and "
    "one column per variable; empty cells count as missing samples; a `trajectory` column separates several "
    "series, and headers such as `co2 [ppm]` give units. "
    f"Files up to {state.MAX_UPLOAD_BYTES >> 20} MB; external links, external storage and virtual datasets are refused.")
upload = st.file_uploader("dataset", type=["h5", "hdf5", "nc", "csv"], key="data_upload")
if upload is not None:
    csv_options = {}
    if upload.name.lower().endswith(".csv"):
        try:
            columns = [str(c).strip() for c in pd.read_csv(io.BytesIO(upload.getvalue()), nrows=0).columns]
        except (ValueError, UnicodeDecodeError) as exc:
            columns = []
            st.error(f"'{upload.name}' is not a readable CSV table ({exc}). {state.UPLOAD_ADVICE['.csv']}")
        if columns:
            guess = next((c for c in columns if c.split("[")[0].strip().lower() in TIME_NAMES), columns[0])
            c1, c2, c3 = st.columns(3)
            time_column = c1.selectbox("time column", columns, index=columns.index(guess))
            others = [c for c in columns if c not in (time_column, "trajectory", "split")]
            inputs = c2.multiselect("input columns (drivers, not predicted)", others)
            ignored = c3.multiselect("columns to ignore", [c for c in others if c not in inputs])
            csv_options = {"time": time_column.split("[")[0].strip(),
                           "roles": {**{c.split("[")[0].strip(): "input" for c in inputs},
                                     **{c.split("[")[0].strip(): "ignore" for c in ignored}}}
    ds = state.guarded(lambda: state.uploaded_dataset(upload.name, upload.getvalue(), **csv_options))
    if ds is not None:
        label = f"uploaded: {upload.name}"
        state.add_dataset(label, ds)
        st.success(f"'{upload.name}' is valid and is now available on the Train and Compare pages as '{label}'.")

st.subheader("Datasets in this session")
datasets = state.datasets()
label = st.selectbox("dataset", list(datasets), index=len(datasets) - 1)
ds = datasets[label]
overview, table = views.describe(ds)
left, right = st.columns([2, 3])
left.dataframe(overview, hide_index=True, width="stretch")
right.dataframe(table, hide_index=True, width="stretch")
variables = [str(v) for v in ds["variable"].values]
units = views.variable_units(ds)
times, time_label = views.time_axis(ds)
trajectory = st.number_input("series (trajectory)", 0, ds.sizes["trajectory"] - 1, 0)
values = ds["state"].values[trajectory].copy()
if "mask" in ds:
    values[~ds["mask"].values[trajectory]] = float("nan")  # unobserved samples are gaps, not values
st.plotly_chart(charts.series(times, values, [views.unit_label(v, units[v]) for v in variables], time_label),
                key="data_series")
