"""The errors a user can meet, in one place: each one's message says what went wrong and what to do.

Every stage raises these and every front end (CLI, pages, jobs) catches them from here. This module sits
at the bottom of the dependency graph: it imports only the standard library, so any module may import it.
Each class keeps a built-in base class (``ValueError``, ``LookupError``, ``RuntimeError``), so code that
catches the broad built-in also catches it.
"""

from __future__ import annotations

from pathlib import Path


class IngestError(ValueError):
    """A file that cannot be loaded; the message names the file, the line or row, and the field.

    ``source`` names a source that is not a file (a Hugging Face dataset and its split) in place of the file name.
    """

    def __init__(
        self,
        path: Path,
        message: str,
        location: str | None = None,
        field_name: str | None = None,
        *,
        source: str | None = None,
    ):
        self.path = Path(path)
        self.location = location
        self.field_name = field_name
        self.detail = message
        where = [source or self.path.name]
        if location:
            where.append(location)
        if field_name:
            where.append(f"field '{field_name}'")
        super().__init__(f"{', '.join(where)}: {message}")


class DatasetExists(ValueError):
    """A dataset of that name holds a different file."""


class DatasetNotFound(LookupError):
    """No dataset with that name or id in the workspace."""


class UnknownCluster(LookupError):
    """The cluster id does not exist in the chosen clustering."""


class MissingScores(ValueError):
    """A strategy needs scores the dataset does not have yet; the message says which scorer to run."""


class MissingGradients(MissingScores):
    """Gradient features (or a target's) are not computed yet; the message says how to compute them."""


class MissingHiddenStates(MissingScores):
    """The base model's pooled hidden states (RDS+) are not computed yet; the message says how to compute them."""


class ModelLoadError(RuntimeError):
    """A scorer's model could not be loaded; the message names the model and the reason on one line."""


class WorkspaceBusy(RuntimeError):
    """The workspace lock could not be had in time, or a foreign program holds the database file."""


class UnusablePath(ValueError):
    """A path the user gave cannot be used as asked: a file where a folder is needed (or the other way round),
    or a file that would be overwritten; the message names the path. (core.safe_paths, which may not import
    this module, raises a plain ValueError for a folder that cannot be written in.)"""


class WorkspaceNotFound(LookupError):
    """A command that reads a workspace was pointed at a folder that holds none (it is not created)."""


class UnusableTarget(ValueError):
    """A target set a method cannot use as given (a gradient method on rows without responses); the message
    says why and what to use instead."""


class UndoRefused(RuntimeError):
    """A batch of decisions that cannot be undone as asked: a later batch changed some of its targets since (the
    message names it), it is already undone, or it holds no decision that can be written back (choosing k).
    ``later`` holds the ids of the later batches in the way, newest first."""

    def __init__(self, message: str, later: tuple[int, ...] = ()):
        self.later = later
        super().__init__(message)


class UnknownBatch(LookupError):
    """No batch (or history row) with that id in the dataset's history, or nothing left to undo."""


class EngineError(RuntimeError):
    """A compute engine cannot run a stage: a Ray cluster that cannot be reached or lacks a package; the message
    names the address and what to do, on one line."""
