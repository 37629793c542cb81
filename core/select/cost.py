"""What a selection will cost before it starts: each strategy's growth law, calibrated on bench/selection.py.

Every strategy states its cost: the CLI and the Select page project the seconds for the pool and budget at
hand and say so before a run that would pass ``ANNOUNCE_SECONDS``; the CLI refuses one past
``CONFIRM_SECONDS`` (issue 16's target for a 10 % budget at 1M rows) unless ``--yes``, naming the bounded form.

The projection is ``load x n / n0 + strategy x f(n, b) / f(n0, b0)``: loading the pool from the store grows
with its rows, the strategy's own time with its law ``f``. Calibration point (n0, b0) = (51,772, 5,177):
docs/benchmarks.md, "bench/selection.py: every selection strategy on the whole pool at a 10 % budget",
figures of 2026-11-22 (quiet box), columns "total s" and "strategy s".
"""

from __future__ import annotations

import dataclasses
import math

# Past this many projected seconds the cost is stated before the run starts.
ANNOUNCE_SECONDS = 60.0
# Past this many the CLI wants --yes: issue 16's target for every strategy at a 10 % budget of 1M rows.
CONFIRM_SECONDS = 120.0

CALIBRATION_ROWS = 51_772
CALIBRATION_BUDGET = 5_177


@dataclasses.dataclass(frozen=True)
class StrategyCost:
    """A strategy's growth law and its measured seconds at the calibration point (None: not measured)."""

    law: str  # "n", "n log n", "n*b" (a pass over the pool per pick) or "n^2" (all pairs)
    load_seconds: float | None
    strategy_seconds: float | None
    bounded: str  # what to do instead of a run too long to wait for


SAMPLE = "a smaller budget, or veto clusters first (the pool shrinks)"
COSTS: dict[str, StrategyCost] = {
    "random": StrategyCost("n", 0.5, 0.0, SAMPLE),
    "km_random": StrategyCost("n", 0.5, 0.0, SAMPLE),
    # km_random's work by clusters (its figures); by a column it also reads that field of every row: not measured
    "balanced_random": StrategyCost("n", 0.5, 0.0, SAMPLE),
    "kmq": StrategyCost("n", 2.0, 0.0, SAMPLE),
    "ifd_topk": StrategyCost("n log n", 1.1, 0.0, SAMPLE),
    "longest": StrategyCost("n log n", 0.7, 0.6, SAMPLE),
    # deita's diversity filter compares each candidate with the picks so far
    "deita": StrategyCost("n*b", 2.0, 0.2, SAMPLE),
    # one matrix-vector product over the pool per pick
    "k_center": StrategyCost("n*b", 1.4, 20.9, "km_closest or kmq (per-cluster picks), or a smaller budget"),
    # faiss k-means with k = budget: every iteration compares each row with every centroid
    "km_closest": StrategyCost("n*b", 1.3, 35.5, "kmq (quality within clusters) or a smaller budget"),
    # the exact 64-nearest-neighbour graph (faiss IndexFlatIP) compares all pairs: 14 of its 15.9 s
    "qdit": StrategyCost("n^2", 1.8, 15.9, "kmq or deita, or select from fewer rows (veto clusters)"),
    # a pass over the pool's TF-IDF per pick (the argmax and the decay)
    "iterit_greedy": StrategyCost("n*b", 1.2, 23.3, "ifd_topk, or a smaller budget"),
    # the targeted strategies: not in bench/selection.py (they need a target set); their growth only
    "less": StrategyCost("n", None, None, SAMPLE),
    "embedding_knn": StrategyCost("n", None, None, SAMPLE),
    "g2is": StrategyCost("n^2", None, None, "embedding_knn or less"),
    "g2is_no_graph": StrategyCost("n", None, None, SAMPLE),
    "g2is_embeddings": StrategyCost("n^2", None, None, "embedding_knn"),
    # one sort of the pool per target row (round_robin) or one over the best cosines (max)
    "rds_plus": StrategyCost("n log n", None, None, SAMPLE),
}


# The strategies with a ``candidates`` shortlist (core.select.strategies.shortlist).
SHORTLISTED = frozenset({"k_center", "qdit"})


def growth(law: str, rows: int, budget: int) -> float:
    """The law's value at ``rows`` and ``budget`` (only ratios of it mean anything)."""
    laws = {
        "n": float(rows),
        "n log n": rows * math.log2(max(rows, 2)),
        "n*b": float(rows) * budget,
        "n^2": float(rows) ** 2,
    }
    return laws[law]


def projected_seconds(strategy: str, rows: int, budget: int, candidates: int = 0) -> float | None:
    """Seconds to select ``budget`` of ``rows`` with ``strategy`` on the reference CPU; None when not measured.
    ``candidates`` (k_center, qdit): the strategy runs on a shortlist of that many rows (at least the budget)."""
    cost = COSTS[strategy]
    if cost.load_seconds is None or cost.strategy_seconds is None:
        return None
    searched = min(rows, max(candidates, budget)) if candidates > 0 else rows
    ratio = growth(cost.law, searched, budget) / growth(cost.law, CALIBRATION_ROWS, CALIBRATION_BUDGET)
    return cost.load_seconds * rows / CALIBRATION_ROWS + cost.strategy_seconds * ratio


def fitting_candidates(strategy: str, rows: int, budget: int) -> int | None:
    """The largest shortlist (``candidates``) that keeps the projection within ``CONFIRM_SECONDS``, for the
    strategies that take one; None when they do not, or when not even a shortlist of ``budget`` rows fits."""
    if strategy not in SHORTLISTED or projected_seconds(strategy, rows, budget, budget) is None:
        return None
    low, high = budget, rows
    if (projected_seconds(strategy, rows, budget, low) or 0.0) > CONFIRM_SECONDS:
        return None
    while high - low > max(1, low // 100):  # bisection to 1 %: the projection grows with the shortlist
        middle = (low + high) // 2
        fits = (projected_seconds(strategy, rows, budget, middle) or 0.0) <= CONFIRM_SECONDS
        low, high = (middle, high) if fits else (low, middle)
    return low


def cost_line(strategy: str, rows: int, budget: int, candidates: int = 0) -> str:
    """One sentence: the projected time (or the growth law where it was not measured)."""
    seconds = projected_seconds(strategy, rows, budget, candidates)
    law = COSTS[strategy].law
    if seconds is None:
        return f"{strategy} on {rows:,} rows: cost not measured; it grows as {law}"
    return f"{strategy} selecting {budget:,} of {rows:,} rows takes about {_duration(seconds)} (grows as {law})"


def needs_confirmation(strategy: str, rows: int, budget: int, candidates: int = 0) -> bool:
    """Whether the projection passes ``CONFIRM_SECONDS``."""
    return (projected_seconds(strategy, rows, budget, candidates) or 0.0) > CONFIRM_SECONDS


def bounded_form(strategy: str, rows: int, budget: int) -> str:
    """What to run instead: a fitting shortlist where the strategy takes one, else the named alternatives."""
    fits = fitting_candidates(strategy, rows, budget)
    shortlist = f"--param candidates={fits} (a shortlist per cluster), or " if fits else ""
    return shortlist + COSTS[strategy].bounded


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
