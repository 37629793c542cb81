"""Atomic writes: a failed write leaves the old file and no temporary behind; concurrent writers never collide."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core import atomic


def test_text_bytes_and_json_replace_the_file_and_leave_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text("old")
    atomic.write_json(path, {"state": "done", "values": [1, 2]}, indent=1)
    assert json.loads(path.read_text()) == {"state": "done", "values": [1, 2]}
    atomic.write_text(tmp_path / "note.txt", "héllo")
    atomic.write_bytes(tmp_path / "blob.bin", b"\x00\x01")
    assert (tmp_path / "note.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "note.txt", "status.json"]


def test_a_failed_write_leaves_the_old_file_intact_and_no_temporary_behind(tmp_path: Path) -> None:
    path = tmp_path / "chunk.npy"
    np.save(path, np.arange(3))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"), atomic.replacing(path) as scratch:
        scratch.write_bytes(b"half a fi")
        raise RuntimeError("disk full")
    with pytest.raises(TypeError):  # a payload that cannot be serialised fails before anything is written
        atomic.write_json(path, {"not json": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["chunk.npy"]


def test_a_writer_that_needs_a_path_sees_the_file_name_it_writes(tmp_path: Path) -> None:
    """np.save appends .npy to a name without it, torch.save names its archive after the file: the temporary
    keeps the target's name, so both write what they would write to the target itself."""
    path = tmp_path / "features.npy"
    with atomic.replacing(path) as scratch:
        assert scratch.name == "features.npy" and scratch.parent != tmp_path
        np.save(scratch, np.ones(4))
    np.testing.assert_array_equal(np.load(path), np.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["features.npy"]


def test_the_parent_folder_is_not_created(tmp_path: Path) -> None:
    """A job's status written after its folder was deleted must not bring the folder back."""
    with pytest.raises(FileNotFoundError):
        atomic.write_text(tmp_path / "deleted" / "status.json", "{}")
    assert not (tmp_path / "deleted").exists()


def test_threads_writing_one_file_never_collide_and_it_always_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    atomic.write_json(path, {"writer": -1, "payload": "x" * 10_000})
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def write(writer: int) -> None:
        try:
            for _ in range(50):
                atomic.write_json(path, {"writer": writer, "payload": "x" * 10_000})
        except BaseException as exc:  # collected: an exception in a thread would not fail the test
            errors.append(exc)

    def read() -> None:
        while not done.is_set():
            seen.append(json.loads(path.read_text())["writer"])  # a torn file would not parse

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert errors == []
    assert seen and json.loads(path.read_text())["writer"] in range(8)
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


@pytest.mark.subprocess  # only a fresh interpreter shows what an import loads
def test_importing_it_loads_nothing_heavy() -> None:
    code = "import sys, core.atomic; print(sorted({'torch', 'duckdb', 'numpy', 'pandas'} & set(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
