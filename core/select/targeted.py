"""Targeted selection strategies: LESS, G2IS and their ablations and baseline, and RDS+ (docs/algorithms.md 4,
4.10, 5).

They pick the examples whose training would help a **target set** (a JSONL of the task the curator cares
about, e.g. a few dozen GSM8K problems), given as the ``target`` parameter: a path, or several paths
separated by commas, each a sub-task (LESS takes the max over sub-tasks; G2IS pools them). The gradient
ones read the pool's LoRA-gradient features and the target's (:mod:`core.gradients.pipeline`); the
algorithms themselves are in :mod:`core.select.walk`. RDS+ reads the base model's pooled hidden states
(:mod:`core.hidden.pipeline`); its selection is in :mod:`core.select.rds`. Registered like every other
strategy, so the Select page, the Runs page and the CLI offer them with no code of their own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np

from core.select import rds, walk
from core.select.pool import Pool
from core.select.strategies import STRATEGIES

Refill = Literal["none", "next_component", "less_topk"]


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class LessStrategy:
    """LESS (Xia et al. 2024): top-b by the max over target sub-tasks of the mean cosine between an
    example's Adam-preconditioned LoRA gradient and the sub-task's plain gradients. One checkpoint (the
    warmup's end), where LESS sums several weighted by their learning rates (docs/algorithms.md 4.2 item 4)."""

    name: ClassVar[str] = "less"
    title: ClassVar[str] = "LESS (LoRA gradients toward a target)"
    needs: ClassVar[frozenset[str]] = frozenset({"gradients", "target"})
    uses_cluster_weights: ClassVar[bool] = False
    target: str = ""

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        return walk.less_select(pool.array("gradients"), pool.array("target_gradients"), budget, pool.target_groups)


@dataclasses.dataclass(frozen=True)
class _WalkParameters:
    """G2IS's flags (docs/algorithms.md 4.4-4.6), shared by the walk and its ablations; paper defaults."""

    target: str = ""
    delta: float = 0.8
    pca_ratio: float = 0.5
    pca_mode: Literal["variance", "count"] = "variance"
    center: bool = True
    orient: bool = True
    refill: Refill = "none"
    anchors: int = 1000
    neighbours: int = 100

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        """The picks of the walk strategy's ``select_with_report`` (the subclasses that walk define it)."""
        return self.select_with_report(pool, budget, rng=rng)[0]  # type: ignore[attr-defined]

    def components(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return walk.core_knowledge(
            targets, ratio=self.pca_ratio, mode=self.pca_mode, center=self.center, orient=self.orient
        )

    def walk(
        self,
        features: np.ndarray,
        neighbours: np.ndarray,
        targets: np.ndarray,
        budget: int,
        groups: np.ndarray | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        components, weights = self.components(targets)
        result = walk.gradient_walk(
            features,
            neighbours[:, : self.neighbours],
            components,
            weights,
            budget,
            delta=self.delta,
            anchors=self.anchors,
            refill=self.refill,
            target_features=targets,
            target_groups=groups,
        )
        return result.picks, _walk_report(result, len(components))


def _walk_report(result: Any, n_components: int) -> dict[str, Any]:
    """What the Select page and the manifest show: components, how each pick was reached, the shortfall."""
    report: dict[str, Any] = {
        "components": n_components,
        "component_budgets": [int(b) for b in result.budgets],
        "pick_component": [int(c) for c in result.component],
        "pick_via": [str(v) for v in result.via],
    }
    report["component_stops"] = list(result.stop_reasons)
    if result.shortfall:
        report["why"] = "the walk found no further example satisfying the no-conflict and consistency rules"
    return report


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class G2ISStrategy(_WalkParameters):
    """G2IS (docs/algorithms.md 4.5): the gradient walk over the top-M gradient-neighbour graph toward the
    target's principal gradient directions. ``delta`` is the consistency threshold, ``pca_ratio`` and
    ``pca_mode`` choose the components, ``center=False`` is the uncentered-SVD ablation, ``orient`` flips
    each component toward the mean target gradient (the recommended fix; False reproduces the code),
    ``refill`` fills a short walk (``none``: the code, the output may be shorter than the budget, and the
    selection's report says by how much), ``neighbours`` is M (at most what the stored graph holds)."""

    name: ClassVar[str] = "g2is"
    title: ClassVar[str] = "G2IS (gradient-graph walk toward a target)"
    needs: ClassVar[frozenset[str]] = frozenset({"gradients", "graph", "target"})
    uses_cluster_weights: ClassVar[bool] = False

    def select_with_report(
        self, pool: Pool, budget: int, *, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, Any]]:
        features, neighbours = pool.array("gradients"), pool.array("neighbours")
        return self.walk(features, neighbours, pool.array("target_gradients"), budget, pool.target_groups)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class G2ISNoGraphStrategy(_WalkParameters):
    """G2IS "w/o graph" ablation: per principal target direction, its budget share of the examples with
    the highest signed cosine to it, with no walk (our reading of the paper's ablation)."""

    name: ClassVar[str] = "g2is_no_graph"
    title: ClassVar[str] = "G2IS without the graph (ablation)"
    needs: ClassVar[frozenset[str]] = frozenset({"gradients", "target"})
    uses_cluster_weights: ClassVar[bool] = False

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        components, weights = self.components(pool.array("target_gradients"))
        return walk.walk_without_graph(pool.array("gradients"), components, weights, budget).picks


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class G2ISEmbeddingStrategy(_WalkParameters):
    """G2IS "w/o gradient" ablation: the same walk on sentence embeddings (the dataset's embedder) of the
    pool and of the target set, over a top-M embedding-neighbour graph built on the fly."""

    name: ClassVar[str] = "g2is_embeddings"
    title: ClassVar[str] = "G2IS on embeddings (ablation)"
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings", "target_embeddings"})
    uses_cluster_weights: ClassVar[bool] = False

    def select_with_report(
        self, pool: Pool, budget: int, *, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, Any]]:
        from core.gradients.graph import top_neighbours

        features = np.asarray(pool.array("embeddings"), dtype=np.float32)
        neighbours, _ = top_neighbours(features, min(self.neighbours, max(len(features) - 1, 1)))
        targets = np.asarray(pool.array("target_embeddings"), dtype=np.float32)
        return self.walk(features, neighbours, targets, budget, pool.target_groups)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class EmbeddingKNNStrategy:
    """Sentence-embedding kNN (G2IS's Sentence-BERT baseline): top-b by mean cosine between an example's
    embedding and the target rows' embeddings (same embedder and fields as the dataset)."""

    name: ClassVar[str] = "embedding_knn"
    title: ClassVar[str] = "Embedding kNN (nearest to a target)"
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings", "target_embeddings"})
    uses_cluster_weights: ClassVar[bool] = False
    target: str = ""

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        return walk.embedding_knn_select(pool.array("embeddings"), pool.array("target_embeddings"), budget)


@STRATEGIES.register
@dataclasses.dataclass(frozen=True)
class RDSPlusStrategy:
    """RDS+ (Ivison et al. 2025, docs/algorithms.md 4.10): cosine between the base model's position-weighted
    mean-pooled final hidden states of each example and of each target row; ``round_robin`` lets the target rows
    take turns, each picking its most similar example not picked yet, ``max`` takes the examples with the highest
    best cosine to any target row."""

    name: ClassVar[str] = "rds_plus"
    title: ClassVar[str] = "RDS+ (base-model hidden states toward a target)"
    needs: ClassVar[frozenset[str]] = frozenset({"hidden_states", "target_hidden_states"})
    uses_cluster_weights: ClassVar[bool] = False
    target: str = ""
    aggregation: Literal["round_robin", "max"] = "round_robin"

    def select(self, pool: Pool, budget: int, *, rng: np.random.Generator) -> np.ndarray:
        scores = rds.similarities(pool.array("hidden_states"), pool.array("target_hidden_states"))
        if self.aggregation == "max":
            return rds.top_by_max(scores, budget)
        # several target files: the files take turns, each by its rows' best cosine (the authors' multi-task form)
        return rds.round_robin(rds.by_group_max(scores, pool.target_groups), budget)
