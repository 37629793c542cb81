"""What the iterative loops keep on disk per round (kMQ) or epoch (IterIT), and how a rerun reads it back.

A loop's ``out_dir`` records its parameters in ``run.json``; a rerun into the same folder resumes it, and
one with other parameters is refused rather than mixing two runs' rounds. Each round has a folder
(``round_<t>``, ``epoch_<e>``) of JSON files and arrays, written atomically, and ``done.json`` written
last: a folder with it is complete, one without it is redone. The loops decide what their files hold;
the writing, the done marker and the reading back are here, for both.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np

from core import atomic

DONE = "done.json"


def nullable(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, NaN as null."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def floats(values: list[float | None]) -> np.ndarray:
    """The inverse of :func:`nullable`."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def write_json(path: Path, payload: Any) -> None:
    """A loop's JSON file, written atomically (its folder is made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, payload, indent=1)


def save_round(
    folder: Path, files: dict[str, Any], done: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
) -> None:
    """Write a round's JSON ``files`` (name -> payload) and its ``arrays`` (to ``state.npz``), then ``done.json``:
    its presence means every file above is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    if arrays is not None:
        with atomic.replacing(folder / "state.npz") as scratch, open(scratch, "wb") as handle:
            np.savez(handle, **cast(dict[str, Any], arrays))  # cast: numpy's stub reads the names as its flags
    for name, payload in files.items():
        write_json(folder / name, payload)
    write_json(folder / DONE, done)


def is_done(folder: Path) -> bool:
    """Whether a round's folder is complete."""
    return (folder / DONE).exists()


def done_folders(out_dir: Path, prefix: str, first: int) -> list[Path]:
    """``<prefix>_<first>``, ``<prefix>_<first + 1>``, ... up to the first that is not done."""
    folders: list[Path] = []
    while is_done(folder := out_dir / f"{prefix}_{first + len(folders)}"):
        folders.append(folder)
    return folders


def load_round(folder: Path, names: list[str]) -> dict[str, Any]:
    """A done round's JSON files by name, ``done.json`` included."""
    return {name: json.loads((folder / name).read_text()) for name in [*names, DONE]}


def load_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The arrays :func:`save_round` wrote."""
    with np.load(folder / "state.npz") as saved:
        return {name: saved[name] for name in saved.files}


def keep_training_set(folder: Path, example_ids: list[str], train_folder: Path) -> None:
    """Record a round's training set; if an interrupted attempt trained on another one (the curator changed
    decisions while the run was paused), its checkpoint is for other data: that training starts afresh."""
    path = folder / "training_set.json"
    if path.exists() and json.loads(path.read_text()) != example_ids:
        shutil.rmtree(train_folder, ignore_errors=True)
    write_json(path, example_ids)


def describe(value: Any) -> Any:
    """A stable description of a parameter for the resume check (a function by name, an array by hash)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, np.ndarray):
        return "sha256:" + hashlib.sha256(np.ascontiguousarray(value, dtype=float).tobytes()).hexdigest()[:16]
    if dataclasses.is_dataclass(value):
        return repr(value)
    if isinstance(value, functools.partial):
        return f"partial({describe(value.func)}, {sorted(value.keywords.items())})"
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__qualname__)}"


# Training settings added after runs could have started, with the value those runs used: a run folder recorded
# without one resumes under the default instead of being refused as a run with other parameters.
ADDED_TRAIN_DEFAULTS: dict[str, Any] = {"precision": "fp32"}


def check_params(out_dir: Path, params: dict[str, Any]) -> None:
    """Record the run's parameters; refuse to resume a folder that holds a run with other ones."""
    path = out_dir / "run.json"
    params = json.loads(json.dumps(params))  # tuples become lists, as they come back from the file
    if path.exists():
        stored = json.loads(path.read_text())
        if isinstance(
            stored.get("config"), dict
        ):  # a run recorded before a training setting existed ran at its default
            stored["config"] = {**ADDED_TRAIN_DEFAULTS, **stored["config"]}
        changed = sorted(key for key in params.keys() | stored.keys() if params.get(key) != stored.get(key))
        if changed:
            raise ValueError(f"{out_dir} holds a run with other parameters ({', '.join(changed)}); use another folder")
        return
    write_json(path, params)
