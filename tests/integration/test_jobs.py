"""Background jobs: a real worker subprocess prepares a dataset, fails with a clear error, or is cancelled."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import jobs
from core.prepare_job import PrepareJob
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import keyword_rows, write_jsonl

TIMEOUT_SECONDS = 120
HASHING = {"name": "hashing"}  # the worker process cannot see the test-only keyword embedder


def _wait(workspace: Path, job_id: str) -> jobs.JobStatus:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        status = jobs.read_status(workspace, job_id)
        if not status.active:
            return status
        time.sleep(0.2)
    pytest.fail(
        f"job {job_id} still {status.state} after {TIMEOUT_SECONDS} s; log:\n{jobs.read_log(workspace, job_id)}"
    )


def _prepare_job(path: Path, name: str) -> PrepareJob:
    return PrepareJob.from_params(
        {"path": str(path), "options": {"name": name, "embedder": HASHING, "k_grid": [2, 4], "seed": 0}}
    )


def test_prepare_job_runs_to_done_and_stores_the_dataset(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "tiny.jsonl", keyword_rows(per_topic=3))
    workspace = tmp_path / "ws"

    job_id = jobs.launch(workspace, _prepare_job(source, "tiny"))
    status = _wait(workspace, job_id)

    assert status.state == "done", jobs.read_log(workspace, job_id)
    assert (status.kind, status.error) == ("prepare", "")
    assert (status.result["name"], status.result["n_rows"], status.result["embedded"]) == ("tiny", 12, 12)
    info = ds.get_dataset(Store(workspace), "tiny")
    assert (info.n_rows, info.status, info.embedder["name"], info.k_grid) == (12, "ready", "hashing", [2, 4])
    assert [s.job_id for s in jobs.list_jobs(workspace, kind="prepare")] == [job_id]


def test_job_on_a_bad_file_fails_with_the_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "broken.jsonl"
    source.write_text(json.dumps(keyword_rows(1)[0]) + "\n" + '{"instruction": \n', encoding="utf-8")
    workspace = tmp_path / "ws"

    job_id = jobs.launch(workspace, _prepare_job(source, "broken"))
    status = _wait(workspace, job_id)

    assert status.state == "failed"
    assert status.error.startswith("broken.jsonl, line 2: malformed JSON")
    assert ds.list_datasets(Store(workspace)) == []


def test_cancel_right_after_launch_ends_the_job_cancelled(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "tiny.jsonl", keyword_rows(per_topic=3))
    workspace = tmp_path / "ws"

    job_id = jobs.launch(workspace, _prepare_job(source, "tiny"))
    jobs.request_cancel(workspace, job_id)  # the worker checks at its first progress step
    status = _wait(workspace, job_id)

    assert status.state == "cancelled"
    assert "cancelled" in status.message
    assert ds.list_datasets(Store(workspace)) == []


def _fake_job(workspace: Path, job_id: str, pid: int) -> None:
    job_dir = jobs.jobs_dir(workspace) / job_id
    job_dir.mkdir(parents=True)
    jobs.write_status(job_dir, job_id=job_id, kind="prepare", state="running", stage="embed", done=3, total=10, pid=pid)


def test_a_running_job_whose_process_died_shows_interrupted(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _fake_job(tmp_path, "20000101-000000-dead00", dead.pid)

    status = jobs.read_status(tmp_path, "20000101-000000-dead00")

    assert status.state == "interrupted"
    assert not status.active
    assert "ended without finishing" in status.error
    assert (status.stage, status.done, status.total) == ("embed", 3, 10)
    stored = json.loads((jobs.jobs_dir(tmp_path) / "20000101-000000-dead00" / "status.json").read_text())
    assert stored["state"] == "interrupted"
