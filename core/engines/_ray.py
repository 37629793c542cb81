"""The ``ray`` engine: a stage's inputs as Parquet shards, a Ray Data pipeline of actors over them, and the
finished shards merged into the workspace by this process as they come.

The pipeline is ``ray.data.from_items(shard names).map_batches(_ShardWorker, batch_size=1,
compute=ActorPoolStrategy(size=N))``: each actor loads the stage's model once (``Stage.open``), then for every
shard it is given reads ``in/<shard>.parquet``, calls the batch function and writes ``out/<shard>.parquet``.
Ray Data restarts a killed actor and retries its shard (its defaults for actor pools: ``max_restarts=-1``,
``max_task_retries=-1``); an output shard is moved into place whole, so a retry either finds it done or
writes it again. On a cluster with GPUs each actor takes ``gpus_per_actor`` of one and computes on
``cuda``; elsewhere each takes ``cpus_per_actor`` cores and as many torch threads.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from core import config
from core.engines._base import ENGINES, EngineReport, Merge, Stage
from core.engines._shards import ShardFolder, shard_name
from core.errors import EngineError
from core.progress import Progress

if TYPE_CHECKING:
    import pyarrow as pa

_CONNECT_LOCK = threading.Lock()
CHECK_SECONDS = 120.0  # how long the launch check may wait for the cluster to run one task


@ENGINES.register
@dataclasses.dataclass(frozen=True)
class RayEngine:
    """A Ray cluster: ``address`` ``local`` starts one on this machine for the job, ``auto`` joins the one this
    machine belongs to, ``HOST:PORT`` or ``ray://HOST:PORT`` a remote one.

    Parameters
    ----------
    address : the cluster (``CURATE_RAY_ADDRESS``; default ``local``).
    actors : actors in the pool; 0 sizes it to the cluster (one per GPU, else one per ``cpus_per_actor`` cores).
    cpus_per_actor : cores (and torch threads) per actor on a CPU cluster.
    gpus_per_actor : share of a GPU per actor on a cluster with GPUs.
    shard_root : folder or URI every node reaches (``CURATE_SHARD_ROOT``); unset: the workspace.
    shard_rows : rows per shard (``CURATE_SHARD_ROWS``); 0 keeps the stage's own part size.
    """

    name: ClassVar[str] = "ray"
    title: ClassVar[str] = "Ray (a cluster, or one started here)"
    address: str = "local"
    actors: int = 0
    cpus_per_actor: int = 1
    gpus_per_actor: float = 1.0
    shard_root: str | None = None
    shard_rows: int = 0

    def device(self) -> str:
        return "cuda" if self._gpus() > 0 else "cpu"

    def _gpus(self) -> float:
        ray = _connect(self.address)
        return float(ray.cluster_resources().get("GPU", 0.0))

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
        ray = _connect(self.address)
        _check_packages(ray, self.address, ("core", *stage.requires))
        report = EngineReport(self.name)
        shards = self._folder(stage, folder)
        shards.prepare()
        shards.clear_workers()
        clock = _Clock()
        with clock("merge"):
            known = self._recover(shards, merge, report, progress)
        actors = self._pool_size(ray, shards=total)  # before the shards exist: as many as the cluster holds
        rows = self.shard_rows or config.shard_rows() or _balanced(shard_rows, total, actors)
        with clock("shard_write"):
            todo = self._write_shards(shards, inputs, rows, known)
        report.shards = report.recovered_shards + len(todo)
        if todo:
            with clock("pipeline"):
                self._pipeline(ray, stage, shards, todo, merge, report, progress, clock)
        report.model_load_seconds = sorted(float(w.get("model_load_s", 0.0)) for w in shards.workers())
        report.seconds = clock.totals()
        return report

    def _folder(self, stage: Stage, folder: Path) -> ShardFolder:
        import hashlib

        root = self.shard_root or config.shard_root()
        leaf = f"{stage.name}-{hashlib.sha256(stage.key().encode()).hexdigest()[:16]}"
        return ShardFolder(f"{root.rstrip('/')}/{leaf}" if root else str(folder / leaf))

    def _recover(self, shards: ShardFolder, merge: Merge, report: EngineReport, progress: Progress) -> set[str]:
        """Merge the output shards a killed run left; the keys of those and of the input shards still waiting,
        so that none of their rows is written into a new shard (the caller listed them as still to do)."""
        known: set[str] = set()
        for shard in shards.names("in"):
            if shards.exists("out", shard):
                outputs = shards.read("out", shard)
                merge(outputs)
                known.update(outputs.column("key").to_pylist())
                shards.delete(shard)
                report.recovered_shards += 1
                report.rows += outputs.num_rows
                progress.advance(outputs.num_rows)
            else:
                known.update(shards.read("in", shard, columns=["key"]).column("key").to_pylist())
        return known

    def _write_shards(
        self,
        shards: ShardFolder,
        inputs: Iterable[pa.Table],
        shard_rows: int,
        known: set[str],
    ) -> list[str]:
        """Write the rows not in a shard already (merged or waiting) as new shards; every shard left to compute."""
        import pyarrow as pa
        import pyarrow.compute as pc

        todo = [name for name in shards.names("in") if not shards.exists("out", name)]
        number = shards.next_number()  # listed once: on an object store each listing is a request
        for table in inputs:
            if known:
                table = table.filter(pc.invert(pc.is_in(table.column("key"), value_set=pa.array(sorted(known)))))
            for first in range(0, table.num_rows, max(shard_rows, 1)):
                name = shard_name(number)
                shards.write("in", name, table.slice(first, shard_rows))
                todo.append(name)
                number += 1
        return todo

    def _pipeline(
        self,
        ray: Any,
        stage: Stage,
        shards: ShardFolder,
        todo: list[str],
        merge: Merge,
        report: EngineReport,
        progress: Progress,
        clock: _Clock,
    ) -> None:
        import logging

        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False  # the CLI and the pages show their own
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # not a line per pipeline start and end
        size = self._pool_size(ray, len(todo))
        gpus = self._gpus()
        report.actors = size
        # the biggest shards first, each to whichever actor is free (one in flight per actor): the last actor
        # to finish is then never far behind the others (shards of long texts took 56 s on one actor and 38 s
        # on the other, in Ray's default order with four in flight)
        todo = sorted(todo, key=lambda name: -shards.size("in", name))
        items = ray.data.from_items([{"shard": name} for name in todo], override_num_blocks=len(todo))
        resources: dict[str, Any] = (
            {"num_gpus": self.gpus_per_actor, "num_cpus": 1} if gpus > 0 else {"num_cpus": self.cpus_per_actor}
        )
        results = items.map_batches(
            _ShardWorker,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1),
            fn_constructor_kwargs={
                "stage": stage,
                "uri": shards.uri,
                "threads": 0 if gpus > 0 else self.cpus_per_actor,
            },
            # each actor owns its cores: the tokenizers' own thread pool would compete with the other actors
            runtime_env={
                "env_vars": {"CURATE_DEVICE": "cuda" if gpus > 0 else "cpu", "TOKENIZERS_PARALLELISM": "false"}
            },
            **resources,
        )
        busy: dict[int, float] = {}
        for row in _rows(results):
            shard = str(row["shard"])
            busy[int(row["pid"])] = busy.get(int(row["pid"]), 0.0) + float(row["seconds"])
            with clock("merge"):
                outputs = shards.read("out", shard)
                merge(outputs)
                shards.delete(shard)
            report.computed_shards += 1
            report.rows += outputs.num_rows
            progress.advance(outputs.num_rows)  # a cancel stops here: the shards not merged stay for a rerun
        # the actors' own seconds in shards (reading, computing, writing), the busiest actor's apart: the rest of
        # the pipeline's time is Ray's (actor start-up, model loads, scheduling) and the tail
        clock.spent["actor_compute_max"] = max(busy.values(), default=0.0)
        clock.spent["actor_compute_total"] = sum(busy.values())

    def _pool_size(self, ray: Any, shards: int) -> int:
        """Actors in the pool: as asked, else one per GPU, else one per ``cpus_per_actor`` cores; never more
        than there are shards."""
        gpus = self._gpus()
        if self.actors > 0:
            wanted = self.actors
        elif gpus > 0:
            wanted = max(1, int(gpus // self.gpus_per_actor))
        else:
            wanted = max(1, int(ray.cluster_resources().get("CPU", 1.0) // max(self.cpus_per_actor, 1)))
        return max(1, min(wanted, shards))


SHARDS_PER_ACTOR = 4  # at least this many shards for each actor, where the rows allow: a balanced finish


def _balanced(rows: int, total: int, actors: int) -> int:
    """The stage's shard size, made smaller when it would give fewer than ``SHARDS_PER_ACTOR`` shards an actor
    (500 examples to score in shards of 128 left one of two actors idle for the last quarter)."""
    return max(1, min(rows, -(-total // (SHARDS_PER_ACTOR * max(actors, 1)))))


def _rows(results: Any) -> Iterator[dict[str, Any]]:
    """The pipeline's output rows (one per finished shard), as they finish."""
    yield from results.iter_rows()


class _ShardWorker:
    """One actor of the pool: loads the stage's model once, then computes whole shards."""

    def __init__(self, stage: Stage, uri: str, threads: int) -> None:
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        started = time.perf_counter()
        self.batch = stage.open()
        self.folder = ShardFolder(uri)
        self.folder.record_worker({"stage": stage.name, "model_load_s": round(time.perf_counter() - started, 3)})

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names, seconds = [], []
        for shard in batch["shard"]:
            name, began = str(shard), time.perf_counter()
            if not self.folder.exists("out", name):  # else a killed actor had finished it: nothing to redo
                self.folder.write("out", name, self.batch(self.folder.read("in", name), None))
            names.append(name)
            seconds.append(time.perf_counter() - began)
        return {"shard": np.array(names), "seconds": np.array(seconds), "pid": np.full(len(names), os.getpid())}


class _Clock:
    """Seconds by phase (phases may nest: the pipeline's time includes the merges done while it runs)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def __call__(self, phase: str) -> _Phase:
        return _Phase(self, phase)

    def totals(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.spent.items()}


class _Phase:
    def __init__(self, clock: _Clock, phase: str) -> None:
        self.clock, self.phase = clock, phase

    def __enter__(self) -> None:
        self.began = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.clock.spent[self.phase] = self.clock.spent.get(self.phase, 0.0) + time.perf_counter() - self.began


def _connect(address: str) -> Any:
    """Ray, connected to ``address`` once per process (a Ray already started here, as a test does, is used
    as it is); a cluster that cannot be reached is one clear :class:`EngineError`."""
    try:
        import ray
    except ImportError:
        raise EngineError("the ray engine needs Ray: pip install 'ray[data]'") from None
    with _CONNECT_LOCK:
        if ray.is_initialized():
            return ray
        _reachable(address)
        try:
            if address == "local":
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise EngineError(f"cannot reach the Ray cluster at {address}: {reason}") from exc
    return ray


def _reachable(address: str, seconds: float = 5.0) -> None:
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) that accepts no connection is refused at once: Ray's own
    connect retries for a minute and more before it gives up."""
    import socket

    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if address in ("local", "auto") or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            pass
    except OSError as exc:
        raise EngineError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from exc


def _check_packages(ray: Any, address: str, modules: tuple[str, ...]) -> None:
    """Fail at launch, in one line, when the cluster's workers cannot import what the stage needs."""

    @ray.remote(num_cpus=0)
    def missing(names: tuple[str, ...]) -> list[str]:
        import importlib

        absent = []
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                absent.append(name)
        return absent

    try:
        absent = ray.get(missing.remote(modules), timeout=CHECK_SECONDS)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise EngineError(f"the Ray cluster at {address} could not run a check task: {reason}") from exc
    if absent:
        raise EngineError(
            f"the Ray cluster at {address} lacks {', '.join(absent)}: install the project on every node "
            "(pip install -e . in a copy of this repository, with the same requirements)"
        )
