"""The Python API (``from core import Workspace``) on the tiny keyword dataset: each call does what the same
command does in the CLI, stores what it decides, and fails with the CLI's clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core
from core import Dataset, Selection, Workspace
from core.errors import UnusablePath, WorkspaceNotFound
from tests.conftest import KEYWORD_EMBEDDER


@pytest.fixture
def data(workspace: Path) -> Dataset:
    return Workspace(workspace).dataset("tiny")


def test_the_public_surface_is_the_facade() -> None:
    assert set(core.__all__) == {"Dataset", "Run", "Selection", "Workspace", "__version__"}
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        core.Nope  # noqa: B018


def test_a_missing_workspace_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFound, match=r"no workspace at .*nowhere.*prepare"):
        Workspace(tmp_path / "nowhere").datasets()
    assert not (tmp_path / "nowhere").exists()  # reading does not create it
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnusablePath, match="it is a file, not a folder"):
        Workspace(tmp_path / "file")


def test_prepare_stores_a_dataset_and_reuses_it(tmp_path: Path, keyword_file: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    data = ws.prepare(keyword_file, name="mine", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4), progress=False)
    assert (data.name, data.info.n_rows, data.info.status) == ("mine", 24, "ready")
    assert data.k in (2, 4)
    listing = ws.datasets()
    assert list(listing.name) == ["mine"] and int(listing.rows.iloc[0]) == 24
    again = ws.prepare(keyword_file, name="mine", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4), progress=False)
    assert again.info.dataset_id == data.info.dataset_id
    assert len(ws.datasets()) == 1


def test_prepare_refuses_a_bad_file_and_stores_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "hi", "output": "there"}\n{"instruction": 3}\n', encoding="utf-8")
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ValueError, match=r"bad\.jsonl.*line 2"):
        ws.prepare(bad, embedder=KEYWORD_EMBEDDER, progress=False)
    assert not any(ws.path.glob("*.duckdb")) or ws.datasets().empty


def test_cluster_veto_weight_history_and_undo(data: Dataset) -> None:
    clusters = data.clusters()
    first = int(clusters.cluster_id.iloc[0])
    assert data.veto(cluster=first) == 1
    data.weigh(int(clusters.cluster_id.iloc[1]), 2.5)
    after = data.clusters().set_index("cluster_id")
    assert bool(after.vetoed[first]) and float(after.weight[int(clusters.cluster_id.iloc[1])]) == 2.5
    history = data.history(limit=5)
    assert set(history.actor) == {"api"}
    data.undo()  # the weight
    data.undo()  # the veto
    restored = data.clusters().set_index("cluster_id")
    assert not restored.vetoed.any() and (restored.weight == 1.0).all()


def test_example_vetoes_by_id_and_by_search(data: Dataset) -> None:
    page = data.examples(limit=3)
    ids = [str(i) for i in page.example_id]
    assert data.veto(examples=ids) == 3
    assert data.veto(examples=ids) == 0  # already vetoed: nothing changes
    assert data.veto(examples=ids, undo=True) == 3
    with pytest.raises(LookupError, match="no example ids 'nope'"):
        data.veto(examples=[ids[0], "nope"])
    assert not data.examples(limit=3).vetoed.any()  # the refused batch wrote nothing
    assert data.veto(search="bread") == 6
    assert int(data.examples(search="bread", limit=50).vetoed.sum()) == 6
    with pytest.raises(ValueError, match="exactly one of"):
        data.veto(cluster=0, search="bread")


def test_score_quality_select_compare_export(data: Dataset, tmp_path: Path) -> None:
    report = data.score("heuristics", progress=False)
    assert report.scored == 24
    assert data.score("heuristics", progress=False).scored == 0  # cached by its key
    quality = data.quality()
    assert {"cluster_id", "quality_mean", "below_threshold"} <= set(quality.columns)
    assert quality.quality_mean.is_monotonic_increasing
    bread = [str(i) for i in data.examples(search="bread", limit=50).example_id]
    data.veto(examples=bread)
    picked = data.select("random", 8, seed=3, name="r8")
    assert isinstance(picked, Selection) and len(picked) == 8
    assert not set(picked.example_ids) & set(bread)  # vetoed examples are never selected
    assert list(data.selections().name) == ["r8"]
    other = data.select("balanced_random", 8, seed=3)
    comparison = data.compare(picked, other)
    assert comparison["first"]["size"] == comparison["second"]["size"] == 8
    written = data.export(tmp_path / "out" / "r8.jsonl", selection=picked)
    lines = written.jsonl_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8 and written.n_rows == 8
    manifest = json.loads(written.manifest_path.read_text(encoding="utf-8"))
    assert manifest["selection"]["id"] == picked.id
    with pytest.raises(UnusablePath, match="overwrite=True"):
        data.export(tmp_path / "out" / "r8.jsonl", selection=picked)
    import pyarrow.parquet as pq

    table = data.export(tmp_path / "out" / "r8.parquet", selection=picked, format="parquet", axolotl=True)
    assert pq.read_table(table.path).num_rows == 8
    assert [path.name for path in table.trainer_files] == ["r8.parquet.axolotl.yaml"]


def test_the_api_and_the_cli_select_the_same_examples(data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    data.score("heuristics", progress=False)  # kMQ weighs by the combined quality
    via_api = data.select("kmq", 6, seed=1)
    assert (
        main(["select", "--workspace", str(data.workspace.path), "--strategy", "kmq", "--budget", "6", "--seed", "1"])
        == 0
    )
    capsys.readouterr()
    newest = int(data.selections().selection_id.max())
    assert data.selection(newest).example_ids == via_api.example_ids


def test_needs_names_what_a_strategy_lacks(data: Dataset) -> None:
    lines = data.needs("ifd_topk", 5)
    assert any("ifd" in line for line in lines)
