"""Cluster edits: merge and split (previewed), relabelled, each one batch of the history, undone whole; ids never
reused; an edit of a clustering fitted again since is not undone into the new one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core import edits
from core.errors import UndoRefused
from core.prepare import add_k_values
from core.storage import curation, history
from core.storage import datasets as ds
from core.storage.database import Store

K = 4


def _setup(workspace: Path) -> tuple[Store, ds.DatasetInfo]:
    store = Store(workspace)
    return store, ds.get_dataset(store, "tiny")


def _table(store: Store, dataset: ds.DatasetInfo, k: int = K) -> dict[int, tuple[str, int]]:
    table = curation.clusters(store, dataset.dataset_id, k)
    return {
        int(c): (str(label), int(size))
        for c, label, size in zip(table.cluster_id, table.label, table["size"], strict=True)
    }


def _by_keyword(store: Store, dataset: ds.DatasetInfo, keyword: str, k: int = K) -> int:
    return next(c for c, (label, _) in _table(store, dataset, k).items() if keyword in label)


def test_merge_moves_rows_relabels_and_one_undo_puts_everything_back(workspace: Path) -> None:
    store, dataset = _setup(workspace)
    before = _table(store, dataset)
    assignments_before = ds.assignments(store, dataset.dataset_id, K)
    bread, python = _by_keyword(store, dataset, "bread"), _by_keyword(store, dataset, "python")
    curation.set_cluster_veto(store, dataset.dataset_id, K, python, True)  # the merged-away cluster's decision

    done = edits.merge(store, dataset, K, [python, bread], into=bread, actor="cli")

    after = _table(store, dataset)
    assert done.moved == 6 and python not in after and after[bread][1] == 12
    assert {"bread", "python"} <= set(after[bread][0].replace(" · ", " ").split())  # the label names both
    assert len(after) == len(before) - 1
    assert (ds.assignments(store, dataset.dataset_id, K) == bread).sum() == 12
    newest = history.batches(store, dataset.dataset_id)[0]
    assert newest.summary == f"moved 6 examples between clusters (merged cluster {python} into {bread} (k={K}))"
    assert newest.actor == "cli" and newest.reversible
    # the merged rows follow the cluster they joined: not vetoed
    table = curation.clusters(store, dataset.dataset_id, K).set_index("cluster_id")
    assert not table.vetoed[bread]

    undone = edits.undo(store, dataset, actor="cli")

    assert undone.undid == (newest.batch_id,) and undone.changed == 6
    assert _table(store, dataset) == before  # sizes and labels as the sweep made them
    np.testing.assert_array_equal(ds.assignments(store, dataset.dataset_id, K), assignments_before)
    assert curation.clusters(store, dataset.dataset_id, K).set_index("cluster_id").vetoed[python]


def test_merge_into_defaults_to_the_largest_and_refuses_what_is_not_a_merge(workspace: Path) -> None:
    store, dataset = _setup(workspace)
    capital, planet = _by_keyword(store, dataset, "capital"), _by_keyword(store, dataset, "planet")
    with pytest.raises(ValueError, match="two or more"):
        edits.merge(store, dataset, K, [capital], actor="cli")
    with pytest.raises(LookupError, match="no cluster 99 at k=4"):
        edits.merge(store, dataset, K, [capital, 99], actor="cli")
    with pytest.raises(ValueError, match="not one of the clusters merged"):
        edits.merge(store, dataset, K, [capital, planet], into=_by_keyword(store, dataset, "bread"), actor="cli")
    assert len(history.batches(store, dataset.dataset_id)) == 0

    done = edits.merge(store, dataset, K, [capital, planet], actor="cli")  # equal sizes: the smaller id stays
    assert [item["cluster_id"] for item in done.clusters] == [min(capital, planet)]


def test_split_preview_writes_nothing_and_the_split_makes_new_ids_above_every_id_used(workspace: Path) -> None:
    store, dataset = _setup(workspace)
    k = 2
    before = _table(store, dataset, k)
    version = store.versions().total
    mixed = max(before, key=lambda c: before[c][1])

    preview = edits.preview_split(store, dataset, k, mixed, parts=2)

    assert store.versions().total == version  # the preview stored nothing
    sizes = [p["size"] for p in preview.parts]
    assert sorted(sizes, reverse=True) == sizes and sum(sizes) == before[mixed][1]
    assert preview.parts[0]["cluster_id"] == mixed and preview.parts[1]["cluster_id"] == 2
    keywords = [{w for w in ("bread", "python", "capital", "planet") if w in p["label"]} for p in preview.parts]
    assert all(len(words) == 1 for words in keywords) and keywords[0] != keywords[1]  # one topic each
    rows = ds.texts_at_rows(store, dataset.dataset_id, preview.rows)
    for part in preview.parts:  # each part's representative is one of its own rows
        assert part["representative_row"] in set(preview.rows[preview.new_ids == part["cluster_id"]])
    assert len(rows) == before[mixed][1]

    edits.split(store, preview, dataset, actor="app")

    after = _table(store, dataset, k)
    assert after[mixed][1] == sizes[0] and after[2][1] == sizes[1] and after[2][0] == preview.parts[1]["label"]
    with pytest.raises(ValueError, match="changed since the preview"):
        edits.split(store, preview, dataset, actor="app")
    edits.undo(store, dataset, actor="app")
    assert _table(store, dataset, k) == before
    # cluster 2 is empty again, but the history names it: a new split does not reuse its id
    assert edits.preview_split(store, dataset, k, mixed, parts=2).parts[1]["cluster_id"] == 3


def test_an_edit_of_a_clustering_fitted_again_is_not_undone_into_the_new_one(workspace: Path) -> None:
    store, dataset = _setup(workspace)
    bread, python = _by_keyword(store, dataset, "bread"), _by_keyword(store, dataset, "python")
    done = edits.merge(store, dataset, K, [bread, python], into=bread, actor="cli")
    add_k_values(store, dataset, [K])  # fitted again: the merge is gone with the old clustering
    refitted = ds.assignments(store, dataset.dataset_id, K)

    with pytest.raises(UndoRefused, match="fitted again"):
        edits.undo(store, dataset, done.batch_id, actor="cli")
    edits.undo(store, dataset, done.batch_id, actor="cli", force=True)

    np.testing.assert_array_equal(ds.assignments(store, dataset.dataset_id, K), refitted)


def test_revert_to_before_a_merge_and_a_split_restores_the_clusters(workspace: Path) -> None:
    store, dataset = _setup(workspace)
    before = _table(store, dataset)
    curation.set_cluster_weight(store, dataset.dataset_id, K, 0, 2.0, "cli")
    point = history.batches(store, dataset.dataset_id)[0].batch_id
    bread, python = _by_keyword(store, dataset, "bread"), _by_keyword(store, dataset, "python")
    edits.merge(store, dataset, K, [bread, python], into=bread, actor="cli")
    edits.split(store, edits.preview_split(store, dataset, K, bread, parts=2), dataset, actor="cli")

    edits.revert_to(store, dataset, point, actor="cli")

    assert _table(store, dataset) == before


def test_a_merge_preview_shows_the_merged_label_and_applies_without_relabelling(workspace: Path) -> None:
    store, dataset = _setup(workspace)
    bread, python = _by_keyword(store, dataset, "bread"), _by_keyword(store, dataset, "python")
    version = store.versions().total

    preview = edits.preview_merge(store, dataset, K, [bread, python], into=bread)

    assert store.versions().total == version  # nothing stored
    assert preview.merged["size"] == 12 and {"bread", "python"} <= set(preview.merged["label"].split(" · "))
    done = edits.merge(store, dataset, K, [bread, python], into=bread, actor="app", preview=preview)
    assert done.clusters == (preview.merged,)
    assert _table(store, dataset)[bread] == (preview.merged["label"], 12)
    assert python not in _table(store, dataset)
    # a stale preview (another merge since) is not applied: the merge relabels itself
    edits.undo(store, dataset, actor="app")
    capital = _by_keyword(store, dataset, "capital")
    done = edits.merge(store, dataset, K, [bread, capital], into=bread, actor="app", preview=preview)
    assert done.clusters[0]["size"] == 12 and "capital" in done.clusters[0]["label"]


def test_an_undone_edit_gets_its_clusters_labels_back_without_reading_texts(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, dataset = _setup(workspace)
    before = _table(store, dataset)
    bread, python = _by_keyword(store, dataset, "bread"), _by_keyword(store, dataset, "python")
    edits.merge(store, dataset, K, [bread, python], into=bread, actor="t")
    merged = _table(store, dataset)

    def no_texts(*args: object, **kwargs: object) -> None:
        raise AssertionError("the labels of a membership seen before were computed again")

    monkeypatch.setattr(edits, "_labels", no_texts)
    edits.undo(store, dataset, actor="t")  # back to the sweep's clusters: their labels as the sweep made them
    assert _table(store, dataset) == before
    undo_batch = history.batches(store, dataset.dataset_id)[0].batch_id
    edits.undo(store, dataset, undo_batch, actor="t")  # the undo undone: the merge again, its label as it was
    assert _table(store, dataset) == merged
