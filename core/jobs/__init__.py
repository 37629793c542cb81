"""Background jobs: each runs in its own worker process and reports through files in its job folder.

A job is described by a typed spec (:class:`JobSpec`: a frozen dataclass next to its stage, e.g.
``core.score.job.ScoreJob``) and started with :func:`launch`, which validates the spec first, so a bad
job is refused at the button or the command line rather than failing in the worker. :data:`KINDS` names,
per kind, the spec class and the function the worker runs, as dotted paths: this package sits below the
stages (they import it to launch) and never imports them.

``<workspace>/jobs/<job_id>/`` holds ``params.json`` (what to do), ``status.json`` (state, stage,
progress, heartbeat, result or error, rewritten atomically), ``log.txt`` and, when the user cancels, a
``cancel`` file the worker polls between batches. A job keeps running when the browser closes; a job
whose process died without a final state shows as ``interrupted``. Workers write to the database the
same way every process does (short transactions under the workspace lock), so the app never waits on them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from core import atomic
from core.processes import process_alive
from core.progress import Progress

ACTIVE_STATES = ("queued", "running")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A job's state as last written by its worker (or by :func:`launch`)."""

    job_id: str
    kind: str
    state: str
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    created_at: str = ""
    updated_at: str = ""
    pid: int | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: float | None = None  # training runs: the last step's loss, speed and time left
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    dismissed: bool = False  # the user has read a failed or interrupted job's notice and closed it

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def jobs_dir(workspace: Path) -> Path:
    return Path(workspace) / "jobs"


_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def job_folder(workspace: Path, job_id: str) -> Path:
    """The folder of job ``job_id``; an id that is not a plain name (``../x``, a path) is refused, since ids
    also come from users (``python -m core runs --resume ID``, a URL) and must not reach outside ``jobs/``."""
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"{job_id!r} is not a job or run id (ids look like 20261122-071215-a1b2c3)")
    return jobs_dir(workspace) / job_id


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_status(job_dir: Path, **fields: Any) -> None:
    """Merge ``fields`` into the job's status file, atomically."""
    path = job_dir / "status.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(fields, updated_at=_now())
    atomic.write_json(path, current, default=str)


class InvalidJob(ValueError):
    """A job spec that would fail in the worker; ``field`` names the bad field and the message says why."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


@contextlib.contextmanager
def blame(field: str) -> Iterator[None]:
    """Turn a lookup, type or value error raised inside into :class:`InvalidJob` naming ``field``."""
    try:
        yield
    except InvalidJob:
        raise
    except (LookupError, TypeError, ValueError) as exc:
        # a KeyError's str() is its repr; its first argument is the readable message
        raise InvalidJob(field, str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)) from exc


def ready_dataset(workspace: Path, name: str) -> Any:
    """The dataset ``name`` of ``workspace`` (a ``DatasetInfo``), refused as the job's ``dataset`` field when it
    does not exist or its prepare has not finished: every job on a dataset checks this first."""
    from core.storage import datasets as ds
    from core.storage.database import Store

    with blame("dataset"):
        dataset = ds.get_dataset(Store(workspace), name)
    if dataset.status != "ready":
        raise InvalidJob("dataset", f"{name!r} is {dataset.status}: let its prepare finish first")
    return dataset


class JobSpec(Protocol):
    """What a job does: a frozen dataclass of one kind, stored in the job folder as ``params.json``."""

    kind: ClassVar[str]

    def validate(self, workspace: Path) -> None:
        """Raise :class:`InvalidJob` (or the stage's own ValueError) for what would fail in the worker."""
        ...

    def to_params(self) -> dict[str, Any]:
        """The JSON-ready parameters written to the job folder."""
        ...

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> JobSpec:
        """The spec back from its stored parameters (also those of jobs launched by older versions)."""
        ...


@dataclasses.dataclass(frozen=True)
class JobKind:
    """Where a kind's spec class and worker function live, as ``module:name`` paths imported when needed.

    ``run(workspace, spec, progress, job_dir)`` does the job and returns its result (a JSON-ready dict);
    run again on the same folder after a kill, it resumes from what it committed.
    """

    spec: str
    run: str


KINDS: dict[str, JobKind] = {
    "prepare": JobKind("core.prepare_job:PrepareJob", "core.prepare_job:execute"),
    "score": JobKind("core.score.job:ScoreJob", "core.score.job:execute"),
    "gradients": JobKind("core.gradients.job:GradientsJob", "core.gradients.job:execute"),
    "hidden_states": JobKind("core.hidden.job:HiddenStatesJob", "core.hidden.job:execute"),
    "train": JobKind("core.runs.run:RunSpec", "core.runs.run:execute_run"),
    "sweep": JobKind("core.sweep_job:SweepJob", "core.sweep_job:execute"),
    "select": JobKind("core.select.job:SelectJob", "core.select.job:execute"),
}


def resolve(path: str) -> Any:
    """The object a ``module:name`` path names (importing the module)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def spec_class(kind: str) -> type[JobSpec]:
    """The spec class of a registered kind."""
    if kind not in KINDS:
        raise InvalidJob("kind", f"unknown job kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    return resolve(KINDS[kind].spec)


def launch(workspace: Path, spec: JobSpec) -> str:
    """Validate ``spec``, write its job folder and start a worker on it; returns the job id at once.

    Nothing is written when the spec is invalid: the error (naming the bad field) goes to the caller.
    """
    if type(spec) is not spec_class(spec.kind):
        raise InvalidJob("kind", f"{type(spec).__name__} is not the registered spec of {spec.kind!r} jobs")
    spec.validate(Path(workspace))
    params = spec.to_params()
    job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    job_dir = job_folder(workspace, job_id)
    job_dir.mkdir(parents=True)
    (job_dir / "params.json").write_text(json.dumps({"kind": spec.kind, "params": params}))
    write_status(job_dir, job_id=job_id, kind=spec.kind, state="queued", created_at=_now(), params=params)
    _spawn(job_dir)
    return job_id


def _spawn(job_dir: Path) -> None:
    with open(job_dir / "log.txt", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.jobs.worker", str(job_dir)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_status(job_dir, pid=process.pid)
    # Reap the child when it ends so a finished worker never lingers as a zombie that looks alive.
    threading.Thread(target=process.wait, daemon=True).start()


def relaunch(workspace: Path, job_id: str) -> None:
    """Start a new worker on an interrupted or cancelled job's folder; the job resumes from what it saved."""
    status = read_status(workspace, job_id)
    if status.active:
        raise ValueError(f"job {job_id} is still {status.state}")
    job_dir = job_folder(workspace, job_id)
    (job_dir / "cancel").unlink(missing_ok=True)
    # forget the dead worker's pid: a reader between this write and the new pid's would judge the job by it
    write_status(job_dir, state="queued", error="", message="resuming", pid=None, dismissed=False)
    _spawn(job_dir)


def read_status(workspace: Path, job_id: str) -> JobStatus:
    """The job's status; an active job whose process is gone is reported as ``interrupted``."""
    job_dir = job_folder(workspace, job_id)
    data = json.loads((job_dir / "status.json").read_text())
    known = {f.name for f in dataclasses.fields(JobStatus)}
    status = JobStatus(**{k: v for k, v in data.items() if k in known})
    if status.active and status.pid and not process_alive(status.pid):
        # the worker writes its final state before exiting, so a vanished active worker was killed
        time.sleep(0.2)
        data = json.loads((job_dir / "status.json").read_text())
        if data.get("state") in ACTIVE_STATES and data.get("pid") == status.pid:  # not relaunched meanwhile
            write_status(job_dir, state="interrupted", error="the worker process ended without finishing")
            data = json.loads((job_dir / "status.json").read_text())
        status = JobStatus(**{k: v for k, v in data.items() if k in known})
    return status


def list_jobs(workspace: Path, kind: str | None = None) -> list[JobStatus]:
    """Every job of the workspace (optionally of one kind), newest first."""
    root = jobs_dir(workspace)
    if not root.exists():
        return []
    statuses = []
    for job_dir in sorted(root.iterdir(), reverse=True):
        if (job_dir / "status.json").exists():
            status = read_status(workspace, job_dir.name)
            if kind is None or status.kind == kind:
                statuses.append(status)
    return statuses


def dismiss(workspace: Path, job_id: str) -> None:
    """Stop showing a job that ended without finishing; its folder (and what a resume needs) is kept."""
    write_status(job_folder(workspace, job_id), dismissed=True)


def request_cancel(workspace: Path, job_id: str) -> None:
    """Ask a job to stop at its next check (between batches)."""
    (job_folder(workspace, job_id) / "cancel").touch()


def read_log(workspace: Path, job_id: str, max_chars: int = 20_000) -> str:
    path = job_folder(workspace, job_id) / "log.txt"
    return path.read_text(errors="replace")[-max_chars:] if path.exists() else ""


class FileProgress(Progress):
    """Progress written to the job's status file (at most every 0.3 s); cancellation read from its folder."""

    def __init__(self, job_dir: Path):
        super().__init__(should_stop=lambda: (job_dir / "cancel").exists())
        self.job_dir = job_dir
        self._last_write = 0.0

    def start(self, stage: str, total: int) -> None:
        self._last_write = 0.0
        super().start(stage, total)

    def update(self) -> None:
        now = time.monotonic()
        if now - self._last_write >= 0.3 or self.done >= self.total:
            self._last_write = now
            write_status(self.job_dir, stage=self.stage, done=self.done, total=self.total)

    def message(self, text: str) -> None:
        print(text, flush=True)
        write_status(self.job_dir, message=text)
