"""Splitting a budget over clusters: largest-remainder rounding, capacity caps and redistribution.

docs/algorithms.md 2.2: the paper allocates b_j = |D_j| / N * b (proportional); the kMQ code gives every
cluster floor(b / k) capped at |D_j| and never redistributes, so it can return fewer than b. Both are
offered (``proportional`` is the default); in both, rounding is by largest remainder so the quotas sum
exactly to the budget, and a cluster too small for its quota passes the surplus to the others in
proportion to their shares. Curator weights multiply each cluster's share; weight 0 gives it nothing.
"""

from __future__ import annotations

import numpy as np


def largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``shares`` that sum exactly to ``total`` (Hamilton's method).

    Ties in the remainders go to the lower index, so the result is deterministic.
    """
    shares = np.asarray(shares, dtype=float)
    if total <= 0 or shares.sum() <= 0:
        return np.zeros(len(shares), dtype=int)
    exact = shares / shares.sum() * total
    quotas = np.floor(exact).astype(int)
    left = total - int(quotas.sum())
    order = np.lexsort((np.arange(len(shares)), -(exact - quotas)))
    quotas[order[:left]] += 1
    return quotas


def allocate(
    sizes: np.ndarray, budget: int, *, mode: str = "proportional", weights: np.ndarray | None = None
) -> np.ndarray:
    """Per-cluster quotas summing to min(budget, capacity), never above a cluster's size.

    ``mode``: ``proportional`` (share = size x weight) or ``equal`` (share = weight). Clusters whose
    quota exceeds their size are filled and the rest of the budget is shared again among the others.
    """
    if mode not in ("proportional", "equal"):
        raise ValueError(f"allocation mode must be proportional or equal, not {mode!r}")
    sizes = np.asarray(sizes, dtype=int)
    weights = np.ones(len(sizes)) if weights is None else np.asarray(weights, dtype=float)
    base = np.where(sizes > 0, (sizes if mode == "proportional" else 1.0) * np.clip(weights, 0, None), 0.0)
    capacity = int(sizes[base > 0].sum())
    target = min(int(budget), capacity)
    quotas = np.zeros(len(sizes), dtype=int)
    open_ = base > 0
    while target - quotas.sum() > 0 and open_.any():
        extra = largest_remainder(np.where(open_, base, 0.0), target - int(quotas.sum()))
        quotas = np.minimum(quotas + extra, sizes)
        open_ &= quotas < sizes
    return quotas


def equal_floor(sizes: np.ndarray, budget: int) -> np.ndarray:
    """The kMQ code's allocation: floor(budget / k) per cluster, capped at its size, no redistribution."""
    sizes = np.asarray(sizes, dtype=int)
    return np.minimum(sizes, int(budget) // max(len(sizes), 1))
