"""Free tags a curator puts on clusters and examples ("needs review", "math", "keep"), to filter and export by.

A tag belongs to a reference: ``k=<k>/cluster=<id>`` for a cluster of one clustering, ``example=<id>`` for an
example. Adding or removing tags is a decision like a veto: one transaction, one batch of the history (each
changed (reference, tag) pair a row, action ``tag``, target the JSON pair), so Undo reverts it whole
(core/storage/history.py). An example carries a tag when it is tagged itself or its cluster at the active k is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from core.storage import history as decision_history
from core.storage.database import one_row
from core.storage.history import DEFAULT_ACTOR

if TYPE_CHECKING:
    from core.storage.database import Store

MAX_TAG = 60  # characters


def cluster_ref(k: int, cluster_id: int) -> str:
    return f"k={int(k)}/cluster={int(cluster_id)}"


def example_ref(example_id: str) -> str:
    return f"example={example_id}"


def clean_tag(tag: str) -> str:
    """A tag as stored: trimmed, one line, 1 to :data:`MAX_TAG` characters (ValueError otherwise)."""
    value = " ".join(str(tag).split())
    if not value or len(value) > MAX_TAG:
        raise ValueError(f"a tag has 1 to {MAX_TAG} characters, not {len(value)}: {tag!r}")
    return value


def set_tag(
    store: Store,
    dataset_id: int,
    refs: Iterable[str],
    tag: str,
    present: bool = True,
    actor: str = DEFAULT_ACTOR,
    reason: str | None = None,
) -> int:
    """Put ``tag`` on every reference (or take it off: ``present=False``) as one batch; returns how many
    references changed (those that already had it, or lacked it, are left out of the history). Set-based: the
    references go in as an Arrow table, so tagging a search's 100k rows is a few statements."""
    import pyarrow as pa

    tag = clean_tag(tag)
    wanted = sorted(set(refs))
    if not wanted:
        return 0
    with store.write(bump="decisions") as con:
        con.register("tag_refs", pa.table({"ref": pa.array(wanted, pa.string())}))
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE tag_changes AS SELECT r.ref FROM tag_refs r "
                "LEFT JOIN tags t ON t.dataset_id = ? AND t.tag = ? AND t.ref = r.ref "
                "WHERE (t.ref IS NOT NULL) <> ?",
                [dataset_id, tag, present],
            )
            changed = int(one_row(con.execute("SELECT count(*) FROM tag_changes"))[0])
            if changed:
                batch_id = decision_history.new_batch(con, dataset_id, actor, reason=reason)
                # the target is the JSON pair [reference, tag], built here for every tag row alike
                decision_history.record_selected(
                    con,
                    dataset_id,
                    "tag",
                    "SELECT CAST(json_array(ref, ?) AS VARCHAR) AS target, ? AS old_value, ? AS new_value "
                    "FROM tag_changes ORDER BY ref",
                    [tag, json.dumps(not present), json.dumps(present)],
                    batch_id=batch_id,
                    actor=actor,
                )
                if present:
                    con.execute("INSERT INTO tags SELECT ?, ref, ? FROM tag_changes", [dataset_id, tag])
                else:
                    con.execute(
                        "DELETE FROM tags WHERE dataset_id = ? AND tag = ? AND ref IN (SELECT ref FROM tag_changes)",
                        [dataset_id, tag],
                    )
        finally:
            con.execute("DROP TABLE IF EXISTS tag_changes")
            con.unregister("tag_refs")
    return changed


def tags_of(store: Store, dataset_id: int, refs: Iterable[str]) -> dict[str, list[str]]:
    """The tags on each of ``refs`` (references without any are absent), each list sorted."""
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    with store.read() as con:
        rows = con.execute(
            f"SELECT ref, tag FROM tags WHERE dataset_id = ? AND ref IN ({marks}) ORDER BY ref, tag",
            [dataset_id, *wanted],
        ).fetchall()
    found: dict[str, list[str]] = {}
    for ref, tag in rows:
        found.setdefault(str(ref), []).append(str(tag))
    return found


def all_tags(store: Store, dataset_id: int) -> dict[str, int]:
    """Every tag used in the dataset and on how many references."""
    with store.read() as con:
        rows = con.execute(
            "SELECT tag, count(*) FROM tags WHERE dataset_id = ? GROUP BY tag ORDER BY tag", [dataset_id]
        ).fetchall()
    return {str(tag): int(n) for tag, n in rows}


def tagged_condition() -> str:
    """A SQL condition on ``e`` (examples) and ``a`` (their assignments at one k) that holds when the example or
    its cluster carries the tag; its parameters, (dataset_id, tag) twice, come from :func:`tagged_params`."""
    return (
        "(('example=' || e.example_id) IN (SELECT ref FROM tags WHERE dataset_id = ? AND tag = ?) "
        "OR ('k=' || a.k || '/cluster=' || a.cluster_id) IN (SELECT ref FROM tags WHERE dataset_id = ? AND tag = ?))"
    )


def tagged_params(dataset_id: int, tag: str) -> list[object]:
    return [dataset_id, tag, dataset_id, tag]


def cluster_tags(store: Store, dataset_id: int) -> dict[str, list[str]]:
    """The tags on every tagged cluster reference of the dataset (all k), each list sorted."""
    with store.read() as con:
        rows = con.execute(
            "SELECT ref, tag FROM tags WHERE dataset_id = ? AND ref LIKE 'k=%' ORDER BY ref, tag", [dataset_id]
        ).fetchall()
    found: dict[str, list[str]] = {}
    for ref, tag in rows:
        found.setdefault(str(ref), []).append(str(tag))
    return found
