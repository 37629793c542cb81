"""User-given paths stay inside the folder the app chose: export paths typed in a page, uploaded file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.safe_paths import resolve_inside, upload_path


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("../x.jsonl", "would leave the folder"),
        ("sub/../../x.jsonl", "would leave the folder"),
        ("/tmp/x.jsonl", "is an absolute path"),
        ("/etc/passwd", "is an absolute path"),
        ("  ", "give a file name"),
        ("x\x00.jsonl", "contains a NUL character"),
    ],
)
def test_resolve_inside_rejects_paths_that_leave_the_folder(tmp_path: Path, relative: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_inside(tmp_path / "exports", relative)


def test_resolve_inside_accepts_paths_inside(tmp_path: Path) -> None:
    folder = tmp_path / "exports"

    assert resolve_inside(folder, "curated.jsonl") == folder.resolve() / "curated.jsonl"
    assert resolve_inside(folder, "a/../b/c.jsonl") == folder.resolve() / "b" / "c.jsonl"


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    with pytest.raises(ValueError, match="would leave the folder"):
        resolve_inside(folder, "escape/x.jsonl")


@pytest.mark.parametrize("name", ["../evil.jsonl", "a/b.jsonl", "..\\evil.jsonl", "..", ".", "", ".hidden", "x\x00y"])
def test_upload_names_that_are_not_plain_file_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="is not a plain file name"):
        upload_path(tmp_path / "uploads", name)
    assert not (tmp_path / "evil.jsonl").exists()


def test_a_plain_upload_name_lands_in_the_folder(tmp_path: Path) -> None:
    assert upload_path(tmp_path / "uploads", "my data.jsonl") == (tmp_path / "uploads").resolve() / "my data.jsonl"


@pytest.mark.parametrize("job_id", ["../../etc", "..", "a/b", "/tmp/x", "", ".hidden", "x" * 65])
def test_job_and_run_ids_that_are_not_plain_names_are_refused(tmp_path: Path, job_id: str) -> None:
    from core import jobs

    with pytest.raises(ValueError, match="is not a job or run id"):
        jobs.read_status(tmp_path, job_id)
    with pytest.raises(ValueError, match="is not a job or run id"):
        jobs.request_cancel(tmp_path, job_id)


def test_the_cli_refuses_a_run_id_that_leaves_the_jobs_folder(tmp_path: Path, capsys) -> None:
    from core.cli import main
    from core.storage.database import Store

    Store(tmp_path / "ws")  # an empty workspace: the CLI refuses a folder that holds none
    assert main(["runs", "--workspace", str(tmp_path / "ws"), "--resume", "../../outside"]) == 1
    assert "is not a job or run id" in capsys.readouterr().err
    assert not (tmp_path / "outside").exists()
