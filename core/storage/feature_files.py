"""Feature matrices kept as float16 ``.npy`` files, each with one metadata row: the storage the gradient features
(``gradient_sets``, :mod:`core.storage.gradients`) and the RDS+ hidden states (``hidden_sets``,
:mod:`core.storage.hidden`) share.

A matrix is written first (atomically) and its row second, so a row always means a complete file; a row whose
file is gone reads as no set. DuckDB has no float16 type, and one ``np.load`` of a 50k x 1024 matrix is far
faster than a FLOAT[] column twice its size.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core import atomic
from core.storage.database import Store

# the tables that hold feature-set rows; a table name is spliced into the SQL, so only these are accepted
TABLES = frozenset({"gradient_sets", "hidden_sets"})


def _table(name: str) -> str:
    if name not in TABLES:
        raise ValueError(f"{name!r} is not a feature-set table ({', '.join(sorted(TABLES))})")
    return name


def save_set(store: Store, table: str, path: Path, info: Any, features: np.ndarray) -> None:
    """Write ``features`` to ``path`` as float16, then ``info`` (a dataclass with ``feature_key`` and a dict
    ``config``) as the table's row, replacing an earlier row of the same key."""
    table = _table(table)
    with atomic.replacing(path) as scratch:
        np.save(scratch, np.ascontiguousarray(features, dtype=np.float16))
    fields = dataclasses.asdict(info)
    fields["config"] = json.dumps(info.config, sort_keys=True)
    columns = [*fields, "created_at"]
    with store.write() as con:
        con.execute(f"DELETE FROM {table} WHERE feature_key = ?", [info.feature_key])
        con.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [*fields.values(), datetime.now(UTC).replace(tzinfo=None)],
        )


def get_fields(store: Store, table: str, feature_key: str, path: Path) -> dict[str, Any] | None:
    """The row of ``feature_key`` as a dict (``config`` parsed); None when it has no row or ``path`` is gone."""
    table = _table(table)
    with store.read() as con:
        cursor = con.execute(f"SELECT * EXCLUDE (created_at) FROM {table} WHERE feature_key = ?", [feature_key])
        row = cursor.fetchone()
        columns = [d[0] for d in cursor.description]
    if row is None or not path.exists():
        return None
    fields = dict(zip(columns, row, strict=True))
    fields["config"] = json.loads(fields["config"])
    return fields


def dataset_keys(store: Store, table: str, dataset_id: int) -> list[str]:
    """The feature keys of a dataset's sets in ``table``, newest first."""
    table = _table(table)
    with store.read() as con:
        rows = con.execute(
            f"SELECT feature_key FROM {table} WHERE dataset_id = ? ORDER BY created_at DESC", [dataset_id]
        ).fetchall()
    return [key for (key,) in rows]


def load_matrix(path: Path) -> np.ndarray:
    """A stored matrix as float32 (for the computations; the file stays float16)."""
    return np.load(path).astype(np.float32)
