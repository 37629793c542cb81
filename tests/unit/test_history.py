"""History batches: bulk vetoes as one batch, undo (whole batch, undo of an undo, refusal), revert, summaries, and
the migration of an older workspace's history table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from core.errors import UndoRefused, UnknownBatch
from core.storage import curation, history
from core.storage import datasets as ds
from core.storage.database import DB_FILENAME, Store

K = 4


def _setup(workspace: Path) -> tuple[Store, int]:
    store = Store(workspace)
    return store, ds.get_dataset(store, "tiny").dataset_id


def _vetoed(store: Store, dataset_id: int) -> set[str]:
    return set(curation.decisions(store, dataset_id)["vetoed_examples"])


def _cluster(store: Store, dataset_id: int, keyword: str) -> int:
    table = curation.clusters(store, dataset_id, K)
    return int(table.loc[table.label == keyword, "cluster_id"].item())


def test_bulk_veto_is_one_batch_recording_only_the_rows_that_change(workspace: Path) -> None:
    store, dataset_id = _setup(workspace)
    rows = curation.matching_rows(store, dataset_id, K, search="python")
    ids = set(curation.example_page(store, dataset_id, K, search="python", limit=100).example_id)
    assert len(rows) == len(ids) == 6
    curation.set_example_veto(store, dataset_id, sorted(ids)[0], True, actor="cli")  # already vetoed: no row
    version = store.versions().decisions

    changed = curation.bulk_example_veto(store, dataset_id, rows, True, actor="api", reason="search: 'python'")

    assert changed == 5
    assert _vetoed(store, dataset_id) == ids
    assert store.versions().decisions == version + 1  # one transaction
    frame = curation.history(store, dataset_id)
    latest = frame[frame.batch_id == frame.batch_id.iloc[0]]
    assert len(latest) == 5 and set(latest.actor) == {"api"} and set(latest.action) == {"example_veto"}
    assert set(latest.old_value) == {"false"} and set(latest.new_value) == {"true"}
    newest, single = history.batches(store, dataset_id)[:2]
    assert newest.summary == "vetoed 5 examples (search: 'python')" and newest.change == "5 kept → vetoed"
    assert (single.actor, single.summary) == ("cli", f"vetoed example {sorted(ids)[0]}")
    # by example id too; nothing to change: no batch
    assert curation.bulk_example_veto(store, dataset_id, sorted(ids), True) == 0
    assert len(history.batches(store, dataset_id)) == 2


def test_bulk_veto_of_an_unknown_row_writes_nothing(workspace: Path) -> None:
    store, dataset_id = _setup(workspace)
    with pytest.raises(LookupError, match="no rows 99, 100 in this dataset"):
        curation.bulk_example_veto(store, dataset_id, np.array([0, 99, 100]), True)
    with pytest.raises(LookupError, match="no example ids 'nope'"):
        curation.bulk_example_veto(store, dataset_id, ["nope"], True)
    assert _vetoed(store, dataset_id) == set() and curation.history(store, dataset_id).empty


def test_undo_reverts_a_whole_batch_and_undoing_the_undo_redoes_it(workspace: Path) -> None:
    store, dataset_id = _setup(workspace)
    bread = _cluster(store, dataset_id, "bread")
    curation.set_cluster_weight(store, dataset_id, K, bread, 2.5)
    rows = curation.matching_rows(store, dataset_id, K, search="number 3")
    curation.bulk_example_veto(store, dataset_id, rows, True, reason="search: 'number 3'")
    vetoed = _vetoed(store, dataset_id)
    assert len(vetoed) == 4

    undone = history.undo(store, dataset_id, actor="cli")  # the latest batch

    assert _vetoed(store, dataset_id) == set()
    assert undone.changed == 4 and undone.summary.endswith("vetoed 4 examples (search: 'number 3')")
    listing = history.batches(store, dataset_id)
    assert listing[0].summary == undone.summary and listing[0].kind == "undo" and listing[0].actor == "cli"
    assert not listing[1].in_effect and listing[1].undone_by == undone.batch_id
    assert curation.clusters(store, dataset_id, K).set_index("cluster_id").weight[bread] == 2.5  # untouched

    redone = history.undo(store, dataset_id, undone.batch_id)  # undoing the undo redoes
    assert redone.changed == 4

    assert _vetoed(store, dataset_id) == vetoed
    assert history.batches(store, dataset_id)[0].summary.startswith(f"redid #{undone.undid[0]}: vetoed 4 examples")
    # Undo again walks back past the redo to the original batch, which is in effect again, then to the weight
    assert history.undo(store, dataset_id).undid == undone.undid
    assert _vetoed(store, dataset_id) == set()
    weight = history.undo(store, dataset_id)
    assert weight.summary == f"undid #{weight.undid[0]}: weight of cluster {bread} (k=4)"
    assert curation.clusters(store, dataset_id, K).weight.tolist() == [1.0] * 4
    with pytest.raises(UnknownBatch, match="nothing to undo"):
        history.undo(store, dataset_id)


def test_undo_refuses_when_a_later_batch_changed_a_target_and_force_overrides(workspace: Path) -> None:
    store, dataset_id = _setup(workspace)
    rows = curation.matching_rows(store, dataset_id, K, search="python")
    curation.bulk_example_veto(store, dataset_id, rows, True, reason="search: 'python'")
    first = history.batches(store, dataset_id)[0].batch_id
    one = curation.example_page(store, dataset_id, K, search="python", limit=1).example_id.item()
    curation.set_example_veto(store, dataset_id, one, False, actor="cli")
    later = history.batches(store, dataset_id)[0].batch_id

    with pytest.raises(UndoRefused) as refused:
        history.undo(store, dataset_id, first)

    assert refused.value.later == (later,)
    assert f"batch #{later} (un-vetoed example {one}) changed 1 of its targets since" in str(refused.value)
    assert len(_vetoed(store, dataset_id)) == 5  # nothing written
    forced = history.undo(store, dataset_id, first, force=True)
    assert forced.changed == 5 and _vetoed(store, dataset_id) == set()
    with pytest.raises(UndoRefused, match=f"already undone by batch #{forced.batch_id}"):
        history.undo(store, dataset_id, first)
    with pytest.raises(UnknownBatch, match="no batch #12345"):
        history.undo(store, dataset_id, 12345)


def test_choosing_k_is_recorded_but_not_undone(workspace: Path) -> None:
    store, dataset_id = _setup(workspace)
    curation.record_choice(store, dataset_id, "choose_k", "k", 4, 6)
    (batch,) = history.batches(store, dataset_id)
    assert batch.summary == "chose k=6" and not batch.reversible
    with pytest.raises(UnknownBatch, match="nothing to undo"):
        history.undo(store, dataset_id)
    with pytest.raises(UndoRefused, match="holds no decision that can be undone"):
        history.undo(store, dataset_id, batch.batch_id)


def test_revert_to_undoes_every_later_batch_as_one(workspace: Path) -> None:
    store, dataset_id = _setup(workspace)
    python, bread = _cluster(store, dataset_id, "python"), _cluster(store, dataset_id, "bread")
    curation.set_cluster_veto(store, dataset_id, K, python, True)
    point = curation.history(store, dataset_id).history_id.iloc[0]  # a history row's id
    curation.set_cluster_weight(store, dataset_id, K, bread, 3.0)
    curation.set_cluster_veto(store, dataset_id, K, python, False)
    curation.bulk_example_veto(store, dataset_id, curation.matching_rows(store, dataset_id, K, search="capital"), True)
    history.undo(store, dataset_id)  # the bulk veto, undone already: the revert leaves it undone

    reverted = history.revert_to(store, dataset_id, int(point), actor="api")

    table = curation.clusters(store, dataset_id, K).set_index("cluster_id")
    assert bool(table.vetoed[python]) and table.weight[bread] == 1.0 and _vetoed(store, dataset_id) == set()
    assert reverted.changed == 2 and len(reverted.undid) == 4
    listing = history.batches(store, dataset_id)
    assert listing[0].summary == f"reverted to #{listing[-1].batch_id}: undid 4 batches"
    assert [b.in_effect for b in listing] == [True, False, False, False, False, True]
    with pytest.raises(UnknownBatch, match="nothing to revert"):
        history.revert_to(store, dataset_id, listing[0].batch_id)

    history.undo(store, dataset_id)  # undoing the revert brings the later decisions back

    table = curation.clusters(store, dataset_id, K).set_index("cluster_id")
    assert not bool(table.vetoed[python]) and table.weight[bread] == 3.0 and _vetoed(store, dataset_id) == set()


def test_an_older_workspace_gains_the_batch_columns_and_keeps_its_history(workspace: Path) -> None:
    store, dataset_id = _setup(workspace)
    curation.set_cluster_veto(store, dataset_id, K, 0, True)
    con = duckdb.connect(str(workspace / DB_FILENAME))  # as schema 5 left it: no batch, no actor
    con.execute("DROP TABLE history_batches")
    con.execute("CREATE TEMP TABLE kept AS SELECT * EXCLUDE (batch_id, actor) FROM history")
    con.execute("DROP TABLE history")
    con.execute(
        "CREATE TABLE history (history_id BIGINT PRIMARY KEY DEFAULT nextval('history_ids'), dataset_id INTEGER, "
        "changed_at TIMESTAMP, action VARCHAR, target VARCHAR, old_value VARCHAR, new_value VARCHAR)"
    )
    con.execute("INSERT INTO history SELECT * FROM kept")
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    con.close()

    store = Store(workspace)

    (batch,) = history.batches(store, dataset_id)
    row = curation.history(store, dataset_id).iloc[0]
    assert batch.batch_id == row.history_id == row.batch_id and batch.actor == "unknown"
    assert batch.summary == "vetoed cluster 0 (k=4)" and batch.change == "kept → vetoed"
    history.undo(store, dataset_id)
    assert not curation.clusters(store, dataset_id, K).vetoed.any()
    assert curation.history(store, dataset_id).actor.iloc[0] == "app"


def test_clusters_chosen_together_are_vetoed_and_weighed_in_one_batch_and_undone_together(
    prepared_workspace: Path,
) -> None:
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    changed = curation.bulk_cluster_decision(
        store, dataset.dataset_id, k, [0, 1], vetoed=True, actor="test", reason="table selection"
    )
    assert changed == 2
    assert curation.bulk_cluster_decision(store, dataset.dataset_id, k, [0, 1], vetoed=True) == 0  # nothing new
    curation.bulk_cluster_decision(store, dataset.dataset_id, k, [1, 2], weight=2.5)
    table = curation.clusters(store, dataset.dataset_id, k).set_index("cluster_id")
    assert list(table.vetoed.loc[[0, 1, 2]]) == [True, True, False]
    assert list(table.weight.loc[[0, 1, 2]]) == [1.0, 2.5, 2.5]
    listing = history.batches(store, dataset.dataset_id)
    assert listing[0].summary == "weight of 2 clusters set to 2.5"
    assert listing[1].summary == "vetoed 2 clusters (table selection)"
    history.undo(store, dataset.dataset_id, listing[1].batch_id, actor="test")  # the veto of both, whole
    table = curation.clusters(store, dataset.dataset_id, k).set_index("cluster_id")
    assert not table.vetoed.loc[[0, 1]].any() and table.weight.loc[1] == 2.5  # the later weights stay


def test_a_clusters_name_replaces_its_label_everywhere_and_is_undone_like_a_veto(prepared_workspace: Path) -> None:
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    computed = curation.clusters(store, dataset.dataset_id, k).set_index("cluster_id").label[2]
    assert curation.set_cluster_name(store, dataset.dataset_id, k, 2, "  Bread   baking ", actor="t")
    assert not curation.set_cluster_name(store, dataset.dataset_id, k, 2, "Bread baking")
    table = curation.clusters(store, dataset.dataset_id, k).set_index("cluster_id")
    assert table.label[2] == "Bread baking" and table.terms_label[2] == computed
    assert curation.cluster_states(store, dataset.dataset_id, k).set_index("cluster_id").label[2] == "Bread baking"
    (batch,) = history.batches(store, dataset.dataset_id)
    assert batch.summary == f"named cluster 2 (k={k}) 'Bread baking'"
    history.undo(store, dataset.dataset_id, batch.batch_id, actor="t")
    assert curation.clusters(store, dataset.dataset_id, k).set_index("cluster_id").label[2] == computed
    with pytest.raises(ValueError, match="at most 80"):
        curation.set_cluster_name(store, dataset.dataset_id, k, 2, "x" * 81)

    # kept when that k is clustered again, and written into an export's manifest
    from core.export import build_export
    from core.prepare import add_k_values

    curation.set_cluster_name(store, dataset.dataset_id, k, 2, "Bread baking")
    add_k_values(store, ds.get_dataset(store, "tiny"), [k])
    assert curation.clusters(store, dataset.dataset_id, k).set_index("cluster_id").label[2] == "Bread baking"
    per_cluster = build_export(store, ds.get_dataset(store, "tiny")).manifest["counts"]["per_cluster"]
    assert per_cluster["2"]["label"] == "Bread baking" and per_cluster["2"]["computed_label"] == computed
