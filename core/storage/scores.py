"""Raw scores per (scorer key, example content hash, score name): written in chunks, read per dataset.

Keyed by content hash, so the same example scored by the same scorer, model and parameters is never
scored twice, in this dataset or another.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from core.storage.database import one_row

if TYPE_CHECKING:
    import pandas as pd

    from core.storage.database import Store


def register_run(store: Store, score_key: str, scorer: str, params: dict[str, Any]) -> None:
    """Remember which scorer and parameters a score key stands for (first use wins)."""
    with store.write() as con:
        con.execute(
            "INSERT OR IGNORE INTO score_runs VALUES (?, ?, ?, ?)",
            [score_key, scorer, json.dumps(params, sort_keys=True), datetime.now(UTC).replace(tzinfo=None)],
        )


def scored_hashes(store: Store, score_key: str) -> set[str]:
    """Content hashes that already have scores under ``score_key``."""
    with store.read() as con:
        rows = con.execute("SELECT DISTINCT content_hash FROM scores WHERE score_key = ?", [score_key]).fetchall()
    return {row[0] for row in rows}


def flagged_hashes(store: Store, score_key: str, name: str) -> set[str]:
    """Content hashes whose score ``name`` under ``score_key`` is 1 (a raised flag, e.g. the judge's failed rows)."""
    with store.read() as con:
        rows = con.execute(
            "SELECT DISTINCT content_hash FROM scores WHERE score_key = ? AND name = ? AND value = 1",
            [score_key, name],
        ).fetchall()
    return {row[0] for row in rows}


def put_scores(store: Store, score_key: str, hashes: list[str], values: dict[str, np.ndarray]) -> None:
    """Store one chunk of scores in one transaction."""
    import pyarrow as pa

    names, keys, value_list = [], [], []
    for name, array in values.items():
        names += [name] * len(hashes)
        keys += hashes
        value_list.append(np.asarray(array, dtype=np.float64))
    table = pa.table(
        {
            "score_key": [score_key] * len(keys),
            "content_hash": keys,
            "name": names,
            "value": np.concatenate(value_list) if value_list else np.zeros(0),
        }
    )
    with store.write() as con:
        con.register("new_scores", table)
        con.execute("INSERT OR REPLACE INTO scores SELECT score_key, content_hash, name, value FROM new_scores")
        con.unregister("new_scores")


def latest_keys(store: Store, dataset_id: int) -> dict[str, str]:
    """For each scorer with scores on this dataset, the most recently registered score key."""
    with store.read() as con:
        rows = con.execute(
            "SELECT r.scorer, r.score_key FROM score_runs r WHERE EXISTS (SELECT 1 FROM scores s JOIN examples e "
            "ON e.content_hash = s.content_hash WHERE s.score_key = r.score_key AND e.dataset_id = ?) "
            "ORDER BY r.created_at",
            [dataset_id],
        ).fetchall()
    return {scorer: key for scorer, key in rows}


def coverage(store: Store, dataset_id: int, score_key: str | None) -> tuple[int, int]:
    """(distinct example contents of the dataset scored under ``score_key``, distinct contents in all): what a
    scorer has left to do (a scorer scores each content once; ``None``: nothing scored yet)."""
    with store.read() as con:
        (total,) = one_row(
            con.execute("SELECT count(DISTINCT content_hash) FROM examples WHERE dataset_id = ?", [dataset_id])
        )
        if score_key is None:
            return 0, int(total)
        (scored,) = one_row(
            con.execute(
                "SELECT count(DISTINCT e.content_hash) FROM examples e WHERE e.dataset_id = ? AND EXISTS "
                "(SELECT 1 FROM scores s WHERE s.score_key = ? AND s.content_hash = e.content_hash)",
                [dataset_id, score_key],
            )
        )
    return int(scored), int(total)


def dataset_scores(store: Store, dataset_id: int, score_keys: list[str]) -> pd.DataFrame:
    """One row per example (row order) and one column per score name under the given keys (NaN = unscored)."""
    with store.read() as con:
        frame = con.execute(
            "SELECT e.row_idx, s.name, s.value FROM examples e JOIN scores s ON s.content_hash = e.content_hash "
            "WHERE e.dataset_id = ? AND list_contains(?, s.score_key)",
            [dataset_id, score_keys],
        ).df()
        n_rows = one_row(con.execute("SELECT count(*) FROM examples WHERE dataset_id = ?", [dataset_id]))[0]
    wide = frame.pivot_table(index="row_idx", columns="name", values="value", aggfunc="first")
    return wide.reindex(range(n_rows))
