"""Entry point: ``streamlit run app/main.py``. Routes to the pages with ``st.navigation``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import state
from core.errors import WorkspaceBusy

ROOT = Path(__file__).resolve().parents[1]

# The first page is the default one, which Streamlit serves at the root and nowhere else: its own url_path is
# ignored, so a direct link to it shows "Page not found". Home is that page, so that every other page keeps a
# working address of its own (/datasets, /clusters, ...).
PAGES = [
    st.Page(ROOT / "pages" / "home.py", title="Home", icon=":material/home:", default=True),
    st.Page(ROOT / "pages" / "datasets.py", title="Datasets", icon=":material/database:", url_path="datasets"),
    st.Page(ROOT / "pages" / "clusters.py", title="Clusters", icon=":material/bubble_chart:", url_path="clusters"),
    st.Page(
        ROOT / "pages" / "diagnostics.py", title="Diagnostics", icon=":material/query_stats:", url_path="diagnostics"
    ),
    st.Page(ROOT / "pages" / "quality.py", title="Quality", icon=":material/grade:", url_path="quality"),
    st.Page(ROOT / "pages" / "gradients.py", title="Gradient graph", icon=":material/hub:", url_path="gradients"),
    st.Page(ROOT / "pages" / "select.py", title="Select", icon=":material/checklist:", url_path="select"),
    st.Page(ROOT / "pages" / "runs.py", title="Runs", icon=":material/model_training:", url_path="runs"),
    st.Page(ROOT / "pages" / "export.py", title="Export", icon=":material/download:", url_path="export"),
]

st.set_page_config(page_title="Curation studio", layout="wide")
try:
    state.warn_if_shared()
    st.navigation(PAGES).run()
except WorkspaceBusy as exc:  # another process holds the workspace too long: say who, not a lock trace
    st.error(str(exc))
