"""Where gradient features and the gradient graph live in a workspace.

Features are float16 matrices in ``<workspace>/gradients/<feature_key>.npy``: a 50k x 1024 set is 100 MB,
DuckDB has no float16 type and a FLOAT[] column would double it and load far slower than one
``np.load``. Their metadata (dataset, pool or target, model, adapter hash, d, projection, seed) is a row
of ``gradient_sets``, written after the file, so a row always means a complete file. The graph is a
plain edge list in ``gradient_edges`` (source row, rank, neighbour row, cosine), queryable with SQL.

A ``feature_key`` is a hash of everything the features depend on, so features are cached by (model,
adapter hash, projection, seed, d, max length, role, data) and never computed twice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.storage import feature_files
from core.storage.database import Store


@dataclasses.dataclass(frozen=True)
class GradientSet:
    """One stored feature matrix: a dataset's pool (rows in row order) or a target set (rows in file order)."""

    feature_key: str
    dataset_id: int
    role: str
    target_name: str | None
    target_path: str | None
    target_sha256: str | None
    model_id: str
    adapter_hash: str
    d: int
    projection: str
    seed: int
    n_rows: int
    config: dict[str, Any]

    def comparable_with(self, other: GradientSet) -> bool:
        """Same adapter, projection and d: inner products between the two sets mean something."""
        return (self.adapter_hash, self.d, self.projection, self.seed) == (
            other.adapter_hash,
            other.d,
            other.projection,
            other.seed,
        )


def folder(store: Store) -> Path:
    """The workspace's gradient folder (features, warmup adapters, partial chunks)."""
    path = store.workspace / "gradients"
    path.mkdir(parents=True, exist_ok=True)
    return path


def feature_path(store: Store, feature_key: str) -> Path:
    return folder(store) / f"{feature_key}.npy"


def save_set(store: Store, info: GradientSet, features: np.ndarray) -> None:
    """Write the features (atomically), then their row: a row always points at a complete file."""
    feature_files.save_set(store, "gradient_sets", feature_path(store, info.feature_key), info, features)


def get_set(store: Store, feature_key: str) -> GradientSet | None:
    """The set's metadata; None when it has no row or its file is gone."""
    fields = feature_files.get_fields(store, "gradient_sets", feature_key, feature_path(store, feature_key))
    return None if fields is None else GradientSet(**fields)


def list_sets(store: Store, dataset_id: int) -> list[GradientSet]:
    """The dataset's feature sets (pool and target), newest first."""
    sets = [get_set(store, key) for key in feature_files.dataset_keys(store, "gradient_sets", dataset_id)]
    return [s for s in sets if s is not None]


def load_features(store: Store, feature_key: str) -> np.ndarray:
    """The feature matrix as float32 (the computations; the file stays float16)."""
    return feature_files.load_matrix(feature_path(store, feature_key))


def save_edges(store: Store, feature_key: str, indices: np.ndarray, similarities: np.ndarray) -> None:
    """Replace the graph of ``feature_key``: per source row, its neighbours in descending similarity."""
    import pyarrow as pa

    n, m = indices.shape
    table = pa.table(
        {
            "feature_key": pa.array([feature_key] * (n * m)),
            "src": pa.array(np.repeat(np.arange(n, dtype=np.int32), m)),
            "rank": pa.array(np.tile(np.arange(m, dtype=np.int16), n)),
            "dst": pa.array(indices.reshape(-1).astype(np.int32)),
            "weight": pa.array(similarities.reshape(-1).astype(np.float32)),
        }
    )
    with store.write() as con:
        con.execute("DELETE FROM gradient_edges WHERE feature_key = ?", [feature_key])
        con.register("new_edges", table)
        con.execute("INSERT INTO gradient_edges SELECT feature_key, src, rank, dst, weight FROM new_edges")
        con.unregister("new_edges")


def has_edges(store: Store, feature_key: str) -> bool:
    with store.read() as con:
        row = con.execute("SELECT count(*) FROM gradient_edges WHERE feature_key = ?", [feature_key]).fetchone()
    return bool(row and row[0])


def load_neighbours(store: Store, feature_key: str, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The graph as (indices, similarities), shape (n_rows, m), each row in descending similarity."""
    with store.read() as con:
        table = con.execute(
            "SELECT src, rank, dst, weight FROM gradient_edges WHERE feature_key = ? ORDER BY src, rank",
            [feature_key],
        ).fetchnumpy()
    src, rank = np.asarray(table["src"]), np.asarray(table["rank"])
    if len(src) == 0:
        return np.zeros((n_rows, 0), dtype=np.int64), np.zeros((n_rows, 0), dtype=np.float32)
    m = int(rank.max()) + 1
    indices = np.full((n_rows, m), -1, dtype=np.int64)
    weights = np.full((n_rows, m), np.nan, dtype=np.float32)
    indices[src, rank] = table["dst"]
    weights[src, rank] = table["weight"]
    return indices, weights


def neighbourhood(store: Store, feature_key: str, row: int) -> pd.DataFrame:
    """One example's neighbours: rank, neighbour row, cosine (positive: aligned, negative: conflicting)."""
    with store.read() as con:
        return con.execute(
            "SELECT rank, dst, weight FROM gradient_edges WHERE feature_key = ? AND src = ? ORDER BY rank",
            [feature_key, int(row)],
        ).df()


def edges_among(store: Store, feature_key: str, row: int, members: list[int]) -> pd.DataFrame:
    """src, dst, weight of the stored edges between ``members``: every edge from ``row`` to a member, and
    among the other members each edge with src < dst (the graph stores most pairs in both directions)."""
    with store.read() as con:
        return con.execute(
            "SELECT src, dst, weight FROM gradient_edges WHERE feature_key = ? AND list_contains(?, src) "
            "AND list_contains(?, dst) AND src < dst OR (feature_key = ? AND src = ? AND list_contains(?, dst))",
            [feature_key, members, members, feature_key, int(row), members],
        ).df()
