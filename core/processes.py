"""Whether a process is still running, for files that name their writer by process id (a job's status, a
staging file) and are judged stale once it is gone. Imports nothing of the project, so any layer may use it."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` is running on this machine (a zombie, finished but not reaped, is not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): os.kill said it exists
        return True
