"""How long each model stage took in this workspace: one row per completed run of a stage on a dataset.

A stage (``embeddings``, ``scores`` with its scorer, ``warmup``, ``gradients``, ``target_gradients``,
``graph``, ``hidden_states``...) records the rows it computed now, its seconds, the device and the engine
it ran on, under the key of what it produced (embedder key, score key, feature key). Rows found in a cache
cost nothing and are not counted; a run that computed nothing is not recorded. Two readers use the rows:
:mod:`core.select.needs` turns them into this machine's measured rates (rows per second) for the estimates
shown before a selection, and the cost a saved selection records (the seconds of the runs that produced
its inputs).

Recording is one call where a stage finishes::

    stage_runs.record(store, dataset_id, stage="hidden_states", key=key, rows=n, seconds=s, device="cuda")
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core import config

if TYPE_CHECKING:
    from core.storage.database import Store


@dataclasses.dataclass(frozen=True)
class StageRun:
    """One recorded run: ``rows`` computed in ``seconds`` on ``device`` (cpu, cuda, mps) by ``engine``."""

    dataset_id: int
    stage: str
    scorer: str | None
    key: str
    rows: int
    seconds: float
    device: str
    engine: str

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / max(self.seconds, 1e-9)


def record(
    store: Store,
    dataset_id: int,
    *,
    stage: str,
    key: str,
    rows: int,
    seconds: float,
    device: str,
    engine: str = "local",
    scorer: str | None = None,
) -> bool:
    """Remember that ``stage`` computed ``rows`` rows of ``dataset_id`` in ``seconds``; a run of no rows (all
    cached) is not recorded. Returns whether a row was written."""
    if rows <= 0 or seconds < 0:
        return False
    # bump "none": the stage's own results were written (and bumped the versions) already
    with store.write(bump="none") as con:
        con.execute(
            "INSERT INTO stage_runs (dataset_id, stage, scorer, key, rows, seconds, device, engine, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                int(dataset_id),
                stage,
                scorer,
                key,
                int(rows),
                float(seconds),
                device,
                engine,
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
    return True


def runs(store: Store, *, stage: str, dataset_id: int | None = None, scorer: str | None = None) -> list[StageRun]:
    """The recorded runs of ``stage`` (of one dataset, of one scorer, when given), oldest first."""
    where: list[str] = ["stage = ?"]
    params: list[object] = [stage]
    if dataset_id is not None:
        where.append("dataset_id = ?")
        params.append(int(dataset_id))
    if scorer is not None:
        where.append("scorer = ?")
        params.append(scorer)
    with store.read() as con:
        rows = con.execute(
            "SELECT dataset_id, stage, scorer, key, rows, seconds, device, engine FROM stage_runs "
            f"WHERE {' AND '.join(where)} ORDER BY created_at",
            params,
        ).fetchall()
    return [StageRun(int(d), s, sc, k, int(n), float(sec), dev, eng) for d, s, sc, k, n, sec, dev, eng in rows]


def seconds_for(store: Store, dataset_id: int, stage: str, keys: list[str]) -> float:
    """Total seconds of the dataset's recorded runs of ``stage`` that produced any of ``keys``."""
    if not keys:
        return 0.0
    with store.read() as con:
        row = con.execute(
            "SELECT coalesce(sum(seconds), 0) FROM stage_runs WHERE dataset_id = ? AND stage = ? "
            "AND list_contains(?, key)",
            [dataset_id, stage, keys],
        ).fetchone()
    return float(row[0]) if row else 0.0


def device_of(engine: Any | None = None) -> str:
    """The device a stage's work ran on: the engine's workers' for a non-local engine, else ``CURATE_DEVICE`` or
    CUDA when the process has torch loaded and a GPU visible, else the CPU. Torch is never imported here: a stage
    that did not load it (the hashing embedder, the heuristics) ran on the CPU."""
    if engine is not None and getattr(engine, "name", "local") != "local":
        return str(engine.device()).split(":")[0]
    override = config.device_override()
    if override:
        return override.split(":")[0]
    torch = sys.modules.get("torch")
    if torch is None:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def engine_name(engine: Any | None = None) -> str:
    """``local`` for this process (no engine given), else the engine's registry name (``ray``)."""
    return "local" if engine is None else str(getattr(engine, "name", "local"))
