"""The curator's decisions (cluster vetoes, cluster weights, example vetoes) and the views that show them.

Every change is written at once in its own transaction, together with its history rows (what, old, new,
time, who) under one batch per user action (:mod:`core.storage.history`, which also undoes and reverts), so
it survives a restart and can be audited. A bulk veto of many examples is one transaction and one batch.
Cluster decisions belong to one clustering (a k); example vetoes belong to the dataset.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from core.errors import UnknownCluster
from core.storage import history as decision_history
from core.storage import search as keyword_search
from core.storage import tags as tags_store
from core.storage.database import drop_temp, one_row
from core.storage.history import DEFAULT_ACTOR

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import duckdb
    import numpy as np
    import pandas as pd

    from core.storage.database import Store

MAX_WEIGHT = 10.0
REPRESENTATIVE_CHARS = 200  # the start of a cluster's representative instruction, for tables


def _cluster_state(con: duckdb.DuckDBPyConnection, dataset_id: int, k: int, cluster_id: int) -> tuple[bool, float]:
    exists = con.execute(
        "SELECT 1 FROM cluster_labels WHERE dataset_id = ? AND k = ? AND cluster_id = ?", [dataset_id, k, cluster_id]
    ).fetchone()
    if exists is None:
        raise UnknownCluster(f"cluster {cluster_id} does not exist at k={k}")
    row = con.execute(
        "SELECT vetoed, weight FROM cluster_decisions WHERE dataset_id = ? AND k = ? AND cluster_id = ?",
        [dataset_id, k, cluster_id],
    ).fetchone()
    return (bool(row[0]), float(row[1])) if row else (False, 1.0)


def set_cluster_veto(
    store: Store, dataset_id: int, k: int, cluster_id: int, vetoed: bool, actor: str = DEFAULT_ACTOR
) -> bool:
    """Veto (or un-veto) a cluster; returns whether anything changed."""
    with store.write(bump="decisions") as con:
        old_vetoed, weight = _cluster_state(con, dataset_id, k, cluster_id)
        if old_vetoed == vetoed:
            return False
        con.execute(
            "INSERT INTO cluster_decisions VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset_id, k, cluster_id) "
            "DO UPDATE SET vetoed = excluded.vetoed",
            [dataset_id, k, cluster_id, vetoed, weight],
        )
        target = f"k={k}/cluster={cluster_id}"
        decision_history.record(con, dataset_id, "cluster_veto", target, old_vetoed, vetoed, actor=actor)
    return True


def set_cluster_weight(
    store: Store, dataset_id: int, k: int, cluster_id: int, weight: float, actor: str = DEFAULT_ACTOR
) -> bool:
    """Set a cluster's weight (0 to MAX_WEIGHT; 1 is neutral); returns whether anything changed."""
    if not 0.0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"a cluster weight must be between 0 and {MAX_WEIGHT}, not {weight}")
    with store.write(bump="decisions") as con:
        vetoed, old_weight = _cluster_state(con, dataset_id, k, cluster_id)
        if abs(old_weight - weight) < 1e-12:
            return False
        con.execute(
            "INSERT INTO cluster_decisions VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset_id, k, cluster_id) "
            "DO UPDATE SET weight = excluded.weight",
            [dataset_id, k, cluster_id, vetoed, weight],
        )
        target = f"k={k}/cluster={cluster_id}"
        decision_history.record(con, dataset_id, "cluster_weight", target, old_weight, weight, actor=actor)
    return True


def bulk_cluster_decision(
    store: Store,
    dataset_id: int,
    k: int,
    cluster_ids: Iterable[int],
    *,
    vetoed: bool | None = None,
    weight: float | None = None,
    actor: str = DEFAULT_ACTOR,
    reason: str | None = None,
) -> int:
    """Veto or un-veto (``vetoed``) and/or weigh (``weight``) several clusters at ``k`` in one transaction and
    one history batch, so one undo reverts them together; only clusters whose state changes get a history row.
    Returns how many decisions changed. An unknown cluster is an error and nothing is written."""
    if weight is not None and not 0.0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"a cluster weight must be between 0 and {MAX_WEIGHT}, not {weight}")
    changed, batch_id = 0, None
    with store.write(bump="decisions") as con:
        for cluster_id in sorted({int(c) for c in cluster_ids}):
            old_vetoed, old_weight = _cluster_state(con, dataset_id, k, cluster_id)
            new_vetoed = old_vetoed if vetoed is None else vetoed
            new_weight = old_weight if weight is None else float(weight)
            target = f"k={k}/cluster={cluster_id}"
            for action, old, new in (
                ("cluster_veto", old_vetoed, new_vetoed),
                ("cluster_weight", old_weight, new_weight),
            ):
                if old == new:
                    continue
                if batch_id is None:
                    batch_id = decision_history.new_batch(con, dataset_id, actor, reason=reason)
                decision_history.record(con, dataset_id, action, target, old, new, batch_id=batch_id, actor=actor)
                changed += 1
            if (new_vetoed, new_weight) != (old_vetoed, old_weight):
                con.execute(
                    "INSERT INTO cluster_decisions VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset_id, k, cluster_id) "
                    "DO UPDATE SET vetoed = excluded.vetoed, weight = excluded.weight",
                    [dataset_id, k, cluster_id, new_vetoed, new_weight],
                )
    return changed


MAX_NAME = 80  # characters of a cluster's name


def set_cluster_name(
    store: Store, dataset_id: int, k: int, cluster_id: int, name: str | None, actor: str = DEFAULT_ACTOR
) -> bool:
    """Name a cluster of the clustering at ``k`` (``None`` or blank: back to its computed label); the name is
    a decision like a veto (history, undo), kept when the sweep at that k is run again. Returns whether it
    changed."""
    value = " ".join(str(name).split()) if name is not None else ""
    if len(value) > MAX_NAME:
        raise ValueError(f"a cluster's name has at most {MAX_NAME} characters, not {len(value)}")
    with store.write(bump="decisions") as con:
        _cluster_state(con, dataset_id, k, cluster_id)  # an unknown cluster is an error
        row = con.execute(
            "SELECT name FROM cluster_names WHERE dataset_id = ? AND k = ? AND cluster_id = ?",
            [dataset_id, k, cluster_id],
        ).fetchone()
        old = row[0] if row else None
        new = value or None
        if old == new:
            return False
        if new is None:
            con.execute(
                "DELETE FROM cluster_names WHERE dataset_id = ? AND k = ? AND cluster_id = ?",
                [dataset_id, k, cluster_id],
            )
        else:
            con.execute(
                "INSERT INTO cluster_names VALUES (?, ?, ?, ?) ON CONFLICT (dataset_id, k, cluster_id) "
                "DO UPDATE SET name = excluded.name",
                [dataset_id, k, cluster_id, new],
            )
        target = f"k={k}/cluster={cluster_id}"
        decision_history.record(con, dataset_id, "cluster_name", target, old, new, actor=actor)
    return True


def set_example_veto(store: Store, dataset_id: int, example_id: str, vetoed: bool, actor: str = DEFAULT_ACTOR) -> bool:
    """Veto (or un-veto) one example by id; returns whether anything changed."""
    with store.write(bump="decisions") as con:
        if (
            con.execute(
                "SELECT 1 FROM examples WHERE dataset_id = ? AND example_id = ?", [dataset_id, example_id]
            ).fetchone()
            is None
        ):
            raise LookupError(f"no example with id {example_id!r} in this dataset")
        row = con.execute(
            "SELECT vetoed FROM example_vetoes WHERE dataset_id = ? AND example_id = ?", [dataset_id, example_id]
        ).fetchone()
        old = bool(row[0]) if row else False
        if old == vetoed:
            return False
        con.execute(
            "INSERT INTO example_vetoes VALUES (?, ?, ?) ON CONFLICT (dataset_id, example_id) "
            "DO UPDATE SET vetoed = excluded.vetoed",
            [dataset_id, example_id, vetoed],
        )
        decision_history.record(con, dataset_id, "example_veto", example_id, old, vetoed, actor=actor)
    return True


def bulk_example_veto(
    store: Store,
    dataset_id: int,
    example_ids_or_rows: Iterable[str] | Iterable[int] | np.ndarray,
    vetoed: bool,
    actor: str = DEFAULT_ACTOR,
    reason: str | None = None,
) -> int:
    """Veto (or un-veto) many examples, given by example id or by row index, in one transaction and one history
    batch (``reason`` says where they came from: "search: 'lorem'"); only the examples whose state changes get a
    history row. Returns how many changed. Set-based (the ids go in as an Arrow table), so 100k rows take
    about as long as a few statements. An id or row not in the dataset is an error and nothing is written."""
    import numpy as np
    import pyarrow as pa

    values = np.asarray(
        list(example_ids_or_rows) if not isinstance(example_ids_or_rows, np.ndarray) else example_ids_or_rows
    )
    if values.size == 0:
        return 0
    by_row = np.issubdtype(values.dtype, np.integer)
    column = "row_idx" if by_row else "example_id"
    chosen = pa.table({column: pa.array(values.astype(np.int64) if by_row else values.astype(str))})
    with store.write(bump="decisions") as con:
        con.register("bulk_chosen", chosen)
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE bulk_changes AS "
                "SELECT DISTINCT e.example_id, coalesce(v.vetoed, FALSE) AS old FROM examples e "
                f"LEFT JOIN example_vetoes v ON v.dataset_id = e.dataset_id AND v.example_id = e.example_id "
                f"WHERE e.dataset_id = ? AND e.{column} IN (SELECT {column} FROM bulk_chosen)",
                [dataset_id],
            )
            _refuse_unknown(con, dataset_id, column)
            changed = int(one_row(con.execute("SELECT count(*) FROM bulk_changes WHERE old <> ?", [vetoed]))[0])
            if changed:
                batch_id = decision_history.new_batch(con, dataset_id, actor, reason=reason)
                decision_history.record_selected(
                    con,
                    dataset_id,
                    "example_veto",
                    "SELECT example_id AS target, CAST(to_json(old) AS VARCHAR) AS old_value, ? AS new_value "
                    "FROM bulk_changes WHERE old <> ? ORDER BY example_id",
                    ["true" if vetoed else "false", vetoed],
                    batch_id=batch_id,
                    actor=actor,
                )
                con.execute(
                    "INSERT INTO example_vetoes SELECT ?, example_id, ? FROM bulk_changes WHERE old <> ? "
                    "ON CONFLICT (dataset_id, example_id) DO UPDATE SET vetoed = excluded.vetoed",
                    [dataset_id, vetoed, vetoed],
                )
        finally:
            drop_temp(con, "bulk_changes")
            con.unregister("bulk_chosen")
    return changed


def _refuse_unknown(con: duckdb.DuckDBPyConnection, dataset_id: int, column: str) -> None:
    """A LookupError naming (up to five of) the chosen ids or rows that are not in the dataset."""
    missing = con.execute(
        f"SELECT DISTINCT {column} FROM bulk_chosen WHERE {column} NOT IN "
        f"(SELECT {column} FROM examples WHERE dataset_id = ?) ORDER BY 1",
        [dataset_id],
    ).fetchall()
    if missing:
        shown = ", ".join(repr(m) if column == "example_id" else str(m) for (m,) in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        what = "rows" if column == "row_idx" else "example ids"
        raise LookupError(f"no {what} {shown}{more} in this dataset; nothing was vetoed")


def matching_rows(
    store: Store, dataset_id: int, k: int, *, cluster_id: int | None = None, search: str | None = None
) -> np.ndarray:
    """The row indices of every example :func:`example_page` pages through (a cluster's, a keyword's), in order."""
    import numpy as np

    with store.read() as con:
        chosen, params = _chosen(con, dataset_id, k, cluster_id, search)
        rows = con.execute(f"{chosen} ORDER BY e.row_idx", params).fetchnumpy()["row_idx"]
    return np.asarray(rows, dtype=np.int64)


def extra_copies(store: Store, dataset_id: int) -> np.ndarray:
    """The rows that repeat an earlier row's content exactly (every copy but the first of each group, in row
    order): what a "keep one of each" de-duplication vetoes."""
    import numpy as np

    with store.read() as con:
        rows = con.execute(
            "SELECT row_idx FROM (SELECT row_idx, row_number() OVER (PARTITION BY content_hash ORDER BY row_idx) AS n "
            "FROM examples WHERE dataset_id = ?) WHERE n > 1 ORDER BY row_idx",
            [dataset_id],
        ).fetchnumpy()["row_idx"]
    return np.asarray(rows, dtype=np.int64)


def example_ids_at(
    store: Store, dataset_id: int, *, rows: list[int] | None = None, example_ids: list[str] | None = None
) -> list[str]:
    """The ids of the examples at ``rows`` (or those of ``example_ids`` the dataset has), in row order; rows or
    ids it lacks are left out, so a caller compares the counts."""
    import pyarrow as pa

    column, values = ("row_idx", rows) if rows is not None else ("example_id", example_ids or [])
    if not values:
        return []
    chosen = pa.table({column: pa.array(values, pa.int64() if rows is not None else pa.string())})
    with store.read() as con:
        con.register("chosen_ids", chosen)
        try:
            found = con.execute(
                f"SELECT example_id FROM examples WHERE dataset_id = ? AND {column} IN (SELECT {column} FROM chosen_ids) "
                "ORDER BY row_idx",
                [dataset_id],
            ).fetchall()
        finally:
            con.unregister("chosen_ids")
    return [str(example_id) for (example_id,) in found]


def record_choice(
    store: Store, dataset_id: int, action: str, target: str, old: Any, new: Any, actor: str = DEFAULT_ACTOR
) -> None:
    """Keep a history row for a decision stored elsewhere (e.g. choosing k)."""
    with store.write(bump="decisions") as con:
        decision_history.record(con, dataset_id, action, target, old, new, actor=actor)


def history(store: Store, dataset_id: int, limit: int = 200, *, by_batch: bool = False) -> pd.DataFrame:
    """The most recent decisions, newest first: one row per history row (with its batch id and actor), or with
    ``by_batch`` one row per batch with a summary a curator reads (:func:`core.storage.history.batch_frame`)."""
    if by_batch:
        return decision_history.batch_frame(store, dataset_id, limit)
    return decision_history.rows(store, dataset_id, limit)


def clusters(store: Store, dataset_id: int, k: int) -> pd.DataFrame:
    """One row per cluster at ``k``: id, label, size, vetoed, weight, vetoed examples, duplicate rows."""
    return with_overlay(cluster_overview(store, dataset_id, k), cluster_overlay(store, dataset_id, k))


def with_overlay(overview: pd.DataFrame, overlay: pd.DataFrame) -> pd.DataFrame:
    """:func:`cluster_overview` joined with :func:`cluster_overlay` (clusters without a decision: not vetoed,
    weight 1, no vetoed examples); the app joins its two cached halves with this too."""
    decided = overlay.set_index("cluster_id")
    table = overview.copy()
    ids = table["cluster_id"]
    table["vetoed"] = ids.map(decided["vetoed"]).fillna(False).astype(bool)
    table["weight"] = ids.map(decided["weight"]).fillna(1.0).astype(float)
    table["vetoed_examples"] = ids.map(decided["vetoed_examples"]).fillna(0).astype(int)
    # a curator's name replaces the computed label; the words stay in ``terms_label``
    names = ids.map(decided["name"]) if "name" in decided else ids.map(lambda _: None)
    table["terms_label"] = table["label"]
    table["name"] = names.where(names.notna(), None)
    table["label"] = [n if isinstance(n, str) and n else lab for n, lab in zip(names, table["label"], strict=True)]
    columns = ["cluster_id", "label", "size", "vetoed", "weight", "vetoed_examples", "duplicate_rows"]
    extra = ("representative_row", "representative", "name", "terms_label")
    return table[columns + [c for c in extra if c in table]]


def cluster_states(store: Store, dataset_id: int, k: int) -> pd.DataFrame:
    """One row per cluster at ``k``: id, label, size, vetoed, weight; what :func:`clusters` gives without its
    per-example counts, so without a pass over the examples (the export's manifest at a million rows)."""
    with store.read() as con:
        return con.execute(
            "SELECT l.cluster_id, coalesce(n.name, l.label) AS label, l.size, coalesce(d.vetoed, FALSE) AS vetoed, "
            "coalesce(d.weight, 1.0) AS weight, n.name AS name, l.label AS terms_label FROM cluster_labels l "
            "LEFT JOIN cluster_decisions d ON d.dataset_id = l.dataset_id AND d.k = l.k AND d.cluster_id = l.cluster_id "
            "LEFT JOIN cluster_names n ON n.dataset_id = l.dataset_id AND n.k = l.k AND n.cluster_id = l.cluster_id "
            "WHERE l.dataset_id = ? AND l.k = ? ORDER BY l.cluster_id",
            [dataset_id, k],
        ).df()


def cluster_overview(store: Store, dataset_id: int, k: int) -> pd.DataFrame:
    """The part of :func:`clusters` that no decision changes: id, label, size, duplicate rows, and the row
    nearest the cluster's centre with the start of its instruction (one row per cluster)."""
    with store.read() as con:
        return con.execute(
            """
            WITH dup AS (
                SELECT content_hash FROM examples WHERE dataset_id = ? GROUP BY content_hash HAVING count(*) > 1
            ), members AS (
                SELECT a.cluster_id, count(*) FILTER (WHERE e.content_hash IN (SELECT content_hash FROM dup)) AS n
                FROM assignments a JOIN examples e ON e.dataset_id = a.dataset_id AND e.row_idx = a.row_idx
                WHERE a.dataset_id = ? AND a.k = ? GROUP BY a.cluster_id
            )
            SELECT l.cluster_id, l.label, l.size, coalesce(m.n, 0) AS duplicate_rows,
                   l.representative_row, coalesce(left(r.instruction, ?), '') AS representative
            FROM cluster_labels l LEFT JOIN members m ON m.cluster_id = l.cluster_id
            LEFT JOIN examples r ON r.dataset_id = l.dataset_id AND r.row_idx = l.representative_row
            WHERE l.dataset_id = ? AND l.k = ? ORDER BY l.cluster_id
            """,
            [dataset_id, dataset_id, k, REPRESENTATIVE_CHARS, dataset_id, k],
        ).df()


def cluster_overlay(store: Store, dataset_id: int, k: int) -> pd.DataFrame:
    """The decisions on clusters at ``k``: cluster id, vetoed, weight, vetoed examples, for clusters with any
    decision (the others are not vetoed, weight 1, no vetoed examples). Small: it reads the decision tables
    and only the assignments of vetoed examples."""
    with store.read() as con:
        return con.execute(
            """
            WITH vetoed_examples AS (
                SELECT a.cluster_id, count(*) AS n FROM example_vetoes v
                JOIN examples e ON e.dataset_id = v.dataset_id AND e.example_id = v.example_id
                JOIN assignments a ON a.dataset_id = e.dataset_id AND a.row_idx = e.row_idx AND a.k = ?
                WHERE v.dataset_id = ? AND v.vetoed GROUP BY a.cluster_id
            ), decided AS (
                SELECT cluster_id, vetoed, weight FROM cluster_decisions WHERE dataset_id = ? AND k = ?
            ), named AS (
                SELECT cluster_id, name FROM cluster_names WHERE dataset_id = ? AND k = ?
            ), ids AS (
                SELECT cluster_id FROM decided UNION SELECT cluster_id FROM vetoed_examples
                UNION SELECT cluster_id FROM named
            )
            SELECT i.cluster_id, coalesce(d.vetoed, FALSE) AS vetoed, coalesce(d.weight, 1.0) AS weight,
                   coalesce(x.n, 0) AS vetoed_examples, n.name
            FROM ids i LEFT JOIN decided d ON d.cluster_id = i.cluster_id
            LEFT JOIN vetoed_examples x ON x.cluster_id = i.cluster_id LEFT JOIN named n ON n.cluster_id = i.cluster_id
            ORDER BY i.cluster_id
            """,
            [k, dataset_id, dataset_id, k, dataset_id, k],
        ).df()


def vetoed_points(store: Store, dataset_id: int, k: int) -> tuple[list[int], list[int]]:
    """The vetoed clusters at ``k`` and the row indices of the vetoed examples: the map's veto overlay, small
    enough to re-read after every click (the map's coordinates are read once per clustering)."""
    with store.read() as con:
        clusters = con.execute(
            "SELECT cluster_id FROM cluster_decisions WHERE dataset_id = ? AND k = ? AND vetoed ORDER BY cluster_id",
            [dataset_id, k],
        ).fetchall()
        rows = con.execute(
            "SELECT e.row_idx FROM example_vetoes v "
            "JOIN examples e ON e.dataset_id = v.dataset_id AND e.example_id = v.example_id "
            "WHERE v.dataset_id = ? AND v.vetoed ORDER BY e.row_idx",
            [dataset_id],
        ).fetchall()
    return [int(c) for (c,) in clusters], [int(r) for (r,) in rows]


def examples(
    store: Store,
    dataset_id: int,
    k: int,
    *,
    cluster_id: int | None = None,
    search: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """A page of examples (optionally one cluster's, optionally matching a keyword) and the total count."""
    with store.read():  # one connection for both
        total = count_examples(store, dataset_id, k, cluster_id=cluster_id, search=search)
        page = example_page(store, dataset_id, k, cluster_id=cluster_id, search=search, limit=limit, offset=offset)
    return page, total


def _chosen(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    k: int,
    cluster_id: int | None,
    search: str | None,
    row_idx: int | None = None,
) -> tuple[str, list[Any]]:
    """A query of the row indices of the chosen examples, on the examples table alone (the cluster through
    its row indices, the keyword through the word index of :mod:`core.storage.search`; ``row_idx``: that row)."""
    where = ["e.dataset_id = ?"]
    params: list[Any] = [dataset_id]
    if row_idx is not None:
        where.append("e.row_idx = ?")
        params.append(row_idx)
    if cluster_id is not None:
        where.append("e.row_idx IN (SELECT row_idx FROM assignments WHERE dataset_id = ? AND k = ? AND cluster_id = ?)")
        params += [dataset_id, k, cluster_id]
    if search:  # every character of the keyword is literal, '%' and '_' too
        condition, search_params = keyword_search.matching(con, dataset_id, search)
        where.append(condition)
        params += search_params
    return f"SELECT e.row_idx FROM examples e WHERE {' AND '.join(where)}", params


def count_examples(
    store: Store, dataset_id: int, k: int, *, cluster_id: int | None = None, search: str | None = None
) -> int:
    """How many examples :func:`example_page` pages through."""
    with store.read() as con:
        chosen, params = _chosen(con, dataset_id, k, cluster_id, search)
        return int(one_row(con.execute(f"SELECT count(*) FROM ({chosen})", params))[0])


def example_page(
    store: Store,
    dataset_id: int,
    k: int,
    *,
    cluster_id: int | None = None,
    search: str | None = None,
    limit: int = 20,
    offset: int = 0,
    row_idx: int | None = None,
) -> pd.DataFrame:
    """A page of examples in row order (optionally one cluster's, optionally matching a keyword, or the one
    row ``row_idx``) with cluster id, veto and copies. Those are joined to the page's rows only, so a page
    costs the same at a million rows as at a thousand."""
    with store.read() as con:
        chosen, params = _chosen(con, dataset_id, k, cluster_id, search, row_idx)
        return con.execute(
            f"""
            WITH page AS ({chosen} ORDER BY e.row_idx LIMIT ? OFFSET ?),
            rows AS (
                SELECT e.* FROM examples e WHERE e.dataset_id = ? AND e.row_idx IN (SELECT row_idx FROM page)
            ),
            copies AS (
                SELECT content_hash, count(*) AS copies FROM examples
                WHERE dataset_id = ? AND content_hash IN (SELECT content_hash FROM rows) GROUP BY content_hash
            )
            SELECT r.row_idx, r.example_id, a.cluster_id, r.instruction, r.input, r.output, r.location,
                   coalesce(v.vetoed, FALSE) AS vetoed, c.copies
            FROM rows r
            LEFT JOIN assignments a ON a.dataset_id = r.dataset_id AND a.k = ? AND a.row_idx = r.row_idx
            LEFT JOIN example_vetoes v ON v.dataset_id = r.dataset_id AND v.example_id = r.example_id
            JOIN copies c ON c.content_hash = r.content_hash
            ORDER BY r.row_idx
            """,
            [*params, limit, offset, dataset_id, dataset_id, k],
        ).df()


def vetoed_examples_among(store: Store, dataset_id: int, example_ids: list[str]) -> set[str]:
    """Which of ``example_ids`` are vetoed: the veto overlay of a page of examples whose text, cluster and
    copies were read (and cached) before; a lookup of a few ids, whatever the dataset's size."""
    if not example_ids:
        return set()
    marks = ", ".join("?" for _ in example_ids)
    with store.read() as con:
        rows = con.execute(
            f"SELECT example_id FROM example_vetoes WHERE dataset_id = ? AND vetoed AND example_id IN ({marks})",
            [dataset_id, *example_ids],
        ).fetchall()
    return {str(example_id) for (example_id,) in rows}


def map_points(store: Store, dataset_id: int, k: int, snippet_chars: int = 120) -> pd.DataFrame:
    """Map coordinates with cluster id and an instruction snippet, one row per example; it depends on no
    decision (the page joins the veto overlay of :func:`vetoed_points`). ``snippet_chars=0``: no snippet,
    for a map too large to carry text, which then reads no text at all."""
    snippet = ", left(e.instruction, ?) AS snippet" if snippet_chars else ""
    texts = "JOIN examples e ON e.dataset_id = m.dataset_id AND e.row_idx = m.row_idx " if snippet_chars else ""
    with store.read() as con:
        return con.execute(
            f"SELECT m.row_idx, m.x, m.y, a.cluster_id{snippet} FROM map_coords m {texts}"
            "JOIN assignments a ON a.dataset_id = m.dataset_id AND a.row_idx = m.row_idx AND a.k = ? "
            "WHERE m.dataset_id = ? ORDER BY m.row_idx",
            [*([snippet_chars] if snippet_chars else []), k, dataset_id],
        ).df()


def decisions(store: Store, dataset_id: int) -> dict[str, Any]:
    """Every veto and non-neutral weight in force, for manifests: by k, plus example vetoes."""
    with store.read() as con:
        cluster_rows = con.execute(
            "SELECT k, cluster_id, vetoed, weight FROM cluster_decisions WHERE dataset_id = ? "
            "AND (vetoed OR weight <> 1.0) ORDER BY k, cluster_id",
            [dataset_id],
        ).fetchall()
        example_rows = con.execute(
            "SELECT example_id FROM example_vetoes WHERE dataset_id = ? AND vetoed ORDER BY example_id", [dataset_id]
        ).fetchall()
    by_k: dict[str, dict[str, Any]] = {}
    for k, cluster_id, vetoed, weight in cluster_rows:
        entry = by_k.setdefault(str(k), {"vetoed_clusters": [], "weights": {}})
        if vetoed:
            entry["vetoed_clusters"].append(int(cluster_id))
        if weight != 1.0:
            entry["weights"][str(cluster_id)] = float(weight)
    return {"clusters_by_k": by_k, "vetoed_examples": [row[0] for row in example_rows]}


def kept_rows(store: Store, dataset_id: int, k: int, tag: str | None = None) -> pd.DataFrame:
    """Every example not vetoed (neither itself nor its cluster at ``k``), in row order, with its original fields;
    with ``tag``, only those carrying it."""
    condition, params = _tag_filter(dataset_id, tag)
    with store.read() as con:
        return con.execute(
            "SELECT e.row_idx, e.example_id, a.cluster_id, e.original "
            + _KEPT_JOINS
            + condition
            + "ORDER BY e.row_idx",
            [k, dataset_id, *params],
        ).df()


SCAN_MEMORY_LIMIT = "128MB"  # peak RSS of a 900k-row export: 0.60 GB at 256MB, 0.44-0.47 GB at 128MB, time alike


@contextmanager
def bounded_scan(store: Store) -> Iterator[None]:
    """One connection for a read that goes through a whole dataset's texts (the export), with DuckDB's memory
    capped at ``SCAN_MEMORY_LIMIT`` until it ends.

    DuckDB keeps every table block it reads in its buffer pool up to its memory limit (80 % of RAM by default),
    so an export of 900k rows grew the process by the 0.8 GB of blocks it had read (bench/export.py); capped,
    the blocks already written out are evicted as the scan moves on and the memory stays flat.
    """
    with store.read() as con:
        con.execute("SET memory_limit = ?", [SCAN_MEMORY_LIMIT])
        try:
            yield
        finally:
            con.execute("RESET memory_limit")


ExportRow = tuple[str, int, str, str | None]
"""One exported example: its example_id, its cluster at the export's k, its original row's JSON text and, when
asked for, its chat turns as ingest normalised them (JSON text; None for an Alpaca row or when not asked)."""


def export_columns(messages: bool) -> str:
    """The columns of an :data:`ExportRow`; the chat turns are read only when a format needs them (a chat
    dataset's turns are about as long as its original rows)."""
    return "e.example_id, a.cluster_id, e.original, " + ("e.messages " if messages else "NULL ")


_KEPT_JOINS = (
    "FROM examples e "
    "JOIN assignments a ON a.dataset_id = e.dataset_id AND a.row_idx = e.row_idx AND a.k = ? "
    "LEFT JOIN cluster_decisions d ON d.dataset_id = a.dataset_id AND d.k = a.k AND d.cluster_id = a.cluster_id "
    "LEFT JOIN example_vetoes v ON v.dataset_id = e.dataset_id AND v.example_id = e.example_id "
    "WHERE e.dataset_id = ? AND NOT coalesce(d.vetoed, FALSE) AND NOT coalesce(v.vetoed, FALSE) "
)


def _tag_filter(dataset_id: int, tag: str | None) -> tuple[str, list[Any]]:
    """The condition (and its parameters) keeping only rows that carry ``tag`` (themselves or their cluster)."""
    if tag is None:
        return "", []
    return f"AND {tags_store.tagged_condition()} ", tags_store.tagged_params(dataset_id, tag)


def kept_row_chunks(
    store: Store, dataset_id: int, k: int, chunk_rows: int, tag: str | None = None, messages: bool = False
) -> Iterator[list[ExportRow]]:
    """What :func:`kept_rows` returns, in row order, a range of ``chunk_rows`` row numbers at a time; with
    ``tag``, only the rows carrying it (tagged themselves or through their cluster at ``k``); with ``messages``,
    each row's normalised chat turns too.

    Every chunk is read through one connection, held until the last chunk is taken (or the iterator closed),
    so the rows agree with the decisions read alongside them: a veto made meanwhile waits its turn. A chunk
    is a range of row numbers, so DuckDB sorts one chunk at a time, never the whole table's texts.
    """
    with store.read() as con:
        top = int(
            one_row(con.execute("SELECT coalesce(max(row_idx), -1) FROM examples WHERE dataset_id = ?", [dataset_id]))[
                0
            ]
        )
        for start in range(0, top + 1, chunk_rows):
            condition, params = _tag_filter(dataset_id, tag)
            rows = con.execute(
                "SELECT "
                + export_columns(messages)
                + _KEPT_JOINS
                + condition
                + "AND e.row_idx >= ? AND e.row_idx < ? AND a.row_idx >= ? AND a.row_idx < ? ORDER BY e.row_idx",
                [k, dataset_id, *params, start, start + chunk_rows, start, start + chunk_rows],
            ).fetchall()
            if rows:
                yield rows


def kept_counts(store: Store, dataset_id: int, k: int, tag: str | None = None) -> dict[int, int]:
    """How many examples each cluster at ``k`` keeps (clusters keeping none are absent): the export's counts
    without reading a text."""
    with store.read() as con:
        condition, params = _tag_filter(dataset_id, tag)
        rows = con.execute(
            "SELECT a.cluster_id, count(*) " + _KEPT_JOINS + condition + "GROUP BY a.cluster_id",
            [k, dataset_id, *params],
        )
        return {int(cluster): int(n) for cluster, n in rows.fetchall()}


def all_rows(store: Store, dataset_id: int, k: int) -> pd.DataFrame:
    """Every example in row order with its cluster at ``k`` and original fields, vetoed or not."""
    with store.read() as con:
        return con.execute(
            "SELECT e.row_idx, e.example_id, a.cluster_id, e.original FROM examples e "
            "JOIN assignments a ON a.dataset_id = e.dataset_id AND a.row_idx = e.row_idx AND a.k = ? "
            "WHERE e.dataset_id = ? ORDER BY e.row_idx",
            [k, dataset_id],
        ).df()


def dataset_summary(store: Store, dataset_id: int) -> dict[str, int]:
    """Counts a curator checks first: rows, exact duplicates, repeated prompts. (Empty responses are counted
    by :func:`core.models.passes.empty_responses` on :func:`core.storage.datasets.outputs`: SQL's ``trim``
    strips spaces only, so a response of newlines would not count.)"""
    with store.read() as con:
        row = one_row(
            con.execute(
                """
            WITH content AS (SELECT content_hash, count(*) AS n FROM examples WHERE dataset_id = ? GROUP BY 1),
                 prompts AS (SELECT prompt_hash, count(*) AS n FROM examples WHERE dataset_id = ? GROUP BY 1)
            SELECT (SELECT count(*) FROM examples WHERE dataset_id = ?),
                   (SELECT coalesce(sum(n), 0) FROM content WHERE n > 1),
                   (SELECT count(*) FROM content WHERE n > 1),
                   (SELECT coalesce(sum(n), 0) FROM prompts WHERE n > 1)
            """,
                [dataset_id] * 3,
            )
        )
    keys = ("rows", "duplicate_rows", "duplicate_groups", "repeated_prompt_rows")
    return {key: int(value) for key, value in zip(keys, row, strict=True)}


def dismissed_proposals(store: Store, dataset_id: int, k: int) -> set[int]:
    """Clusters at ``k`` whose veto proposal the curator dismissed (kept as history rows)."""
    with store.read() as con:
        rows = con.execute(
            "SELECT target FROM history WHERE dataset_id = ? AND action = 'dismiss_veto_proposal' AND target LIKE ?",
            [dataset_id, f"k={k}/cluster=%"],
        ).fetchall()
    return {int(target.rsplit("=", 1)[1]) for (target,) in rows}
