"""2-D maps of the embeddings for the Clusters page (UMAP, seeded).

PERF_NOTES section 3 measured that fitting UMAP on every row is both faster and more faithful than fitting on
a sample and transforming the rest, up to at least 200k rows (50k: 12 s full fit vs 5 s + 72 s). So the
sample-then-transform path only starts above ``fit_sample_above`` rows (default 250,000).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar, Protocol

import numpy as np

from core.registry import Registry


class Reducer(Protocol):
    """Maps an (N, d) matrix to (N, 2) coordinates, reproducibly for a given ``seed``."""

    name: ClassVar[str]
    seed: int

    def reduce(self, embeddings: np.ndarray) -> np.ndarray: ...


REDUCERS: Registry[Reducer] = Registry("reducer")
DEFAULT_REDUCER = "umap"


@REDUCERS.register
@dataclasses.dataclass(frozen=True)
class UMAPReducer:
    """UMAP to 2-D with cosine distance.

    Parameters
    ----------
    n_neighbors, min_dist : UMAP's own.
    seed : makes the layout reproducible (UMAP then runs single-threaded).
    fit_sample_above : above this many rows, fit on a seeded sample of ``sample_size`` and transform the rest.
    sample_size : rows in that sample.
    """

    name: ClassVar[str] = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    fit_sample_above: int = 250_000
    sample_size: int = 50_000

    def reduce(self, embeddings: np.ndarray) -> np.ndarray:
        n = len(embeddings)
        if n < 4:  # too few points for a neighbourhood graph: spread them on a line
            return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, dtype=np.float32)])
        import umap

        model = umap.UMAP(
            n_components=2,
            n_neighbors=min(self.n_neighbors, n - 1),
            min_dist=self.min_dist,
            metric="cosine",
            random_state=self.seed,
            init="spectral" if n > 10 else "random",
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            if n <= self.fit_sample_above:
                return model.fit_transform(embeddings).astype(np.float32)
            rng = np.random.default_rng(self.seed)
            sample = np.sort(rng.choice(n, self.sample_size, replace=False))
            model.fit(embeddings[sample])
            return model.transform(embeddings).astype(np.float32)
