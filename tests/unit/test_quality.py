"""Combined quality: normalisation to [0, 1] with 1 = good, weighted means, per-cluster shares below a threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.score import quality


def test_signals_are_mapped_to_zero_one_with_one_good():
    raw = pd.DataFrame(
        {
            "perplexity": [2.0, 10.0, 50.0, np.nan],
            "ifd": [0.2, 0.8, 1.3, 0.5],
            "empty_response": [0.0, 0.0, 1.0, 0.0],
        }
    )
    normalised = quality.normalise(raw)
    assert list(normalised.perplexity.iloc[:3]) == pytest.approx([1.0, 2 / 3, 1 / 3])  # lower perplexity is better
    assert np.isnan(normalised.perplexity.iloc[3])
    assert normalised.ifd.iloc[2] == 0.0  # IFD >= 1: the instruction does not help
    assert normalised.ifd.iloc[1] > normalised.ifd.iloc[3] > normalised.ifd.iloc[0]
    assert list(normalised.empty_response) == [1.0, 1.0, 0.0, 1.0]


def test_combined_is_the_weighted_mean_of_the_available_signals():
    normalised = pd.DataFrame({"a": [1.0, 0.0, np.nan], "b": [0.0, 0.0, 0.5]})
    result = quality.combined(normalised, {"a": 3.0, "b": 1.0})
    assert list(result) == pytest.approx([0.75, 0.0, 0.5])
    assert quality.combined(normalised, {"a": 0.0, "b": 0.0}).isna().all()


def test_a_raised_flag_multiplies_the_quality_by_one_minus_its_penalty():
    normalised = pd.DataFrame(  # normalised flags: 1 = clean, 0 = raised
        {
            "perplexity": [0.9, 0.9, 0.9, np.nan],
            "empty_response": [1.0, 0.0, 1.0, 0.0],
            "cut_off_response": [1, 1, 0, 1],
        }
    )
    weights = {"perplexity": 1.0, "empty_response": 1.0, "cut_off_response": 0.5}
    result = quality.combined(normalised, weights)
    # clean stays 0.9; empty (penalty 1) drops to 0 whatever the other scores; cut off halves it
    assert list(result.iloc[:3]) == pytest.approx([0.9, 0.0, 0.45])
    assert result.iloc[3] == pytest.approx(0.0)  # flags only: starts from 1, empty zeroes it
    assert quality.combined(normalised, {**weights, "empty_response": 0.0}).iloc[1] == pytest.approx(0.9)
    assert quality.combined(normalised, {**weights, "cut_off_response": 7.0}).iloc[2] == pytest.approx(0.0)


def test_perplexity_far_above_the_dataset_median_is_an_outlier():
    rng = np.random.default_rng(0)
    perplexity = pd.Series(np.exp(rng.normal(2.0, 0.5, 200)))
    perplexity[:3] = [400.0, 900.0, np.nan]
    flags = quality.perplexity_outliers(perplexity)
    assert list(flags[:2]) == [1.0, 1.0] and np.isnan(flags[2])
    assert flags[3:].sum() == 0  # ordinary spread is not flagged, whichever end of it
    assert quality.perplexity_outliers(pd.Series([5.0, 5.0, 5.0])).sum() == 0


def test_wrong_stated_arithmetic_is_counted_and_what_cannot_be_checked_is_left_alone():
    from core.score.arithmetic import arithmetic_errors

    wrong = ["899 plus 639 is 1531.", "252 divided by 14 is 13.", "She sold <<48/2=25>>25 clips", "1,200 + 300 = 1,400"]
    right = [
        "899 plus 639 is 1538.",
        "252 divided by 14 is 18.",
        "She sold 48/2 = <<48/2=24>>24 clips",
        "10 / 3 = 3.33",
    ]
    unclear = ["2 + 3 * 4 = 14", "3x-5=16", "8 x 1 1/2 = 12", "264/17 = 15 (Remainder)", "6:00+48=6:48", "7 // 2 = 3"]
    assert [arithmetic_errors(text) for text in wrong] == [1, 1, 1, 1]
    assert [arithmetic_errors(text) for text in right + unclear] == [0] * 10
    assert arithmetic_errors("5 - 2 = 3, then 3 + 4 = 8 and 2 * 2 = 5") == 2


def test_share_of_clusters_below_the_threshold_for_every_swept_k(workspace):
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    dataset = ds.get_dataset(store)
    row_quality = pd.Series(np.where(np.arange(dataset.n_rows) < 6, 0.1, 0.9))  # rows 0-5: one keyword topic
    table = quality.share_below_by_k(store, dataset, row_quality, threshold=0.3)
    assert list(table.k) == [2, 4, 6]
    at_4 = table[table.k == 4].iloc[0]
    assert (at_4.clusters, at_4.below, at_4.share_below) == (4, 1, 0.25)


def test_cli_score_then_scores_reports_quality_per_cluster_and_by_k(workspace, capsys):
    import json

    from core.cli import main

    assert main(["score", "--scorer", "heuristics", "--workspace", str(workspace)]) == 0
    assert "scored 24 examples with heuristics" in capsys.readouterr().out
    assert main(["score", "--scorer", "heuristics", "--workspace", str(workspace)]) == 0
    assert "nothing to compute" in capsys.readouterr().out
    assert main(["scores", "--json", "--workspace", str(workspace)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["threshold"] == 0.3
    assert all(0.0 <= cluster["quality_mean"] <= 1.0 for cluster in report["clusters"])
    assert [row["k"] for row in report["share_below_by_k"]] == [2, 4, 6]


def test_only_absurdly_long_responses_are_length_outliers():
    lengths = pd.Series([1.0, 3, 5, 8, 10, 12, 15, 20, 25, 30, 2000, np.nan])
    flags = quality.length_outliers(lengths)
    assert list(flags.iloc[:11]) == [0.0] * 10 + [1.0]  # a one-word answer is not flagged: short is not bad
    assert np.isnan(flags.iloc[11])
    assert quality.is_flag("length_outlier") and quality.is_flag("gibberish") and not quality.is_flag("reward")


def test_picks_from_clusters_below_the_threshold_are_counted():
    values = pd.Series([0.1, 0.2, 0.9, 0.8, 0.1, 0.9])
    clusters = np.array([0, 0, 1, 1, 2, 2])  # means 0.15, 0.85, 0.5
    assert quality.picks_below(values, clusters, [0, 1, 2, 4], threshold=0.3) == (2, 1)
    assert quality.picks_below(values, clusters, [0, 2, 4, 5], threshold=0.6) == (3, 2)
    assert quality.picks_below(values, clusters, [], threshold=0.6) == (0, 0)
