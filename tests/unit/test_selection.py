"""Selection strategies: the contract every registered strategy keeps, and exact outputs on toy data."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from core.select import greedy
from core.select.allocation import allocate, equal_floor, largest_remainder
from core.select.compare import compare
from core.select.run import build_strategy, run_selection, save_selection
from core.select.strategies import STRATEGIES, parameters
from core.storage import curation, selections
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage.database import Store


@pytest.fixture
def scored(workspace):
    """The tiny workspace with heuristics and a stand-in IFD score (some >= 1), as a scorer would store them."""
    from core.score.scoring import build_scorer, score_dataset

    store = Store(workspace)
    dataset = ds.get_dataset(store)
    score_dataset(store, dataset, build_scorer("heuristics"))
    with store.read() as con:
        hashes = [
            h for (h,) in con.execute("SELECT DISTINCT content_hash FROM examples ORDER BY content_hash").fetchall()
        ]
    ifd = np.linspace(0.2, 1.3, len(hashes))
    score_store.register_run(store, "ifd:test", "ifd", {"name": "ifd"})
    score_store.put_scores(store, "ifd:test", hashes, {"ifd": ifd})
    _store_gradients(store, dataset, workspace / "target.jsonl")
    _store_hidden_states(store, dataset, workspace / "target.jsonl")
    return store, dataset


def _store_gradients(store, dataset, target_path) -> None:
    """Seeded unit "gradient" features for every row and for a 3-row target file, and their graph, stored as
    the gradient pipeline stores them, so the targeted strategies (less, g2is...) run in the contract test."""
    from core.gradients import graph
    from core.storage import gradients as gstore
    from core.train.evaluate import load_eval_set

    rows = [{"instruction": f"Question {i} about bread", "input": "", "output": "Bread."} for i in range(3)]
    target_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rng = np.random.default_rng(0)
    base = {"dataset_id": dataset.dataset_id, "model_id": "test", "adapter_hash": "a", "d": 16}
    base |= {"projection": "sparse", "seed": 0, "config": {}}
    unit = lambda n: (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(rng.normal(size=(n, 16)))  # noqa: E731
    pool = gstore.GradientSet("pool_test", role="pool", target_name=None, target_path=None, target_sha256=None,
                              n_rows=dataset.n_rows, **base)  # fmt: skip
    features = unit(dataset.n_rows)
    gstore.save_set(store, pool, features)
    gstore.save_edges(store, "pool_test", *graph.top_neighbours(features.astype(np.float32), 6))
    target = gstore.GradientSet("target_test", role="target", target_name="target", target_path=str(target_path),
                                target_sha256=load_eval_set(target_path).sha256, n_rows=3, **base)  # fmt: skip
    gstore.save_set(store, target, unit(3))


def _store_hidden_states(store, dataset, target_path) -> None:
    """Seeded unit "hidden states" for every row and for the target file, stored under the keys the hidden-state
    pipeline gives them, so rds_plus runs in the contract test without a model."""
    import dataclasses

    from core.hidden import pipeline
    from core.storage import hidden as hstore
    from core.train.evaluate import load_eval_set

    rng = np.random.default_rng(1)
    unit = lambda n: (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(rng.normal(size=(n, 16)))  # noqa: E731
    config = pipeline.HiddenConfig(model="test")
    pool = pipeline.pool_info(dataset, config, "fp32", dataset.n_rows)
    hstore.save_set(store, dataclasses.replace(pool, d=16), unit(dataset.n_rows))
    target = pipeline.target_info(dataset.dataset_id, config, "fp32", load_eval_set(target_path))
    hstore.save_set(store, dataclasses.replace(target, d=16), unit(target.n_rows))


def _strategy(name: str, store):
    """The strategy with its defaults, and the contract test's target file for those that need one."""
    needs_target = "target" in {parameter.name for parameter in parameters(name)}
    return build_strategy(name, {"target": str(store.workspace / "target.jsonl")} if needs_target else {})


@pytest.mark.parametrize("weighted", [False, True], ids=["neutral-weights", "one-cluster-weighted"])
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_keeps_the_contract(scored, name, weighted):
    store, dataset = scored
    k = dataset.active_k
    curation.set_cluster_veto(store, dataset.dataset_id, k, 0, True)
    members, _ = curation.examples(store, dataset.dataset_id, k, cluster_id=0, limit=100)
    vetoed_example = curation.examples(store, dataset.dataset_id, k, cluster_id=1, limit=1)[0].example_id.iloc[0]
    curation.set_example_veto(store, dataset.dataset_id, vetoed_example, True)
    if weighted:
        curation.set_cluster_weight(store, dataset.dataset_id, k, 2, 3.0)
    excluded = set(members.example_id) | {vetoed_example}
    strategy = _strategy(name, store)

    first = run_selection(store, dataset, strategy, 8, seed=3)
    assert 0 < len(first.example_ids) <= 8
    assert len(set(first.example_ids)) == len(first.example_ids)
    assert not excluded & set(first.example_ids)
    assert run_selection(store, dataset, strategy, 8, seed=3).example_ids == first.example_ids

    everything = run_selection(store, dataset, strategy, 10_000, seed=3)
    assert len(everything.example_ids) <= first.pool_size == dataset.n_rows - len(excluded)
    assert not excluded & set(everything.example_ids)


def test_a_fraction_budget_is_a_share_of_the_dataset_rows(scored):
    store, dataset = scored
    result = run_selection(store, dataset, build_strategy("random"), 0.25, seed=0)
    assert len(result.example_ids) == round(0.25 * dataset.n_rows)
    with pytest.raises(ValueError, match="whole number"):
        run_selection(store, dataset, build_strategy("random"), 2.5)


def test_largest_remainder_sums_exactly_to_the_budget():
    assert list(largest_remainder(np.array([1, 1, 1]), 10)) == [4, 3, 3]
    assert list(largest_remainder(np.array([5, 3, 2]), 7)) == [4, 2, 1]  # exact 3.5, 2.1, 1.4
    for total in range(0, 40):
        assert largest_remainder(np.array([0.13, 0.5, 0.37, 2.0]), total).sum() == total


def test_kmq_allocation_in_both_modes_redistributes_what_small_clusters_cannot_take():
    sizes = np.array([100, 5, 50])
    assert list(allocate(sizes, 60, mode="proportional")) == [39, 2, 19]  # 38.7, 1.9, 19.4
    assert list(allocate(sizes, 60, mode="equal")) == [28, 5, 27]  # 20 each; 15 left by the small one
    assert list(allocate(np.array([3, 3]), 10)) == [3, 3]  # capacity caps the total
    assert list(allocate(np.array([10, 10]), 10, weights=np.array([3.0, 1.0]))) == [8, 2]
    assert list(allocate(np.array([10, 10]), 6, weights=np.array([0.0, 1.0]))) == [0, 6]
    assert list(equal_floor(sizes, 60)) == [20, 5, 20]  # the code's rule: 45, never redistributed


def test_iterit_greedy_picks_in_the_known_order_and_decay_compounds():
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = ["apple banana", "apple cherry", "banana cherry", "durian"]
    tfidf = TfidfVectorizer(ngram_range=(1, 1)).fit_transform(docs)
    # d = 1.414 for the three pairs, 1.0 for durian. Picking 0 decays apple and banana: 1 and 2 drop to
    # 0.707 * (1 + 0.1); durian (1.0) is next, then 1; 2 is left with banana and cherry both decayed once.
    picks, left = greedy.tfidf_greedy(tfidf, np.full(4, 0.5), 4, decay=0.1)
    assert list(picks) == [0, 3, 1, 2]
    picks, left = greedy.tfidf_greedy(tfidf, np.array([0.9, 0.8, 0.1, 0.1]), 2, decay=0.1)
    assert list(picks) == [0, 1]
    # apple was in both picks: in no row now, but banana (picked once) and cherry (picked once) in row 2
    assert left[2] == pytest.approx(np.sqrt(0.5) * 0.1 + np.sqrt(0.5) * 0.1)
    three = TfidfVectorizer().fit_transform(["kiwi one", "kiwi two", "kiwi three", "kiwi"])
    _, left = greedy.tfidf_greedy(three, np.array([0.9, 0.8, 0.7, 0.1]), 3, decay=0.5)
    assert left[3] == pytest.approx(0.5**3)  # row 3 is "kiwi" alone (weight 1); three picks had it: lambda^3


def test_qdit_lazy_greedy_matches_brute_force_greedy_on_a_toy_set():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(14, 3)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    quality = rng.uniform(size=14)
    for alpha, normalise in itertools.product((0.0, 0.3, 0.9), (True, False)):
        lazy = greedy.facility_location(vectors, quality, 6, alpha, normalise=normalise, batch=2, chunk=5)
        brute: list[int] = []
        for _ in range(6):
            gains = [
                greedy.facility_objective(vectors, quality, [*brute, c], alpha, normalise) if c not in brute else -1
                for c in range(14)
            ]
            brute.append(int(np.argmax(gains)))
        assert list(lazy) == brute, (alpha, normalise)


def test_qdit_on_a_neighbour_graph_matches_brute_force_and_equals_dense_with_every_neighbour():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(16, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    quality = rng.uniform(size=16)
    graph = greedy.knn_graph(vectors, 3)
    assert graph.getnnz(axis=1).max() <= 4 and np.allclose(graph.diagonal(), 1.0)
    lazy = greedy.sparse_facility_location(graph, quality, 6, 0.3)
    brute: list[int] = []
    for _ in range(6):
        gains = [
            greedy.facility_objective(vectors, quality, [*brute, c], 0.3, graph=graph) if c not in brute else -1
            for c in range(16)
        ]
        brute.append(int(np.argmax(gains)))
    assert list(lazy) == brute
    full = greedy.knn_graph(vectors, 15)
    dense = greedy.facility_location(vectors, quality, 6, 0.3)
    assert list(greedy.sparse_facility_location(full, quality, 6, 0.3)) == list(dense)


def test_k_center_takes_the_farthest_point_each_time():
    angles = np.array([0.0, 0.1, np.pi / 2, np.pi, 0.2])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    assert list(greedy.farthest_first(vectors, 3, first=0)) == [0, 3, 2]


def test_deita_filter_skips_near_copies_of_what_it_kept():
    vectors = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.6, 0.8]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    kept = greedy.redundancy_filter(vectors, np.arange(4), 3, threshold=0.9, block=2)
    assert list(kept) == [0, 2, 3]  # 1 is a near copy of 0 (cosine 0.99)


def test_kmq_never_samples_zero_quality_while_others_remain():
    from core.select.pool import Pool
    from core.select.strategies import KMQStrategy

    scores = pd.DataFrame({"combined": [0.0, 0.0, 0.5, 0.9, 0.0, 0.7]})
    pool = Pool(np.arange(6), [str(i) for i in range(6)], np.array([0, 0, 0, 1, 1, 1]), {}, scores=scores)
    for seed in range(10):
        picks = KMQStrategy().select(pool, 4, rng=np.random.default_rng(seed))
        # quotas 2 + 2: cluster 0 has one example with quality, so it adds one zero-quality example
        assert len(picks) == 4 and {2, 3, 5} <= set(picks)


def test_saved_selection_reproduces_compares_and_exports_in_pick_order(scored, tmp_path):
    from core.export import build_export

    store, dataset = scored
    first = run_selection(store, dataset, build_strategy("kmq", {"allocation": "equal"}), 6, seed=1)
    first_id = save_selection(store, dataset, first, "kmq six")
    second_id = save_selection(store, dataset, run_selection(store, dataset, build_strategy("random"), 6, seed=2))
    record = selections.get(store, first_id)
    assert record["params"]["allocation"] == "equal" and record["seed"] == 1 and record["pool_hash"] == first.pool_hash
    assert "ifd" in record["score_keys"] and record["size"] == 6
    again = run_selection(store, dataset, build_strategy(record["strategy"], record["params"]), 6, seed=record["seed"])
    assert again.example_ids == list(selections.items(store, first_id).example_id)

    report = compare(store, dataset, first_id, second_id)
    assert report["shared"] + report["only_first"] == 6
    assert report["per_cluster"][f"#{first_id}"].sum() == 6

    bundle = build_export(store, dataset, selection_id=first_id)
    rows = [json.loads(line) for line in bundle.jsonl.decode().splitlines()]
    assert bundle.manifest["selection"]["strategy"] == "kmq" and bundle.manifest["example_ids"] == first.example_ids
    texts = curation.all_rows(store, dataset.dataset_id, dataset.active_k).set_index("example_id").original
    assert rows == [json.loads(texts[i]) for i in first.example_ids]


def test_missing_scores_name_the_scorer_to_run(workspace):
    from core.errors import MissingScores

    store = Store(workspace)
    with pytest.raises(MissingScores, match="'ifd' scorer"):
        run_selection(store, ds.get_dataset(store), build_strategy("ifd_topk"), 5)


def test_cli_select_selections_and_export_a_selection(scored, tmp_path, capsys):
    from core.cli import main

    store, _ = scored
    ws = str(store.workspace)
    args = ["select", "--strategy", "kmq", "--budget", "0.25", "--seed", "0", "--workspace", ws]
    assert main([*args, "--param", "within=uniform"]) == 0
    assert "selection 1: 6 of 24 kept examples with kmq" in capsys.readouterr().out
    assert main(["select", "--strategy", "kmq", "--budget", "5", "--param", "within=nope", "--workspace", ws]) == 1
    assert "within must be one of weighted, softmax, uniform" in capsys.readouterr().err
    assert main(["select", "--strategy", "kmq", "--budget", "5", "--param", "depth=3", "--workspace", ws]) == 1
    assert "has no parameter(s) ['depth']" in capsys.readouterr().err
    assert main(["selections", "--json", "--workspace", ws]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(s["selection_id"], s["strategy"], s["size"]) for s in listing] == [(1, "kmq", 6)]
    out = tmp_path / "sel.jsonl"
    assert main(["export", "--selection", "1", "--out", str(out), "--workspace", ws]) == 0
    assert len(out.read_text().splitlines()) == 6
    manifest = json.loads(out.with_name("sel.manifest.json").read_text())
    assert manifest["selection"]["params"]["within"] == "uniform"


# --- balanced random ------------------------------------------------------------------------------


def _within_one_of_proportional(groups: np.ndarray, picks: np.ndarray, budget: int) -> None:
    """Every stratum's count is within one example of its proportional share of the budget."""
    values, sizes = np.unique(groups, return_counts=True)
    counts = np.array([np.sum(groups[picks] == value) for value in values])
    assert counts.sum() == min(budget, len(groups))
    assert np.all(np.abs(counts - sizes / len(groups) * budget) < 1), (values, sizes, counts)


def test_balanced_random_gives_every_stratum_its_proportional_share_of_a_hand_built_pool():
    from core.select.pool import Pool

    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(5, 80))
        strata = rng.choice(
            np.array(["alpaca", "dolly", "oasst", "flan"], dtype=object), size=n, p=[0.5, 0.3, 0.15, 0.05]
        )
        clusters = rng.integers(0, 5, size=n)
        pool = Pool(np.arange(n), [str(i) for i in range(n)], clusters, {}, strata=strata)
        budget = int(rng.integers(1, n + 1))
        for by, groups in (("source", strata), ("cluster", clusters)):
            picks = build_strategy("balanced_random", {"by": by}).select(pool, budget, rng=rng)
            assert len(set(picks)) == len(picks)
            _within_one_of_proportional(groups, picks, budget)


def test_balanced_random_by_cluster_keeps_the_cluster_shares_of_the_kept_pool(scored):
    store, dataset = scored
    k = dataset.active_k
    kept = curation.kept_rows(store, dataset.dataset_id, k)
    for budget in (3, 7, 10, 17):
        result = run_selection(store, dataset, build_strategy("balanced_random"), budget, seed=budget)
        picks = np.flatnonzero(np.isin(kept.row_idx.to_numpy(), result.row_idx))
        _within_one_of_proportional(kept.cluster_id.to_numpy(), picks, budget)


def test_balanced_random_by_source_keeps_the_source_shares_and_the_contract(sourced_workspace):
    from core.select.loading import column_strata

    store = Store(sourced_workspace)
    dataset = ds.get_dataset(store, "sourced")
    k = dataset.active_k
    strategy = build_strategy("balanced_random", {"by": "source"})
    sources = column_strata(store, dataset, "source")
    assert sorted(set(sources)) == ["(none)", "books", "web"]
    for budget in (5, 10, 13):
        result = run_selection(store, dataset, strategy, budget, seed=0)
        _within_one_of_proportional(sources, np.array(result.row_idx), budget)

    curation.set_cluster_veto(store, dataset.dataset_id, k, 0, True)
    vetoed = curation.examples(store, dataset.dataset_id, k, cluster_id=1, limit=1)[0].example_id.iloc[0]
    curation.set_example_veto(store, dataset.dataset_id, vetoed, True)
    excluded = set(curation.examples(store, dataset.dataset_id, k, cluster_id=0, limit=100)[0].example_id) | {vetoed}
    first = run_selection(store, dataset, strategy, 8, seed=3)
    assert len(first.example_ids) == len(set(first.example_ids)) == 8 and not excluded & set(first.example_ids)
    assert run_selection(store, dataset, strategy, 8, seed=3).example_ids == first.example_ids
    assert run_selection(store, dataset, strategy, 8, seed=4).example_ids != first.example_ids
    kept = curation.kept_rows(store, dataset.dataset_id, k).row_idx.to_numpy()
    _within_one_of_proportional(sources[kept], np.flatnonzero(np.isin(kept, first.row_idx)), 8)


def test_balanced_random_by_an_unknown_column_names_it_and_the_columns_there_are(sourced_workspace):
    store = Store(sourced_workspace)
    dataset = ds.get_dataset(store, "sourced")
    with pytest.raises(ValueError, match="column 'origin'") as caught:
        run_selection(store, dataset, build_strategy("balanced_random", {"by": "origin"}), 5)
    assert "its columns: input, instruction, output, source" in str(caught.value)
