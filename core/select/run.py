"""Run a selection strategy on a dataset under the curator's decisions and save it (:mod:`core.select.compare`
puts saved selections side by side).

Cluster weights: strategies that allocate per cluster (kMQ, kM-Random) put them into their quotas.
For every other strategy, when some kept cluster has a weight other than 1, the budget is split over
clusters in proportion to size x weight (largest remainder) and the strategy runs inside each cluster
on its quota; with all weights at 1 it runs on the whole pool, exactly as its paper describes.

Empty responses: a strategy with ``include_empty`` False (those that rank by quality or length) runs on the
pool without the rows whose response is empty or whitespace only (:func:`pick`). A cluster with nothing else
is then absent, so kMQ gives it no quota and shares its part of the budget among the others; the report's
``notes`` say so ("cluster 7 (12 examples) has only empty responses: no quota"), for the CLI and the Select
page to show.

A selection is reproducible: the same strategy, parameters, seed, budget, scores and pool (same kept
examples and clusters: ``pool_hash``) give the same ids in the same order.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.registry import spec_of
from core.select import needs
from core.select.allocation import allocate
from core.select.loading import load_pool
from core.select.pool import Pool, resolve_budget
from core.select.strategies import STRATEGIES, SelectionStrategy, parameters
from core.storage import curation
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage import selections as store_selections
from core.storage.database import Store

if TYPE_CHECKING:
    from core.gradients.target_report import TargetReport


@dataclasses.dataclass(frozen=True)
class SelectionResult:
    """A computed (not yet saved) selection and what produced it."""

    strategy: dict[str, Any]
    seed: int
    budget: float
    k: int
    pool_hash: str
    pool_size: int
    decisions: dict[str, Any]
    score_keys: dict[str, str]
    row_idx: list[int]
    example_ids: list[str]
    cluster_ids: list[int]
    seconds: float
    report: dict[str, Any] = dataclasses.field(default_factory=dict)


def build_strategy(name: str, params: dict[str, Any] | None = None) -> SelectionStrategy:
    """A strategy from its registry name and parameters; string values are parsed by the field's type."""
    known = {parameter.name: parameter for parameter in parameters(name)}
    unknown = set(params or {}) - set(known)
    if unknown:
        raise ValueError(f"strategy {name!r} has no parameter(s) {sorted(unknown)}; it has {sorted(known)}")
    return STRATEGIES.build(name, **{key: known[key].parse(value) for key, value in (params or {}).items()})


def run_selection(
    store: Store,
    dataset: ds.DatasetInfo,
    strategy: SelectionStrategy,
    budget: float,
    *,
    seed: int = 0,
    k: int | None = None,
) -> SelectionResult:
    """Select from the dataset's kept examples at clustering ``k`` (default the active k)."""
    k = int(k or dataset.active_k or 0)
    if not k:
        raise ValueError(f"dataset {dataset.name!r} has no clustering yet; prepare it first")
    started = time.perf_counter()
    targets = _target_reports(strategy)  # before the pool loads: a target without responses is refused at once
    target, strata = getattr(strategy, "target", None), getattr(strategy, "by", None)
    pool = load_pool(store, dataset, k, strategy.needs, target=target, strata=strata)
    count = resolve_budget(budget, dataset.n_rows, len(pool)) if len(pool) else 0
    rng = np.random.default_rng(seed)
    positions, report = pick(strategy, pool, count, rng) if count else (np.array([], dtype=int), {})
    _check(positions, len(pool), count)
    report = {"budget": count, "selected": len(positions), "shortfall": count - len(positions), **report}
    if targets:
        report["targets"] = [target.to_dict() for target in targets]
    decisions = curation.decisions(store, dataset.dataset_id)
    active = decisions["clusters_by_k"].get(str(k), {})
    return SelectionResult(
        strategy=spec_of(strategy),
        seed=seed,
        budget=float(budget),
        k=k,
        pool_hash=pool.fingerprint(),
        pool_size=len(pool),
        decisions={
            "vetoed_clusters": active.get("vetoed_clusters", []),
            "weights": active.get("weights", {}),
            "vetoed_examples": decisions["vetoed_examples"],
        },
        score_keys=score_store.latest_keys(store, dataset.dataset_id) if "scores" in strategy.needs else {},
        row_idx=[int(pool.row_idx[i]) for i in positions],
        example_ids=[pool.example_ids[i] for i in positions],
        cluster_ids=[int(pool.cluster_ids[i]) for i in positions],
        seconds=time.perf_counter() - started,
        report=report,
    )


def pick(
    strategy: SelectionStrategy, pool: Pool, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Positions in pick order and the report, with empty responses left out unless the strategy has no
    ``include_empty`` field or has it True; the report then counts them (``empty_left_out``) and ``notes``
    name each cluster that had nothing else."""
    if getattr(strategy, "include_empty", True):
        return _select(strategy, pool, count, rng)
    empty = pool.empty_responses()
    if not empty.any():
        return _select(strategy, pool, count, rng)
    keep = np.flatnonzero(~empty)
    positions, report = _select(strategy, pool.subset(keep), min(count, len(keep)), rng) if len(keep) else (keep, {})
    notes = empty_notes(pool.cluster_ids, empty, "no quota" if strategy.uses_cluster_weights else "none picked")
    report = {**report, "empty_left_out": int(empty.sum()), "notes": [*report.get("notes", []), *notes]}
    if len(positions) < count and "why" not in report:
        report["why"] = f"{int(empty.sum())} kept examples have an empty response and were left out"
    return keep[positions], report


def empty_notes(cluster_ids: np.ndarray, empty: np.ndarray, consequence: str) -> list[str]:
    """One line per cluster whose rows all have empty responses, then one with the count left out."""
    notes = []
    for cluster in np.unique(cluster_ids):
        members = cluster_ids == cluster
        if empty[members].all():
            notes.append(f"cluster {cluster} ({int(members.sum())} examples) has only empty responses: {consequence}")
    notes.append(
        f"{int(empty.sum())} examples with an empty response were left out (include_empty=true would keep them)"
    )
    return notes


def _select(
    strategy: SelectionStrategy, pool: Pool, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Positions in pick order, and what the strategy reports (strategies with ``select_with_report``)."""
    clusters, sizes = np.unique(pool.cluster_ids, return_counts=True)
    weights = np.array([pool.cluster_weights.get(int(c), 1.0) for c in clusters])
    if strategy.uses_cluster_weights or np.all(weights == 1.0):
        if hasattr(strategy, "select_with_report"):
            positions, report = strategy.select_with_report(pool, count, rng=rng)
            return np.asarray(positions, dtype=int), report
        return np.asarray(strategy.select(pool, count, rng=rng), dtype=int), {}
    quotas = allocate(sizes, count, weights=weights)
    picks = []
    for cluster, quota in zip(clusters, quotas, strict=True):
        if quota > 0:
            members = np.flatnonzero(pool.cluster_ids == cluster)
            picks.append(members[np.asarray(strategy.select(pool.subset(members), int(quota), rng=rng), dtype=int)])
    return (np.concatenate(picks) if picks else np.array([], dtype=int)), {"ran_per_cluster": True}


def _target_reports(strategy: SelectionStrategy) -> list[TargetReport]:
    """What each of a targeted strategy's target files holds; a gradient method's target must have responses."""
    from core.gradients.target_report import check_strategy_target

    target = getattr(strategy, "target", None)
    return check_strategy_target(target, strategy.needs) if target else []


def _check(positions: np.ndarray, pool_size: int, budget: int) -> None:
    """A strategy bug must not become a stored selection."""
    if len(positions) > budget or len(np.unique(positions)) != len(positions):
        raise RuntimeError(f"strategy returned {len(positions)} positions for a budget of {budget}, or repeats")
    if len(positions) and (positions.min() < 0 or positions.max() >= pool_size):
        raise RuntimeError("strategy returned a position outside the pool")


def save_selection(store: Store, dataset: ds.DatasetInfo, result: SelectionResult, name: str | None = None) -> int:
    """Store the selection; returns its id."""
    record = {
        "name": name or f"{result.strategy['name']} {len(result.example_ids)} (seed {result.seed})",
        "strategy": result.strategy["name"],
        "params": {key: value for key, value in result.strategy.items() if key != "name"},
        "seed": result.seed,
        "budget": result.budget,
        "k": result.k,
        "pool_hash": result.pool_hash,
        "pool_size": result.pool_size,
        "decisions": result.decisions,
        "score_keys": result.score_keys,
        "seconds": result.seconds,
        "report": result.report,
        # what it consumed: the recorded seconds of the stages that produced its inputs, and its own
        "cost": needs.selection_cost(store, dataset, result),
    }
    return store_selections.save(store, dataset.dataset_id, record, result.row_idx, result.example_ids)


def per_cluster(store: Store, dataset: ds.DatasetInfo, row_idx: list[int], k: int) -> pd.DataFrame:
    """Selected count beside each cluster's size (and veto, weight) at clustering ``k``."""
    table = curation.clusters(store, dataset.dataset_id, k)[["cluster_id", "label", "size", "vetoed", "weight"]]
    cluster_of = ds.assignments(store, dataset.dataset_id, k)
    counts = pd.Series([cluster_of[r] for r in row_idx], dtype=int).value_counts()
    return table.assign(selected=[int(counts.get(c, 0)) for c in table.cluster_id])
