"""Cached reads for the pages. Every cache key includes the workspace's data version, so a write anywhere
(this session, another session, the CLI or a background job) invalidates exactly the stale entries."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.state import store
from core.export import ExportPreview, preview
from core.models.passes import empty_responses
from core.storage import curation
from core.storage import datasets as ds


def version() -> int:
    return store().data_version()


@st.cache_data(max_entries=64, show_spinner=False)
def clusters(workspace: str, data_version: int, dataset_id: int, k: int) -> pd.DataFrame:
    return curation.clusters(store(), dataset_id, k)


@st.cache_data(max_entries=16, show_spinner=False)
def map_points(workspace: str, data_version: int, dataset_id: int, k: int) -> pd.DataFrame:
    return curation.map_points(store(), dataset_id, k)


@st.cache_data(max_entries=16, show_spinner=False)
def sweep(workspace: str, data_version: int, dataset_id: int) -> pd.DataFrame:
    return ds.load_sweep(store(), dataset_id)


@st.cache_data(max_entries=16, show_spinner=False)
def summary(workspace: str, data_version: int, dataset_id: int) -> dict[str, int]:
    empty = int(empty_responses(ds.outputs(store(), dataset_id)).sum())  # the one rule, not SQL's trim
    return {**curation.dataset_summary(store(), dataset_id), "empty_outputs": empty}


def cached_clusters(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return clusters(str(store().workspace), version(), dataset.dataset_id, int(dataset.active_k))


def cached_map(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return map_points(str(store().workspace), version(), dataset.dataset_id, int(dataset.active_k))


def cached_sweep(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return sweep(str(store().workspace), version(), dataset.dataset_id)


def cached_summary(dataset: ds.DatasetInfo) -> dict[str, int]:
    return summary(str(store().workspace), version(), dataset.dataset_id)


@st.cache_data(max_entries=8, show_spinner=False)
def export_preview(
    workspace: str, data_version: int, dataset_id: int, k: int, selection_id: int | None
) -> ExportPreview:
    return preview(store(), ds.get_dataset(store(), dataset_id), selection_id=selection_id)


def cached_export_preview(dataset: ds.DatasetInfo, selection_id: int | None = None) -> ExportPreview:
    """Counts only: the export itself is written to a file when the curator asks for it."""
    return export_preview(str(store().workspace), version(), dataset.dataset_id, int(dataset.active_k), selection_id)


@st.cache_data(max_entries=8, show_spinner=False)
def selection_list(workspace: str, data_version: int, dataset_id: int) -> pd.DataFrame:
    from core.storage import selections

    return selections.listing(store(), dataset_id)


def cached_selections(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return selection_list(str(store().workspace), version(), dataset.dataset_id)


@st.cache_data(max_entries=8, show_spinner=False)
def signals(workspace: str, data_version: int, dataset_id: int) -> pd.DataFrame:
    from core.score.quality import raw_signals

    return raw_signals(store(), ds.get_dataset(store(), dataset_id))


def cached_signals(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return signals(str(store().workspace), version(), dataset.dataset_id)
