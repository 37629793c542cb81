"""The pool a selection strategy sees: the examples the curator kept, aligned arrays, loaded on demand.

A vetoed example, or any example of a vetoed cluster (at the clustering ``k`` the selection uses), is
not in the pool at all, so no strategy can select it. Cluster weights travel with the pool; strategies
that allocate per cluster use them, and :mod:`core.select.run` applies them to the others.

Only what a strategy declares in ``needs`` is loaded: embeddings (``embeddings``), the combined quality
and raw scores (``scores``), the response texts (``outputs``), LoRA-gradient features (``gradients``),
their neighbour graph (``graph``), the target set's gradient features (``target``) and its sentence
embeddings (``target_embeddings``). The target set is a strategy's ``target`` parameter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import numpy as np
import pandas as pd

from core.score import quality
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store

_TOKEN = re.compile(r"\w+|[^\w\s]")


class MissingScores(ValueError):
    """A strategy needs scores the dataset does not have yet; the message says which scorer to run."""


@dataclasses.dataclass(frozen=True)
class Pool:
    """Eligible examples in row order. ``scores`` has the raw signals and ``quality`` the combined quality."""

    row_idx: np.ndarray
    example_ids: list[str]
    cluster_ids: np.ndarray
    cluster_weights: dict[int, float]
    embeddings: np.ndarray | None = None
    scores: pd.DataFrame | None = None
    outputs: list[str] | None = None
    gradients: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    target_gradients: np.ndarray | None = None
    target_groups: np.ndarray | None = None
    target_embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.row_idx)

    def subset(self, positions: np.ndarray) -> Pool:
        """The pool restricted to ``positions`` (kept in the given order)."""
        positions = np.asarray(positions, dtype=int)
        return Pool(
            row_idx=self.row_idx[positions],
            example_ids=[self.example_ids[i] for i in positions],
            cluster_ids=self.cluster_ids[positions],
            cluster_weights=self.cluster_weights,
            embeddings=None if self.embeddings is None else self.embeddings[positions],
            scores=None if self.scores is None else self.scores.iloc[positions].reset_index(drop=True),
            outputs=None if self.outputs is None else [self.outputs[i] for i in positions],
            gradients=None if self.gradients is None else self.gradients[positions],
            neighbours=None if self.neighbours is None else _restrict(self.neighbours, positions, len(self)),
            target_gradients=self.target_gradients,
            target_groups=self.target_groups,
            target_embeddings=self.target_embeddings,
        )

    def score(self, name: str, scorer: str) -> np.ndarray:
        """A raw score (or ``combined`` quality) as floats; an error naming the scorer to run when missing."""
        if self.scores is None or name not in self.scores or self.scores[name].isna().all():
            raise MissingScores(f"this strategy needs the {name!r} score; run the {scorer!r} scorer first")
        return self.scores[name].to_numpy(dtype=float)

    def quality(self, name: str = "combined") -> np.ndarray:
        """Per-example quality in [0, 1] (``combined``) or a named raw score; NaN becomes the lowest value."""
        values = self.score(name, "heuristics" if name == "combined" else name)
        finite = values[np.isfinite(values)]
        return np.where(np.isfinite(values), values, finite.min() if len(finite) else 0.0)

    def response_tokens(self) -> np.ndarray:
        """Words and punctuation marks per response: a model-independent length."""
        if self.outputs is None:
            raise MissingScores("this strategy needs the response texts")
        return np.array([len(_TOKEN.findall(text)) for text in self.outputs])

    def fingerprint(self) -> str:
        """Hash of the eligible example ids and their clusters: equal pools give equal hashes."""
        digest = hashlib.sha256()
        for example_id, cluster in zip(self.example_ids, self.cluster_ids.tolist(), strict=True):
            digest.update(f"{example_id}:{cluster}\n".encode())
        return digest.hexdigest()[:16]


def _restrict(neighbours: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """A neighbour table over ``size`` positions cut down to ``positions``: indices renumbered, neighbours
    outside dropped, each row keeping its order and padded with -1 at the end."""
    renumber = np.full(size + 1, -1, dtype=np.int64)  # the extra last slot maps the padding -1 to -1
    renumber[positions] = np.arange(len(positions))
    mapped = renumber[neighbours[positions]]
    order = np.argsort(mapped < 0, axis=1, kind="stable")  # kept neighbours first, in their order
    return np.take_along_axis(mapped, order, axis=1)


def load_pool(
    store: Store,
    dataset: ds.DatasetInfo,
    k: int,
    needs: frozenset[str],
    *,
    kept_only: bool = True,
    target: str | None = None,
) -> Pool:
    """The kept examples of ``dataset`` at clustering ``k`` with what ``needs`` asks for.

    ``kept_only=False`` gives every example, vetoed or not: the selection loops take the curator's
    decisions round by round (:func:`current_decisions`) instead of freezing them at launch.
    """
    kept = (curation.kept_rows if kept_only else curation.all_rows)(store, dataset.dataset_id, k)
    rows = kept.row_idx.to_numpy(dtype=int)
    table = curation.clusters(store, dataset.dataset_id, k)
    weights = {int(c): float(w) for c, w in zip(table.cluster_id, table.weight, strict=True)}
    extra: dict[str, Any] = {}
    if "embeddings" in needs:
        extra["embeddings"] = ds.load_embeddings(store, dataset.dataset_id, dataset.embedder_key)[rows]
    if "scores" in needs:
        raw = quality.raw_signals(store, dataset)
        # the duplicate flag comes from the data itself; a combined quality needs at least one scorer's output
        scored = raw.assign(combined=quality.example_quality_from(raw)) if raw.shape[1] > 1 else raw
        extra["scores"] = scored.iloc[rows].reset_index(drop=True)
    if "outputs" in needs:
        with store.read() as con:
            outputs = con.execute(
                "SELECT output FROM examples WHERE dataset_id = ? ORDER BY row_idx", [dataset.dataset_id]
            ).fetchall()
        extra["outputs"] = [outputs[i][0] for i in rows]
    extra.update(_gradient_fields(store, dataset, rows, needs, target))
    return Pool(rows, list(kept.example_id), kept.cluster_id.to_numpy(dtype=int), weights, **extra)


def resolve_budget(budget: float, dataset_rows: int, pool_size: int) -> int:
    """A count, or a fraction (0 < budget < 1) of the dataset's rows; never more than the pool holds."""
    if budget <= 0:
        raise ValueError(f"the budget must be positive, not {budget}")
    count = round(budget * dataset_rows) if budget < 1 else int(budget)
    if budget >= 1 and budget != int(budget):
        raise ValueError(f"a budget of 1 or more is a count of examples; {budget} is not a whole number")
    return min(max(count, 1), pool_size)


@dataclasses.dataclass(frozen=True)
class Decisions:
    """The curator's decisions in force at one moment, over a pool: which positions may be selected or
    trained on (``eligible``), each cluster's weight (a vetoed cluster: 0), and a ``summary`` for records."""

    eligible: np.ndarray
    weights: dict[int, float]
    summary: dict[str, Any]

    @classmethod
    def fixed(cls, pool: Pool) -> Decisions:
        """Everything in the pool eligible, with the pool's weights: a pool that already applied the vetoes."""
        return cls(np.ones(len(pool), dtype=bool), dict(pool.cluster_weights), {})


def current_decisions(store: Store, dataset: ds.DatasetInfo, k: int, pool: Pool) -> Decisions:
    """Read the vetoes and weights in force now, for a pool loaded with ``kept_only=False``.

    The selection loops call this at the start of every round, so a curator may change decisions while a
    run is paused (or even running): each round uses what was in force when it started.
    """
    kept = curation.kept_rows(store, dataset.dataset_id, k).row_idx.to_numpy(dtype=int)
    table = curation.clusters(store, dataset.dataset_id, k)
    weights = {
        int(c): 0.0 if vetoed else float(w)
        for c, w, vetoed in zip(table.cluster_id, table.weight, table.vetoed, strict=True)
    }
    eligible = np.isin(pool.row_idx, kept)
    vetoed = sorted(int(c) for c, v in zip(table.cluster_id, table.vetoed, strict=True) if v)
    summary = {
        "k": int(k),
        "vetoed_clusters": vetoed,
        "weights": {str(c): w for c, w in sorted(weights.items()) if w not in (0.0, 1.0)},
        "vetoed_examples": curation.decisions(store, dataset.dataset_id)["vetoed_examples"],
    }
    return Decisions(eligible, weights, summary)


def _gradient_fields(
    store: Store, dataset: ds.DatasetInfo, rows: np.ndarray, needs: frozenset[str], target: str | None
) -> dict[str, Any]:
    """Gradient features, graph and target features for the pool's ``rows`` (only what ``needs`` names)."""
    if not needs & {"gradients", "graph", "target", "target_embeddings"}:
        return {}
    from core.gradients import pipeline
    from core.storage import gradients as gstore

    extra: dict[str, Any] = {}
    if needs & {"gradients", "graph", "target"}:
        info = pipeline.pool_set(store, dataset.dataset_id)
        if "gradients" in needs:
            extra["gradients"] = gstore.load_features(store, info.feature_key)[rows]
        if "graph" in needs:
            indices, _ = gstore.load_neighbours(store, info.feature_key, info.n_rows)
            extra["neighbours"] = _restrict(indices, rows, info.n_rows)
        if "target" in needs:
            sets = pipeline.target_sets(store, info, pipeline.target_paths(target or ""))
            matrices = [gstore.load_features(store, s.feature_key) for s in sets]
            extra["target_gradients"] = np.concatenate(matrices)
            extra["target_groups"] = np.repeat(np.arange(len(matrices)), [len(m) for m in matrices])
    if "target_embeddings" in needs:
        extra["target_embeddings"], groups = _target_embeddings(dataset, pipeline.target_paths(target or ""))
        extra.setdefault("target_groups", groups)
    return extra


def _target_embeddings(dataset: ds.DatasetInfo, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The target rows embedded as the dataset's own examples were (same embedder, same fields)."""
    from core import ingest
    from core.embed.embedders import build_embedder
    from core.gradients.pipeline import MissingGradients
    from core.train.evaluate import load_eval_set

    if not paths:
        raise MissingGradients("this strategy needs a target set: give the path of a JSONL file (--target FILE)")
    fields = tuple(dataset.embed_fields)
    sets = [load_eval_set(path) for path in paths]
    texts = [ingest.embed_text(r.instruction, r.input, r.output, fields) for s in sets for r in s.rows]
    vectors = build_embedder(dataset.embedder).embed(texts)
    return np.asarray(vectors, dtype=np.float32), np.repeat(np.arange(len(sets)), [len(s.rows) for s in sets])
