"""Which app servers have a workspace open: each records itself in ``<workspace>/apps/<pid>.json``.

Several app servers, CLI calls and jobs can share one workspace safely (each opens the database for one
short transaction at a time, see :mod:`core.storage.database`), so a second app is not refused. But a
curator should know when another app has the same workspace open: what is vetoed there shows here after a
rerun, and the other way round. The pages say so, naming the other app's address and process.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core import atomic


@dataclass(frozen=True)
class AppRecord:
    """One app server that has the workspace open."""

    pid: int
    url: str
    started_at: str


def _folder(workspace: Path) -> Path:
    return Path(workspace) / "apps"


def register_app(workspace: Path, url: str) -> None:
    """Record this process as an app server of ``workspace`` (rewritten atomically; removed when found dead)."""
    folder = _folder(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "url": url, "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic.write_json(folder / f"{os.getpid()}.json", record)


def other_apps(workspace: Path) -> list[AppRecord]:
    """The app servers other than this process that have ``workspace`` open; stale records are removed."""
    folder = _folder(workspace)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            record = AppRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if record.pid == os.getpid():
            continue
        if _serving(record.pid):
            found.append(record)
        else:  # the server ended (or was killed) without cleaning up
            path.unlink(missing_ok=True)
    return found


def _serving(pid: int) -> bool:
    """Whether ``pid`` is a live app server (a reused PID of another program does not count)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"streamlit" in command
