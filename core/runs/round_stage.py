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
    precision: str = "fp32"  # of the generation, resolved by the run (the driver) so every actor uses one

    def key(self) -> str:
        return self.round_key

    def open(self) -> BatchFn:
        from core.engines import example_frame
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

            frame = example_frame(table)
            generations = generate_responses(
                model, lm.tokenizer, frame, self.max_new_tokens, self.batch_size, self.config.max_length,
                precision=self.precision,
            )  # fmt: skip
            scores = np.asarray(self.scorer(model, lm.tokenizer, frame, generations), dtype=np.float64)
            return pa.table({"key": table.column("key"), "generation": generations, "score": scores})

        return batch


@dataclasses.dataclass(frozen=True)
class IFDStage:
    """IterIT's re-scoring as a stage: IFD (:func:`core.models.passes.ifd_scores`) of each example under the
    base model, or under the base with the training session's LoRA adapter as it stood when the epoch began.
    Inputs ``key`` (the position) and the texts; outputs ``key`` and ``ifd``."""

    name: ClassVar[str] = "iterit_ifd"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "peft", "pyarrow", "pandas")
    stage_key: str
    config: Any  # the run's TrainConfig
    adapter: dict[str, bytes] | None  # None: the base model (epoch 0)

    def key(self) -> str:
        return self.stage_key

    def open(self) -> BatchFn:
        from core.engines import example_frame
        from core.models.lm import load_causal_lm
        from core.models.passes import ifd_scores
        from core.runs.iterative_kmq import load_trained

        lm = load_causal_lm(self.config.model)
        model: Any = lm.model
        if self.adapter is not None:
            with tempfile.TemporaryDirectory(prefix="epoch-") as folder:
                for name, content in self.adapter.items():
                    (Path(folder) / name).write_bytes(content)
                model = load_trained(model, Path(folder), self.config)

        def batch(table: pa.Table, rows_done: RowsDone | None = None) -> pa.Table:
            import pyarrow as pa

            frame = example_frame(table)
            values = np.asarray(ifd_scores(model, lm.tokenizer, frame, self.config.max_length), dtype=np.float64)
            return pa.table({"key": table.column("key"), "ifd": values})

        return batch


@dataclasses.dataclass(frozen=True)
class EngineIFD:
    """An IterIT IFD function (model, tokenizer, examples) -> IFD that runs on ``engine``: the model's LoRA
    adapter (none for the base model of epoch 0) is saved and sent with the stage."""

    engine: Any  # an Engine
    config: Any  # the run's TrainConfig
    out_dir: Path

    def __call__(self, model: Any, tokenizer: Any, examples: Any) -> np.ndarray:
        import hashlib

        from core.engines import SHARD_FOLDER, run_in_order
        from core.gradients.stage import adapter_files
        from core.train.trainer import save_model

        if self.config.method != "lora":
            raise ValueError("IterIT's re-scoring runs on the ray engine for LoRA runs only: use the local engine")
        adapter = None
        if hasattr(model, "peft_config"):  # the session's model; the base model of epoch 0 has none
            with tempfile.TemporaryDirectory(prefix="epoch-") as folder:
                save_model(model, Path(folder), self.config)
                adapter = adapter_files(Path(folder))
        frame = examples.reset_index(drop=True)
        texts = "\x00".join(
            f"{i}\x01{x}\x01{o}" for i, x, o in zip(frame.instruction, frame.input, frame.output, strict=True)
        )
        digest = hashlib.sha256(b"".join((adapter or {}).values()) + texts.encode()).hexdigest()[:16]
        stage = IFDStage(f"{self.out_dir.resolve()}:{digest}", self.config, adapter)
        done = run_in_order(self.engine, stage, frame, folder=self.out_dir / SHARD_FOLDER, shard_rows=IFD_SHARD)
        return np.asarray(done.column("ifd").to_numpy(zero_copy_only=False), dtype=float)


IFD_SHARD = 64  # examples per shard of an IterIT re-scoring on an engine
