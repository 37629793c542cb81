"""The pages' caches survive a click: a veto re-reads the decision overlays only, never the map's points,
the clusters' overview or the texts; a derived write (a new clustering) does re-read them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import streamlit as st

from app import map_spec
from core.prepare import add_k_values
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the storage reads behind the cached queries (the AppTest script runs in this process)."""
    st.cache_data.clear()
    counter: Counter[str] = Counter()
    for name in (
        "map_points",
        "cluster_overview",
        "cluster_overlay",
        "vetoed_points",
        "count_examples",
        "example_page",
    ):
        original = getattr(curation, name)

        def counted(*args: Any, _name: str = name, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            counter[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(curation, name, counted)
    return counter


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[pd.DataFrame]:
    """The points each rerun drew on the cluster map."""
    maps: list[pd.DataFrame] = []
    original = map_spec.cluster_spec

    def recording(points: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        maps.append(points.copy())
        return original(points, *args, **kwargs)

    monkeypatch.setattr(map_spec, "cluster_spec", recording)
    return maps


def test_a_veto_rereads_the_overlays_but_not_the_map_or_the_clusters(page, prepared_workspace, calls, drawn):
    dataset = ds.get_dataset(Store(prepared_workspace), "tiny")
    k = dataset.active_k
    at = page("clusters").run()
    at.selectbox(key="cluster_pick").select(2).run()
    assert calls["map_points"] == 1 and calls["cluster_overview"] == 1
    assert calls["count_examples"] == 1  # the open cluster's size, for its pager
    overlays = calls["cluster_overlay"]

    at.toggle(key=f"veto_cluster_{k}_2").set_value(True).run()

    assert not at.exception
    assert calls["map_points"] == 1  # the map's points came from the cache
    assert calls["cluster_overview"] == 1
    assert calls["cluster_overlay"] == overlays + 1  # the decisions were read again
    assert calls["count_examples"] == 1  # the cluster's pager was not recounted
    assert calls["example_page"] == 1  # nor its page of texts read again: only the page's vetoes
    shown = drawn[-1]
    assert set(shown.loc[shown.vetoed, "cluster_id"]) == {2}  # and the map shows the veto
    assert shown.loc[shown.vetoed].shape[0] == int((shown.cluster_id == 2).sum()) > 0


def test_an_example_veto_greys_its_point_from_the_overlay(page, prepared_workspace, calls, drawn):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    at = page("clusters").run()
    first, _ = curation.examples(store, dataset.dataset_id, dataset.active_k, limit=1)
    curation.set_example_veto(store, dataset.dataset_id, str(first.example_id.item()), True)

    at.run()

    assert calls["map_points"] == 1
    shown = drawn[-1]
    assert list(shown.loc[shown.vetoed, "row_idx"]) == [int(first.row_idx.item())]


def test_a_derived_write_rereads_the_map(page, prepared_workspace, calls):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    at = page("clusters").run()

    add_k_values(store, dataset, [3])  # a new clustering beside the shown one: derived data changed
    at.run()

    assert not at.exception
    assert calls["map_points"] == 2
    assert calls["cluster_overview"] == 2


def test_a_search_or_a_page_turn_does_not_rebuild_the_map(page, drawn):
    at = page("clusters").run()
    built = len(drawn)
    at.text_input(key="search").input("python").run()
    assert not at.exception
    assert len(drawn) == built  # the map came from the cache: nothing it shows changed
    at.selectbox(key="cluster_pick").select(1).run()
    assert len(drawn) == built  # opening a cluster draws it larger on a copy of the cached map
    shown = next(c for c in at.get("bidi_component") if c.proto.component_name == "curate_map")
    assert json.loads(shown.proto.json)["highlight"] == 1
