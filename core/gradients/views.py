"""What the Gradient graph page shows, as data frames (no UI code): alignment of clusters with each other
and with target sets, each example's alignment with a target, one example's neighbourhood in the
gradient graph, and the walk path of a saved G2IS selection.

Alignment is the mean cosine between LoRA-gradient features: positive means training on one moves the
model the way the other wants (knowledge alignment), negative means they pull against each other
(conflict; docs/algorithms.md 4.3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.gradients import graph, pipeline
from core.storage import datasets as ds
from core.storage import gradients as gstore
from core.storage import selections as store_selections
from core.storage.database import Store


def targets(store: Store, dataset_id: int) -> dict[str, str]:
    """Computed target sets under the dataset's newest pool features: name -> feature key."""
    pool = pipeline.pool_set(store, dataset_id)
    found: dict[str, str] = {}
    for info in gstore.list_sets(store, dataset_id):
        if info.role == "target" and info.comparable_with(pool):
            found.setdefault(str(info.target_name), info.feature_key)
    return found


def _clusters(store: Store, dataset_id: int, k: int) -> np.ndarray:
    return ds.assignments(store, dataset_id, k).astype(int)


def cluster_target_alignment(store: Store, dataset_id: int, k: int) -> pd.DataFrame:
    """Rows: clusters at ``k``; columns: computed target sets; values: mean gradient cosine."""
    pool = pipeline.pool_set(store, dataset_id)
    features = gstore.load_features(store, pool.feature_key)
    cluster_ids = _clusters(store, dataset_id, k)
    columns = {}
    for name, key in targets(store, dataset_id).items():
        clusters, values = graph.target_alignment(features, cluster_ids, gstore.load_features(store, key))
        columns[name] = pd.Series(values, index=clusters)
    frame = pd.DataFrame(columns)
    frame.index.name = "cluster"
    return frame


def cluster_alignment(store: Store, dataset_id: int, k: int) -> pd.DataFrame:
    """Mean gradient cosine between every two clusters at ``k`` (square, clusters on both axes)."""
    pool = pipeline.pool_set(store, dataset_id)
    features = gstore.load_features(store, pool.feature_key)
    clusters, matrix = graph.cluster_alignment(features, _clusters(store, dataset_id, k))
    return pd.DataFrame(matrix, index=clusters, columns=clusters)


def example_alignment(store: Store, dataset_id: int, target_key: str) -> pd.Series:
    """Each example's mean gradient cosine with the target set, by row."""
    pool = pipeline.pool_set(store, dataset_id)
    features = gstore.load_features(store, pool.feature_key)
    return pd.Series(graph.example_alignment(features, gstore.load_features(store, target_key)))


def neighbourhood(store: Store, dataset_id: int, row: int, top: int = 15) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (the example and its ``top`` nearest gradient neighbours) and the stored edges among them.

    nodes: row_idx, example_id, instruction, centre; edges: src, dst, weight (cosine; < 0 is a conflict).
    """
    pool = pipeline.pool_set(store, dataset_id)
    star = gstore.neighbourhood(store, pool.feature_key, row).head(top)
    members = [int(row), *[int(d) for d in star.dst]]
    edges = gstore.edges_among(store, pool.feature_key, int(row), members)
    texts = ds.examples_at(store, dataset_id, members)[["row_idx", "example_id", "instruction"]]
    nodes = texts.set_index("row_idx").loc[members].reset_index()
    nodes["centre"] = nodes.row_idx == int(row)
    edges = edges.assign(pair=[tuple(sorted(p)) for p in zip(edges.src, edges.dst, strict=True)])
    return nodes, edges.drop_duplicates("pair").drop(columns="pair").reset_index(drop=True)


def walk_path(store: Store, selection_id: int) -> pd.DataFrame:
    """A saved selection in pick order with each pick's G2IS component and how the walk reached it."""
    record = store_selections.get(store, selection_id)
    items = store_selections.items(store, selection_id)
    report = record.get("report") or {}
    n = len(items)
    return items.assign(
        component=(report.get("pick_component") or [0] * n)[:n],
        via=(report.get("pick_via") or ["?"] * n)[:n],
    )
