"""The ``select`` job: compute a selection preview (:func:`core.select.run.run_selection`) in a worker.

The Select page previews a strategy in its own script thread only on a dataset of at most
:data:`PREVIEW_IN_PAGE_ROWS` rows; above, "Preview" launches a :class:`SelectJob` (progress, cancel) and
shows the result when it ends. The computed selection is written to the job folder (``selection.json``)
and read back with :func:`load_result`; nothing is stored in the database until the curator saves it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from core import atomic, jobs
from core.progress import Progress, interruptible
from core.select.run import SelectionResult

# Above this many rows a preview runs in the background: loading the pool alone (ids, clusters, scores) grows
# with the rows, and a strategy such as km_closest took 37 s at 52k rows in the page.
PREVIEW_IN_PAGE_ROWS = 100_000
RESULT_FILE = "selection.json"


@dataclasses.dataclass(frozen=True)
class SelectJob:
    """Select ``budget`` (a count, or a fraction below 1) of ``dataset``'s kept rows with ``strategy``."""

    kind: ClassVar[str] = "select"
    dataset: str
    strategy: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    budget: float = 0.1
    seed: int = 0
    k: int | None = None

    def validate(self, workspace: Path) -> None:
        from core.select.run import build_strategy
        from core.select.strategies import STRATEGIES

        jobs.ready_dataset(workspace, self.dataset)
        with jobs.blame("strategy"):
            STRATEGIES.get(self.strategy)
        with jobs.blame("params"):
            build_strategy(self.strategy, self.params)
        if not isinstance(self.budget, int | float) or self.budget <= 0:
            raise jobs.InvalidJob("budget", f"give a count or a fraction above 0, not {self.budget!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise jobs.InvalidJob("seed", f"give a whole number from 0, not {self.seed!r}")

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SelectJob:
        k = params.get("k")
        return cls(
            dataset=str(params["dataset"]),
            strategy=str(params["strategy"]),
            params=dict(params.get("params") or {}),
            budget=float(params.get("budget", 0.1)),
            seed=int(params.get("seed", 0)),
            k=None if k is None else int(k),
        )


def execute(workspace: Path, spec: SelectJob, progress: Progress, job_dir: Path) -> dict[str, Any]:
    """Job kind ``select``: a preview stores nothing, so a rerun simply computes it again."""
    from core.select.run import build_strategy, run_selection
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    progress.start("select", 1)
    dataset = ds.get_dataset(store, spec.dataset)
    strategy = build_strategy(spec.strategy, spec.params)
    with interruptible(progress):  # a strategy checks no progress: Cancel stops it mid-way (it stores nothing)
        result = run_selection(store, dataset, strategy, spec.budget, seed=spec.seed, k=spec.k)
    atomic.write_json(job_dir / RESULT_FILE, dataclasses.asdict(result), default=_plain)
    progress.advance()
    return {"selected": len(result.example_ids), "pool_size": result.pool_size, "seconds": round(result.seconds, 2)}


def load_result(workspace: Path, job_id: str) -> SelectionResult:
    """The selection a finished ``select`` job computed."""
    data = json.loads((jobs.job_folder(workspace, job_id) / RESULT_FILE).read_text())
    return SelectionResult(**data)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in a strategy's report, as JSON numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
