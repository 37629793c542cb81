"""Saved selections side by side: overlap, diversity, quality, shares by source and by cluster, and cost.

What a curator weighs when choosing between two selections (docs/algorithms.md 5.1): how many examples they
share; how diverse each is over its embeddings (the Vendi score, on a seeded sample of at most
:data:`DIVERSITY_SAMPLE` rows); its mean combined quality and the mean of every raw score the dataset has;
the share of its picks drawn from clusters whose mean quality is below the threshold of docs/algorithms.md
2.5; its shares of the dataset's ``source`` column, when there is one, and of the clusters at the first
selection's k; and what it cost to compute, when its record says (``cost``: device, seconds per stage,
total; older selections have none and show "not recorded").

The Select page and ``python -m core selections --compare A B`` show the same report.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from core.score import quality
from core.select.loading import MISSING_STRATUM
from core.select.run import per_cluster
from core.storage import datasets as ds
from core.storage import selections as store_selections
from core.storage.database import Store

DIVERSITY_SAMPLE = 2000
"""Selections larger than this are measured on a seeded sample of this many rows (the eigenvalues of a d x d
matrix are cheap, but reading every embedding of a large selection is not)."""
DIVERSITY_SEED = 0
SOURCE_COLUMN = "source"
NOT_RECORDED = "not recorded"


def vendi_score(vectors: np.ndarray) -> float:
    """The Vendi score of the rows: exp of the Shannon entropy of the eigenvalues of K / n, K their cosine
    similarity matrix. It is the effective number of distinct rows: 1 for n copies of one direction, n for
    n orthogonal rows; 0 for no rows.

    K / n = X X^T / n (X the unit rows) has the same non-zero eigenvalues as X^T X / n, so the smaller of the
    two is decomposed: n x n for a few rows, d x d for many.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        return 0.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    n, d = x.shape
    gram = x @ x.T if n <= d else x.T @ x
    eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    if eigenvalues.sum() <= 0:
        return 0.0
    p = eigenvalues / eigenvalues.sum()
    p = p[p > 1e-12]  # 0 log 0 = 0
    return float(np.exp(-(p * np.log(p)).sum()))


def diversity_sample(rows: np.ndarray, limit: int = DIVERSITY_SAMPLE, seed: int = DIVERSITY_SEED) -> np.ndarray:
    """``rows`` when there are at most ``limit``, else a seeded sample of ``limit`` of them, sorted."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))


@dataclasses.dataclass(frozen=True)
class Profile:
    """One saved selection's measures. None: not measurable here (no embeddings, no scores, no cost)."""

    selection_id: int
    name: str
    strategy: str
    size: int
    diversity: float | None
    diversity_rows: int
    quality: float | None
    scores: dict[str, float]
    below_threshold: float | None
    cost: dict[str, Any] | None

    @property
    def label(self) -> str:
        return f"#{self.selection_id} {self.name}"


@dataclasses.dataclass(frozen=True)
class DatasetView:
    """What every profile of one dataset reads once: raw scores, combined quality, clusters at ``k``, sources."""

    raw: pd.DataFrame
    combined: pd.Series | None
    clusters: np.ndarray
    sources: np.ndarray | None

    @classmethod
    def load(cls, store: Store, dataset: ds.DatasetInfo, k: int) -> DatasetView:
        raw = quality.raw_signals(store, dataset)
        combined = quality.example_quality_from(raw) if quality.has_scores(raw) else None
        values = ds.field_values(store, dataset.dataset_id, SOURCE_COLUMN)
        sources = None
        if any(value is not None for value in values):
            sources = np.array([MISSING_STRATUM if value is None else value for value in values], dtype=object)
        return cls(raw, combined, ds.assignments(store, dataset.dataset_id, k), sources)


def profile(
    store: Store, dataset: ds.DatasetInfo, view: DatasetView, record: dict[str, Any], rows: np.ndarray
) -> Profile:
    """The measures of one saved selection (its ``record`` and its ``rows`` in pick order), with the quality
    and clusters ``view`` has."""
    sample = diversity_sample(rows)
    diversity = None
    if dataset.embedder_key and len(sample):
        try:
            vectors = ds.embeddings_at_rows(store, dataset.dataset_id, dataset.embedder_key, sample)
            diversity = vendi_score(vectors)
        except LookupError:  # some rows lost their cached vector: no measure rather than one of a part
            diversity = None
    means = {name: mean_of(view.raw[name].to_numpy(dtype=float)[rows]) for name in view.raw.columns}
    below = None
    if view.combined is not None and len(rows):
        picks, _ = quality.picks_below(view.combined, view.clusters, rows.tolist())
        below = picks / len(rows)
    return Profile(
        selection_id=int(record["selection_id"]),
        name=str(record["name"]),
        strategy=str(record["strategy"]),
        size=len(rows),
        diversity=diversity,
        diversity_rows=len(sample),
        quality=None if view.combined is None else mean_of(view.combined.to_numpy(dtype=float)[rows]),
        scores={name: value for name, value in means.items() if value is not None},
        below_threshold=below,
        cost=recorded_cost(record),
    )


def mean_of(values: np.ndarray) -> float | None:
    """The mean of the finite values; None when there is none (an unscored selection, no rows)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def recorded_cost(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ``cost`` a selection's record holds ({"device", "seconds": {stage: s}, "total"}), or None (older ones)."""
    cost = record.get("cost")
    if isinstance(cost, str):
        cost = json.loads(cost) if cost.strip() else None
    return cost if isinstance(cost, dict) and cost else None


def metrics_table(profiles: list[Profile]) -> pd.DataFrame:
    """One row per measure, one text column per selection: what the page and the CLI print."""
    names = [name for name in quality.SIGNALS if any(name in p.scores for p in profiles)]
    names += sorted({name for p in profiles for name in p.scores} - set(names))
    stages = sorted({stage for p in profiles if p.cost for stage in (p.cost.get("seconds") or {})})
    rows: dict[str, list[str]] = {
        "strategy": [p.strategy for p in profiles],
        "size": [str(p.size) for p in profiles],
        "diversity (Vendi score)": [_diversity_text(p) for p in profiles],
        "mean quality (combined)": [_number(p.quality, "not scored") for p in profiles],
        **{f"mean {name}": [_number(p.scores.get(name), "-") for p in profiles] for name in names},
        f"share from clusters below {quality.DEFAULT_THRESHOLD}": [
            _number(p.below_threshold, "not scored") for p in profiles
        ],
        "cost: device": [str(p.cost.get("device", "-")) if p.cost else NOT_RECORDED for p in profiles],
        "cost: total (s)": [_cost_text(p.cost, "total") for p in profiles],
        **{f"cost: {stage} (s)": [_cost_text(p.cost, stage) for p in profiles] for stage in stages},
    }
    return pd.DataFrame(
        [
            {"metric": metric, **dict(zip([p.label for p in profiles], values, strict=True))}
            for metric, values in rows.items()
        ]
    )


def _number(value: float | None, missing: str) -> str:
    return missing if value is None or not np.isfinite(value) else f"{value:.3f}"


def _diversity_text(p: Profile) -> str:
    if p.diversity is None:
        return "no embeddings"
    sampled = f" (sample of {p.diversity_rows})" if p.diversity_rows < p.size else ""
    return f"{p.diversity:.2f}{sampled}"


def _cost_text(cost: dict[str, Any] | None, stage: str) -> str:
    if not cost:
        return NOT_RECORDED
    value = cost.get("total") if stage == "total" else (cost.get("seconds") or {}).get(stage)
    return "-" if value is None else f"{float(value):.1f}"


def source_shares(view: DatasetView, rows_by_label: dict[str, np.ndarray]) -> pd.DataFrame | None:
    """Each ``source`` value's share of the dataset and of every selection, largest in the dataset first; None
    when the dataset has no ``source`` column."""
    if view.sources is None:
        return None
    dataset = pd.Series(view.sources).value_counts(normalize=True)
    table = pd.DataFrame({SOURCE_COLUMN: dataset.index, "dataset": dataset.to_numpy()})
    for label, rows in rows_by_label.items():
        shares = pd.Series(view.sources[rows]).value_counts(normalize=True) if len(rows) else pd.Series(dtype=float)
        table[label] = [float(shares.get(value, 0.0)) for value in table[SOURCE_COLUMN]]
    return table


def cluster_shares(
    store: Store, dataset: ds.DatasetInfo, ids: list[int], rows_by_id: dict[int, np.ndarray], k: int
) -> pd.DataFrame:
    """Each cluster at ``k`` (label, size, veto, weight) with every selection's count (``#id``) and share of
    its picks (``share #id``)."""
    table = per_cluster(store, dataset, rows_by_id[ids[0]].tolist(), k).rename(columns={"selected": f"#{ids[0]}"})
    for selection_id in ids[1:]:
        other = per_cluster(store, dataset, rows_by_id[selection_id].tolist(), k).selected
        table[f"#{selection_id}"] = other.to_numpy()
    for selection_id in ids:
        counts = table[f"#{selection_id}"]
        table[f"share #{selection_id}"] = counts / max(int(counts.sum()), 1)
    return table


def compare(store: Store, dataset: ds.DatasetInfo, first: int, second: int) -> dict[str, Any]:
    """Two saved selections side by side: overlap (shared, only in either, Jaccard), each one's
    :class:`Profile` (``profiles``) and their ``metrics`` table, per-cluster counts and shares at the first
    one's k (``per_cluster``) and ``source`` shares (``sources``, None without that column)."""
    ids = [first, second]
    records = {i: store_selections.get(store, i) for i in ids}
    items = {i: store_selections.items(store, i) for i in ids}
    rows = {i: items[i].row_idx.to_numpy(dtype=np.int64) for i in ids}
    example_ids = {i: set(items[i].example_id) for i in ids}
    k = int(records[first]["k"])
    view = DatasetView.load(store, dataset, k)
    profiles = [profile(store, dataset, view, records[i], rows[i]) for i in ids]
    ids_a, ids_b = example_ids[first], example_ids[second]
    shared = len(ids_a & ids_b)
    return {
        "first": {"id": first, "name": records[first]["name"], "size": len(ids_a)},
        "second": {"id": second, "name": records[second]["name"], "size": len(ids_b)},
        "shared": shared,
        "only_first": len(ids_a - ids_b),
        "only_second": len(ids_b - ids_a),
        "jaccard": shared / max(len(ids_a | ids_b), 1),
        "k": k,
        "profiles": profiles,
        "metrics": metrics_table(profiles),
        "per_cluster": cluster_shares(store, dataset, ids, rows, k),
        "sources": source_shares(view, {f"#{i}": rows[i] for i in ids}),
    }
