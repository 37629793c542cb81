"""The greedy selection algorithms, on arrays only, written to stay within seconds on 50k examples.

- :func:`farthest_first`: greedy k-center on cosine distance (one matrix-vector product per pick).
- :func:`redundancy_filter`: Deita's "Repr Filter", candidates in score order, skipped when their cosine
  to anything selected exceeds a threshold; candidates are checked in blocks with one matrix product.
- :func:`facility_location`: QDIT's F(S) = (1-a) * sum_x max_s cos(x, s) + a * sum_s q(s), maximised
  by lazy greedy (Minoux) with stale candidates re-evaluated in batches; never the naive quadratic loop.
  :func:`sparse_facility_location` does the same on a k-nearest-neighbour graph (similarities outside
  each example's k nearest count as 0), which is what makes 50k examples take seconds, not minutes.
- :func:`tfidf_greedy`: IterIT's IFD x TF-IDF greedy with decay (docs/algorithms.md 3.4), updating only the
  columns a pick touches, in CSC form.
- :func:`closest_to_centroids`: kM-Closest, the example nearest each of b k-means centroids.

Embeddings are L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import heapq

import numpy as np
import scipy.sparse as sp


def farthest_first(vectors: np.ndarray, budget: int, first: int) -> np.ndarray:
    """Greedy k-center: start at ``first``, then repeatedly take the point farthest from all picks."""
    n = len(vectors)
    budget = min(budget, n)
    picks = np.empty(budget, dtype=int)
    nearest = np.full(n, np.inf, dtype=np.float32)
    current = first
    for step in range(budget):
        picks[step] = current
        np.minimum(nearest, 1.0 - vectors @ vectors[current], out=nearest)
        nearest[picks[: step + 1]] = -np.inf
        current = int(np.argmax(nearest))
    return picks


def redundancy_filter(
    vectors: np.ndarray, order: np.ndarray, budget: int, threshold: float, block: int = 512
) -> np.ndarray:
    """Walk ``order`` and keep a candidate when its max cosine to the kept ones is <= ``threshold``."""
    kept: list[int] = []
    kept_vectors = np.empty((0, vectors.shape[1]), dtype=vectors.dtype)
    for start in range(0, len(order), block):
        candidates = order[start : start + block]
        block_vectors = vectors[candidates]
        clear = (
            (block_vectors @ kept_vectors.T).max(axis=1) <= threshold if len(kept) else np.ones(len(candidates), bool)
        )
        within = block_vectors @ block_vectors.T
        accepted: list[int] = []
        for i in np.flatnonzero(clear):
            if accepted and within[i, accepted].max() > threshold:
                continue
            accepted.append(int(i))
            if len(kept) + len(accepted) == budget:
                break
        kept += [int(candidates[i]) for i in accepted]
        kept_vectors = np.vstack([kept_vectors, block_vectors[accepted]])
        if len(kept) == budget:
            break
    return np.array(kept, dtype=int)


def facility_location(
    vectors: np.ndarray,
    quality: np.ndarray,
    budget: int,
    alpha: float,
    *,
    normalise: bool = True,
    batch: int = 64,
    chunk: int = 2048,
) -> np.ndarray:
    """Lazy greedy for QDIT's objective; returns picks in order.

    Similarities are clipped at 0 (the empty set covers nothing). With ``normalise`` the coverage term
    is a mean over the pool instead of a sum, so ``alpha`` weighs quality against coverage per example
    whatever the pool size. Gains only shrink as S grows (submodularity), so a candidate whose stale
    gain still tops the heap after re-evaluation is the true argmax: the result equals plain greedy.
    """
    n = len(vectors)
    budget = min(budget, n)
    scale = (1.0 - alpha) / (n if normalise else 1.0)
    covered = np.zeros(n, dtype=np.float32)
    gains = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk):  # initial coverage gains, one chunk of the n x n similarities at a time
        sims = np.clip(vectors[start : start + chunk] @ vectors.T, 0, None)
        gains[start : start + chunk] = scale * sims.sum(axis=1, dtype=np.float64)
    gains += alpha * quality
    heap = [(-gain, index) for index, gain in enumerate(gains)]
    heapq.heapify(heap)
    fresh = np.zeros(n, dtype=bool)
    picks: list[int] = []
    while len(picks) < budget and heap:
        index = heap[0][1]
        if fresh[index]:
            heapq.heappop(heap)
            picks.append(index)
            np.maximum(covered, np.clip(vectors @ vectors[index], 0, None), out=covered)
            fresh[:] = False
            continue
        stale = [heapq.heappop(heap)[1] for _ in range(min(batch, len(heap)))]
        sims = np.clip(vectors[stale] @ vectors.T, 0, None)
        updated = scale * np.maximum(sims - covered, 0).sum(axis=1, dtype=np.float64) + alpha * quality[stale]
        for candidate, value in zip(stale, updated, strict=True):
            fresh[candidate] = True
            heapq.heappush(heap, (-value, candidate))
    return np.array(picks, dtype=int)


def knn_graph(vectors: np.ndarray, neighbours: int, chunk: int = 4096) -> sp.csr_matrix:
    """Sparse n x n matrix: row x holds cos(x, y) (clipped at 0) for y among x's ``neighbours`` nearest, x included."""
    import faiss

    n = len(vectors)
    depth = min(neighbours + 1, n)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    sims = np.empty((n, depth), dtype=np.float32)
    ids = np.empty((n, depth), dtype=np.int64)
    for start in range(0, n, chunk):
        sims[start : start + chunk], ids[start : start + chunk] = index.search(vectors[start : start + chunk], depth)
    rows = np.repeat(np.arange(n), depth)
    graph = sp.csr_matrix((np.clip(sims.ravel(), 0, None), (rows, ids.ravel())), shape=(n, n))
    graph.setdiag(1.0)  # every example covers itself fully, even when ties pushed it out of its own list
    return graph.tocsr()


def sparse_facility_location(
    graph: sp.csr_matrix, quality: np.ndarray, budget: int, alpha: float, *, normalise: bool = True
) -> np.ndarray:
    """Lazy greedy for QDIT's objective where example x is covered only through the entries of row x of ``graph``.

    Candidate s covers the rows x whose entry (x, s) is stored; re-evaluating s costs its column's
    entries, not a pass over the pool. The result equals plain greedy on the same sparse objective.
    """
    n = graph.shape[0]
    budget = min(budget, n)
    by_candidate = graph.tocsc()  # column s: the examples s can cover, with their similarities
    indptr, covered_rows, sims = by_candidate.indptr, by_candidate.indices, by_candidate.data
    scale = (1.0 - alpha) / (n if normalise else 1.0)
    covered = np.zeros(n, dtype=np.float64)
    gains = scale * np.asarray(by_candidate.sum(axis=0)).ravel() + alpha * quality
    heap = [(-gain, index) for index, gain in enumerate(gains)]
    heapq.heapify(heap)
    fresh = np.zeros(n, dtype=bool)
    picks: list[int] = []
    while len(picks) < budget and heap:
        index = heapq.heappop(heap)[1]
        lo, hi = indptr[index], indptr[index + 1]
        if fresh[index]:
            picks.append(index)
            np.maximum.at(covered, covered_rows[lo:hi], sims[lo:hi])
            fresh[:] = False
            continue
        gain = scale * np.maximum(sims[lo:hi] - covered[covered_rows[lo:hi]], 0).sum() + alpha * quality[index]
        fresh[index] = True
        heapq.heappush(heap, (-gain, index))
    return np.array(picks, dtype=int)


def facility_objective(
    vectors: np.ndarray,
    quality: np.ndarray,
    picks: list[int],
    alpha: float,
    normalise: bool = True,
    graph: sp.csr_matrix | None = None,
) -> float:
    """F(S) of :func:`facility_location` (or of :func:`sparse_facility_location` on ``graph``), for tests."""
    if not picks:
        return 0.0
    if graph is None:
        coverage = np.clip(vectors @ vectors[picks].T, 0, None).max(axis=1).sum()
    else:
        coverage = graph[:, picks].max(axis=1).toarray().sum()
    scale = (1.0 - alpha) / (len(vectors) if normalise else 1.0)
    return float(scale * coverage + alpha * quality[picks].sum())


def tfidf_greedy(tfidf: sp.spmatrix, ifd: np.ndarray, budget: int, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """IterIT's greedy: pick argmax IFD_i * d_i, scale the picked row's n-grams by ``decay`` in every row.

    ``tfidf`` has L2-normalised rows; d_i is row i's sum. After j picks share an n-gram, its weight in
    the other rows is ``decay ** j`` of the original. The picked row is zeroed. Returns the picks in
    order and the final d (the diversity each row has left).
    """
    matrix = sp.csc_matrix(tfidf, dtype=np.float64, copy=True)
    rows_of = sp.csr_matrix(tfidf)  # which columns each row touches
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    alive = np.ones(len(ifd), dtype=bool)
    picks: list[int] = []
    for _ in range(min(budget, len(ifd))):
        score = np.where(alive, ifd * sums, -np.inf)
        best = int(np.argmax(score))
        if not np.isfinite(score[best]):
            break
        picks.append(best)
        alive[best] = False
        columns = rows_of.indices[rows_of.indptr[best] : rows_of.indptr[best + 1]]
        touched = _ranges(matrix.indptr[columns], matrix.indptr[columns + 1])
        old = matrix.data[touched]
        sums -= (1.0 - decay) * np.bincount(matrix.indices[touched], weights=old, minlength=len(sums))
        matrix.data[touched] = old * decay
        sums[best] = 0.0
    return np.array(picks, dtype=int), sums


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(start, end)`` for every pair, without a Python loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offsets + np.arange(total)


def closest_to_centroids(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """For each centroid, the nearest example not already taken by an earlier centroid."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    depth = min(len(vectors), 16)
    _, neighbours = index.search(np.ascontiguousarray(centroids, dtype=np.float32), depth)
    taken = np.zeros(len(vectors), dtype=bool)
    picks = []
    for row in neighbours:
        free = [int(i) for i in row if i >= 0 and not taken[i]]
        if free:
            taken[free[0]] = True
            picks.append(free[0])
    return np.array(picks, dtype=int)
