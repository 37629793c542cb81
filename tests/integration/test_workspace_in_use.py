"""A workspace held by another process: every entry point says who holds it instead of a lock trace.

Processes share a workspace by taking turns (one short transaction each under ``<workspace>/.lock``); a
process that cannot get its turn within ``CURATE_LOCK_TIMEOUT`` names the holder. A program that opens the
DuckDB file without our lock (a DuckDB shell) is named too. A second app server on the workspace is not
refused (it works alongside), but the pages say that the workspace is also open there.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.cli import main
from core.errors import WorkspaceBusy
from core.storage import curation, presence
from core.storage import datasets as ds
from core.storage.database import DB_FILENAME, Store

HOLD_LOCK = """
import fcntl, os, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
handle.truncate(0); handle.write(f"{os.getpid()}\\n"); handle.flush()
print("held", flush=True)
time.sleep(120)
"""

HOLD_DUCKDB = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


@contextmanager
def holding(script: str, target: Path, *argv: str) -> Iterator[subprocess.Popen]:
    """Run ``script`` in another process until it prints "held"; kill it at the end."""
    holder = subprocess.Popen([sys.executable, "-c", script, str(target), *argv], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_held_workspace_names_its_holder_and_changes_nothing(workspace: Path, monkeypatch) -> None:
    store = Store(workspace)
    dataset = ds.list_datasets(store)[0]
    version = store.data_version()
    monkeypatch.setenv("CURATE_LOCK_TIMEOUT", "0.5")
    with holding(HOLD_LOCK, store.lock_path) as holder:
        started = time.monotonic()
        with pytest.raises(WorkspaceBusy) as caught:
            curation.set_cluster_veto(store, dataset.dataset_id, dataset.active_k, 0, True)
        waited = time.monotonic() - started
    message = str(caught.value)
    assert f"is in use: process {holder.pid} (" in message and "-c" in message
    assert "CURATE_LOCK_TIMEOUT" in message
    assert 0.5 <= waited < 10
    assert store.data_version() == version
    assert not curation.clusters(store, dataset.dataset_id, dataset.active_k).vetoed.any()


def test_the_cli_prints_one_line_naming_the_holder(workspace: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CURATE_LOCK_TIMEOUT", "0.5")
    with holding(HOLD_LOCK, workspace / ".lock") as holder:
        code = main(["veto", "--workspace", str(workspace), "--cluster", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: The workspace") and f"process {holder.pid}" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_foreign_duckdb_holder_is_named(workspace: Path) -> None:
    with holding(HOLD_DUCKDB, workspace / DB_FILENAME) as holder, pytest.raises(WorkspaceBusy) as caught:
        Store(workspace)
    message = str(caught.value)
    assert f"in use by process {holder.pid}" in message and "does not use this app's workspace lock" in message


def test_after_the_holder_ends_the_workspace_works_again(workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_LOCK_TIMEOUT", "0.5")
    with holding(HOLD_LOCK, workspace / ".lock"):
        pass
    store = Store(workspace)
    dataset = ds.list_datasets(store)[0]
    curation.set_cluster_veto(store, dataset.dataset_id, dataset.active_k, 0, True)
    assert curation.clusters(store, dataset.dataset_id, dataset.active_k).vetoed.iloc[0]


def test_other_app_servers_are_listed_and_dead_ones_forgotten(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", "import time; print('held', flush=True); time.sleep(120)", "streamlit"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "held"  # its command line is set
        folder = tmp_path / "apps"
        folder.mkdir()
        (folder / f"{server.pid}.json").write_text(
            f'{{"pid": {server.pid}, "url": "http://localhost:8502", "started_at": "now"}}'
        )
        (folder / "999999999.json").write_text('{"pid": 999999999, "url": "http://localhost:8503", "started_at": "x"}')
        presence.register_app(tmp_path, "http://localhost:8501")  # this process: never listed as "other"
        others = presence.other_apps(tmp_path)
    finally:
        server.kill()
        server.wait()
    assert [(app.pid, app.url) for app in others] == [(server.pid, "http://localhost:8502")]
    assert not (folder / "999999999.json").exists()
    assert presence.other_apps(tmp_path) == []  # and once it ends, it is forgotten
