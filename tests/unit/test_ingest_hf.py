"""Hugging Face datasets in: a save_to_disk folder, a DatasetDict's split, a hub-style folder of Parquet shards and
a hub id (its load_dataset call recorded) give the rows a JSON Lines file of the same rows gives; streaming gives
the same rows; a bad row is named by dataset, split, 0-based row and field, and stores nothing; unknown
datasets, configs and splits fail on one line; extra columns come back in the export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import IngestError
from core.export import build_export
from core.ingest import DatasetStream, read_dataset
from core.ingest.hf import HFSource, check_source, default_name, is_hf_source
from core.jobs import InvalidJob
from core.prepare import PrepareOptions, dataset_name, prepare
from core.prepare_job import PrepareJob
from core.progress import Progress
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl
from tests.unit.conftest import store_snapshot

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """load_dataset's Arrow cache in the test's folder, not the user's HF cache."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def _alpaca(n: int = 8) -> list[dict[str, Any]]:
    """Alpaca rows with two extra columns (a number and a list) that must be kept."""
    return [dict(row, source_id=i, tags=["kw", str(i)]) for i, row in enumerate(keyword_rows(per_topic=2)[:n])]


def _messages(n: int = 6) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Tell me about bread number {i}"},
                {"role": "assistant", "content": f"Bread {i} is baked."},
            ],
            "lang": "en",
        }
        for i in range(n)
    ]


def _sharegpt(n: int = 6) -> list[dict[str, Any]]:
    return [
        {
            "conversations": [
                {"from": "human", "value": f"What is planet {i}?"},
                {"from": "gpt", "value": f"Planet {i} orbits a star."},
            ],
            "id": f"conv-{i}",
        }
        for i in range(n)
    ]


def _mapped(n: int = 6) -> list[dict[str, Any]]:
    return [{"prompt": f"Write python code {i}", "completion": f"print({i})", "score": i / 10} for i in range(n)]


SHAPES = {
    "alpaca": (_alpaca, None),
    "messages": (_messages, None),
    "sharegpt": (_sharegpt, None),
    "mapped": (_mapped, {"instruction": "prompt", "output": "completion"}),
}


def _save(folder: Path, rows: list[dict[str, Any]]) -> Path:
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    return folder


def _shards(folder: Path, shards: dict[str, list[list[dict[str, Any]]]], layout: str = "data") -> Path:
    """A hub-style folder: per split, its shards as data/<split>-0000i-of-0000n.parquet or <split>/000i.parquet."""
    for split, parts in shards.items():
        for i, part in enumerate(parts):
            name = (
                f"data/{split}-{i:05d}-of-{len(parts):05d}.parquet" if layout == "data" else f"{split}/{i:04d}.parquet"
            )
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(part), folder / name)
    return folder


def _seen(examples: list[Any]) -> list[tuple[Any, ...]]:
    """What a curator sees of each row, and what export writes back (the original row)."""
    return [(e.instruction, e.input, e.output, e.messages, e.original, e.example_id) for e in examples]


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_reads_from_a_save_to_disk_folder_as_from_a_jsonl_file(tmp_path: Path, shape: str) -> None:
    make, mapping = SHAPES[shape]
    rows = make()
    from_file = read_dataset(write_jsonl(tmp_path / "rows.jsonl", rows), mapping=mapping)

    from_hf = read_dataset(HFSource(str(_save(tmp_path / "saved", rows))), mapping=mapping)

    assert from_hf.shape == from_file.shape == shape
    assert _seen(from_hf.examples) == _seen(from_file.examples)
    assert [e.location for e in from_hf.examples][:2] == ["row 0 (0-based)", "row 1 (0-based)"]


def test_a_datasetdict_folder_reads_the_split_asked_for_and_train_by_default(tmp_path: Path) -> None:
    rows = _alpaca(8)
    folder = tmp_path / "dict"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:5]), "test": datasets.Dataset.from_list(rows[5:])}
    ).save_to_disk(str(folder))

    test = read_dataset(HFSource(str(folder), split="test"))
    train = read_dataset(HFSource(str(folder)))

    assert [e.original["source_id"] for e in test.examples] == [5, 6, 7]
    assert [e.original["source_id"] for e in train.examples] == [0, 1, 2, 3, 4]


def test_a_datasetdict_without_train_needs_a_split_and_an_unknown_split_names_those_there_are(tmp_path: Path) -> None:
    rows = _alpaca(4)
    folder = tmp_path / "dict"
    datasets.DatasetDict(
        {"dev": datasets.Dataset.from_list(rows[:2]), "test": datasets.Dataset.from_list(rows[2:])}
    ).save_to_disk(str(folder))

    with pytest.raises(IngestError) as several:
        read_dataset(HFSource(str(folder)))
    with pytest.raises(IngestError) as unknown:
        read_dataset(HFSource(str(folder), split="train"))

    assert (
        str(several.value) == f"{folder}: has several splits (dev, test): choose one with --split (on the page: Split)"
    )
    assert str(unknown.value) == f"{folder}: has no split 'train'; its splits are dev, test"


@pytest.mark.parametrize("layout", ["data", "split_folders"])
def test_a_hub_style_parquet_folder_reads_every_shard_of_the_split_in_order(tmp_path: Path, layout: str) -> None:
    rows = _alpaca(8)
    folder = _shards(tmp_path / "hub", {"train": [rows[:3], rows[3:6]], "test": [rows[6:]]}, layout)
    from_file = read_dataset(write_jsonl(tmp_path / "train.jsonl", rows[:6]))

    train = read_dataset(HFSource(str(folder), split="train"))
    as_hub_id = read_dataset(HFSource(f"hf:{folder}"))  # the same folder by the hub path: load_dataset alike
    test = read_dataset(HFSource(str(folder), split="test"))

    assert _seen(train.examples) == _seen(from_file.examples)
    assert _seen(as_hub_id.examples) == _seen(train.examples)
    assert [e.original["source_id"] for e in test.examples] == [6, 7]


@pytest.mark.parametrize("kind", ["saved", "shards"])
def test_streaming_yields_the_same_rows_and_hash_as_reading_the_arrow_dataset(tmp_path: Path, kind: str) -> None:
    rows = _alpaca(8)
    folder = (
        _save(tmp_path / "saved", rows)
        if kind == "saved"
        else _shards(tmp_path / "hub", {"train": [rows[:5], rows[5:]]})
    )

    whole = read_dataset(HFSource(str(folder)))
    streamed = read_dataset(HFSource(str(folder), streaming=True))

    assert _seen(streamed.examples) == _seen(whole.examples)
    assert len(streamed.examples) == 8
    assert streamed.file_sha256 == whole.file_sha256


def test_a_hub_id_passes_config_split_and_streaming_to_load_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []
    rows = _sharegpt(4)

    def fake_load_dataset(path: str, name: str | None = None, **kwargs: Any) -> Any:
        calls.append((path, name, kwargs))
        return datasets.Dataset.from_list(rows).to_iterable_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    source = HFSource("hf:some-org/chats", config="en", split="validation", streaming=True)

    stream = DatasetStream(source, batch_rows=3)
    examples = [example for batch in stream.batches() for example in batch]
    found = stream.summary()

    assert calls == [("some-org/chats", "en", {"split": "validation", "streaming": True})]
    assert [e.instruction for e in examples] == [f"What is planet {i}?" for i in range(4)]
    assert found.source_path == "hf:some-org/chats"
    assert found.source is not None
    assert {key: found.source[key] for key in ("config", "split", "streaming", "loader")} == {
        "config": "en",
        "split": "validation",
        "streaming": True,
        "loader": "load_dataset",
    }
    assert default_name(source) == "chats-en-validation"
    assert dataset_name("hf:some-org/chats", PrepareOptions()) == "chats"


def test_a_bad_row_names_dataset_split_row_and_field_and_stores_nothing(workspace: Path, tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = _alpaca(8)
    rows[5] = dict(rows[5], output=None)  # the 6th row: index 5, as dataset[5] counts
    folder = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    before = store_snapshot(workspace)

    with pytest.raises(IngestError) as caught:
        prepare(
            Store(workspace),
            str(folder),
            PrepareOptions(name="bad", embedder=KEYWORD_EMBEDDER, k_grid=(2,), hf_split="train"),
            batch_rows=2,  # the bad row is in the third batch: the first two were staged, and are dropped
        )

    assert str(caught.value) == (
        f"{folder} (split 'train'), row 5 (0-based), field 'output': expected a string, found null (nothing was stored)"
    )
    assert store_snapshot(workspace) == before
    assert not list(workspace.glob(".staging-*"))


def test_a_duplicate_id_names_the_first_row_counted_from_zero(tmp_path: Path) -> None:
    rows = _sharegpt(4)
    rows[3]["id"] = "conv-1"

    with pytest.raises(IngestError) as caught:
        read_dataset(HFSource(str(_save(tmp_path / "saved", rows))))

    assert str(caught.value) == (
        f"{tmp_path / 'saved'}, row 3 (0-based), field 'id': duplicate id 'conv-1' (first seen on row 1) "
        "(nothing was stored)"
    )


def test_unknown_sources_configs_and_splits_fail_on_one_line(tmp_path: Path) -> None:
    folder = _shards(tmp_path / "hub", {"train": [_alpaca(4)]})

    failures = []
    for source in (
        HFSource("hf:no-such-org/no-such-set"),  # tests run offline (HF_HUB_OFFLINE=1)
        HFSource(f"hf:{folder}", config="nope"),
        HFSource(f"hf:{folder}", split="nope"),
    ):
        with pytest.raises(IngestError) as caught:
            DatasetStream(source)
        failures.append(str(caught.value))

    assert all("\n" not in message and "Traceback" not in message for message in failures)
    assert failures[0].startswith(
        "hf:no-such-org/no-such-set: offline mode is on (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE) and the dataset "
        "is not in the local cache (HF_HOME)"
    )
    assert failures[1] == f"hf:{folder} (config 'nope'): BuilderConfig 'nope' not found. Available: ['default']"
    assert failures[2].startswith(f"hf:{folder} (split 'nope'): Unknown split \"nope\"")


def test_a_folder_without_a_dataset_and_hf_options_on_a_file_are_refused_before_reading(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    file = write_jsonl(tmp_path / "rows.jsonl", _alpaca(2))

    with pytest.raises(ValueError, match=r"holds no dataset: give a \.jsonl"):
        check_source(HFSource(str(empty)))
    with pytest.raises(ValueError, match="no folder at"):
        check_source(HFSource(f"hf:{tmp_path / 'missing'}"))
    with pytest.raises(ValueError, match="give a dataset after hf:"):
        check_source(HFSource("hf:"))
    with pytest.raises(InvalidJob, match=r"hf_split: rows\.jsonl is a file"):
        PrepareJob(str(file), PrepareOptions(hf_split="train")).validate(tmp_path / "ws")
    assert is_hf_source(empty) and is_hf_source("hf:org/name") and not is_hf_source(file)


def test_prepare_counts_a_datasets_rows_as_progress(tmp_path: Path) -> None:
    class Shown(Progress):
        def __init__(self) -> None:
            super().__init__()
            self.shown: list[tuple[str, int, int]] = []

        def update(self) -> None:
            self.shown.append((self.stage, self.done, self.total))

    progress = Shown()
    rows = [dict(row, n=i) for i in range(25) for row in keyword_rows(per_topic=5)]  # 500 rows
    folder = _save(tmp_path / "saved", rows)

    prepare(
        Store(tmp_path / "ws"),
        str(folder),
        PrepareOptions(embedder=KEYWORD_EMBEDDER, k_grid=(2,)),
        progress,
        batch_rows=100,
    )

    read = [(done, total) for stage, done, total in progress.shown if stage == "ingest rows"]
    assert read[0] == (0, 500) and read[-1] == (500, 500)
    assert {total for _, total in read} == {500}
    assert any(0 < done < 500 for done, _ in read)  # it moves while the rows are read, not only at the end
    assert [done for done, _ in read] == sorted(done for done, _ in read)


def test_extra_columns_of_a_hf_dataset_come_back_in_the_export_and_the_manifest_names_the_source(
    tmp_path: Path,
) -> None:
    rows = _alpaca(8)
    folder = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    store = Store(tmp_path / "ws")

    report = prepare(store, str(folder), PrepareOptions(embedder=KEYWORD_EMBEDDER, k_grid=(2,), hf_split="train"))
    bundle = build_export(store, ds.get_dataset(store, report.name))

    assert report.name == "dict"
    exported = [json.loads(line) for line in bundle.jsonl.decode("utf-8").splitlines()]
    assert exported == rows  # every column, extra ones included, in the dataset's order
    source = bundle.manifest["dataset"]["source"]
    assert bundle.manifest["dataset"]["source_path"] == str(folder)
    assert (source["loader"], source["split"], source["streaming"]) == ("load_from_disk", "train", False)
    assert source["fingerprint"]  # the saved dataset's datasets fingerprint
    assert bundle.manifest["dataset"]["file_sha256"] == source["rows_sha256"]
