"""Proposed cluster vetoes, each with the reasons a curator can check before accepting it.

A cluster is proposed on one of two grounds, never on one weak signal alone (docs/algorithms.md 1.9):

- **flags**: at least ``FLAG_SHARE`` of its rows carry a defect, that is a strong flag (one whose penalty is
  at least ``STRONG_PENALTY``: empty, cut off, wrong arithmetic, gibberish, perplexity outlier, exact
  duplicate at the defaults) or two weak ones together (near duplicate, length outlier);
- **scores**: its mean combined quality is below the threshold and, on at least ``MIN_SCORE_SIGNALS``
  weighted continuous signals scored on at least ``MIN_SCORED_ROWS`` of its rows, its rows sit on average in
  the bottom ``SCORE_PERCENTILE`` of the dataset.

Each proposal names those signals, the share of the cluster a flag raised against the share of the whole
dataset (a flag on 90% of a cluster and 3% of the data is a defect group; on 40% of both it is the data), or
the percentile of the cluster's mean score, and the rows that drive it: its flagged rows first, then its
lowest-quality ones. Only this module decides; the Quality page shows what it returns.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from core.score import quality

FLAG_SHARE = 0.5
STRONG_PENALTY = 0.5
SCORE_PERCENTILE = 0.1
MIN_SCORE_SIGNALS = 2
MIN_SCORED_ROWS = 5  # a cluster's mean score over fewer scored rows (an LM run on a sample) proves nothing
EXAMPLES = 5
REASON_SHARE = 0.05  # a flag on fewer of the cluster's rows than this is not named among its reasons


@dataclasses.dataclass(frozen=True)
class Reason:
    """One signal behind a proposal. ``kind`` ``flag``: ``value`` is the share of the cluster's rows it raised,
    ``dataset`` the share of the whole dataset's. ``kind`` ``score``: ``value`` is the cluster's mean percentile
    rank on the signal (0 = the dataset's worst), ``dataset`` 0.5 (the dataset's own mean rank)."""

    signal: str
    kind: str
    value: float
    dataset: float

    def text(self) -> str:
        if self.kind == "flag":
            return f"{self.signal}: {self.value:.0%} of the cluster's rows (the dataset: {self.dataset:.1%})"
        return f"{self.signal}: its rows average the {self.value:.0%} percentile of the dataset (lower is worse)"


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A cluster proposed for veto: why (``ground`` ``flags`` or ``scores`` and the ``reasons``), how much of
    it is defective (``flagged_share``), its mean combined ``quality``, and the row indices of its
    ``examples`` (the rows that drive the proposal, worst first)."""

    cluster_id: int
    size: int
    quality: float
    ground: str
    flagged_share: float
    reasons: tuple[Reason, ...]
    examples: tuple[int, ...]

    def summary(self) -> str:
        if self.ground == "flags":
            head = f"{self.flagged_share:.0%} of its {self.size} rows carry a defect flag"
        else:
            head = f"mean quality {self.quality:.2f}, low on {len(self.reasons)} scores"
        return head + ": " + "; ".join(reason.text() for reason in self.reasons)


def defective(raw: pd.DataFrame, weights: dict[str, float]) -> pd.Series:
    """Per row: True when a strong flag (penalty >= ``STRONG_PENALTY``) or two weak ones (penalty > 0) are raised."""
    strong, weak = _flags(raw, weights)
    raised = raw.reindex(columns=strong + weak).fillna(0.0) >= 0.5
    return raised[strong].any(axis=1) | (raised[weak].sum(axis=1) >= 2)


def _flags(raw: pd.DataFrame, weights: dict[str, float]) -> tuple[list[str], list[str]]:
    present = [name for name, signal in quality.SIGNALS.items() if signal.is_flag and name in raw]
    strong = [name for name in present if weights.get(name, 0.0) >= STRONG_PENALTY]
    weak = [name for name in present if 0.0 < weights.get(name, 0.0) < STRONG_PENALTY]
    return strong, weak


def propose(
    raw: pd.DataFrame,
    weights: dict[str, float],
    assignment: np.ndarray,
    threshold: float = quality.DEFAULT_THRESHOLD,
    skip: set[int] | frozenset[int] = frozenset(),
    normalised: pd.DataFrame | None = None,
) -> list[Proposal]:
    """The proposed vetoes of the clusters of ``assignment`` (a cluster id per row of ``raw``, the output of
        :func:`core.score.quality.raw_signals`) under the curator's ``weights`` and ``threshold``; clusters in
        ``skip`` (vetoed or dismissed) are left out; ``normalised`` is ``quality.normalise(raw)`` when the caller has
    it already (2 s of a million rows). Flag-grounded proposals first, most defective first."""
    raw = raw.reset_index(drop=True)
    clusters = pd.Series(np.asarray(assignment), index=raw.index)
    normalised = quality.normalise(raw) if normalised is None else normalised.reset_index(drop=True)
    combined = quality.combined(normalised, weights)
    bad = defective(raw, weights)
    strong, weak = _flags(raw, weights)
    continuous = [name for name in normalised if not quality.SIGNALS[name].is_flag and weights.get(name, 0) > 0]
    raised = raw.reindex(columns=strong + weak).fillna(0.0) >= 0.5
    # per-cluster tables computed once (groupby, not a loop over clusters: a million rows, hundreds of clusters)
    by_cluster = pd.DataFrame({"bad": bad, "quality": combined}).groupby(clusters)
    shares, means, sizes = by_cluster.bad.mean(), by_cluster.quality.mean(), by_cluster.size()
    flag_shares = raised.groupby(clusters).mean()
    flag_rates = raised.mean()
    score_means = normalised[continuous].groupby(clusters).mean()
    score_counts = normalised[continuous].notna().groupby(clusters).sum()
    result = []
    for cluster_id in shares.index:
        if int(cluster_id) in skip:
            continue
        share, mean_quality = float(shares[cluster_id]), float(means[cluster_id])
        if share >= FLAG_SHARE:
            reasons = [
                Reason(name, "flag", float(flag_shares.at[cluster_id, name]), float(flag_rates[name]))
                for name in strong + weak
            ]
            reasons = sorted((r for r in reasons if r.value >= REASON_SHARE), key=lambda r: -r.value)
            ground = "flags"
        else:
            low = [
                Reason(name, "score", float(score_means.at[cluster_id, name]), 0.5)
                for name in continuous
                if score_counts.at[cluster_id, name] >= MIN_SCORED_ROWS
            ]
            reasons = sorted((r for r in low if r.value <= SCORE_PERCENTILE), key=lambda r: r.value)
            if not (mean_quality < threshold and len(reasons) >= MIN_SCORE_SIGNALS):
                continue
            ground = "scores"
        members = clusters.index[clusters.to_numpy() == cluster_id]
        order = pd.DataFrame({"bad": bad[members], "quality": combined[members]}).sort_values(
            ["bad", "quality"], ascending=[False, True], kind="stable"
        )
        result.append(
            Proposal(
                cluster_id=int(cluster_id),
                size=int(sizes[cluster_id]),
                quality=mean_quality,
                ground=ground,
                flagged_share=share,
                reasons=tuple(reasons),
                examples=tuple(int(row) for row in order.index[:EXAMPLES]),
            )
        )
    return sorted(result, key=lambda p: (p.ground != "flags", -p.flagged_share, p.quality))
