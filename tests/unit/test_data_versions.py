"""The data version split by what changed: a decision write bumps the decisions version only, every other
write (derived data) the derived one, an unspecified write both; so the pages' caches of the map, clusters
and texts survive a veto."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.prepare import add_k_values
from core.storage import curation, scores
from core.storage import datasets as ds
from core.storage.database import Store

K = 4


def _bread(store: Store, dataset_id: int) -> int:
    table = curation.clusters(store, dataset_id, K)
    return int(table.loc[table.label == "bread", "cluster_id"].item())


def _veto_cluster(store: Store, dataset_id: int) -> None:
    curation.set_cluster_veto(store, dataset_id, K, _bread(store, dataset_id), True)


def _weigh_cluster(store: Store, dataset_id: int) -> None:
    curation.set_cluster_weight(store, dataset_id, K, _bread(store, dataset_id), 2.5)


def _veto_example(store: Store, dataset_id: int) -> None:
    page, _ = curation.examples(store, dataset_id, K, limit=1)
    curation.set_example_veto(store, dataset_id, str(page.example_id.item()), True)


def _recluster(store: Store, dataset_id: int) -> None:
    add_k_values(store, ds.get_dataset(store, dataset_id), [5])


def _store_scores(store: Store, dataset_id: int) -> None:
    with store.read() as con:
        hashes = [
            row[0]
            for row in con.execute("SELECT content_hash FROM examples WHERE dataset_id = ?", [dataset_id]).fetchall()
        ]
    scores.put_scores(store, "test-key", hashes, {"length": np.ones(len(hashes))})


@pytest.mark.parametrize("decide", [_veto_cluster, _weigh_cluster, _veto_example], ids=lambda f: f.__name__)
def test_a_decision_changes_the_decisions_version_only(workspace: Path, decide: Callable[[Store, int], None]) -> None:
    store = Store(workspace)
    dataset_id = ds.get_dataset(store, "tiny").dataset_id
    _bread(store, dataset_id)  # a read: changes nothing
    before = store.versions()

    decide(store, dataset_id)

    after = store.versions()
    assert after.decisions == before.decisions + 1
    assert after.derived == before.derived
    assert after.total == before.total + 1 == store.data_version()
    assert Store(workspace).versions() == after  # mirrored to the file another process reads


@pytest.mark.parametrize("derive", [_recluster, _store_scores], ids=lambda f: f.__name__)
def test_a_derived_write_changes_the_derived_version(workspace: Path, derive: Callable[[Store, int], None]) -> None:
    store = Store(workspace)
    dataset_id = ds.get_dataset(store, "tiny").dataset_id
    before = store.versions()

    derive(store, dataset_id)

    assert store.versions().derived > before.derived


def test_an_unspecified_write_bumps_every_version(workspace: Path) -> None:
    store = Store(workspace)
    before = store.versions()

    with store.write() as con:
        con.execute("SELECT 1")

    assert store.versions() == (before.total + 1, before.decisions + 1, before.derived + 1, before.content + 1)


def test_a_decision_nested_in_a_derived_write_bumps_both(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = ds.get_dataset(store, "tiny").dataset_id
    bread = _bread(store, dataset_id)
    before = store.versions()

    with store.write(bump="none"):
        curation.set_cluster_veto(store, dataset_id, K, bread, True)
    assert store.versions() == (before.total + 1, before.decisions + 1, before.derived, before.content)

    with store.write(bump="decisions") as con:
        con.execute("UPDATE datasets SET name = name WHERE dataset_id = ?", [dataset_id])
        with store.write():
            pass
    assert store.versions() == (before.total + 2, before.decisions + 2, before.derived + 1, before.content + 1)


def test_a_cluster_edit_moves_the_clusters_and_decisions_but_not_the_content(workspace: Path) -> None:
    """A merge and its undo: the clusters and the history change, the texts and scores do not, so the caches
    of scores (keyed on ``content``) survive an edit."""
    from core import edits

    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")
    before = store.versions()

    edits.merge(store, dataset, K, [0, 1], actor="t")
    edits.undo(store, dataset, actor="t")

    after = store.versions()
    assert (after.total, after.decisions, after.derived) == (before.total + 2, before.decisions + 2, before.derived + 2)
    assert after.content == before.content


def test_a_failed_decision_changes_no_version(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = ds.get_dataset(store, "tiny").dataset_id
    before = store.versions()

    with pytest.raises(LookupError):
        curation.set_example_veto(store, dataset_id, "no-such-example", True)

    assert store.versions() == before


def test_a_workspace_without_the_split_mirror_never_serves_stale_versions(workspace: Path) -> None:
    store = Store(workspace)
    (workspace / "data_versions").unlink(missing_ok=True)
    total = store.data_version()

    assert store.versions() == (total, total, total, total)


def test_overview_and_overlay_together_equal_the_cluster_table(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = ds.get_dataset(store, "tiny").dataset_id
    _veto_cluster(store, dataset_id)
    _veto_example(store, dataset_id)
    curation.set_cluster_weight(store, dataset_id, K, 0, 3.0)

    table = curation.clusters(store, dataset_id, K).set_index("cluster_id")
    overview = curation.cluster_overview(store, dataset_id, K).set_index("cluster_id")
    overlay = curation.cluster_overlay(store, dataset_id, K).set_index("cluster_id")

    assert overview[["label", "size", "duplicate_rows"]].equals(table[["label", "size", "duplicate_rows"]])
    decided = table.loc[overlay.index, ["vetoed", "weight", "vetoed_examples"]]
    assert (decided.to_numpy() == overlay[["vetoed", "weight", "vetoed_examples"]].to_numpy()).all()
    undecided = table.drop(index=overlay.index)
    assert not undecided.vetoed.any() and (undecided.weight == 1.0).all() and (undecided.vetoed_examples == 0).all()
