"""The file formats and row shapes a curator can load, normalised to (instruction, input, output, messages)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.ingest import embed_text, read_dataset
from tests.conftest import write_jsonl

ALPACA_ROWS = [
    {"instruction": "Translate to French", "input": "good morning", "output": "bonjour"},
    {"instruction": "Name a planet", "input": "", "output": "Mars"},
    {"instruction": "Summarise the text", "input": "Bread needs yeast.", "output": ""},
]
EXPECTED = [(r["instruction"], r["input"], r["output"]) for r in ALPACA_ROWS]


def _write_alpaca(path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".jsonl":
        write_jsonl(path, ALPACA_ROWS)
    elif suffix == ".json":
        path.write_text(json.dumps(ALPACA_ROWS, indent=2), encoding="utf-8")
    elif suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["instruction", "input", "output"])
            writer.writeheader()
            writer.writerows(ALPACA_ROWS)
    else:
        pq.write_table(pa.Table.from_pylist(ALPACA_ROWS), path)
    return path


@pytest.mark.parametrize(
    ("suffix", "first_location"),
    [(".jsonl", "line 1"), (".json", "row 1"), (".csv", "line 2"), (".parquet", "row 1")],
)
def test_alpaca_rows_read_the_same_from_every_format(tmp_path: Path, suffix: str, first_location: str) -> None:
    result = read_dataset(_write_alpaca(tmp_path / f"alpaca{suffix}"))

    assert result.shape == "alpaca"
    assert [(e.instruction, e.input, e.output) for e in result.examples] == EXPECTED
    assert [e.messages for e in result.examples] == [None, None, None]
    assert result.examples[0].location == first_location
    assert result.examples[0].original == ALPACA_ROWS[0]
    assert result.bad_rows == []


def test_same_content_gets_the_same_ids_in_every_format(tmp_path: Path) -> None:
    ids = {
        suffix: [e.example_id for e in read_dataset(_write_alpaca(tmp_path / f"a{suffix}")).examples]
        for suffix in (".jsonl", ".json", ".csv", ".parquet")
    }

    assert len(set(ids[".jsonl"])) == 3
    assert ids[".json"] == ids[".csv"] == ids[".parquet"] == ids[".jsonl"]


def test_json_object_with_a_data_array_is_read(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": ALPACA_ROWS, "version": 2}), encoding="utf-8")

    result = read_dataset(path)

    assert [(e.instruction, e.input, e.output) for e in result.examples] == EXPECTED


def test_extra_fields_are_kept_in_the_original(tmp_path: Path) -> None:
    row = {"id": "q-17", "instruction": "Name a planet", "output": "Mars", "source": "handmade", "score": 0.5}
    result = read_dataset(write_jsonl(tmp_path / "extra.jsonl", [row]))

    example = result.examples[0]
    assert example.original == row
    assert (example.instruction, example.input, example.output) == ("Name a planet", "", "Mars")


CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "6"},
]


def test_chat_messages_take_the_first_exchange_and_keep_every_turn(tmp_path: Path) -> None:
    result = read_dataset(write_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT, "lang": "en"}]))

    example = result.examples[0]
    assert result.shape == "messages"
    assert (example.instruction, example.input, example.output) == ("What is 2+2?", "", "4")
    assert example.messages == CHAT
    assert example.original == {"messages": CHAT, "lang": "en"}


def test_chat_output_is_the_first_assistant_reply_after_the_first_user_turn(tmp_path: Path) -> None:
    turns = [
        {"role": "assistant", "content": "Hello! Ask me anything."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    example = read_dataset(write_jsonl(tmp_path / "chat.jsonl", [{"messages": turns}])).examples[0]

    assert (example.instruction, example.output) == ("Capital of France?", "Paris.")
    assert [t["role"] for t in example.messages] == ["assistant", "user", "assistant"]


def test_chat_messages_in_a_csv_cell_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["messages"])
        writer.writerow([json.dumps(CHAT)])

    example = read_dataset(path).examples[0]

    assert (example.instruction, example.output) == ("What is 2+2?", "4")
    assert example.messages == CHAT


def test_sharegpt_conversations_map_roles_to_user_and_assistant(tmp_path: Path) -> None:
    conversation = [
        {"from": "system", "value": "Be kind."},
        {"from": "human", "value": "Name a planet."},
        {"from": "gpt", "value": "Venus."},
        {"from": "human", "value": "Another?"},
        {"from": "gpt", "value": "Saturn."},
    ]
    result = read_dataset(write_jsonl(tmp_path / "sharegpt.jsonl", [{"id": "c1", "conversations": conversation}]))

    example = result.examples[0]
    assert result.shape == "sharegpt"
    assert (example.instruction, example.input, example.output) == ("Name a planet.", "", "Venus.")
    assert example.messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Name a planet."},
        {"role": "assistant", "content": "Venus."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Saturn."},
    ]
    assert example.original["id"] == "c1"


def test_explicit_column_mapping(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Add the numbers", "context": "2 and 3", "completion": "5"},
        {"prompt": "Say hi", "context": None, "completion": "Hi"},
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)

    result = read_dataset(path, mapping={"instruction": "prompt", "input": "context", "output": "completion"})

    assert result.shape == "mapped"
    assert result.mapping == {"instruction": "prompt", "input": "context", "output": "completion"}
    assert [(e.instruction, e.input, e.output) for e in result.examples] == [
        ("Add the numbers", "2 and 3", "5"),
        ("Say hi", "", "Hi"),
    ]
    assert [e.original for e in result.examples] == rows


def test_mapping_without_input_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Say hi", "completion": "Hi"}])

    result = read_dataset(path, mapping={"instruction": "prompt", "output": "completion"})

    assert result.mapping == {"instruction": "prompt", "input": None, "output": "completion"}
    assert [(e.instruction, e.input, e.output) for e in result.examples] == [("Say hi", "", "Hi")]


def test_ids_are_stable_across_reads_and_row_order(tmp_path: Path) -> None:
    path = _write_alpaca(tmp_path / "a.jsonl")
    first = [e.example_id for e in read_dataset(path).examples]
    second = [e.example_id for e in read_dataset(path).examples]
    reordered = write_jsonl(tmp_path / "b.jsonl", list(reversed(ALPACA_ROWS)))

    assert first == second
    assert [e.example_id for e in read_dataset(reordered).examples] == list(reversed(first))


def test_exact_duplicates_are_kept_with_numbered_ids(tmp_path: Path) -> None:
    duplicate = {"instruction": "Say hi", "input": "", "output": "Hi"}
    other = {"instruction": "Say bye", "input": "", "output": "Bye"}
    path = write_jsonl(tmp_path / "dups.jsonl", [duplicate, other, duplicate, duplicate])

    examples = read_dataset(path).examples

    assert len(examples) == 4
    base = examples[0].content_hash[:16]
    assert [e.example_id for e in examples] == [base, examples[1].content_hash[:16], f"{base}-2", f"{base}-3"]
    assert examples[0].content_hash == examples[2].content_hash == examples[3].content_hash
    assert examples[1].content_hash != examples[0].content_hash


def test_same_prompt_different_answer_shares_the_prompt_hash_only(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Say hi", "input": "", "output": "Hi"},
        {"instruction": "Say hi", "input": "", "output": "Hello"},
    ]
    first, second = read_dataset(write_jsonl(tmp_path / "p.jsonl", rows)).examples

    assert first.prompt_hash == second.prompt_hash
    assert first.content_hash != second.content_hash
    assert first.example_id != second.example_id
    assert "-" not in first.example_id + second.example_id


def test_embed_text_joins_instruction_and_input() -> None:
    fields = ("instruction", "input")

    assert embed_text("Translate", "good morning", "bonjour", fields) == "Translate\n\ngood morning"
    assert embed_text("Name a planet", "", "Mars", fields) == "Name a planet"
    assert embed_text("Name a planet", "  ", "Mars", fields) == "Name a planet"
    assert embed_text("Q", "ctx", "A", ("instruction", "input", "output")) == "Q\n\nctx\n\nA"
