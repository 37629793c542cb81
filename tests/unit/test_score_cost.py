"""The cost of LM scoring is stated before a run (from bench/score.py's rates), a long run needs --yes, and
a limited run draws a sample stratified by cluster."""

from __future__ import annotations

import numpy as np
import pytest

from core.cli import main
from core.score import cost, scoring
from core.score.scorers import PerplexityScorer
from core.storage import datasets as ds
from core.storage.database import Store


def test_the_estimate_grows_with_the_rows_and_a_million_ifd_rows_take_days():
    small, large = cost.projected_seconds("ifd", 1_000), cost.projected_seconds("ifd", 1_000_000)
    assert small is not None and large is not None and large == pytest.approx(1000 * small)
    assert cost.projected_seconds("ifd", 1_000, "fp32") > small  # float32 is slower
    assert cost.projected_seconds("perplexity", 1_000) < small  # one pass instead of two
    line = cost.cost_line("ifd", 1_000_000)
    assert "1,000,000 examples with ifd takes about 2.3 days" in line and "stratified sample" in line
    assert "stratified" not in cost.cost_line("ifd", 100)  # a short run is just stated
    assert cost.cost_line("heuristics", 1_000_000) is None  # not an LM: seconds, nothing to warn about


def test_stratified_quotas_give_every_cluster_one_then_shares_by_size():
    quotas = scoring.stratified_quotas(np.array([900, 90, 9, 1]), 20)
    assert quotas.sum() == 20 and (quotas >= 1).all()
    assert quotas[0] > quotas[1] > 0  # the rest goes by size
    assert list(scoring.stratified_quotas(np.array([5, 3, 2]), 2)) == [1, 1, 0]  # fewer than clusters: largest
    assert list(scoring.stratified_quotas(np.array([2, 1]), 10)) == [2, 1]  # never more than a cluster holds


def test_a_limited_score_covers_every_cluster(workspace):
    store = Store(workspace)
    dataset = ds.get_dataset(store)
    clusters = ds.assignments(store, dataset.dataset_id, int(dataset.active_k))
    n_clusters = len(np.unique(clusters))
    todo = scoring.pending(store, dataset, PerplexityScorer(model="m"), n_clusters)
    assert len(todo) == n_clusters
    assert sorted(clusters[todo.row_idx.to_numpy()]) == sorted(np.unique(clusters))  # one in each
    again = scoring.pending(store, dataset, PerplexityScorer(model="m"), n_clusters)
    assert list(again.content_hash) == list(todo.content_hash)  # seeded: the same sample


def test_the_cli_states_the_cost_and_asks_for_yes_above_the_threshold(workspace, monkeypatch, capsys):
    monkeypatch.setattr(cost, "CONFIRM_SECONDS", 1.0)
    loaded = []
    monkeypatch.setattr(scoring, "load_model", lambda scorer: loaded.append(scorer))
    assert main(["score", "--workspace", str(workspace), "--scorer", "ifd", "--model", "m"]) == 1
    out, err = capsys.readouterr()
    assert "with ifd takes about" in out
    assert "add --yes" in err and "--limit 5 for a stratified sample" in err
    assert loaded == []  # refused before any model loads


def test_durations_read_in_the_largest_readable_unit_and_never_as_zero() -> None:
    assert [cost.duration(s) for s in (0.4, 45, 720, 12_240, 345_600)] == ["1 s", "45 s", "12 min", "3.4 h", "4.0 days"]
