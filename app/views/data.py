"""Data: upload HDF5/NetCDF or CSV, validate it with the API's own loaders, and summarise it."""
import io

import numpy as np
import pandas as pd
import streamlit as st

import charts
import format as fmt
import state
import workbench as wb
from workbench.data import TIME_NAMES, merge_segments, time_split_info, to_datetimes

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
names = list(datasets)
label = st.selectbox("dataset", names, index=state.dataset_index(names))
ds = datasets[label]
overview, table = fmt.describe(ds)
# st.table wraps long text (dates, split starts) where st.dataframe cut it at the column's width
st.table(overview, hide_index=True)
st.dataframe(table, hide_index=True, width="stretch")
variables = [str(v) for v in ds["variable"].values]
units = fmt.variable_units(ds)
series = merge_segments(ds)  # a time-split series is shown whole, with its boundaries marked
times, time_label = fmt.time_axis(series)
trajectory = st.number_input("series (trajectory)", 0, series.sizes["trajectory"] - 1, 0)
values = fmt.observed_values(series)[trajectory]  # unobserved samples are gaps, not values
info = time_split_info(ds) or {}
dates = to_datetimes(ds, np.array([info[k] for k in ("val_start", "test_start") if info.get(k) is not None]))
marks = [(d if dates is not None else float(info[k]), f"{k.split('_')[0]} starts")
         for k, d in zip([k for k in ("val_start", "test_start") if info.get(k) is not None],
                         dates if dates is not None else [None, None])]
st.plotly_chart(charts.series(times, values, [fmt.unit_label(v, units[v]) for v in variables], time_label, marks),
                key="data_series")

if "split" not in ds.coords:
    st.subheader("Split in time")
    st.caption("For one or a few long series: train on the past, validate on what follows, test on the latest "
               "part. Each piece holds only its own times, so no training window can see a test value.")
    with st.form("split_time"):
        c1, c2 = st.columns(2)
        val = c1.slider("validation share", 0.0, 0.4, 0.1, 0.05)
        test = c2.slider("test share (the latest samples)", 0.05, 0.5, 0.15, 0.05)
        if st.form_submit_button("Split"):
            split = state.guarded(lambda: wb.split_time(ds, val=val, test=test))
            if split is not None:
                state.add_dataset(f"{label} (time split)", split)
                st.success(f"Added '{label} (time split)'; train on it on the Train page, then compare the forecast "
                           "of its test period on the Compare page.")
