"""User-given paths stay inside the folder the app chose: export paths typed in a page, uploaded file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.safe_paths import check_dataset_name, resolve_inside, upload_path


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


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is blank: a dataset needs a name"),
        ("  \t ", "is blank"),
        ("two\nlines", "holds the control or invisible character '\\n'"),
        ("bell\x07", "control or invisible character '\\x07'"),
        ("nul\x00", "control or invisible character '\\x00'"),
        ("txt\u202egpj", "control or invisible character '\\u202e'"),  # a right-to-left override
        ("zero\u200bwidth", "control or invisible character '\\u200b'"),
        ("para\u2029graph", "control or invisible character '\\u2029'"),
        ("../../etc", "holds a path separator"),
        ("a/b", "holds a path separator"),
        ("a\\b", "holds a path separator"),
        ("..", "starts with a dot"),
        (".hidden", "starts with a dot"),
        (" padded", "starts or ends with a space"),
        ("padded ", "starts or ends with a space"),
        ("x" * 101, "is 101 characters long"),
    ],
)
def test_dataset_names_that_cannot_be_shown_or_become_a_file_name_are_refused(name: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_dataset_name(name)

    message = str(caught.value)
    assert message.startswith("the dataset name ")
    assert problem in message
    assert "letters, digits, spaces, punctuation and symbols other than / and \\" in message  # what is allowed
    assert "\n" not in message and len(message) < 300  # one line, even for a pasted document


@pytest.mark.parametrize(
    "name", ["alpaca", "my data (1)", "gsm8k-train.v2", "oasst1+dolly", "données 日本語", "50% sample: v2", "x" * 100]
)
def test_ordinary_dataset_names_are_accepted(name: str) -> None:
    assert check_dataset_name(name) == name
