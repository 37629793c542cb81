"""A job's status as read back: a running job whose process lives stays running (no worker needed).

Its counterpart, a running job whose process died, needs a process to die: tests/integration/test_jobs.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import jobs


def _fake_job(workspace: Path, job_id: str, pid: int) -> None:
    job_dir = jobs.jobs_dir(workspace) / job_id
    job_dir.mkdir(parents=True)
    jobs.write_status(job_dir, job_id=job_id, kind="prepare", state="running", stage="embed", done=3, total=10, pid=pid)


def test_a_running_job_whose_process_lives_stays_running(tmp_path: Path) -> None:
    _fake_job(tmp_path, "20000101-000000-alive0", os.getpid())

    status = jobs.read_status(tmp_path, "20000101-000000-alive0")

    assert (status.state, status.pid, status.active) == ("running", os.getpid(), True)
    assert status.fraction == pytest.approx(0.3)
