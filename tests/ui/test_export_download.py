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


def test_the_page_exports_the_picked_format_with_the_llamafactory_entry(
    page, prepared_workspace: Path, clicks: dict[str, Callable[[], Any]]
) -> None:
    at = page("export").run()
    at.selectbox(key="export_format").select("messages").run()
    at.checkbox(key="export_llamafactory").check().run()

    assert not at.exception
    lines = clicks["tiny-curated-messages.jsonl"]().decode("utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 24 and [turn["role"] for turn in rows[0]["messages"]] == ["user", "assistant"]
    entry = json.loads(clicks["dataset_info.json"]())["tiny-curated-messages"]
    assert (entry["file_name"], entry["formatting"]) == ("tiny-curated-messages.jsonl", "sharegpt")
    assert json.loads(clicks["tiny-curated-messages.manifest.json"]())["format"]["name"] == "messages"

    at.text_input(key="export_path_None_messages").input("out/chat.jsonl").run()
    at.button(key="write_export").click().run()
    out = prepared_workspace / "exports" / "out"
    assert "Also wrote" in at.success[0].value
    assert len((out / "chat.jsonl").read_text().splitlines()) == 24
    assert json.loads((out / "dataset_info.json").read_text())["chat"]["file_name"] == "chat.jsonl"


def test_a_datasets_folder_downloads_as_a_zip_of_the_folder(
    page, prepared_workspace: Path, clicks: dict[str, Callable[[], Any]]
) -> None:
    import io
    import zipfile

    at = page("export").run()
    at.selectbox(key="export_format").select("hf").run()

    archive = zipfile.ZipFile(io.BytesIO(clicks["tiny-curated-hf.zip"]()))
    assert {"tiny-curated-hf/state.json", "tiny-curated-hf/data-00000-of-00001.arrow"} <= set(archive.namelist())
