"""Evidence over several seeds: each arm's mean and spread, and its paired difference against random.

``bench/replicate.py`` and ``bench/targeted.py`` run their whole experiment once per ``--seeds`` value (the
seed draws the pool sample, the selection and the training order), then hand their per-seed rows here. An
arm is compared with ``random`` seed by seed (same pool, same evaluation rows), so the pool's draw cancels
out of the difference; the 95 % interval of the mean paired difference uses Student's t with n - 1 degrees
of freedom, the right width for three seeds, where a normal interval would be too narrow by a factor 2.2.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

BASELINE = "random"


@dataclasses.dataclass(frozen=True)
class ArmSummary:
    """One arm in one group (an evaluation set, a budget) over the seeds it finished."""

    group: str
    arm: str
    seeds: int
    mean: float
    std: float  # sample standard deviation (n - 1); NaN with one seed
    diff: float | None  # mean of (arm - random) over the seeds both finished; None for random itself
    low: float | None  # 95 % interval of that mean difference (NaN bounds with one paired seed)
    high: float | None

    @property
    def interval_excludes_zero(self) -> bool:
        """True when the 95 % interval of the paired difference lies on one side of zero."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def t_quantile(dof: int) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` degrees of freedom (two-sided 95 %)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def paired_interval(differences: Sequence[float]) -> tuple[float, float, float]:
    """Mean of paired differences and its 95 % t interval (NaN bounds with a single pair)."""
    mean, std = mean_std(differences)
    if len(differences) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(len(differences) - 1) * std / math.sqrt(len(differences))
    return mean, mean - half, mean + half


def summarise(rows: Iterable[dict[str, Any]], metric: str, group_by: Sequence[str]) -> list[ArmSummary]:
    """Per group (the values of ``group_by`` joined) and arm: mean and spread of ``metric`` over seeds, and
    the paired difference against ``random`` on the seeds where both have a value."""
    table: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        value = row.get(metric)
        if value is None or not math.isfinite(float(value)):
            continue
        group = " / ".join(str(row[key]) for key in group_by)
        table.setdefault(group, {}).setdefault(row["arm"], {})[int(row["seed"])] = float(value)
    return [summary for group, arms in table.items() for summary in _group(group, arms)]


def _group(group: str, arms: dict[str, dict[int, float]]) -> list[ArmSummary]:
    base = arms.get(BASELINE, {})
    out = []
    for arm, by_seed in arms.items():
        mean, std = mean_std(list(by_seed.values()))
        paired = [by_seed[s] - base[s] for s in sorted(by_seed) if s in base]
        diff = low = high = None
        if arm != BASELINE and paired:
            diff, low, high = paired_interval(paired)
        out.append(ArmSummary(group, arm, len(by_seed), mean, std, diff, low, high))
    return out


def format_table(summaries: Sequence[ArmSummary], metric: str) -> str:
    """A plain-text table: group, arm, seeds, mean, std, paired difference against random and its 95 % interval."""
    lines = [
        f"{'group':<32} {'arm':<16} {'seeds':>5} {'mean ' + metric:>18} {'std':>8} "
        f"{'vs random':>10} {'95 % interval':>22}"
    ]
    for s in summaries:
        diff = "" if s.diff is None else f"{s.diff:+.4f}"
        interval = "" if s.low is None or s.high is None else f"[{s.low:+.4f}, {s.high:+.4f}]"
        if s.interval_excludes_zero:
            interval += " *"
        lines.append(f"{s.group:<32} {s.arm:<16} {s.seeds:>5} {s.mean:>18.4f} {s.std:>8.4f} {diff:>10} {interval:>22}")
    lines.append("* the 95 % interval of the paired difference excludes zero")
    return "\n".join(lines)


def as_records(summaries: Sequence[ArmSummary]) -> list[dict[str, Any]]:
    """The summaries as JSON-ready dicts (NaN kept as None)."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dataclasses.asdict(s).items()}
        for s in summaries
    ]
