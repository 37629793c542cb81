"""The streamed export: written a chunk of rows at a time, it equals the in-memory export byte for byte,
keeps a selection's pick order across chunks, and leaves nothing half-written at its paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import core.export
from core.export import build_export, manifest_path_for, stream_export, write_export
from core.prepare import PrepareOptions, prepare
from core.storage import curation, selections
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl


class _FixedClock(datetime):
    """Every manifest made in a test is stamped with the same time, so two exports can be compared as bytes."""

    @classmethod
    def now(cls, tz: Any = None) -> _FixedClock:
        return cls(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def odd_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, ds.DatasetInfo]:
    """24 rows with non-ASCII ids and values (the row's own id field; example ids are content hashes), an extra field first and a nested one; a cluster and an example
    vetoed, so the kept rows have gaps."""
    rows = [{"id": f"café-{n:02d}", **row, "meta": {"n": n, "ok": n % 2 == 0}} for n, row in enumerate(keyword_rows())]
    rows[3] = {"tag": "☕ 😀", **rows[3], "output": "Ünïcödé “quotes” and \u2028 a separator"}
    source = write_jsonl(tmp_path / "odd.jsonl", rows)
    store = Store(tmp_path / "ws")
    prepare(store, source, PrepareOptions(name="odd", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4), seed=0))
    info = ds.get_dataset(store, "odd")
    curation.set_cluster_veto(store, info.dataset_id, 4, 1, True)
    ids = curation.all_rows(store, info.dataset_id, 4).example_id
    curation.set_example_veto(store, info.dataset_id, ids[3], False)  # a neutral decision row
    curation.set_example_veto(store, info.dataset_id, ids[4], True)
    monkeypatch.setattr(core.export, "datetime", _FixedClock)
    return store, ds.get_dataset(store, "odd")


def _count_chunks(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Record the size of every chunk ``module.name`` yields."""
    original = getattr(module, name)
    sizes: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        for chunk in original(*args, **kwargs):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(module, name, counted)
    return sizes


def test_an_export_in_many_chunks_is_byte_identical_to_one_chunk_and_to_the_in_memory_export(
    odd_store: tuple[Store, ds.DatasetInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, info = odd_store
    reference, reference_manifest = write_export(build_export(store, info), tmp_path / "old" / "data.jsonl")
    sizes = _count_chunks(monkeypatch, curation, "kept_row_chunks")

    small = stream_export(store, info, tmp_path / "small" / "data.jsonl", chunk_rows=5)
    chunks_small = list(sizes)
    one = stream_export(store, info, tmp_path / "one" / "data.jsonl", chunk_rows=1000)

    assert len(chunks_small) > 2 and max(chunks_small) <= 5  # really written in several chunks
    assert sizes[len(chunks_small) :] == [small.n_rows] == [17]
    for written in (small, one):
        assert written.jsonl_path.read_bytes() == reference.read_bytes()
        assert written.manifest_path.read_bytes() == reference_manifest.read_bytes()
    manifest = json.loads(small.manifest_path.read_text(encoding="utf-8"))
    ids = curation.all_rows(store, info.dataset_id, 4).example_id
    assert ids[4] not in manifest["example_ids"] and ids[3] in manifest["example_ids"]
    assert manifest["output"]["sha256"] == small.sha256 and manifest["counts"]["exported"] == 17


def test_an_export_keeping_nothing_writes_an_empty_file_and_the_same_manifest(
    odd_store: tuple[Store, ds.DatasetInfo], tmp_path: Path
) -> None:
    store, info = odd_store
    for cluster in range(4):
        curation.set_cluster_veto(store, info.dataset_id, 4, cluster, True)
    _, reference_manifest = write_export(build_export(store, info), tmp_path / "old" / "none.jsonl")

    written = stream_export(store, info, tmp_path / "new" / "none.jsonl", chunk_rows=3)

    assert written.n_rows == 0 and written.jsonl_path.read_bytes() == b""
    assert written.manifest_path.read_bytes() == reference_manifest.read_bytes()


def test_a_selection_export_keeps_pick_order_across_chunks(
    odd_store: tuple[Store, ds.DatasetInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, info = odd_store
    everything = curation.all_rows(store, info.dataset_id, 4)
    picks = [19, 2, 23, 4, 0, 11, 7]  # not row order, and a vetoed example among them: a selection keeps it
    record = {
        "name": "hand-picked",
        "strategy": "random",
        "params": {},
        "seed": 0,
        "budget": 7,
        "k": 4,
        "pool_hash": "x",
        "pool_size": 24,
        "decisions": {},
        "score_keys": [],
        "seconds": 0.0,
    }
    ids = [everything.example_id[i] for i in picks]
    selection_id = selections.save(store, info.dataset_id, record, picks, ids)
    reference, reference_manifest = write_export(
        build_export(store, info, selection_id=selection_id), tmp_path / "old" / "sel.jsonl"
    )
    sizes = _count_chunks(monkeypatch, selections, "item_chunks")

    written = stream_export(store, info, tmp_path / "new" / "sel.jsonl", selection_id=selection_id, chunk_rows=2)

    assert sizes == [2, 2, 2, 1]
    lines = written.jsonl_path.read_text(encoding="utf-8").split("\n")[:-1]
    assert lines == [everything.original[i] for i in picks]
    assert json.loads(written.manifest_path.read_text(encoding="utf-8"))["example_ids"] == ids
    assert written.jsonl_path.read_bytes() == reference.read_bytes()
    assert written.manifest_path.read_bytes() == reference_manifest.read_bytes()


def test_an_interrupted_export_leaves_the_previous_files_and_no_partial_one(
    odd_store: tuple[Store, ds.DatasetInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, info = odd_store
    out = tmp_path / "out" / "data.jsonl"
    out.parent.mkdir()
    out.write_text("previous export\n")
    manifest_path_for(out).write_text("{}\n")
    original = curation.kept_row_chunks

    def dies_after_one_chunk(*args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        yield next(iter(original(*args, **kwargs)))
        raise KeyboardInterrupt  # what a curator's Ctrl-C raises in the middle of the write

    monkeypatch.setattr(curation, "kept_row_chunks", dies_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        stream_export(store, info, out, chunk_rows=4)

    assert out.read_text() == "previous export\n" and manifest_path_for(out).read_text() == "{}\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["data.jsonl", "data.manifest.json"]
    out.unlink()
    manifest_path_for(out).unlink()
    with pytest.raises(KeyboardInterrupt):
        stream_export(store, info, out, chunk_rows=4)
    assert list(out.parent.iterdir()) == []
    curation.set_cluster_veto(store, info.dataset_id, 4, 2, True)  # the workspace is not left locked
