"""The export formats, one writer each behind the ``FORMATS`` registry: the CLI's ``--format`` and the Export
page's format picker are built from it, so a new format needs no UI code.

``jsonl`` writes each row's JSON text as ingest stored it (the input's own shape); ``messages`` and
``sharegpt`` write chat JSONL (:mod:`core.export.rows` says how a row becomes turns); ``parquet`` writes one
Parquet file and ``hf`` a ``datasets`` folder (``Dataset.save_to_disk``), both with the input's own columns,
through Arrow batches (:mod:`core.export.arrow`). A writer receives the rows a chunk at a time while the
store is read, and :meth:`FormatWriter.finish` runs after the read ends: the Arrow formats spool the rows to
a scratch JSONL file and build their file from it then, so the workspace is not held during the second pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core.export import arrow
from core.export.rows import SourceShape, as_messages, as_sharegpt, chat_turns, has_system_field
from core.registry import Registry

if TYPE_CHECKING:
    import pyarrow as pa

SourceRow = tuple[str, str | None]
"""One exported row as the store holds it: its original JSON text and its normalised chat turns (JSON text,
None for an Alpaca row or when the format does not need them)."""

HF_SHARDS = 1
"""The ``datasets`` folder holds one data file: LLaMA-Factory's ``file_name`` names a single file (a folder of
``save_to_disk`` mixes .arrow and .json files, which its loader refuses)."""


@dataclass(frozen=True)
class FormatResult:
    """What a writer wrote: the SHA-256 of its file (a folder's: of its data file) and the manifest's details."""

    sha256: str
    details: dict[str, Any]


class FormatWriter(Protocol):
    """Writes one export: rows a chunk at a time, then whatever must wait until all rows were seen."""

    def add(self, rows: Sequence[SourceRow], own_lines: bytes) -> None:
        """One chunk: the rows, and their JSONL in the input's own shape (already encoded for the hash)."""
        ...

    def finish(self) -> FormatResult: ...


class ExportFormat(Protocol):
    """One way to write an export (see the module docstring); its class attributes describe it to the UI."""

    name: ClassVar[str]  # its id: CLI, manifests
    title: ClassVar[str]  # what the page's picker shows
    label: ClassVar[str]  # a short name: the download button's "Download <label>"
    suffix: ClassVar[str]  # the file's suffix ("" for a folder)
    folder: ClassVar[bool]  # True: the export is a folder
    needs_turns: ClassVar[bool]  # True: the writer reads the stored chat turns
    media_type: ClassVar[str]  # what a download of it is sent as
    rule: ClassVar[str]  # how a row is written: the manifest records it

    def open(self, path: Path, source: SourceShape, scratch: Path) -> FormatWriter:
        """A writer of ``path``; ``scratch`` is an empty folder removed after the export."""
        ...


FORMATS: Registry[ExportFormat] = Registry("export format")

CHAT_RULE = (
    "An Alpaca row becomes a user turn (the instruction, then the input after a blank line when there is one) and "
    "an assistant turn (the output); a chat row keeps its turns as ingest normalised them (roles lower-cased; "
    "ShareGPT's human/gpt read as user/assistant). A top-level text field 'system' becomes a leading system turn "
    "unless the turns start with one. Every other field of the row is kept as a top-level key."
)
ARROW_RULE = (
    "One column per top-level field of the rows, in the order the rows first show them; a field a row lacks is "
    "null; a column whose values share no Arrow type is written as JSON text (json_text_columns)."
)


@FORMATS.register
@dataclasses.dataclass(frozen=True)
class JsonlFormat:
    """JSONL in the input's own shape: each row's fields as ingest stored them."""

    name: ClassVar[str] = "jsonl"
    title: ClassVar[str] = "JSONL, in the input's own shape"
    label: ClassVar[str] = "JSONL"
    suffix: ClassVar[str] = ".jsonl"
    folder: ClassVar[bool] = False
    needs_turns: ClassVar[bool] = False
    media_type: ClassVar[str] = "application/jsonl"
    rule: ClassVar[str] = "Each line is a row's JSON object as ingest stored it: the input's fields, order and values."

    def open(self, path: Path, source: SourceShape, scratch: Path) -> FormatWriter:
        return _TextWriter(path, None)


@FORMATS.register
@dataclasses.dataclass(frozen=True)
class MessagesFormat:
    """Chat JSONL: ``{"messages": [{"role", "content"}, ...]}`` plus the row's other fields."""

    name: ClassVar[str] = "messages"
    title: ClassVar[str] = "Chat JSONL (messages: role/content)"
    label: ClassVar[str] = "chat JSONL"
    suffix: ClassVar[str] = ".jsonl"
    folder: ClassVar[bool] = False
    needs_turns: ClassVar[bool] = True
    media_type: ClassVar[str] = "application/jsonl"
    rule: ClassVar[str] = 'Each line is {"messages": [{"role": ..., "content": ...}, ...]}. ' + CHAT_RULE

    def open(self, path: Path, source: SourceShape, scratch: Path) -> FormatWriter:
        return _TextWriter(path, _converter(source, as_messages))


@FORMATS.register
@dataclasses.dataclass(frozen=True)
class ShareGptFormat:
    """ShareGPT JSONL: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}``."""

    name: ClassVar[str] = "sharegpt"
    title: ClassVar[str] = "ShareGPT JSONL (conversations: from/value)"
    label: ClassVar[str] = "ShareGPT JSONL"
    suffix: ClassVar[str] = ".jsonl"
    folder: ClassVar[bool] = False
    needs_turns: ClassVar[bool] = True
    media_type: ClassVar[str] = "application/jsonl"
    rule: ClassVar[str] = (
        'Each line is {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...]}. ' + CHAT_RULE
    )

    def open(self, path: Path, source: SourceShape, scratch: Path) -> FormatWriter:
        return _TextWriter(path, _converter(source, as_sharegpt))


@FORMATS.register
@dataclasses.dataclass(frozen=True)
class ParquetFormat:
    """One Parquet file with the input's own columns."""

    name: ClassVar[str] = "parquet"
    title: ClassVar[str] = "Parquet, in the input's own shape"
    label: ClassVar[str] = "Parquet"
    suffix: ClassVar[str] = ".parquet"
    folder: ClassVar[bool] = False
    needs_turns: ClassVar[bool] = False
    media_type: ClassVar[str] = "application/vnd.apache.parquet"
    rule: ClassVar[str] = "One Parquet file, a row group per chunk of rows. " + ARROW_RULE

    def open(self, path: Path, source: SourceShape, scratch: Path) -> FormatWriter:
        return _ArrowWriter(path, source, scratch, _write_parquet)


@FORMATS.register
@dataclasses.dataclass(frozen=True)
class HfFormat:
    """A ``datasets`` folder (``datasets.load_from_disk``) with the input's own columns."""

    name: ClassVar[str] = "hf"
    title: ClassVar[str] = "Hugging Face datasets folder (load_from_disk)"
    label: ClassVar[str] = "datasets folder (zip)"
    suffix: ClassVar[str] = ""
    folder: ClassVar[bool] = True
    needs_turns: ClassVar[bool] = False
    media_type: ClassVar[str] = "application/zip"
    rule: ClassVar[str] = "A datasets folder written by Dataset.save_to_disk in one shard. " + ARROW_RULE

    def open(self, path: Path, source: SourceShape, scratch: Path) -> FormatWriter:
        return _ArrowWriter(path, source, scratch, _write_hf)


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; a KeyError naming the known ones otherwise."""
    try:
        return FORMATS.get(name)()
    except KeyError:
        raise KeyError(f"unknown export format {name!r}; known: {', '.join(FORMATS.names())}") from None


Converter = Callable[[dict[str, Any], str | None], dict[str, Any]]


def _converter(
    source: SourceShape, shape: Callable[[dict[str, Any], list[dict[str, str]], SourceShape], dict[str, Any]]
) -> Converter:
    """A row's JSON object and stored turns -> the record a chat format writes."""
    from core.models.passes import user_turn  # the chat rendering's own rule (numpy: kept out of the CLI's start)

    def convert(row: dict[str, Any], stored_turns: str | None) -> dict[str, Any]:
        return shape(row, chat_turns(row, stored_turns, source, user_turn), source)

    return convert


class _TextWriter:
    """JSONL: the rows' own lines, or each row converted to a chat record."""

    def __init__(self, path: Path, convert: Converter | None):
        self._file = path.open("wb")
        self._convert = convert
        self._digest = hashlib.sha256()
        self._system = False
        self._columns: dict[str, None] = {}  # ordered set of the records' keys

    def add(self, rows: Sequence[SourceRow], own_lines: bytes) -> None:
        if self._convert is None:
            data = own_lines
            self._system = self._system or any(has_system_field(original) for original, _ in rows)
        else:
            records = [self._convert(json.loads(original), turns) for original, turns in rows]
            self._columns.update(dict.fromkeys(key for record in records for key in record))
            data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
        self._digest.update(data)
        self._file.write(data)

    def finish(self) -> FormatResult:
        self._file.close()
        details: dict[str, Any] = {"system_field": self._system}
        if self._convert is not None:
            details = {"columns": list(self._columns)}  # a system field became a turn
        return FormatResult(self._digest.hexdigest(), details)


Sink = Callable[[Path, "pa.Schema", Iterator["pa.Table"], Path], tuple[str, dict[str, Any]]]


class _ArrowWriter:
    """Parquet or a ``datasets`` folder: the rows are spooled as JSONL and their column types merged while the
    store is read; :meth:`finish` builds the file from the spool in batches of the same size."""

    def __init__(self, path: Path, source: SourceShape, scratch: Path, sink: Sink):
        self._path, self._source, self._scratch, self._sink = path, source, scratch, sink
        self._spool_path = scratch / "rows.jsonl"
        self._spool = self._spool_path.open("wb")
        self._scan = arrow.SchemaScan()
        self._batch_rows = 1
        self._system = False

    def add(self, rows: Sequence[SourceRow], own_lines: bytes) -> None:
        self._spool.write(own_lines)
        parsed = [json.loads(original) for original, _ in rows]
        self._scan.add(parsed)
        self._batch_rows = max(self._batch_rows, len(rows))
        self._system = self._system or any(isinstance(row.get("system"), str) for row in parsed)

    def finish(self) -> FormatResult:
        self._spool.close()
        schema = self._scan.schema(_empty_schema(self._source))
        json_text = self._scan.json_text_columns()
        tables = self._tables(schema, set(json_text))
        sha256, written = self._sink(self._path, schema, tables, self._scratch)
        details = {"system_field": self._system, "columns": schema.names, "json_text_columns": json_text}
        return FormatResult(sha256, {**details, **written})

    def _tables(self, schema: pa.Schema, json_text: set[str]) -> Iterator[pa.Table]:
        with self._spool_path.open("rb") as spool:
            batch: list[dict[str, Any]] = []
            for line in spool:  # one JSON object per line: its text holds no raw newline
                batch.append(json.loads(line))
                if len(batch) == self._batch_rows:
                    yield arrow.table(batch, schema, json_text)
                    batch = []
            if batch:
                yield arrow.table(batch, schema, json_text)


def _empty_schema(source: SourceShape) -> dict[str, pa.DataType]:
    """The columns of an export that keeps no row: the shape's own fields."""
    import pyarrow as pa

    if source.chat:
        role, text = ("role", "content") if source.shape == "messages" else ("from", "value")
        turn = pa.struct([(role, pa.string()), (text, pa.string())])
        return {str(source.turns_field): pa.list_(turn)}
    return {name: pa.string() for name in source.alpaca_fields() if name}


def _write_parquet(path: Path, schema: pa.Schema, tables: Iterator[pa.Table], scratch: Path) -> tuple[str, dict]:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(str(path), schema) as writer:
        wrote = False
        for batch in tables:
            writer.write_table(batch)
            wrote = True
        if not wrote:
            writer.write_table(schema.empty_table())
    return file_sha256(path), {}


def _write_hf(folder: Path, schema: pa.Schema, tables: Iterator[pa.Table], scratch: Path) -> tuple[str, dict]:
    """An Arrow stream of the batches, opened memory-mapped by ``datasets`` and saved as a dataset folder: no
    row becomes a Python object on the way."""
    import datasets
    import pyarrow as pa

    stream = scratch / "rows.arrow"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in tables:
            writer.write_table(batch)
    dataset = datasets.Dataset.from_file(str(stream))
    quiet = not datasets.are_progress_bars_disabled()
    if quiet:
        datasets.disable_progress_bars()  # the CLI shows its own line; the app's log stays clean
    try:
        dataset.save_to_disk(str(folder), num_shards=HF_SHARDS)
    finally:
        if quiet:
            datasets.enable_progress_bars()
    del dataset
    files = {item.name: file_sha256(item) for item in sorted(folder.iterdir()) if item.is_file()}
    data_file = next(name for name in files if name.endswith(".arrow"))
    return files[data_file], {"data_file": data_file, "files": files}


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
