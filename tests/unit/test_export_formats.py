"""Trainer-ready exports: each format read back by its own library's reader holds exactly the exported rows
with the right fields (chat formats from an Alpaca and from a chat source, extra fields kept), the manifest
says how it was written, and the LLaMA-Factory entry and Axolotl block point at the written file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from core.cli import main
from core.export import TrainerFiles, build_export, stream_export
from core.export.formats import FORMATS
from core.prepare import PrepareOptions, prepare
from core.storage import curation, selections
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl

PICKS = [5, 0, 13, 22, 9, 2]  # a saved selection's rows, not in row order


def alpaca_rows() -> list[dict[str, Any]]:
    """Alpaca rows with an id, a system prompt on every third row, an input on some, and extra fields."""
    rows = []
    for n, row in enumerate(keyword_rows()):
        extra: dict[str, Any] = {"system": "Answer in one line."} if n % 3 == 0 else {}
        rows.append(
            {
                "id": f"a{n:02d}",
                **row,
                "input": f"context {n}" if n % 4 == 1 else "",
                **extra,
                "source": "web" if n % 2 else "book",
                "meta": {"n": n, "tags": ["x", str(n)]},
            }
        )
    return rows


def chat_rows() -> list[dict[str, Any]]:
    """Chat rows (role/content) with a system turn on odd rows, a capitalised role and an extra field."""
    rows = []
    for n, row in enumerate(keyword_rows()):
        system = [{"role": "system", "content": "You are terse."}] if n % 2 else []
        turns = [{"role": "User", "content": row["instruction"]}, {"role": "assistant", "content": row["output"]}]
        rows.append({"id": f"c{n:02d}", "messages": system + turns, "lang": "en"})
    return rows


def mapped_rows() -> list[dict[str, Any]]:
    return [{"prompt": r["instruction"], "completion": r["output"], "grade": n} for n, r in enumerate(keyword_rows())]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One workspace with an Alpaca, a chat and a mapped dataset (module-wide: tests only read it)."""
    folder = tmp_path_factory.mktemp("formats")
    store = Store(folder / "ws")
    sources = {
        "alpaca": (alpaca_rows(), None),
        "chat": (chat_rows(), None),
        "mapped": (mapped_rows(), {"instruction": "prompt", "output": "completion"}),
    }
    for name, (rows, mapping) in sources.items():
        options = PrepareOptions(name=name, mapping=mapping, embedder=KEYWORD_EMBEDDER, k_grid=(2,), seed=0)
        prepare(store, write_jsonl(folder / f"{name}.jsonl", rows), options)
    return store


def _selection(store: Store, name: str) -> tuple[ds.DatasetInfo, int]:
    """The dataset and a saved selection of its PICKS (made once per dataset)."""
    info = ds.get_dataset(store, name)
    for selection_id in selections.listing(store, info.dataset_id).selection_id:
        return info, int(selection_id)
    ids = list(curation.all_rows(store, info.dataset_id, 2).example_id)
    record = {"name": "picked", "strategy": "random", "params": {}, "seed": 0, "budget": len(PICKS), "k": 2}
    record |= {"pool_hash": "x", "pool_size": 24, "decisions": {}, "score_keys": [], "seconds": 0.0}
    return info, selections.save(store, info.dataset_id, record, PICKS, [ids[i] for i in PICKS])


def _read_back(path: Path, fmt: str, cache: Path) -> list[dict[str, Any]]:
    """The rows as the format's own library reads them: datasets for every format, and pyarrow for Parquet."""
    import datasets

    if fmt == "hf":
        return datasets.load_from_disk(str(path)).to_list()
    builder = "parquet" if fmt == "parquet" else "json"
    loaded = datasets.load_dataset(builder, data_files=[str(path)], split="train", cache_dir=str(cache))
    if fmt == "parquet":
        assert pq.read_table(path).to_pylist() == loaded.to_list()
    return loaded.to_list()


def _manifest(written: Any) -> dict[str, Any]:
    return json.loads(written.manifest_path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_own_shape_formats_hold_the_selection_with_every_field(store: Store, tmp_path: Path, fmt: str) -> None:
    info, selection_id = _selection(store, "alpaca")
    suffix = FORMATS.get(fmt).suffix
    out = tmp_path / f"picked{suffix}" if suffix else tmp_path / "picked-hf"

    written = stream_export(store, info, out, selection_id=selection_id, fmt=fmt, chunk_rows=4)

    expected = [alpaca_rows()[i] for i in PICKS]
    keys = list(dict.fromkeys(key for row in expected for key in row))  # a column a row lacks reads as null
    assert _read_back(out, fmt, tmp_path / "cache") == [{key: row.get(key) for key in keys} for row in expected]
    manifest = _manifest(written)
    assert manifest["format"]["name"] == fmt and manifest["counts"]["exported"] == len(PICKS)
    assert manifest["output"]["file"] == out.name and manifest["output"]["rows"] == len(PICKS)
    reference = build_export(store, info, selection_id=selection_id).jsonl
    if fmt == "jsonl":
        assert out.read_bytes() == reference
    else:  # the same rows as the jsonl export, and the file's own hash
        assert manifest["format"]["rows_sha256"] == hashlib.sha256(reference).hexdigest()
        assert manifest["format"]["columns"] == keys and manifest["format"]["json_text_columns"] == []
        data = out / manifest["format"]["data_file"] if fmt == "hf" else out
        assert manifest["output"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()


def test_messages_from_alpaca_join_the_input_as_our_chat_rendering_does(store: Store, tmp_path: Path) -> None:
    info, selection_id = _selection(store, "alpaca")
    out = tmp_path / "chat.jsonl"

    written = stream_export(store, info, out, selection_id=selection_id, fmt="messages")

    got = _read_back(out, "messages", tmp_path / "cache")
    first = alpaca_rows()[PICKS[0]]  # row 5: an input, no system prompt
    assert got[0] == {
        "messages": [
            {"role": "user", "content": f"{first['instruction']}\n\ncontext 5"},
            {"role": "assistant", "content": first["output"]},
        ],
        "id": "a05",
        "source": "web",
        "meta": {"n": 5, "tags": ["x", "5"]},
    }
    with_system = got[1]["messages"]  # row 0: a system prompt, no input
    assert with_system[0] == {"role": "system", "content": "Answer in one line."}
    assert with_system[1] == {"role": "user", "content": alpaca_rows()[0]["instruction"]}
    assert "system" not in got[1]  # it became the system turn
    assert [row["id"] for row in got] == [f"a{i:02d}" for i in PICKS]
    assert [len(row["messages"]) for row in got] == [3 if i % 3 == 0 else 2 for i in PICKS]
    assert "blank line" in _manifest(written)["format"]["rule"]


def test_sharegpt_from_a_chat_source_keeps_every_turn_with_sharegpt_roles(store: Store, tmp_path: Path) -> None:
    info = ds.get_dataset(store, "chat")
    out = tmp_path / "kept.jsonl"

    written = stream_export(store, info, out, fmt="sharegpt")

    got = _read_back(out, "sharegpt", tmp_path / "cache")
    assert written.n_rows == 24 and len(got) == 24
    for n, (row, source) in enumerate(zip(got, chat_rows(), strict=True)):
        expected_roles = (["system"] if n % 2 else []) + ["human", "gpt"]
        assert [turn["from"] for turn in row["conversations"]] == expected_roles
        assert [turn["value"] for turn in row["conversations"]] == [t["content"] for t in source["messages"]]
        assert (row["id"], row["lang"]) == (source["id"], "en")
    assert _manifest(written)["format"]["columns"] == ["conversations", "id", "lang"]


def test_messages_from_a_chat_source_lower_cases_roles_and_adds_no_system_turn(store: Store, tmp_path: Path) -> None:
    info = ds.get_dataset(store, "chat")
    out = tmp_path / "kept.jsonl"

    stream_export(store, info, out, fmt="messages")

    got = _read_back(out, "messages", tmp_path / "cache")
    assert got[0]["messages"] == [
        {"role": "user", "content": chat_rows()[0]["messages"][0]["content"]},
        {"role": "assistant", "content": chat_rows()[0]["messages"][1]["content"]},
    ]
    assert got[1]["messages"][0] == {"role": "system", "content": "You are terse."}


def test_a_column_without_one_type_is_written_as_json_text_and_named(tmp_path: Path) -> None:
    rows = [{**row, "score": n if n % 2 else f"grade {n}", "empty": {}} for n, row in enumerate(keyword_rows())]
    store = Store(tmp_path / "ws")
    prepare(store, write_jsonl(tmp_path / "mixed.jsonl", rows), PrepareOptions(embedder=KEYWORD_EMBEDDER, k_grid=(2,)))
    info = ds.list_datasets(store)[0]

    written = stream_export(store, info, tmp_path / "mixed.parquet", fmt="parquet", chunk_rows=5)

    table = pq.read_table(written.path).to_pylist()
    assert [json.loads(row["score"]) for row in table] == [row["score"] for row in rows]
    assert {row["empty"] for row in table} == {"{}"}
    assert _manifest(written)["format"]["json_text_columns"] == ["score", "empty"]


def test_an_export_keeping_nothing_is_still_a_readable_file(store: Store, tmp_path: Path) -> None:
    info = ds.get_dataset(store, "chat")

    parquet = stream_export(store, info, tmp_path / "none.parquet", fmt="parquet", tag="carried by no row")
    folder = stream_export(store, info, tmp_path / "none-hf", fmt="hf", tag="carried by no row")

    assert pq.read_table(parquet.path).column_names == ["messages"] and parquet.n_rows == 0
    assert _read_back(folder.path, "hf", tmp_path / "cache") == []


def test_llamafactory_and_axolotl_files_point_at_each_written_export(store: Store, tmp_path: Path) -> None:
    info, selection_id = _selection(store, "alpaca")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "other.json"}}))
    both = TrainerFiles(llamafactory=True, axolotl=True)
    outputs = {
        "jsonl": tmp_path / "own.jsonl",
        "messages": tmp_path / "chat.jsonl",
        "sharegpt": tmp_path / "gpt.jsonl",
        "parquet": tmp_path / "own.parquet",
        "hf": tmp_path / "own-hf",
    }
    for fmt, out in outputs.items():
        stream_export(store, info, out, selection_id=selection_id, fmt=fmt, trainer_files=both)

    dataset_info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert dataset_info["other"] == {"file_name": "other.json"}  # merged, not overwritten
    alpaca_columns = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
    assert dataset_info["own"] == {"file_name": "own.jsonl", "columns": alpaca_columns}
    assert dataset_info["chat"] == {
        "file_name": "chat.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    }
    assert dataset_info["gpt"]["columns"] == {"messages": "conversations"}
    assert dataset_info["gpt"]["tags"] == {
        "role_tag": "from",
        "content_tag": "value",
        "user_tag": "human",
        "assistant_tag": "gpt",
        "system_tag": "system",
    }
    assert dataset_info["own.parquet"] == {"file_name": "own.parquet", "columns": alpaca_columns}
    assert dataset_info["own-hf"]["file_name"] == "own-hf/data-00000-of-00001.arrow"
    for entry in dataset_info.values():  # every file_name resolves against the folder of dataset_info.json
        assert (tmp_path / entry["file_name"]).is_file() or entry["file_name"] == "other.json"

    names = {"jsonl": "own", "messages": "chat", "sharegpt": "gpt", "parquet": "own.parquet", "hf": "own-hf"}
    blocks = {fmt: yaml.safe_load((tmp_path / f"{name}.axolotl.yaml").read_text()) for fmt, name in names.items()}
    for fmt, block in blocks.items():
        (item,) = block["datasets"]
        assert (tmp_path / item["path"]).exists() and item["path"] == outputs[fmt].name
    assert blocks["jsonl"]["datasets"][0] == {"path": "own.jsonl", "ds_type": "json", "type": "alpaca"}
    assert blocks["parquet"]["datasets"][0]["ds_type"] == "parquet"
    assert "ds_type" not in blocks["hf"]["datasets"][0]  # a folder: Axolotl opens it with load_from_disk
    assert blocks["messages"]["datasets"][0] == {
        "path": "chat.jsonl",
        "ds_type": "json",
        "type": "chat_template",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
    }
    sharegpt = blocks["sharegpt"]["datasets"][0]
    assert (sharegpt["field_messages"], sharegpt["message_property_mappings"]) == (
        "conversations",
        {"role": "from", "content": "value"},
    )
    assert sharegpt["roles"] == {"user": ["human"], "assistant": ["gpt"], "system": ["system"]}


def test_the_llamafactory_entry_of_the_hf_export_is_loadable_as_it_says(store: Store, tmp_path: Path) -> None:
    """LLaMA-Factory loads a file_name by its extension with datasets' builder of that name (arrow here)."""
    import datasets

    info, selection_id = _selection(store, "alpaca")
    stream_export(store, info, tmp_path / "x-hf", selection_id=selection_id, fmt="hf", trainer_files=TrainerFiles(True))

    entry = json.loads((tmp_path / "dataset_info.json").read_text())["x-hf"]
    data = tmp_path / entry["file_name"]
    loaded = datasets.load_dataset("arrow", data_files=[str(data)], split="train", cache_dir=str(tmp_path / "c"))
    assert [row["id"] for row in loaded] == [f"a{i:02d}" for i in PICKS]


def test_mapped_columns_are_named_in_both_trainers_files(store: Store, tmp_path: Path) -> None:
    info = ds.get_dataset(store, "mapped")

    stream_export(store, info, tmp_path / "m.jsonl", trainer_files=TrainerFiles(llamafactory=True, axolotl=True))

    entry = json.loads((tmp_path / "dataset_info.json").read_text())["m"]
    assert entry == {"file_name": "m.jsonl", "columns": {"prompt": "prompt", "response": "completion"}}
    (item,) = yaml.safe_load((tmp_path / "m.axolotl.yaml").read_text())["datasets"]
    assert item["type"]["field_instruction"] == "prompt" and item["type"]["field_output"] == "completion"
    assert "field_input" not in item["type"] and "{instruction}" in item["type"]["no_input_format"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_export_format_errors_and_trainer_flags(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(store.workspace)
    base = ("export", "--workspace", ws, "--dataset", "alpaca")

    code, _, err = _run(capsys, *base, "--out", str(tmp_path / "x.csv"), "--format", "csv")
    assert (code, err) == (1, "error: unknown export format 'csv'; known: hf, jsonl, messages, parquet, sharegpt\n")
    assert not (tmp_path / "x.csv").exists()

    (tmp_path / "taken").mkdir()
    code, _, err = _run(capsys, *base, "--out", str(tmp_path / "taken"), "--format", "hf", "--force")
    assert code == 1 and "taken exists and is a folder no export wrote" in err
    assert list((tmp_path / "taken").iterdir()) == []

    out = tmp_path / "ds-hf"
    code, stdout, _ = _run(capsys, *base, "--out", str(out), "--format", "hf", "--llamafactory", "--axolotl")
    assert code == 0 and stdout.splitlines() == [
        f"wrote 24 rows to {out} (manifest: {tmp_path / 'ds-hf.manifest.json'})",
        f"wrote {tmp_path / 'dataset_info.json'}",
        f"wrote {tmp_path / 'ds-hf.axolotl.yaml'}",
    ]
    code, _, err = _run(capsys, *base, "--out", str(out), "--format", "hf", "--axolotl")
    assert code == 1 and "already exist; pass --force to overwrite" in err
    code, stdout, _ = _run(capsys, *base, "--out", str(out), "--format", "hf", "--force")
    assert code == 0 and len(_read_back(out, "hf", tmp_path / "cache")) == 24  # the folder replaced whole
