"""Comparing saved selections (core/select/compare.py): the diversity measure on hand-built vectors, and the
report on a small workspace with a ``source`` column, through the core function and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.score import quality
from core.select import compare as compare_module
from core.select.compare import compare, diversity_sample, metrics_table, recorded_cost, vendi_score
from core.select.run import build_strategy, run_selection, save_selection
from core.storage import datasets as ds
from core.storage import selections
from core.storage.database import Store

COST = {"device": "cpu", "seconds": {"embeddings": 12.3, "scores": 40.1, "select": 0.2}, "total": 52.6}


def test_vendi_score_counts_the_distinct_directions():
    direction = np.array([[0.6, 0.8, 0.0]])
    assert vendi_score(np.repeat(direction, 7, axis=0)) == pytest.approx(1.0)
    assert vendi_score(np.eye(5)) == pytest.approx(5.0)  # n orthogonal rows, n <= d
    assert vendi_score(np.repeat(np.eye(3), 4, axis=0) * 2.5) == pytest.approx(3.0)  # n > d; lengths do not count
    # three rows on one direction, one on another: eigenvalues 3/4 and 1/4
    uneven = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert vendi_score(uneven) == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))
    # two rows at cosine c: K / 2 has eigenvalues (1 + c) / 2 and (1 - c) / 2
    c = 0.6
    pair = np.array([[1.0, 0.0], [c, np.sqrt(1 - c * c)]])
    p = np.array([(1 + c) / 2, (1 - c) / 2])
    assert vendi_score(pair) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert vendi_score(np.zeros((0, 4))) == 0.0


def test_a_large_selection_is_measured_on_a_seeded_sample():
    rows = np.arange(10, 5010)
    sample = diversity_sample(rows, limit=2000)
    assert len(sample) == len(set(sample)) == 2000 and set(sample) <= set(rows)
    assert list(sample) == sorted(sample) and np.array_equal(sample, diversity_sample(rows, limit=2000))
    assert np.array_equal(diversity_sample(rows[:50], limit=2000), rows[:50])


def test_a_recorded_cost_is_shown_per_stage_and_an_older_selection_says_not_recorded():
    assert recorded_cost({"cost": COST}) == COST and recorded_cost({"cost": json.dumps(COST)}) == COST
    assert recorded_cost({}) is None and recorded_cost({"cost": None}) is None and recorded_cost({"cost": ""}) is None


@pytest.fixture
def two_selections(sourced_workspace, monkeypatch):
    """The "sourced" workspace, scored by the heuristics, with two saved selections: balanced by source (no
    recorded cost, as an older selection) and uniform (with the cost above)."""
    from core.score.scoring import build_scorer, score_dataset

    store = Store(sourced_workspace)
    dataset = ds.get_dataset(store, "sourced")
    score_dataset(store, dataset, build_scorer("heuristics"))
    balanced = run_selection(store, dataset, build_strategy("balanced_random", {"by": "source"}), 10, seed=0)
    first = save_selection(store, dataset, balanced, "balanced")
    second = save_selection(store, dataset, run_selection(store, dataset, build_strategy("random"), 6, seed=1), "rnd")
    stored = selections.get

    def with_cost(store, selection_id):  # the recording is another stage's: fix what each record says here
        record = {key: value for key, value in stored(store, selection_id).items() if key != "cost"}
        return {**record, "cost": COST} if selection_id == second else record

    monkeypatch.setattr(compare_module.store_selections, "get", with_cost)
    return store, dataset, first, second


def test_compare_reports_diversity_quality_shares_and_cost_beside_the_overlap(two_selections):
    store, dataset, first, second = two_selections
    report = compare(store, dataset, first, second)
    rows = {i: selections.items(store, i).row_idx.to_numpy() for i in (first, second)}
    assert report["shared"] + report["only_first"] == 10 and report["shared"] + report["only_second"] == 6

    a, b = report["profiles"]
    embeddings = ds.load_embeddings(store, dataset.dataset_id, dataset.embedder_key)
    assert a.diversity == pytest.approx(vendi_score(embeddings[rows[first]]))
    assert 1.0 < a.diversity < 5.0  # the keyword embedder: four topic directions and a little offset
    combined = quality.example_quality(store, dataset).to_numpy()
    assert a.quality == pytest.approx(combined[rows[first]].mean())
    assert b.scores["cut_off_response"] == pytest.approx(
        quality.raw_signals(store, dataset)["cut_off_response"].to_numpy()[rows[second]].mean()
    )
    assert a.below_threshold == 0.0  # no cluster of clean keyword rows is below 0.3
    assert a.cost is None and b.cost == COST

    metrics = report["metrics"].set_index("metric")
    assert list(metrics.columns) == [f"#{first} balanced", f"#{second} rnd"]
    assert metrics.loc["diversity (Vendi score)", f"#{first} balanced"] == f"{a.diversity:.2f}"
    assert metrics.loc["mean quality (combined)", f"#{second} rnd"] == f"{b.quality:.3f}"
    assert metrics.loc["share from clusters below 0.3"].tolist() == ["0.000", "0.000"]
    assert metrics.loc["cost: total (s)"].tolist() == ["not recorded", "52.6"]
    assert metrics.loc["cost: scores (s)"].tolist() == ["not recorded", "40.1"]
    assert metrics.loc["cost: device"].tolist() == ["not recorded", "cpu"]

    sources = report["sources"].set_index("source")
    assert sources.loc["web", "dataset"] == pytest.approx(0.5) and sources.loc["books", "dataset"] == pytest.approx(
        1 / 3
    )
    assert sources.loc["web", f"#{first}"] == pytest.approx(0.5)  # balanced: 5 of 10, 3 of 10 (3.3), 2 of 10 (1.7)
    assert sources.loc["books", f"#{first}"] == pytest.approx(0.3)
    assert sources[f"#{second}"].sum() == pytest.approx(1.0)

    clusters = report["per_cluster"]
    assert clusters[f"#{first}"].sum() == 10 and clusters[f"#{second}"].sum() == 6
    assert clusters[f"share #{second}"].to_numpy() == pytest.approx(clusters[f"#{second}"].to_numpy() / 6)


def test_without_scores_or_a_source_column_the_report_says_so(workspace):
    store = Store(workspace)
    dataset = ds.get_dataset(store)
    ids = [
        save_selection(store, dataset, run_selection(store, dataset, build_strategy("random"), 5, seed=s))
        for s in (0, 1)
    ]
    report = compare(store, dataset, *ids)
    assert report["sources"] is None and all(
        p.quality is None and p.below_threshold is None for p in report["profiles"]
    )
    metrics = report["metrics"].set_index("metric")
    assert set(metrics.loc["mean quality (combined)"]) == {"not scored"}
    assert all(float(value) >= 1.0 for value in metrics.loc["diversity (Vendi score)"])
    assert metrics_table(report["profiles"]).equals(report["metrics"])


def test_cli_selections_compare_prints_the_measures_and_the_shares(two_selections, capsys):
    from core.cli import main

    store, _, first, second = two_selections
    ws = str(store.workspace)
    assert main(["selections", "--compare", str(first), str(second), "--workspace", ws, "--dataset", "sourced"]) == 0
    out = capsys.readouterr().out
    for expected in ("Jaccard", "diversity (Vendi score)", "mean quality (combined)", "not recorded", "52.6"):
        assert expected in out
    assert "shares by source:" in out and "books" in out and f"share #{first}" in out

    assert (
        main(["selections", "--compare", str(first), str(second), "--workspace", ws, "--json", "--dataset", "sourced"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert [p["selection_id"] for p in report["profiles"]] == [first, second]
    assert report["profiles"][1]["cost"] == COST and report["profiles"][0]["cost"] is None
    assert {row["source"] for row in report["sources"]} == {"web", "books", "(none)"}
    assert report["metrics"][0]["metric"] == "strategy"
