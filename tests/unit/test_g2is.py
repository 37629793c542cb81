"""G2IS and LESS on arrays: the gradient graph, core knowledge, the gradient walk's rules (C1, C2, the
first feasible neighbour, fallback, stopping, refill), LESS and the embedding-kNN baseline.

Hand-made 2-D "gradients" are unit vectors given by their angle in degrees; a component k at 0 degrees
ranks samples by cos(angle).
"""

from __future__ import annotations

import numpy as np
import pytest

from core.gradients.graph import cluster_alignment, edges, example_alignment, target_alignment, top_neighbours
from core.select import walk as walk_module
from core.select.allocation import largest_remainder
from core.select.walk import (
    core_knowledge,
    embedding_knn_select,
    gradient_walk,
    less_scores,
    less_select,
    walk_without_graph,
)


def at(*degrees: float) -> np.ndarray:
    """Unit 2-D rows at the given angles (float32, like stored features)."""
    radians = np.deg2rad(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    rows = rng.standard_normal((n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def c2_holds(features: np.ndarray, subset: list[int], candidate: int, direction: np.ndarray, delta: float) -> bool:
    """|cos(sigma + h, k)| >= delta * |cos(sigma, k)| in float64, from scratch."""
    sigma = features[subset].astype(np.float64).sum(axis=0)
    old = abs(sigma @ direction) / np.linalg.norm(sigma)
    new = sigma + features[candidate]
    return abs(new @ direction) / np.linalg.norm(new) >= delta * old


def c1_holds(features: np.ndarray, subset: list[int], candidate: int) -> bool:
    return bool((features[subset] @ features[candidate] >= 0).all())


# ---------------------------------------------------------------- the walk's rules on hand-made gradients


def test_walk_takes_the_first_feasible_neighbour():
    # The lists are given, not computed: in 2-D a C1 violator near s* and a C2 violator farther away
    # rarely coexist in similarity order (a random search over 200k small cases found none), and the
    # walk trusts the order it is given anyway (docs/algorithms.md 4.9.3).
    a, b, n1, n2, n3 = range(5)
    features = at(0, 60, 260, 88, 20)
    k = at(0)
    neighbours = np.array([[b, n3, n2, n1], [n1, n2, n3, a], [a, b, n2, n3], [b, a, n3, n1], [a, b, n2, n1]])
    subset = [a, b]
    assert not c1_holds(features, subset, n1) and c2_holds(features, subset, n1, k[0], 0.8)  # C1 only
    assert c1_holds(features, subset, n2) and not c2_holds(features, subset, n2, k[0], 0.8)  # C2 only
    assert c1_holds(features, subset, n3) and c2_holds(features, subset, n3, k[0], 0.8)

    result = gradient_walk(features, neighbours, k, np.ones(1), 3)

    assert result.picks.tolist() == [a, b, n3]
    assert result.via.tolist() == ["anchor", "neighbour", "neighbour"]
    assert result.shortfall == 0 and result.stop_reasons == ("filled",)


def test_walk_stops_a_component_when_nothing_is_feasible():
    features = at(0, 135, 180)  # both others conflict with the anchor
    neighbours = np.array([[1, 2], [2, 0], [1, 0]])

    result = gradient_walk(features, neighbours, at(0), np.ones(1), 3)

    assert result.picks.tolist() == [0]
    assert result.shortfall == 2
    assert result.stop_reasons == ("no feasible sample",)


def test_fallback_pick_becomes_the_walking_point():
    a, b, c, d = range(4)
    features = at(0, 100, 30, 45)
    neighbours = np.array([[b], [a], [d], [c]])  # a's only neighbour conflicts with a; c's leads to d

    result = gradient_walk(features, neighbours, at(0), np.ones(1), 3)

    # c comes from the fallback (next in cosine with k); d is then reached as c's neighbour, so the walk
    # went on from c (from a it would have needed the fallback again)
    assert result.picks.tolist() == [a, c, d]
    assert result.via.tolist() == ["anchor", "fallback", "neighbour"]


def two_component_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Component 0 (0 degrees) stops after its anchor; component 1 (90 degrees) can take three."""
    features = at(0, 180, 90, 80, 110)  # A, Y, P, Q, R
    neighbours = np.array([[3, 2], [4, 2], [3, 4], [2, 4], [2, 3]])
    return features, neighbours, np.vstack([at(0), at(90)])


def test_refill_policies():
    features, neighbours, components = two_component_case()
    weights = np.array([0.5, 0.5])

    plain = gradient_walk(features, neighbours, components, weights, 4)
    assert plain.picks.tolist() == [0, 2, 3] and plain.shortfall == 1
    assert plain.stop_reasons == ("no feasible sample", "filled")
    assert plain.budgets.tolist() == [2, 2]

    carried = gradient_walk(features, neighbours, components, weights, 4, refill="next_component")
    assert carried.picks.tolist() == [0, 2, 3, 4] and carried.shortfall == 0
    assert carried.component.tolist() == [0, 1, 1, 1]

    refilled = gradient_walk(features, neighbours, components, weights, 4, refill="less_topk", target_features=at(90))
    assert refilled.picks.tolist() == [0, 2, 3, 4]
    assert refilled.via.tolist()[-1] == "refill" and refilled.component.tolist()[-1] == -1
    with pytest.raises(ValueError, match="target_features"):
        gradient_walk(features, neighbours, components, weights, 4, refill="less_topk")


def test_budget_split_sums_exactly():
    rng = np.random.default_rng(0)
    for _ in range(50):
        weights = rng.dirichlet(np.ones(rng.integers(1, 8)))
        budget = int(rng.integers(0, 500))
        assert largest_remainder(weights, budget).sum() == budget
    features, neighbours, components = two_component_case()
    result = gradient_walk(features, neighbours, components, np.array([0.7, 0.3]), 5)
    assert result.budgets.tolist() == [4, 1] and result.budgets.sum() == 5


def reference_walk(features, neighbours, components, weights, budget, delta):
    """The walk of docs/algorithms.md 4.5 written naively, for comparison."""
    selected: set[int] = set()
    picks, vias = [], []
    for direction, share in zip(components, largest_remainder(weights, budget), strict=True):
        if share == 0:
            continue
        order = np.argsort(-(features @ direction), kind="stable")
        free = [int(i) for i in order if i not in selected]
        if not free:
            break
        subset, via = [free[0]], ["anchor"]
        selected.add(free[0])
        while len(subset) < share:

            def feasible(z, subset=subset, direction=direction):
                return c1_holds(features, subset, z) and c2_holds(features, subset, z, direction, delta)

            local = [int(z) for z in neighbours[subset[-1]] if z >= 0 and z not in selected]
            pick, how = next((z for z in local if feasible(z)), None), "neighbour"
            if pick is None:
                pick, how = next((int(z) for z in order if z not in selected and feasible(z)), None), "fallback"
            if pick is None:
                break
            subset.append(pick)
            via.append(how)
            selected.add(pick)
        picks += subset
        vias += via
    return picks, vias


@pytest.mark.parametrize("first_block", [512, 1], ids=["default-scan", "one-row-scan-blocks"])
def test_walk_matches_a_naive_reference_and_keeps_c1_c2(monkeypatch, first_block):
    monkeypatch.setattr(walk_module, "_FIRST_BLOCK", first_block)  # tiny blocks exercise the folded C1 cache
    rng = np.random.default_rng(3)
    features = np.abs(unit_rows(rng, 1500, 8)) + 0.3 * unit_rows(rng, 1500, 8)  # mostly non-conflicting
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    neighbours, _ = top_neighbours(features, 3)  # short lists and a strict delta make fallbacks and a stop
    components, weights = core_knowledge(unit_rows(rng, 12, 8), ratio=0.9)

    result = gradient_walk(features, neighbours, components, weights, 120, delta=0.95)

    picks, vias = reference_walk(features, neighbours, components, weights, 120, 0.95)
    assert result.picks.tolist() == picks and result.via.tolist() == vias
    assert {"anchor", "neighbour", "fallback"} <= set(vias) and "no feasible sample" in result.stop_reasons
    assert result.shortfall == 120 - len(picks) > 0
    for c, direction in enumerate(components):
        subset = result.picks[result.component == c].tolist()
        for step in range(1, len(subset)):
            assert c1_holds(features, subset[:step], subset[step])
            assert c2_holds(features, subset[:step], subset[step], direction, 0.95)


# ---------------------------------------------------------------- core knowledge


def test_orientation_fixes_an_anti_aligned_component():
    target = at(0, 0, 0, 60)  # one principal axis; scikit-learn's sign points away from the mean
    raw, _ = core_knowledge(target, orient=False)
    fixed, weights = core_knowledge(target, orient=True)
    mean = target.mean(axis=0)
    assert raw @ mean < 0  # the premise: PCA's sign is against the targets
    assert (fixed @ mean >= 0).all() and weights.tolist() == [1.0]

    pool = at(120, -60, 0, 180)
    neighbours, _ = top_neighbours(pool, 3)
    unoriented = gradient_walk(pool, neighbours, raw, np.ones(1), 1).picks
    oriented = gradient_walk(pool, neighbours, fixed, np.ones(1), 1).picks
    assert unoriented.tolist() == [0] and oriented.tolist() == [1]  # 120 degrees is opposite to the targets


def test_variance_mode_keeps_the_fewest_components_over_the_ratio():
    # rows +-s * e_i: centred, with variances proportional to 32, 8, 2, 0.5 (ratios .753, .188, .047, .012)
    scales = [4.0, 2.0, 1.0, 0.5]
    target = np.vstack([sign * scale * np.eye(4)[i] for i, scale in enumerate(scales) for sign in (1, -1)])
    counts = {ratio: len(core_knowledge(target, ratio=ratio)[0]) for ratio in (0.5, 0.9, 0.95, 0.99)}
    assert counts == {0.5: 1, 0.9: 2, 0.95: 3, 0.99: 4}
    components, weights = core_knowledge(target, ratio=0.9)
    np.testing.assert_allclose(weights, [0.8, 0.2])
    np.testing.assert_allclose(np.abs(components), np.eye(4)[:2], atol=1e-6)
    assert len(core_knowledge(target, ratio=0.5, mode="count")[0]) == 2  # floor(D * ratio), D = 4
    assert len(core_knowledge(target, ratio=3.0, mode="count")[0]) == 4  # capped at min(n_val, D)


def test_core_knowledge_edge_cases():
    single = at(30)
    components, weights = core_knowledge(single)
    np.testing.assert_allclose(components, single, atol=1e-6)
    assert weights.tolist() == [1.0]
    uncentred, _ = core_knowledge(at(0, 0, 0, 60), center=False)
    mean = at(0, 0, 0, 60).mean(axis=0)
    assert uncentred[0] @ mean / np.linalg.norm(mean) > 0.99  # without centring the mean direction stays
    with pytest.raises(ValueError, match="ratio"):
        core_knowledge(single, ratio=1.5)


def test_walk_without_graph_ranks_by_component():
    features, _, components = two_component_case()
    result = walk_without_graph(features, components, np.array([0.5, 0.5]), 4)
    assert result.picks.tolist() == [0, 3, 2, 4]  # 0 deg: A, Q; 90 deg: P, then R (Q is taken)
    assert result.component.tolist() == [0, 0, 1, 1] and result.shortfall == 0


# ---------------------------------------------------------------- the graph


def brute_force_neighbours(features: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    similarities = features.astype(np.float32) @ features.astype(np.float32).T
    np.fill_diagonal(similarities, -np.inf)
    order = np.argsort(-similarities, axis=1, kind="stable")[:, :m]
    return order, np.take_along_axis(similarities, order, axis=1)


def test_exact_neighbours_equal_brute_force():
    features = unit_rows(np.random.default_rng(1), 300, 16)
    indices, similarities = top_neighbours(features, 12, chunk=64)
    expected_indices, expected_similarities = brute_force_neighbours(features, 12)
    assert indices.shape == (300, 12) and indices.dtype == np.int32
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(similarities, expected_similarities, atol=1e-6)
    assert (np.diff(similarities, axis=1) <= 0).all()
    assert not (indices == np.arange(300)[:, None]).any()
    reported: list[int] = []
    small_chunks, _ = top_neighbours(features, 12, chunk=7, progress=reported.append)  # chunks narrower than m
    np.testing.assert_array_equal(small_chunks, expected_indices)
    assert sum(reported) == 300
    half, _ = top_neighbours(features.astype(np.float16), 12, chunk=64)
    assert (half == indices).mean() > 0.95  # float16 input is computed in float32


def test_neighbour_ties_small_pools_and_edges():
    features = at(0, 10, 10, 10, 50)  # rows 1-3 are identical: ties go to the lower index
    indices, similarities = top_neighbours(features, 2)
    assert indices[0].tolist() == [1, 2] and indices[4].tolist() == [1, 2]
    assert indices[2].tolist() == [1, 3]
    assert top_neighbours(features, 10)[0].shape == (5, 4)  # m clipped to n - 1
    assert top_neighbours(features[:1], 3)[0].shape == (1, 0)
    table = edges(indices, similarities)
    assert list(table.columns) == ["src", "rank", "dst", "weight"] and len(table) == 10
    assert table.iloc[1].tolist() == [0, 1, 2, pytest.approx(np.cos(np.deg2rad(10)), abs=1e-6)]


def test_approximate_neighbours_recall():
    features = unit_rows(np.random.default_rng(2), 2000, 32)
    exact, _ = top_neighbours(features, 10)
    approximate, similarities = top_neighbours(features, 10, exact_limit=100)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approximate, strict=True)])
    assert recall >= 0.9
    assert not (approximate == np.arange(2000)[:, None]).any()
    assert (np.diff(similarities, axis=1) <= 0).all()


# ---------------------------------------------------------------- alignment, LESS and kNN


def test_cluster_and_target_alignment_equal_brute_force():
    rng = np.random.default_rng(4)
    features = unit_rows(rng, 40, 8)
    cluster_ids = rng.choice([0, 1, 2, 5], size=40)
    target = unit_rows(rng, 6, 8)
    cosines = features.astype(np.float64) @ features.T
    clusters, matrix = cluster_alignment(features, cluster_ids)
    assert clusters.tolist() == [0, 1, 2, 5]
    for i, a in enumerate(clusters):
        for j, b in enumerate(clusters):
            block = cosines[np.ix_(cluster_ids == a, cluster_ids == b)]
            assert matrix[i, j] == pytest.approx(block.mean(), abs=1e-6)  # diagonal: self pairs included
    _, without_self = cluster_alignment(features, cluster_ids, self_pairs=False)
    members = cluster_ids == 1
    block = cosines[np.ix_(members, members)]
    expected = (block.sum() - np.trace(block)) / (members.sum() * (members.sum() - 1))
    assert without_self[1, 1] == pytest.approx(expected, abs=1e-6)
    _, values = target_alignment(features, cluster_ids, target)
    per_example = features.astype(np.float64) @ target.T
    for value, a in zip(values, clusters, strict=True):
        assert value == pytest.approx(per_example[cluster_ids == a].mean(), abs=1e-6)
    np.testing.assert_allclose(example_alignment(features, target), per_example.mean(axis=1), atol=1e-6)


def test_less_takes_the_max_over_target_tasks():
    pool = at(10, 80, 45, 45, 200)
    target = at(0, 20, 90)  # task 0 around 10 degrees, task 1 at 90 degrees
    groups = np.array([0, 0, 1])
    scores = less_scores(pool, target, groups)
    per_task = np.stack([pool @ target[:2].mean(axis=0), pool @ target[2]], axis=1)
    np.testing.assert_allclose(scores, per_task.max(axis=1), atol=1e-6)
    assert less_select(pool, target, 3, groups).tolist() == [0, 1, 2]
    assert less_select(pool, target, 3).tolist() == [2, 3, 0]  # one task: the mean points at ~37 degrees
    assert less_select(pool, target, 10, groups).tolist() == [0, 1, 2, 3, 4]  # ties (rows 2, 3): lower first


def test_embedding_knn_takes_the_top_mean_cosine():
    rng = np.random.default_rng(5)
    embeddings = unit_rows(rng, 50, 6)
    target = unit_rows(rng, 4, 6)
    expected = np.argsort(-(embeddings @ target.T).mean(axis=1), kind="stable")[:7]
    assert embedding_knn_select(embeddings, target, 7).tolist() == expected.tolist()


def test_the_walk_follows_a_drifting_neighbour_chain_past_a_better_aligned_row():
    # Why G2IS picked fewer GSM8K rows than LESS on a GSM8K target (docs/algorithms.md 4.9.9): C2 compares
    # with the running sum, not the anchor, so each step may lose a little alignment and the walk goes where
    # the graph leads; the 2-degree row B is never reached, while the "w/o graph" ranking takes it second.
    anchor, c15, c30, c45, c60, b = range(6)
    features = at(0, 15, 30, 45, 60, 2)
    neighbours = np.array([[c15, b], [c30, b], [c45, b], [c60, b], [c45, b], [anchor, c15]])

    walked = gradient_walk(features, neighbours, at(0), np.ones(1), 5)
    ranked = walk_without_graph(features, at(0), np.ones(1), 5)

    assert walked.picks.tolist() == [anchor, c15, c30, c45, c60]
    assert walked.via.tolist() == ["anchor"] + ["neighbour"] * 4
    assert ranked.picks.tolist() == [anchor, b, c15, c30, c45]
