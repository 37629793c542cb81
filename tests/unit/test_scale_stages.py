"""Stages that scale: the k sweep fitted on a sample and assigned over every row, the map fitted on a sample and
extended, labels from sampled texts; thresholds set low so the small data here crosses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from core.cluster import clustering
from core.cluster.labels import labels_by_k
from core.cluster.reduce import UMAPReducer, map_sample
from core.prepare import PrepareOptions, prepare, stored_sweep
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    """300 unit-norm points around 10 well separated centres."""
    points, _ = make_blobs(n_samples=300, centers=10, n_features=16, cluster_std=0.5, random_state=0)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_a_sweep_above_the_threshold_fits_on_a_sample_and_assigns_every_row(blobs: np.ndarray) -> None:
    points, labels = clustering.sweep_k(blobs, [8, 10, 12], seed=0, fit_sample_above=200, fit_sample=120)

    assert [p.fit_rows for p in points] == [120, 120, 120]
    assert clustering.best_silhouette_k(points) == 10
    for point in points:
        found = labels[point.k]
        assert found.shape == (300,)
        assert set(found.tolist()) == set(range(point.n_clusters or point.k))  # every row a cluster, none empty
    assert [p.n_clusters for p in points] == [8, 10, 12]
    sample = clustering.fit_rows_sample(300, 200, 120, 0)
    fitted = clustering.KMeansClusterer(k=10, seed=0).fit(blobs[sample])
    distances = ((blobs[:, None, :] - fitted.centroids[None, :, :]) ** 2).sum(axis=2)
    nearest = clustering.drop_empty_clusters(distances.argmin(axis=1))
    assert np.array_equal(labels[10], nearest)
    ten = next(p for p in points if p.k == 10)
    assert ten.inertia == pytest.approx(float(distances.min(axis=1).sum()), rel=1e-4)  # over every row
    note = clustering.sample_note(points, 300)
    assert note == (
        "k-means fitted on a 120-row sample, assigned over 300 rows; silhouette on 300 rows; "
        "inertia summed over every row."
    )


def test_a_sweep_at_or_below_the_threshold_fits_on_every_row_as_before(blobs: np.ndarray) -> None:
    points, labels = clustering.sweep_k(blobs, [8, 10], seed=0, fit_sample_above=300, fit_sample=120)

    assert [p.fit_rows for p in points] == [None, None]
    assert clustering.sample_note(points, 300) is None
    for point in points:
        whole = clustering.KMeansClusterer(k=point.k, seed=0).fit(blobs)
        assert np.array_equal(labels[point.k], clustering.drop_empty_clusters(whole.labels))
        assert point.inertia == whole.inertia


def test_the_extended_map_places_every_row_and_a_copy_of_a_sample_row_on_it(blobs: np.ndarray) -> None:
    sample = map_sample(len(blobs), 100, 0)
    outside = np.setdiff1d(np.arange(len(blobs)), sample)
    embeddings = blobs.copy()
    embeddings[outside[0]] = blobs[sample[5]]  # an outside row identical to a sample row
    reducer = UMAPReducer(seed=0, fit_sample_above=200, sample_size=100)

    coords = reducer.reduce(embeddings)

    assert coords.shape == (300, 2)
    assert np.isfinite(coords).all()
    extent = float(np.ptp(coords, axis=0).max())
    assert np.linalg.norm(coords[outside[0]] - coords[sample[5]]) < 0.01 * extent
    nearest = sample[(embeddings[outside] @ embeddings[sample].T).argmax(axis=1)]
    assert np.allclose(coords[outside], coords[nearest])  # each placed row sits on its nearest sample row


TOPICS = {
    "bread": "bake the bread dough in the oven with yeast",
    "python": "write a python function that sorts a list",
    "garden": "water the garden roses and tomatoes weekly",
}


def test_labels_from_sampled_texts_match_labels_from_all_texts() -> None:
    texts = [f"{text} note {i}" for text in TOPICS.values() for i in range(60)]
    found = {3: np.repeat(np.arange(3), 60)}

    every = labels_by_k(texts, found, per_cluster=len(texts), seed=0)[3]
    sampled = labels_by_k(texts, found, per_cluster=10, seed=0)[3]

    assert [c["label"] for c in sampled] == [c["label"] for c in every]
    assert [c["size"] for c in sampled] == [60, 60, 60]  # sizes count every row, not the sample
    assert "bread" in sampled[0]["label"] and "python" in sampled[1]["label"]


def prepare_sampled(tmp_path: Path) -> tuple[Store, ds.DatasetInfo, list[str]]:
    """The 24 keyword rows prepared with every sampling threshold below 24 rows."""
    store = Store(tmp_path / "ws")
    source = write_jsonl(tmp_path / "big.jsonl", keyword_rows())
    options = PrepareOptions(
        name="big",
        embedder=KEYWORD_EMBEDDER,
        k_grid=(2, 4, 6),
        sweep_sample_above=10,
        sweep_sample=12,
        map_sample_above=10,
        map_sample=12,
        label_texts_per_cluster=3,
    )
    report = prepare(store, source, options)
    return store, ds.get_dataset(store, "big"), report.sample_notes


def test_a_sampled_prepare_clusters_maps_and_labels_every_row_and_says_so(tmp_path: Path) -> None:
    store, dataset, notes = prepare_sampled(tmp_path)

    assert notes == [
        "k-means fitted on a 12-row sample, assigned over 24 rows; silhouette on 24 rows; inertia summed over "
        "every row.",
        "map fitted on a 12-row sample, the other 12 rows placed by their nearest sample rows.",
    ]
    assert [p.fit_rows for p in stored_sweep(store, dataset.dataset_id)] == [12, 12, 12]
    assert dataset.best_k == 4  # the four keyword topics
    assigned = ds.assignments(store, dataset.dataset_id, 4)
    assert sorted(np.bincount(assigned).tolist()) == [6, 6, 6, 6]
    table = curation.clusters(store, dataset.dataset_id, 4)
    assert sorted(table["size"].tolist()) == [6, 6, 6, 6]
    assert {label.split(" · ")[0] for label in table["label"]} >= {"bread", "python"}  # labels from 3 texts each
    points = curation.map_points(store, dataset.dataset_id, 4)
    assert len(points) == 24
    assert np.isfinite(points[["x", "y"]].to_numpy()).all()


def test_embedding_reads_texts_in_chunks_and_embeds_each_distinct_text_once(tmp_path: Path, monkeypatch) -> None:
    import core.prepare as pipeline
    from tests.conftest import KeywordEmbedder

    calls: list[int] = []
    real_embed = KeywordEmbedder.embed

    def counting_embed(self, texts, progress=None):
        calls.append(len(texts))
        return real_embed(self, texts, progress)

    def no_whole_table(*args, **kwargs):
        raise AssertionError("prepare read every text at once")

    monkeypatch.setattr(KeywordEmbedder, "embed", counting_embed)
    monkeypatch.setattr(pipeline, "READ_CHUNK", 5)
    monkeypatch.setattr(ds, "example_texts", no_whole_table)
    rows = keyword_rows() + keyword_rows()[:3]  # three exact duplicates, in a later chunk than their originals
    source = write_jsonl(tmp_path / "dupes.jsonl", rows)
    store = Store(tmp_path / "ws")

    report = prepare(store, source, PrepareOptions(name="dupes", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4), seed=0))

    assert (report.embedded, report.embeddings_cached) == (24, 0)
    assert max(calls) <= 5 and sum(calls) == 24
    embeddings = ds.load_embeddings(store, report.dataset_id, ds.get_dataset(store, "dupes").embedder_key or "")
    assert embeddings.shape[0] == 27
    assert np.array_equal(embeddings[24:], embeddings[:3])
    assert report.best_k == 4


def test_cli_prepare_says_when_the_sweep_and_the_map_ran_on_samples(tmp_path: Path, monkeypatch, capsys) -> None:
    import dataclasses

    import core.prepare as pipeline
    from core.cli import main

    real_prepare = pipeline.prepare
    low = {"sweep_sample_above": 10, "sweep_sample": 12, "map_sample_above": 10, "map_sample": 12}
    # the thresholds of a million-row file, scaled down to 24 rows: the CLI has no flags for them
    monkeypatch.setattr(
        pipeline, "prepare", lambda s, p, o, g, **kw: real_prepare(s, p, dataclasses.replace(o, **low), g, **kw)
    )
    source = write_jsonl(tmp_path / "tiny.jsonl", keyword_rows())

    code = main(
        ["prepare", str(source), "--embedder", "keyword-test", "--k-grid", "2,4", "--workspace", str(tmp_path / "ws")]
    )

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("prepared 'tiny': 24 rows")
    assert "note: k-means fitted on a 12-row sample, assigned over 24 rows; silhouette on 24 rows" in captured.err
    assert "note: map fitted on a 12-row sample, the other 12 rows placed by their nearest sample rows." in captured.err


def test_placing_rows_through_the_ivf_index_keeps_a_copy_on_its_sample_row(blobs: np.ndarray, monkeypatch) -> None:
    from core.cluster import reduce

    monkeypatch.setattr(reduce, "EXACT_SEARCH_UP_TO", 50)  # a 100-row sample then goes through the IVF index
    sample = map_sample(len(blobs), 100, 0)
    outside = np.setdiff1d(np.arange(len(blobs)), sample)
    embeddings = blobs.copy()
    embeddings[outside[0]] = blobs[sample[5]]
    sample_coords = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)

    coords = reduce.place_by_neighbours(embeddings, sample, sample_coords, 3)

    assert np.isfinite(coords).all()
    assert np.array_equal(coords[sample], sample_coords)
    assert np.linalg.norm(coords[outside[0]] - sample_coords[5]) < 0.01


def test_embedding_commits_vectors_in_writes_of_the_configured_size(tmp_path: Path, monkeypatch) -> None:
    import core.prepare as pipeline
    from tests.conftest import KeywordEmbedder

    written: list[int] = []
    real_put = ds.put_embeddings

    def counting_put(store, key, hashes, vectors):
        written.append(len(hashes))
        return real_put(store, key, hashes, vectors)

    monkeypatch.setattr(ds, "put_embeddings", counting_put)
    monkeypatch.setattr(pipeline, "EMBED_CHUNK", 4)
    monkeypatch.setenv("CURATE_EMBED_WRITE_ROWS", "10")
    calls: list[int] = []
    real_embed = KeywordEmbedder.embed
    monkeypatch.setattr(
        KeywordEmbedder,
        "embed",
        lambda self, texts, progress=None: calls.append(len(texts)) or real_embed(self, texts, progress),
    )
    store = Store(tmp_path / "ws")
    source = write_jsonl(tmp_path / "rows.jsonl", keyword_rows())
    prepare(store, source, PrepareOptions(name="rows", embedder=KEYWORD_EMBEDDER, k_grid=(2,), seed=0))

    assert sum(written) == 24 and len(calls) == 6  # six chunks of 4 embedded ...
    assert written == [12, 12]  # ... committed in two writes of at least 10 (each commit costs a fixed time)
