"""The worker process of a background job: ``python -m core.jobs.worker JOB_DIR``.

Reads ``params.json``, rebuilds the kind's spec and runs the kind's function (both named in
:data:`core.jobs.KINDS`) with a :class:`FileProgress`, and writes the final state (done, cancelled or
failed with the error) to ``status.json``. Never imports streamlit (nor torch, unless the job needs it).
A job killed outright (``kill -9``, a crash) is resumed by running the worker again on its folder
(:func:`core.jobs.relaunch`): every job kind picks up what it committed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from core import jobs
from core.jobs import FileProgress, write_status
from core.progress import Cancelled, Progress


def dispatch(kind: str, workspace: Path, params: dict[str, Any], progress: Progress, job_dir: Path) -> dict[str, Any]:
    """Run a job of ``kind`` from its stored parameters; returns its result."""
    spec = jobs.spec_class(kind).from_params(params)
    return jobs.resolve(jobs.KINDS[kind].run)(workspace, spec, progress, job_dir)


def describe_error(exc: BaseException) -> str:
    """The one-line message a failed job shows: the exception's own, or what to do when memory ran out."""
    # torch.OutOfMemoryError (CUDA or MPS) subclasses RuntimeError; matched by name to keep torch out of here
    if isinstance(exc, MemoryError) or any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        return (
            f"ran out of memory ({type(exc).__name__}{': ' + detail if detail else ''}). Try again with a smaller "
            "batch size (batch_size, or token_budget for scorers), a smaller max_length, or fewer examples (a limit)."
        )
    return f"{exc}" or type(exc).__name__


def run_job(job_dir: Path) -> int:
    """Run the job in ``job_dir`` to its end; returns a process exit code."""
    spec = json.loads((job_dir / "params.json").read_text())
    workspace = job_dir.parent.parent
    write_status(job_dir, state="running", pid=os.getpid())
    try:
        result = dispatch(spec["kind"], workspace, spec["params"], FileProgress(job_dir), job_dir)
    except Cancelled as exc:
        write_status(job_dir, state="cancelled", message=str(exc))
        return 0
    except Exception as exc:  # any failure ends the job as failed, with its message shown to the user
        traceback.print_exc()
        write_status(job_dir, state="failed", error=describe_error(exc))
        return 1
    write_status(job_dir, state="done", result=result)
    return 0


if __name__ == "__main__":
    # a worker started from a background shell inherits SIGINT ignored; core.progress.interruptible (Cancel in
    # the middle of a selection) needs Python's own handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(run_job(Path(sys.argv[1])))
