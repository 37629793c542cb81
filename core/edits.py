"""The curator's cluster edits: merge clusters, split one into sub-clusters (k-means inside it, previewed first),
and the undo and revert that put an edit's rows back; each edit is one batch of the history.

An edit changes one clustering (one k): it moves rows between cluster ids (:mod:`core.storage.cluster_edits`)
and relabels every cluster it touched in the same transaction: terms (c-TF-IDF, :func:`core.cluster.labels.
labels_for_clusters`), size and the row nearest the centre. Ids are never renumbered (a merge leaves a gap, a
split takes new ids above every id used), so a decision, name or tag keeps naming the same cluster; the merged
cluster keeps the id, veto, weight, name and tags of the cluster it was merged into, and a split's largest part
keeps the split cluster's. Undo and revert of any batch go through :func:`undo` and :func:`revert_to` here, so a
cluster an undo refills or empties is relabelled too. Fitting the k again replaces its clusters and their edits
(the history keeps them; their undo is refused, the rows no longer being where the edit put them).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from core.cluster import clustering, labels
from core.prepare import TextReader
from core.storage import cluster_edits, history
from core.storage import datasets as ds

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb

    from core.storage.database import Store

REPRESENTATIVE_SAMPLE = 5_000  # rows of a large edited cluster its representative is looked for among
# An edit relabels the clusters it touched from this many of their texts, and weighs terms' rarity by this many
# texts of every other cluster: at 52k rows and k=118, 1,000 and 100 took 1.4-2.9 s a merge (term counting
# of 12k texts), 500 and 20 0.37 s, 300 and 10 0.29 s with the same labels, 300 and 5 0.05 s less again with
# the same terms (docs/benchmarks.md); c-TF-IDF's top terms settle within a few hundred texts.
EDIT_TEXTS, EDIT_BACKGROUND = 300, 5
MAX_PARTS = 20


@dataclasses.dataclass(frozen=True)
class Edit:
    """What an edit did: its history batch, how many rows moved, and the clusters it left (relabelled)."""

    batch_id: int | None
    moved: int
    clusters: tuple[dict[str, Any], ...]
    summary: str


@dataclasses.dataclass(frozen=True)
class SplitPreview:
    """A split computed but not applied: the rows of the cluster, the part of each, and each part's label."""

    k: int
    cluster_id: int
    seed: int
    rows: np.ndarray
    new_ids: np.ndarray  # the cluster id each row of ``rows`` would get
    parts: tuple[dict[str, Any], ...]  # cluster_id, size, label, terms, representative_row, representative (its
    # instruction); largest first


@dataclasses.dataclass(frozen=True)
class MergePreview:
    """A merge computed but not applied: the rows that would move, and the merged cluster's label item."""

    k: int
    into: int
    others: tuple[int, ...]
    rows: np.ndarray
    merged: dict[str, Any]  # cluster_id, size, label, terms, representative_row


def preview_merge(
    store: Store, dataset: ds.DatasetInfo, k: int, clusters: Sequence[int], into: int | None = None
) -> MergePreview:
    """What :func:`merge` would do, without storing anything: the merged cluster's label, size and
    representative row (the page shows them on its Merge button; applying the preview costs no relabel)."""
    with store.read():  # one connection for its several reads
        into, others, rows = _merge_plan(store, dataset, k, clusters, into)
        found = ds.assignments(store, dataset.dataset_id, k).astype(np.int64)
        found[rows] = into
        (merged,) = _labels(store, dataset, found, [into])
    return MergePreview(k, into, others, rows, merged)


def merge(
    store: Store,
    dataset: ds.DatasetInfo,
    k: int,
    clusters: Sequence[int],
    *,
    into: int | None = None,
    actor: str,
    preview: MergePreview | None = None,
) -> Edit:
    """Merge ``clusters`` (two or more, at ``k``) into one: ``into`` (default: the largest of them) keeps its id
    and its decisions; the others are emptied. One batch of the history. A ``preview`` of the same merge whose
    rows are still the ones to move gives the merged cluster's label without computing it again."""
    into, others, rows = _merge_plan(store, dataset, k, clusters, into)
    names = ", ".join(str(c) for c in others)
    reason = f"merged cluster{'s' if len(others) > 1 else ''} {names} into {into} (k={k})"
    same = preview is not None and (preview.k, preview.into, preview.others) == (k, into, others)
    labelled = [preview.merged] if same and preview is not None and np.array_equal(preview.rows, rows) else None
    return _move(store, dataset, k, rows, np.full(len(rows), into), reason, actor, labelled=labelled)


def _merge_plan(
    store: Store, dataset: ds.DatasetInfo, k: int, clusters: Sequence[int], into: int | None
) -> tuple[int, tuple[int, ...], np.ndarray]:
    """The cluster kept, the ones emptied and the rows that move; the merge's errors."""
    chosen = sorted({int(c) for c in clusters})
    existing = set(cluster_edits.cluster_ids(store, dataset.dataset_id, k))
    missing = [c for c in chosen if c not in existing]
    if missing:
        raise LookupError(f"no cluster {', '.join(map(str, missing))} at k={k} (existing: {_ids(existing)})")
    if len(chosen) < 2:
        raise ValueError("a merge takes two or more clusters")
    if into is None:
        sizes = ds.assignments(store, dataset.dataset_id, k)
        counts = {c: int((sizes == c).sum()) for c in chosen}
        into = max(chosen, key=lambda c: (counts[c], -c))
    if into not in chosen:
        raise ValueError(f"cluster {into} is not one of the clusters merged ({_ids(chosen)})")
    others = tuple(c for c in chosen if c != into)
    return into, others, cluster_edits.rows_of(store, dataset.dataset_id, k, list(others))


def preview_split(
    store: Store, dataset: ds.DatasetInfo, k: int, cluster_id: int, parts: int = 2, seed: int | None = None
) -> SplitPreview:
    """k-means with ``parts`` clusters inside one cluster, on its rows' embeddings, and each part's label,
    size and representative row, without storing anything. The largest part would keep ``cluster_id``; the
    others take new ids above every id used at ``k``."""
    if not 2 <= parts <= MAX_PARTS:
        raise ValueError(f"a split makes 2 to {MAX_PARTS} parts, not {parts}")
    with store.read():  # one connection for its several reads (each opening costs about 10 ms)
        return _preview_split(store, dataset, k, cluster_id, parts, dataset.seed if seed is None else int(seed))


def _preview_split(
    store: Store, dataset: ds.DatasetInfo, k: int, cluster_id: int, parts: int, seed: int
) -> SplitPreview:
    rows = cluster_edits.rows_of(store, dataset.dataset_id, k, [cluster_id])
    if len(rows) == 0:
        raise LookupError(f"no cluster {cluster_id} at k={k}")
    vectors = ds.embeddings_at_rows(store, dataset.dataset_id, dataset.embedder_key or "", rows)
    distinct = len(np.unique(vectors, axis=0))
    if distinct < parts:
        texts = "distinct text" if distinct == 1 else "distinct texts"
        raise ValueError(f"cluster {cluster_id} has {distinct} {texts}: it cannot be split into {parts}")
    fitted = clustering.KMeansClusterer(k=parts, seed=seed).fit(vectors).labels
    order = np.argsort(-np.bincount(fitted, minlength=parts), kind="stable")  # largest part first
    first_new = cluster_edits.next_free_id(store, dataset.dataset_id, k)
    ids = np.array([cluster_id, *range(first_new, first_new + parts - 1)])
    rank = np.empty(parts, dtype=np.int64)
    rank[order] = np.arange(parts)
    new_ids = ids[rank[fitted]]
    found = ds.assignments(store, dataset.dataset_id, k).astype(np.int64)
    found[rows] = new_ids
    items = _labels(store, dataset, found, [int(c) for c in ids], known=(rows, vectors))
    chosen = sorted({int(item["representative_row"]) for item in items if item["representative_row"] is not None})
    instructions = ds.texts_at_rows(store, dataset.dataset_id, np.asarray(chosen, dtype=np.int64))
    text_of = dict(zip(instructions.row_idx.astype(int), instructions.instruction, strict=True))
    for item in items:  # what a curator reads to tell the parts apart
        item["representative"] = text_of.get(item["representative_row"], "")
    return SplitPreview(k, int(cluster_id), seed, rows, new_ids, tuple(items))


def split(store: Store, preview: SplitPreview, dataset: ds.DatasetInfo, *, actor: str) -> Edit:
    """Apply a :func:`preview_split` as one batch of the history; refused (:class:`ValueError`) when the
    cluster's rows changed since the preview, or its new ids were taken meanwhile."""
    now = cluster_edits.rows_of(store, dataset.dataset_id, preview.k, [preview.cluster_id])
    if not np.array_equal(now, preview.rows):
        raise ValueError(f"cluster {preview.cluster_id} changed since the preview: preview the split again")
    free = cluster_edits.next_free_id(store, dataset.dataset_id, preview.k)
    new = [int(p["cluster_id"]) for p in preview.parts if int(p["cluster_id"]) != preview.cluster_id]
    if new and min(new) < free:
        raise ValueError("another edit took the preview's new cluster ids meanwhile: preview the split again")
    sizes = ", ".join(str(p["size"]) for p in preview.parts)
    into = ", ".join(str(p["cluster_id"]) for p in preview.parts)
    reason = f"split cluster {preview.cluster_id} into {into} ({sizes} rows; k={preview.k}, seed {preview.seed})"
    return _move(store, dataset, preview.k, preview.rows, preview.new_ids, reason, actor, labelled=preview.parts)


def undo(
    store: Store, dataset: ds.DatasetInfo, batch_id: int | None = None, *, actor: str, force: bool = False
) -> history.Undone:
    """:func:`core.storage.history.undo`, relabelling the clusters whose rows it moved back."""
    return history.undo(store, dataset.dataset_id, batch_id, actor, force, after=_relabeller(store, dataset))


def revert_to(store: Store, dataset: ds.DatasetInfo, history_id: int, *, actor: str) -> history.Undone:
    """:func:`core.storage.history.revert_to`, relabelling the clusters whose rows it moved back."""
    return history.revert_to(store, dataset.dataset_id, history_id, actor, after=_relabeller(store, dataset))


def _move(
    store: Store,
    dataset: ds.DatasetInfo,
    k: int,
    rows: np.ndarray,
    new_ids: np.ndarray,
    reason: str,
    actor: str,
    labelled: Sequence[dict[str, Any]] | None = None,
) -> Edit:
    """Move ``rows`` to ``new_ids`` at ``k`` and relabel what changed, in one write and one history batch;
    ``labelled``: the labels already made for exactly this move (a split's or a merge's preview)."""

    batch_id, moved, items = cluster_edits.apply_moves(
        store,
        dataset.dataset_id,
        k,
        rows,
        new_ids,
        reason=reason,
        actor=actor,
        relabel=lambda con, touched: _relabel(con, store, dataset, k, touched, ready=labelled or ()),
    )
    kept = tuple(item for item in items if item["size"] > 0)
    return Edit(batch_id, moved, kept, reason)


def _relabeller(store: Store, dataset: ds.DatasetInfo) -> history.AfterApply:
    def relabel(con: duckdb.DuckDBPyConnection, touched: dict[int, set[int]]) -> None:
        if not touched:
            return
        with store.write(bump="clusters"):  # nested in the undo's write: widens it to the clusters
            for k, clusters in touched.items():
                _relabel(con, store, dataset, k, clusters)

    return relabel


def _relabel(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    dataset: ds.DatasetInfo,
    k: int,
    clusters: set[int],
    ready: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Rewrite the label rows of ``clusters`` at ``k`` from the assignments as they are now (inside the write);
    the emptied ones lose theirs. ``ready``: labels made for exactly this state (a preview's), used as they are."""
    if not clusters:
        return []
    size_now = cluster_edits.sizes(con, dataset.dataset_id, k, sorted(clusters))
    emptied = [c for c, n in size_now.items() if n == 0]
    filled = [c for c, n in size_now.items() if n > 0]
    items = [item for item in ready if int(item["cluster_id"]) in filled]
    # a cluster back to a membership it had (an undo, a redo) gets the labels it had then, texts unread
    unknown = sorted(set(filled) - {int(item["cluster_id"]) for item in items})
    items += cluster_edits.recalled_labels(con, dataset.dataset_id, k, unknown) if unknown else []
    missing = sorted(set(filled) - {int(item["cluster_id"]) for item in items})
    if missing:
        found = ds.assignments(store, dataset.dataset_id, k).astype(np.int64)
        items += _labels(store, dataset, found, missing)
    cluster_edits.replace_labels(con, dataset.dataset_id, k, items, emptied)
    cluster_edits.remember_labels(con, dataset.dataset_id, k, filled)
    return items + [{"cluster_id": c, "size": 0} for c in emptied]


def _labels(
    store: Store,
    dataset: ds.DatasetInfo,
    found: np.ndarray,
    wanted: list[int],
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Labels, sizes and representative rows of the ``wanted`` clusters of ``found``; ``known``: sorted rows and
    their vectors already read (a split's), used instead of reading them again."""
    texts = TextReader(store, dataset.dataset_id, tuple(dataset.embed_fields))
    items = labels.labels_for_clusters(
        texts, found, wanted, seed=dataset.seed, per_cluster=EDIT_TEXTS, background=EDIT_BACKGROUND
    )
    order = np.random.default_rng(dataset.seed).permutation(len(found))
    samples = [np.sort(order[found[order] == item["cluster_id"]][:REPRESENTATIVE_SAMPLE]) for item in items]
    if not samples:
        return items
    members = np.concatenate(samples)  # one read for every cluster: each read scans the vector cache
    if known is not None and np.isin(members, known[0]).all():
        vectors = known[1][np.searchsorted(known[0], members)]
    else:
        vectors = ds.embeddings_at_rows(store, dataset.dataset_id, dataset.embedder_key or "", members)
    part = np.repeat(np.arange(len(samples)), [len(rows) for rows in samples])
    chosen = clustering.representatives(vectors, part)
    for index, item in enumerate(items):
        item["representative_row"] = int(members[chosen[index]]) if index in chosen else None
    return items


def _ids(values: Sequence[int] | set[int]) -> str:
    listed = sorted(values)
    return ", ".join(map(str, listed[:20])) + (" …" if len(listed) > 20 else "")
