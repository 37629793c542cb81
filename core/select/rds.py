"""RDS+'s selection over a cosine-similarity matrix (docs/algorithms.md 4.10): round-robin over the target rows,
or the top of the pool by its best similarity to any target row. Plain numpy on given features.

Ties are broken by pool position (lower first) everywhere, through stable sorts, so equal inputs give equal
picks and no draw is needed.
"""

from __future__ import annotations

import numpy as np


def similarities(pool: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(pool rows, target rows) cosines of unit rows, float32."""
    return np.asarray(pool, dtype=np.float32) @ np.asarray(targets, dtype=np.float32).T


def by_group_max(scores: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """One column per target file: each pool row's best score over the file's rows. One file (or none named)
    keeps the target rows' own columns."""
    if groups is None or len(np.unique(groups)) < 2:
        return scores
    return np.stack([scores[:, groups == g].max(axis=1) for g in np.unique(groups)], axis=1)


def round_robin(scores: np.ndarray, budget: int) -> np.ndarray:
    """Pool positions in pick order: the columns take turns (column 0 first), each taking its highest-scoring
    pool row not picked yet, until ``budget`` rows (at most the pool) are picked."""
    n, columns = scores.shape
    budget = min(int(budget), n)
    if budget <= 0 or columns == 0:
        return np.zeros(0, dtype=np.int64)
    # a column skips at most the rows already picked (fewer than the budget), so its first `budget` suffice
    orders = [np.argsort(-scores[:, j], kind="stable")[:budget] for j in range(columns)]
    cursors = [0] * columns
    picked = np.zeros(n, dtype=bool)
    picks: list[int] = []
    while len(picks) < budget:
        for j in range(columns):
            if len(picks) == budget:
                break
            order, cursor = orders[j], cursors[j]
            while picked[order[cursor]]:
                cursor += 1
            picks.append(int(order[cursor]))
            picked[order[cursor]] = True
            cursors[j] = cursor + 1
    return np.asarray(picks, dtype=np.int64)


def top_by_max(scores: np.ndarray, budget: int) -> np.ndarray:
    """Pool positions by descending best score over the columns (ties by position), the first ``budget``."""
    if scores.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    best = scores.max(axis=1)
    return np.argsort(-best, kind="stable")[: max(int(budget), 0)].astype(np.int64)
