"""Clusters page: open a cluster, veto it, weight it, veto one example, search; text stays plain."""

from __future__ import annotations

from pathlib import Path

from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


def _state(workspace: Path):
    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")
    return store, dataset, curation.clusters(store, dataset.dataset_id, dataset.active_k)


def test_choosing_a_cluster_opens_its_card_with_its_examples(page, prepared_workspace):
    _, dataset, table = _state(prepared_workspace)
    at = page("clusters").run()
    assert not at.exception
    assert f"{dataset.n_rows} examples in {dataset.active_k} clusters" in at.caption[0].value
    at.selectbox(key="cluster_pick").select(1).run()
    label = table.label.iloc[1]
    assert any(h.value == f"Cluster 1: {label}" for h in at.subheader)
    assert any(c.value.startswith("6 examples · 0 exact-duplicate rows") for c in at.caption)
    # the instruction nearest the cluster's centre, above its examples
    nearest = table.set_index("cluster_id").loc[1]
    assert any(c.value == f"Nearest the cluster's centre (row {nearest.representative_row}):" for c in at.caption)
    assert at.text[0].value == nearest.representative
    # its examples as a compact table, one line each, by default
    compact = next(d.value for d in at.dataframe if "instruction" in d.value.columns)
    assert len(compact) == 6 and all(label in text for text in compact.instruction)
    at.segmented_control(key="examples_view").set_value("cards").run()  # or as cards, in full
    texts = [t.value for t in at.text]
    assert sum(label in text for text in texts) >= 6  # the six examples of this keyword cluster


def test_veto_toggle_and_weight_slider_are_stored_at_once(page, prepared_workspace):
    store, dataset, _ = _state(prepared_workspace)
    at = page("clusters").run()
    at.selectbox(key="cluster_pick").select(2).run()
    at.toggle(key=f"veto_cluster_{dataset.active_k}_2").set_value(True).run()
    at.slider(key=f"weight_{dataset.active_k}_2").set_value(2.5).run()
    table = curation.clusters(store, dataset.dataset_id, dataset.active_k)
    assert bool(table.vetoed.iloc[2]) is True
    assert table.weight.iloc[2] == 2.5
    actions = list(curation.history(store, dataset.dataset_id).action)
    assert actions[:2] == ["cluster_weight", "cluster_veto"]
    at.toggle(key=f"veto_cluster_{dataset.active_k}_2").set_value(False).run()
    assert not curation.clusters(store, dataset.dataset_id, dataset.active_k).vetoed.iloc[2]


def test_single_example_veto_and_keyword_search(page, prepared_workspace):
    store, dataset, _ = _state(prepared_workspace)
    at = page("clusters").run()
    at.text_input(key="search").input("number 3").run()
    boxes = [box for box in at.checkbox if box.key.startswith("search_veto_")]
    assert len(boxes) == 4  # "explain <keyword> number 3" for each of the four keywords
    boxes[0].check().run()
    example_id = boxes[0].key.removeprefix("search_veto_")
    vetoed = curation.decisions(store, dataset.dataset_id)["vetoed_examples"]
    assert vetoed == [example_id]


def test_changes_made_elsewhere_show_in_an_open_session_after_a_rerun(page, prepared_workspace):
    store, dataset, _ = _state(prepared_workspace)
    k = dataset.active_k
    at = page("clusters").run()
    at.selectbox(key="cluster_pick").select(1).run()
    at.text_input(key="search").input("number 3").run()
    box = next(box for box in at.checkbox if box.key.startswith("search_veto_"))
    example_id = box.key.removeprefix("search_veto_")
    assert not at.toggle(key=f"veto_cluster_{k}_1").value and not box.value

    # another curator (another session, the CLI or a run's round) changes the same cluster and example
    curation.set_cluster_veto(store, dataset.dataset_id, k, 1, True)
    curation.set_cluster_weight(store, dataset.dataset_id, k, 1, 3.0)
    curation.set_example_veto(store, dataset.dataset_id, example_id, True)
    at.run()

    # each widget is shown afresh under a new key (an old value echoed by the browser then changes nothing)
    assert at.toggle(key=f"veto_cluster_{k}_1~1").value is True
    assert at.slider(key=f"weight_{k}_1~1").value == 3.0
    assert at.checkbox(key=f"search_veto_{example_id}~1").value is True


def test_example_text_is_shown_as_plain_text(page, tmp_path, monkeypatch):
    from core.prepare import PrepareOptions, prepare
    from tests.conftest import KEYWORD_EMBEDDER, write_jsonl

    hostile = "<script>alert(1)</script> **bold** [link](http://x) <b>bread</b>"
    rows = [{"instruction": f"{hostile} {i}", "input": "", "output": hostile} for i in range(6)]
    workspace = tmp_path / "hostile"
    prepare(
        Store(workspace),
        write_jsonl(tmp_path / "h.jsonl", rows),
        PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2,)),
    )
    monkeypatch.setenv("CURATE_WORKSPACE", str(workspace))
    at = page("clusters").run()
    at.selectbox(key="cluster_pick").select(0).run()
    at.segmented_control(key="examples_view").set_value("cards").run()
    assert hostile in [t.value for t in at.text]  # st.text: shown verbatim, never as markdown or HTML
    assert not any("<script>" in m.value for m in at.markdown)


def test_map_can_be_colored_by_a_score(page, prepared_workspace):
    from core.score import scoring
    from core.score.scorers import HeuristicsScorer

    store, dataset, _ = _state(prepared_workspace)
    scoring.score_dataset(store, dataset, HeuristicsScorer())
    at = page("clusters").run()
    options = at.selectbox(key="color_by").options
    assert options[:2] == ["cluster", "combined quality"] and "response_length" in options
    at.selectbox(key="color_by").select("response_length").run()
    assert not at.exception
    at.selectbox(key="color_by").select("combined quality").run()
    assert not at.exception


def test_a_value_changed_elsewhere_gets_a_new_key_so_the_browsers_old_value_cannot_undo_it(monkeypatch):
    # the race once seen in a real browser: session two re-rendered a veto made by session one, was
    # interrupted before the toggle reached its browser, and the browser's old value then un-vetoed it
    from app import state

    widgets: dict = {}
    monkeypatch.setattr(state.st, "session_state", widgets)
    assert state.synced_key("veto", False) == "veto" and "veto" not in widgets  # value=False makes it
    widgets["veto"] = False  # the widget's state once drawn
    assert state.synced_key("veto", True) == "veto~1"  # another session vetoed: a fresh widget shows it
    # ... through its value= alone: no state is written for the new key, so the browser never sees a default
    # that differs from the stored value (a written state reached the browser after the default, and a rerun
    # sent in between carried the default back as a change)
    assert "veto~1" not in widgets
    assert widgets["veto"] is False  # the old key keeps the browser's value: echoing it back is no change
    widgets["veto~1"] = True  # drawn with value=True
    widgets["veto~1"] = False  # this session un-vetoes; its on_change stores False before the rerun
    assert state.synced_key("veto", False) == "veto~1"  # its own change keeps the key (and the focus)

    applied: list = []
    widgets["veto"] = True  # a browser that has not drawn the new toggle yet echoes the retired one ...
    state.if_current("veto", "veto", applied.append)
    assert applied == []  # ... and nothing is written (this once undid another session's veto)
    state.if_current("veto", "veto~1", applied.append)
    assert applied == [False]  # the current toggle's change is applied


def test_searching_a_dataset_without_the_word_index_says_how_to_build_it(page, prepared_workspace) -> None:
    from core.storage import datasets as ds
    from core.storage import search
    from core.storage.database import Store

    at = page("clusters").run()
    at.text_input(key="search").input("python").run()
    assert not [c for c in at.code if "core index" in c.value]  # indexed at prepare: nothing to say
    store = Store(prepared_workspace)
    with store.write() as con:  # as a dataset prepared before the index existed
        search.drop_index(con, ds.get_dataset(store, "tiny").dataset_id)
    at.text_input(key="search").input("about python").run()
    assert [c.value for c in at.code] == ["python -m core index --dataset tiny"]
    assert any(box.key.startswith("search_veto_") for box in at.checkbox)  # and the scan still answers
