"""Gradient features end to end on a tiny saved model: warmup, pool and target features, the graph, the cache,
the targeted strategies through run_selection, and the CLI computing missing features on demand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import cli
from core.errors import MissingScores
from core.gradients import pipeline, views
from core.select.run import build_strategy, run_selection, save_selection
from core.storage import datasets as ds
from core.storage import gradients as gstore
from core.storage import selections
from core.storage.database import Store


def test_features_graph_and_target_are_stored_and_cached(computed, target_file):
    workspace, report, config = computed
    store = Store(workspace)
    dataset = ds.get_dataset(store)
    pool = gstore.get_set(store, report["pool"])
    features = gstore.load_features(store, report["pool"])
    assert pool.n_rows == dataset.n_rows == features.shape[0] and features.shape[1] == 64
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=2e-3)  # float16 storage
    indices, weights = gstore.load_neighbours(store, report["pool"], pool.n_rows)
    assert indices.shape == (dataset.n_rows, 8) and (indices != np.arange(dataset.n_rows)[:, None]).all()
    assert (np.diff(weights, axis=1) <= 1e-6).all()  # each row in descending cosine
    assert set(report["targets"]) == {"bread_target"}

    again = pipeline.compute_gradients(store, dataset, config, [target_file])
    assert again["cached"] and again["pool"] == report["pool"] and again["targets"] == report["targets"]


def test_the_target_aligned_cluster_and_strategies_use_the_features(computed, target_file):
    workspace, _, _ = computed
    store = Store(workspace)
    dataset = ds.get_dataset(store)
    k = int(dataset.active_k)
    table = views.cluster_target_alignment(store, dataset.dataset_id, k)
    assert list(table.columns) == ["bread_target"] and len(table) == k
    for name in ("less", "g2is", "g2is_no_graph", "g2is_embeddings", "embedding_knn"):
        strategy = build_strategy(name, {"target": str(target_file)})
        result = run_selection(store, dataset, strategy, 6, seed=0)
        assert 0 < len(result.example_ids) <= 6 and len(set(result.example_ids)) == len(result.example_ids)
        assert result.report["budget"] == 6 and result.report["shortfall"] == 6 - len(result.example_ids)
        if name == "g2is":
            selection_id = save_selection(store, dataset, result)
            assert selections.get(store, selection_id)["report"]["pick_via"][0] == "anchor"
            path = views.walk_path(store, selection_id)
            assert list(path.row_idx) == result.row_idx
    nodes, edges = views.neighbourhood(store, dataset.dataset_id, 0, top=5)
    assert nodes.centre.tolist() == [True] + [False] * 5 and len(edges) >= 5


def test_a_target_without_features_names_the_command_that_computes_it(computed, tmp_path):
    workspace, _, _ = computed
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"instruction": "Name a planet.", "input": "", "output": "Mars."}) + "\n")
    store = Store(workspace)
    with pytest.raises(MissingScores, match="python -m core gradients --target"):
        run_selection(store, ds.get_dataset(store), build_strategy("less", {"target": str(other)}), 4)
    with pytest.raises(MissingScores, match="target set"):
        run_selection(store, ds.get_dataset(store), build_strategy("less", {}), 4)


def test_cli_select_computes_missing_features_on_demand(workspace, tiny_model_dir, target_file, capsys):
    params = ["--param", f"model={tiny_model_dir}", "--param", "d=32", "--param", "neighbours=5"]
    code = cli.main(["gradients", "--workspace", str(workspace), *params, "--param", "max_length=96"])
    assert code == 0, capsys.readouterr().err
    assert "gradient features of 24 examples, d=32" in capsys.readouterr().out
    code = cli.main(
        [
            "select",
            "--workspace",
            str(workspace),
            "--strategy",
            "g2is",
            "--budget",
            "0.25",
            "--target",
            str(target_file),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "computing them first" in out.out and "selection 1:" in out.out
