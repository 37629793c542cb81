"""Read an instruction dataset file and normalise every row to (instruction, input, output, messages).

Formats: ``.jsonl``, ``.json`` (an array), ``.csv``, ``.parquet``; text files in UTF-8 (a byte-order mark
allowed), UTF-16 or UTF-32. Shapes: Alpaca (``instruction``/``input``/``output``), chat ``messages``
(role/content), ShareGPT ``conversations`` (from/value), or any columns named by an explicit mapping. Every problem is reported with the file, the
line (or row) and the field. This module never touches storage: :class:`DatasetStream` hands out a file's
rows in batches, read in bounded chunks (a ``.json`` array excepted), which the store stages and inserts
only once the whole file is known to be good, so a failing file stores nothing; :func:`read_dataset`
collects them in memory for small files. A Hugging Face dataset (a hub id, a ``save_to_disk`` folder, a folder of
Parquet shards: :mod:`core.ingest.hf`) is read by the same stream, its rows normalised and checked alike.

Besides malformed rows, two kinds of row are refused: a row whose texts exceed ``CURATE_MAX_ROW_BYTES``
(see :func:`core.config.max_row_bytes`), and a row whose own ``id`` field repeats an earlier row's.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import chain, islice
from pathlib import Path
from typing import Any

from core import config
from core.errors import IngestError
from core.ingest.hf import HFRows, HFSource

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
SHAPES = ("alpaca", "messages", "sharegpt", "mapped")
MAPPABLE_FIELDS = ("instruction", "input", "output")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}
_MAX_REPORTED = 5
# JSON may spell half of a UTF-16 surrogate pair as an escape ("\ud800"); Python then holds a lone surrogate,
# which no UTF-8 writer (hashing, storage, export) accepts. The escape test is a cheap pre-filter on raw text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_MESSAGE = "holds an unpaired surrogate escape (\\ud800-\\udfff), which is not valid text"
# Byte-order marks of the wide encodings Windows tools write ("Unicode" in Notepad and Excel, PowerShell's
# Out-File). UTF-32's come first: the UTF-32-LE mark begins with the UTF-16-LE one.
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)
_WIDE_SAMPLE = 4096  # bytes looked at to tell UTF-16 without a mark from UTF-8; even, so pairs stay aligned
_SHAPE_SAMPLE = 200  # rows whose fields tell the file's shape
_CHUNK_BYTES = 1 << 20  # bytes read from a file at a time
BATCH_ROWS = 5_000  # rows a DatasetStream hands out at a time: memory stays flat, per-batch costs stay small


class RowError(ValueError):
    """A problem with one record; ``field_name`` says which field."""

    def __init__(self, field_name: str | None, message: str):
        self.field_name = field_name
        super().__init__(message)


@dataclass(frozen=True)
class BadRow:
    """A row that was rejected: where it is, which field, and why."""

    location: str
    field_name: str | None
    message: str

    def describe(self) -> str:
        field_part = f", field '{self.field_name}'" if self.field_name else ""
        return f"{self.location}{field_part}: {self.message}"


@dataclass(frozen=True)
class Example:
    """One normalised row. ``original`` holds the row's fields exactly as read, for export."""

    row_number: int
    location: str
    instruction: str
    input: str
    output: str
    messages: list[dict[str, str]] | None
    original: dict[str, Any]
    content_hash: str
    prompt_hash: str
    example_id: str = ""


@dataclass
class IngestResult:
    """What :func:`read_dataset` found: the good rows, the rejected ones, and how the file was read."""

    path: Path
    file_sha256: str
    shape: str
    mapping: dict[str, str | None]
    examples: list[Example]
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.bad_rows)


@dataclass(frozen=True)
class _Record:
    location: str
    row_number: int
    value: Any


@dataclass(frozen=True)
class IngestSummary:
    """What a :class:`DatasetStream` found besides the rows it handed out: how the file was read and the bad rows.

    For a Hugging Face source, ``file_sha256`` is the SHA-256 of its rows read (:meth:`core.ingest.hf.HFRows.hexdigest`)
    and ``source`` says where they came from (:meth:`core.ingest.hf.HFRows.origin`); for a file ``source`` is None.
    """

    path: Path
    file_sha256: str
    shape: str
    mapping: dict[str, str | None]
    n_rows: int
    bad_rows: list[BadRow]
    source: dict[str, Any] | None = None

    @property
    def n_skipped(self) -> int:
        return len(self.bad_rows)

    @property
    def source_path(self) -> str:
        """What the dataset records as its source: the file's path, or the Hugging Face source as given."""
        return str(self.source["source"]) if self.source else str(self.path)


@dataclass(frozen=True)
class _Origin:
    """What errors name: the file, or (``label``) a Hugging Face dataset and its split."""

    path: Path
    label: str | None = None

    def error(self, message: str, location: str | None = None, field_name: str | None = None) -> IngestError:
        return IngestError(self.path, message, location, field_name, source=self.label)


def read_dataset(
    path: str | Path | HFSource,
    *,
    mapping: Mapping[str, str | None] | None = None,
    skip_bad_rows: bool = False,
) -> IngestResult:
    """Read and validate a dataset file with every row in memory (evaluation sets, targets, small files).

    A dataset of any size is read in batches with :class:`DatasetStream` instead; this is the same read,
    collected, with each row's id assigned (:func:`assign_ids`).

    Parameters
    ----------
    path : the file; its suffix picks the reader. Or a Hugging Face source (:class:`~core.ingest.hf.HFSource`).
    mapping : optional ``{"instruction": col, "input": col or None, "output": col}`` for files whose
        columns have other names. Without it the shape is detected from the fields.
    skip_bad_rows : when False (default) the first bad row raises :class:`IngestError`; when True the
        bad rows are reported in ``IngestResult.bad_rows`` and the good ones kept.
    """
    stream = DatasetStream(path, mapping=mapping, skip_bad_rows=skip_bad_rows)
    examples = [example for batch in stream.batches() for example in batch]
    found = stream.summary()
    return IngestResult(found.path, found.file_sha256, found.shape, found.mapping, assign_ids(examples), found.bad_rows)


class DatasetStream:
    """One pass over a dataset file that hands out its validated rows in batches, so memory stays flat.

    Iterate :meth:`batches` to the end (each batch at most ``batch_rows`` examples, in file order, their
    ``example_id`` still empty: see :func:`assign_ids`), then call :meth:`summary`: it raises the file's
    :class:`IngestError` when a row was bad (unless ``skip_bad_rows``) or none was usable. The batches are
    therefore provisional until :meth:`summary` returns; the store stages them in a file and inserts them
    only then, so a bad last row still stores nothing. The errors are those of a whole-file read: the first
    bad row, with the count of the rest (so the whole file is read even after a bad row, though no more
    batches are handed out), reader errors (malformed JSON, bad bytes) before field errors.

    ``.jsonl`` and ``.csv`` are read 1 MiB at a time (UTF-16 and UTF-32 files transcoded as they are read),
    ``.parquet`` a batch of rows at a time; a ``.json`` array is parsed whole (the standard library has no
    streaming JSON parser), so a large dataset is better given as JSON Lines. The file's SHA-256 is
    computed from the same reads.

    ``source`` may instead be an :class:`~core.ingest.hf.HFSource`: the dataset is opened at once (an unknown
    dataset, config or split fails here), its rows read an Arrow batch at a time, numbered from 0 as ``datasets``
    numbers them, and progress counts rows (:attr:`progress_stage`, :attr:`total`, :attr:`done`).
    """

    def __init__(
        self,
        source: str | Path | HFSource,
        *,
        mapping: Mapping[str, str | None] | None = None,
        skip_bad_rows: bool = False,
        batch_rows: int = BATCH_ROWS,
    ):
        self._rows: HFRows | None = None
        if isinstance(source, HFSource):
            self._rows = HFRows(source, max(1, batch_rows))
            self.path = self._rows.path
            self._suffix = ""
            self._origin = _Origin(self.path, self._rows.label)
        else:
            self.path = Path(source)
            self._suffix = _check_file(self.path)
            self._origin = _Origin(self.path)
        self._mapping = mapping
        self._skip_bad_rows = skip_bad_rows
        self._batch_rows = max(1, batch_rows)
        self._read_bad: list[BadRow] = []  # refused by the file's reader: malformed JSON, bad bytes
        self._row_bad: list[BadRow] = []  # refused by normalisation: a field missing, of the wrong type
        self._n_good = 0
        self._found: tuple[str, dict[str, str | None]] = ("", {})
        self._sha256: str | None = None
        # for progress: bytes_read reaches it at the end (0 for a Hugging Face source, counted in rows)
        self.size_bytes = self.path.stat().st_size if self._rows is None else 0
        self._handle: _HashingFile | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes of the file read so far: a JSON Lines or CSV file's count grows with the batches; a JSON
        array and a Parquet file (read whole, or by pyarrow itself) jump to the size when they are hashed."""
        return self._handle.bytes_read if self._handle is not None else 0

    @property
    def progress_stage(self) -> str:
        """The progress stage a read reports: ``ingest`` counts a file's bytes, ``ingest rows`` a dataset's rows."""
        return "ingest" if self._rows is None else "ingest rows"

    @property
    def total(self) -> int:
        """What :attr:`done` reaches at the end: the file's bytes, or the dataset's rows (0 when the library
        does not know them, as for some streamed datasets)."""
        return self.size_bytes if self._rows is None else self._rows.total

    @property
    def done(self) -> int:
        """The bytes, or the rows, read so far."""
        return self.bytes_read if self._rows is None else self._rows.done

    def batches(self) -> Iterator[list[Example]]:
        """The good rows in batches; a file-level problem (unknown shape, not Parquet) raises IngestError."""
        max_bytes = config.max_row_bytes()  # read once per file, not once per row
        first_seen: dict[int, int] = {}  # digest of a user id -> number of the row that first carried it
        with self._reading() as (records, hexdigest):
            head = list(islice(records, _SHAPE_SAMPLE))
            self._found = _detect_shape(self._origin, head, self._mapping)
            batch: list[Example] = []
            for record in chain(head, records):
                example = self._normalise(record, max_bytes, first_seen)
                if example is None or not self._keeping():
                    continue
                batch.append(example)
                if len(batch) >= self._batch_rows:
                    yield batch
                    batch = []
            if batch and self._keeping():
                yield batch
            self._sha256 = hexdigest()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[tuple[Iterator[_Record], Callable[[], str]]]:
        """The source's records and the function that gives its SHA-256 once they are read."""
        if self._rows is not None:
            yield (_Record(*found) for found in self._rows.records()), self._rows.hexdigest
            return
        with _HashingFile(self.path) as handle:
            self._handle = handle
            yield _read_records(self.path, self._suffix, handle, self._read_bad), handle.hexdigest

    def summary(self) -> IngestSummary:
        """How the file was read; raises the file's IngestError if a row was bad (and not skipped) or none good."""
        if self._sha256 is None:
            raise RuntimeError("DatasetStream.summary() needs every batch read first")
        bad = self._read_bad + self._row_bad
        if bad and not self._skip_bad_rows:
            raise _first_error(self._origin, bad, any_good=self._n_good > 0)
        if not self._n_good:
            raise _nothing_usable(self._origin, bad)
        shape, resolved = self._found
        source = self._rows.origin() if self._rows is not None else None
        return IngestSummary(self.path, self._sha256, shape, resolved, self._n_good, bad, source)

    def _keeping(self) -> bool:
        """Whether good rows are still handed out: not after a bad row, unless bad rows are skipped."""
        return self._skip_bad_rows or not (self._read_bad or self._row_bad)

    def _normalise(self, record: _Record, max_bytes: int, first_seen: dict[int, int]) -> Example | None:
        shape, resolved = self._found
        try:
            example = _normalise(record, shape, resolved, max_bytes)
            _check_unique_id(example.original, record, first_seen)
        except RowError as exc:
            self._row_bad.append(BadRow(record.location, exc.field_name, str(exc)))
            return None
        self._n_good += 1
        return example


def _check_file(path: Path) -> str:
    """The file's suffix, once the file is known to exist, to be of a supported type and not to be blank."""
    if not path.is_file():
        raise IngestError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(path, f"unsupported file type '{suffix}'; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            if chunk.strip():  # stops at the first chunk with text: a real file is read no further here
                return suffix
    raise IngestError(path, "the file is empty")


class _HashingFile:
    """A file read in chunks, each added to the file's SHA-256 as it goes by."""

    def __init__(self, path: Path):
        self._file = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        self._sha = hashlib.sha256()
        self.bytes_read = 0

    def __enter__(self) -> _HashingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def chunks(self) -> Iterator[bytes]:
        while chunk := self._file.read(_CHUNK_BYTES):
            self._sha.update(chunk)
            self.bytes_read += len(chunk)
            yield chunk

    def hexdigest(self) -> str:
        """The SHA-256 of the whole file: what is left unread (all of a Parquet file) is read for it now."""
        for _ in self.chunks():
            pass
        return self._sha.hexdigest()


def _first_error(origin: _Origin, bad: list[BadRow], any_good: bool) -> IngestError:
    """The first bad row's error, with how many more there are and what to do; skipping bad rows is advised
    only when some row is good, as with none it would load nothing."""
    first = bad[0]
    message = first.message
    if len(bad) == 1:
        message += " (nothing was stored)"
    elif any_good:
        message += f" (and {len(bad) - 1} more bad rows; nothing was stored. Turn on 'skip bad rows' to load the rest)"
    else:
        message += f" (and {len(bad) - 1} more bad rows; no row is usable, so nothing was stored)"
        message += _encoding_hint(origin.path, bad)
    return origin.error(message, first.location, first.field_name)


def _nothing_usable(origin: _Origin, bad: list[BadRow]) -> IngestError:
    """The error for a file without one good row (with 'skip bad rows' on): it names the first bad row, since
    the count alone does not say what is wrong."""
    if not bad:
        return origin.error("no rows found")
    message = f"no usable rows found ({len(bad)} bad rows); the first is {bad[0].describe()}"
    return origin.error(message + _encoding_hint(origin.path, bad))


def _encoding_hint(path: Path, bad: list[BadRow]) -> str:
    """Advice to convert the file when every bad row failed as UTF-8: the file is in another encoding (a
    UTF-16 or UTF-32 one would have been read). Empty when some row failed for another reason."""
    if not all(row.message.startswith("not valid UTF-8") for row in bad):
        return ""
    return (
        f"; the file is not UTF-8 text: save it as UTF-8, or convert it, e.g. "
        f"iconv -f WINDOWS-1252 -t UTF-8 {path.name} > fixed{path.suffix} (with its real encoding after -f)"
    )


def _read_records(path: Path, suffix: str, handle: _HashingFile, bad: list[BadRow]) -> Iterator[_Record]:
    if suffix == ".parquet":
        yield from _read_parquet(path)  # pyarrow reads the file itself; the handle only hashes it
        return
    chunks = _as_utf8(path, handle.chunks())
    if suffix == ".jsonl":
        yield from _read_jsonl(chunks, bad)
    elif suffix == ".json":
        yield from _read_json_array(path, b"".join(chunks), bad)
    else:
        yield from _read_csv(path, chunks, bad)


def _as_utf8(path: Path, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A UTF-16 or UTF-32 text file's chunks re-encoded as UTF-8; any other file's chunks as they are.

    Read byte by byte as UTF-8, every row of a UTF-16 file is bad, and the errors (a 0xff byte, a NUL) do not
    say why. Such a file is read instead, when its byte-order mark or its NUL bytes (in the first chunk) say
    what it is; it is decoded chunk by chunk, so a damaged spot is named by its byte in the whole file.
    """
    first = b""
    for chunk in chunks:  # the sample the encoding is told from (a single chunk but for tiny reads)
        first += chunk
        if len(first) >= _WIDE_SAMPLE:
            break
    found = _wide_encoding(first)
    if found is None:
        yield first
        yield from chunks
        return
    codec, label = found
    decoder = codecs.getincrementaldecoder(codec)()
    consumed = 0  # bytes given to the decoder so far
    for chunk in chain([first], chunks, [b""]):  # the empty chunk ends the stream: a cut-short pair fails there
        consumed += len(chunk)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:  # exc.object is what the decoder held back plus this chunk
            byte = consumed - len(exc.object) + exc.start
            raise IngestError(
                path,
                f"looks like {label} text but is not valid {label} ({exc.reason} at byte {byte}), so it may be "
                f"cut short or damaged; save it again as UTF-8 (iconv -f {label} -t UTF-8 {path.name} > "
                f"fixed{path.suffix} converts it, and names the bad spot)",
            ) from None
        if text:  # half a character gives none; an empty chunk would read as the end of the file
            yield text.encode("utf-8")


def _wide_encoding(raw: bytes) -> tuple[str, str] | None:
    """(codec, name) of a UTF-16 or UTF-32 file, told by its byte-order mark or, for UTF-16 without one, by
    its NUL bytes: ASCII characters (the JSON and CSV syntax at least) in UTF-16 put a NUL in every other
    byte, which UTF-8 text never holds. None for anything else."""
    for bom, codec, label in _WIDE_BOMS:
        if raw.startswith(bom):
            return codec, label
    sample = raw[:_WIDE_SAMPLE]
    pairs = len(sample) // 2
    even, odd = sample[0 : 2 * pairs : 2].count(0), sample[1::2].count(0)
    if pairs and odd > pairs / 2 and even < pairs / 8:
        return "utf-16-le", "UTF-16LE"
    if pairs and even > pairs / 2 and odd < pairs / 8:
        return "utf-16-be", "UTF-16BE"
    return None


def _strip_bom(raw: bytes) -> bytes:
    return raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw


def _without_bom(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks with a UTF-8 byte-order mark at the start of the file removed."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= 3:
            break
    yield _strip_bom(head)
    yield from chunks


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The bytes split at every b"\\n" (the newline itself dropped), as ``bytes.split`` would split them whole."""
    pieces: list[bytes] = []  # the line being gathered; a list, so a very long line is not copied per chunk
    for chunk in chunks:
        if b"\n" not in chunk:
            pieces.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if pieces:
            lines[0] = b"".join([*pieces, lines[0]])
        pieces = [lines.pop()]
        yield from lines
    yield b"".join(pieces)


def _decode_line(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError(None, f"not valid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})") from None


def _read_jsonl(chunks: Iterator[bytes], bad: list[BadRow]) -> Iterator[_Record]:
    for number, line in enumerate(_split_lines(_without_bom(chunks)), start=1):
        location = f"line {number}"
        try:
            text = _decode_line(line)
            if not text.strip():
                continue
            if "\x00" in text:
                raise RowError(None, "contains a NUL byte")
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RowError(None, f"malformed JSON: {_json_problem(exc)}") from None
            if _SURROGATE_ESCAPE.search(text):
                _reject_lone_surrogates(value)
        except RowError as exc:
            bad.append(BadRow(location, exc.field_name, str(exc)))
            continue
        yield _Record(location, number, value)


def _json_problem(exc: json.JSONDecodeError) -> str:
    """What the JSON parser found and the column where. Some of its messages end in "at" already
    ("Unterminated string starting at", "Invalid control character at"), to be followed by the place."""
    joint = " " if exc.msg.endswith(" at") else " at "
    return f"{exc.msg}{joint}column {exc.colno}"


def _reject_lone_surrogates(row: Any) -> None:
    """Raise RowError naming the top-level field whose name or value holds an unpaired surrogate."""
    items = row.items() if isinstance(row, dict) else [(None, row)]
    for key, item in items:
        if _has_lone_surrogate(key) or _has_lone_surrogate(item):
            name = key.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(key, str) else None
            raise RowError(name, _SURROGATE_MESSAGE)


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _decode_whole(path: Path, raw: bytes) -> str:
    raw = _strip_bom(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise IngestError(path, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", f"line {line}") from None


def _read_json_array(path: Path, raw: bytes, bad: list[BadRow]) -> Iterator[_Record]:
    text = _decode_whole(path, raw)
    del raw  # the text and the parsed rows are what the rest needs: the whole file, held once less
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(path, f"malformed JSON: {_json_problem(exc)}", f"line {exc.lineno}") from None
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if not isinstance(value, list):
        raise IngestError(path, f"a .json file must hold an array of rows, found {_type_name(value)}")
    check_surrogates = _SURROGATE_ESCAPE.search(text) is not None
    del text
    for number, item in enumerate(value, start=1):
        try:
            if check_surrogates:
                _reject_lone_surrogates(item)
        except RowError as exc:
            bad.append(BadRow(f"row {number}", exc.field_name, str(exc)))
            continue
        yield _Record(f"row {number}", number, item)


def _read_csv(path: Path, chunks: Iterator[bytes], bad: list[BadRow]) -> Iterator[_Record]:
    reader = csv.reader(_csv_lines(path, _without_bom(chunks)))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise IngestError(path, f"no header row ({exc})" if str(exc) else "no header row", "line 1") from None
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise IngestError(path, f"malformed CSV: {exc}", f"line {reader.line_num}") from None
        number = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            bad.append(BadRow(f"line {number}", None, f"expected {len(header)} fields, found {len(cells)}"))
            continue
        yield _Record(f"line {number}", number, dict(zip(header, cells, strict=True)))


def _csv_lines(path: Path, chunks: Iterator[bytes]) -> Iterator[str]:
    """The file's text, decoded as UTF-8 as it is read, line by line as ``io.StringIO(text, newline="")`` splits
    it (at \\r\\n, \\r or \\n, ends kept, which the csv module needs to read quoted line breaks). A byte that is
    not UTF-8, or a NUL, raises IngestError naming its line: neither can be a skippable row of a CSV file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0  # "\n" in the text before this chunk
    pending = ""  # the last line of the previous chunk, which may go on in this one
    for chunk in chain(chunks, [None]):  # None ends the stream: a cut-short character fails there
        try:
            text = decoder.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError as exc:  # exc.object is what the decoder held back (never a newline) plus chunk
            line = newlines + exc.object[: exc.start].count(b"\n") + 1
            raise IngestError(path, f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x})", f"line {line}") from None
        if "\x00" in text:
            line = newlines + text[: text.index("\x00")].count("\n") + 1
            raise IngestError(path, "contains a NUL byte", f"line {line}")
        newlines += text.count("\n")
        lines = io.StringIO(pending + text, newline="").readlines()
        # held back unless it ends in "\n": it may go on, and a "\r" may be the first half of "\r\n"
        pending = lines.pop() if chunk is not None and lines and not lines[-1].endswith("\n") else ""
        yield from lines


def _read_parquet(path: Path) -> Iterator[_Record]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise _not_parquet(path, exc) from None
    number = 0
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:  # a damaged row group further on
            raise _not_parquet(path, exc) from None
        if batch is None:
            return
        for row in batch.to_pylist():
            number += 1
            yield _Record(f"row {number}", number, row)


def _not_parquet(path: Path, exc: Exception) -> IngestError:
    return IngestError(path, f"not a readable Parquet file ({type(exc).__name__}: {exc})")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _detect_shape(
    origin: _Origin, records: list[_Record], mapping: Mapping[str, str | None] | None
) -> tuple[str, dict[str, str | None]]:
    columns: list[str] = []
    for record in records[:_SHAPE_SAMPLE]:
        if isinstance(record.value, dict):
            columns += [key for key in record.value if key not in columns]
    if mapping:
        return "mapped", _check_mapping(origin, mapping, columns)
    if not columns:
        return "alpaca", {}
    if "messages" in columns:
        return "messages", {}
    if "conversations" in columns:
        return "sharegpt", {}
    if "instruction" in columns:  # rows without 'output' then fail as "missing required field"
        return "alpaca", {"instruction": "instruction", "input": "input", "output": "output"}
    raise origin.error(
        f"unknown shape: fields found are {', '.join(columns)}. Expected Alpaca (instruction, input, output), "
        "chat (messages) or ShareGPT (conversations); give a column mapping, "
        "e.g. --map instruction=prompt --map output=completion",
    )


def _check_mapping(origin: _Origin, mapping: Mapping[str, str | None], columns: list[str]) -> dict[str, str | None]:
    unknown = set(mapping) - set(MAPPABLE_FIELDS)
    if unknown:
        raise origin.error(f"column mapping has unknown target(s) {sorted(unknown)}; use {MAPPABLE_FIELDS}")
    resolved = {name: mapping.get(name) or None for name in MAPPABLE_FIELDS}
    for target in ("instruction", "output"):
        if not resolved[target]:
            raise origin.error(f"column mapping must name a column for '{target}'")
    for target, column in resolved.items():
        if column and column not in columns:
            raise origin.error(
                f"column mapping names column '{column}' for {target}, which the file does not have "
                f"(columns: {', '.join(columns) or 'none'})",
            )
    return resolved


def _check_unique_id(row: dict[str, Any], record: _Record, first_seen: dict[int, int]) -> None:
    """A user-supplied ``id`` must not repeat: downstream tools join on it, so a repeat is a broken row.

    Only good rows register their id, so a skipped bad row never makes a later good row a duplicate. ids are
    compared as JSON values (``1`` and ``"1"`` differ). null and an empty string count as "no id": that is
    how Parquet and CSV spell a row that lacks one. Each id is kept as a 16-byte BLAKE2b digest with its row
    number, not as text with its location: a third less memory at a million ids (docs/benchmarks.md), and
    two different ids share a digest with odds of about 1 in 10**26 at that count.
    """
    value = row.get("id")
    if value is None or value == "":
        return
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    key = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest())
    first = first_seen.setdefault(key, record.row_number)
    if first != record.row_number:
        unit = record.location.split(" ", 1)[0]  # "line" or "row": one word per file, as the record's own
        raise RowError("id", f"duplicate id {_preview(value)} (first seen on {unit} {first})")


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _normalise(record: _Record, shape: str, mapping: dict[str, str | None], max_bytes: int) -> Example:
    row = record.value
    if not isinstance(row, dict):
        raise RowError(None, f"expected an object with fields, found {_type_name(row)}")
    messages: list[dict[str, str]] | None = None
    if shape in ("messages", "sharegpt"):
        key, text_key = ("messages", "content") if shape == "messages" else ("conversations", "value")
        messages = _chat_turns(row, shape)
        _check_row_size([(f"{key}[{i}].{text_key}", turn["content"]) for i, turn in enumerate(messages)], max_bytes)
        instruction, output = _first_exchange(messages, key)
        input_text = ""
        content: Any = {"messages": messages}
    else:
        names = [mapping.get("instruction") or "instruction", mapping.get("input"), mapping.get("output") or "output"]
        instruction = _required_text(row, names[0])
        input_text = _optional_text(row, names[1])
        output = _required_text(row, names[2], allow_empty=True)
        _check_row_size([(names[0], instruction), (names[1] or "input", input_text), (names[2], output)], max_bytes)
        content = [instruction, input_text, output]
    return Example(
        row_number=record.row_number,
        location=record.location,
        instruction=instruction,
        input=input_text,
        output=output,
        messages=messages,
        original=row,
        content_hash=_hash(content),
        prompt_hash=_hash([instruction, input_text]),
    )


def _check_row_size(texts: list[tuple[str, str]], max_bytes: int) -> None:
    """Refuse a row whose (field, text) pairs exceed ``max_bytes`` in UTF-8, naming the largest field: the
    likely culprit, e.g. a whole document or several rows run together in one output."""
    if sum(len(text) for _, text in texts) * 4 <= max_bytes:
        return  # UTF-8 spends at most 4 bytes per character: short rows need no encoding
    sizes = [(len(text.encode("utf-8")), name) for name, text in texts]
    total = sum(size for size, _ in sizes)
    if total <= max_bytes:
        return
    largest, name = max(sizes, key=lambda pair: pair[0])
    message = f"is {_size(largest)}"
    if _size(total) != _size(largest):
        message += f" (the row's texts are {_size(total)})"
    limit = f"rows over {_size(max_bytes)} are refused; set CURATE_MAX_ROW_BYTES to raise the limit"
    raise RowError(name, f"{message}; {limit}")


def _size(n_bytes: int) -> str:
    if n_bytes >= 100 * 1024:
        return f"{n_bytes / 1_048_576:.1f} MB"
    return f"{n_bytes / 1024:.1f} KB" if n_bytes >= 1024 else f"{n_bytes} bytes"


def _required_text(row: dict[str, Any], name: str, allow_empty: bool = False) -> str:
    if name not in row:
        raise RowError(name, "missing required field")
    value = row[name]
    if not isinstance(value, str):
        raise RowError(name, f"expected a string, found {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise RowError(name, "is empty")
    return value


def _optional_text(row: dict[str, Any], name: str | None) -> str:
    if not name or row.get(name) is None:
        return ""
    value = row[name]
    if not isinstance(value, str):
        raise RowError(name, f"expected a string, found {_type_name(value)}")
    return value


def _chat_turns(row: dict[str, Any], shape: str) -> list[dict[str, str]]:
    key, role_key, text_key = (
        ("messages", "role", "content") if shape == "messages" else ("conversations", "from", "value")
    )
    turns = row.get(key)
    if key not in row:
        raise RowError(key, "missing required field")
    if isinstance(turns, str):  # CSV cells hold the list as JSON text
        cell = turns
        try:
            turns = json.loads(cell)
        except json.JSONDecodeError as exc:
            problem = _json_problem(exc)
            raise RowError(key, f"expected a list of turns, found a string that is not JSON: {problem}") from None
        if _SURROGATE_ESCAPE.search(cell) and _has_lone_surrogate(turns):  # escapes the file's reader never saw
            raise RowError(key, _SURROGATE_MESSAGE)
    if not isinstance(turns, list) or not turns:
        raise RowError(key, f"expected a non-empty list of turns, found {_type_name(turns)}")
    normalised = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowError(f"{key}[{index}]", f"expected an object, found {_type_name(turn)}")
        role, text = turn.get(role_key), turn.get(text_key)
        if not isinstance(role, str):
            raise RowError(f"{key}[{index}].{role_key}", f"expected a string, found {_type_name(role)}")
        if not isinstance(text, str):
            raise RowError(f"{key}[{index}].{text_key}", f"expected a string, found {_type_name(text)}")
        role = role.lower() if shape == "messages" else _SHAREGPT_ROLES.get(role.lower(), "")
        if role not in ("system", "user", "assistant"):
            raise RowError(f"{key}[{index}].{role_key}", f"unknown role {turn.get(role_key)!r}")
        normalised.append({"role": role, "content": text})
    return normalised


def _first_exchange(messages: list[dict[str, str]], key: str) -> tuple[str, str]:
    roles = [turn["role"] for turn in messages]
    if "user" not in roles:
        raise RowError(key, "no user turn")
    first_user = roles.index("user")
    for turn in messages[first_user + 1 :]:
        if turn["role"] == "assistant":
            return messages[first_user]["content"], turn["content"]
    raise RowError(key, "no assistant turn after the first user turn")


def _hash(content: Any) -> str:
    canonical = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def assign_ids(examples: list[Example]) -> list[Example]:
    """Give each row a stable id: its content hash, with an occurrence suffix for exact duplicates.

    The store gives the rows of a streamed file the same ids in SQL (``core.storage.staging``), so that no
    table of every hash is kept in memory; a unit test holds the two to the same result.
    """
    seen: dict[str, int] = {}
    assigned = []
    for example in examples:
        count = seen.get(example.content_hash, 0) + 1
        seen[example.content_hash] = count
        example_id = example.content_hash[:16] + (f"-{count}" if count > 1 else "")
        assigned.append(replace(example, example_id=example_id))
    return assigned


def embed_text(example_instruction: str, example_input: str, example_output: str, fields: tuple[str, ...]) -> str:
    """The text that is embedded for one example: the chosen fields joined by blank lines, empty ones left out."""
    values = {"instruction": example_instruction, "input": example_input, "output": example_output}
    return "\n\n".join(values[name] for name in fields if values[name].strip())


def columns_of(path: str | Path, max_rows: int = 200) -> list[str]:
    """The field names seen in the first ``max_rows`` rows (for a column-mapping form); [] if unreadable.
    Only the start of the file is read (the whole of a ``.json`` array)."""
    path = Path(path)
    try:
        suffix = _check_file(path)
        with _HashingFile(path) as handle:
            records = _read_records(path, suffix, handle, [])
            columns: list[str] = []
            for _, record in zip(range(max_rows), records, strict=False):
                if isinstance(record.value, dict):
                    columns += [key for key in record.value if key not in columns]
            return columns
    except (OSError, IngestError):
        return []
