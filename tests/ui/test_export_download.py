"""The Export page's downloads: nothing is exported while the page renders; a click writes the export into
the workspace's exports/downloads folder and the browser receives that file's bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from core.export import build_export
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


@pytest.fixture
def clicks(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], Any]]:
    """What each download button would run when clicked, by the file name it offers (Streamlit calls it then)."""
    registered: dict[str, Callable[[], Any]] = {}
    original = MediaFileManager.add_deferred

    def record(self: MediaFileManager, data_callable: Callable[[], Any], *args: Any, **kwargs: Any) -> str:
        registered[str(kwargs.get("file_name"))] = data_callable
        return original(self, data_callable, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return registered


def test_the_download_is_the_file_written_into_the_exports_folder(
    page, prepared_workspace: Path, clicks: dict[str, Callable[[], Any]]
) -> None:
    store = Store(prepared_workspace)
    info = ds.get_dataset(store, "tiny")
    curation.set_cluster_veto(store, info.dataset_id, info.active_k, 0, True)
    downloads = prepared_workspace / "exports" / "downloads"

    at = page("export").run()

    assert not at.exception and at.metric[0].value == "18 of 24"
    assert not downloads.exists()  # rendering the page counts, it does not export
    jsonl = clicks["tiny-curated.jsonl"]()
    (written,) = downloads.glob("v*/tiny-curated.jsonl")
    assert jsonl == written.read_bytes() == build_export(store, info).jsonl
    manifest = clicks["tiny-curated.manifest.json"]()
    assert manifest == (written.parent / "tiny-curated.manifest.json").read_bytes()
    sha256 = hashlib.sha256(jsonl).hexdigest()
    assert json.loads(manifest)["output"] == {"sha256": sha256, "rows": 18, "file": "tiny-curated.jsonl"}

    curation.set_cluster_veto(store, info.dataset_id, info.active_k, 0, False)
    at.run()
    assert len(clicks["tiny-curated.jsonl"]().splitlines()) == 24  # a click after a change exports afresh
    assert [p.parent.name for p in downloads.glob("v*/tiny-curated.jsonl")] == [f"v{store.data_version()}"]
