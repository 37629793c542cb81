"""Clusters page as a desk: the cluster table with quality and flag shares, the open cluster marked in it,
clusters ticked together and vetoed or weighed as one undoable step, search hits highlighted in context."""

from __future__ import annotations

from core.score import scoring
from core.score.scorers import HeuristicsScorer
from core.storage import curation, history
from core.storage import datasets as ds
from core.storage.database import Store
from tests.ui.conftest import cluster_table


def test_ticked_clusters_are_vetoed_and_weighed_together_and_one_undo_reverts_them(page, prepared_workspace):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    at = page("clusters").run()
    assert not at.exception
    at.session_state["table_ticked"] = [1, 2]  # as two ticks in the table leave it
    at.run()
    assert at.button(key="veto_ticked").label == "Veto the 2 ticked clusters"
    at.button(key="veto_ticked").click().run()
    vetoed = curation.clusters(store, dataset.dataset_id, k).set_index("cluster_id").vetoed
    assert list(vetoed.loc[[0, 1, 2]]) == [False, True, True]
    (batch,) = history.batches(store, dataset.dataset_id)
    assert batch.summary == "vetoed 2 clusters (clusters 1, 2)"

    at.number_input(key="ticked_weight").set_value(3.0).run()
    at.button(key="weigh_ticked").click().run()
    assert list(curation.clusters(store, dataset.dataset_id, k).weight.iloc[1:3]) == [3.0, 3.0]

    at.button(key="undo_last").click().run()  # the weights, then the vetoes, each as one step
    at.button(key="undo_last").click().run()
    table = curation.clusters(store, dataset.dataset_id, k)
    assert not table.vetoed.any() and (table.weight == 1.0).all()


def test_the_table_shows_quality_and_flag_shares_and_marks_the_open_cluster(page, prepared_workspace):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    at = page("clusters").run()
    frame = cluster_table(at)
    assert "quality" not in frame.value.columns  # no scorer has run yet
    assert {"flagged", "vetoed", "representative"} <= set(frame.value.columns)

    scoring.score_dataset(store, dataset, HeuristicsScorer())
    at.selectbox(key="cluster_pick").select(2).run()
    frame = cluster_table(at)
    assert "quality" in frame.value.columns and frame.value["quality"].between(0, 1).all()
    marked = frame.value.set_index("cluster_id")["open"]
    assert marked[2] == "▶" and (marked.drop(2) == "").all()  # the open cluster's row is marked


def test_search_hits_show_the_keyword_highlighted_in_context(page, prepared_workspace):
    at = page("clusters").run()
    at.text_input(key="search").input("python").run()
    assert not at.exception
    highlighted = [m.value for m in at.markdown if ":orange-background[**" in m.value]
    assert len(highlighted) == 6  # one line per hit
    assert all("python" in line.lower() for line in highlighted)


def test_a_filter_vetoes_what_it_matches_and_duplicates_thin_to_one_each(page, tmp_path, monkeypatch):
    from core.prepare import PrepareOptions, prepare
    from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl

    rows = [row | {"output": row["output"] + " and more" * i} for i, row in enumerate(keyword_rows())]
    rows += [rows[0], rows[0], rows[7]]  # two more copies of one row, one more of another
    workspace = tmp_path / "dups"
    prepare(
        Store(workspace),
        write_jsonl(tmp_path / "d.jsonl", rows),
        PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(4,)),
    )
    monkeypatch.setenv("CURATE_WORKSPACE", str(workspace))
    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")
    at = page("clusters").run()
    # inside one cluster: the copies of row 0 (both in its cluster), one click
    cluster = int(ds.assignments(store, dataset.dataset_id, 4)[0])
    at.selectbox(key="cluster_pick").select(cluster).run()
    inside = at.button(key="veto_cluster_copies")
    assert inside.label == "Keep one of each exact-duplicate group in this cluster: veto the 2 extra copies"
    inside.click().run()
    assert len(curation.decisions(store, dataset.dataset_id)["vetoed_examples"]) == 2
    at.button(key="undo_last").click().run()
    assert curation.decisions(store, dataset.dataset_id)["vetoed_examples"] == []

    at.selectbox(key="filter_signal").select("exact_duplicate").run()
    assert any(c.value.startswith("5 examples match (flag") for c in at.caption)  # 3 + 2 rows share content
    assert at.button(key="veto_copies").label.endswith("veto the 3 extra copies")
    at.button(key="veto_copies").click().run()
    vetoed = curation.decisions(store, dataset.dataset_id)["vetoed_examples"]
    assert len(vetoed) == 3  # the first of each group is kept
    first_rows = curation.example_ids_at(store, dataset.dataset_id, rows=[0, 7])
    assert not set(first_rows) & set(vetoed)

    scoring.score_dataset(store, dataset, HeuristicsScorer())
    at.run()
    at.selectbox(key="filter_signal").select("response_length").run()
    shown = [c.value.replace("\\", "") for c in at.caption]  # the filter's words are escaped markdown
    matching = next(text for text in shown if "examples match (response_length in" in text)
    count = int(matching.split()[0].replace(",", ""))
    assert 0 < count < len(rows)
    at.button(key="unveto_filter").click().run()  # an un-veto of what the range holds, one batch
    assert history.batches(store, dataset.dataset_id)[0].summary.endswith(")")


def test_ticked_clusters_merge_into_the_largest_and_undo_splits_them_again(page, prepared_workspace):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    before = ds.assignments(store, dataset.dataset_id, k).tolist()
    at = page("clusters").run()
    at.session_state["table_ticked"] = [1, 3]
    at.run()
    assert at.button(key="merge_ticked").label == "Merge the 2 ticked clusters into cluster 1 (the largest)"
    assert any(c.value.startswith("Merged\\: 12 examples, labelled ") for c in at.caption), [
        c.value for c in at.caption
    ]

    at.button(key="merge_ticked").click().run()

    assert not at.exception
    frame = cluster_table(at).value.set_index("cluster_id")
    assert 3 not in frame.index and frame.loc[1, "size"] == 12 and frame.loc[1, "open"] == "▶"
    assert [s.value for s in at.success] == [r"Merged cluster 3 into 1 \(k\=4\)\: 6 examples moved\."]  # plain text
    assert at.session_state["table_ticked"] == []  # the ticks went with the clusters they named
    at.button(key="undo_last").click().run()
    assert ds.assignments(store, dataset.dataset_id, k).tolist() == before
    assert 3 in set(cluster_table(at).value.cluster_id)


def test_a_split_is_previewed_then_applied_as_one_undoable_step(page, prepared_workspace):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    ds.update_dataset(store, dataset.dataset_id, active_k=2)  # two topics in each cluster
    at = page("clusters").run()
    at.selectbox(key="cluster_pick").select(0).run()
    at.number_input(key="split_parts_0").set_value(3).run()
    at.button(key="preview_split").click().run()
    assert [e.value for e in at.error] == ["cluster 0 has 2 distinct texts\\: it cannot be split into 3"]
    at.number_input(key="split_parts_0").set_value(2).run()

    at.button(key="preview_split").click().run()

    assert not at.exception and not at.error
    preview = next(f.value for f in at.dataframe if "nearest the centre" in f.value.columns)
    assert list(preview.cluster) == [0, 2] and list(preview["size"]) == [6, 6]
    assert all(text.startswith("Question") for text in preview["nearest the centre"])
    assert ds.assignments(store, dataset.dataset_id, 2).max() == 1  # nothing stored yet

    at.button(key="apply_split").click().run()

    assert set(cluster_table(at).value.cluster_id) == {0, 1, 2}
    assert history.batches(store, dataset.dataset_id)[0].summary.startswith("moved 6 examples between clusters")
    at.button(key="undo_last").click().run()
    assert set(cluster_table(at).value.cluster_id) == {0, 1}
