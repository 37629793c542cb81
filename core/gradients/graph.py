"""The gradient similarity graph (docs/algorithms.md 4.3) and cluster alignment summaries, on arrays only.

- :func:`top_neighbours`: every row's top-m neighbours by cosine, sorted by descending similarity, which
  is what the G2IS walk consumes (its "knowledge coherence" is "the first feasible neighbour in sorted
  order", so an unsorted list silently breaks it). Exact up to ``exact_limit`` rows, one ``chunk x n``
  block of similarities at a time; an approximate faiss HNSW index above.
- :func:`edges`: the same lists as a flat edge table (the ``gradient_edges`` layout).
- :func:`cluster_alignment`, :func:`target_alignment`, :func:`example_alignment`: mean cosines between
  clusters, and of clusters or examples with a target set. A mean of cosines over all pairs of two sets
  of unit rows is the dot product of their mean vectors, so none of these needs a pairwise matrix.

Features are L2-normalised rows (float16 or float32); everything is computed in float32, so a dot product
is the cosine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

ProgressFn = Callable[[int], None]

_HNSW_LINKS = 32
_HNSW_EF_CONSTRUCTION = 80
_SELECT_ROWS = 1024  # rows per top-m selection pass inside a chunk: bounds the boolean mask and index arrays


def top_neighbours(
    features: np.ndarray,
    m: int,
    *,
    chunk: int = 4096,
    exact_limit: int = 100_000,
    ef_search: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``m`` most similar other rows, by cosine, most similar first.

    Parameters
    ----------
    features : (n, d) L2-normalised rows.
    m : neighbours per row; clipped to n - 1 (a row is never its own neighbour).
    chunk : rows per block; memory holds one (chunk, n) float32 block of similarities at a time (plus
        the (n, m) result), about 0.8 GB at 4096 x 50,000.
    exact_limit : up to this many rows the result is exact; above it a faiss HNSW index (inner product,
        32 links, efConstruction 80) is searched. Exact cost grows as n^2 d: 50k x 1024 took 70-80 s on
        2 busy cores, so 200k would take about 20 min, while HNSW grows about as n log n. Below ~100k
        rows exact is as fast or faster (20k rows: 7-10 s either way; 20k x 256: exact 7 s, HNSW 29 s).
        The approximate path trades recall for time: a true neighbour the graph search does not reach
        is missed and the next best found takes its place. Measured recall of the top-m against exact:
        1.00 on clustered 20k x 512 and on random 2k x 32, 0.97 on random 20k x 64, but 0.80 on random
        20k x 256, where structureless high-dimensional rows are all about equally far apart (real
        gradient features are clustered). A larger ``ef_search`` buys recall for search time. HNSW is
        built by several threads, so near-ties may come out differently between runs: store the graph
        once and walk the stored one. Slots a search leaves empty hold index -1 and similarity NaN.
    ef_search : the HNSW search beam (default max(2m, 128)).
    progress : called with the number of rows finished after each block.

    Returns
    -------
    indices : (n, m) int32, each row sorted by descending similarity, ties by lower index.
    similarities : (n, m) float32, the matching cosines.
    """
    vectors = np.ascontiguousarray(features, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"features must be a 2-D matrix, not shape {vectors.shape}")
    n = len(vectors)
    m = max(0, min(int(m), n - 1))
    if m == 0:
        return np.zeros((n, 0), dtype=np.int32), np.zeros((n, 0), dtype=np.float32)
    if n <= exact_limit:
        return _exact_neighbours(vectors, m, chunk, progress)
    return _approximate_neighbours(vectors, m, chunk, ef_search, progress)


def _exact_neighbours(
    vectors: np.ndarray, m: int, chunk: int, progress: ProgressFn | None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-m by blocks, computing each similarity once (the matrix is symmetric).

    Chunk i multiplies its rows by the columns from its own start onwards: a (chunk, n - start) block.
    Its rows take their top-m from it, merged with what earlier chunks passed down; the part of the
    block below the diagonal (later rows x this chunk's columns), read transposed, passes each later row
    its top-m among this chunk's columns. That halves the matrix products, the dominant cost.
    """
    n = len(vectors)
    best_similarities = np.full((n, m), -np.inf, dtype=np.float32)
    best_indices = np.full((n, m), n, dtype=np.int32)  # n: a placeholder that loses every tie
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = vectors[start:stop] @ vectors[start:].T
        rows = np.arange(stop - start)
        block[rows, rows] = -np.inf  # self is never a neighbour
        for sub in range(0, stop - start, _SELECT_ROWS):
            part = slice(sub, min(sub + _SELECT_ROWS, stop - start))
            found = _top_m(block[part], m)
            _merge(best_indices, best_similarities, start + sub, found, start)
        for sub in range(stop - start, block.shape[1], _SELECT_ROWS):
            later = np.ascontiguousarray(block[:, sub : sub + _SELECT_ROWS].T)
            _merge(best_indices, best_similarities, start + sub, _top_m(later, min(m, len(rows))), start)
        del block  # free it before the next product allocates its successor: one block in memory, not two
        if progress:
            progress(stop - start)
    return best_indices, best_similarities


def _merge(
    indices: np.ndarray,
    similarities: np.ndarray,
    first_row: int,
    found: tuple[np.ndarray, np.ndarray],
    column_offset: int,
) -> None:
    """Merge ``found`` (block-local columns) into the running top-m of rows ``first_row`` onwards."""
    found_indices, found_similarities = found
    part = slice(first_row, first_row + len(found_indices))
    all_indices = np.concatenate([indices[part], found_indices + np.int32(column_offset)], axis=1)
    all_similarities = np.concatenate([similarities[part], found_similarities], axis=1)
    order = np.lexsort((all_indices, -all_similarities), axis=1)[:, : indices.shape[1]]
    indices[part] = np.take_along_axis(all_indices, order, axis=1)
    similarities[part] = np.take_along_axis(all_similarities, order, axis=1)


def _top_m(block: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-m of each row of ``block``, descending, ties broken by the lower column index.

    A full ``argpartition`` over n columns costs as much as the matrix product itself, so the candidates
    are narrowed first: the m-th largest value over a strided subset of the columns is a lower bound on
    the m-th largest over all columns, hence every column at or above it is a candidate and the true
    top-m (ties included) are among them (about 10 m per row). The candidates are packed into a small
    dense matrix and sorted per row with a stable sort, which keeps equal values in column order.
    """
    n = block.shape[1]
    if m >= n:  # the whole row is the answer
        order = np.argsort(-block, axis=1, kind="stable")
        return order.astype(np.int32), np.take_along_axis(block, order, axis=1)
    stride = max(1, min(10, n // (m + 1)))  # the subset keeps >= m + 1 columns, so the bound is finite
    subset = block[:, ::stride]
    bound = np.partition(subset, subset.shape[1] - m, axis=1)[:, subset.shape[1] - m]
    rows, cols = np.nonzero(block >= bound[:, None])  # row-major: columns ascend within a row
    counts = np.bincount(rows, minlength=len(block))
    position = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.full((len(block), counts.max()), -np.inf, dtype=np.float32)
    columns = np.zeros(values.shape, dtype=np.int32)
    values[rows, position] = block[rows, cols]
    columns[rows, position] = cols
    order = np.argsort(-values, axis=1, kind="stable")[:, :m]
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(values, order, axis=1)


def _approximate_neighbours(
    vectors: np.ndarray, m: int, chunk: int, ef_search: int | None, progress: ProgressFn | None
) -> tuple[np.ndarray, np.ndarray]:
    """HNSW inner-product search for m + 1 rows per query, then self dropped and ties re-sorted by index."""
    import faiss

    n, d = vectors.shape
    index = faiss.IndexHNSWFlat(d, _HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
    index.add(vectors)
    index.hnsw.efSearch = max(ef_search or max(2 * m, 128), m + 1)
    indices = np.empty((n, m), dtype=np.int32)
    similarities = np.empty((n, m), dtype=np.float32)
    for start in range(0, n, chunk):
        found_sims, found_ids = index.search(vectors[start : start + chunk], m + 1)
        for row, (ids, sims) in enumerate(zip(found_ids, found_sims, strict=True)):
            keep = ids != start + row  # drop self; if the search missed self, drop the (m+1)-th instead
            ids, sims = ids[keep][:m], sims[keep][:m]
            sims = np.where(ids >= 0, sims, np.nan)
            order = np.lexsort((ids, -np.nan_to_num(sims, nan=-np.inf)))
            indices[start + row], similarities[start + row] = ids[order], sims[order]
        if progress:
            progress(min(chunk, n - start))
    return indices, similarities


def edges(indices: np.ndarray, similarities: np.ndarray) -> pd.DataFrame:
    """The neighbour lists as a flat edge list: ``src``, ``rank`` (0 = nearest), ``dst``, ``weight`` (cosine).

    Missing slots (index -1) are left out.
    """
    n, m = indices.shape
    table = pd.DataFrame(
        {
            "src": np.repeat(np.arange(n, dtype=np.int32), m),
            "rank": np.tile(np.arange(m, dtype=np.int16), n),
            "dst": indices.reshape(-1).astype(np.int32),
            "weight": similarities.reshape(-1).astype(np.float32),
        }
    )
    return table[table["dst"] >= 0].reset_index(drop=True)


def _cluster_means(
    vectors: np.ndarray, cluster_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clusters in ascending order, each row's cluster position, cluster sizes, (k, d) float64 means)."""
    clusters, inverse = np.unique(np.asarray(cluster_ids), return_inverse=True)
    inverse = inverse.ravel()
    if len(inverse) != len(vectors):
        raise ValueError(f"{len(inverse)} cluster ids for {len(vectors)} feature rows")
    membership = sp.csr_matrix(
        (np.ones(len(inverse)), (inverse, np.arange(len(inverse)))), shape=(len(clusters), len(inverse))
    )
    sizes = np.bincount(inverse, minlength=len(clusters))
    sums = membership @ vectors.astype(np.float64)
    return clusters, inverse, sizes, sums / sizes[:, None]


def cluster_alignment(
    features: np.ndarray, cluster_ids: np.ndarray, *, self_pairs: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine between every pair of clusters: entry (a, b) = mean over i in a, j in b of cos(h_i, h_j).

    That mean equals mean(h_a) . mean(h_b). Off the diagonal every cross pair counts once. On the
    diagonal, with ``self_pairs=True`` (default) the mean runs over all |a|^2 ordered pairs *including*
    the |a| pairs (i, i), each of cosine 1; with ``self_pairs=False`` it runs over the |a|(|a| - 1) pairs
    i != j, i.e. (|a|^2 * diag - |a|) / (|a|(|a| - 1)), NaN for a one-member cluster.

    Returns (clusters in ascending order, (k, k) float64 matrix in that order).
    """
    vectors = np.asarray(features, dtype=np.float32)
    clusters, inverse, sizes, means = _cluster_means(vectors, cluster_ids)
    matrix = means @ means.T
    if not self_pairs:
        squared_norms = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)  # cos(h_i, h_i), ~1
        self_sum = np.bincount(inverse, weights=squared_norms, minlength=len(clusters))
        with np.errstate(invalid="ignore", divide="ignore"):
            diagonal = (sizes**2 * np.diag(matrix) - self_sum) / (sizes * (sizes - 1.0))
        matrix[np.diag_indices_from(matrix)] = np.where(sizes > 1, diagonal, np.nan)
    return clusters, matrix


def target_alignment(
    features: np.ndarray, cluster_ids: np.ndarray, target_features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's mean cosine with the target set (mean over members x target rows).

    Returns (clusters in ascending order, (k,) float64 values).
    """
    clusters, _, _, means = _cluster_means(np.asarray(features, dtype=np.float32), cluster_ids)
    return clusters, means @ _mean_row(target_features)


def example_alignment(features: np.ndarray, target_features: np.ndarray) -> np.ndarray:
    """Each example's mean cosine with the target rows, (n,) float32 (the LESS score of one target task)."""
    return np.asarray(features, dtype=np.float32) @ _mean_row(target_features).astype(np.float32)


def _mean_row(target_features: np.ndarray) -> np.ndarray:
    """The target rows' mean (float64): mean_j cos(x, t_j) = x . mean_j t_j."""
    target = np.asarray(target_features, dtype=np.float32)
    if target.ndim != 2 or len(target) == 0:
        raise ValueError(f"target features must be a non-empty 2-D matrix, not shape {target.shape}")
    return target.mean(axis=0, dtype=np.float64)
