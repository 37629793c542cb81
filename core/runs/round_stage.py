"""An iterative-kMQ round's generation and re-scoring as an engine stage (:mod:`core.engines`): the round's
model rebuilt in each actor from the base model and the LoRA adapters the run saved, greedy responses to the
round's prompts, then S (Eq. 4) from the round's scorer, as :func:`core.runs.iterative_kmq._run_round` does
in the run's own process.

The adapters travel inside the stage (a few MB each). With ``continue_training`` a round's model is the base
with every earlier round's adapter merged in, in order, then this round's on top: the stage carries the chain.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from core.engines import BatchFn, RowsDone

INPUT_COLUMNS = ("instruction", "input", "output")


@dataclasses.dataclass(frozen=True)
class KMQRoundStage:
    """Inputs ``key`` (the pool position) and the example's texts; outputs ``key``, ``generation`` and
    ``score``. ``round_key`` names the run, the round and its adapters, so shards of another round are never
    mistaken for this one's."""

    name: ClassVar[str] = "kmq_round"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "peft", "pyarrow", "pandas")
    round_key: str
    config: Any  # the run's TrainConfig (its model, method and LoRA settings)
    adapters: tuple[dict[str, bytes], ...]  # file name -> content, earliest first; the last is this round's
    scorer: Any  # a KMQScorer
    max_new_tokens: int
    batch_size: int

    def key(self) -> str:
        return self.round_key

    def open(self) -> BatchFn:
        from core.models.generation import generate_responses
        from core.models.lm import load_causal_lm
        from core.runs.iterative_kmq import load_trained, merged

        lm = load_causal_lm(self.config.model)
        model: Any = lm.model
        with tempfile.TemporaryDirectory(prefix="round-") as folder:
            for index, files in enumerate(self.adapters):
                place = Path(folder) / str(index)
                place.mkdir()
                for name, content in files.items():
                    (place / name).write_bytes(content)
                # load_trained copies what it is given: the process's loaded model stays as it was
                model = load_trained(model, place, self.config)
                if index < len(self.adapters) - 1:
                    model = merged(model)

        def batch(table: pa.Table, rows_done: RowsDone | None = None) -> pa.Table:
            import pyarrow as pa

            frame = table.select(list(INPUT_COLUMNS)).to_pandas()
            generations = generate_responses(
                model, lm.tokenizer, frame, self.max_new_tokens, self.batch_size, self.config.max_length
            )
            scores = np.asarray(self.scorer(model, lm.tokenizer, frame, generations), dtype=np.float64)
            return pa.table({"key": table.column("key"), "generation": generations, "score": scores})

        return batch
