"""Clusters page: bulk veto of a search's results and of a map selection, Undo, and the History expander."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.text import plain
from core.storage import curation, history
from core.storage import datasets as ds
from core.storage.database import Store


def _state(workspace: Path) -> tuple[Store, int]:
    store = Store(workspace)
    return store, ds.get_dataset(store, "tiny").dataset_id


def _vetoed(store: Store, dataset_id: int) -> list[str]:
    return curation.decisions(store, dataset_id)["vetoed_examples"]


def test_search_bulk_veto_then_undo(page, prepared_workspace):
    store, dataset_id = _state(prepared_workspace)
    at = page("clusters").run()
    at.text_input(key="search").input("python").run()
    assert at.button(key="veto_search").label == "Veto all 6 matching examples"
    assert at.button(key="unveto_search").label == "Un-veto all 6 matching examples"

    at.button(key="veto_search").click().run()

    assert not at.exception
    assert len(_vetoed(store, dataset_id)) == 6
    assert "Vetoed 6 examples" in at.success[0].value
    boxes = [box for box in at.checkbox if box.key.split("~")[0].startswith("search_veto_")]
    assert len(boxes) == 6 and all(box.value for box in boxes)  # the cards follow the store
    assert plain("Undo: vetoed 6 examples (search: 'python')") in [caption.value for caption in at.caption]
    (batch,) = history.batches(store, dataset_id)
    assert batch.actor.startswith("app session ") and len(batch.actor) == len("app session ") + 8

    at.button(key="undo_last").click().run()

    assert not at.exception
    assert _vetoed(store, dataset_id) == []
    boxes = [box for box in at.checkbox if box.key.split("~")[0].startswith("search_veto_")]
    assert len(boxes) == 6 and not any(box.value for box in boxes)
    assert "Undid" in at.success[0].value
    assert "undo_last" not in [button.key for button in at.button]  # nothing left to undo


def test_map_selection_veto_and_the_history_expander(page, prepared_workspace):
    store, dataset_id = _state(prepared_workspace)
    at = page("clusters").run()
    at.session_state["map_selected"] = 3  # what on_map_select leaves after a lasso around rows 0, 1 and 2
    at.session_state["map_selected_rows"] = (dataset_id + 1, 4, np.array([0, 1, 2]))  # another dataset's
    at.run()
    assert "veto_selection" not in [button.key for button in at.button]
    at.session_state["map_selected_rows"] = (dataset_id, 4, np.array([0, 1, 2]))
    at.run()
    assert at.button(key="veto_selection").label == "Veto the 3 selected examples"

    at.button(key="veto_selection").click().run()
    at.text_input(key="search").input("bread").run()
    at.button(key="veto_search").click().run()

    assert len(_vetoed(store, dataset_id)) == 3 + 6 - len(
        {0, 1, 2} & set(curation.matching_rows(store, dataset_id, 4, search="bread"))
    )
    first, second = history.batches(store, dataset_id)[::-1]
    assert first.summary == "vetoed 3 examples (map selection)"
    listing = next(box for box in at.expander if box.label == "History")
    captions = [caption.value for caption in listing.caption]
    assert len(captions) == 2 and "map selection" in captions[1]
    keys = [button.key for button in listing.button]
    assert keys == [f"undo_{second.batch_id}", f"undo_{first.batch_id}", f"revert_{first.batch_id}"]

    at.button(key=f"revert_{first.batch_id}").click().run()  # back to right after the selection's veto

    assert sorted(_vetoed(store, dataset_id)) == sorted(
        curation.example_page(store, dataset_id, 4, limit=3).example_id  # rows 0, 1 and 2
    )
    assert at.success[0].value.startswith("Reverted to")
    # undoing the selection's batch now: the revert did not touch its rows, so it is allowed
    at.button(key=f"undo_{first.batch_id}").click().run()
    assert _vetoed(store, dataset_id) == []


def test_an_undo_refused_names_the_later_batch_and_undo_anyway_forces_it(page, prepared_workspace):
    store, dataset_id = _state(prepared_workspace)
    at = page("clusters").run()
    at.text_input(key="search").input("python").run()
    at.button(key="veto_search").click().run()
    (bulk,) = history.batches(store, dataset_id)
    box = next(box for box in at.checkbox if box.key.split("~")[0].startswith("search_veto_"))
    box.uncheck().run()  # a later batch changes one of the same examples
    later = history.batches(store, dataset_id)[0]
    assert later.summary.startswith("un-vetoed example ") and later.actor == bulk.actor

    at.button(key=f"undo_{bulk.batch_id}").click().run()

    assert not at.exception
    assert len(_vetoed(store, dataset_id)) == 5  # refused: nothing written
    assert f"batch \\#{later.batch_id}" in at.error[0].value
    at.button(key="undo_force").click().run()
    assert _vetoed(store, dataset_id) == []
    assert at.success[0].value.startswith("Undid")
