"""docs/python-api.md is executed: every ```python block of the walkthrough runs, in order, in one namespace,
on the sample data with the packaged models; then what it printed and built is checked.

The workspace starts as a copy of the session's prepared sample (tests/integration/conftest.py: the same
``Workspace.prepare`` call as the walkthrough's first block, with the same defaults), so that block reuses it,
as the page says a second prepare of the same file does; the rest runs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import copy_workspace

DOC = ROOT / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    """The doc's ```python blocks (other fences, e.g. ```bash, are shown, not run)."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_walkthrough_finds_its_blocks() -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    assert blocks[0].strip() == "from core import Workspace"


def test_the_walkthrough_runs_end_to_end(
    prepared_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")  # the doc's paths, from a scratch "repository root"
    copy_workspace(prepared_sample, tmp_path / "my-workspace")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "walkthrough"}
    for number, block in enumerate(python_blocks(DOC.read_text(encoding="utf-8")), 1):
        try:
            exec(compile(block, f"docs/python-api.md block {number}", "exec"), namespace)
        except Exception as exc:  # name the block, so a broken doc says where
            raise AssertionError(f"block {number} of docs/python-api.md failed:\n{block}") from exc
    printed = capsys.readouterr().out
    assert "Dataset('sample': 2240 rows" in printed

    data = namespace["data"]
    groups = namespace["groups"]
    assert (groups["size"] >= 5).sum() >= 8  # type: ignore[index]  # the planted copies: 8 questions x 5
    worst = namespace["worst"]
    clusters = data.clusters().set_index("cluster_id")  # type: ignore[attr-defined]
    assert bool(clusters.vetoed[worst])  # the veto stayed; the search veto was undone
    assert not data.examples(search="blender", limit=100).vetoed.any()  # type: ignore[attr-defined]
    history = data.history(limit=50)  # type: ignore[attr-defined]
    assert "api" in set(history.actor)

    picked = namespace["picked"]
    assert len(picked) == 48  # type: ignore[arg-type]
    worst_members = set(data.examples(cluster=worst, limit=1000).example_id)  # type: ignore[attr-defined]
    assert not worst_members & set(picked.example_ids)  # type: ignore[attr-defined]

    run = namespace["run"]
    assert run.status().state == "done"  # type: ignore[attr-defined]
    evaluations = run.evaluations()  # type: ignore[attr-defined]
    assert evaluations, "the run evaluated nothing"

    written = namespace["written"]
    rows = [json.loads(line) for line in Path(written.path).read_text(encoding="utf-8").splitlines()]  # type: ignore[attr-defined]
    assert len(rows) == 48 and len({row["id"] for row in rows}) == 48  # the sample's own ids, kept
    manifest = json.loads(Path(written.manifest_path).read_text(encoding="utf-8"))  # type: ignore[attr-defined]
    assert manifest["selection"]["id"] == picked.id  # type: ignore[attr-defined]
    assert manifest["example_ids"] == picked.example_ids  # type: ignore[attr-defined]

    chat = namespace["chat"]
    first = json.loads(Path(chat.path).read_text(encoding="utf-8").splitlines()[0])  # type: ignore[attr-defined]
    assert [turn["role"] for turn in first["messages"]][-2:] == ["user", "assistant"]
    info = json.loads((Path(chat.path).parent / "dataset_info.json").read_text(encoding="utf-8"))  # type: ignore[attr-defined]
    assert any(entry["file_name"] == Path(chat.path).name for entry in info.values())  # type: ignore[attr-defined]
