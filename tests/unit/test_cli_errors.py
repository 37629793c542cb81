"""What a user sees when the command line is given a path it cannot use: one ``error:`` line naming the path,
exit status 1, no traceback, and nothing created or overwritten. A closed pipe (``| head``) ends quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from tests.conftest import keyword_rows, write_jsonl

REPO = Path(__file__).resolve().parents[2]


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line of a command that must fail with status 1 and print nothing on stdout."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err.strip()


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_export_onto_a_folder_names_it_and_writes_nothing(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()

    error = _fails(capsys, "export", "--out", str(folder), "--workspace", str(workspace))

    assert error == f"error: {folder} is a folder, not a file; give the path of a .jsonl file to write"
    assert _files(folder) == []


def test_export_below_a_file_names_the_file(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n", encoding="utf-8")

    error = _fails(capsys, "export", "--out", str(notes / "out" / "x.jsonl"), "--workspace", str(workspace))

    assert error == f"error: cannot use {notes / 'out'} as the export's folder: {notes} is a file, not a folder"
    assert notes.read_text(encoding="utf-8") == "keep me\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_export_into_a_read_only_folder_says_so(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        error = _fails(capsys, "export", "--out", str(locked / "x.jsonl"), "--workspace", str(workspace))
    finally:
        locked.chmod(0o755)

    assert error == f"error: cannot use {locked} as the export's folder: no permission to write in {locked}"
    assert _files(locked) == []


def test_export_creates_a_missing_folder(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "sub" / "x.jsonl"

    assert main(["export", "--out", str(out), "--workspace", str(workspace)]) == 0

    assert capsys.readouterr().out == f"wrote 24 rows to {out} (manifest: {out.with_name('x.manifest.json')})\n"
    assert _files(tmp_path / "new") == ["sub", "sub/x.jsonl", "sub/x.manifest.json"]


def test_export_refuses_to_overwrite_both_files_without_force(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, manifest = tmp_path / "x.jsonl", tmp_path / "x.manifest.json"
    out.write_text("old rows\n", encoding="utf-8")
    manifest.write_text("{}\n", encoding="utf-8")

    error = _fails(capsys, "export", "--out", str(out), "--workspace", str(workspace))

    assert error == f"error: {out} and {manifest} already exist; pass --force to overwrite"
    assert (out.read_text(encoding="utf-8"), manifest.read_text(encoding="utf-8")) == ("old rows\n", "{}\n")


def test_export_names_the_manifest_when_only_it_exists(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, manifest = tmp_path / "x.jsonl", tmp_path / "x.manifest.json"
    manifest.write_text("{}\n", encoding="utf-8")

    error = _fails(capsys, "export", "--out", str(out), "--workspace", str(workspace))

    assert error == f"error: {manifest} already exists; pass --force to overwrite"
    assert not out.exists()
    assert manifest.read_text(encoding="utf-8") == "{}\n"


def test_export_with_force_overwrites_both_files(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, manifest = tmp_path / "x.jsonl", tmp_path / "x.manifest.json"
    out.write_text("old rows\n", encoding="utf-8")
    manifest.write_text("{}\n", encoding="utf-8")

    assert main(["export", "--out", str(out), "--force", "--workspace", str(workspace)]) == 0

    assert len(out.read_text(encoding="utf-8").splitlines()) == 24
    assert json.loads(manifest.read_text(encoding="utf-8"))["output"]["rows"] == 24


@pytest.mark.parametrize("command", ["datasets", "prepare"])
def test_a_workspace_that_is_a_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n", encoding="utf-8")
    source = write_jsonl(tmp_path / "tiny.jsonl", keyword_rows())
    argv = ["prepare", str(source), "--embedder", "keyword-test"] if command == "prepare" else [command]

    error = _fails(capsys, *argv, "--workspace", str(notes))

    assert error == f"error: cannot use {notes} as the workspace: it is a file, not a folder"
    assert notes.read_text(encoding="utf-8") == "keep me\n"


def test_prepare_into_a_workspace_below_a_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n", encoding="utf-8")
    source = write_jsonl(tmp_path / "tiny.jsonl", keyword_rows())

    error = _fails(capsys, "prepare", str(source), "--embedder", "keyword-test", "--workspace", str(notes / "ws"))

    assert error == f"error: cannot use {notes / 'ws'} as the workspace: {notes} is a file, not a folder"
    assert notes.read_text(encoding="utf-8") == "keep me\n"


def test_prepare_on_a_folder_without_a_dataset_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()

    error = _fails(capsys, "prepare", str(folder), "--workspace", str(tmp_path / "ws"))

    # a folder is read as a Hugging Face dataset (save_to_disk, or Parquet shards): this one holds neither
    assert error == (
        f"error: path: {folder} holds no dataset: give a .jsonl, .json, .csv or .parquet file, a folder written "
        "by save_to_disk, or a folder of data files such as data/train-00000-of-00001.parquet"
    )
    assert not (tmp_path / "ws").exists()


def test_prepare_of_a_missing_file_creates_no_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = _fails(capsys, "prepare", str(tmp_path / "nowhere.jsonl"), "--workspace", str(tmp_path / "ws"))

    assert error == f"error: path: no file at {tmp_path / 'nowhere.jsonl'}"
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["datasets"],
        ["clusters"],
        ["history"],
        ["selections"],
        ["runs"],
        ["scores"],
        ["veto", "--cluster", "0"],
        ["veto", "--search", "lorem"],
        ["undo"],
        ["revert", "--to", "1"],
        ["export", "--out", "x.jsonl"],
    ],
)
def test_commands_on_a_missing_workspace_say_so_and_create_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = tmp_path / "nowhere"

    error = _fails(capsys, *argv, "--workspace", str(missing))

    assert error == f"error: no workspace at {missing}: run `python -m core prepare FILE` first"
    assert _files(tmp_path) == []


def test_a_folder_without_a_workspace_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = _fails(capsys, "datasets", "--workspace", str(tmp_path))

    assert error == f"error: no workspace at {tmp_path}: run `python -m core prepare FILE` first"
    assert _files(tmp_path) == []


def _into_closed_pipe(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout a pipe whose reader has already gone, as `| head` leaves it: every write fails."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "core", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.mark.subprocess
@pytest.mark.parametrize("argv", [["history"], ["datasets", "--json"]], ids=["history", "datasets-json"])
def test_a_closed_pipe_ends_quietly(workspace: Path, argv: list[str]) -> None:
    main(["veto", "--cluster", "0", "--workspace", str(workspace)])  # a history to print

    result = _into_closed_pipe(*argv, "--workspace", str(workspace))

    assert (result.returncode, result.stderr) == (141, "")
