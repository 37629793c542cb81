"""Proposed vetoes: grounded in a defect share or in several low scores, never in one weak signal; with reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.score import proposals, quality

WEIGHTS = quality.DEFAULT_WEIGHTS


def frame(clusters: list[int], **columns: list[float]) -> tuple[pd.DataFrame, np.ndarray]:
    return pd.DataFrame(columns), np.array(clusters)


def test_a_cluster_mostly_flagged_is_proposed_with_its_share_against_the_dataset_and_its_flagged_rows_first():
    raw, clusters = frame(
        [0, 0, 0, 0, 1, 1, 1, 1, 2, 2],
        arithmetic_error=[1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        exact_duplicate=[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    (found,) = proposals.propose(raw, WEIGHTS, clusters)
    assert (found.cluster_id, found.size, found.ground, found.flagged_share) == (0, 4, "flags", 0.75)
    (reason,) = found.reasons
    assert (reason.signal, reason.kind, reason.value, reason.dataset) == ("arithmetic_error", "flag", 0.75, 0.3)
    assert found.examples[:3] == (0, 1, 2) and found.examples[3] == 3  # the flagged rows, then the others
    assert "75% of its 4 rows carry a defect flag" in found.summary() and "arithmetic_error" in found.summary()


def test_a_cluster_of_exact_duplicates_is_proposed():
    raw, clusters = frame([0, 0, 0, 1, 1, 1], exact_duplicate=[1, 1, 1, 0, 0, 0])
    (found,) = proposals.propose(raw, WEIGHTS, clusters)
    assert found.cluster_id == 0 and found.reasons[0].signal == "exact_duplicate"


def test_one_weak_flag_alone_proposes_nothing_two_together_do():
    raw, clusters = frame([0, 0, 1, 1], near_duplicate=[1, 1, 0, 0], length_outlier=[0, 0, 0, 0])
    assert proposals.propose(raw, WEIGHTS, clusters) == []
    raw["length_outlier"] = [1, 1, 0, 0]
    (found,) = proposals.propose(raw, WEIGHTS, clusters)
    assert {reason.signal for reason in found.reasons} == {"near_duplicate", "length_outlier"}


def test_a_penalty_of_zero_takes_a_flag_out_of_the_proposals():
    raw, clusters = frame([0, 0, 1, 1], arithmetic_error=[1, 1, 0, 0])
    assert proposals.propose(raw, {**WEIGHTS, "arithmetic_error": 0.0}, clusters) == []


def test_low_scores_propose_only_below_the_threshold_and_on_two_signals():
    clusters = np.repeat(np.arange(10), 6)
    low_first = np.arange(60, dtype=float)  # cluster 0 holds the lowest values
    raw = pd.DataFrame({"reward": low_first, "tfidf_diversity": low_first, "response_length": low_first})
    one_signal = {"reward": 1.0, "tfidf_diversity": 0.0}
    assert proposals.propose(raw, one_signal, clusters, threshold=0.5) == []  # low, but on one signal only
    two_signals = {"reward": 1.0, "tfidf_diversity": 1.0}
    (found,) = proposals.propose(raw, two_signals, clusters, threshold=0.5)
    assert found.cluster_id == 0 and found.ground == "scores"
    assert [reason.signal for reason in found.reasons] == ["reward", "tfidf_diversity"]
    assert found.reasons[0].value < proposals.SCORE_PERCENTILE and "percentile" in found.reasons[0].text()
    assert proposals.propose(raw, two_signals, clusters, threshold=0.05) == []  # above the curator's threshold
    raw.loc[1:3, "reward"] = np.nan  # one scored row left in cluster 0 (an LM run on a sample): no evidence
    assert proposals.propose(raw, two_signals, clusters, threshold=0.5) == []


def test_response_length_is_not_a_score_by_default_so_concise_clusters_are_not_proposed():
    clusters = np.repeat([0, 1, 2, 3], 5)
    raw = pd.DataFrame({"response_length": np.arange(20.0), "empty_response": np.zeros(20)})
    assert quality.DEFAULT_WEIGHTS["response_length"] == 0.0
    assert proposals.propose(raw, WEIGHTS, clusters, threshold=1.0) == []


def test_vetoed_or_dismissed_clusters_are_skipped():
    raw, clusters = frame([0, 0, 1, 1], empty_response=[1, 1, 1, 1])
    assert [p.cluster_id for p in proposals.propose(raw, WEIGHTS, clusters, skip={0})] == [1]
