"""Each cluster's representative row: the row nearest the centre of its rows (core.cluster.clustering), stored
with the labels and shown beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.cluster import clustering
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


def test_the_representative_is_the_row_nearest_its_clusters_centre_across_chunks() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16)
    labels = rng.integers(0, 4, 3_000)
    rows = centres[labels] + rng.normal(scale=0.3, size=(3_000, 16))
    chosen = clustering.representatives(rows.astype(np.float32), labels, chunk=257)  # many chunks
    for cluster in range(4):
        members = np.flatnonzero(labels == cluster)
        centre = rows[members].mean(axis=0)
        cosine = rows[members] @ centre / np.linalg.norm(rows[members], axis=1) / np.linalg.norm(centre)
        assert chosen[cluster] == members[np.argmax(cosine)]
    assert clustering.representatives(np.zeros((0, 3), np.float32), np.zeros(0, int)) == {}


def test_the_cluster_table_shows_each_clusters_representative_instruction(prepared_workspace: Path) -> None:
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    table = curation.clusters(store, dataset.dataset_id, dataset.active_k)
    assignments = ds.assignments(store, dataset.dataset_id, dataset.active_k)
    for row in table.itertuples():
        assert assignments[int(row.representative_row)] == row.cluster_id  # a row of its own cluster
        page = curation.example_page(store, dataset.dataset_id, dataset.active_k, row_idx=int(row.representative_row))
        assert page.instruction.iloc[0].startswith(row.representative)
