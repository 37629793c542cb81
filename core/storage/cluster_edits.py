"""The storage side of cluster edits (merge, split): moving rows between clusters of one k, with a history row
per moved row, and replacing the label rows of the clusters a move changed.

A clustering of one k is its ``assignments`` (a cluster id per row) and its ``cluster_labels`` (label, terms,
size, representative row per cluster). An edit moves rows and relabels the clusters it touched; a cluster left
without rows loses its label row (its decisions, name and tags stay stored, so an undo that refills it finds
them again). Ids are never renumbered: a merge leaves a gap, a split takes ids above the largest, so a decision,
a name or a history row that names a cluster keeps meaning the same cluster.

History rows of a move are ``cluster_assignment`` rows on ``k=K/row=R`` (old and new cluster id), so undo and
revert (:mod:`core.storage.history`) write assignments back like any other decision.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from core.storage import history
from core.storage.database import drop_temp, one_row

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import duckdb

    from core.storage.database import Store

ACTION = "cluster_assignment"


def assignment_target(k: int, row: int) -> str:
    """The history target of one row's cluster at ``k``."""
    return f"k={int(k)}/row={int(row)}"


def cluster_ids(store: Store, dataset_id: int, k: int) -> list[int]:
    """The ids of the non-empty clusters at ``k``, ascending."""
    with store.read() as con:
        return [
            int(c)
            for (c,) in con.execute(
                "SELECT DISTINCT cluster_id FROM assignments WHERE dataset_id = ? AND k = ? ORDER BY cluster_id",
                [dataset_id, k],
            ).fetchall()
        ]


def rows_of(store: Store, dataset_id: int, k: int, clusters: Sequence[int]) -> np.ndarray:
    """The sorted rows of the given clusters at ``k``."""
    with store.read() as con:
        found = con.execute(
            "SELECT row_idx FROM assignments WHERE dataset_id = ? AND k = ? AND list_contains(?, cluster_id) "
            "ORDER BY row_idx",
            [dataset_id, k, [int(c) for c in clusters]],
        ).fetchnumpy()["row_idx"]
    return np.asarray(found, dtype=np.int64)


def move_rows(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    k: int,
    rows: np.ndarray,
    new_clusters: np.ndarray,
    *,
    batch_id: int,
    actor: str,
) -> tuple[int, set[int]]:
    """Give each of ``rows`` its new cluster id at ``k`` (inside the caller's write), with a history row per row
    whose cluster changes; returns how many rows moved and every cluster id that lost or gained a row."""
    import pyarrow as pa

    moves = pa.table(
        {"row_idx": np.asarray(rows, dtype=np.int32), "new_cluster": np.asarray(new_clusters, dtype=np.int32)}
    )
    con.register("edit_moves", moves)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE edit_changes AS SELECT a.row_idx, a.cluster_id AS old, m.new_cluster AS new "
            "FROM assignments a JOIN edit_moves m USING (row_idx) "
            "WHERE a.dataset_id = ? AND a.k = ? AND a.cluster_id <> m.new_cluster",
            [dataset_id, k],
        )
        moved = int(one_row(con.execute("SELECT count(*) FROM edit_changes"))[0])
        touched = {
            int(c)
            for (c,) in con.execute(
                "SELECT old FROM edit_changes UNION SELECT new FROM edit_changes",
            ).fetchall()
        }
        remember_labels(con, dataset_id, k, sorted(touched))  # as they are before the move, for its undo
        history.record_selected(
            con,
            dataset_id,
            ACTION,
            "SELECT 'k=' || ? || '/row=' || row_idx AS target, CAST(old AS VARCHAR) AS old_value, "
            "CAST(new AS VARCHAR) AS new_value FROM edit_changes ORDER BY row_idx",
            [int(k)],
            batch_id=batch_id,
            actor=actor,
        )
        con.execute(
            "UPDATE assignments SET cluster_id = c.new FROM edit_changes c "
            "WHERE assignments.dataset_id = ? AND assignments.k = ? AND assignments.row_idx = c.row_idx",
            [dataset_id, k],
        )
    finally:
        drop_temp(con, "edit_changes")
        con.unregister("edit_moves")
    return moved, touched


def sizes(con: duckdb.DuckDBPyConnection, dataset_id: int, k: int, clusters: Sequence[int]) -> dict[int, int]:
    """How many rows each of ``clusters`` holds at ``k`` now (0 for an emptied one)."""
    found = dict(
        con.execute(
            "SELECT cluster_id, count(*) FROM assignments WHERE dataset_id = ? AND k = ? "
            "AND list_contains(?, cluster_id) GROUP BY cluster_id",
            [dataset_id, k, [int(c) for c in clusters]],
        ).fetchall()
    )
    return {int(c): int(found.get(c, 0)) for c in clusters}


def replace_labels(
    con: duckdb.DuckDBPyConnection, dataset_id: int, k: int, items: Sequence[dict[str, Any]], emptied: Sequence[int]
) -> None:
    """Write the label rows of relabelled clusters (``cluster_id``, ``label``, ``terms``, ``size``,
    ``representative_row``) and drop those of the ``emptied`` ones, inside the caller's write."""
    ids = [int(item["cluster_id"]) for item in items] + [int(c) for c in emptied]
    con.execute(
        "DELETE FROM cluster_labels WHERE dataset_id = ? AND k = ? AND list_contains(?, cluster_id)",
        [dataset_id, k, ids],
    )
    for item in items:
        con.execute(
            "INSERT INTO cluster_labels (dataset_id, k, cluster_id, label, terms, size, representative_row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                dataset_id,
                k,
                int(item["cluster_id"]),
                item["label"],
                json.dumps(item["terms"]),
                int(item["size"]),
                item.get("representative_row"),
            ],
        )


def apply_moves(
    store: Store,
    dataset_id: int,
    k: int,
    rows: np.ndarray,
    new_clusters: np.ndarray,
    *,
    reason: str,
    actor: str,
    relabel: Callable[[duckdb.DuckDBPyConnection, set[int]], list[dict[str, Any]]],
) -> tuple[int, int, list[dict[str, Any]]]:
    """One edit in one write: a history batch (``reason``), the rows moved (:func:`move_rows`), and ``relabel``
    called with the touched clusters before the commit. Returns the batch, the rows moved and what ``relabel``
    gave back."""
    with store.write(bump="clusters") as con:  # the clusters and the history move; scores and texts do not
        batch_id = history.new_batch(con, dataset_id, actor, reason=reason)
        moved, touched = move_rows(con, dataset_id, k, rows, new_clusters, batch_id=batch_id, actor=actor)
        return batch_id, moved, relabel(con, touched)


def next_free_id(store: Store, dataset_id: int, k: int) -> int:
    """The first cluster id above every id used at ``k`` (see :func:`largest_id`)."""
    with store.read() as con:
        return largest_id(con, dataset_id, k) + 1


def largest_id(con: duckdb.DuckDBPyConnection, dataset_id: int, k: int) -> int:
    """The largest cluster id ever used at ``k``, emptied clusters and history included, so a split's new ids
    never reuse an id whose decisions, name or tags are still stored."""
    return int(
        one_row(
            con.execute(
                "SELECT max(c) FROM (SELECT max(cluster_id) AS c FROM assignments WHERE dataset_id = ? AND k = ? "
                "UNION ALL SELECT max(cluster_id) FROM cluster_decisions WHERE dataset_id = ? AND k = ? "
                "UNION ALL SELECT max(cluster_id) FROM cluster_names WHERE dataset_id = ? AND k = ? "
                "UNION ALL SELECT max(TRY_CAST(regexp_extract(ref, '/cluster=(\\d+)$', 1) AS INTEGER)) FROM tags "
                "WHERE dataset_id = ? AND starts_with(ref, ?) "
                "UNION ALL SELECT max(TRY_CAST(new_value AS INTEGER)) FROM history WHERE dataset_id = ? "
                "AND action = ? AND starts_with(target, ?))",
                [
                    dataset_id,
                    k,
                    dataset_id,
                    k,
                    dataset_id,
                    k,
                    dataset_id,
                    f"k={int(k)}/",
                    dataset_id,
                    ACTION,
                    f"k={int(k)}/",
                ],
            )
        )[0]
        or 0
    )


def edits_in_effect(store: Store, dataset_id: int, k: int) -> list[dict[str, Any]]:
    """The merges and splits that shaped the clusters of ``k`` now, oldest first (for the export's manifest:
    k-means with the recorded k and seed, then these edits, gives the clusters back)."""
    with store.read() as con:
        edited = {
            int(b)
            for (b,) in con.execute(
                "SELECT DISTINCT batch_id FROM history WHERE dataset_id = ? AND action = ? AND starts_with(target, ?)",
                [dataset_id, ACTION, f"k={int(k)}/"],
            ).fetchall()
        }
    listing = [b for b in history.batches(store, dataset_id, None) if b.batch_id in edited and b.in_effect]
    return [
        {"batch": b.batch_id, "edit": b.reason or b.summary, "rows_moved": b.n_rows, "at": f"{b.changed_at}"}
        for b in reversed(listing)
        if b.kind == "change" or b.summary.startswith("redid")
    ]


_MEMBERSHIP = (
    "SELECT cluster_id, count(*) AS members, bit_xor(hash(row_idx)) AS fingerprint FROM assignments "
    "WHERE dataset_id = ? AND k = ? AND list_contains(?, cluster_id) GROUP BY cluster_id"
)


def remember_labels(con: duckdb.DuckDBPyConnection, dataset_id: int, k: int, clusters: Sequence[int]) -> None:
    """Keep the label rows of ``clusters`` at ``k`` under their membership now (inside the caller's write)."""
    con.execute(
        "INSERT INTO cluster_label_memory SELECT l.dataset_id, l.k, l.cluster_id, m.members, m.fingerprint, "
        f"l.label, l.terms, l.size, l.representative_row FROM cluster_labels l JOIN ({_MEMBERSHIP}) m "
        "ON m.cluster_id = l.cluster_id WHERE l.dataset_id = ? AND l.k = ? ON CONFLICT DO NOTHING",
        [dataset_id, k, [int(c) for c in clusters], dataset_id, k],
    )


def recalled_labels(
    con: duckdb.DuckDBPyConnection, dataset_id: int, k: int, clusters: Sequence[int]
) -> list[dict[str, Any]]:
    """The remembered label rows of those of ``clusters`` whose membership now is one they had before."""
    rows = con.execute(
        "SELECT r.cluster_id, r.label, r.terms, r.size, r.representative_row FROM cluster_label_memory r "
        f"JOIN ({_MEMBERSHIP}) m ON m.cluster_id = r.cluster_id AND m.members = r.members "
        "AND m.fingerprint = r.fingerprint WHERE r.dataset_id = ? AND r.k = ?",
        [dataset_id, k, [int(c) for c in clusters], dataset_id, k],
    ).fetchall()
    return [
        {"cluster_id": int(c), "label": label, "terms": json.loads(terms), "size": int(size), "representative_row": rep}
        for c, label, terms, size, rep in rows
    ]
