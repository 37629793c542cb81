"""Where the base model's pooled hidden states (the RDS+ features, docs/algorithms.md 4.10) live in a workspace.

As for gradient features (:mod:`core.storage.gradients`), a finished matrix is a float16 ``.npy`` file,
``<workspace>/hidden/<feature_key>.npy``, and its metadata a row of ``hidden_sets`` written after the file, so
a row always means a complete file. A ``feature_key`` hashes everything the features depend on (model,
precision, max length, pooling, the data), so equal features are never computed twice.

While a dataset's features are being computed, each finished part is one ``.npz`` (its row numbers and their
features) in ``<feature_key>.parts/``: a cancelled or killed run keeps them and the next run computes only the
rows no part holds.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from core import atomic
from core.storage import feature_files
from core.storage.database import Store


@dataclasses.dataclass(frozen=True)
class HiddenSet:
    """One stored feature matrix: a dataset's rows (``pool``, in row order) or a target set's (file order)."""

    feature_key: str
    dataset_id: int
    role: str
    target_name: str | None
    target_path: str | None
    target_sha256: str | None
    model_id: str
    precision: str
    max_length: int
    pooling: str
    d: int
    n_rows: int
    config: dict[str, Any]


def folder(store: Store) -> Path:
    """The workspace's hidden-state folder (finished matrices and the parts of unfinished ones)."""
    path = store.workspace / "hidden"
    path.mkdir(parents=True, exist_ok=True)
    return path


def feature_path(store: Store, feature_key: str) -> Path:
    return folder(store) / f"{feature_key}.npy"


def save_set(store: Store, info: HiddenSet, features: np.ndarray) -> None:
    """Write the features (atomically), then their row: a row always points at a complete file."""
    feature_files.save_set(store, "hidden_sets", feature_path(store, info.feature_key), info, features)


def get_set(store: Store, feature_key: str) -> HiddenSet | None:
    """The set's metadata; None when it has no row or its file is gone."""
    fields = feature_files.get_fields(store, "hidden_sets", feature_key, feature_path(store, feature_key))
    return None if fields is None else HiddenSet(**fields)


def list_sets(store: Store, dataset_id: int) -> list[HiddenSet]:
    """The dataset's feature sets (pool and target), newest first."""
    sets = [get_set(store, key) for key in feature_files.dataset_keys(store, "hidden_sets", dataset_id)]
    return [s for s in sets if s is not None]


def load_features(store: Store, feature_key: str) -> np.ndarray:
    """The feature matrix as float32 (the computations; the file stays float16)."""
    return feature_files.load_matrix(feature_path(store, feature_key))


# ---------------------------------------------------------------- parts of an unfinished set


def parts_folder(store: Store, feature_key: str) -> Path:
    return folder(store) / f"{feature_key}.parts"


def save_part(store: Store, feature_key: str, rows: np.ndarray, features: np.ndarray) -> None:
    """Keep one finished part (its row numbers and float16 features); written whole or not at all."""
    path = parts_folder(store, feature_key)
    path.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path / f"part-{uuid.uuid4().hex[:12]}.npz") as scratch:  # a name ending .npz stays
        np.savez(scratch, rows=np.asarray(rows, dtype=np.int64), features=features.astype(np.float16))


def load_parts(store: Store, feature_key: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(row numbers, float16 features) of every part kept so far; (empty, None) when there is none."""
    rows: list[np.ndarray] = []
    features: list[np.ndarray] = []
    for path in sorted(parts_folder(store, feature_key).glob("part-*.npz")):
        with np.load(path) as part:
            rows.append(part["rows"])
            features.append(part["features"])
    if not rows:
        return np.zeros(0, dtype=np.int64), None
    return np.concatenate(rows), np.concatenate(features)


def clear_parts(store: Store, feature_key: str) -> None:
    """Remove the parts of a set once its whole matrix is saved."""
    shutil.rmtree(parts_folder(store, feature_key), ignore_errors=True)
