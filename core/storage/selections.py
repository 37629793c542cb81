"""Saved selections: the ordered example ids, and everything needed to reproduce them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core.storage.curation import ExportRow, export_columns
from core.storage.database import Store, one_row

# named, not positional: a column added by a later schema (cost, schema 8) goes after those of earlier ones
_COLUMNS = (
    "selection_id",
    "dataset_id",
    "name",
    "strategy",
    "params",
    "seed",
    "budget",
    "size",
    "k",
    "pool_hash",
    "pool_size",
    "decisions",
    "score_keys",
    "seconds",
    "created_at",
    "report",
    "cost",
)


def save(store: Store, dataset_id: int, record: dict[str, Any], row_idx: list[int], example_ids: list[str]) -> int:
    """Store a selection (``record``: name, strategy, params, seed, budget, k, pool_hash, pool_size,
    decisions, score_keys, seconds, and optionally report and cost) with its items in pick order; returns its id."""
    with store.write() as con:
        selection_id = int(one_row(con.execute("SELECT nextval('selection_ids')"))[0])
        con.execute(
            f"INSERT INTO selections ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [
                selection_id,
                dataset_id,
                record["name"],
                record["strategy"],
                json.dumps(record["params"], sort_keys=True),
                record["seed"],
                record["budget"],
                len(example_ids),
                record["k"],
                record["pool_hash"],
                record["pool_size"],
                json.dumps(record["decisions"], sort_keys=True),
                json.dumps(record["score_keys"], sort_keys=True),
                record["seconds"],
                datetime.now(UTC).replace(tzinfo=None),
                json.dumps(record.get("report") or {}, sort_keys=True),
                json.dumps(record["cost"], sort_keys=True) if record.get("cost") else None,
            ],
        )
        items = pd.DataFrame(
            {
                "selection_id": selection_id,
                "position": range(len(example_ids)),
                "row_idx": row_idx,
                "example_id": example_ids,
            }
        )
        con.register("new_items", items)
        con.execute("INSERT INTO selection_items SELECT selection_id, position, row_idx, example_id FROM new_items")
        con.unregister("new_items")
    return selection_id


def listing(store: Store, dataset_id: int) -> pd.DataFrame:
    """Every saved selection of the dataset, newest first; ``cost``: its compute in one phrase (see
    :func:`cost_phrase`), empty for a selection saved before costs were recorded."""
    with store.read() as con:
        frame = con.execute(
            "SELECT selection_id, name, strategy, params, seed, budget, size, k, pool_hash, pool_size, created_at, "
            "cost FROM selections WHERE dataset_id = ? ORDER BY selection_id DESC",
            [dataset_id],
        ).df()
    return frame.assign(cost=[cost_phrase(json.loads(text)) if text else "" for text in frame.cost])


def cost_phrase(cost: dict[str, Any] | None) -> str:
    """``"41.2 s on cpu (embeddings 30.1, scores:ifd 11.0, select 0.1)"``; empty when there is no cost."""
    if not cost:
        return ""
    parts = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in cost.get("seconds", {}).items())
    return f"{float(cost.get('total', 0.0)):.1f} s on {cost.get('device', '?')} ({parts})"


def get(store: Store, selection_id: int) -> dict[str, Any]:
    """One selection's record (JSON fields decoded); KeyError when there is none."""
    with store.read() as con:
        cursor = con.execute("SELECT * FROM selections WHERE selection_id = ?", [selection_id])
        row = cursor.fetchone()
        columns = [d[0] for d in cursor.description]
    if row is None:
        raise KeyError(f"no selection {selection_id}")
    record = dict(zip(columns, row, strict=True))
    for field in ("params", "decisions", "score_keys", "report"):
        record[field] = json.loads(record[field] or "{}")
    # the compute it consumed (seconds per stage, device, total); None for a selection saved before schema 8
    record["cost"] = json.loads(record["cost"]) if record.get("cost") else None
    return record


def items(store: Store, selection_id: int) -> pd.DataFrame:
    """The selection's examples in pick order: position, row_idx, example_id."""
    with store.read() as con:
        return con.execute(
            "SELECT position, row_idx, example_id FROM selection_items WHERE selection_id = ? ORDER BY position",
            [selection_id],
        ).df()


def item_texts(store: Store, selection_id: int) -> pd.DataFrame:
    """instruction, input, output of the selection's examples in pick order (what a run trains on)."""
    with store.read() as con:
        return con.execute(
            "SELECT e.instruction, e.input, e.output FROM selection_items i JOIN selections s "
            "ON s.selection_id = i.selection_id JOIN examples e ON e.dataset_id = s.dataset_id AND e.row_idx = i.row_idx "
            "WHERE i.selection_id = ? ORDER BY i.position",
            [selection_id],
        ).df()


def item_chunks(
    store: Store, selection_id: int, k: int, chunk_rows: int, messages: bool = False
) -> Iterator[list[ExportRow]]:
    """The selection's examples in pick order, ``chunk_rows`` picks at a time: example_id, cluster at ``k``,
    original row's JSON text and (with ``messages``) its chat turns: ``curation.ExportRow``. One connection
    serves every chunk (see ``curation.kept_row_chunks``)."""
    with store.read() as con:
        (count,) = one_row(con.execute("SELECT count(*) FROM selection_items WHERE selection_id = ?", [selection_id]))
        for start in range(0, int(count), chunk_rows):
            yield con.execute(
                "SELECT " + export_columns(messages) + "FROM selection_items i "
                "JOIN selections s ON s.selection_id = i.selection_id "
                "JOIN examples e ON e.dataset_id = s.dataset_id AND e.row_idx = i.row_idx "
                "JOIN assignments a ON a.dataset_id = e.dataset_id AND a.row_idx = e.row_idx AND a.k = ? "
                "WHERE i.selection_id = ? AND i.position >= ? AND i.position < ? ORDER BY i.position",
                [k, selection_id, start, start + chunk_rows],
            ).fetchall()


def cluster_counts(store: Store, selection_id: int, k: int) -> dict[int, int]:
    """How many picks each cluster at ``k`` holds (clusters with none are absent)."""
    with store.read() as con:
        rows = con.execute(
            "SELECT a.cluster_id, count(*) FROM selection_items i JOIN selections s ON s.selection_id = i.selection_id "
            "JOIN assignments a ON a.dataset_id = s.dataset_id AND a.row_idx = i.row_idx AND a.k = ? "
            "WHERE i.selection_id = ? GROUP BY a.cluster_id",
            [k, selection_id],
        )
        return {int(cluster): int(n) for cluster, n in rows.fetchall()}
