"""k-means over a sweep of k with the diagnostics used to choose k: inertia (elbow), silhouette, sizes.

faiss k-means seeded with scikit-learn's k-means++ on a sample matches scikit-learn's inertia within
0.5% and runs 8-19x faster (PERF_NOTES section 2); plain faiss random init is 3-9% worse, seed-dependent
and can fake elbows. The silhouette uses cosine distance, exact up to ``silhouette_sample`` points and on
a seeded sample above (1.3 s per k at any N).

A fit can leave clusters empty when the data has fewer distinct points than k (k-means++ then picks the same
point twice): the empty clusters are dropped and the ids renumbered 0..k'-1, and ``SweepPoint.n_clusters``
keeps k'. Only k values fitted in full (k' = k) with a defined silhouette can be the "best" k.

Above ``fit_sample_above`` rows (default 100,000) each k-means is fitted on a seeded sample of ``fit_sample``
rows and every row is then assigned to its nearest centroid (faiss, in chunks); the inertia (elbow) is summed
over every row from that assignment, and ``SweepPoint.fit_rows`` records the sample's size so the Diagnostics
page and the CLI can say so (``sample_note``). At or below the threshold nothing changes: the fit is on every row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import numpy as np

from core.registry import Registry


@dataclasses.dataclass(frozen=True)
class Clustering:
    """Result of one fit: a cluster id per row, the centroids, and the sum of squared distances."""

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float


class Clusterer(Protocol):
    """Partitions an (N, d) matrix into ``k`` clusters, reproducibly for a given ``seed``."""

    name: ClassVar[str]
    k: int
    seed: int

    def fit(self, embeddings: np.ndarray) -> Clustering: ...


CLUSTERERS: Registry[Clusterer] = Registry("clusterer")
DEFAULT_CLUSTERER = "kmeans"


@CLUSTERERS.register
@dataclasses.dataclass(frozen=True)
class KMeansClusterer:
    """Lloyd k-means (faiss) from a k-means++ start computed on a seeded sample.

    Parameters
    ----------
    k : number of clusters.
    seed : seeds the init sample, k-means++ and faiss.
    n_iter : Lloyd iterations.
    init_sample : rows used for the k-means++ start.
    """

    name: ClassVar[str] = "kmeans"
    k: int = 8
    seed: int = 0
    n_iter: int = 50
    init_sample: int = 20_000

    def fit(self, embeddings: np.ndarray) -> Clustering:
        import faiss
        from sklearn.cluster import kmeans_plusplus

        data = np.ascontiguousarray(embeddings, dtype=np.float32)
        n = len(data)
        if not 1 <= self.k <= n:
            raise ValueError(f"k must be between 1 and the number of rows ({n}), not {self.k}")
        rng = np.random.default_rng(self.seed)
        sample = data if n <= self.init_sample else data[rng.choice(n, self.init_sample, replace=False)]
        start, _ = kmeans_plusplus(sample, self.k, random_state=self.seed)
        kmeans = faiss.Kmeans(
            data.shape[1],
            self.k,
            niter=self.n_iter,
            seed=self.seed,
            verbose=False,
            min_points_per_centroid=1,
            max_points_per_centroid=max(256, n // self.k + 1),
        )
        kmeans.train(data, init_centroids=np.ascontiguousarray(start, dtype=np.float32))
        distances, labels = kmeans.index.search(data, 1)
        return Clustering(labels[:, 0].astype(np.int32), kmeans.centroids.copy(), float(distances.sum()))


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """Diagnostics of one k."""

    k: int
    inertia: float
    silhouette: float
    silhouette_sample: int
    min_size: int
    median_size: float
    max_size: int
    seed: int
    n_clusters: int | None = None  # non-empty clusters; None (a point built by hand) means all k
    fit_rows: int | None = None  # rows k-means was fitted on when fewer than all (then assigned over all); None: all

    @property
    def full(self) -> bool:
        """Whether the fit found k non-empty clusters (fewer means the data has fewer distinct points than k)."""
        return self.n_clusters is None or self.n_clusters == self.k


@dataclasses.dataclass(frozen=True)
class KChoice:
    """The default k of a sweep and, when the silhouette could not decide, why not."""

    k: int
    best_k: int | None
    knee_k: int | None
    reason: str | None = None


def default_k_grid(n_rows: int) -> list[int]:
    """A grid of k valid for N rows: 4, 6, 8, then steps of about 25% up to sqrt(N) (at least 8, at most 512).

    sqrt(N) keeps clusters browsable (about sqrt(N) examples each on average); on templated data the
    silhouette keeps rising with k, so the grid's top matters. Edit the grid to look further.
    """
    upper = int(min(512, max(8, np.sqrt(max(n_rows, 1)))))
    grid = []
    k = 4
    while k <= upper:
        grid.append(k)
        k = round(k * 1.25) if k >= 8 else k + 2
    return [k for k in grid if 2 <= k < n_rows] or ([2] if n_rows > 2 else [1])


def silhouette(embeddings: np.ndarray, labels: np.ndarray, *, sample: int, seed: int) -> tuple[float, int]:
    """Cosine silhouette: exact up to ``sample`` rows, on a seeded sample above. Returns (score, rows used)."""
    from sklearn.metrics import silhouette_score

    n = len(embeddings)
    if len(np.unique(labels)) < 2 or n < 3:
        return float("nan"), 0
    size = None if n <= sample else sample
    score = silhouette_score(embeddings, labels, metric="cosine", sample_size=size, random_state=seed)
    return float(score), n if size is None else size


FIT_SAMPLE_ABOVE = 100_000  # above this many rows the sweep fits k-means on a sample and assigns the rest
FIT_SAMPLE = 100_000  # rows of that sample: k-means' centroids are stable long before, the assignment is cheap
ASSIGN_CHUNK = 65_536  # rows searched at once when assigning to centroids: bounds the distance arrays


def sweep_k(
    embeddings: np.ndarray,
    grid: Sequence[int],
    *,
    seed: int = 0,
    silhouette_sample: int = 10_000,
    on_k_done: Callable[[SweepPoint], None] | None = None,
    clusterer: str = DEFAULT_CLUSTERER,
    fit_sample_above: int = FIT_SAMPLE_ABOVE,
    fit_sample: int = FIT_SAMPLE,
) -> tuple[list[SweepPoint], dict[int, np.ndarray]]:
    """Fit the registered ``clusterer`` (k-means) for every k of ``grid``; returns the diagnostics and the labels
    per k. Above ``fit_sample_above`` rows each fit uses a seeded sample of ``fit_sample`` rows and every row is
    assigned to its nearest centroid."""
    points: list[SweepPoint] = []
    labels_by_k: dict[int, np.ndarray] = {}
    n = len(embeddings)
    sample = fit_rows_sample(n, fit_sample_above, fit_sample, seed)
    for k in sorted(set(int(k) for k in grid)):
        if sample is None:
            result = CLUSTERERS.build(clusterer, k=k, seed=seed).fit(embeddings)
        else:
            fitted = CLUSTERERS.build(clusterer, k=k, seed=seed).fit(embeddings[sample])
            result = assign_to_centroids(embeddings, fitted.centroids)
        kept = drop_empty_clusters(result.labels)
        score, used = silhouette(embeddings, kept, sample=silhouette_sample, seed=seed)
        sizes = np.bincount(kept)
        point = SweepPoint(
            k,
            result.inertia,
            score,
            used,
            int(sizes.min()),
            float(np.median(sizes)),
            int(sizes.max()),
            seed,
            n_clusters=len(sizes),
            fit_rows=None if sample is None else len(sample),
        )
        points.append(point)
        labels_by_k[k] = kept
        if on_k_done:
            on_k_done(point)
    return points, labels_by_k


def fit_rows_sample(n: int, fit_sample_above: int, fit_sample: int, seed: int) -> np.ndarray | None:
    """The sorted seeded rows the sweep fits on, or None when it fits on all ``n`` rows."""
    if n <= fit_sample_above or fit_sample >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, fit_sample, replace=False))


def assign_to_centroids(embeddings: np.ndarray, centroids: np.ndarray) -> Clustering:
    """Every row's nearest centroid (squared L2, exact, in chunks) and the inertia summed over every row."""
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    labels = np.empty(len(embeddings), dtype=np.int32)
    inertia = 0.0
    for start in range(0, len(embeddings), ASSIGN_CHUNK):
        chunk = np.ascontiguousarray(embeddings[start : start + ASSIGN_CHUNK], dtype=np.float32)
        distances, nearest = index.search(chunk, 1)
        labels[start : start + len(chunk)] = nearest[:, 0]
        inertia += float(distances.sum(dtype=np.float64))
    return Clustering(labels, centroids, inertia)


def sample_note(points: Sequence[SweepPoint], n_rows: int) -> str | None:
    """What a user should know when the sweep was fitted on a sample, e.g. "k-means fitted on a 100,000-row
    sample, assigned over 1,000,000 rows; silhouette on 10,000 rows"; None when every k was fitted on all rows."""
    fitted = sorted({p.fit_rows for p in points if p.fit_rows is not None})
    if not fitted:
        return None
    rows = " / ".join(f"{f:,}" for f in fitted)
    used = sorted({p.silhouette_sample for p in points if p.silhouette_sample})
    silhouette = f"; silhouette on {' / '.join(f'{u:,}' for u in used)} rows" if used else ""
    return (
        f"k-means fitted on a {rows}-row sample, assigned over {n_rows:,} rows{silhouette}; "
        "inertia summed over every row."
    )


def drop_empty_clusters(labels: np.ndarray) -> np.ndarray:
    """The same partition with empty clusters dropped: ids renumbered 0..k'-1 in the order of the old ids."""
    _, renumbered = np.unique(labels, return_inverse=True)
    return renumbered.reshape(labels.shape).astype(np.int32)


def best_silhouette_k(points: Sequence[SweepPoint]) -> int | None:
    """The k with the highest silhouette (ties: the smaller k), among the k fitted in full; None when none has one.

    An undefined (NaN) silhouette, or a fit with fewer clusters than k, says nothing about that k: calling it
    "best" would present one cluster of everything as a choice.
    """
    scored = [p for p in points if p.full and np.isfinite(p.silhouette)]
    if not scored:
        return None
    return max(scored, key=lambda p: (p.silhouette, -p.k)).k


def knee_k(points: Sequence[SweepPoint]) -> int | None:
    """The elbow of inertia against k (kneedle, convex and decreasing), or None when there is none.

    Only k values fitted in full count: past the number of distinct points the inertia is rounding noise,
    whose "knee" would be anywhere.
    """
    points = [p for p in points if p.full]
    if len(points) < 3:
        return None
    from kneed import KneeLocator

    ks = [p.k for p in points]
    inertias = [p.inertia for p in points]
    knee = KneeLocator(ks, inertias, curve="convex", direction="decreasing").knee
    return int(knee) if knee is not None else None


def choose_default_k(points: Sequence[SweepPoint]) -> KChoice:
    """The best silhouette k; when there is none, the knee; else the smallest k swept. ``reason`` says why."""
    best, knee = best_silhouette_k(points), knee_k(points)
    if best is not None:
        return KChoice(best, best, knee)
    smallest = min(points, key=lambda p: p.k)
    if not any(p.full for p in points):
        why = (
            f"the data has fewer distinct points than any k swept (k={smallest.k} found only "
            f"{smallest.n_clusters} non-empty cluster{'' if smallest.n_clusters == 1 else 's'})"
        )
    else:
        why = "the silhouette is undefined for every k swept (each fit put almost all rows in one cluster)"
    if knee is not None:
        return KChoice(knee, None, knee, f"No best k by silhouette: {why}; using the elbow's knee, k={knee}.")
    return KChoice(smallest.k, None, None, f"No best k by silhouette and no knee: {why}; using k={smallest.k}.")


def sweep_notes(points: Sequence[SweepPoint], n_rows: int, *, extend_hint: str) -> list[str]:
    """What a user should know before trusting the sweep's default k: why there is no best k, which k came
    out with fewer clusters, and whether the best k sits at the edge of the grid (with ``extend_hint``
    saying how to sweep further, and suggested values)."""
    if not points:
        return []
    choice = choose_default_k(points)
    notes = [choice.reason] if choice.reason else []
    short = [p for p in points if not p.full]
    if short:
        pairs = ", ".join(f"k={p.k} gave {p.n_clusters}" for p in short)
        notes.append(f"Empty clusters were dropped (the data has fewer distinct points than k): {pairs}.")
    edge = _edge_note(points, choice.best_k, n_rows)
    if edge:
        notes.append(f"{edge} {extend_hint}")
    return notes


def _edge_note(points: Sequence[SweepPoint], best: int | None, n_rows: int) -> str | None:
    """A note when the best k is the largest or smallest k swept (the silhouette may peak outside the grid)."""
    ks = sorted(p.k for p in points)
    if best is None or len(ks) < 2:
        return None
    if best == ks[-1]:
        more = sorted({k for k in (round(best * 1.25), round(best * 1.5), best * 2) if best < k < n_rows})
        side = "largest"
    elif best == ks[0]:
        more = sorted({k for k in (best // 2, round(best * 0.75), best - 1) if 2 <= k < best})
        side = "smallest"
    else:
        return None
    if not more:
        return None  # nothing left to sweep on that side (k=2, or k next to the number of rows)
    values = ", ".join(map(str, more))
    return (
        f"The best silhouette k={best} is the {side} k swept: the silhouette may peak outside the grid; try k={values}."
    )


def representatives(embeddings: np.ndarray, labels: np.ndarray, chunk: int = ASSIGN_CHUNK) -> dict[int, int]:
    """Each cluster's representative row: the one closest (cosine) to the mean of its rows' embeddings.

    The exact medoid (least total distance to the cluster's other rows) costs a cluster's size squared; the
    row nearest the centre is the usual stand-in (BERTopic's representative documents, Lilac's cluster
    examples) and costs two passes over the rows, in chunks so no (rows x dimensions) copy is made."""
    from scipy import sparse

    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return {}
    n_clusters = int(labels.max()) + 1
    sums = np.zeros((n_clusters, embeddings.shape[1]), dtype=np.float64)
    for start in range(0, len(labels), chunk):  # a one-hot (clusters x rows) product sums each cluster's rows
        part = labels[start : start + chunk]
        one_hot = sparse.csr_matrix((np.ones(len(part)), (part, np.arange(len(part)))), shape=(n_clusters, len(part)))
        sums += one_hot @ np.asarray(embeddings[start : start + chunk], dtype=np.float64)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    centres = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    best = np.full(n_clusters, -np.inf)
    best_row = np.full(n_clusters, -1, dtype=np.int64)
    for start in range(0, len(labels), chunk):
        part = labels[start : start + chunk]
        rows = np.asarray(embeddings[start : start + chunk], dtype=np.float32)
        row_norms = np.linalg.norm(rows, axis=1)
        cosine = np.einsum("ij,ij->i", rows, centres[part]) / np.where(row_norms > 0, row_norms, 1.0)
        # the best row of each cluster in this chunk (highest cosine, then the lowest row), kept if it beats
        # the chunks before
        order = np.lexsort((np.arange(len(part)), -cosine, part))
        first = order[np.r_[True, part[order][1:] != part[order][:-1]]]
        better = cosine[first] > best[part[first]]
        best[part[first][better]] = cosine[first][better]
        best_row[part[first][better]] = start + first[better]
    return {int(c): int(r) for c, r in enumerate(best_row) if r >= 0}
