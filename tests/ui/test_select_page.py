"""Select page: preview a strategy per cluster, save it, compare two selections, export one."""

from __future__ import annotations

from core.storage import datasets as ds
from core.storage import selections
from core.storage.database import Store


def test_select_page_previews_saves_compares_and_the_export_page_exports_it(page, prepared_workspace):
    at = page("select").run()
    assert not at.exception
    assert at.selectbox(key="strategy").value == "kmq"
    assert at.selectbox(key="param_kmq_allocation").options == ["proportional", "equal", "equal_floor"]
    at.number_input(key="budget").set_value(5.0).run()
    at.button(key="preview").click().run()
    assert "run the 'heuristics' scorer first" in at.error[0].value  # kMQ needs a quality score

    at.selectbox(key="strategy").select("random").run()
    at.button(key="preview").click().run()
    assert not at.exception
    assert at.metric[0].value == "5 of 24 kept examples"
    preview = at.dataframe[0].value
    assert preview.selected.sum() == 5 and (preview.selected <= preview["size"]).all()
    at.button(key="save_selection").click().run()
    assert "Saved selection #1" in at.success[0].value

    at.number_input(key="seed").set_value(7).run()
    at.button(key="preview").click().run()
    at.button(key="save_selection").click().run()
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    assert list(selections.listing(store, dataset.dataset_id).selection_id) == [2, 1]
    at.run()
    assert at.dataframe[0].value.shape[0] == 2  # the saved selections (the preview is gone after saving)
    shared, only_first, only_second = (int(m.value) for m in at.metric[-4:-1])
    assert shared + only_first == 5 and shared + only_second == 5

    export = page("export").run()
    export.selectbox(key="export_what").select(1).run()
    assert not export.exception
    assert export.metric[0].value == "5 of 24"
