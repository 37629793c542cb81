"""Scoring as an engine stage (:mod:`core.engines`): examples in, a scorer's raw values out, through the
scorer's own ``score``, so the ``local`` and ``ray`` engines compute the same values."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from core.engines import example_frame
from core.score.scorers import Scorer

if TYPE_CHECKING:
    import pyarrow as pa

    from core.engines import BatchFn, RowsDone


@dataclasses.dataclass(frozen=True)
class ScoreStage:
    """Inputs ``key`` (the content hash) and the example's texts; outputs ``key`` and one float64 column per
    value the scorer gives."""

    name: ClassVar[str] = "score"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "pyarrow", "pandas")
    scorer: Any  # a Scorer
    score_key: str

    def key(self) -> str:
        return self.score_key

    def open(self) -> BatchFn:
        from core.score.scoring import load_model

        scorer: Scorer = self.scorer
        load_model(scorer)

        def batch(table: pa.Table, rows_done: RowsDone | None = None) -> pa.Table:
            # the scorer's own progress is not passed on: a scoring part counts once it is committed
            import pyarrow as pa

            values = scorer.score(example_frame(table))
            columns = {name: np.asarray(array, dtype=np.float64) for name, array in values.items()}
            return pa.table({"key": table.column("key"), **columns})

        return batch


def for_device(scorer: Scorer, device: str) -> Scorer:
    """``scorer`` with a precision of ``auto`` resolved for ``device`` (see :func:`core.embed.stage.for_device`)."""
    if getattr(scorer, "precision", None) == "auto" and dataclasses.is_dataclass(scorer):
        from core.models.device import use_bf16

        return dataclasses.replace(scorer, precision="bf16" if use_bf16(device) else "fp32")
    return scorer


def table_values(table: pa.Table) -> tuple[list[str], dict[str, np.ndarray]]:
    """The content hashes and the values of a stage's output table."""
    values = {name: table.column(name).to_numpy() for name in table.column_names if name != "key"}
    return table.column("key").to_pylist(), values
