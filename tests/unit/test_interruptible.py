"""Cancel stops work that never checks for it: a selection strategy's own loop in a ``select`` preview job."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.jobs import FileProgress
from core.progress import Cancelled, Progress, interruptible


@pytest.fixture(autouse=True)
def python_sigint_handler() -> Iterator[None]:
    """What the job worker sets at start: a test run from a background shell (CI, ``make test &``) inherits
    SIGINT ignored, and then ``interruptible`` (rightly) lets the block run."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _busy(seconds: float) -> int:
    """A pure-Python loop, like a greedy strategy's: it never looks at any progress."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def test_a_cancel_stops_a_block_that_never_checks() -> None:
    asked = threading.Event()
    threading.Timer(0.3, asked.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled), interruptible(Progress(should_stop=asked.is_set), poll_seconds=0.05):
        _busy(30)
    assert time.monotonic() - start < 10  # stopped soon after the request, not after the 30 s of work


def test_without_a_cancel_the_block_runs_to_its_end_and_nothing_fires_later() -> None:
    with interruptible(Progress(), poll_seconds=0.01):
        assert _busy(0.2) > 0
    time.sleep(0.1)  # a stray interrupt would raise KeyboardInterrupt here


def test_a_select_preview_job_stops_mid_strategy_when_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.select import job as select_job
    from core.select import run as select_run
    from core.storage import datasets as ds

    monkeypatch.setattr(ds, "get_dataset", lambda store, name: object())
    monkeypatch.setattr(select_run, "build_strategy", lambda name, params: object())
    monkeypatch.setattr(select_run, "run_selection", lambda *args, **kwargs: _busy(60))
    job_dir = tmp_path / "jobs" / "job-1"
    job_dir.mkdir(parents=True)
    threading.Timer(0.5, (job_dir / "cancel").touch).start()  # what the page's Cancel button does
    start = time.monotonic()
    spec = select_job.SelectJob(dataset="d", strategy="random")
    with pytest.raises(Cancelled):
        select_job.execute(tmp_path, spec, FileProgress(job_dir), job_dir)
    assert time.monotonic() - start < 15
    assert not (job_dir / select_job.RESULT_FILE).exists()  # nothing was written


def test_with_sigint_ignored_the_block_runs_to_its_end() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background shell leaves it: nothing to interrupt with
    with interruptible(Progress(should_stop=lambda: True), poll_seconds=0.01):
        assert _busy(0.2) > 0
