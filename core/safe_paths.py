"""Paths that come from a user (a browser upload's file name, an export path typed in a page) kept inside
the folder the app chose for them, and the names (of datasets) that become parts of file names.

The app writes only inside the workspace. A path that would leave its folder (``../``, an absolute path, a
symlink pointing out) is refused with a message rather than cleaned up silently, so the user knows what
happened. Paths typed on the command line are the user's own shell and are taken as given, but checked
first that they can be written (:func:`check_writable_folder`), so a typo gives a message, not a traceback.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

MAX_NAME_LENGTH = 100
NAME_RULE = (
    f"a name is 1 to {MAX_NAME_LENGTH} characters: letters, digits, spaces, punctuation and symbols other than "
    "/ and \\, not starting with a dot or a space"
)


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


def check_dataset_name(name: str) -> str:
    """``name`` when it can name a dataset, else ValueError saying why and which names are allowed.

    A dataset's name is shown on one line on every page and the CLI, and the Export page makes file names
    from it, so line breaks and other control or invisible format characters (bidi overrides, zero-width
    marks), path separators and a leading dot (``..``, a hidden file) are refused, as is a blank name.
    """
    problem = _name_problem(name)
    if problem:
        shown = repr(name) if len(name) <= 60 else repr(name[:50]) + "..."  # a pasted document stays one line
        raise ValueError(f"the dataset name {shown} {problem}; {NAME_RULE}")
    return name


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a dataset, or None. The length cap keeps a file name made from it (with the
    Export page's suffixes, up to 4 bytes a character in UTF-8) under the usual 255-byte limit of file names."""
    if not name.strip():
        return "is blank: a dataset needs a name"
    odd = [c for c in name if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")]
    if odd:
        return f"holds the control or invisible character {odd[0]!r}"
    if "/" in name or "\\" in name:
        return "holds a path separator (/ or \\)"
    if name != name.strip():
        return "starts or ends with a space"
    if name.startswith("."):
        return "starts with a dot"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long"
    return None
