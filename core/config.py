"""Every ``CURATE_*`` environment variable the project reads, in one place.

Defaults are chosen so that ``make run`` works on a laptop without any variable set.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_EMBEDDER = "sentence-transformers"
DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"  # resolved to the packaged copy by core.embed.embedders
DEFAULT_SEED = 0


def workspace_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``explicit`` if given, else ``CURATE_WORKSPACE``, else ``./workspace``."""
    chosen = explicit or os.environ.get("CURATE_WORKSPACE") or "workspace"
    return Path(chosen).expanduser().resolve()


def eval_dir(workspace: str | os.PathLike[str] | None = None) -> Path:
    """The folder of evaluation / target JSONL sets the pages offer (``CURATE_EVAL_DIR``, else ``<workspace>/eval``).

    Inside the workspace by default, so a fresh checkout reads nothing outside its own folders; ``make run``
    copies the sample set from ``sample_data/eval`` there.
    """
    chosen = os.environ.get("CURATE_EVAL_DIR")
    return Path(chosen).expanduser().resolve() if chosen else workspace_dir(workspace) / "eval"


def device_override() -> str | None:
    """``CURATE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``...) or None to pick automatically."""
    return os.environ.get("CURATE_DEVICE") or None


def precision_override() -> str:
    """``CURATE_PRECISION``: ``auto`` (bf16 where the hardware has it), ``bf16`` or ``fp32``."""
    value = os.environ.get("CURATE_PRECISION", "auto").lower()
    if value not in {"auto", "bf16", "fp32"}:
        raise ValueError(f"CURATE_PRECISION must be auto, bf16 or fp32, not {value!r}")
    return value


def embed_model() -> str:
    """Default sentence-embedding model id or path (``CURATE_EMBED_MODEL``)."""
    return os.environ.get("CURATE_EMBED_MODEL") or DEFAULT_EMBED_MODEL


def ray_address() -> str:
    """The Ray cluster the ``ray`` engine uses (``CURATE_RAY_ADDRESS``): ``local`` (the default) starts a Ray
    instance on this machine for the job; ``auto`` joins the cluster this machine is part of; ``HOST:PORT`` or
    ``ray://HOST:PORT`` a remote one."""
    return os.environ.get("CURATE_RAY_ADDRESS", "").strip() or "local"


def shard_root() -> str | None:
    """Where the ``ray`` engine writes its Parquet shards (``CURATE_SHARD_ROOT``): a folder or URI every node
    of the cluster can read and write (NFS, ``s3://...``); unset, a folder in the workspace (enough for a
    cluster on this machine)."""
    return os.environ.get("CURATE_SHARD_ROOT", "").strip() or None


def shard_rows() -> int:
    """Rows per Parquet shard of the ``ray`` engine (``CURATE_SHARD_ROWS``); 0, the default, keeps each stage's
    own part size (1,024 texts to embed, 128 examples to score)."""
    value = os.environ.get("CURATE_SHARD_ROWS", "").strip()
    return _positive_int("CURATE_SHARD_ROWS", 1, "rows") if value else 0


def lock_timeout_seconds() -> float:
    """How long a process waits for the workspace lock before reporting it busy (``CURATE_LOCK_TIMEOUT``)."""
    return float(os.environ.get("CURATE_LOCK_TIMEOUT", "120"))


def max_row_bytes() -> int:
    """The largest row ingest accepts, in UTF-8 bytes of its texts (``CURATE_MAX_ROW_BYTES``, default 1 MiB).

    An instruction example over 1 MiB (~250k tokens) is almost surely a broken or concatenated row (a
    missing newline, a whole document pasted into one cell), and a row that size would stall embedding and
    the browser. Raise the limit for files that really hold such rows.
    """
    return _positive_int("CURATE_MAX_ROW_BYTES", 1_048_576, "bytes")


def map_points() -> int:
    """How many points the map draws one by one (``CURATE_MAP_POINTS``, default 20,000); above, it draws a
    density image of every point and a sample of this many (``core.cluster.density``). Each drawn point costs
    about 12 bytes when the map changes and a marker in the browser's WebGL canvas."""
    return _positive_int("CURATE_MAP_POINTS", 20_000, "points")


def embed_write_rows() -> int:
    """Vectors the prepare commits to the embedding cache at once (``CURATE_EMBED_WRITE_ROWS``, default 16,384):
    fewer, larger commits keep embedding linear at a million rows; smaller ones lose less to a kill."""
    return _positive_int("CURATE_EMBED_WRITE_ROWS", 16_384, "rows")


def _positive_int(name: str, default: int, unit: str) -> int:
    """The whole positive number in the environment variable ``name`` (``1_048_576`` reads too), else
    ``default``; anything else is refused naming the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of {unit}, not {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, not {number}")
    return number
