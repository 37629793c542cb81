"""Files the loops write per round or epoch: atomic JSON, NaN-safe floats, and the resume-parameter check.

A loop's ``out_dir`` records its parameters in ``run.json``; a rerun into the same folder resumes it, and
one with other parameters is refused rather than mixing two runs' rounds.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def nullable(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def floats(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def write_json(path: Path, payload: Any) -> None:
    """Write through a temporary file, so a crash never leaves half a file that looks done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


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


def check_params(out_dir: Path, params: dict[str, Any]) -> None:
    """Record the run's parameters; refuse to resume a folder that holds a run with other ones."""
    path = out_dir / "run.json"
    params = json.loads(json.dumps(params))  # tuples become lists, as they come back from the file
    if path.exists():
        stored = json.loads(path.read_text())
        changed = sorted(key for key in params.keys() | stored.keys() if params.get(key) != stored.get(key))
        if changed:
            raise ValueError(f"{out_dir} holds a run with other parameters ({', '.join(changed)}); use another folder")
        return
    write_json(path, params)
