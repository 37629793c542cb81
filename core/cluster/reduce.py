"""2-D maps of the embeddings for the Clusters page (UMAP, seeded), fitted on a sample above a size.

Up to ``fit_sample_above`` rows UMAP is fitted on every row. Above it, UMAP is fitted on a seeded sample and
every other row is placed by ``extend``: ``"neighbours"`` (default) puts a row at the distance-weighted mean of
the map positions of its nearest sample rows in embedding space (faiss, in chunks), ``"transform"`` uses UMAP's
own ``transform``. ``bench/map_scale.py`` measures both against a full fit (docs/algorithms.md 1.8): on the
51k-row pool, with a 10,000-row sample, placing each row on its nearest sample row kept 149 % of the full fit's
10-nearest-neighbour preservation (rows sharing a nearest sample row share a spot, and are near in embedding
space), the mean of 3 nearest 70 %, of 10 nearest 44 % (a mean of positions falls between map regions), UMAP's
transform 30 % at 3-4 times the time. So each row goes on its nearest sample row (``place_neighbors=1``); a
map fitted on a sample shows no order below the sample's resolution, which ``python -m core prepare`` says.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar, Literal, Protocol

import numpy as np

from core.registry import Registry

MAP_SAMPLE_ABOVE = 100_000  # above this many rows the map is fitted on a sample (bench/map_scale.py)
MAP_SAMPLE = 100_000  # rows of that sample
EXACT_SEARCH_UP_TO = 20_000  # sample rows searched exactly; above, an inverted-file index (IVF) is used
PROBES = 16  # IVF lists searched per row
PLACE_CHUNK = 65_536  # rows searched at once when placing rows: bounds the (chunk, neighbours) arrays


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
    fit_sample_above : above this many rows, fit on a seeded sample of ``sample_size`` and extend to the rest.
    sample_size : rows in that sample.
    extend : how the rows outside the sample are placed: ``neighbours`` (weighted mean of the nearest sample
        rows' positions) or ``transform`` (UMAP's transform, much slower).
    place_neighbors : sample rows averaged per placed row.
    """

    name: ClassVar[str] = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    fit_sample_above: int = MAP_SAMPLE_ABOVE
    sample_size: int = MAP_SAMPLE
    extend: Literal["neighbours", "transform"] = "neighbours"
    place_neighbors: int = 1

    def reduce(self, embeddings: np.ndarray) -> np.ndarray:
        n = len(embeddings)
        if n < 4:  # too few points for a neighbourhood graph: spread them on a line
            return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, dtype=np.float32)])
        if n <= self.fit_sample_above or self.sample_size >= n:
            return self._model(n).fit_transform(embeddings).astype(np.float32)
        sample = map_sample(n, self.sample_size, self.seed)
        model = self._model(len(sample))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            sample_coords = model.fit_transform(embeddings[sample]).astype(np.float32)
            if self.extend == "transform":
                coords = model.transform(embeddings).astype(np.float32)
                coords[sample] = sample_coords  # the fitted rows keep their fitted spot
                return coords
        return place_by_neighbours(embeddings, sample, sample_coords, self.place_neighbors)

    def _model(self, n: int):  # -> umap.UMAP, imported here so that importing this module stays light
        import umap

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            return umap.UMAP(
                n_components=2,
                n_neighbors=min(self.n_neighbors, n - 1),
                min_dist=self.min_dist,
                metric="cosine",
                random_state=self.seed,
                init="spectral" if n > 10 else "random",
            )


def map_sample(n: int, size: int, seed: int) -> np.ndarray:
    """The sorted row indices of the seeded sample a map is fitted on."""
    return np.sort(np.random.default_rng(seed).choice(n, min(size, n), replace=False))


def place_by_neighbours(
    embeddings: np.ndarray, sample: np.ndarray, sample_coords: np.ndarray, neighbours: int = 1
) -> np.ndarray:
    """(N, 2) coordinates: the sample rows keep ``sample_coords``; every other row goes to the mean of its
    ``neighbours`` nearest sample rows' coordinates (cosine), weighted by 1 / (cosine distance + 1e-6), so a
    row identical to a sample row lands on it."""
    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = sample_index(np.ascontiguousarray(data[sample]))
    coords = np.empty((len(data), 2), dtype=np.float32)
    k = min(neighbours, len(sample))
    for start in range(0, len(data), PLACE_CHUNK):
        chunk = data[start : start + PLACE_CHUNK]
        similarity, found = index.search(chunk, k)
        weights = 1.0 / (np.maximum(1.0 - similarity, 0.0) + 1e-6)
        weights /= weights.sum(axis=1, keepdims=True)
        coords[start : start + len(chunk)] = np.einsum("nk,nkc->nc", weights, sample_coords[found])
    coords[sample] = sample_coords
    return coords


def sample_index(vectors: np.ndarray):  # -> faiss.Index; imported here so that importing this module stays light
    """An inner-product index over the sample's unit vectors: exact up to ``EXACT_SEARCH_UP_TO`` rows, above an
    IVF index of about 4 sqrt(m) lists, ``PROBES`` searched per query: placing a million rows by exact search
    over a 100,000-row sample costs about 4e13 multiply-adds, half an hour on two cores."""
    import faiss

    m, d = vectors.shape
    if m <= EXACT_SEARCH_UP_TO:
        index = faiss.IndexFlatIP(d)
    else:
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, int(4 * np.sqrt(m)), faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)  # faiss's k-means has a fixed seed: the same sample gives the same index
        index.nprobe = PROBES
    index.add(vectors)
    return index
