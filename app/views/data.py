"""Data: upload HDF5 or CSV, validate it with the API's own loaders, and summarise it."""
import streamlit as st

import state
from workbench.cli import summary

st.title("Your data")
st.markdown(
    "Upload an **HDF5** file in the workbench schema (`state(trajectory, time, variable)`, see the README), "
    "or a **CSV** in long format with columns `trajectory`, `time` and one column per state variable. "
    f"Files up to {state.MAX_UPLOAD_BYTES >> 20} MB; external links, external storage and virtual datasets are refused.")
upload = st.file_uploader("dataset", type=["h5", "hdf5", "nc", "csv"], key="data_upload")
if upload is not None:
    ds = state.guarded(lambda: state.uploaded_dataset(upload.name, upload.getvalue()))
    if ds is not None:
        label = f"uploaded: {upload.name}"
        state.add_dataset(label, ds)
        st.success(f"'{upload.name}' is valid and is now available on the Train and Compare pages as '{label}'.")
        st.code(summary(ds))
        st.text(str(ds))

st.subheader("Datasets in this session")
for label, ds in state.datasets().items():
    st.markdown(f"- **{label}**: {ds.sizes['trajectory']} trajectories x {ds.sizes['time']} samples x "
                f"{ds.sizes['variable']} variables ({ds.attrs.get('system', 'unknown system')})")
