"""Removing cached vectors: only the named hashes under the named embedder go, and they can be cached again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.storage import datasets as ds
from core.storage.database import Store


def _vectors(n: int, value: float) -> np.ndarray:
    return np.full((n, 4), value, dtype=np.float32)


def test_delete_embeddings_removes_only_the_named_hashes_of_one_embedder(tmp_path: Path) -> None:
    store = Store(tmp_path / "ws")
    ds.put_embeddings(store, "a", ["h1", "h2", "h3"], _vectors(3, 1.0))
    ds.put_embeddings(store, "b", ["h1"], _vectors(1, 2.0))

    removed = ds.delete_embeddings(store, "a", ["h1", "h2", "h2", "absent"])

    assert removed == 2
    assert ds.cached_text_hashes(store, "a", ["h1", "h2", "h3"]) == {"h3"}
    assert ds.cached_text_hashes(store, "b", ["h1"]) == {"h1"}
    ds.put_embeddings(store, "a", ["h1"], _vectors(1, 3.0))  # a removed key can be cached again
    assert ds.cached_text_hashes(store, "a", ["h1", "h2"]) == {"h1"}
    assert ds.delete_embeddings(store, "a", []) == 0
