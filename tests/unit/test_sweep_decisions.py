"""A k sweep that knows when it cannot decide: identical rows, too few distinct points, a best k at the grid's edge."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from core.cli import main
from core.cluster import clustering
from core.prepare import PrepareOptions, prepare, sweep_notes
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, write_jsonl

HINT = "Sweep more k."


def _rows(counts: dict[str, int]) -> list[dict[str, str]]:
    """``count`` identical rows per keyword: the keyword embedder gives identical texts identical vectors."""
    row = {"input": "", "output": "An answer."}
    return [{"instruction": f"Tell me about {word}", **row} for word, count in counts.items() for _ in range(count)]


def _prepare(tmp_path: Path, counts: dict[str, int], grid: tuple[int, ...]) -> tuple[Store, ds.DatasetInfo]:
    store = Store(tmp_path / "ws")
    source = write_jsonl(tmp_path / "same.jsonl", _rows(counts))
    prepare(store, source, PrepareOptions(name="same", embedder=KEYWORD_EMBEDDER, k_grid=grid, seed=0))
    return store, ds.get_dataset(store, "same")


def _stored_cluster_ids(store: Store, dataset: ds.DatasetInfo, k: int) -> tuple[list[int], list[int]]:
    """(the cluster ids of the cluster table, their sizes) for one k."""
    table = curation.clusters(store, dataset.dataset_id, k)
    return [int(c) for c in table.cluster_id], [int(s) for s in table["size"]]


def test_identical_rows_have_no_best_k_and_no_empty_clusters(tmp_path: Path) -> None:
    store, dataset = _prepare(tmp_path, {"bread": 200}, (4, 6, 8))

    assert dataset.best_k is None  # no silhouette can be computed on one cluster of everything
    assert dataset.knee_k is None  # the inertia is rounding noise past one distinct point
    assert dataset.active_k == 4  # the smallest k swept, for want of anything better
    for k in (4, 6, 8):
        assert _stored_cluster_ids(store, dataset, k) == ([0], [200])
    sweep = ds.load_sweep(store, dataset.dataset_id)
    assert list(sweep.n_clusters) == [1, 1, 1]
    assert list(sweep.min_size) == [200, 200, 200]
    notes = sweep_notes(store, dataset, extend_hint=HINT)
    assert "No best k by silhouette and no knee" in notes[0]
    assert "fewer distinct points than any k swept (k=4 found only 1 non-empty cluster)" in notes[0]
    assert "using k=4" in notes[0]
    assert "Empty clusters were dropped" in notes[1] and "k=8 gave 1" in notes[1]


def test_a_few_groups_of_identical_rows_keep_their_groups_renumbered(tmp_path: Path) -> None:
    store, dataset = _prepare(tmp_path, {"bread": 10, "python": 12, "planet": 8}, (4, 6, 8))

    assert (dataset.best_k, dataset.knee_k, dataset.active_k) == (None, None, 4)
    for k in (4, 6, 8):
        ids, sizes = _stored_cluster_ids(store, dataset, k)
        assert ids == [0, 1, 2]
        assert sorted(sizes) == [8, 10, 12]
    notes = sweep_notes(store, dataset, extend_hint=HINT)
    assert "k=4 found only 3 non-empty clusters" in notes[0]
    assert "k=4 gave 3, k=6 gave 3, k=8 gave 3" in notes[1]


def test_a_k_that_fits_in_full_is_still_chosen_by_silhouette(tmp_path: Path) -> None:
    store, dataset = _prepare(tmp_path, {"bread": 10, "python": 12, "planet": 8}, (2, 3, 4))

    assert (dataset.best_k, dataset.active_k) == (3, 3)  # k=4 has one cluster empty and cannot win
    assert _stored_cluster_ids(store, dataset, 4)[0] == [0, 1, 2]
    notes = sweep_notes(store, dataset, extend_hint=HINT)
    assert notes == ["Empty clusters were dropped (the data has fewer distinct points than k): k=4 gave 3."]


def test_cli_says_why_there_is_no_best_k(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "same.jsonl", _rows({"bread": 200}))
    ws = str(tmp_path / "ws")

    code = main(["prepare", str(source), "--name", "same", "--embedder", "keyword-test", "--workspace", ws])
    out, err = capsys.readouterr()
    assert code == 0
    assert "best silhouette k=None, knee k=None" in out
    assert "note: No best k by silhouette and no knee" in err
    assert "using k=4" in err

    assert main(["clusters", "--workspace", ws]) == 0
    out, err = capsys.readouterr()
    assert "same: k=4" in out
    assert "fewer distinct points than any k swept" in err
    assert out.splitlines()[1].split()[:2] == ["0", "200"]  # one cluster, id 0, all rows; no empty ones
    assert len(out.splitlines()) == 2


def test_undefined_silhouettes_fall_back_to_the_knee() -> None:
    def point(k: int, inertia: float) -> clustering.SweepPoint:
        return clustering.SweepPoint(k, inertia, float("nan"), 0, 1, 1.0, 1, 0, n_clusters=k)

    choice = clustering.choose_default_k([point(2, 100.0), point(4, 20.0), point(6, 15.0), point(8, 12.0)])

    assert (choice.k, choice.best_k, choice.knee_k) == (4, None, 4)
    assert choice.reason is not None and "the silhouette is undefined for every k swept" in choice.reason
    assert "using the elbow's knee, k=4" in choice.reason


def _rising(ks: list[int]) -> list[clustering.SweepPoint]:
    """Full fits whose silhouette rises with k."""
    return [clustering.SweepPoint(k, 100.0 / k, k / 100, 50, 1, 1.0, 1, 0, n_clusters=k) for k in ks]


def _with_silhouette(points: list[clustering.SweepPoint], score: Callable[[int], float]) -> list[clustering.SweepPoint]:
    return [dataclasses.replace(p, silhouette=score(p.k)) for p in points]


def test_the_best_k_at_the_top_of_the_grid_is_reported_with_larger_values() -> None:
    notes = clustering.sweep_notes(_rising([8, 16, 32, 48]), 10_000, extend_hint=HINT)

    assert notes == [
        "The best silhouette k=48 is the largest k swept: the silhouette may peak outside the grid; "
        "try k=60, 72, 96. Sweep more k."
    ]


def test_the_best_k_at_the_bottom_of_the_grid_is_reported_with_smaller_values() -> None:
    falling = _with_silhouette(_rising([8, 16, 32]), lambda k: 1 - k / 100)

    notes = clustering.sweep_notes(falling, 10_000, extend_hint=HINT)

    assert notes == [
        "The best silhouette k=8 is the smallest k swept: the silhouette may peak outside the grid; "
        "try k=4, 6, 7. Sweep more k."
    ]


def test_no_edge_note_inside_the_grid_or_with_nothing_left_to_sweep() -> None:
    peaked = _with_silhouette(_rising([8, 16, 32]), lambda k: -abs(k - 16))

    assert clustering.sweep_notes(peaked, 10_000, extend_hint=HINT) == []
    assert clustering.sweep_notes(_rising([4, 8]), 9, extend_hint=HINT) == []  # no k above 8 for 9 rows
    at_two = _with_silhouette(_rising([2, 4]), lambda k: 1 - k / 100)
    assert clustering.sweep_notes(at_two, 100, extend_hint=HINT) == []  # nothing below k=2


def test_a_silhouette_rising_to_the_grid_end_on_real_clusters_is_reported() -> None:
    points, _ = make_blobs(n_samples=300, centers=10, n_features=16, cluster_std=0.5, random_state=0)
    embeddings = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)

    sweep, _ = clustering.sweep_k(embeddings, [4, 6, 8], seed=0)
    notes = clustering.sweep_notes(sweep, len(embeddings), extend_hint=HINT)

    assert clustering.best_silhouette_k(sweep) == 8
    assert len(notes) == 1
    assert notes[0].startswith("The best silhouette k=8 is the largest k swept")
    assert notes[0].endswith("try k=10, 12, 16. Sweep more k.")
