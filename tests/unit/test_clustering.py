"""k grid, k sweep diagnostics (silhouette, knee), seeded k-means and c-TF-IDF cluster labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from core.cluster import clustering
from core.cluster.labels import cluster_terms, term_counts

GRID = [4, 6, 8, 10, 12, 14]


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    """300 unit-norm points around 10 well separated centres."""
    points, _ = make_blobs(n_samples=300, centers=10, n_features=16, cluster_std=0.5, random_state=0)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def sweep(blobs: np.ndarray) -> tuple[list[clustering.SweepPoint], dict[int, np.ndarray]]:
    return clustering.sweep_k(blobs, GRID, seed=0)


@pytest.mark.parametrize("n_rows", [3, 4, 5, 9, 10, 17, 50, 100, 1_000, 10_000])
def test_default_k_grid_is_valid_for_small_and_large_n(n_rows: int) -> None:
    grid = clustering.default_k_grid(n_rows)

    assert grid
    assert all(2 <= k < n_rows for k in grid)
    assert grid == sorted(set(grid))


def test_default_k_grid_values() -> None:
    assert clustering.default_k_grid(3) == [2]
    assert clustering.default_k_grid(5) == [4]
    assert clustering.default_k_grid(10) == [4, 6, 8]
    assert clustering.default_k_grid(100) == [4, 6, 8, 10]
    assert max(clustering.default_k_grid(2_240)) == 38
    assert clustering.default_k_grid(1) == [1]
    assert max(clustering.default_k_grid(10_000_000)) <= 512


def test_sweep_finds_the_ten_blobs(sweep: tuple[list[clustering.SweepPoint], dict[int, np.ndarray]]) -> None:
    points, labels_by_k = sweep

    assert [p.k for p in points] == GRID
    assert sorted(labels_by_k) == GRID
    assert clustering.best_silhouette_k(points) == 10
    assert clustering.knee_k(points) == 10
    ten = next(p for p in points if p.k == 10)
    assert (ten.min_size, ten.max_size, ten.median_size) == (30, 30, 30.0)
    assert ten.silhouette > 0.95
    inertias = [p.inertia for p in points]
    assert inertias == sorted(inertias, reverse=True)


def test_silhouette_is_exact_for_small_n(blobs: np.ndarray, sweep) -> None:
    points, labels_by_k = sweep

    score, used = clustering.silhouette(blobs, labels_by_k[10], sample=10_000, seed=0)

    assert used == len(blobs) == 300
    assert score == pytest.approx(silhouette_score(blobs, labels_by_k[10], metric="cosine"), abs=1e-6)
    assert all(p.silhouette_sample == 300 for p in points)


def test_silhouette_is_sampled_above_the_threshold(blobs: np.ndarray) -> None:
    points, _ = clustering.sweep_k(blobs, [8, 10, 12], seed=0, silhouette_sample=120)

    assert [p.silhouette_sample for p in points] == [120, 120, 120]
    assert clustering.best_silhouette_k(points) == 10
    again, _ = clustering.sweep_k(blobs, [8, 10, 12], seed=0, silhouette_sample=120)
    assert [p.silhouette for p in again] == [p.silhouette for p in points]


def test_silhouette_of_a_single_cluster_is_undefined(blobs: np.ndarray) -> None:
    score, used = clustering.silhouette(blobs, np.zeros(len(blobs), dtype=np.int32), sample=1_000, seed=0)

    assert np.isnan(score)
    assert used == 0


def test_same_seed_gives_the_same_labels(blobs: np.ndarray) -> None:
    first = clustering.KMeansClusterer(k=7, seed=3).fit(blobs)
    second = clustering.KMeansClusterer(k=7, seed=3).fit(blobs)

    assert np.array_equal(first.labels, second.labels)
    assert first.inertia == second.inertia
    assert first.labels.shape == (300,)
    assert set(first.labels.tolist()) == set(range(7))


def test_k_larger_than_the_rows_is_refused(blobs: np.ndarray) -> None:
    with pytest.raises(ValueError, match="k must be between 1 and the number of rows"):
        clustering.KMeansClusterer(k=5).fit(blobs[:4])


def test_best_k_prefers_the_smaller_k_on_ties() -> None:
    def point(k: int, score: float) -> clustering.SweepPoint:
        return clustering.SweepPoint(k, 1.0, score, 10, 1, 1.0, 1, 0)

    assert clustering.best_silhouette_k([point(4, 0.5), point(6, 0.9), point(8, 0.9)]) == 6
    assert clustering.best_silhouette_k([point(2, float("nan")), point(3, 0.1)]) == 3
    assert clustering.knee_k([point(4, 0.5), point(6, 0.9)]) is None


TOY_TEXTS = [
    "bake the bread in the oven",
    "knead the bread dough",
    "bread dough needs yeast",
    "oven temperature for bread",
    "write a python function",
    "python list comprehension",
    "debug the python function",
    "sort a python list",
    "the weather is nice",
]


def test_cluster_terms_are_the_distinctive_words() -> None:
    counts, vocabulary = term_counts(TOY_TEXTS)

    result = cluster_terms(counts, vocabulary, np.array([0, 0, 0, 0, 1, 1, 1, 1, 2]), 3)

    assert [r["size"] for r in result] == [4, 4, 1]
    assert result[0]["terms"] == ["bread", "bread dough", "dough", "oven"]
    assert result[0]["label"] == "bread · dough · oven"
    assert result[1]["terms"][0] == "python"
    assert result[1]["label"] == "python · function · list"
    assert (result[2]["terms"], result[2]["label"]) == ([], "cluster 2")


def test_an_edits_labels_read_from_every_text_are_the_sweeps_labels() -> None:
    from core.cluster.labels import labels_for_clusters

    found = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    counts, vocabulary = term_counts(TOY_TEXTS)
    swept = cluster_terms(counts, vocabulary, found, 3)

    def texts(rows: np.ndarray) -> list[str]:
        return [TOY_TEXTS[i] for i in rows]

    edited = labels_for_clusters(texts, found, [0, 1, 2], per_cluster=100, background=100)
    assert [(e["label"], e["terms"], e["size"]) for e in edited] == [(s["label"], s["terms"], s["size"]) for s in swept]
    # ids with a gap (a merge emptied cluster 1): the empty cluster weighs no term's rarity
    gapped = np.where(found == 1, 3, found)
    (moved,) = labels_for_clusters(texts, gapped, [3], per_cluster=100, background=100)
    assert (moved["label"], moved["size"]) == (swept[1]["label"], 4)


# Two rows per cluster; each cluster holds one kind of junk beside, at most, one real word.
JUNK_TEXTS = [
    "### Instruction: fix this code ### Input: x = 1 ### Response: x == 1",
    "### Instruction: fix the code ### Input: y = 2 ### Response: y == 2",
    "Below is an instruction. ### Instruction: rename x_1 ### Output: x_1 __ _",
    "Below is an instruction. ### Instruction: rename x_1 ### Output: x_1 x_1",
    "hash e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "hash e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 again",
    "token aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ= and aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=",
    "token aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ= or aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=",
    "1 2 3 4 5 6 7 8 9 10 11 12 ... !!! ??? ;;; ### __ _",
    "1 2 3 4 5 6 7 8 9 10 11 12 ... !!! ??? ;;; ### __ _",
    "x1 x2 x3 i j k n i j k n",
    "x1 x2 x3 i j k n i j k n",
    "sort with python3 and sha256",
    "sort with python3 and sha256",
]


def test_cluster_labels_leave_out_junk_tokens_and_are_never_empty() -> None:
    counts, vocabulary = term_counts(JUNK_TEXTS)

    result = cluster_terms(counts, vocabulary, np.repeat(np.arange(7), 2), 7)

    assert [r["label"] for r in result] == [
        "code · fix",  # not "input", "response" or "instruction": every prompt template has them
        "rename",  # not x_1, __ or _
        "hash",  # not the hash itself
        "token",  # not the base64
        "cluster 4",  # numbers and punctuation only: no term at all
        "cluster 5",  # variables only
        "python3 · sha256 · sort",  # short names with digits are words
    ]
    for r in result:
        assert r["label"].strip()
        for term in r["terms"]:
            assert not set(term.split()) & {"instruction", "input", "output", "response", "x_1", "x1", "__"}
            assert len(term) <= 30


def test_cluster_terms_of_stop_words_only_fall_back_to_numbers() -> None:
    counts, vocabulary = term_counts(["the and of", "it is the"])

    result = cluster_terms(counts, vocabulary, np.array([0, 1]), 2)

    assert [r["label"] for r in result] == ["cluster 0", "cluster 1"]
