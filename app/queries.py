"""Cached reads for the pages. Every cache key includes the data version the read depends on, so a write
anywhere (this session, another session, the CLI or a background job) invalidates exactly the stale entries.

The version is split by what changed (``Store.versions``): reads of derived data (texts, clusters, the map,
scores, selections) are keyed on the derived version, the decision overlays (vetoed flags, weights) on the
decisions version, and the page joins the two. So a veto re-reads a few small decision tables, never the
map's coordinates or the clusters' sizes and labels.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app import map_spec
from app.state import store
from core import edits
from core.cluster import density
from core.export import ExportPreview, preview
from core.models.passes import empty_responses
from core.score import quality
from core.storage import curation, history, search
from core.storage import datasets as ds
from core.storage.database import DataVersions

SNIPPET_CHARS = 120  # the hover snippet of a map small enough to carry text


@functools.cache
def _whitespace() -> str:
    """Every character Python's ``str.strip`` removes."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def versions() -> DataVersions:
    return store().versions()


def version() -> int:
    return versions().total


@st.cache_data(max_entries=64, show_spinner=False)
def cluster_overview(workspace: str, derived_version: int, dataset_id: int, k: int) -> pd.DataFrame:
    return curation.cluster_overview(store(), dataset_id, k)


@st.cache_data(max_entries=64, show_spinner=False)
def cluster_overlay(workspace: str, decisions_version: int, dataset_id: int, k: int) -> pd.DataFrame:
    return curation.cluster_overlay(store(), dataset_id, k)


@st.cache_data(max_entries=16, show_spinner=False)
def map_points(workspace: str, derived_version: int, dataset_id: int, k: int, snippets: bool = True) -> pd.DataFrame:
    points = curation.map_points(store(), dataset_id, k, SNIPPET_CHARS if snippets else 0)
    # 16 bytes a point at a million rows instead of 28 (pandas reads DuckDB's integers as int64, floats as f64)
    return points.astype({"row_idx": np.int32, "x": np.float32, "y": np.float32, "cluster_id": np.int32})


@st.cache_data(max_entries=64, show_spinner=False)
def vetoed_points(workspace: str, decisions_version: int, dataset_id: int, k: int) -> tuple[list[int], list[int]]:
    return curation.vetoed_points(store(), dataset_id, k)


@st.cache_data(max_entries=16, show_spinner=False)
def sweep(workspace: str, derived_version: int, dataset_id: int) -> pd.DataFrame:
    return ds.load_sweep(store(), dataset_id)


@st.cache_data(max_entries=16, show_spinner=False)
def summary(workspace: str, derived_version: int, dataset_id: int) -> dict[str, int]:
    # the one rule (Python's strip), not SQL's trim, on the few responses made only of whitespace
    empty = int(empty_responses(ds.outputs_made_of(store(), dataset_id, _whitespace())).sum())
    return {**curation.dataset_summary(store(), dataset_id), "empty_outputs": empty}


@st.cache_data(max_entries=16, show_spinner=False)
def search_indexed(workspace: str, content_version: int, dataset_id: int) -> bool:
    return search.has_index(store(), dataset_id)


def cached_search_indexed(dataset: ds.DatasetInfo) -> bool:
    """Whether keyword searches of the dataset use the word index (else they scan every text)."""
    return search_indexed(str(store().workspace), versions().content, dataset.dataset_id)


def cached_clusters(dataset: ds.DatasetInfo) -> pd.DataFrame:
    """One row per cluster (as :func:`core.storage.curation.clusters`): the overview joined with the decisions."""
    current, workspace, k = versions(), str(store().workspace), int(dataset.active_k)
    overview = cluster_overview(workspace, current.derived, dataset.dataset_id, k)
    return curation.with_overlay(overview, cluster_overlay(workspace, current.decisions, dataset.dataset_id, k))


def cached_decisions(dataset: ds.DatasetInfo) -> pd.DataFrame:
    """The decisions on clusters at the active k (vetoed, weight, vetoed examples), for clusters with any."""
    workspace, k = str(store().workspace), int(dataset.active_k)
    return cluster_overlay(workspace, versions().decisions, dataset.dataset_id, k)


def cached_map(dataset: ds.DatasetInfo) -> pd.DataFrame:
    """The map's points with a ``vetoed`` column: the coordinates cached per clustering, the veto overlay
    from a small decisions query, joined here. Above ``density.points_limit()`` rows the map draws a
    density image and a sample (app/map_spec.py), so no hover snippet is read."""
    current, workspace, k = versions(), str(store().workspace), int(dataset.active_k)
    snippets = dataset.n_rows <= density.points_limit()
    points = map_points(workspace, current.derived, dataset.dataset_id, k, snippets)
    clusters, rows = vetoed_points(workspace, current.decisions, dataset.dataset_id, k)
    return points.assign(vetoed=vetoed_mask(points, clusters, rows))


def vetoed_mask(points: pd.DataFrame, clusters: list[int], rows: list[int]) -> np.ndarray:
    """Whether each point is vetoed (its cluster or itself), by table lookups: linear in the points, a few
    milliseconds at a million where ``isin`` hashes every value."""
    cluster_ids, row_ids = points["cluster_id"].to_numpy(), points["row_idx"].to_numpy()
    by_cluster = np.zeros(int(cluster_ids.max(initial=0)) + 1, dtype=bool)
    by_cluster[[c for c in clusters if 0 <= c < len(by_cluster)]] = True
    vetoed = by_cluster[cluster_ids]
    if rows:
        by_row = np.zeros(int(row_ids.max(initial=0)) + 1, dtype=bool)
        by_row[[r for r in rows if 0 <= r < len(by_row)]] = True
        vetoed |= by_row[row_ids]
    return vetoed


def cached_sweep(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return sweep(str(store().workspace), versions().derived, dataset.dataset_id)


def cached_summary(dataset: ds.DatasetInfo) -> dict[str, int]:
    return summary(str(store().workspace), versions().derived, dataset.dataset_id)


@st.cache_data(max_entries=8, show_spinner=False)
def export_preview(
    workspace: str, data_version: int, dataset_id: int, k: int, selection_id: int | None, tag: str | None = None
) -> ExportPreview:
    return preview(store(), ds.get_dataset(store(), dataset_id), selection_id=selection_id, tag=tag)


def cached_export_preview(
    dataset: ds.DatasetInfo, selection_id: int | None = None, tag: str | None = None
) -> ExportPreview:
    """Counts only: the export itself is written to a file when the curator asks for it."""
    return export_preview(
        str(store().workspace), version(), dataset.dataset_id, int(dataset.active_k), selection_id, tag
    )


@st.cache_data(max_entries=8, show_spinner=False)
def selection_list(workspace: str, derived_version: int, dataset_id: int) -> pd.DataFrame:
    from core.storage import selections

    return selections.listing(store(), dataset_id)


def cached_selections(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return selection_list(str(store().workspace), versions().derived, dataset.dataset_id)


@st.cache_data(max_entries=8, show_spinner=False)
def selection_comparison(workspace: str, version: int, dataset_id: int, first: int, second: int) -> dict[str, Any]:
    from core.select.compare import compare

    return compare(store(), ds.get_dataset(store(), dataset_id), first, second)


def cached_comparison(dataset: ds.DatasetInfo, first: int, second: int) -> dict[str, Any]:
    """Two saved selections side by side (core/select/compare.py), once per data version: it reads every row's
    scores and ``source`` and a sample of each selection's embeddings, which a rerun should not pay again."""
    return selection_comparison(str(store().workspace), versions().total, dataset.dataset_id, first, second)


@st.cache_data(max_entries=8, show_spinner=False)
def signals(workspace: str, content_version: int, dataset_id: int) -> pd.DataFrame:
    from core.score.quality import raw_signals

    return raw_signals(store(), ds.get_dataset(store(), dataset_id))


def cached_signals(dataset: ds.DatasetInfo) -> pd.DataFrame:
    return signals(str(store().workspace), versions().content, dataset.dataset_id)


def cached_map_spec(
    dataset: ds.DatasetInfo, color_by: str, highlight: int | None, focus: int | None = None
) -> dict[str, Any]:
    """What the Clusters map draws (app/map_spec.py), coloured by cluster (``"cluster"``), by combined quality
    or by one signal, built once per data version: at a million rows building it (the density grid, its PNG,
    the packed sample) takes 0.1-0.2 s, which a search or a page turn should not pay again. The open cluster
    (``highlight``, and ``focus`` to zoom to it) is set on a copy, so opening one builds nothing."""
    current = versions()
    spec = map_spec_of(
        str(store().workspace), current.derived, current.decisions, dataset, dataset.dataset_id, color_by
    )
    return map_spec.with_highlight(spec, highlight if color_by == "cluster" else None, focus)


@st.cache_resource(max_entries=8, show_spinner=False)  # the spec itself, not a pickled copy per rerun
def map_spec_of(
    workspace: str,
    derived_version: int,
    decisions_version: int,
    _dataset: ds.DatasetInfo,
    dataset_id: int,
    color_by: str,
) -> dict[str, Any]:
    points = cached_map(_dataset)
    if color_by == "cluster":
        table = cached_clusters(_dataset)
        return map_spec.cluster_spec(points, dict(zip(table.cluster_id, table.label, strict=True)))
    scores = cached_signals(_dataset)
    values = quality.example_quality_from(scores) if color_by == "combined quality" else scores[color_by]
    return map_spec.score_spec(points, values.reindex(points.row_idx).reset_index(drop=True), color_by)


@st.cache_data(max_entries=8, show_spinner=False)
def assignment(workspace: str, derived_version: int, dataset_id: int, k: int) -> np.ndarray:
    return ds.assignments(store(), dataset_id, k)


def cached_assignment(dataset: ds.DatasetInfo) -> np.ndarray:
    """The cluster id of every row at the active k, in row order (ids only: no coordinates, no text)."""
    return assignment(str(store().workspace), versions().derived, dataset.dataset_id, int(dataset.active_k))


@st.cache_data(max_entries=64, show_spinner=False)
def example_total(
    workspace: str, derived_version: int, dataset_id: int, k: int, cluster_id: int | None, search: str | None
) -> int:
    return curation.count_examples(store(), dataset_id, k, cluster_id=cluster_id, search=search)


@st.cache_data(max_entries=64, show_spinner=False)
def example_page(
    workspace: str,
    derived_version: int,
    dataset_id: int,
    k: int,
    cluster_id: int | None,
    search: str | None,
    offset: int,
    row_idx: int | None,
    limit: int,
) -> pd.DataFrame:
    return curation.example_page(
        store(), dataset_id, k, cluster_id=cluster_id, search=search, limit=limit, offset=offset, row_idx=row_idx
    )


def cached_example_page(
    dataset: ds.DatasetInfo,
    *,
    cluster_id: int | None = None,
    search: str | None = None,
    offset: int = 0,
    row_idx: int | None = None,
    limit: int = 20,
) -> pd.DataFrame:
    """A page of examples: texts, cluster and copies read once per clustering (at a million rows the page's
    query scans the assignments and the content hashes, 0.1-0.3 s), the vetoes looked up on every rerun for
    the page's ids only, so a veto anywhere does not read the page again."""
    workspace, k = str(store().workspace), int(dataset.active_k)
    page = example_page(
        workspace, versions().derived, dataset.dataset_id, k, cluster_id, search, offset, row_idx, limit
    )
    vetoed = curation.vetoed_examples_among(store(), dataset.dataset_id, [str(e) for e in page.example_id])
    return page.assign(vetoed=[str(e) in vetoed for e in page.example_id])


def cached_example_total(dataset: ds.DatasetInfo, *, cluster_id: int | None = None, search: str | None = None) -> int:
    """How many examples a cluster or a search holds: counted once per clustering and keyword, not on every
    rerun (a veto or a page change does not change it)."""
    workspace, k = str(store().workspace), int(dataset.active_k)
    return example_total(workspace, versions().derived, dataset.dataset_id, k, cluster_id, search)


@st.cache_data(max_entries=16, show_spinner=False)
def batches(workspace: str, decisions_version: int, dataset_id: int) -> list[history.Batch]:
    return history.batches(store(), dataset_id, None)


def cached_batches(dataset: ds.DatasetInfo, limit: int = 30) -> list[history.Batch]:
    """The dataset's decision batches, newest first, with summaries; re-read after any decision write."""
    # one cached listing of every batch (what Undo needs too), sliced here
    return batches(str(store().workspace), versions().decisions, dataset.dataset_id)[:limit]


def cached_latest_undoable(dataset: ds.DatasetInfo) -> history.Batch | None:
    """What the Undo button undoes: the newest batch in effect that is not itself an undo."""
    return history.latest_undoable(batches(str(store().workspace), versions().decisions, dataset.dataset_id))


@st.cache_data(max_entries=8, show_spinner=False)
def cluster_scores(workspace: str, derived_version: int, dataset_id: int, k: int) -> pd.DataFrame:
    """Per cluster at ``k``: mean combined quality (NaN when no scorer has run) and the share of rows carrying
    any defect flag (duplicates and empty responses count before any scorer); linear in the rows."""
    from core.score.quality import SIGNALS, has_scores

    raw = cached_signals(ds.get_dataset(store(), dataset_id))
    clusters = assignment(workspace, derived_version, dataset_id, k)
    sizes = np.bincount(clusters).astype(np.float64)
    flags = [name for name in raw.columns if name in SIGNALS and SIGNALS[name].is_flag]
    flagged = (raw[flags].fillna(0.0).to_numpy() > 0).any(axis=1) if flags else np.zeros(len(raw), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.bincount(clusters, weights=flagged.astype(np.float64), minlength=len(sizes)) / sizes
        if has_scores(raw):
            quality = quality_of_rows(workspace, versions().content, dataset_id)
            means = np.bincount(clusters, weights=quality, minlength=len(sizes)) / sizes
        else:
            means = np.full(len(sizes), np.nan)
    present = np.flatnonzero(sizes)
    return pd.DataFrame(
        {
            "cluster_id": present,
            "quality": means[present],
            "flagged": shares[present],
            "main_flag": _main_flags(raw, flags, clusters, sizes)[present],
        }
    )


MAIN_FLAG_SHARE = 0.3  # a flag names a cluster's main defect from this share of its rows


def _main_flags(raw: pd.DataFrame, flags: list[str], clusters: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per cluster id, its most common defect flag when it covers at least :data:`MAIN_FLAG_SHARE` of its rows,
    as "62 % cut off response"; "" otherwise."""
    out = np.full(len(sizes), "", dtype=object)
    if not flags:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.stack(
            [
                np.bincount(
                    clusters, weights=(raw[f].fillna(0.0).to_numpy() > 0).astype(np.float64), minlength=len(sizes)
                )
                / sizes
                for f in flags
            ],
            axis=1,
        )
    best = np.nan_to_num(shares).argmax(axis=1)
    for cluster in np.flatnonzero(sizes):
        share = shares[cluster, best[cluster]]
        if share >= MAIN_FLAG_SHARE:
            out[cluster] = f"{share:.0%} {flags[best[cluster]].replace('_', ' ')}"
    return out


def cached_cluster_table(dataset: ds.DatasetInfo) -> pd.DataFrame:
    """:func:`cached_clusters` with each cluster's mean quality and flagged share (from the derived cache)."""
    scores = cluster_scores(str(store().workspace), versions().derived, dataset.dataset_id, int(dataset.active_k))
    return cached_clusters(dataset).merge(scores, on="cluster_id", how="left")


@st.cache_data(max_entries=16, show_spinner=False)
def tag_listing(workspace: str, decisions_version: int, dataset_id: int) -> tuple[dict[str, int], dict[str, list[str]]]:
    from core.storage import tags

    return tags.all_tags(store(), dataset_id), tags.cluster_tags(store(), dataset_id)


def cached_tags(dataset: ds.DatasetInfo) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Every tag of the dataset with its count, and the tags on each cluster reference; re-read after a decision."""
    return tag_listing(str(store().workspace), versions().decisions, dataset.dataset_id)


def compact_examples(dataset: ds.DatasetInfo, page: pd.DataFrame) -> pd.DataFrame:
    """A page of examples as one line each for a table: the texts cut to a line, copies, "vetoed", the defect
    flags each row carries and its combined quality (once a scorer has run), looked up in the cached signals."""
    from app.text import clip, one_line
    from core.score.quality import SIGNALS, has_scores

    raw = cached_signals(dataset)
    rows = page.row_idx.to_numpy(np.int64)
    flags = [name for name in raw.columns if name in SIGNALS and SIGNALS[name].is_flag]
    on_rows = raw.iloc[rows] if len(rows) else raw.iloc[[]]
    flagged = [
        ", ".join(name.replace("_", " ") for name in flags if (on_rows[name].iloc[i] or 0) > 0)
        for i in range(len(rows))
    ]
    table = pd.DataFrame(
        {
            "row_idx": rows,
            "instruction": [clip(one_line(t), 140) for t in page.instruction],
            "input": [clip(one_line(t), 60) for t in page.input],
            "output": [clip(one_line(t), 140) for t in page.output],
            "copies": page.copies.to_numpy(),
            "vetoed": ["vetoed" if v else "" for v in page.vetoed],
            "flags": flagged,
        }
    )
    if has_scores(raw):
        table["quality"] = cached_quality_of_rows(dataset)[rows]
    return table


def cached_quality_of_rows(dataset: ds.DatasetInfo) -> np.ndarray:
    """Every row's combined quality (default weights), in row order, computed once per data version."""
    return quality_of_rows(str(store().workspace), versions().content, dataset.dataset_id)


@st.cache_data(max_entries=4, show_spinner=False)
def quality_of_rows(workspace: str, content_version: int, dataset_id: int) -> np.ndarray:
    """Every row's combined quality (default weights), computed once per data version (0.1-0.3 s at 1M)."""
    from core.score.quality import example_quality_from

    return example_quality_from(cached_signals(ds.get_dataset(store(), dataset_id))).to_numpy(np.float64)


@st.cache_data(max_entries=8, show_spinner=False)
def extra_copies(workspace: str, content_version: int, dataset_id: int) -> np.ndarray:
    return curation.extra_copies(store(), dataset_id)


def cached_extra_copies(dataset: ds.DatasetInfo) -> np.ndarray:
    """The rows repeating an earlier row exactly (every copy but the first), read once per data version."""
    return extra_copies(str(store().workspace), versions().content, dataset.dataset_id)


@st.cache_data(max_entries=8, show_spinner=False)
def merge_preview(
    workspace: str,
    derived_version: int,
    _dataset: ds.DatasetInfo,
    dataset_id: int,
    k: int,
    clusters: tuple[int, ...],
    into: int,
) -> edits.MergePreview:
    return edits.preview_merge(store(), _dataset, k, clusters, into)


def cached_merge_preview(dataset: ds.DatasetInfo, clusters: list[int], into: int) -> edits.MergePreview:
    """The merge of the ticked clusters as it would be (its label shown before the click, and applied by it
    without relabelling), computed once per clustering and choice of clusters."""
    workspace, k = str(store().workspace), int(dataset.active_k)
    return merge_preview(workspace, versions().derived, dataset, dataset.dataset_id, k, tuple(sorted(clusters)), into)
