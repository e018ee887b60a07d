"""Entry point of the web app: `workbench app` (or `streamlit run app/streamlit_app.py`)."""
import sys
from pathlib import Path

import streamlit as st

# the app's helper modules live beside this file
sys.path.insert(0, str(Path(__file__).resolve().parent))

import state  # noqa: E402  (needs the path above)
import workbench as wb  # noqa: E402

# The server is a process entry point: one torch thread unless WORKBENCH_THREADS says otherwise
# (torch's one-thread-per-core default is several times slower on a busy small machine).
wb.configure_threads()

# the favicon is an emoji: a material-icon favicon is fetched from the internet, which may be unreachable
st.set_page_config(page_title="Dynamics workbench", page_icon="📈", layout="wide")

pages = [
    st.Page("views/systems.py", title="Systems", icon=":material/science:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", default=True),
    st.Page("views/uncertainty.py", title="Uncertainty", icon=":material/ssid_chart:"),
    st.Page("views/data.py", title="Data", icon=":material/upload_file:"),
]
# the event loop gets the GIL back within 1 ms of asking (default 5 ms), so busy scripts delay it less
sys.setswitchinterval(0.001)
try:
    with state.SCRIPT_SLOTS:
        state.collect_training()  # before any page draws its model list
        navigation = st.navigation(pages)
        if st.session_state.get("job") is not None:
            with st.sidebar:
                state.training_status()
        navigation.run()
except Exception as exc:  # anything a page did not handle is shown as a message, never as a traceback
    state.report(exc)
