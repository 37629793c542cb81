"""A dataset's rows on their way into the store: appended batch by batch to a temporary Parquet file in the
workspace while the file is read, then copied into ``examples`` in one short transaction.

Two simpler ways were refused. Holding every row in memory until the file is known to be good makes memory
grow with the file (about five times its size). Writing each batch in its own transaction would store part
of a file whose last row is bad, and one transaction held open for the whole read would block every other
writer of the workspace (a curator's veto, a job's results) for as long as the read takes. The staging
file costs neither: it is written outside the workspace lock, dropped when a bad row turns up, and read
back by DuckDB inside the transaction that inserts the dataset (:func:`core.storage.datasets.insert_dataset`).

A staging file's name carries its writer's process id. A writer killed outright (``kill -9``, the machine's
memory running out) cannot remove its file, so each new staging file first removes those whose writer is no
longer running (:func:`remove_stale`); a live writer's file is never touched.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.processes import process_alive

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.ingest import Example

# The columns of ``examples`` a batch carries: all but the dataset id and the example id, which the insert
# fills in (an example id's occurrence suffix needs every row's content hash).
_TEXT_COLUMNS = (
    "location",
    "instruction",
    "input",
    "output",
    "messages",
    "original",
    "content_hash",
    "prompt_hash",
    "text_hash",
)

_PREFIX = ".staging-"
_WRITER_PID = re.compile(r"^\.staging-(\d+)-")  # the pid written into the name by ExampleStaging


class ExampleStaging:
    """A temporary Parquet file of examples, in row order; removed when the ``with`` block ends."""

    def __init__(self, folder: Path):
        remove_stale(folder)
        handle, name = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", suffix=".parquet", dir=folder)
        os.close(handle)
        self.path = Path(name)
        self.n_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._closed = False

    def __enter__(self) -> ExampleStaging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def add(self, examples: Sequence[Example], text_hashes: Sequence[str]) -> None:
        """Append a batch of examples and their embedded-text hashes, numbering them after those before."""
        import pyarrow.parquet as pq

        table = _batch_table(examples, text_hashes, first_row=self.n_rows)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)
        self.n_rows += len(examples)

    def close(self) -> None:
        """Finish the file so DuckDB can read it (an empty one holds no rows but the columns)."""
        if self._closed:
            return
        if self._writer is None:
            self._writer = _empty_writer(self.path)
        self._writer.close()
        self._closed = True


def remove_stale(folder: Path) -> list[Path]:
    """Remove the staging files in ``folder`` whose writing process is gone, and return them.

    A file whose name carries no pid (written before names carried one) is kept: its writer cannot be told.
    """
    removed = []
    for path in folder.glob(f"{_PREFIX}*.parquet"):
        found = _WRITER_PID.match(path.name)
        if found is None or process_alive(int(found.group(1))):
            continue
        path.unlink(missing_ok=True)  # missing: another process removed it first
        removed.append(path)
    return removed


def _batch_table(examples: Sequence[Example], text_hashes: Sequence[str], *, first_row: int) -> pa.Table:
    import pyarrow as pa

    if len(text_hashes) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(text_hashes)} text hashes")
    columns: dict[str, list[Any]] = {
        "location": [e.location for e in examples],
        "instruction": [e.instruction for e in examples],
        "input": [e.input for e in examples],
        "output": [e.output for e in examples],
        "messages": [json.dumps(e.messages, ensure_ascii=False) if e.messages else None for e in examples],
        "original": [json.dumps(e.original, ensure_ascii=False, default=str) for e in examples],
        "content_hash": [e.content_hash for e in examples],
        "prompt_hash": [e.prompt_hash for e in examples],
        "text_hash": list(text_hashes),
    }
    rows = pa.array(range(first_row, first_row + len(examples)), pa.int32())
    return pa.table({"row_idx": rows, **{name: pa.array(columns[name], pa.string()) for name in _TEXT_COLUMNS}})


def _empty_writer(path: Path) -> pq.ParquetWriter:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("row_idx", pa.int32()), *((name, pa.string()) for name in _TEXT_COLUMNS)])
    return pq.ParquetWriter(path, schema)
