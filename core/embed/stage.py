"""Embedding as an engine stage (:mod:`core.engines`): texts in, unit vectors out, through the embedder's own
``embed``, so the ``local`` and ``ray`` engines compute the same vectors."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from core.embed.embedders import Embedder, SentenceTransformerEmbedder, load_sentence_transformer

if TYPE_CHECKING:
    import pyarrow as pa

    from core.engines import BatchFn, RowsDone


@dataclasses.dataclass(frozen=True)
class EmbedStage:
    """Inputs ``key`` (the text's hash) and ``text``; outputs ``key`` and ``vector`` (float32, unit norm)."""

    name: ClassVar[str] = "embed"
    requires: ClassVar[tuple[str, ...]] = ("torch", "sentence_transformers", "sklearn", "pyarrow")
    embedder: Any  # an Embedder (Any: a Protocol is no dataclass field type mypy accepts for pickling)

    def key(self) -> str:
        return str(self.embedder.cache_key())

    def open(self) -> BatchFn:
        embedder: Embedder = self.embedder
        if isinstance(embedder, SentenceTransformerEmbedder):  # loaded here, once, not in the first part's time
            from core.models.device import pick_device

            load_sentence_transformer(embedder.model, pick_device())

        def batch(table: pa.Table, rows_done: RowsDone | None = None) -> pa.Table:
            vectors = embedder.embed(table.column("text").to_pylist(), progress=rows_done)
            return vector_table(table.column("key"), vectors)

        return batch


def vector_table(keys: Any, vectors: np.ndarray) -> pa.Table:
    """``key`` and ``vector`` (a fixed-size list of float32) columns."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1))
    return pa.table({"key": keys, "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})


def table_vectors(table: pa.Table) -> np.ndarray:
    """The (N, d) float32 matrix of a ``vector`` column (see :func:`vector_table`)."""
    column = table.column("vector").combine_chunks()
    return np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(column), -1)


def for_device(embedder: Embedder, device: str) -> Embedder:
    """``embedder`` with a precision of ``auto`` resolved for ``device``, so its cache key names what workers on
    that device compute (a GPU cluster embeds in bf16 while this machine would pick float32)."""
    if isinstance(embedder, SentenceTransformerEmbedder) and embedder.precision == "auto":
        from core.models.device import use_bf16

        return dataclasses.replace(embedder, precision="bf16" if use_bf16(device) else "fp32")
    return embedder
