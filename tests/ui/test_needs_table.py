"""The pages show what a strategy needs, what is missing and its estimated time before anything is launched;
a saved selection then lists the compute it consumed."""

from __future__ import annotations

from core.storage import stage_runs
from core.storage.database import Store


def _shown(at) -> str:
    return " ".join(caption.value for caption in at.caption).replace("\\", "")  # unescape the markdown


def _table(at):
    (table,) = at.table
    return table.value.set_index("needs")


def test_the_select_page_shows_the_estimate_before_launch(page, prepared_workspace):
    at = page("select").run()
    at.selectbox(key="strategy").select("ifd_topk").run()  # IFD has not been scored here
    assert not at.exception
    assert "What this needs: missing scores:ifd: about 5 s (reference CPU)" in _shown(at)
    table = _table(at)
    ifd = table.loc["the 'ifd' score: ifd scores"]
    assert (ifd.state, ifd["estimated time"], ifd["estimate from"]) == (
        "missing",
        "about 5 s (reference CPU)",
        "reference CPU",
    )
    assert table.loc["sentence embeddings (keyword-test)"].state == "present"

    # an IFD run recorded in this workspace replaces the reference rate (the run's scores, written with it,
    # move the data version the page's read is keyed on)
    store = Store(prepared_workspace)
    stage_runs.record(store, 1, stage="scores", scorer="ifd", key="ifd:x", rows=12, seconds=1.0, device="cpu")
    with store.write():
        pass
    at.run()
    assert "What this needs: missing scores:ifd: about 2 s (measured here)" in _shown(at)


def test_a_strategy_with_everything_present_says_so_and_a_saved_selection_shows_its_cost(page):
    at = page("select").run()
    at.selectbox(key="strategy").select("random").run()
    assert "What this needs: every input is present." in _shown(at)
    at.number_input(key="budget").set_value(5.0).run()
    at.button(key="preview").click().run()
    at.button(key="save_selection").click().run()
    assert not at.exception
    assert "(compute: " in at.success[0].value and " on cpu (embeddings " in at.success[0].value
    at.run()
    assert at.dataframe[0].value.cost.iloc[0].endswith(")")  # the saved selections' table: "0.9 s on cpu (...)"


def test_the_runs_page_shows_the_estimate_before_launch(page):
    at = page("runs").run()
    at.selectbox(key="run_strategy").select("ifd_topk").run()
    assert not at.exception
    assert "What this needs: missing scores:ifd: about 5 s (reference CPU)" in _shown(at)
