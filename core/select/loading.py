"""Load a selection pool and the curator's decisions in force from the workspace (:mod:`core.select.pool`
holds the plain data these fill).

Only what a strategy declares in ``needs`` is loaded: embeddings (``embeddings``), the combined quality
and raw scores (``scores``), the response texts (``outputs``), LoRA-gradient features (``gradients``),
their neighbour graph (``graph``), the target set's gradient features (``target``) and its sentence
embeddings (``target_embeddings``), and a column of the dataset's rows to group them by (``strata``, the
column a strategy's ``by`` parameter names). The base model's pooled hidden states (RDS+) of the pool
(``hidden_states``) and of the target set (``target_hidden_states``) come from :mod:`core.hidden.pipeline`.
The target set is a strategy's ``target`` parameter. Which responses are empty is always loaded (one column
of text).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import MissingGradients
from core.models.passes import empty_responses
from core.score import quality
from core.select.pool import Decisions, Pool, restrict_neighbours
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


def load_pool(
    store: Store,
    dataset: ds.DatasetInfo,
    k: int,
    needs: frozenset[str],
    *,
    kept_only: bool = True,
    target: str | None = None,
    strata: str | None = None,
) -> Pool:
    """The kept examples of ``dataset`` at clustering ``k`` with what ``needs`` asks for.

    ``kept_only=False`` gives every example, vetoed or not: the selection loops take the curator's
    decisions round by round (:func:`current_decisions`) instead of freezing them at launch. ``strata`` names
    the column loaded under the ``strata`` need (``cluster``: none, the strategy groups by cluster).
    """
    kept = (curation.kept_rows if kept_only else curation.all_rows)(store, dataset.dataset_id, k)
    rows = kept.row_idx.to_numpy(dtype=int)
    table = curation.clusters(store, dataset.dataset_id, k)
    weights = {int(c): float(w) for c, w in zip(table.cluster_id, table.weight, strict=True)}
    texts = ds.outputs(store, dataset.dataset_id)
    extra: dict[str, Any] = {"empty": empty_responses(texts)[rows]}
    if "embeddings" in needs:
        extra["embeddings"] = ds.load_embeddings(store, dataset.dataset_id, dataset.embedder_key or "")[rows]
    if "scores" in needs:
        raw = quality.raw_signals(store, dataset)
        # the duplicate and empty flags come from the data itself; a combined quality needs a scorer's output
        scored = raw.assign(combined=quality.example_quality_from(raw)) if quality.has_scores(raw) else raw
        extra["scores"] = scored.iloc[rows].reset_index(drop=True)
    if "outputs" in needs:
        extra["outputs"] = [texts[i] for i in rows]
    if "strata" in needs and strata and strata != "cluster":
        extra["strata"] = column_strata(store, dataset, strata)[rows]
    extra.update(_gradient_fields(store, dataset, rows, needs, target))
    extra.update(_hidden_fields(store, dataset, rows, needs, target))
    return Pool(rows, list(kept.example_id), kept.cluster_id.to_numpy(dtype=int), weights, **extra)


MISSING_STRATUM = "(none)"
"""The stratum of the rows that lack the column (or hold null in it)."""


def column_strata(store: Store, dataset: ds.DatasetInfo, column: str) -> np.ndarray:
    """Every row's value of ``column`` as text, in row order (:data:`MISSING_STRATUM` where a row lacks it); a
    ValueError naming the column and those the dataset has when no row has it."""
    values = ds.field_values(store, dataset.dataset_id, column)
    if all(value is None for value in values):
        names = ", ".join(ds.field_names(store, dataset.dataset_id))
        raise ValueError(
            f"no row of dataset {dataset.name!r} has a value in column {column!r} to group by; "
            f"its columns: {names} (or by=cluster)"
        )
    return np.array([MISSING_STRATUM if value is None else value for value in values], dtype=object)


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
            extra["neighbours"] = restrict_neighbours(indices, rows, info.n_rows)
        if "target" in needs:
            sets = pipeline.target_sets(store, info, pipeline.target_paths(target or ""))
            matrices = [gstore.load_features(store, s.feature_key) for s in sets]
            extra["target_gradients"] = np.concatenate(matrices)
            extra["target_groups"] = np.repeat(np.arange(len(matrices)), [len(m) for m in matrices])
    if "target_embeddings" in needs:
        extra["target_embeddings"], groups = _target_embeddings(dataset, pipeline.target_paths(target or ""))
        extra.setdefault("target_groups", groups)
    return extra


def _hidden_fields(
    store: Store, dataset: ds.DatasetInfo, rows: np.ndarray, needs: frozenset[str], target: str | None
) -> dict[str, Any]:
    """The base model's pooled hidden states of the pool's ``rows`` (``hidden_states``) and of the target rows
    (``target_hidden_states``, computed now and cached when first seen), under the dataset's newest set."""
    if not needs & {"hidden_states", "target_hidden_states"}:
        return {}
    from core.gradients.pipeline import target_paths
    from core.hidden import pipeline as hidden

    info = hidden.pool_set(store, dataset)  # MissingHiddenStates naming the command when none is computed
    extra: dict[str, Any] = {}
    if "hidden_states" in needs:
        extra["hidden_states"] = hidden.pool_features(store, info)[rows]
    if "target_hidden_states" in needs:
        extra["target_hidden_states"], extra["target_groups"] = hidden.target_features(
            store, info, target_paths(target or "")
        )
    return extra


def _target_embeddings(dataset: ds.DatasetInfo, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The target rows embedded as the dataset's own examples were (same embedder, same fields)."""
    from core import ingest
    from core.embed.embedders import build_embedder
    from core.train.evaluate import load_eval_set

    if not paths:
        raise MissingGradients("this strategy needs a target set: give the path of a JSONL file (--target FILE)")
    fields = tuple(dataset.embed_fields)
    sets = [load_eval_set(path) for path in paths]
    texts = [ingest.embed_text(r.instruction, r.input, r.output, fields) for s in sets for r in s.rows]
    vectors = build_embedder(dataset.embedder).embed(texts)
    return np.asarray(vectors, dtype=np.float32), np.repeat(np.arange(len(sets)), [len(s.rows) for s in sets])
