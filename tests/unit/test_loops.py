"""The model-free logic of iterative kMQ and IterIT (core/select/loops.py), on tiny arrays with exact asserts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.select import loops
from core.select.allocation import allocate
from core.select.pool import Pool
from core.select.strategies import IterITGreedyStrategy

# --- iterative kMQ --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "rounds", "expected"), [(10, 3, [4, 3, 3]), (9, 3, [3, 3, 3]), (2, 4, [1, 1, 0, 0])]
)
def test_round_budgets_sum_exactly_to_the_budget(budget, rounds, expected):
    assert loops.round_budgets(budget, rounds) == expected
    assert sum(loops.round_budgets(1001, 7)) == 1001


def test_weight_update_stays_positive_and_normalised_with_negative_scores_and_keeps_vetoes():
    weights = np.array([0.25, 0.25, 0.0, 0.5])  # cluster 2 vetoed by the curator
    scores = np.array([-3.0, -1.0, 5.0, -10.0])
    for rule in ("paper", "code"):
        updated = loops.update_weights(weights, scores, rule=rule)
        assert updated[2] == 0.0
        assert np.all(updated[[0, 1, 3]] > 0)
        assert updated.sum() == pytest.approx(1.0)
    # paper: w * exp(s), renormalised over the kept clusters
    expected = np.array([0.25 * np.exp(-3), 0.25 * np.exp(-1), 0.0, 0.5 * np.exp(-10)])
    np.testing.assert_allclose(loops.update_weights(weights, scores), expected / expected.sum())
    # extreme scores neither overflow nor turn a kept cluster into a vetoed one
    extreme = loops.update_weights(np.array([0.5, 0.5, 0.0]), np.array([1000.0, -1000.0, 0.0]))
    assert extreme[0] == pytest.approx(1.0) and extreme[1] > 0 and extreme[2] == 0


def test_weight_update_rules_nan_scores_and_shift_invariance():
    weights = np.array([0.2, 0.3, 0.5])
    updated = loops.update_weights(weights, np.array([1.0, np.nan, -1.0]))
    assert updated[1] == pytest.approx(0.3)  # no scored example: weight unchanged
    assert updated[0] / updated[2] == pytest.approx(0.2 * np.e / (0.5 / np.e))
    shifted = loops.update_weights(weights, np.array([1.0, np.nan, -1.0]) - 7.0)
    np.testing.assert_allclose(shifted, updated)
    # the code's fresh softmax ignores the previous weights (issue #10); the paper's update keeps them
    np.testing.assert_allclose(loops.update_weights(np.array([0.9, 0.1]), np.zeros(2), rule="code"), [0.5, 0.5])
    np.testing.assert_allclose(loops.update_weights(np.array([0.9, 0.1]), np.zeros(2)), [0.9, 0.1])
    np.testing.assert_allclose(loops.update_weights(weights, np.full(3, np.nan)), weights)
    np.testing.assert_allclose(
        loops.update_weights(np.full(2, 0.5), np.array([2.0, 0.0]), temperature=2.0),
        [np.e / (np.e + 1), 1 / (np.e + 1)],
    )


def test_cluster_scores_are_per_cluster_means_with_nan_for_unscored_clusters():
    scores = loops.cluster_scores(np.array([1.0, 3.0, -2.0, np.nan]), np.array([7, 7, 3, 5]), np.array([3, 5, 7, 9]))
    np.testing.assert_allclose(scores, [-2.0, np.nan, 2.0, np.nan])
    with pytest.raises(ValueError, match="cluster 4"):
        loops.cluster_scores(np.array([1.0]), np.array([4]), np.array([3, 5]))


def test_ppl_difference_sign_gold_better_is_positive():
    nll_gold, nll_generated = np.array([1.0, 3.0]), np.array([2.0, 1.0])
    np.testing.assert_allclose(loops.ppl_difference_scores(nll_gold, nll_generated), [1.0, -2.0])
    np.testing.assert_allclose(loops.ppl_difference_scores(nll_gold, nll_generated, convention="eq7"), [-1.0, 2.0])


def _planted_run(convention: str) -> list[np.ndarray]:
    """Two rounds of the loop on 3 clusters of 20; gold beats generation in cluster 0, loses in cluster 1."""
    cluster_ids = np.repeat([0, 1, 2], 20)
    clusters = np.array([0, 1, 2])
    nll_gold = np.choose(cluster_ids, [1.0, 3.0, 2.0]) + np.linspace(0, 0.1, 60)
    nll_generated = np.full(60, 2.0)
    curator = np.ones(3)
    weights = loops.initial_weights(curator)
    available = np.ones(60, dtype=bool)
    rng = np.random.default_rng(0)
    history = [weights]
    for round_budget in loops.round_budgets(18, 3)[:2]:
        remaining = loops.cluster_counts(cluster_ids, clusters, available)
        quotas = loops.next_round_quotas(np.full(3, 20), remaining, weights, round_budget, curator)
        available[loops.sample_round(rng, cluster_ids, available, quotas)] = False
        selected = np.flatnonzero(~available)
        scores = loops.ppl_difference_scores(nll_gold[selected], nll_generated[selected], convention=convention)
        weights = loops.update_weights(weights, loops.cluster_scores(scores, cluster_ids[selected], clusters))
        history.append(weights)
    return history


def test_a_cluster_whose_gold_beats_the_generation_gains_weight_over_two_rounds():
    w0, w1, w2 = _planted_run("gold_better")
    assert w0[0] < w1[0] < w2[0]
    assert w0[1] > w1[1] > w2[1]
    # the third round's 6 follow the learned weights (0.877, 0.015, 0.108 of 20 examples each)
    np.testing.assert_array_equal(loops.next_round_quotas(np.full(3, 20), np.full(3, 14), w2, 6, np.ones(3)), [5, 0, 1])
    w0, _, w2 = _planted_run("eq7")  # Eq. 7 as printed moves the other way
    assert w2[0] < w0[0] and w2[1] > w0[1]


def test_next_round_quotas_respect_remaining_capacity_vetoes_and_sum_to_the_round_budget():
    sizes = np.array([10, 10, 10, 5])
    remaining = np.array([2, 10, 10, 0])  # cluster 3 has nothing left
    weights = np.array([0.7, 0.1, 0.1, 0.1])
    curator = np.array([1.0, 1.0, 0.0, 1.0])  # cluster 2 vetoed
    quotas = loops.next_round_quotas(sizes, remaining, weights, 8, curator)
    np.testing.assert_array_equal(quotas, [2, 6, 0, 0])
    assert loops.next_round_quotas(sizes, remaining, weights, 20, curator).sum() == 12  # capacity 2 + 10
    # with uniform weights and nothing selected yet, round 1 is static kMQ's proportional allocation
    sizes = np.array([30, 12, 7, 51])
    uniform = loops.initial_weights(np.ones(4))
    np.testing.assert_array_equal(loops.next_round_quotas(sizes, sizes, uniform, 33, np.ones(4)), allocate(sizes, 33))
    np.testing.assert_array_equal(
        loops.next_round_quotas(sizes, sizes, uniform, 33, np.ones(4), allocation="equal"),
        allocate(sizes, 33, mode="equal"),
    )
    rng = np.random.default_rng(1)
    for _ in range(200):
        sizes = rng.integers(0, 15, size=6)
        remaining = rng.integers(0, sizes + 1)
        curator = rng.choice([0.0, 0.5, 1.0, 2.0], size=6)
        weights = loops.update_weights(loops.initial_weights(np.ones(6)), rng.normal(size=6) * 3)
        budget = int(rng.integers(0, 40))
        quotas = loops.next_round_quotas(sizes, remaining, weights, budget, curator)
        assert np.all(quotas <= remaining) and np.all(quotas[curator == 0] == 0)
        assert quotas.sum() == min(budget, remaining[curator > 0].sum())


def test_sample_round_never_returns_selected_or_unavailable_positions_and_is_seeded():
    cluster_ids = np.repeat([4, 8, 9], 10)
    available = np.ones(30, dtype=bool)
    available[[0, 1, 2, 11, 12, 25]] = False
    quality = np.linspace(0.1, 1.0, 30)
    quotas = np.array([7, 3, 9])  # cluster 4 and 9: everything that is left
    for within in ("weighted", "softmax", "uniform"):
        picks = loops.sample_round(np.random.default_rng(3), cluster_ids, available, quotas, quality, within)
        again = loops.sample_round(np.random.default_rng(3), cluster_ids, available, quotas, quality, within)
        np.testing.assert_array_equal(picks, again)
        assert len(set(picks)) == len(picks) == 19 and np.all(available[picks])
        np.testing.assert_array_equal(np.bincount(cluster_ids[picks], minlength=10)[[4, 8, 9]], quotas)
    unweighted = loops.sample_round(np.random.default_rng(3), cluster_ids, available, np.array([0, 3, 0]))
    assert np.all(available[unweighted]) and set(cluster_ids[unweighted]) == {8}
    zero_quality = np.where(np.arange(30) == 15, 1.0, 0.0)  # weighted: the one example with quality comes first
    pick = loops.sample_round(np.random.default_rng(0), cluster_ids, available, np.array([0, 1, 0]), zero_quality)
    np.testing.assert_array_equal(pick, [15])
    with pytest.raises(ValueError, match="left"):
        loops.sample_round(np.random.default_rng(0), cluster_ids, available, np.array([8, 0, 0]))


# --- IterIT ---------------------------------------------------------------------------------------


def _outputs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocabulary = [f"word{i}" for i in range(40)]
    return [" ".join(rng.choice(vocabulary, size=int(rng.integers(3, 12)))) for _ in range(n)]


def test_window_is_the_first_u_times_m_of_the_previous_ordering_and_only_it_is_rescored():
    order = np.random.default_rng(0).permutation(40)
    np.testing.assert_array_equal(loops.window(order, 4, 3), order[:12])
    np.testing.assert_array_equal(loops.window(order, 4, 1), order)  # u <= 1: rescore everything
    np.testing.assert_array_equal(loops.window(order, 20, 3), order)
    exclude = np.zeros(40, dtype=bool)
    exclude[order[[1, 3]]] = True
    np.testing.assert_array_equal(loops.window(order, 4, 3, exclude=exclude), order[[0, 2, *range(4, 14)]])
    old = np.linspace(0.1, 0.9, 40)
    positions = loops.window(order, 4, 3)
    merged = loops.merge_rescored(old, positions, np.full(12, 0.05))
    np.testing.assert_array_equal(np.flatnonzero(merged != old), np.sort(positions))
    assert np.all(old > 0.05)  # the input is not modified


def test_epoch_picks_equal_iterit_greedy_strategy_and_ordering_follows_the_code():
    n = 40
    outputs = _outputs(n)
    ifd = np.random.default_rng(1).uniform(0.2, 1.3, size=n)
    ifd[5] = np.nan
    pool = Pool(
        np.arange(n),
        [str(i) for i in range(n)],
        np.zeros(n, int),
        {},
        scores=pd.DataFrame({"ifd": ifd}),
        outputs=outputs,
    )
    for score in ("both", "ifd", "diversity"):
        picks, ordering = loops.epoch_selection(ifd, outputs, 6, 0.1, score=score)
        strategy = IterITGreedyStrategy(decay=0.1, score=score)
        np.testing.assert_array_equal(picks, strategy.select(pool, 6, rng=np.random.default_rng(0)))
        rejects = np.flatnonzero(ifd >= 1)
        rest = np.setdiff1d(np.flatnonzero(ifd < 1), picks)
        np.testing.assert_array_equal(ordering[:6], picks)
        np.testing.assert_array_equal(ordering[6 : 6 + len(rejects)], rejects)
        np.testing.assert_array_equal(ordering[6 + len(rejects) : -1], rest[np.argsort(-ifd[rest], kind="stable")])
        assert ordering[-1] == 5 and sorted(ordering) == list(range(n))


def test_epoch_greedy_skips_a_duplicate_response_once_its_ngrams_are_covered():
    outputs = ["alpha beta gamma", "alpha beta gamma", "delta epsilon", "zeta"]
    picks, ordering = loops.epoch_selection(np.array([0.5, 0.5, 0.5, 1.5]), outputs, 2, decay=0.0)
    np.testing.assert_array_equal(picks, [0, 2])
    np.testing.assert_array_equal(ordering, [0, 2, 3, 1])


def test_iterit_epochs_rescore_the_window_and_static_reuses_epoch_zero():
    n, per_epoch = 60, 5
    outputs = _outputs(n, seed=2)
    rng = np.random.default_rng(4)
    true_ifd = [rng.uniform(0.3, 1.2, size=n) for _ in range(3)]  # what a changing model would say
    iterative = static = None
    for epoch in range(3):
        positions = loops.positions_to_score(iterative, n, per_epoch, 3)
        assert len(positions) == (n if epoch == 0 else 15)
        before = iterative
        iterative = loops.next_epoch(iterative, positions, true_ifd[epoch][positions], outputs, per_epoch)
        assert sorted(iterative.order) == list(range(n)) and set(iterative.picks) <= set(positions)
        np.testing.assert_array_equal(iterative.order[: len(iterative.picks)], iterative.picks)
        if before is not None:
            np.testing.assert_array_equal(iterative.order[15:], before.order[15:])  # beyond the window: old order
            outside = np.setdiff1d(np.arange(n), positions)
            np.testing.assert_array_equal(iterative.ifd[outside], before.ifd[outside])  # and stale IFD
        static_positions = loops.positions_to_score(static, n, per_epoch, 3, static=True)
        assert len(static_positions) == (n if epoch == 0 else 0)
        static = loops.next_epoch(
            static, static_positions, true_ifd[epoch][static_positions], outputs, per_epoch, static=True
        )
        if epoch == 0:
            first = static
            np.testing.assert_array_equal(static.picks, iterative.picks)
        assert static is first


def test_a_run_never_draws_or_trains_on_empty_responses_and_an_all_empty_cluster_gets_no_quota():
    from core.runs.run import _answered_only
    from core.select.pool import Decisions

    # cluster 1 holds only empty responses; one row of cluster 0 is empty too
    pool = Pool(
        np.arange(6),
        [f"e{i}" for i in range(6)],
        np.array([0, 0, 0, 1, 1, 2]),
        {},
        empty=np.array([False, True, False, True, True, False]),
    )
    now = _answered_only(lambda: Decisions.fixed(pool), pool)
    assert now.eligible.tolist() == [True, False, True, False, False, True]
    assert now.summary["empty_responses_left_out"] == 3
    clusters = np.array([0, 1, 2])
    remaining = loops.cluster_counts(pool.cluster_ids, clusters, now.eligible)
    quotas = loops.next_round_quotas(np.array([3, 2, 1]), remaining, np.ones(3) / 3, 3, np.ones(3))
    assert quotas.tolist() == [2, 0, 1]  # the budget is still met, from the answered rows
