"""Empty or whitespace-only responses: no LM score stored, a combined quality of 0, and the quality-based
strategies leave them out (kMQ gives a cluster of nothing else no quota and says so) unless ``include_empty``."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from core.score import quality
from core.select.pool import Pool
from core.select.run import build_strategy, pick, run_selection
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl
from tests.unit.test_scorers import tiny_lm, use_tiny  # noqa: F401  (fixtures)

EMPTY_ROWS = range(6)  # the first keyword topic: one cluster at k = 4, all of its responses empty


@pytest.fixture(scope="module")
def empty_template(tmp_path_factory):
    """The 24 keyword rows (four topics of six) prepared at k in {2, 4, 6}, active k 4, the first topic's
    answers empty or whitespace. Never modified: the tests copy it."""
    from core.prepare import PrepareOptions, prepare

    rows = keyword_rows()
    for i in EMPTY_ROWS:
        rows[i]["output"] = ["", "  ", "\n", "\t \n", "", " "][i]
    folder = tmp_path_factory.mktemp("empty")
    store = Store(folder / "ws")
    path = write_jsonl(folder / "empty.jsonl", rows)
    prepare(store, path, PrepareOptions(name="empty", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4, 6), seed=0))
    ds.update_dataset(store, ds.get_dataset(store).dataset_id, active_k=4)
    return folder / "ws"


@pytest.fixture
def empty_workspace(empty_template, tmp_path):
    """A private copy of the template: (store, dataset)."""
    shutil.copytree(empty_template, tmp_path / "ws")
    store = Store(tmp_path / "ws")
    return store, ds.get_dataset(store)


def _stand_in_ifd(store: Store, dataset: ds.DatasetInfo) -> np.ndarray:
    """Stores an IFD per row in which the empty rows rank highest (0.99, as the end-of-turn token gave them)."""
    texts = ds.example_texts(store, dataset.dataset_id)
    ifd = np.where(np.isin(texts.row_idx, list(EMPTY_ROWS)), 0.99, np.linspace(0.2, 0.9, len(texts)))
    score_store.register_run(store, "ifd:test", "ifd", {"name": "ifd"})
    score_store.put_scores(store, "ifd:test", list(texts.content_hash), {"ifd": ifd})
    return ifd


def _cluster_of_empty_rows(store: Store, dataset: ds.DatasetInfo) -> int:
    clusters = ds.assignments(store, dataset.dataset_id, 4)
    assert len({int(clusters[i]) for i in EMPTY_ROWS}) == 1 and list(clusters).count(clusters[0]) == 6
    return int(clusters[0])


def _pool(ifd: list[float], outputs: list[str], clusters: list[int]) -> Pool:
    n = len(ifd)
    scores = pd.DataFrame({"ifd": ifd, "combined": ifd})
    return Pool(np.arange(n), [f"e{i}" for i in range(n)], np.array(clusters), {}, scores=scores, outputs=outputs)


def test_ifd_topk_never_ranks_an_empty_response_first_even_with_the_highest_ifd():
    pool = _pool([0.99, 0.5, 0.3, 0.95], ["", "An answer.", "Another answer.", " \n"], [0, 0, 1, 1])
    rng = np.random.default_rng(0)
    positions, report = pick(build_strategy("ifd_topk"), pool, 4, rng)
    assert list(positions) == [1, 2]
    assert report["empty_left_out"] == 2 and "left out" in report["why"]
    positions, _ = pick(build_strategy("ifd_topk", {"include_empty": "true"}), pool, 4, rng)
    assert list(positions) == [0, 3, 1, 2]  # asked for: ranked by IFD like any other row


def test_every_strategy_that_ranks_by_quality_or_length_leaves_empty_responses_out():
    outputs = ["", "A long answer with many words in it.", "Short one.", "   ", "Medium length answer."]
    pool = _pool([0.99, 0.5, 0.3, 0.95, 0.4], outputs, [0, 0, 1, 1, 1])
    pool = dataclasses.replace(pool, embeddings=np.eye(5, dtype=np.float32))
    for name in ("longest", "ifd_topk", "kmq", "deita", "qdit", "iterit_greedy"):
        positions, _ = pick(build_strategy(name), pool, 5, np.random.default_rng(0))
        assert len(positions) and not {0, 3} & set(positions.tolist()), name


def test_kmq_gives_an_all_empty_cluster_no_quota_fills_the_budget_from_the_others_and_says_so():
    clusters = [0] * 4 + [1] * 4 + [2] * 4
    outputs = [""] * 4 + [f"Answer {i}." for i in range(8)]
    pool = _pool([0.99] * 4 + [0.5] * 8, outputs, clusters)
    positions, report = pick(build_strategy("kmq"), pool, 6, np.random.default_rng(0))
    assert len(positions) == 6 and min(positions) >= 4  # the budget met from clusters 1 and 2 alone
    assert "cluster 0 (4 examples) has only empty responses: no quota" in report["notes"]
    asked, _ = pick(build_strategy("kmq", {"include_empty": "true"}), pool, 6, np.random.default_rng(0))
    assert len(asked) == 6 and sum(p < 4 for p in asked) == 2  # include_empty: cluster 0 has its share again


def test_a_stored_high_ifd_of_an_empty_row_gives_no_combined_quality_even_without_the_heuristics(empty_workspace):
    store, dataset = empty_workspace
    _stand_in_ifd(store, dataset)
    raw = quality.raw_signals(store, dataset)
    assert list(raw.empty_response) == [1.0] * 6 + [0.0] * 18  # from the texts: no heuristics scorer ran
    combined = quality.example_quality_from(raw)
    assert (combined.iloc[list(EMPTY_ROWS)] == 0.0).all()
    assert (combined.drop(index=list(EMPTY_ROWS)) > 0).all()


def test_lm_scores_of_empty_rows_are_stored_as_missing(empty_workspace, use_tiny):  # noqa: F811
    from core.score.scoring import build_scorer, score_dataset

    store, dataset = empty_workspace
    score_dataset(store, dataset, build_scorer("ifd", model="tiny", precision="fp32"))
    raw = quality.raw_signals(store, dataset)
    assert raw.ifd.isna().tolist() == [True] * 6 + [False] * 18
    assert raw.perplexity.isna().tolist() == [True] * 6 + [False] * 18
    assert (quality.example_quality_from(raw).iloc[list(EMPTY_ROWS)] == 0.0).all()


def test_a_kmq_selection_from_the_workspace_reports_the_empty_cluster_and_the_cli_prints_it(empty_workspace, capsys):
    from core.cli import main

    store, dataset = empty_workspace
    _stand_in_ifd(store, dataset)
    cluster = _cluster_of_empty_rows(store, dataset)
    result = run_selection(store, dataset, build_strategy("kmq"), 12, seed=0)
    assert len(result.example_ids) == 12 and not set(result.row_idx) & set(EMPTY_ROWS)
    note = f"cluster {cluster} (6 examples) has only empty responses: no quota"
    assert note in result.report["notes"]
    topk = run_selection(store, dataset, build_strategy("ifd_topk"), 3, seed=0)
    assert not set(topk.row_idx) & set(EMPTY_ROWS)
    args = ["select", "--strategy", "kmq", "--budget", "12", "--workspace", str(store.workspace)]
    assert main(args) == 0
    assert f"note: {note}" in capsys.readouterr().out


def test_the_whitespace_only_responses_come_from_storage_without_reading_the_others(tmp_path):
    """The Datasets page counts empty responses from the few responses made only of whitespace: Python's
    whitespace, so a response of an ideographic space or a vertical tab counts, as the one rule says."""
    from core.prepare import PrepareOptions, prepare

    rows = keyword_rows()
    odd = ["\u3000", "\x0b\n", "\u2028 ", "a\u3000", " . "]
    for i, text in enumerate(odd):
        rows[i]["output"] = text
    store = Store(tmp_path / "ws")
    prepare(
        store,
        write_jsonl(tmp_path / "odd.jsonl", rows),
        PrepareOptions(name="odd", embedder=KEYWORD_EMBEDDER, k_grid=(2,)),
    )
    whitespace = "".join(c for c in map(chr, range(0x110000)) if c.isspace())

    found = ds.outputs_made_of(store, ds.get_dataset(store, "odd").dataset_id, whitespace)

    assert found == odd[:3]
