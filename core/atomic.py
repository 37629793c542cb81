"""Atomic file writes: a reader, or a run resumed after a kill, sees the old file or the new one, never half of one.

Every writer goes through :func:`replacing`: the content is written under the same file name in a temporary
folder beside the target, then moved over the target with ``os.replace`` (atomic on one file system, which
a sibling folder always is). Keeping the file name matters to writers that derive something from it:
``np.save`` appends ``.npy`` to a name without it, and ``torch.save`` names the archive inside the file after
it, so a checkpoint's bytes do not depend on a temporary name.

The temporary folder's name holds the process and thread id: app sessions are threads of one process, so
two sessions writing the same file (a job's status) never share a temporary file. Nothing is fsynced, as
before this module: the writes protect against a killed process, not against a power cut.

The parent folder must exist: creating it here would bring back a folder that was deleted on purpose (a
job's status written after the job was removed).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A path to write ``path``'s new content to; on leaving the block it replaces ``path``.

    When the block raises, ``path`` is left as it was and the temporary file is removed.
    """
    path = Path(path)
    scratch = path.parent / f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp"
    scratch.mkdir(exist_ok=True)  # a leftover of a killed writer with the same ids holds nothing of value
    try:
        written = scratch / path.name
        yield written
        os.replace(written, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, atomically."""
    with replacing(path) as scratch:
        scratch.write_bytes(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text``, atomically."""
    with replacing(path) as scratch:
        scratch.write_text(text, encoding=encoding)


def write_json(path: str | Path, payload: Any, **dumps: Any) -> None:
    """Replace ``path`` with ``payload`` as JSON (``dumps``: arguments of :func:`json.dumps`), atomically.

    The payload is serialised before anything is written, so one that cannot be leaves no trace.
    """
    write_text(path, json.dumps(payload, **dumps))
