"""Paths that come from a user (a browser upload's file name, an export path typed in a page) kept inside
the folder the app chose for them.

The app writes only inside the workspace. A path that would leave its folder (``../``, an absolute path, a
symlink pointing out) is refused with a message rather than cleaned up silently, so the user knows what
happened. Paths typed on the command line are the user's own shell and are taken as given, but checked
first that they can be written (:func:`check_writable_folder`), so a typo gives a message, not a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve_inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing absolute paths and ``..`` or symlinks that would leave ``folder``."""
    if not relative.strip():
        raise ValueError("give a file name")
    if "\x00" in relative:
        raise ValueError(f"{relative!r} contains a NUL character")
    candidate = Path(relative)
    if candidate.is_absolute():
        raise ValueError(f"{relative!r} is an absolute path; give a path inside {folder}")
    resolved = (folder / candidate).resolve()
    if not resolved.is_relative_to(folder.resolve()):
        raise ValueError(f"{relative!r} would leave the folder {folder}")
    return resolved


def upload_path(folder: Path, client_name: str) -> Path:
    """Where an uploaded file named ``client_name`` (as the browser sent it) is saved inside ``folder``.

    Browsers send a bare file name; anything else (a folder part, ``..``, a hidden name) came from a hostile
    or broken client and is refused.
    """
    name = client_name.strip()
    if not name or name in {".", ".."} or name.startswith(".") or any(c in name for c in "/\\\x00"):
        raise ValueError(f"the uploaded file name {client_name!r} is not a plain file name; rename the file")
    folder.mkdir(parents=True, exist_ok=True)
    return resolve_inside(folder, name)


def check_writable_folder(folder: Path, what: str) -> None:
    """Refuse, naming the culprit, a ``folder`` that cannot be written in or created where it is missing.

    Checked before anything is written, so a bad path leaves no half-made folder or file behind. The nearest
    part of the path that exists decides: a file there (``notes.txt/out``) or a folder without write
    permission stops the whole path. ``what`` says what the folder is for, as the message reads it. A plain
    ValueError, as this module's other refusals: it sits beside core.errors in the layers, so cannot import it.
    """
    existing = next(part for part in (folder, *folder.parents) if part.exists())
    where = "it" if existing == folder else str(existing)
    if not existing.is_dir():
        raise ValueError(f"cannot use {folder} as {what}: {where} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot use {folder} as {what}: no permission to write in {existing}")
