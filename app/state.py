"""Per-process and per-session state of the app: the workspace store and the dataset being curated."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import config
from core.storage import datasets as ds
from core.storage.database import Store


@st.cache_resource
def _store(workspace: str) -> Store:
    # A Store holds no open connection (it opens one per transaction), so one shared instance is thread-safe.
    return Store(workspace)


def store() -> Store:
    """The store of the workspace this app serves (``CURATE_WORKSPACE``, else ./workspace)."""
    return _store(str(config.workspace_dir()))


def workspace() -> Path:
    return store().workspace


def pick_dataset(ready_only: bool = True) -> ds.DatasetInfo | None:
    """A sidebar selector of the workspace's datasets; returns the chosen one (or None, with a hint shown)."""
    datasets = [d for d in ds.list_datasets(store()) if d.status == "ready" or not ready_only]
    if not datasets:
        st.info("No prepared dataset yet. Load one on the **Datasets** page.")
        return None
    names = [d.name for d in datasets]
    if st.session_state.get("dataset") not in names:
        st.session_state["dataset"] = names[-1]
    name = st.sidebar.selectbox("Dataset", names, key="dataset")
    return next(d for d in datasets if d.name == name)
