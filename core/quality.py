"""Combined quality in [0, 1], computed at query time from the stored raw scores and curator weights.

Each signal is first mapped to [0, 1] with 1 = good: continuous scores by their percentile rank in the
dataset (robust to the very different scales of perplexity, IFD and lengths), flags as 1 - flag. The
combined quality is the weighted mean of the signals an example has. Moving a weight reruns no model.
Per cluster: the mean combined quality, and the share of clusters whose mean is below a threshold, for
every swept k (ALGORITHMS.md 2.5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.storage import scores as score_store
from core.storage.database import Store
from core.storage.datasets import DatasetInfo

# signal -> (direction, default weight); direction +1: higher raw value is better, -1: lower is better,
# "flag": a 0/1 defect flag, "ifd": IFD >= 1 is bad, below 1 a higher IFD (harder, still helped) is better.
SIGNALS: dict[str, tuple[object, float]] = {
    "reward": (+1, 1.0),
    "perplexity": (-1, 1.0),
    "ifd": ("ifd", 1.0),
    "tfidf_diversity": (+1, 0.5),
    "response_length": (+1, 0.5),
    "empty_response": ("flag", 2.0),
    "cut_off_response": ("flag", 2.0),
    "exact_duplicate": ("flag", 1.0),
    "near_duplicate": ("flag", 0.5),
}
DEFAULT_WEIGHTS = {name: weight for name, (_, weight) in SIGNALS.items()}
DEFAULT_THRESHOLD = 0.3


def _rank(values: pd.Series) -> pd.Series:
    return values.rank(pct=True, method="average")


def normalise(raw: pd.DataFrame) -> pd.DataFrame:
    """Each known signal of ``raw`` mapped to [0, 1] with 1 = good (NaN stays NaN)."""
    columns = {}
    for name, (direction, _) in SIGNALS.items():
        if name not in raw:
            continue
        values = raw[name].astype(float)
        if direction == "flag":
            columns[name] = 1.0 - values.clip(0, 1)
        elif direction == "ifd":
            helped = values.where(values < 1)
            columns[name] = _rank(helped).where(values < 1, 0.0).where(values.notna())
        elif direction == 1:
            columns[name] = _rank(values)
        else:
            columns[name] = 1.0 - _rank(values) + 1.0 / max(values.notna().sum(), 1)
    return pd.DataFrame(columns, index=raw.index)


def combined(normalised: pd.DataFrame, weights: dict[str, float]) -> pd.Series:
    """Weighted mean of the available signals per row; NaN where no weighted signal is available."""
    used = [name for name in normalised if weights.get(name, 0) > 0]
    if not used:
        return pd.Series(np.nan, index=normalised.index)
    values = normalised[used]
    w = np.array([weights[name] for name in used])
    present = values.notna().to_numpy()
    total = (values.fillna(0).to_numpy() * w).sum(axis=1)
    denominator = (present * w).sum(axis=1)
    return pd.Series(np.where(denominator > 0, total / np.maximum(denominator, 1e-12), np.nan), index=values.index)


def raw_signals(store: Store, dataset: DatasetInfo) -> pd.DataFrame:
    """Every stored score of the dataset's examples (row order) plus the exact-duplicate flag."""
    keys = list(score_store.latest_keys(store, dataset.dataset_id).values())
    raw = score_store.dataset_scores(store, dataset.dataset_id, keys)
    with store.read() as con:
        copies = con.execute(
            "SELECT count(*) OVER (PARTITION BY content_hash) FROM examples WHERE dataset_id = ? ORDER BY row_idx",
            [dataset.dataset_id],
        ).fetchall()
    raw["exact_duplicate"] = [1.0 if n > 1 else 0.0 for (n,) in copies]
    return raw


def example_quality_from(raw: pd.DataFrame, weights: dict[str, float] | None = None) -> pd.Series:
    """Combined quality of every row of ``raw`` (the output of :func:`raw_signals`)."""
    return combined(normalise(raw), weights or DEFAULT_WEIGHTS)


def example_quality(store: Store, dataset: DatasetInfo, weights: dict[str, float] | None = None) -> pd.Series:
    """Combined quality of every example of the dataset, in row order."""
    return example_quality_from(raw_signals(store, dataset), weights)


def cluster_quality(quality: pd.Series, cluster_ids: np.ndarray) -> pd.Series:
    """Mean combined quality per cluster id."""
    return quality.groupby(np.asarray(cluster_ids)).mean()


def share_below_by_k(
    store: Store, dataset: DatasetInfo, quality: pd.Series, threshold: float = DEFAULT_THRESHOLD
) -> pd.DataFrame:
    """For every swept k: how many clusters have a mean combined quality below ``threshold``, and their share."""
    with store.read() as con:
        assignments = con.execute(
            "SELECT k, row_idx, cluster_id FROM assignments WHERE dataset_id = ? ORDER BY k, row_idx",
            [dataset.dataset_id],
        ).df()
    rows = []
    for k, group in assignments.groupby("k"):
        means = cluster_quality(
            quality.reindex(group.row_idx.to_numpy()).reset_index(drop=True), group.cluster_id.to_numpy()
        )
        below = int((means < threshold).sum())
        rows.append(
            {
                "k": int(k),
                "clusters": int(means.notna().sum()),
                "below": below,
                "share_below": below / max(int(means.notna().sum()), 1),
            }
        )
    return pd.DataFrame(rows)
