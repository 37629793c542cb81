"""``python -m core prepare`` of Hugging Face sources end to end, as a user runs it: a save_to_disk DatasetDict's
split, then a hub-style folder of Parquet shards streamed through the hub path (``hf:FOLDER``); the export gives
back every column and its manifest names the source. The hashing embedder keeps it fast (no model is loaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, keyword_rows

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _core(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf-cache")}
    return subprocess.run(
        [sys.executable, "-m", "core", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _rows() -> list[dict[str, Any]]:
    return [dict(row, row_id=i, meta={"topic": row["instruction"].split()[3]}) for i, row in enumerate(keyword_rows())]


def test_prepare_a_saved_split_and_streamed_parquet_shards_then_export_every_column(tmp_path: Path) -> None:
    rows = _rows()
    saved = tmp_path / "kw"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:4]), "test": datasets.Dataset.from_list(rows)}
    ).save_to_disk(str(saved))
    shards = tmp_path / "hub" / "data"
    shards.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows[:10]), shards / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[10:]), shards / "train-00001-of-00002.parquet")
    workspace = str(tmp_path / "ws")
    common = ["--embedder", "hashing", "--k-grid", "2,3", "--workspace", workspace]

    first = _core(tmp_path, "prepare", str(saved), "--split", "test", *common)
    second = _core(tmp_path, "prepare", f"hf:{tmp_path / 'hub'}", "--streaming", *common)
    bad = _core(tmp_path, "prepare", str(saved), "--split", "validation", *common)
    exported = _core(
        tmp_path, "export", "--dataset", "kw-test", "--out", str(tmp_path / "out.jsonl"), "--workspace", workspace
    )

    assert first.returncode == 0, first.stderr
    assert "prepared 'kw-test': 24 rows" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "prepared 'hub': 24 rows" in second.stdout
    assert bad.returncode == 1
    assert (
        bad.stderr.strip().splitlines()[-1] == f"error: {saved}: has no split 'validation'; its splits are train, test"
    )
    assert "Traceback" not in bad.stderr
    assert exported.returncode == 0, exported.stderr
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted((json.loads(line) for line in lines), key=lambda row: row["row_id"]) == rows
    manifest = json.loads((tmp_path / "out.manifest.json").read_text(encoding="utf-8"))
    assert manifest["dataset"]["source_path"] == str(saved)
    assert manifest["dataset"]["source"]["split"] == "test"
    assert manifest["dataset"]["source"]["loader"] == "load_from_disk"
