"""Tags in the pages: a cluster tagged from its card (a new tag typed in), every search hit tagged at once, the
tags shown in the cluster table, and the Export page keeping only what carries a tag."""

from __future__ import annotations

from core.storage import datasets as ds
from core.storage import history, tags
from core.storage.database import Store
from tests.ui.conftest import cluster_table


def test_tag_a_cluster_and_a_search_then_export_only_the_tagged(page, prepared_workspace):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    at = page("clusters").run()
    at.selectbox(key="cluster_pick").select(1).run()
    box = next(m for m in at.multiselect if m.key.startswith(f"tags_{k}_1"))
    box.set_value(["needs review"]).run()  # typed in: a tag no cluster had
    assert not at.exception
    assert tags.tags_of(store, dataset.dataset_id, [tags.cluster_ref(k, 1)]) == {
        tags.cluster_ref(k, 1): ["needs review"]
    }
    table = cluster_table(at)
    assert table.value.set_index("cluster_id").loc[1, "tags"] == "needs review"

    at.text_input(key="search").input("python").run()
    at.text_input(key="search_tag").input("keep").run()
    assert at.button(key="tag_search").label == "Tag all 6"
    at.button(key="tag_search").click().run()
    assert tags.all_tags(store, dataset.dataset_id) == {"keep": 6, "needs review": 1}
    assert history.batches(store, dataset.dataset_id)[0].summary == "tagged 6 examples 'keep' (search: 'python')"

    export = page("export").run()
    export.selectbox(key="export_tag").select("keep").run()
    assert not export.exception
    assert export.metric[0].value == f"6 of {dataset.n_rows}"


def test_a_cluster_renamed_in_its_card_shows_its_name_in_the_table_and_heading(page, prepared_workspace):
    store = Store(prepared_workspace)
    k = ds.get_dataset(store, "tiny").active_k
    at = page("clusters").run()
    at.selectbox(key="cluster_pick").select(3).run()
    at.text_input(key=f"name_{k}_3").input("Sourdough questions").run()
    assert not at.exception
    assert any(h.value == "Cluster 3: Sourdough questions" for h in at.subheader)
    table = cluster_table(at)
    assert table.value.set_index("cluster_id").loc[3, "label"] == "Sourdough questions"
    assert history.batches(store, ds.get_dataset(store, "tiny").dataset_id)[0].summary == (
        f"named cluster 3 (k={k}) 'Sourdough questions'"
    )
