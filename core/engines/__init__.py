"""Where a model stage runs: in this process (``local``, the default) or on a Ray cluster (``ray``).

A model stage (embedding, LM scoring, ...) is a :class:`Stage`: a picklable description whose ``open()`` loads
the model once and returns its batch function, an Arrow table of inputs (a ``key`` column and the texts) to an
Arrow table of outputs (the same ``key`` column and the values). Both engines call that one function, so their
results can differ only by floating-point order:

- :class:`LocalEngine` calls it in this process, chunk by chunk, and hands each chunk's outputs to the
  caller's ``merge`` (which commits them to the workspace).
- :class:`RayEngine` writes the inputs as Parquet shards under a folder the cluster can read (the workspace by
  default, or a shared URI), runs a Ray Data pipeline over them (``map_batches`` with an actor class that
  loads the model once per actor, ``num_gpus`` per actor on a GPU cluster), each actor writing one output
  shard per input shard; this process, the only one that writes the workspace, merges finished shards as they
  come and deletes them. A rerun after a killed driver merges the shards that finished and computes only the
  missing ones; Ray itself retries the shards of a killed actor.

Each engine says on which device its workers compute (:meth:`Engine.device`), so a stage whose precision is
``auto`` is resolved for that device before its cache key is taken: the key names what the workers compute.
"""

from __future__ import annotations

from core.engines._base import (
    ENGINES,
    EXAMPLE_COLUMNS,
    SHARD_FOLDER,
    BatchFn,
    Engine,
    EngineReport,
    RowsDone,
    Stage,
    build_engine,
    engine_from_options,
    engine_from_spec,
    example_frame,
    example_table,
    run_in_order,
)
from core.engines._local import LocalEngine, RowsProgress
from core.engines._ray import RayEngine
from core.errors import EngineError

__all__ = [
    "ENGINES",
    "EXAMPLE_COLUMNS",
    "SHARD_FOLDER",
    "BatchFn",
    "Engine",
    "EngineError",
    "EngineReport",
    "LocalEngine",
    "RayEngine",
    "RowsDone",
    "RowsProgress",
    "Stage",
    "build_engine",
    "engine_from_options",
    "engine_from_spec",
    "example_frame",
    "example_table",
    "run_in_order",
]
