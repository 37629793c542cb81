"""The exports of a dataset found in the workspace (the home page's Export step), read from manifest heads."""

from __future__ import annotations

import json
from pathlib import Path

from core.export import past_exports, stream_export
from core.storage import datasets as ds
from core.storage.database import Store


def test_past_exports_reads_each_manifest_head_and_skips_others_and_broken_ones(workspace: Path) -> None:
    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")
    exports = workspace / "exports"
    written = stream_export(store, dataset, exports / "all.jsonl")
    (exports / "other.manifest.json").write_text(json.dumps({"dataset": {"name": "other"}, "example_ids": []}))
    (exports / "broken.manifest.json").write_text('{"dataset": {"name": "tiny"')  # cut short
    found = past_exports(workspace, "tiny")
    assert [(e.jsonl_path, e.selection, e.n_rows) for e in found] == [
        (written.jsonl_path, "every non-vetoed example", dataset.n_rows)
    ]
    assert past_exports(workspace, "nothing") == []
    assert past_exports(workspace / "empty", "tiny") == []  # no exports folder at all
