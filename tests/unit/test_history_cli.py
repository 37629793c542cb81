"""The command line's bulk veto (--search, --rows), history by batch, undo and revert, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main, parse_rows
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _vetoed(workspace: Path) -> list[str]:
    store = Store(workspace)
    return curation.decisions(store, ds.get_dataset(store, "tiny").dataset_id)["vetoed_examples"]


def test_parse_rows() -> None:
    assert parse_rows("1,2,5-9") == [1, 2, 5, 6, 7, 8, 9]
    assert parse_rows(" 3 ") == [3]


def test_cli_bulk_veto_history_undo_and_revert(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = ("--workspace", str(workspace), "--dataset", "tiny")

    assert _run(capsys, "veto", "--search", "python", *ws)[:2] == (0, "vetoed 6 of 6 examples (search: 'python')\n")
    assert len(_vetoed(workspace)) == 6
    code, out, _ = _run(capsys, "veto", "--rows", "0-2,5", *ws)
    assert code == 0 and out.startswith("vetoed ") and out.endswith("of 4 examples (rows 0-2,5)\n")
    assert (
        _run(capsys, "veto", "--search", "no such words", *ws)[1]
        == "no example matches 'no such words': nothing changed\n"
    )

    code, out, _ = _run(capsys, "history", "--limit", "5", *ws)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2  # the two bulk vetoes, newest first
    assert "cli" in lines[1] and "vetoed 6 examples (search: 'python')  (6 kept → vetoed)" in lines[1]
    first_batch, rows_batch = (line.split()[0].removeprefix("#") for line in (lines[1], lines[0]))
    rows = json.loads(_run(capsys, "history", "--json", *ws)[1])
    assert {row["actor"] for row in rows if row["action"] == "example_veto"} == {"cli"}

    code, out, _ = _run(capsys, "undo", *ws)  # the latest batch: the rows
    assert code == 0 and out.startswith(f"undid #{rows_batch}: vetoed ")
    assert "examples (rows 0-2,5): " in out
    assert len(_vetoed(workspace)) == 6
    code, out, _ = _run(capsys, "veto", "--search", "python", "--undo-veto", *ws)
    assert (code, out) == (0, "un-vetoed 6 of 6 examples (search: 'python')\n")
    code, _, err = _run(capsys, "undo", "--batch", first_batch, *ws)  # the un-veto changed its targets since
    assert code == 1 and err.startswith(f"error: cannot undo batch #{first_batch} (vetoed 6 examples")
    assert err.count("\n") == 1
    code, out, _ = _run(capsys, "undo", "--batch", first_batch, "--force", *ws)  # already as it left them
    assert code == 0 and ": 0 decisions written back (recorded as #" in out
    assert _vetoed(workspace) == []

    code, out, _ = _run(capsys, "revert", "--to", first_batch, *ws)
    assert code == 0 and out.startswith(f"reverted to #{first_batch}: undid 3 batches: ")
    assert len(_vetoed(workspace)) == 6

    assert _run(capsys, "veto", "--cluster", "0", *ws)[:2] == (0, "cluster 0 (k=4) is now vetoed\n")
    assert "vetoed cluster 0 (k=4)" in _run(capsys, "history", "--limit", "1", *ws)[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("veto", "--rows", "1,x"), "error: --rows takes numbers and ranges such as 1,2,5-9, not 'x'"),
        (("veto", "--rows", "5-2"), "error: --rows: '5-2' is not a range of numbers"),
        (("veto", "--rows", "3,99"), "error: no rows 99 in this dataset; nothing was vetoed"),
        (("veto", "--search", " "), "error: --search needs a word"),
        (("undo",), "error: nothing to undo"),
        (("undo", "--batch", "999"), "error: no batch #999 in this dataset's history"),
        (("revert", "--to", "999"), "error: no history row or batch #999"),
        (("history", "--limit", "0"), "error: --limit must be at least 1"),
    ],
)
def test_cli_history_errors_are_one_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(capsys, *argv, "--workspace", str(workspace))

    assert (code, out) == (1, "")
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert _vetoed(workspace) == []


def test_cli_merge_split_preview_and_undo(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = ("--workspace", str(workspace), "--dataset", "tiny")
    store = Store(workspace)
    dataset_id = ds.get_dataset(store, "tiny").dataset_id
    before = ds.assignments(store, dataset_id, 4).tolist()

    code, out, _ = _run(capsys, "merge", "0,1", "--into", "1", *ws)

    assert code == 0 and out.splitlines()[0].startswith("cluster 1: 12 examples, ")
    assert "merged cluster 0 into 1 (k=4): 6 examples moved (recorded as #" in out
    assert set(ds.assignments(store, dataset_id, 4).tolist()) == {1, 2, 3}
    assert "moved 6 examples between clusters (merged cluster 0 into 1 (k=4))" in _run(capsys, "history", *ws)[1]

    code, out, _ = _run(capsys, "split", "1", "--preview", *ws)
    assert code == 0 and out.splitlines()[1].startswith("cluster 4: 6 examples, ")
    assert out.endswith("preview only: nothing stored (run without --preview to split cluster 1)\n")
    assert set(ds.assignments(store, dataset_id, 4).tolist()) == {1, 2, 3}
    code, out, _ = _run(capsys, "split", "1", *ws)
    assert code == 0 and "split cluster 1 into 1, 4 (6, 6 rows; k=4, seed 0): 6 examples" in out
    assert set(ds.assignments(store, dataset_id, 4).tolist()) == {1, 2, 3, 4}

    out_file = workspace / "out.jsonl"
    assert _run(capsys, "export", "--out", str(out_file), *ws)[0] == 0
    manifest = json.loads(out_file.with_suffix(".manifest.json").read_text())
    assert [e["edit"] for e in manifest["clustering"]["edits"]] == [
        "merged cluster 0 into 1 (k=4)",
        "split cluster 1 into 1, 4 (6, 6 rows; k=4, seed 0)",
    ]
    assert set(manifest["counts"]["per_cluster"]) == {"1", "2", "3", "4"}
    assert _run(capsys, "undo", *ws)[0] == 0  # the split
    assert _run(capsys, "undo", *ws)[0] == 0  # the merge
    assert ds.assignments(store, dataset_id, 4).tolist() == before

    assert _run(capsys, "merge", "2", *ws)[2] == "error: a merge takes two or more clusters\n"
    assert (
        _run(capsys, "merge", "2,x", *ws)[2]
        == "error: the cluster list takes numbers and ranges such as 1,2,5-9, not 'x'\n"
    )
    assert _run(capsys, "split", "2", "--parts", "30", *ws)[2] == "error: a split makes 2 to 20 parts, not 30\n"
    assert _run(capsys, "split", "9", *ws)[2] == "error: no cluster 9 at k=4\n"
