"""The stage and engine protocols, the engine registry, and the report every engine run gives."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core import config
from core.progress import Progress
from core.registry import Registry

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

RowsDone = Callable[[int], None]
BatchFn = Callable[["pa.Table", "RowsDone | None"], "pa.Table"]
"""A stage's batch function: inputs (``key`` and the stage's input columns) to outputs (``key`` and values);
its optional second argument is told how many rows it finished as it goes (the local engine moves its bar)."""
Merge = Callable[["pa.Table"], None]
"""What the caller does with finished outputs: commit them to the workspace (called in this process only)."""


class Stage(Protocol):
    """One model stage's work, the same in every engine.

    ``name`` names the stage in shard folders and reports; ``key()`` says what its results depend on (the
    model, its parameters and the resolved precision), so shards of another configuration are never reused;
    ``requires`` lists the modules a worker must be able to import; ``open()`` loads the model (once per
    process or actor) and returns the batch function.
    """

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]]

    def key(self) -> str: ...

    def open(self) -> BatchFn: ...


@dataclasses.dataclass
class EngineReport:
    """What one engine run did: rows and shards computed now, shards merged from an earlier (killed) run,
    and where the time went (seconds by phase)."""

    engine: str
    rows: int = 0
    shards: int = 0
    computed_shards: int = 0
    recovered_shards: int = 0
    actors: int = 0
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    model_load_seconds: list[float] = dataclasses.field(default_factory=list)


class Engine(Protocol):
    """Runs a stage's batch function over input tables and hands each finished part to ``merge``.

    ``inputs`` may be a generator (the caller reads the workspace window by window); ``shard_rows`` is how many
    rows go into one call of the batch function (a Parquet shard on Ray); ``folder`` is the workspace folder
    for this stage's shards (an engine that needs none ignores it). ``progress`` counts rows merged.
    """

    name: ClassVar[str]
    title: ClassVar[str]

    def device(self) -> str:
        """The device the workers compute on (``cuda`` or ``cpu``): what a precision of ``auto`` resolves for."""
        ...

    def run(
        self,
        stage: Stage,
        inputs: Iterable[pa.Table],
        merge: Merge,
        *,
        folder: Path,
        shard_rows: int,
        total: int,
        progress: Progress,
    ) -> EngineReport: ...


ENGINES: Registry[Engine] = Registry("engine")
SHARD_FOLDER = "engine"  # the workspace folder under which the ray engine writes each stage's shards
DEFAULT_ENGINE = "local"


def build_engine(name: str | None = None, **params: Any) -> Engine:
    """An engine from its registry name (default ``local``) and parameters (``None`` values mean the default)."""
    chosen = name or DEFAULT_ENGINE
    if chosen not in ENGINES.names():
        raise ValueError(f"no engine {chosen!r}: choose from {', '.join(ENGINES.names())}")
    return ENGINES.build(chosen, **{k: v for k, v in params.items() if v is not None})


def engine_from_options(engine: str | None, ray_address: str | None = None, **params: Any) -> Engine:
    """The engine a CLI or a job asked for: ``ray`` takes ``ray_address``, else ``CURATE_RAY_ADDRESS``, else
    ``local`` (a Ray instance started on this machine for the job)."""
    if (engine or DEFAULT_ENGINE) == "ray":
        return build_engine("ray", address=ray_address or config.ray_address(), **params)
    if ray_address:
        raise ValueError("--ray-address is for the ray engine: add --engine ray")
    return build_engine(engine, **params)


def engine_from_spec(spec: dict[str, Any] | None) -> Engine | None:
    """The engine a job file names (``{"name": "ray", "address": ...}``); None (or local) means this process."""
    if not spec or spec.get("name", DEFAULT_ENGINE) == DEFAULT_ENGINE:
        return None
    params = dict(spec)
    name = params.pop("name")
    if name == "ray":  # an address left at its default follows CURATE_RAY_ADDRESS, as on the CLI
        params.setdefault("address", config.ray_address())
    return build_engine(name, **params)


EXAMPLE_COLUMNS = ("instruction", "input", "output")  # what a stage reading examples gets beside its key


def example_table(keys: Iterable[object], frame: pd.DataFrame) -> pa.Table:
    """A stage's inputs: ``key`` (each key as text) and the example columns of ``frame``, row for row."""
    import pyarrow as pa

    columns = {column: pa.array(frame[column].astype(str).tolist(), pa.string()) for column in EXAMPLE_COLUMNS}
    return pa.table({"key": pa.array([str(key) for key in keys], pa.string()), **columns})


def example_frame(table: pa.Table) -> pd.DataFrame:
    """The example columns of a stage's input table, as the scorers and passes take them."""
    return table.select(list(EXAMPLE_COLUMNS)).to_pandas()


def run_in_order(engine: Engine, stage: Stage, frame: pd.DataFrame, *, folder: Path, shard_rows: int) -> pa.Table:
    """The stage's outputs for every row of ``frame`` (not empty), in its order: for work whose results the
    caller keeps in memory (a loop's round), where nothing is committed part by part."""
    import pyarrow as pa
    import pyarrow.compute as pc

    frame = frame.reset_index(drop=True)
    parts: list[pa.Table] = []
    inputs = example_table(range(len(frame)), frame)
    engine.run(
        stage, [inputs], parts.append, folder=folder, shard_rows=shard_rows, total=len(frame), progress=Progress()
    )
    outputs = pa.concat_tables(parts)
    return outputs.take(pc.sort_indices(pc.cast(outputs.column("key"), pa.int64())))
