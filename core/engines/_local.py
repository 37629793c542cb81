"""The ``local`` engine: the stage's batch function called in this process, one chunk at a time."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from core.engines._base import ENGINES, BatchFn, EngineReport, Merge, Stage
from core.progress import Progress

if TYPE_CHECKING:
    import pyarrow as pa


@ENGINES.register
@dataclasses.dataclass(frozen=True)
class LocalEngine:
    """In this process, on the device :func:`core.models.device.pick_device` chooses (the default)."""

    name: ClassVar[str] = "local"
    title: ClassVar[str] = "local (this process)"

    def device(self) -> str:
        from core.models.device import pick_device

        return pick_device().split(":")[0]

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
    ) -> EngineReport:
        report = EngineReport(self.name, actors=1)
        batch: BatchFn | None = None
        computing = merging = 0.0
        for table in inputs:
            for first in range(0, table.num_rows, max(shard_rows, 1)):
                part = table.slice(first, shard_rows)
                if batch is None:  # the model is loaded for the first part: not at all when nothing is to do
                    started = time.perf_counter()
                    batch = stage.open()
                    report.model_load_seconds.append(round(time.perf_counter() - started, 3))
                began = time.perf_counter()
                moved = RowsProgress(progress, part.num_rows)
                outputs = batch(part, moved)
                done = time.perf_counter()
                merge(outputs)
                computing += done - began
                merging += time.perf_counter() - done
                report.rows += part.num_rows
                report.shards += 1
                report.computed_shards += 1
                progress.advance(part.num_rows - moved.done)  # a cancel stops here, after this part was merged
        report.seconds = {
            "model_load": sum(report.model_load_seconds),
            "compute": round(computing, 3),
            "merge": round(merging, 3),
        }
        return report


class RowsProgress:
    """A batch function's own progress within one part: moves the bar by the rows it reports, never past the
    part, without checking for a cancel (that comes once the part is merged, and its rows are in the store)."""

    def __init__(self, progress: Progress, rows: int) -> None:
        self.progress, self.rows, self.done = progress, rows, 0

    def __call__(self, n: float) -> None:
        step = max(0, min(int(n), self.rows - self.done))
        self.done += step
        self.progress.done += step
        self.progress.update()
