"""Empty responses on the pages: the Datasets page counts whitespace-only ones too, and the Select page's
kMQ preview says which cluster got no quota because all its responses are empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl


@pytest.fixture
def prepared_workspace(tmp_path: Path) -> Path:
    """Overrides the shared fixture: the keyword rows with the first topic's six answers empty or whitespace
    (one cluster at k = 4, the active k), scored with the heuristics so kMQ has a quality."""
    from core.prepare import PrepareOptions, prepare
    from core.score.scoring import build_scorer, score_dataset

    rows = keyword_rows()
    for i in range(6):
        rows[i]["output"] = ["", " ", "\n", "\t", "", "  \n"][i]
    store = Store(tmp_path / "ws")
    prepare(
        store,
        write_jsonl(tmp_path / "empty.jsonl", rows),
        PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4, 6), seed=0),
    )
    ds.update_dataset(store, ds.get_dataset(store).dataset_id, active_k=4)
    score_dataset(store, ds.get_dataset(store), build_scorer("heuristics"))
    return tmp_path / "ws"


def test_the_datasets_page_counts_whitespace_only_responses_as_empty(page):
    at = page("datasets").run()
    assert not at.exception
    assert next(m for m in at.metric if m.label == "Empty responses").value == "6"


def test_the_select_page_says_which_cluster_gets_no_quota_for_its_empty_responses(page, prepared_workspace):
    cluster = int(ds.assignments(Store(prepared_workspace), 1, 4)[0])
    at = page("select").run()
    at.number_input(key="budget").set_value(12.0).run()
    at.button(key="preview").click().run()
    assert not at.exception
    assert at.metric[0].value == "12 of 24 kept examples"
    notes = [info.value.replace("\\", "") for info in at.info]  # the markdown escapes of plain()
    assert f"cluster {cluster} (6 examples) has only empty responses: no quota" in notes
    assert at.dataframe[0].value.set_index("cluster_id").selected[cluster] == 0
