"""Selection strategies behind one protocol and registry (docs/algorithms.md sections 2, 3.4 and 5).

Each strategy is a frozen dataclass whose fields are its hyperparameters (:func:`core.registry.params_of`
describes them, ``Literal`` fields as choices; the Select and Runs pages build their forms from that).
``select`` returns positions into the pool, in pick order, at most ``budget`` of them, all distinct;
randomness only comes from the ``rng`` it is given.
Where a paper and its code disagree, the field defaults to the paper and the docstring says so.

The strategies that rank by quality or length carry ``include_empty`` (default False): rows whose response is
empty or whitespace only are then left out before they run, by :func:`core.select.run.pick`, the one place
that does it; ``include_empty=true`` lets them be picked. An empty answer has no IFD or perplexity, so
ranking by those has nothing to say about it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from core.errors import MissingScores
from core.registry import Param, Registry, param
from core.select import greedy
from core.select.allocation import allocate, equal_floor
from core.select.pool import Pool


class SelectionStrategy(Protocol):
    """Picks at most ``budget`` distinct positions of ``pool``, in order. ``name`` is its id (CLI, job files,
    manifests), ``title`` the human name the pages' pickers show."""

    name: ClassVar[str]
    title: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    uses_cluster_weights: ClassVar[bool]

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray: ...


STRATEGIES: Registry[SelectionStrategy] = Registry("selection strategy")

Allocation = Literal["proportional", "equal", "equal_floor"]


def include_empty_param() -> Any:
    """The ``include_empty`` field of the strategies that leave empty responses out (a fresh field each)."""
    return param(False, help="also pick rows whose response is empty or whitespace only (left out by default)")


def candidates_param() -> Any:
    """The ``candidates`` field of the greedy strategies that pass over the pool per pick (a fresh field each)."""
    return param(
        0,
        help="pick from a seeded shortlist of this many rows, drawn per cluster in proportion to its size "
        "(0: the whole pool); bounds the run on a large pool (core/select/cost.py)",
        low=0,
    )


def shortlist(pool: Pool, candidates: int, budget: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted positions of a seeded shortlist of ``max(candidates, budget)`` rows, each cluster's share by its
    size; None (the whole pool) when ``candidates`` is 0 or the shortlist would hold the whole pool."""
    size = max(candidates, budget)
    if candidates <= 0 or size >= len(pool):
        return None
    _, inverse, sizes = np.unique(pool.cluster_ids, return_inverse=True, return_counts=True)
    groups = np.split(np.argsort(inverse, kind="stable"), np.cumsum(sizes)[:-1])
    quotas = allocate(sizes, size)
    return np.sort(np.concatenate([rng.choice(g, q, replace=False) for g, q in zip(groups, quotas, strict=True)]))


def parameters(name: str) -> list[Param]:
    """The hyperparameters of strategy ``name`` with their types, defaults and choices (see :class:`Param`)."""
    return STRATEGIES.params(name)


def _cluster_quotas(pool: Pool, budget: int, allocation: str) -> tuple[np.ndarray, np.ndarray]:
    clusters, sizes = np.unique(pool.cluster_ids, return_counts=True)
    weights = np.array([pool.cluster_weights.get(int(c), 1.0) for c in clusters])
    if allocation == "equal_floor":
        quotas = np.where(weights > 0, equal_floor(sizes, budget), 0)
    else:
        quotas = allocate(sizes, budget, mode=allocation, weights=weights)
    return clusters, quotas


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class RandomStrategy:
    """Uniform sample without replacement."""

    name: ClassVar[str] = "random"
    title: ClassVar[str] = "Random (uniform sample)"
    needs: ClassVar[frozenset[str]] = frozenset()
    uses_cluster_weights: ClassVar[bool] = False

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(pool), size=min(budget, len(pool)), replace=False)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class LongestStrategy:
    """The longest responses ("Long Is More"), length in words and punctuation marks; ties by row order."""

    name: ClassVar[str] = "longest"
    title: ClassVar[str] = "Longest responses"
    needs: ClassVar[frozenset[str]] = frozenset({"outputs"})
    uses_cluster_weights: ClassVar[bool] = False
    include_empty: bool = include_empty_param()

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        return np.argsort(-pool.response_tokens(), kind="stable")[:budget]


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class IFDTopKStrategy:
    """Cherry / Superfiltering: drop IFD >= 1 (the instruction does not help), then the highest IFD.

    Returns fewer than the budget when fewer examples have IFD < 1.
    """

    name: ClassVar[str] = "ifd_topk"
    title: ClassVar[str] = "IFD top-k (Cherry / Superfiltering)"
    needs: ClassVar[frozenset[str]] = frozenset({"scores"})
    uses_cluster_weights: ClassVar[bool] = False
    include_empty: bool = include_empty_param()

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        ifd = pool.score("ifd", "ifd")
        helped = np.flatnonzero(np.isfinite(ifd) & (ifd < 1))
        return helped[np.argsort(-ifd[helped], kind="stable")][:budget]


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class KMRandomStrategy:
    """kM-Random: the k-means clusters, quotas by ``allocation``, uniform sampling within each cluster."""

    name: ClassVar[str] = "km_random"
    title: ClassVar[str] = "kM-Random (random within k-means clusters)"
    needs: ClassVar[frozenset[str]] = frozenset()
    uses_cluster_weights: ClassVar[bool] = True
    allocation: Allocation = "proportional"

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        clusters, quotas = _cluster_quotas(pool, budget, self.allocation)
        picks = [
            rng.choice(np.flatnonzero(pool.cluster_ids == cluster), size=quota, replace=False)
            for cluster, quota in zip(clusters, quotas, strict=True)
            if quota > 0
        ]
        return np.concatenate(picks) if picks else np.array([], dtype=int)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class BalancedRandomStrategy:
    """Balanced random: each stratum (a cluster, or a value of a column such as ``source``) gets its share of the
    budget by size, drawn uniformly without replacement.

    Quotas are proportional to stratum size, rounded by largest remainder (core/select/allocation.py), so
    every stratum's share is within one example of proportional. Rows without a value in the column form
    one stratum, "(none)"; a column no row has is refused with the columns the dataset has.
    Cluster weights: ``uses_cluster_weights`` is False, so the strata quotas go by size alone. When the
    curator has weighted a kept cluster, the run first splits the budget over the clusters by size x weight
    and stratifies inside each (core/select/run.py, as for every strategy that does not read the weights):
    with ``by=cluster`` that is exactly kM-Random's weighted quotas, the curator's weights honoured; with a
    column, its shares then hold inside each cluster rather than over the whole selection.
    """

    name: ClassVar[str] = "balanced_random"
    title: ClassVar[str] = "Balanced random (uniform within strata)"
    needs: ClassVar[frozenset[str]] = frozenset({"strata"})
    uses_cluster_weights: ClassVar[bool] = False
    by: str = param(
        "cluster",
        help="what the strata are: cluster (the k-means clusters at the selection's k) or a column of the "
        "dataset's rows, e.g. source",
    )

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        groups = pool.cluster_ids if self.by == "cluster" else pool.array("strata")
        _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        quotas = allocate(sizes, budget)
        picks = [
            rng.choice(np.flatnonzero(inverse == stratum), size=int(quota), replace=False)
            for stratum, quota in enumerate(quotas)
            if quota > 0
        ]
        return np.concatenate(picks) if picks else np.array([], dtype=int)


SOFTMAX_SPAN = 35.0
"""kMQ's ``within=softmax`` logits are this times quality / temperature: the span of the kMQ code's integer scores
(1 to 36, int quality x int complexity), so that temperature 1 reproduces its draw (docs/algorithms.md 2.3)."""


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class KMQStrategy:
    """kMQ (docs/algorithms.md 2.2): k-means clusters, quotas by ``allocation``, quality sampling within.

    within: ``weighted`` draws with p proportional to quality, repeated draws of the same example
    redrawn (the paper's multinomial with duplicates removed; default), ``softmax`` draws without
    replacement with p = softmax(35 x quality / temperature), ``uniform`` is kM-Random.
    temperature (``softmax`` only): on the kMQ code's score scale. The code's scores are integers from 1 to
    36 (int quality x int complexity, each 1-6) and it draws with p = exp(s) / sum exp(s); a quality q in
    [0, 1] is put on that 35-point span, s = 1 + 35 q, so temperature 1 (default) is the code's sharpness (a
    5-point gap, q 1/7 apart, weighs 148 times) and higher temperatures flatten the draw. A raw score
    named in ``quality`` is taken as is: one already on the code's 1-36 scale needs temperature 35.
    allocation: ``proportional`` to size (paper), ``equal`` shares with redistribution, or
    ``equal_floor``, the code's floor(b/k) capped at the cluster size, which may return fewer than b.
    quality: ``combined`` (the curator's combined quality) or the name of a raw score, e.g. ``reward``.
    Empty responses are left out first (unless ``include_empty``), so a cluster of nothing else gets no
    quota and its share goes to the others.
    """

    name: ClassVar[str] = "kmq"
    title: ClassVar[str] = "kMQ (k-means quality)"
    needs: ClassVar[frozenset[str]] = frozenset({"scores"})
    uses_cluster_weights: ClassVar[bool] = True
    allocation: Allocation = "proportional"
    within: Literal["weighted", "softmax", "uniform"] = "weighted"
    quality: str = "combined"
    temperature: float = param(
        1.0,
        help="within=softmax: p = softmax(35 x quality / temperature), quality in [0, 1] put on the kMQ code's "
        "1-36 score span; 1 is the code's sharpness (nearly top-k in a cluster), higher is flatter",
        low=0.001,
    )
    include_empty: bool = include_empty_param()

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        q = pool.quality(self.quality)
        clusters, quotas = _cluster_quotas(pool, budget, self.allocation)
        picks = []
        for cluster, quota in zip(clusters, quotas, strict=True):
            if quota > 0:
                members = np.flatnonzero(pool.cluster_ids == cluster)
                picks.append(members[self._draw(q[members], int(quota), rng)])
        return np.concatenate(picks) if picks else np.array([], dtype=int)

    def _draw(self, q: np.ndarray, quota: int, rng: np.random.Generator) -> np.ndarray:
        if self.within == "uniform":
            return rng.choice(len(q), size=quota, replace=False)
        if self.within == "softmax":  # max-subtracted, unlike the code's: no overflow, the same p
            logits = SOFTMAX_SPAN * (q - q.max()) / max(self.temperature, 1e-9)
            p = np.exp(logits)
        else:
            p = np.clip(q - min(q.min(), 0.0), 0, None)
        positive = np.flatnonzero(p > 0)
        if len(positive) < quota:  # too few with nonzero quality: take them all, fill the rest uniformly
            rest = rng.permutation(np.flatnonzero(p <= 0))[: quota - len(positive)]
            return np.concatenate([rng.permutation(positive), rest])
        return rng.choice(len(q), size=quota, replace=False, p=p / p.sum())


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class KMClosestStrategy:
    """kM-Closest: k-means with k = budget on the pool's embeddings, the example nearest each centroid.

    The code can pick an example twice (two centroids, one nearest point); here the second centroid
    takes its next-nearest free example, so ids stay unique.
    """

    name: ClassVar[str] = "km_closest"
    title: ClassVar[str] = "kM-Closest (nearest each k-means centroid)"
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    uses_cluster_weights: ClassVar[bool] = False
    iterations: int = 20

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        import faiss

        vectors = np.ascontiguousarray(pool.array("embeddings"), dtype=np.float32)
        budget = min(budget, len(vectors))
        if budget == len(vectors):
            return np.arange(budget)
        kmeans = faiss.Kmeans(
            vectors.shape[1], budget, niter=self.iterations, seed=int(rng.integers(2**31)), spherical=True
        )
        kmeans.train(vectors)
        if kmeans.centroids is None:
            raise RuntimeError("faiss k-means finished training without centroids")
        return greedy.closest_to_centroids(vectors, kmeans.centroids)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class KCenterStrategy:
    """Greedy k-center (farthest-first) on cosine distance; the first center is drawn with the seed."""

    name: ClassVar[str] = "k_center"
    title: ClassVar[str] = "k-Center (farthest-first coverage)"
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    uses_cluster_weights: ClassVar[bool] = False
    candidates: int = candidates_param()

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        short = shortlist(pool, self.candidates, budget, rng)
        if short is not None:
            return short[dataclasses.replace(self, candidates=0).select(pool.subset(short), budget, rng=rng)]
        vectors = np.ascontiguousarray(pool.array("embeddings"), dtype=np.float32)
        return greedy.farthest_first(vectors, budget, first=int(rng.integers(len(vectors))))


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class DeitaStrategy:
    """Deita: examples by descending score, each kept only if its cosine to every kept one is <= threshold.

    Deita's own score (LLaMA complexity x quality scorers) is not available offline; ``quality`` names
    the score used instead (default the combined quality). The kMQ code's "Deita" baseline uses a
    squared L2 cut of 0.9 (cosine 0.55); Deita's paper uses cosine 0.9, the default here.
    """

    name: ClassVar[str] = "deita"
    title: ClassVar[str] = "Deita (score with a diversity filter)"
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings", "scores"})
    uses_cluster_weights: ClassVar[bool] = False
    threshold: float = 0.9
    quality: str = "combined"
    include_empty: bool = include_empty_param()

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        order = np.argsort(-pool.quality(self.quality), kind="stable")
        vectors = np.ascontiguousarray(pool.array("embeddings"), dtype=np.float32)
        return greedy.redundancy_filter(vectors, order, budget, self.threshold)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class QDITStrategy:
    """QDIT: greedy max of (1 - alpha) * coverage + alpha * sum of quality, by lazy greedy.

    coverage = sum over the pool of each example's best cosine to the selection (clipped at 0). With
    ``normalise_coverage`` (default) it is a mean, not a sum: as a sum it grows with the pool and
    drowns the quality term for any alpha short of 1 on real pool sizes. ``neighbours`` > 0 counts an
    example's cosine only to its that-many nearest neighbours (a faiss k-NN graph): on 50k examples
    the dense form needs minutes, this seconds, and at a 10 % budget an example's best cover is almost
    always among its 64 nearest. 0 gives the exact dense objective.
    """

    name: ClassVar[str] = "qdit"
    title: ClassVar[str] = "QDIT (quality-diversity greedy)"
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings", "scores"})
    uses_cluster_weights: ClassVar[bool] = False
    alpha: float = 0.5
    quality: str = "combined"
    normalise_coverage: bool = True
    neighbours: int = 64
    include_empty: bool = include_empty_param()
    candidates: int = candidates_param()

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        short = shortlist(pool, self.candidates, budget, rng)
        if short is not None:  # coverage is then measured over the shortlist: a sample of the pool
            return short[dataclasses.replace(self, candidates=0).select(pool.subset(short), budget, rng=rng)]
        vectors = np.ascontiguousarray(pool.array("embeddings"), dtype=np.float32)
        q = pool.quality(self.quality)
        if self.neighbours <= 0 or self.neighbours + 1 >= len(vectors):
            return greedy.facility_location(vectors, q, budget, self.alpha, normalise=self.normalise_coverage)
        graph = greedy.knn_graph(vectors, self.neighbours)
        return greedy.sparse_facility_location(graph, q, budget, self.alpha, normalise=self.normalise_coverage)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class IterITGreedyStrategy:
    """IterIT's static selection (docs/algorithms.md 3.4): IFD < 1, then greedy IFD x response TF-IDF with decay.

    The TF-IDF (1..``ngram_max``-grams, sklearn defaults, L2 rows) is fitted on the candidates'
    responses. ``decay`` (lambda) is 0.1 for general data, 0 for domain data (hard n-gram removal).
    ``score``: ``both`` (IFD x TF-IDF, default), ``ifd`` (IFD only), ``diversity`` (IFD taken as 1).
    """

    name: ClassVar[str] = "iterit_greedy"
    title: ClassVar[str] = "IterIT static (IFD x TF-IDF greedy)"
    needs: ClassVar[frozenset[str]] = frozenset({"scores", "outputs"})
    uses_cluster_weights: ClassVar[bool] = False
    decay: float = 0.1
    ngram_max: int = 3
    score: Literal["both", "ifd", "diversity"] = "both"
    include_empty: bool = include_empty_param()

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer

        ifd = pool.score("ifd", "ifd")
        candidates = np.flatnonzero(np.isfinite(ifd) & (ifd < 1))
        if self.score == "ifd":
            return candidates[np.argsort(-ifd[candidates], kind="stable")][:budget]
        texts = [pool.outputs[i] for i in candidates] if pool.outputs is not None else None
        if not texts:
            if texts is None:
                raise MissingScores("this strategy needs the response texts")
            return np.array([], dtype=int)
        try:
            tfidf = TfidfVectorizer(ngram_range=(1, self.ngram_max)).fit_transform(texts)
        except ValueError:  # no candidate response has a word: diversity is zero everywhere
            return candidates[np.argsort(-ifd[candidates], kind="stable")][:budget]
        weight = np.ones(len(candidates)) if self.score == "diversity" else ifd[candidates]
        return candidates[greedy.tfidf_greedy(tfidf, weight, budget, self.decay)[0]]


from core.select import targeted  # noqa: E402, F401  (registers less, g2is and the other targeted strategies)
