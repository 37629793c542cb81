"""Ingest in batches and chunks: a file read in many small pieces stores the same rows and reports the same
errors as one read whole; an error in the last batch stores nothing; the file's hash is the file's SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import core.ingest
from core.errors import IngestError
from core.ingest import DatasetStream, read_dataset
from core.prepare import PrepareOptions, prepare
from core.progress import Progress, count_text
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl
from tests.unit.conftest import store_snapshot
from tests.unit.test_ingest_errors import BAD_INPUTS, WIDE_ROWS

OPTIONS = {"embedder": KEYWORD_EMBEDDER, "k_grid": (2,)}


def _stored_examples(workspace: Path, name: str) -> list[tuple[object, ...]]:
    """Every stored column of a dataset's examples but the dataset id, in row order."""
    store = Store(workspace)
    dataset_id = ds.get_dataset(store, name).dataset_id
    with store.read() as con:
        return con.execute(
            "SELECT * EXCLUDE (dataset_id) FROM examples WHERE dataset_id = ? ORDER BY row_idx", [dataset_id]
        ).fetchall()


def _rows_with_repeats() -> list[dict[str, object]]:
    """keyword_rows with exact duplicates (ids get -2, -3) and a chat-less extra field, 11 rows."""
    rows: list[dict[str, object]] = [dict(row, source="kw") for row in keyword_rows(per_topic=2)]
    return [*rows, rows[0], rows[3], rows[0]]


def test_a_file_read_in_many_batches_stores_the_rows_of_one_batch(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", _rows_with_repeats())

    prepare(Store(tmp_path / "one"), path, PrepareOptions(name="rows", **OPTIONS))
    prepare(Store(tmp_path / "many"), path, PrepareOptions(name="rows", **OPTIONS), batch_rows=2)

    one, many = _stored_examples(tmp_path / "one", "rows"), _stored_examples(tmp_path / "many", "rows")
    assert len(one) == 11
    assert many == one
    ids = [row[1] for row in many]
    assert ids == [e.example_id for e in read_dataset(path).examples]  # the store's ids are read_dataset's
    assert ids[8] == ids[0] + "-2" and ids[10] == ids[0] + "-3" and ids[9] == ids[3] + "-2"


def test_an_error_in_the_last_batch_stores_nothing(workspace: Path, tmp_path: Path) -> None:
    lines = [json.dumps(row) for row in keyword_rows(per_topic=2)] + ['{"instruction": "no output"}']
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = store_snapshot(workspace)

    with pytest.raises(IngestError, match=r"late\.jsonl, line 9, field 'output': missing required field"):
        prepare(Store(workspace), path, PrepareOptions(name="late", **OPTIONS), batch_rows=2)

    assert store_snapshot(workspace) == before
    assert not list(workspace.glob(".staging-*"))  # the staged batches were dropped


def test_skip_bad_rows_reports_every_bad_row_of_every_batch(workspace: Path, tmp_path: Path) -> None:
    lines = [json.dumps(row) for row in keyword_rows(per_topic=3)]  # 12 good rows
    lines.insert(1, "{oops")  # line 2
    lines.insert(6, json.dumps({"instruction": 3, "output": "x"}))  # line 7
    lines.append(json.dumps({"instruction": "last", "output": None}))  # line 15
    path = tmp_path / "holes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = prepare(Store(workspace), path, PrepareOptions(name="holes", skip_bad_rows=True, **OPTIONS), batch_rows=4)

    assert (report.n_rows, report.n_skipped) == (12, 3)
    assert report.skipped[0].startswith("line 2: malformed JSON")
    assert report.skipped[1:] == [
        "line 7, field 'instruction': expected a string, found a number",
        "line 15, field 'output': expected a string, found null",
    ]
    assert [row[2] for row in _stored_examples(workspace, "holes")] == [
        f"line {n}" for n in (1, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14)
    ]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    """``rows`` in the format of ``path``'s suffix."""
    if path.suffix == ".jsonl":
        return write_jsonl(path, rows)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000, compression="none", use_dictionary=False)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_the_file_hash_is_the_sha256_of_the_whole_file(tmp_path: Path, suffix: str) -> None:
    rows = [{"instruction": f"Row {i} " + "é" * (i % 50), "input": "", "output": "x" * 300} for i in range(6000)]
    path = _write(tmp_path / f"big{suffix}", rows)
    assert path.stat().st_size > 2 * (1 << 20)  # several of the reader's 1 MiB chunks

    result = read_dataset(path)

    assert result.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [e.instruction for e in result.examples] == [row["instruction"] for row in rows]


def test_the_stored_file_hash_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", keyword_rows(per_topic=2))

    prepare(Store(tmp_path / "ws"), path, PrepareOptions(name="rows", **OPTIONS), batch_rows=3)

    assert ds.get_dataset(Store(tmp_path / "ws"), "rows").file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_tiny_read_chunks_give_the_rows_and_errors_of_one_chunk(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunk edges fall inside multi-byte characters, \\r\\n pairs, quoted CSV line breaks and UTF-16 pairs."""
    monkeypatch.delenv("CURATE_MAX_ROW_BYTES", raising=False)
    files = {name: (file_name, content) for name, (file_name, content, _, _) in BAD_INPUTS.items()}
    files["csv_quoted_breaks"] = ("q.csv", b'instruction,output\r\n"two\r\nlines",ok\r\n"a\rb","c\nd"\r\n')
    files["wide_jsonl"] = (
        "w.jsonl",
        "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in WIDE_ROWS).encode("utf-16"),
    )
    files["wide_csv_be"] = ("w.csv", ("instruction,input,output\r\n" + "Bake,,Knead 😀\r\n").encode("utf-16-be"))
    files["latin1_csv"] = ("l.csv", b"instruction,output\nok,fine\nok,fine\ncaf\xe9,coffee\n")
    files["utf8_bom_csv"] = ("b.csv", b"\xef\xbb\xbfinstruction,output\nOl\xc3\xa9,ok\n")

    def outcome(path: Path) -> object:
        try:
            result = read_dataset(path)
        except IngestError as exc:
            return str(exc)
        return [(e.location, e.original, e.example_id) for e in result.examples], result.file_sha256

    for name, (file_name, content) in files.items():
        path = tmp_path / name / file_name
        path.parent.mkdir()
        path.write_bytes(content)
        whole = outcome(path)
        with monkeypatch.context() as patch:
            patch.setattr(core.ingest, "_CHUNK_BYTES", chunk)
            patch.setattr(core.ingest, "_WIDE_SAMPLE", 4)  # else the first 4 KiB are gathered into one piece
            assert outcome(path) == whole, name


def test_batches_are_bounded_and_the_summary_waits_for_the_last(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", keyword_rows(per_topic=2))
    stream = DatasetStream(path, batch_rows=3)

    with pytest.raises(RuntimeError, match="needs every batch read first"):
        stream.summary()
    sizes = [len(batch) for batch in stream.batches()]

    assert sizes == [3, 3, 2]
    assert (stream.summary().n_rows, stream.summary().shape) == (8, "alpaca")


def test_a_cancel_during_the_read_stops_it_between_batches_and_stores_nothing(workspace: Path, tmp_path: Path) -> None:
    from core.progress import Cancelled, Progress

    path = write_jsonl(tmp_path / "long.jsonl", keyword_rows(per_topic=2))
    asked = iter([False, False, True])  # the start of the ingest, after batch 1, after batch 2: stop
    before = store_snapshot(workspace)

    with pytest.raises(Cancelled, match="cancelled during ingest"):
        prepare(
            Store(workspace),
            path,
            PrepareOptions(name="long", **OPTIONS),
            Progress(should_stop=lambda: next(asked, True)),
            batch_rows=2,
        )

    assert store_snapshot(workspace) == before
    assert not list(workspace.glob(".staging-*"))


class _Recorder(Progress):
    """Every (stage, done, total) shown."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[str, int, int]] = []

    def update(self) -> None:
        self.shown.append((self.stage, self.done, self.total))


def test_ingest_progress_counts_bytes_read_and_reaches_the_file_size(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 400 rows: the first 200 are read before any batch, to tell the file's shape
    path = write_jsonl(tmp_path / "rows.jsonl", keyword_rows(per_topic=100))
    monkeypatch.setattr(core.ingest, "_CHUNK_BYTES", 1000)  # several reads per batch, as 1 MiB reads of 1 GB
    progress = _Recorder()

    prepare(Store(workspace), path, PrepareOptions(name="rows", **OPTIONS), progress, batch_rows=20)

    ingest = [(done, total) for stage, done, total in progress.shown if stage == "ingest"]
    size = path.stat().st_size
    assert {total for _, total in ingest} == {size}
    dones = [done for done, _ in ingest]
    assert dones == sorted(dones) and dones[-1] == size
    assert len({done for done in dones if 0 < done < size}) >= 3  # a percentage shown while the file is read


def test_a_byte_count_is_shown_scaled_and_other_counts_as_they_are() -> None:
    assert count_text("ingest", 12_345_678, 970_000_000) == "12.3/970.0 MB"
    assert count_text("ingest", 1_500_000_000, 2_000_000_000) == "1.5/2.0 GB"
    assert count_text("ingest", 10, 300) == "10/300 B"
    assert count_text("embed", 3, 10) == "3/10"


def _dead_pid() -> int:
    """A process id no process has: one above the kernel's largest."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    except OSError:
        return 2**22 + 1


def test_the_next_prepare_removes_a_killed_writers_staging_file_and_keeps_a_live_ones(
    workspace: Path, tmp_path: Path
) -> None:
    killed = workspace / f".staging-{_dead_pid()}-abc123.parquet"  # left by a kill -9 during an ingest
    running = workspace / f".staging-{os.getppid()}-def456.parquet"  # another process, ingesting now
    unnamed = workspace / ".staging-ghi789.parquet"  # named before names carried a pid: its writer is unknown
    for staged in (killed, running, unnamed):
        staged.write_bytes(b"PAR1 partly written")
    path = write_jsonl(tmp_path / "rows.jsonl", keyword_rows(per_topic=2))

    prepare(Store(workspace), path, PrepareOptions(name="rows", **OPTIONS))

    assert not killed.exists()
    assert running.read_bytes() == b"PAR1 partly written"
    assert unnamed.exists()
    assert sorted(p.name for p in workspace.glob(".staging-*")) == sorted([running.name, unnamed.name])
