"""A stage's Parquet shards on a file system every node can reach: ``in/`` shards written by the workspace's
owner, ``out/`` shards written by the workers (one per input shard, by the same name), and ``workers/``
records (each actor's process, host and model load time).

A local folder, NFS or any URI pyarrow reads (``s3://bucket/prefix``) serves. An output shard is written under
a temporary name and moved into place, so a shard that is there is whole; after the owner merged a shard it
deletes both halves, so what is left after a killed run is exactly the work not yet merged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

SHARD_DIGITS = 6


def shard_name(number: int) -> str:
    """A shard's file name (without ``.parquet``): its number, zero-padded so names sort as numbers."""
    return str(number).zfill(SHARD_DIGITS)


@dataclasses.dataclass(frozen=True)
class ShardFolder:
    """The shards of one stage configuration under ``uri`` (a local path or a pyarrow file-system URI)."""

    uri: str

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        import pyarrow.fs as pafs

        if "://" in self.uri:
            return pafs.FileSystem.from_uri(self.uri)
        return pafs.LocalFileSystem(), os.path.abspath(self.uri)

    def path(self, part: str, shard: str = "") -> str:
        base = self._fs()[1].rstrip("/")
        return f"{base}/{part}/{shard}.parquet" if shard else f"{base}/{part}"

    def prepare(self) -> None:
        """Create the folders (a no-op on object stores, where folders are prefixes)."""
        fs, _ = self._fs()
        for part in ("in", "out", "workers"):
            fs.create_dir(self.path(part), recursive=True)

    def names(self, part: str) -> list[str]:
        """The shard names in ``in`` or ``out``, sorted; temporary files are left out."""
        import pyarrow.fs as pafs

        fs, _ = self._fs()
        try:
            infos = fs.get_file_info(pafs.FileSelector(self.path(part), allow_not_found=True))
        except FileNotFoundError:
            return []
        names = [info.base_name[: -len(".parquet")] for info in infos if info.base_name.endswith(".parquet")]
        return sorted(name for name in names if not name.startswith("."))

    def next_number(self) -> int:
        """The number after every input shard there (shards keep their order across reruns)."""
        taken = [int(name) for name in self.names("in") if name.isdigit()]
        return max(taken, default=-1) + 1

    def write(self, part: str, shard: str, table: pa.Table) -> None:
        """Write one shard whole: under a temporary name first, then moved into place."""
        import pyarrow.parquet as pq

        fs, _ = self._fs()
        temporary = self.path(part, f".{shard}-{uuid.uuid4().hex[:8]}")
        pq.write_table(table, temporary, filesystem=fs)
        fs.move(temporary, self.path(part, shard))

    def read(self, part: str, shard: str, columns: list[str] | None = None) -> pa.Table:
        import pyarrow.parquet as pq

        fs, _ = self._fs()
        return pq.read_table(self.path(part, shard), columns=columns, filesystem=fs)

    def size(self, part: str, shard: str) -> int:
        """The shard's size in bytes (its texts', near enough, to order the work by)."""
        fs, _ = self._fs()
        return int(fs.get_file_info(self.path(part, shard)).size or 0)

    def exists(self, part: str, shard: str) -> bool:
        import pyarrow.fs as pafs

        fs, _ = self._fs()
        return bool(fs.get_file_info(self.path(part, shard)).type == pafs.FileType.File)

    def delete(self, shard: str) -> None:
        """Remove both halves of a merged shard."""
        fs, _ = self._fs()
        for part in ("out", "in"):
            if self.exists(part, shard):
                fs.delete_file(self.path(part, shard))

    def record_worker(self, record: dict[str, Any]) -> None:
        """Note one actor (its host, process and model load seconds) for the report."""
        fs, _ = self._fs()
        name = f"{socket.gethostname()}-{os.getpid()}.json"
        with fs.open_output_stream(f"{self.path('workers')}/{name}") as stream:
            stream.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), **record}).encode())

    def workers(self) -> list[dict[str, Any]]:
        """The actors' records (see :meth:`record_worker`)."""
        import pyarrow.fs as pafs

        fs, _ = self._fs()
        infos = fs.get_file_info(pafs.FileSelector(self.path("workers"), allow_not_found=True))
        records = []
        for info in infos:
            if info.base_name.endswith(".json"):
                with fs.open_input_stream(info.path) as stream:
                    records.append(json.loads(stream.read().decode()))
        return records

    def clear_workers(self) -> None:
        fs, _ = self._fs()
        fs.delete_dir_contents(self.path("workers"), missing_dir_ok=True)
