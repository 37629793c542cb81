"""What a target set is made of, told before it is used: its rows, how many have a response, how long those are.

A gradient method (LESS, G2IS and its gradient ablations) computes each target row's loss on the row's
*response*. A row whose output is empty still has one supervised token, the end-of-turn marker after the
empty answer, so its gradient says how the model ends a turn, not how it solves the task: on a 30-row
GSM8K target given as prompts only, G2IS picked 80 % empty rows and LESS none of the task's own rows
(issue 15). So a target with no responses is refused for those methods, a partly-empty one is computed on
its answered rows only, and a small one is flagged (docs/algorithms.md 4.1). Embedding strategies embed
the prompt fields and may use any of them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UnusableTarget

if TYPE_CHECKING:
    from core.train.evaluate import EvalSet

# Below 10 rows a single row is more than a tenth of the mean gradient LESS ranks by, and G2IS's centred
# PCA has at most 9 directions, so each "principal direction" is about one row's quirks; the papers use
# dozens of target rows and docs/algorithms.md 4.8 suggests 20-100.
SMALL_TARGET_ROWS = 10

# words and punctuation marks, as Pool.response_tokens and the heuristics scorer count a response
_TOKEN = re.compile(r"\w+|[^\w\s]")

EMBEDDING_ALTERNATIVES = "embedding_knn or g2is_embeddings"


@dataclasses.dataclass(frozen=True)
class TargetReport:
    """One target file: ``rows``, ``answered`` (rows whose output is not empty or whitespace) and the mean
    length of those responses in words and punctuation marks (0 when there are none)."""

    name: str
    path: str
    rows: int
    answered: int
    mean_response_tokens: float

    @property
    def empty(self) -> int:
        return self.rows - self.answered

    def line(self) -> str:
        """The one-line summary the CLI and the pages print."""
        return (
            f"target {self.name}: {self.rows} rows, {self.answered} with a response, "
            f"{self.mean_response_tokens:.1f} response tokens on average"
        )

    def warnings(self) -> list[str]:
        """What a curator should know before using it; empty when nothing stands out."""
        notes = []
        if self.answered == 0:
            notes.append(no_responses_message(self))
        elif self.empty:
            notes.append(
                f"target {self.name}: {self.empty} of {self.rows} rows have no response; gradient methods use "
                f"only the {self.answered} rows with one (an empty row's gradient is the end-of-turn token's)"
            )
        if self.rows < SMALL_TARGET_ROWS:
            notes.append(
                f"target {self.name} has only {self.rows} row(s): a direction from so few rows follows single "
                f"rows; {SMALL_TARGET_ROWS} or more (20-100 is typical) give a steadier one"
            )
        return notes

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "warnings": self.warnings()}


def no_responses_message(report: TargetReport) -> str:
    return (
        f"target {report.name} has no responses (all {report.rows} outputs are empty): a gradient method's "
        "target gradient would come from the end-of-turn token alone, not from the task; add reference "
        f"answers to the rows' output field, or use an embedding target ({EMBEDDING_ALTERNATIVES})"
    )


def answered_rows(eval_set: EvalSet) -> list[int]:
    """Positions of the rows with a response, by the one rule for "empty" (whitespace of any kind is empty)."""
    from core.models.passes import is_empty_response

    return [i for i, row in enumerate(eval_set.rows) if not is_empty_response(row.output)]


def describe(eval_set: EvalSet) -> TargetReport:
    """The report of a target set already read."""
    lengths = [len(_TOKEN.findall(eval_set.rows[i].output)) for i in answered_rows(eval_set)]
    return TargetReport(
        name=eval_set.name,
        path=str(eval_set.path),
        rows=len(eval_set.rows),
        answered=len(lengths),
        mean_response_tokens=sum(lengths) / len(lengths) if lengths else 0.0,
    )


def describe_paths(paths: Sequence[str | Path]) -> list[TargetReport]:
    """Read each target file (a bad row raises IngestError naming file, line and field) and describe it."""
    from core.train.evaluate import load_eval_set

    return [describe(load_eval_set(path)) for path in paths]


def require_responses(reports: Sequence[TargetReport]) -> None:
    """Refuse, for a gradient method, a target none of whose rows has a response."""
    for report in reports:
        if report.answered == 0:
            raise UnusableTarget(no_responses_message(report))


def check_strategy_target(target: str, needs: frozenset[str]) -> list[TargetReport]:
    """The reports of a strategy's ``target`` files (none without one); refuses a target without responses
    when the strategy reads target gradients (``target`` in ``needs``). Reads only the files: no model."""
    from core.gradients.pipeline import target_paths

    reports = describe_paths(target_paths(target))
    if "target" in needs:
        require_responses(reports)
    return reports
