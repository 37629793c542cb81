"""Pooled hidden states as an engine stage (:mod:`core.engines`): examples in, the base model's position-weighted
mean-pooled final hidden states out, through :func:`core.models.hidden.pooled_hidden_states`, so the ``local``
and ``ray`` engines compute the same features. The stage carries only names and numbers (the model is loaded
by name in each worker), so it pickles for Ray as it is."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import pyarrow as pa

    from core.engines import BatchFn, RowsDone


@dataclasses.dataclass(frozen=True)
class HiddenStage:
    """Inputs ``key`` (the row index) and the example's texts; outputs ``key`` and ``vector`` (the row's unit
    feature, float32). ``feature_key`` names every setting the features depend on, the resolved precision
    included (:func:`core.hidden.pipeline.pool_info`)."""

    name: ClassVar[str] = "hidden_states"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "pyarrow", "pandas")
    feature_key: str
    model: str
    max_length: int
    precision: str  # "bf16" or "fp32", resolved for the device the workers compute on

    def key(self) -> str:
        return self.feature_key

    def open(self) -> BatchFn:
        from core.models.lm import load_causal_lm

        lm = load_causal_lm(self.model)

        def batch(table: pa.Table, rows_done: RowsDone | None = None) -> pa.Table:
            from core.embed.stage import vector_table
            from core.engines import example_frame
            from core.models.hidden import pooled_hidden_states

            features = pooled_hidden_states(
                lm.model,
                lm.tokenizer,
                example_frame(table),
                max_length=self.max_length,
                bf16=self.precision == "bf16",
                progress=rows_done,
            )
            return vector_table(table.column("key"), features)

        return batch
