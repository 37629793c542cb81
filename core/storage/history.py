"""The history of the curator's decisions, by batch: recording, summaries, undo and revert.

Every decision write (:mod:`core.storage.curation`) keeps one ``history`` row per target it changed (what, old
value, new value as JSON) under a batch: one id shared by every row of one user action (a single veto is a
batch of one, a bulk veto of 412 examples one batch of 412 rows), with who took it (``actor``: "app session
ab12cd34", "cli", ...). A batch's row in ``history_batches`` says what kind it is (a change, an undo, a
revert), why it was taken (``reason``: the search a bulk veto came from) and which batches it undoes.

Undo writes the old values of a batch back, as a new batch, so an undo is itself undoable (undoing an undo
redoes) and nothing is ever deleted from the history. A batch is *in effect* unless a batch in effect undoes
it. Undo refuses a batch whose targets a later batch changed since (it names that batch) unless forced;
revert restores the state right after a batch by undoing every batch after it, as one batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import UndoRefused, UnknownBatch
from core.storage.database import drop_temp, one_row

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import duckdb
    import pandas as pd

    from core.storage.database import Store

    AfterApply = Callable[[duckdb.DuckDBPyConnection, dict[int, set[int]]], None]
    """Called inside an undo's or a revert's write with the clusters (per k) whose rows it moved back, so the
    caller (:mod:`core.cluster.edits`) relabels them in the same transaction."""

REVERSIBLE = ("cluster_veto", "cluster_weight", "example_veto", "tag", "cluster_name", "cluster_assignment")
"""The actions undo can write back; the others (choosing k, dismissing a proposal) are kept as a record only."""

DEFAULT_ACTOR = "app"


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_batch(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    actor: str,
    kind: str = "change",
    reason: str | None = None,
    undoes: Sequence[int] = (),
) -> int:
    """Start a batch inside the caller's transaction; its id comes from the history ids, so it sorts in time."""
    batch_id = int(one_row(con.execute("SELECT nextval('history_ids')"))[0])
    con.execute(
        "INSERT INTO history_batches (batch_id, dataset_id, created_at, actor, kind, reason, undoes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [batch_id, dataset_id, now(), actor, kind, reason, [int(b) for b in undoes]],
    )
    return batch_id


def record_selected(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    action: str,
    rows_sql: str,
    params: Sequence[Any],
    *,
    batch_id: int,
    actor: str,
) -> None:
    """History rows of a set-based change, one per row of ``rows_sql`` (a SELECT of ``target``, ``old_value``
    and ``new_value``, the values as JSON text, with its ``params``), all in ``batch_id``."""
    con.execute(
        "INSERT INTO history (dataset_id, changed_at, action, target, old_value, new_value, batch_id, actor) "
        f"SELECT ?, ?, ?, target, old_value, new_value, ?, ? FROM ({rows_sql})",
        [dataset_id, now(), action, batch_id, actor, *params],
    )


def record(
    con: duckdb.DuckDBPyConnection,
    dataset_id: int,
    action: str,
    target: str,
    old: Any,
    new: Any,
    *,
    batch_id: int | None = None,
    actor: str = DEFAULT_ACTOR,
) -> int:
    """Keep one history row (in a new batch of one unless ``batch_id`` is given); returns its batch."""
    if batch_id is None:
        batch_id = new_batch(con, dataset_id, actor)
    con.execute(
        "INSERT INTO history (dataset_id, changed_at, action, target, old_value, new_value, batch_id, actor) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [dataset_id, now(), action, target, json.dumps(old), json.dumps(new), batch_id, actor],
    )
    return batch_id


def rows(store: Store, dataset_id: int, limit: int = 200) -> pd.DataFrame:
    """The most recent history rows, newest first, with their batch and actor."""
    with store.read() as con:
        return con.execute(
            "SELECT history_id, batch_id, actor, changed_at, action, target, old_value, new_value FROM history "
            "WHERE dataset_id = ? ORDER BY history_id DESC LIMIT ?",
            [dataset_id, limit],
        ).df()


@dataclass(frozen=True)
class Batch:
    """One user action in the history: its rows summed up, and whether it is still in effect."""

    batch_id: int
    changed_at: datetime | None
    actor: str
    kind: str  # change, undo or revert
    reason: str | None
    undoes: tuple[int, ...]
    n_rows: int
    first_id: int  # its first and last history rows (a batch of an older workspace: its one row's id)
    last_id: int
    actions: tuple[str, ...]
    n_true: int  # rows whose new value is true (vetoes) or false (un-vetoes)
    n_false: int
    first_target: str | None
    first_old: str | None
    last_new: str | None
    in_effect: bool = True
    undone_by: int | None = None
    summary: str = ""
    change: str = ""

    @property
    def reversible(self) -> bool:
        return any(action in REVERSIBLE for action in self.actions)


_BATCH_ROWS = """
SELECT h.batch_id, min(h.changed_at), any_value(h.actor), count(*), min(h.history_id), max(h.history_id),
       list(DISTINCT h.action ORDER BY h.action), count(*) FILTER (WHERE h.new_value = 'true'),
       count(*) FILTER (WHERE h.new_value = 'false'), arg_min(h.target, h.history_id),
       arg_min(h.old_value, h.history_id), arg_max(h.new_value, h.history_id)
FROM history h WHERE h.dataset_id = ? GROUP BY h.batch_id
"""


def _load(con: duckdb.DuckDBPyConnection, dataset_id: int) -> list[Batch]:
    """Every batch of the dataset, oldest first, with in_effect, undone_by and its summary filled in."""
    aggregated = {int(row[0]): row for row in con.execute(_BATCH_ROWS, [dataset_id]).fetchall()}
    described = {
        int(row[0]): row
        for row in con.execute(
            "SELECT batch_id, created_at, actor, kind, reason, undoes FROM history_batches WHERE dataset_id = ?",
            [dataset_id],
        ).fetchall()
    }
    batches: list[Batch] = []
    for batch_id in sorted(set(aggregated) | set(described)):
        agg = aggregated.get(batch_id)
        meta = described.get(batch_id)
        n_rows = int(agg[3]) if agg else 0
        batches.append(
            Batch(
                batch_id=batch_id,
                changed_at=meta[1] if meta else agg[1] if agg else None,
                actor=(meta[2] if meta else agg[2] if agg else None) or "unknown",
                kind=(meta[3] if meta else None) or "change",
                reason=meta[4] if meta else None,
                undoes=tuple(int(b) for b in (meta[5] or [])) if meta else (),
                n_rows=n_rows,
                first_id=int(agg[4]) if agg else batch_id,
                last_id=int(agg[5]) if agg else batch_id,
                actions=tuple(agg[6]) if agg else (),
                n_true=int(agg[7]) if agg else 0,
                n_false=int(agg[8]) if agg else 0,
                first_target=agg[9] if agg else None,
                first_old=agg[10] if agg else None,
                last_new=agg[11] if agg else None,
            )
        )
    return _resolve(batches)


def _resolve(batches: list[Batch]) -> list[Batch]:
    """Fill in which batches are in effect (newest first: an undoer always comes after what it undoes, so a batch
    is in effect unless a batch in effect undid it) and each one's summary."""
    undone_by: dict[int, int] = {}
    effect: dict[int, bool] = {}
    for batch in reversed(batches):
        effect[batch.batch_id] = batch.batch_id not in undone_by
        if effect[batch.batch_id]:
            for target in batch.undoes:
                undone_by.setdefault(target, batch.batch_id)
    by_id: dict[int, Batch] = {}
    resolved = []
    for batch in batches:
        in_effect = effect[batch.batch_id]
        done = replace(batch, in_effect=in_effect, undone_by=None if in_effect else undone_by.get(batch.batch_id))
        done = replace(done, summary=_summary(done, by_id), change=_change(done))
        by_id[batch.batch_id] = done
        resolved.append(done)
    return resolved


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {plural or word + 's'}"


def _cluster_words(target: str | None) -> str:
    """``k=4/cluster=3`` as "cluster 3 (k=4)"."""
    k, _, cluster = (target or "").partition("/")
    return f"cluster {cluster.removeprefix('cluster=')} ({k})" if cluster else str(target)


def _summary(batch: Batch, earlier: dict[int, Batch]) -> str:
    """A line a curator reads: "vetoed 412 examples (search: 'lorem')", "undid #12: ...", "redid #12: ..."."""
    if batch.kind == "revert":
        return f"reverted {batch.reason or ''}: undid {_plural(len(batch.undoes), 'batch', 'batches')}"
    if batch.kind == "undo" and len(batch.undoes) == 1:
        target = earlier.get(batch.undoes[0])
        if target is None:
            return f"undid #{batch.undoes[0]}"
        if target.kind == "undo" and len(target.undoes) == 1 and target.undoes[0] in earlier:
            original = earlier[target.undoes[0]]
            return f"redid #{original.batch_id}: {original.summary}"
        return f"undid #{target.batch_id}: {target.summary}"
    text = _what(batch)
    return f"{text} ({batch.reason})" if batch.reason else text


def _what(batch: Batch) -> str:
    action = batch.actions[0] if len(batch.actions) == 1 else None
    if batch.n_rows == 0:
        return "nothing changed"
    if action == "example_veto":
        if batch.n_rows == 1:
            return f"{'vetoed' if batch.last_new == 'true' else 'un-vetoed'} example {batch.first_target}"
        if batch.n_false == 0:
            return f"vetoed {_plural(batch.n_true, 'example')}"
        if batch.n_true == 0:
            return f"un-vetoed {_plural(batch.n_false, 'example')}"
        return f"vetoed {batch.n_true:,} and un-vetoed {_plural(batch.n_false, 'example')}"
    if action == "cluster_veto":
        if batch.n_rows == 1:
            verb = "vetoed" if batch.last_new == "true" else "un-vetoed"
            return f"{verb} {_cluster_words(batch.first_target)}"
        if batch.n_false == 0:
            return f"vetoed {_plural(batch.n_true, 'cluster')}"
        if batch.n_true == 0:
            return f"un-vetoed {_plural(batch.n_false, 'cluster')}"
        return f"vetoed {batch.n_true:,} and un-vetoed {_plural(batch.n_false, 'cluster')}"
    if action == "cluster_weight" and batch.n_rows == 1:
        return f"weight of {_cluster_words(batch.first_target)}"
    if action == "cluster_weight":
        return f"weight of {_plural(batch.n_rows, 'cluster')} set to {batch.last_new}"
    if action == "cluster_name" and batch.n_rows == 1:
        new_name = json.loads(batch.last_new or "null")
        where = _cluster_words(batch.first_target)
        return f"named {where} {new_name!r}" if new_name else f"gave {where} back its computed label"
    if action == "tag":
        pair = json.loads(batch.first_target or '["", ""]')
        verb = "tagged" if batch.n_true else "untagged"
        what = "cluster" if str(pair[0]).startswith("k=") else "example"
        count = batch.n_true + batch.n_false
        return f"{verb} {_plural(count, what)} '{pair[1]}'" if count > 1 else f"{verb} {pair[0]} '{pair[1]}'"
    if action == "cluster_assignment":
        return f"moved {_plural(batch.n_rows, 'example')} between clusters"
    if action == "choose_k":
        return f"chose k={batch.last_new}"
    if action == "dismiss_veto_proposal":
        return f"dismissed the veto proposal of {_cluster_words(batch.first_target)}"
    return f"changed {_plural(batch.n_rows, 'decision')} ({', '.join(batch.actions)})"


def _state(action: str | None, value: str | None) -> str:
    if action in ("example_veto", "cluster_veto"):
        return "vetoed" if value == "true" else "kept"
    if action == "cluster_name":
        name = json.loads(value or "null")
        return repr(name) if name else "(computed label)"
    return str(value)


def _change(batch: Batch) -> str:
    """Old → new: "kept → vetoed", "1.0 → 2.5", or how many of each for a bulk batch."""
    if batch.n_rows == 0:
        return ""
    action = batch.actions[0] if len(batch.actions) == 1 else None
    if batch.n_rows == 1:
        return f"{_state(action, batch.first_old)} → {_state(action, batch.last_new)}"
    if action in ("example_veto", "cluster_veto"):
        parts = [f"{batch.n_true:,} kept → vetoed"] if batch.n_true else []
        parts += [f"{batch.n_false:,} vetoed → kept"] if batch.n_false else []
        return ", ".join(parts)
    return f"{batch.n_rows:,} changes"


def batches(store: Store, dataset_id: int, limit: int | None = 50) -> list[Batch]:
    """The dataset's batches, newest first (at most ``limit``), each with its summary and whether it is in effect."""
    with store.read() as con:
        listing = _load(con, dataset_id)
    listing.reverse()
    return listing if limit is None else listing[:limit]


def batch_frame(store: Store, dataset_id: int, limit: int | None = 50) -> pd.DataFrame:
    """:func:`batches` as a table: batch id, when, actor, summary, change (old → new), rows, in effect."""
    import pandas as pd

    columns = [
        "batch_id",
        "changed_at",
        "actor",
        "kind",
        "summary",
        "change",
        "n_rows",
        "first_id",
        "last_id",
        "in_effect",
        "undone_by",
        "reversible",
    ]
    listing = batches(store, dataset_id, limit)
    return pd.DataFrame(
        [[getattr(b, c) if c != "reversible" else b.reversible for c in columns] for b in listing], columns=columns
    )


def latest_undoable(listing: Sequence[Batch]) -> Batch | None:
    """What Undo undoes by default: the newest batch in effect that writes decisions and is not itself an undo
    (so pressing Undo again walks further back; an undo is redone by undoing it by its id)."""
    newest_first = sorted(listing, key=lambda b: b.batch_id, reverse=True)
    return next((b for b in newest_first if b.in_effect and b.reversible and b.kind != "undo"), None)


# Whether two JSON values of one target are the same decision (weights as numbers: 1 and 1.0 are one weight).
_SAME = (
    "CASE WHEN action = 'cluster_weight' THEN abs(CAST({a} AS DOUBLE) - CAST({b} AS DOUBLE)) < 1e-9 ELSE {a} = {b} END"
)

_PLAN = """
CREATE OR REPLACE TEMP TABLE undo_plan AS
WITH picked AS (
    SELECT action, target, arg_min(old_value, history_id) AS restore, arg_max(new_value, history_id) AS expected
    FROM history WHERE dataset_id = ? AND list_contains(?, batch_id) AND list_contains(?, action)
    GROUP BY action, target
), parsed AS (
    SELECT *, TRY_CAST(regexp_extract(target, '^k=(\\d+)/', 1) AS INTEGER) AS k,
           TRY_CAST(regexp_extract(target, '/cluster=(\\d+)$', 1) AS INTEGER) AS cluster_id,
           TRY_CAST(regexp_extract(target, '/row=(\\d+)$', 1) AS INTEGER) AS row_idx,
           -- a tag's target is JSON ([ref, tag]); the others are not, and a join condition is not short-circuited
           CASE WHEN action = 'tag' AND json_valid(target) THEN json_extract_string(target, '$[0]') END AS tag_ref,
           CASE WHEN action = 'tag' AND json_valid(target) THEN json_extract_string(target, '$[1]') END AS tag_name
    FROM picked
)
SELECT p.*, CASE p.action
        WHEN 'example_veto' THEN CAST(to_json(coalesce(v.vetoed, FALSE)) AS VARCHAR)
        WHEN 'cluster_veto' THEN CAST(to_json(coalesce(d.vetoed, FALSE)) AS VARCHAR)
        WHEN 'tag' THEN CAST(to_json(t.tag IS NOT NULL) AS VARCHAR)
        WHEN 'cluster_name' THEN CAST(to_json(n.name) AS VARCHAR)
        WHEN 'cluster_assignment' THEN CAST(a.cluster_id AS VARCHAR)
        ELSE CAST(to_json(coalesce(d.weight, 1.0)) AS VARCHAR) END AS current
FROM parsed p
LEFT JOIN example_vetoes v ON p.action = 'example_veto' AND v.dataset_id = ? AND v.example_id = p.target
LEFT JOIN cluster_decisions d ON p.action IN ('cluster_veto', 'cluster_weight') AND d.dataset_id = ? AND d.k = p.k
    AND d.cluster_id = p.cluster_id
LEFT JOIN tags t ON p.action = 'tag' AND t.dataset_id = ? AND t.ref = p.tag_ref AND t.tag = p.tag_name
LEFT JOIN cluster_names n ON p.action = 'cluster_name' AND n.dataset_id = ? AND n.k = p.k AND n.cluster_id = p.cluster_id
LEFT JOIN assignments a ON p.action = 'cluster_assignment' AND a.dataset_id = ? AND a.k = p.k AND a.row_idx = p.row_idx
"""


def _plan(con: duckdb.DuckDBPyConnection, dataset_id: int, batch_ids: Sequence[int]) -> None:
    """``undo_plan``: for each target the batches touched, the value to restore (its value before the first of
    their rows), the value they left (after the last) and its value now."""
    con.execute(
        _PLAN,
        [dataset_id, [int(b) for b in batch_ids], list(REVERSIBLE), *[dataset_id] * 5],
    )


def _conflicts(con: duckdb.DuckDBPyConnection, dataset_id: int, batch_id: int) -> list[tuple[int, int]]:
    """The later batches that changed a target of the planned batch whose value is no longer what it left:
    (batch id, how many such targets), newest first."""
    stale = _SAME.format(a="p.current", b="p.expected").replace("action", "p.action")
    return [
        (int(b), int(n))
        for b, n in con.execute(
            "SELECT h.batch_id, count(DISTINCT (h.action, h.target)) FROM history h "
            "JOIN undo_plan p ON p.action = h.action AND p.target = h.target "
            f"WHERE h.dataset_id = ? AND h.batch_id > ? AND NOT ({stale}) GROUP BY h.batch_id ORDER BY h.batch_id DESC",
            [dataset_id, batch_id],
        ).fetchall()
    ]


# A row's cluster is written back only where it is still what the undone batches left: a clustering fitted again
# since (same k, other clusters) must not get ids of the one the edit was made on, even by a forced undo.
_STALE_ASSIGNMENT = "action = 'cluster_assignment' AND current IS DISTINCT FROM expected"


def _apply(con: duckdb.DuckDBPyConnection, dataset_id: int, batch_id: int, actor: str) -> int:
    """Write the plan's restore values where they differ from the values now, with a history row each."""
    con.execute(f"DELETE FROM undo_plan WHERE {_STALE_ASSIGNMENT}")
    differs = f"NOT ({_SAME.format(a='current', b='restore')})"
    con.execute(
        "INSERT INTO history (dataset_id, changed_at, action, target, old_value, new_value, batch_id, actor) "
        f"SELECT ?, ?, action, target, current, restore, ?, ? FROM undo_plan WHERE {differs} ORDER BY action, target",
        [dataset_id, now(), batch_id, actor],
    )
    changed = int(one_row(con.execute(f"SELECT count(*) FROM undo_plan WHERE {differs}"))[0])
    con.execute(
        "INSERT INTO example_vetoes SELECT ?, target, restore = 'true' FROM undo_plan "
        f"WHERE action = 'example_veto' AND {differs} "
        "ON CONFLICT (dataset_id, example_id) DO UPDATE SET vetoed = excluded.vetoed",
        [dataset_id],
    )
    con.execute(
        "INSERT INTO cluster_decisions (dataset_id, k, cluster_id, vetoed, weight) "
        "SELECT ?, k, cluster_id, restore = 'true', 1.0 FROM undo_plan "
        f"WHERE action = 'cluster_veto' AND k IS NOT NULL AND {differs} "
        "ON CONFLICT (dataset_id, k, cluster_id) DO UPDATE SET vetoed = excluded.vetoed",
        [dataset_id],
    )
    con.execute(
        "INSERT INTO cluster_decisions (dataset_id, k, cluster_id, vetoed, weight) "
        "SELECT ?, k, cluster_id, FALSE, CAST(restore AS DOUBLE) FROM undo_plan "
        f"WHERE action = 'cluster_weight' AND k IS NOT NULL AND {differs} "
        "ON CONFLICT (dataset_id, k, cluster_id) DO UPDATE SET weight = excluded.weight",
        [dataset_id],
    )
    con.execute(
        "DELETE FROM cluster_names WHERE dataset_id = ? AND (k, cluster_id) IN (SELECT k, cluster_id FROM undo_plan "
        f"WHERE action = 'cluster_name' AND (restore IS NULL OR restore = 'null') AND {differs})",
        [dataset_id],
    )
    con.execute(
        "INSERT INTO cluster_names SELECT ?, k, cluster_id, json_extract_string(restore, '$') FROM undo_plan "
        f"WHERE action = 'cluster_name' AND restore IS NOT NULL AND restore <> 'null' AND {differs} "
        "ON CONFLICT (dataset_id, k, cluster_id) DO UPDATE SET name = excluded.name",
        [dataset_id],
    )
    con.execute(
        "UPDATE assignments SET cluster_id = CAST(p.restore AS INTEGER) FROM undo_plan p "
        "WHERE p.action = 'cluster_assignment' AND p.current IS DISTINCT FROM p.restore "
        "AND assignments.dataset_id = ? AND assignments.k = p.k AND assignments.row_idx = p.row_idx",
        [dataset_id],
    )
    con.execute(
        "INSERT INTO tags SELECT ?, tag_ref, tag_name "
        f"FROM undo_plan WHERE action = 'tag' AND restore = 'true' AND {differs} ON CONFLICT DO NOTHING",
        [dataset_id],
    )
    con.execute(
        "DELETE FROM tags WHERE dataset_id = ? AND (ref, tag) IN (SELECT tag_ref, tag_name "
        f"FROM undo_plan WHERE action = 'tag' AND restore = 'false' AND {differs})",
        [dataset_id],
    )
    return changed


def _touched_clusters(con: duckdb.DuckDBPyConnection) -> dict[int, set[int]]:
    """After :func:`_apply`: per k, the clusters whose rows it moved (the ones they left and the ones they joined)."""
    touched: dict[int, set[int]] = {}
    for k, current, restore in con.execute(
        "SELECT k, current, restore FROM undo_plan WHERE action = 'cluster_assignment' AND current <> restore"
    ).fetchall():
        touched.setdefault(int(k), set()).update(int(c) for c in (current, restore) if c is not None)
    return touched


def _stale_assignments(con: duckdb.DuckDBPyConnection) -> int:
    return int(one_row(con.execute(f"SELECT count(*) FROM undo_plan WHERE {_STALE_ASSIGNMENT}"))[0])


@dataclass(frozen=True)
class Undone:
    """What an undo or a revert did: its own batch, the batches it undid, how many targets it changed."""

    batch_id: int
    undid: tuple[int, ...]
    changed: int
    summary: str


def _find(listing: Sequence[Batch], batch_id: int) -> Batch:
    found = next((b for b in listing if b.batch_id == batch_id), None)
    if found is None:
        raise UnknownBatch(f"no batch #{batch_id} in this dataset's history (`python -m core history` lists them)")
    return found


def undo(
    store: Store,
    dataset_id: int,
    batch_id: int | None = None,
    actor: str = DEFAULT_ACTOR,
    force: bool = False,
    after: AfterApply | None = None,
) -> Undone:
    """Undo a whole batch (default: :func:`latest_undoable`) by writing its old values back, as a new batch.

    Refused (:class:`UndoRefused`) when the batch is already undone, or when a later batch changed one of its
    targets since (the message names the newest such batch); ``force`` writes the old values back anyway. A
    cluster edit is also refused when its clustering was fitted again since; forced, its rows are left as
    they are (the new clustering's ids are kept). ``after`` (see :data:`AfterApply`) runs before the commit.
    """
    with store.write(bump="decisions") as con:
        listing = _load(con, dataset_id)
        if batch_id is None:
            chosen = latest_undoable(listing)
            if chosen is None:
                raise UnknownBatch("nothing to undo: no decision of this dataset is in effect")
        else:
            chosen = _find(listing, batch_id)
        if not chosen.reversible:
            raise UndoRefused(f"batch #{chosen.batch_id} ({chosen.summary}) holds no decision that can be undone")
        if not chosen.in_effect and not force:
            raise UndoRefused(
                f"batch #{chosen.batch_id} ({chosen.summary}) is already undone by batch #{chosen.undone_by}; "
                f"undo #{chosen.undone_by} to redo it",
                (int(chosen.undone_by or 0),),
            )
        try:
            _plan(con, dataset_id, [chosen.batch_id])
            later = _conflicts(con, dataset_id, chosen.batch_id)
            if later and not force:
                newest, count = later[0]
                what = next(b.summary for b in listing if b.batch_id == newest)
                others = f" (and {_plural(len(later) - 1, 'other batch', 'other batches')})"
                raise UndoRefused(
                    f"cannot undo batch #{chosen.batch_id} ({chosen.summary}): batch #{newest} ({what}) changed "
                    f"{_plural(count, 'of its targets', 'of its targets')} since{others if len(later) > 1 else ''}. Undo #{newest} "
                    "first, or force the undo to write the old values back anyway",
                    tuple(b for b, _ in later),
                )
            stale = _stale_assignments(con)
            if stale and not force:
                raise UndoRefused(
                    f"cannot undo batch #{chosen.batch_id} ({chosen.summary}): {_plural(stale, 'of its rows')} "
                    "no longer sit where it put them (the clustering of this k was fitted again since), so its old "
                    "cluster ids would name other clusters. Forced, the rest of the batch is undone and those rows "
                    "stay where they are",
                    (),
                )
            new_id = new_batch(con, dataset_id, actor, "undo", None, [chosen.batch_id])
            changed = _apply(con, dataset_id, new_id, actor)
            if after is not None:
                after(con, _touched_clusters(con))
        finally:
            drop_temp(con, "undo_plan")
    return Undone(new_id, (chosen.batch_id,), changed, f"undid #{chosen.batch_id}: {chosen.summary}")


def revert_to(
    store: Store, dataset_id: int, history_id: int, actor: str = DEFAULT_ACTOR, after: AfterApply | None = None
) -> Undone:
    """Bring every decision back to what it was right after the batch holding ``history_id`` (a history row's
    id or a batch's), undoing every later batch, newest first, as one batch. Choosing k is not reverted, nor
    a cluster edit of a clustering fitted again since. ``after`` as in :func:`undo`."""
    with store.write(bump="decisions") as con:
        listing = _load(con, dataset_id)
        point = next((b for b in listing if b.batch_id == history_id), None) or next(
            (b for b in listing if b.first_id <= history_id <= b.last_id and b.n_rows), None
        )
        if point is None:
            raise UnknownBatch(f"no history row or batch #{history_id} in this dataset's history")
        later = [b.batch_id for b in listing if b.batch_id > point.batch_id and b.reversible]
        if not later:
            raise UnknownBatch(f"nothing to revert: no decision was changed after #{history_id}")
        try:
            _plan(con, dataset_id, later)
            new_id = new_batch(con, dataset_id, actor, "revert", f"to #{point.batch_id}", sorted(later, reverse=True))
            changed = _apply(con, dataset_id, new_id, actor)
            if after is not None:
                after(con, _touched_clusters(con))
        finally:
            drop_temp(con, "undo_plan")
    summary = f"reverted to #{point.batch_id}: undid {_plural(len(later), 'batch', 'batches')}"
    return Undone(new_id, tuple(sorted(later, reverse=True)), changed, summary)
