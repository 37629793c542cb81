"""Combined quality in [0, 1], computed at query time from the stored raw scores and curator settings.

Continuous signals (perplexity, IFD, reward, the LLM judge's rating, diversity; length only when a curator weighs it, its default
weight is 0) are mapped to [0, 1] with 1 = good by
their percentile rank in the dataset, which is robust to their very different scales, and combined as a
weighted mean. Defect flags (empty or cut-off response, wrong arithmetic, gibberish, perplexity or length
outlier, duplicates) are not averaged in: a mean would let a clean score on four other signals hide an empty
answer. Each flag instead multiplies the quality by ``1 - penalty`` when it is raised, so a penalty of
1 zeroes a flagged example and 0 ignores the flag. Moving a weight or a penalty reruns no model.

Two flags come from the data itself, whether or not a scorer ran: ``exact_duplicate`` (content hashes)
and ``empty_response`` (the response is empty or whitespace only, by
:func:`core.models.passes.is_empty_response`, the rule the scorers use). An empty row has no perplexity or
IFD (NaN), so with the default penalty of 1 its combined quality is 0 whatever else was scored.

``perplexity_outlier`` is derived here: log-perplexity more than ``OUTLIER_Z`` robust standard
deviations (1.4826 x MAD) above the dataset median. Percentile ranks alone cannot tell a response 50
times less likely than the typical one (gibberish, another language) from one that is merely the
least fluent of ordinary answers.

Per cluster: the mean combined quality, and the share of clusters whose mean is below a threshold, for
every swept k (docs/algorithms.md 2.5).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from core.models.passes import empty_responses
from core.storage import datasets
from core.storage import scores as score_store
from core.storage.database import Store
from core.storage.datasets import DatasetInfo


@dataclasses.dataclass(frozen=True)
class Signal:
    """How a raw score enters the combined quality.

    kind: ``higher`` or ``lower`` (which raw values are better), ``ifd`` (IFD >= 1 is worst, below 1 a
    higher IFD, harder but still helped, is better) or ``flag`` (a 0/1 defect).
    default: the default weight (continuous signals, any value >= 0) or penalty (flags, in [0, 1]).
    """

    kind: str
    default: float

    @property
    def is_flag(self) -> bool:
        return self.kind == "flag"


SIGNALS: dict[str, Signal] = {
    "reward": Signal("higher", 1.0),
    # On when present, as the reward model: a judge runs only when a curator points it at a server, and a run
    # is paid for, so its ratings count once they exist. Rows it left unparsed or failed (NaN) are averaged
    # over their other signals. A curator who distrusts a small judge sets its weight to 0.
    "judge": Signal("higher", 1.0),
    "perplexity": Signal("lower", 1.0),
    "ifd": Signal("ifd", 1.0),
    "tfidf_diversity": Signal("higher", 0.5),
    # Off by default: a short correct answer ("Paris.") is not a worse one. Length's extremes are flags
    # (empty, cut off, absurdly long); a curator who wants longer answers gives it a weight.
    "response_length": Signal("higher", 0.0),
    "empty_response": Signal("flag", 1.0),
    "cut_off_response": Signal("flag", 0.8),
    "arithmetic_error": Signal("flag", 0.8),
    "gibberish": Signal("flag", 0.8),
    "perplexity_outlier": Signal("flag", 0.8),
    "exact_duplicate": Signal("flag", 0.5),
    "near_duplicate": Signal("flag", 0.2),
    # all but the kept row of a MinHash group (core/score/minhash.py): a copy with a few words changed adds
    # little, but it is not wrong, so it weighs as much as an exact copy rather than as a defect
    "minhash_duplicate": Signal("flag", 0.5),
    "length_outlier": Signal("flag", 0.2),
}
DEFAULT_WEIGHTS = {name: signal.default for name, signal in SIGNALS.items()}
FROM_DATA = frozenset({"exact_duplicate", "empty_response"})
"""The signals :func:`raw_signals` derives from the texts alone, present before any scorer has run."""
DEFAULT_THRESHOLD = 0.3
OUTLIER_Z = 3.5


def _rank(values: pd.Series) -> pd.Series:
    return values.rank(pct=True, method="average")


def normalise(raw: pd.DataFrame) -> pd.DataFrame:
    """Each known signal of ``raw`` mapped to [0, 1] with 1 = good (flags: 1 - flag; NaN stays NaN)."""
    columns = {}
    for name, signal in SIGNALS.items():
        if name not in raw:
            continue
        values = raw[name].astype(float)
        if signal.kind == "flag":
            columns[name] = 1.0 - values.clip(0, 1)
        elif signal.kind == "ifd":
            helped = values.where(values < 1)
            columns[name] = _rank(helped).where(values < 1, 0.0).where(values.notna())
        elif signal.kind == "higher":
            columns[name] = _rank(values)
        else:
            columns[name] = 1.0 - _rank(values) + 1.0 / max(values.notna().sum(), 1)
    return pd.DataFrame(columns, index=raw.index)


def combined(normalised: pd.DataFrame, weights: dict[str, float]) -> pd.Series:
    """Weighted mean of the continuous signals a row has, times ``1 - penalty`` per raised flag.

    Columns not in :data:`SIGNALS` count as continuous. A row with flags but no weighted continuous
    signal starts from 1; a row with neither is NaN.
    """
    used = [name for name in normalised if weights.get(name, 0) > 0]
    flags = [name for name in used if is_flag(name)]
    continuous = [name for name in used if not is_flag(name)]
    base = pd.Series(np.nan, index=normalised.index)
    if continuous:
        values = normalised[continuous]
        w = np.array([weights[name] for name in continuous])
        present = values.notna().to_numpy()
        total = (values.fillna(0).to_numpy() * w).sum(axis=1)
        denominator = (present * w).sum(axis=1)
        base[:] = np.where(denominator > 0, total / np.maximum(denominator, 1e-12), np.nan)
    if flags:
        seen = normalised[flags].notna().any(axis=1)
        base = base.where(base.notna() | ~seen, 1.0)
        for name in flags:
            raised = 1.0 - normalised[name].fillna(1.0)
            base = base * (1.0 - min(weights[name], 1.0) * raised)
    return base


def is_flag(name: str) -> bool:
    """Whether ``name`` is a known 0/1 defect flag (a signal of another name counts as continuous)."""
    return name in SIGNALS and SIGNALS[name].is_flag


def perplexity_outliers(perplexity: pd.Series, z: float = OUTLIER_Z) -> pd.Series:
    """1.0 where log-perplexity is more than ``z`` robust standard deviations above the median, else 0.0."""
    logs = np.log(perplexity.astype(float).where(perplexity > 0))
    median = logs.median()
    spread = 1.4826 * (logs - median).abs().median()
    if not np.isfinite(spread) or spread == 0:
        return (logs * 0.0).where(logs.notna())
    return ((logs - median) / spread > z).astype(float).where(logs.notna())


def length_outliers(length: pd.Series, z: float = OUTLIER_Z) -> pd.Series:
    """1.0 where a response is absurdly long for the dataset: log length more than ``z`` robust standard
    deviations above the median (as :func:`perplexity_outliers`), else 0.0. Short responses are not flagged
    here: an empty or cut-off one has its own flag, and a short complete one is often the right answer."""
    return perplexity_outliers(length.astype(float).clip(lower=1.0), z)


def raw_signals(store: Store, dataset: DatasetInfo) -> pd.DataFrame:
    """Every stored score of the dataset's examples (row order) plus the flags of :data:`FROM_DATA`."""
    keys = list(score_store.latest_keys(store, dataset.dataset_id).values())
    raw = score_store.dataset_scores(store, dataset.dataset_id, keys)
    copies = datasets.duplicate_counts(store, dataset.dataset_id)
    raw["exact_duplicate"] = [1.0 if n > 1 else 0.0 for n in copies]
    # the same rule the heuristics scorer stores, but on every row even before (or without) that scorer
    raw["empty_response"] = empty_responses(datasets.outputs(store, dataset.dataset_id)).astype(float)
    if "perplexity" in raw:
        raw["perplexity_outlier"] = perplexity_outliers(raw["perplexity"])
    if "response_length" in raw:
        raw["length_outlier"] = length_outliers(raw["response_length"])
    return raw


def has_scores(raw: pd.DataFrame) -> bool:
    """Whether ``raw`` (from :func:`raw_signals`) holds any scorer's output beyond the flags from the data."""
    return any(raw[name].notna().any() for name in raw.columns if name not in FROM_DATA)


def example_quality_from(raw: pd.DataFrame, weights: dict[str, float] | None = None) -> pd.Series:
    """Combined quality of every row of ``raw`` (the output of :func:`raw_signals`)."""
    return combined(normalise(raw), weights or DEFAULT_WEIGHTS)


def example_quality(store: Store, dataset: DatasetInfo, weights: dict[str, float] | None = None) -> pd.Series:
    """Combined quality of every example of the dataset, in row order."""
    return example_quality_from(raw_signals(store, dataset), weights)


def cluster_quality(quality: pd.Series, cluster_ids: np.ndarray) -> pd.Series:
    """Mean combined quality per cluster id."""
    return quality.groupby(np.asarray(cluster_ids)).mean()


def picks_below(
    quality: pd.Series, cluster_ids: np.ndarray, rows: list[int], threshold: float = DEFAULT_THRESHOLD
) -> tuple[int, int]:
    """How many of ``rows`` (row indices, a selection) lie in clusters whose mean ``quality`` is below
    ``threshold``, and how many such clusters they come from: a strategy that samples by quality still draws
    from every cluster it gives a quota, so a low cluster can keep a share of the picks."""
    means = cluster_quality(quality, cluster_ids)
    low = set(means.index[means < threshold])
    picked = pd.Series(np.asarray(cluster_ids)[np.asarray(rows, dtype=int)]) if len(rows) else pd.Series([])
    below = picked[picked.isin(low)]
    return len(below), int(below.nunique())


def clusters_below(
    quality: pd.Series, cluster_ids: np.ndarray, rows: list[int], threshold: float = DEFAULT_THRESHOLD
) -> list[int]:
    """The clusters below ``threshold`` (mean ``quality``) that ``rows`` draw from, in id order: what "leave them
    out" vetoes."""
    means = cluster_quality(quality, cluster_ids)
    low = set(int(c) for c in means.index[means < threshold])
    picked = {int(c) for c in np.asarray(cluster_ids)[np.asarray(rows, dtype=int)]} if len(rows) else set()
    return sorted(low & picked)


def share_below_by_k(
    store: Store, dataset: DatasetInfo, quality: pd.Series, threshold: float = DEFAULT_THRESHOLD
) -> pd.DataFrame:
    """For every swept k: how many clusters have a mean combined quality below ``threshold``, and their share."""
    assignments = datasets.all_assignments(store, dataset.dataset_id)
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
