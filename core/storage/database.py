"""The workspace database: one DuckDB file, opened only for the length of one transaction.

DuckDB lets one process at a time open a database file for writing (and no other process may even read
it meanwhile). Rather than making one process the owner and routing every other process's work through
it, every process (the app, each CLI call, each background job) opens the file for one short transaction
at a time, under an exclusive lock on ``<workspace>/.lock``; long computations (embedding, k-means, UMAP,
scoring) happen outside the lock. So a curator can veto while a job runs, the CLI works while the app is
open, and nobody ever sees DuckDB's lock error: a process that finds the workspace busy waits its turn.
Every write bumps a data version, mirrored to a small file so caches can be keyed on it without opening
the database. The version is also split by what changed: the curator's decisions (vetoes, weights) and
everything else (examples, embeddings, clusterings, maps, scores, selections: data derived from the
dataset), so a veto invalidates only the caches that read decisions, not the map, clusters and texts.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from core import atomic, config
from core.errors import WorkspaceBusy
from core.storage.schema import SCHEMA_STATEMENTS, SCHEMA_VERSION

if TYPE_CHECKING:
    import duckdb

DB_FILENAME = "curate.duckdb"

Bump = Literal["all", "clusters", "decisions", "none"]
"""What a write changed: ``"decisions"`` only the curator's decisions (cluster and example vetoes, cluster
weights, their history), ``"clusters"`` a cluster edit (which rows form which cluster, their labels, and the
history of the edit: derived data and decisions, but not the dataset's texts, scores or index), ``"all"``
anything (the safe default), ``"none"`` nothing a page shows."""

_VERSION_KEYS = ("data_version", "decisions_version", "derived_version", "content_version")
# the counters each kind of write moves (besides data_version, which every write moves)
_MOVES: dict[str, frozenset[str]] = {
    "all": frozenset({"decisions_version", "derived_version", "content_version"}),
    "clusters": frozenset({"decisions_version", "derived_version"}),
    "decisions": frozenset({"decisions_version"}),
    "none": frozenset(),
}


class DataVersions(NamedTuple):
    """The store's write counters: every write, decision writes, writes of anything else (derived data), and
    of the part of that which a cluster edit leaves alone (``content``: the examples, their scores, their
    index); a cache of scores is keyed on ``content`` so that a merge or a split does not recompute it."""

    total: int
    decisions: int
    derived: int
    content: int


class Store:
    """Handle to a workspace folder. Cheap to create; opens the database only inside :meth:`read`/:meth:`write`."""

    def __init__(self, workspace: str | Path):
        self.workspace = Path(workspace).resolve()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.db_path = self.workspace / DB_FILENAME
        self.lock_path = self.workspace / ".lock"
        self.version_path = self.workspace / "data_version"
        self.versions_path = self.workspace / "data_versions"
        self._local = threading.local()
        self._thread_lock = threading.RLock()
        with self.write(bump="none") as con:  # opening a workspace is not a data change: caches stay valid
            self._migrate(con)

    def __repr__(self) -> str:
        return f"Store({str(self.workspace)!r})"

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for reading; nested calls in the same thread reuse the open one."""
        with self._connection() as con:
            yield con

    @contextmanager
    def write(self, bump: Bump | bool = "all") -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction: committed (and the data versions bumped) on success, else rolled back.

        ``bump`` says what the write changes (:data:`Bump`; ``True`` is ``"all"``, ``False`` is ``"none"``). A
        write nested in another takes the outer one's bump widened to cover its own, so a decision write inside
        a derived one, or the reverse, still bumps every version either touched.
        """
        kind: Bump = "all" if bump is True else "none" if bump is False else bump
        outer = getattr(self._local, "in_write", False)
        with self._connection() as con:
            if outer:
                self._local.bump = _widen(self._local.bump, kind)
                yield con
                return
            self._local.in_write = True
            self._local.bump = kind
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                version = self._bump_version(con, self._local.bump) if self._local.bump != "none" else None
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                self._local.in_write = False
            if version is not None:  # still under the lock, so two writers cannot mirror out of order
                self._mirror_version(version)

    def data_version(self) -> int:
        """The number of committed writes so far; read from a file, so it never waits for the lock."""
        try:
            return int(self.version_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def versions(self) -> DataVersions:
        """Every write, decision writes and derived-data writes so far; read from a file, never waiting for the lock.

        A cache keyed on ``decisions`` (and ``derived``) stays valid until a decision (or derived) write.
        """
        total = self.data_version()
        try:
            versions = DataVersions(*(int(part) for part in self.versions_path.read_text().split()))
        except (FileNotFoundError, ValueError, TypeError):
            versions = None
        if versions is None or versions.total != total:
            # no split mirrored for this total (a workspace written before the split, or by an older app): the
            # total stands in for each, which changes on every write, so nothing is ever served stale
            return DataVersions(total, total, total, total)
        return versions

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        existing = getattr(self._local, "con", None)
        if existing is not None:
            yield existing
            return
        with self._thread_lock, _workspace_lock(self.lock_path, config.lock_timeout_seconds()):
            con = _open(self.db_path)
            self._local.con = con
            try:
                yield con
            finally:
                self._local.con = None
                con.close()

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        for statement in SCHEMA_STATEMENTS:
            con.execute(statement)
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('data_version', '0')", [str(SCHEMA_VERSION)])
        elif int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.db_path} was written by a newer version of the app (schema {row[0]} > {SCHEMA_VERSION})"
            )
        elif int(row[0]) < SCHEMA_VERSION:  # the statements above added the new tables; older apps must now refuse
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
        for key in _VERSION_KEYS[1:]:  # a workspace from before the split starts both counters at its total
            con.execute(
                "INSERT INTO meta SELECT ?, value FROM meta WHERE key = 'data_version' ON CONFLICT (key) DO NOTHING",
                [key],
            )

    @staticmethod
    def _bump_version(con: duckdb.DuckDBPyConnection, kind: Bump) -> DataVersions:
        keys = ["data_version", *sorted(_MOVES[kind])]
        con.execute(
            "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) WHERE list_contains(?, key)", [keys]
        )
        rows = dict(
            con.execute("SELECT key, value FROM meta WHERE list_contains(?, key)", [list(_VERSION_KEYS)]).fetchall()
        )
        return DataVersions(*(int(rows[key]) for key in _VERSION_KEYS))

    def _mirror_version(self, versions: DataVersions) -> None:
        atomic.write_text(self.versions_path, " ".join(str(value) for value in versions))
        # written last: a reader that sees the new total and the old split only re-reads a cache once more
        atomic.write_text(self.version_path, str(versions.total))


def _widen(current: Bump, extra: Bump) -> Bump:
    """The narrowest bump moving every counter either moves ("decisions" within "clusters" within "all")."""
    both = _MOVES[current] | _MOVES[extra]
    return next(kind for kind in ("none", "decisions", "clusters", "all") if _MOVES[kind] >= both)


def drop_temp(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Drop a write's scratch table on the way out. After a failed statement the transaction is aborted and
    every statement fails, this one too, hiding the error that matters; the rollback then drops the table."""
    import duckdb

    with suppress(duckdb.TransactionException):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def one_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a query that always gives exactly one (an aggregate, a sequence's ``nextval``, a meta key the
    schema creates); a RuntimeError if it gave none, which only a damaged database could cause."""
    row = result.fetchone()
    if row is None:
        raise RuntimeError("the workspace database returned no row where one always exists; is the file damaged?")
    return row


def _open(db_path: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    try:
        return duckdb.connect(str(db_path))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            holder = re.search(r"PID (\d+)", str(exc))
            who = f"process {holder.group(1)} ({_command(int(holder.group(1)))})" if holder else "another program"
            raise WorkspaceBusy(
                f"The workspace database {db_path} is in use by {who}, which does not use this app's workspace "
                "lock (for example a DuckDB shell). Close it and try again."
            ) from None
        raise


@contextmanager
def _workspace_lock(lock_path: Path, timeout: float) -> Iterator[None]:
    """Exclusive advisory lock on the workspace; waits up to ``timeout`` seconds, then raises WorkspaceBusy.

    The holder writes its PID and command line into the lock file, so a process that gives up can say who
    holds the workspace.
    """
    handle = open(lock_path, "a+")  # noqa: SIM115 - closed in finally, lifetime spans the yield
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceBusy(
                        f"The workspace {lock_path.parent} is in use: {_holder(lock_path)} has been writing to it "
                        f"for over {timeout:g} s. Wait for it to finish, or stop it, and try again "
                        "(CURATE_LOCK_TIMEOUT sets how long to wait)."
                    ) from None
                time.sleep(0.02)
        try:
            handle.truncate(0)  # "a+" appends, so after truncating the record starts at offset 0
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _holder(lock_path: Path) -> str:
    """Who holds the workspace lock, as recorded in the lock file: "process PID (command)"."""
    try:
        pid = int(lock_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    return f"process {pid} ({_command(pid)})"


def _command(pid: int) -> str:
    """The command line of a process, shortened; "unknown command" when /proc does not tell."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "unknown command"
    text = " ".join(" ".join(word.decode(errors="replace").split()) for word in words if word)  # one line
    return (text[:120] + "...") if len(text) > 120 else text or "unknown command"
