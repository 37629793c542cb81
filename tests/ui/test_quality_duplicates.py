"""Quality page: the MinHash near-duplicate groups, biggest first, one group's rows side by side."""

from __future__ import annotations

import pytest

from core.score.scorers import MinHashScorer
from core.score.scoring import score_dataset
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl
from tests.unit.test_minhash import EDITED, RECIPE, STORY


@pytest.fixture
def prepared_workspace(tmp_path):
    """The keyword rows, then the story, the recipe, an edited copy of the story and the recipe again with its
    punctuation changed: two groups of two."""
    from core.prepare import PrepareOptions, prepare

    rows = keyword_rows(per_topic=2)
    extra = [STORY, RECIPE, EDITED, RECIPE.replace(",", "").upper()]
    rows += [{"instruction": "Write a paragraph.", "input": "", "output": text} for text in extra]
    workspace = tmp_path / "ws"
    prepare(
        Store(workspace),
        write_jsonl(tmp_path / "dups.jsonl", rows),
        PrepareOptions(name="dups", embedder=KEYWORD_EMBEDDER, k_grid=(2,), seed=0),
    )
    return workspace


def test_the_group_browser_lists_the_groups_and_shows_one_side_by_side(page, prepared_workspace):
    store = Store(prepared_workspace)
    at = page("quality").run()
    assert not at.exception
    assert not any(frame.value.columns.tolist()[:2] == ["group", "size"] for frame in at.dataframe)

    score_dataset(store, ds.get_dataset(store, "dups"), MinHashScorer(field="response"))
    at.run()
    assert not at.exception
    groups = next(frame.value for frame in at.dataframe if {"group", "size", "lowest_similarity"} <= set(frame.value))
    assert groups.group.tolist() == [8, 9] and groups["size"].tolist() == [2, 2]  # rows 8 and 9 are kept

    picker = at.selectbox(key="minhash_group_pick")
    assert picker.value == 8
    headers = [m.value for m in at.markdown if m.value.startswith("**Row")]
    assert headers[0] == "**Row 8** · kept" and headers[1].startswith("**Row 10** · similarity 0.")
    shown = [t.value for t in at.text]
    assert STORY in shown and EDITED in shown and RECIPE not in shown

    picker.select(9).run()
    headers = [m.value for m in at.markdown if m.value.startswith("**Row")]
    assert headers == ["**Row 9** · kept", "**Row 11** · similarity 1.00"]  # only case and commas differ
    assert RECIPE in [t.value for t in at.text]
