"""Read a Hugging Face dataset: a hub id (``hf:ORG/NAME``), a folder written by ``save_to_disk``, or a hub-style
folder of data files (Parquet shards such as ``data/train-00000-of-00002.parquet`` or ``train/0000.parquet``).

Everything goes through the ``datasets`` library, so its cache (``HF_HOME``), its offline mode
(``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``) and its streaming reader apply. A hub id and a local folder of data
files take one path, ``datasets.load_dataset`` (which finds a folder's splits and shards, in order, as it does a
hub repository's); a saved folder is opened with ``datasets.load_from_disk``. :class:`HFRows` hands the rows
out an Arrow batch at a time, so a large set is never held in Python memory: memory-mapped from the cache, or
streamed with ``streaming=True``. :class:`core.ingest.DatasetStream` takes the rows from here and normalises and
checks them exactly as it does a file's rows.

Rows are numbered from 0, as the ``datasets`` library indexes them (``dataset[17]``), and their locations say
so. ``datasets`` is imported inside the functions that use it: importing this module stays light.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import IngestError

PREFIX = "hf:"
# What marks a folder written by save_to_disk: a DatasetDict's index of splits, or one Dataset's state.
SAVED_MARKERS = ("dataset_dict.json", "state.json")
# Data files load_dataset reads from a folder (the hub's packaged formats an instruction set comes in).
DATA_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".json", ".csv")
DEFAULT_SPLIT = "train"  # the split chosen when several exist and none is asked for
_MESSAGE_CHARS = 300  # a library message quoted in an error is cut here, so the error stays one readable line
_REVISION = re.compile(r"@([0-9a-f]{40})/")  # a hub file's URL names the commit it was read at


@dataclass(frozen=True)
class HFSource:
    """A dataset for the ``datasets`` library: ``spec`` as the user gave it (``hf:ORG/NAME``, ``hf:/a/folder`` or a
    folder's path), the ``config`` (a hub dataset's subset) and ``split`` asked for, and whether to stream."""

    spec: str
    config: str | None = None
    split: str | None = None
    streaming: bool = False

    @property
    def target(self) -> str:
        """What the library is given: the hub id or the folder, without the ``hf:`` prefix."""
        return self.spec.removeprefix(PREFIX).strip()

    @property
    def location(self) -> str:
        """The target as the library opens it: a folder with ``~`` expanded, or the hub id."""
        return str(Path(self.target).expanduser()) if self.is_local else self.target

    @property
    def is_local(self) -> bool:
        """Whether the target is a folder on this machine rather than a hub id."""
        target = self.target
        return not self.spec.startswith(PREFIX) or target.startswith(("/", ".", "~")) or Path(target).is_dir()

    @property
    def is_saved(self) -> bool:
        """Whether the target is a folder written by ``save_to_disk`` (read with ``load_from_disk``)."""
        folder = Path(self.target).expanduser()
        return self.is_local and any((folder / marker).is_file() for marker in SAVED_MARKERS)

    def label(self, split: str | None = None) -> str:
        """How errors name the dataset: ``hf:ORG/NAME (config 'c', split 'train')``."""
        parts = [f"config {self.config!r}"] if self.config else []
        split = split or self.split
        if split:
            parts.append(f"split {split!r}")
        return f"{self.spec} ({', '.join(parts)})" if parts else self.spec


def is_hf_source(path: str | Path) -> bool:
    """Whether a prepare's source is read through ``datasets``: ``hf:...``, or a folder (files are read directly)."""
    return str(path).startswith(PREFIX) or Path(path).expanduser().is_dir()


def default_name(source: HFSource) -> str:
    """The dataset name a prepare gives ``source`` when none is asked for: the hub name or the folder's name, then
    ``-CONFIG`` when a config was asked for and ``-SPLIT`` when a split other than train was."""
    name = Path(source.target.rstrip("/")).name or source.target
    if source.config:
        name += f"-{source.config}"
    if source.split and source.split != DEFAULT_SPLIT:
        name += f"-{source.split}"
    return name


def check_source(source: HFSource) -> None:
    """Refuse what is wrong before any reading: ValueError naming the problem (a job's ``path`` field)."""
    if not source.target:
        raise ValueError(f"give a dataset after {PREFIX}, e.g. {PREFIX}ORG/NAME or {PREFIX}/path/to/folder")
    if not source.is_local:
        return  # a hub id: only the hub (or the cache, offline) can say whether it exists
    folder = Path(source.target).expanduser()
    if not folder.is_dir():
        raise ValueError(f"no folder at {folder}")
    if source.is_saved:
        if source.config:
            raise ValueError(f"{folder} was written by save_to_disk, which keeps no configs: leave the config out")
        return
    if not _holds_data_files(folder):
        raise ValueError(
            f"{folder} holds no dataset: give a .jsonl, .json, .csv or .parquet file, a folder written by "
            "save_to_disk, or a folder of data files such as data/train-00000-of-00001.parquet"
        )


def _holds_data_files(folder: Path) -> bool:
    """Whether any data file lies in ``folder`` or below (stops at the first)."""
    return any(path.suffix.lower() in DATA_SUFFIXES for path in folder.rglob("*") if path.is_file())


class HFRows:
    """One opened ``datasets`` source: its rows in order, an Arrow batch of ``batch_rows`` at a time.

    Opening loads the dataset (for a hub id, downloading it into the cache unless it streams) and raises
    :class:`IngestError` with one clear line for what the library refuses: an unknown dataset, config or split,
    no network in offline mode. Iterate :meth:`records` once; then :meth:`hexdigest` is the SHA-256 of the rows
    read (their JSON), equal for equal rows however they were read, and :meth:`origin` records where they came from.
    """

    def __init__(self, source: HFSource, batch_rows: int):
        self.source = source
        self.path = Path(source.location)
        self.done = 0  # rows read so far
        self._batch_rows = max(1, batch_rows)
        self._digest = hashlib.sha256()
        try:
            self._data, self.split, self.total, self._origin = _open(source)
        except IngestError:
            raise
        except Exception as exc:  # the library raises many types; each becomes one line naming the source
            raise IngestError(self.path, _load_problem(source, exc), source=source.label()) from None
        self.label = source.label(self.split)

    def records(self) -> Iterator[tuple[str, int, Any]]:
        """(location, row number from 0, the row as a dict of its columns), in the dataset's order."""
        batches = self._data.with_format("arrow").iter(batch_size=self._batch_rows)
        while True:
            try:
                table = next(batches, None)
            except Exception as exc:  # a damaged shard, a connection lost while streaming
                problem = _one_line(exc)
                raise IngestError(
                    self.path, f"reading stopped at row {self.done} (0-based): {problem}", source=self.label
                ) from None
            if table is None:
                return
            for row in table.to_pylist():
                self._digest.update(json.dumps(row, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
                number = self.done
                self.done += 1
                yield f"row {number} (0-based)", number, row

    def hexdigest(self) -> str:
        """The SHA-256 of the rows read, one JSON text a row (what stands for a file's hash)."""
        return self._digest.hexdigest()

    def origin(self) -> dict[str, Any]:
        """Where the rows came from, for the dataset's record and the export manifest."""
        return {**self._origin, "split": self.split, "rows_sha256": self.hexdigest()}


def _open(source: HFSource) -> tuple[Any, str | None, int, dict[str, Any]]:
    """(the dataset or iterable dataset, its split, its row count or 0 when unknown, what is known of its origin)."""
    if source.is_saved:
        return _open_saved(source)
    import datasets

    split = source.split or _default_split(source)
    data = datasets.load_dataset(source.location, source.config, split=split, streaming=source.streaming)
    if isinstance(data, datasets.IterableDataset):
        splits = data.info.splits or {}
        total = int(splits[split].num_examples or 0) if split in splits else 0
        return data, split, total, _origin(source, "load_dataset", data, None)
    return data, split, len(data), _origin(source, "load_dataset", data, data._fingerprint)


def _open_saved(source: HFSource) -> tuple[Any, str | None, int, dict[str, Any]]:
    """A ``save_to_disk`` folder: one Dataset, or a DatasetDict whose split is chosen."""
    import datasets

    if source.config:
        raise IngestError(
            Path(source.target),
            "a folder written by save_to_disk keeps no configs: leave the config out",
            source=source.spec,
        )
    loaded = datasets.load_from_disk(source.location)
    split: str | None = None
    if isinstance(loaded, datasets.DatasetDict):
        split = _choose_split(source, list(loaded))
        loaded = loaded[split]
    elif source.split:
        raise IngestError(
            Path(source.target),
            f"holds one dataset (saved from a Dataset, not a DatasetDict), so it has no split {source.split!r}: "
            "leave the split out",
            source=source.spec,
        )
    origin = _origin(source, "load_from_disk", loaded, loaded._fingerprint)
    data = loaded.to_iterable_dataset() if source.streaming else loaded
    return data, split, len(loaded), origin


def _default_split(source: HFSource) -> str:
    """The split to read when none is asked for, from the split names the dataset's builder knows."""
    import datasets

    builder = datasets.load_dataset_builder(source.location, source.config)
    names = list(builder.info.splits or {}) or list(builder.config.data_files or {})
    return _choose_split(source, names) if names else DEFAULT_SPLIT


def _choose_split(source: HFSource, names: list[str]) -> str:
    """The asked split, else the only one, else train; IngestError naming the splits there are otherwise."""
    asked = source.split
    if asked is not None and asked not in names:
        raise IngestError(
            Path(source.target), f"has no split {asked!r}; its splits are {', '.join(names)}", source=source.spec
        )
    if asked is not None:
        return asked
    if len(names) == 1:
        return names[0]
    if DEFAULT_SPLIT in names:
        return DEFAULT_SPLIT
    raise IngestError(
        Path(source.target),
        f"has several splits ({', '.join(names)}): choose one with --split (on the page: Split)",
        source=source.spec,
    )


def _origin(source: HFSource, loader: str, data: Any, fingerprint: str | None) -> dict[str, Any]:
    """What is known of where the rows came from: the source as given, the loader, the config, the ``datasets``
    fingerprint (a cached or saved dataset's) and the hub commit its files were read at, where the library says."""
    info = data.info
    checksums = list(info.download_checksums or {}) if info is not None else []
    revision = next((found.group(1) for url in checksums if (found := _REVISION.search(url))), None)
    return {
        "source": source.spec,
        "loader": loader,
        "dataset": source.target,
        "config": source.config or (info.config_name if info is not None else None),
        "streaming": source.streaming,
        "fingerprint": fingerprint,
        "revision": revision,
    }


def _load_problem(source: HFSource, exc: Exception) -> str:
    """One line saying why the library could not open ``source``, and what to do."""
    from datasets import config as hf_config
    from datasets.exceptions import DatasetNotFoundError

    message = _one_line(exc)
    if isinstance(exc, DatasetNotFoundError):
        return (
            "no such dataset on the Hugging Face Hub, or it is private or gated "
            f"(for a private one, log in with `hf auth login`) ({message})"
        )
    if isinstance(exc, ConnectionError) and hf_config.HF_HUB_OFFLINE:
        return (
            "offline mode is on (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE) and the dataset is not in the local cache "
            f"(HF_HOME): load it once with the network, or unset offline mode ({message})"
        )
    if isinstance(exc, ConnectionError):
        return f"cannot reach the Hugging Face Hub ({message}); check the network, or set HF_HUB_OFFLINE=1 to read the cache"
    if isinstance(exc, FileNotFoundError):
        return f"no dataset found ({message})"
    return message if isinstance(exc, ValueError) else f"cannot be read ({type(exc).__name__}: {message})"


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line, cut to a readable length."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def columns_of(source: HFSource, max_rows: int = 200) -> list[str]:
    """The column names seen in the first ``max_rows`` rows (for a column-mapping form); [] when unreadable.
    Reads by streaming, so a hub dataset is not downloaded for it."""
    try:
        rows = HFRows(replace(source, streaming=True), max_rows)
        columns: list[str] = []
        for _, (_, _, row) in zip(range(max_rows), rows.records(), strict=False):
            columns += [key for key in row if key not in columns]
        return columns
    except (OSError, IngestError):
        return []
