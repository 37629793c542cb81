"""Bad input files: the error names the file, the line (or row) and the field, and the store is left as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.errors import IngestError
from core.ingest import columns_of, read_dataset
from core.prepare import PrepareOptions, prepare
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl
from tests.unit.conftest import count_rows, store_snapshot

GOOD = json.dumps({"instruction": "Bake bread", "input": "", "output": "Knead, rise, bake."})


def _line(row: object) -> str:
    return json.dumps(row) + "\n"


def _jsonl(*rows: object) -> bytes:
    return "".join(_line(row) for row in rows).encode()


# A good row, then one whose output is 5 MiB: several rows run together, say (the default limit is 1 MiB).
HUGE_ROW_FILE = (GOOD + "\n" + _line({"instruction": "Summarise", "output": "word " * (1024 * 1024)})).encode()


@pytest.fixture(scope="module")
def busy_workspace(template_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace that already holds the prepared "tiny" dataset; failing prepares must leave it untouched."""
    copy = tmp_path_factory.mktemp("errors") / "ws"
    shutil.copytree(template_workspace, copy)
    return copy


# (file name, bytes, column mapping, fragments the error message must contain)
BAD_INPUTS = {
    "malformed_json_line": (
        "broken.jsonl",
        (GOOD + "\n" + GOOD + "\n" + '{"instruction": "x", "output": \n').encode(),
        None,
        ["broken.jsonl", "line 3", "malformed JSON"],
    ),
    "missing_required_field": (
        "missing.jsonl",
        (GOOD + "\n" + _line({"instruction": "Say hi"})).encode(),
        None,
        ["missing.jsonl", "line 2", "field 'output'", "missing required field"],
    ),
    "number_instead_of_string": (
        "number.jsonl",
        (GOOD + "\n" + GOOD + "\n" + _line({"instruction": "Add", "output": 42})).encode(),
        None,
        ["number.jsonl", "line 3", "field 'output'", "expected a string, found a number"],
    ),
    "list_instead_of_string": (
        "listed.jsonl",
        _line({"instruction": ["a", "b"], "output": "ab"}).encode(),
        None,
        ["listed.jsonl", "line 1", "field 'instruction'", "expected a string, found a list"],
    ),
    "null_instruction": (
        "nullish.jsonl",
        (GOOD + "\n" + _line({"instruction": None, "output": "x"})).encode(),
        None,
        ["nullish.jsonl", "line 2", "field 'instruction'", "expected a string, found null"],
    ),
    "empty_file": ("empty.jsonl", b"", None, ["empty.jsonl", "the file is empty"]),
    "blank_lines_only": ("blank.jsonl", b"\n\n   \n\t\n", None, ["blank.jsonl", "the file is empty"]),
    "invalid_utf8": (
        "latin1.jsonl",
        GOOD.encode() + b"\n" + b'{"instruction": "caf\xe9", "output": "coffee"}\n',
        None,
        ["latin1.jsonl", "line 2", "not valid UTF-8"],
    ),
    "utf16_cut_short": (
        "wide.jsonl",
        (GOOD + "\n").encode("utf-16")[:-1],  # the last character lost its second byte
        None,
        ["wide.jsonl", "looks like UTF-16 text but is not valid UTF-16", "truncated data", "iconv -f UTF-16 -t UTF-8"],
    ),
    "unknown_shape": (
        "pairs.jsonl",
        _line({"prompt": "Say hi", "completion": "Hi"}).encode(),
        None,
        ["pairs.jsonl", "unknown shape", "prompt", "completion"],
    ),
    "json_array_cut_short": (
        "cut.json",
        b'[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c", "output": "d"\n',
        None,
        ["cut.json", "malformed JSON", "line 4"],
    ),
    "csv_ragged_row": (
        "ragged.csv",
        b"instruction,input,output\nBake bread,,Knead it\nSay hi,,Hi,extra\n",
        None,
        ["ragged.csv", "line 3", "expected 3 fields, found 4"],
    ),
    "not_parquet": (
        "fake.parquet",
        b"instruction,output\na,b\n",
        None,
        ["fake.parquet", "not a readable Parquet file"],
    ),
    "messages_without_assistant": (
        "chat.jsonl",
        _line({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}).encode(),
        None,
        ["chat.jsonl", "line 1", "field 'messages'", "no assistant turn"],
    ),
    "nul_byte_in_jsonl_line": (
        "nul.jsonl",
        GOOD.encode() + b"\n" + b'{"instruction": "Say\x00hi", "output": "Hi"}\n',
        None,
        ["nul.jsonl", "line 2", "contains a NUL byte"],
    ),
    "nul_byte_in_csv": (
        "nul.csv",
        b"instruction,input,output\nBake bread,,Knead it\nSay\x00hi,,Hi\n",
        None,
        ["nul.csv", "line 3", "contains a NUL byte"],
    ),
    "row_over_the_size_limit": (
        "huge.jsonl",
        HUGE_ROW_FILE,
        None,
        ["huge.jsonl", "line 2", "field 'output'", "is 5.0 MB", "rows over 1.0 MB are refused", "CURATE_MAX_ROW_BYTES"],
    ),
    "duplicate_user_id": (
        "dup.jsonl",
        _jsonl(
            {"id": "abc", "instruction": "Say hi", "output": "Hi"},
            {"id": "xyz", "instruction": "Say bye", "output": "Bye"},
            {"id": "abc", "instruction": "Say hello", "output": "Hello"},
        ),
        None,
        ["dup.jsonl", "line 3", "field 'id'", "duplicate id 'abc' (first seen on line 1)"],
    ),
    "boolean_instead_of_string": (
        "flag.jsonl",
        (GOOD + "\n" + _line({"instruction": "Is bread food?", "output": True})).encode(),
        None,
        ["flag.jsonl", "line 2", "field 'output'", "expected a string, found a boolean"],
    ),
    "object_instead_of_string": (
        "nested.jsonl",
        _line({"instruction": "Add", "input": {"a": 1, "b": 2}, "output": "3"}).encode(),
        None,
        ["nested.jsonl", "line 1", "field 'input'", "expected a string, found an object"],
    ),
    "messages_is_plain_text": (
        "chat_text.jsonl",
        _line({"messages": "user: hi / assistant: hello"}).encode(),
        None,
        ["chat_text.jsonl", "line 1", "field 'messages'", "expected a list of turns, found a string that is not JSON"],
    ),
    "lone_surrogate_escape": (
        "surrogate.jsonl",
        (GOOD + "\n" + '{"instruction": "half an emoji \\ud83d", "output": "x"}\n').encode(),
        None,
        ["surrogate.jsonl", "line 2", "field 'instruction'", "unpaired surrogate"],
    ),
    "mapping_names_missing_column": (
        "qa.jsonl",
        _line({"question": "Say hi", "answer": "Hi"}).encode(),
        {"instruction": "prompt", "output": "answer"},
        ["qa.jsonl", "column 'prompt'", "question, answer"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_reported_and_stores_nothing(
    case: str, busy_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CURATE_MAX_ROW_BYTES", raising=False)  # the size case expects the 1 MiB default
    file_name, content, mapping, fragments = BAD_INPUTS[case]
    path = tmp_path / file_name
    path.write_bytes(content)
    before = store_snapshot(busy_workspace)

    with pytest.raises(IngestError) as caught:
        prepare(
            Store(busy_workspace),
            path,
            PrepareOptions(name=f"bad-{case}", mapping=mapping, embedder=KEYWORD_EMBEDDER, k_grid=(2,)),
        )

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    after = store_snapshot(busy_workspace)
    assert after == before
    assert [name for name, _, _ in after[0]] == ["tiny"]


def test_several_bad_rows_name_the_first_and_count_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text(GOOD + "\n{oops\n" + _line({"instruction": "x"}) + "[1, 2]\n", encoding="utf-8")

    with pytest.raises(IngestError) as caught:
        read_dataset(path)

    assert str(caught.value).startswith("many.jsonl, line 2: malformed JSON")
    assert "and 2 more bad rows" in str(caught.value)


def test_unsupported_suffix_names_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(GOOD + "\n", encoding="utf-8")

    with pytest.raises(
        IngestError, match=r"notes\.txt: unsupported file type '\.txt'.*\.jsonl, \.json, \.csv, \.parquet"
    ):
        read_dataset(path)


def test_skip_bad_rows_stores_the_good_rows_and_names_the_bad_lines(workspace: Path, tmp_path: Path) -> None:
    rows = keyword_rows(per_topic=2)
    lines = [json.dumps(row) for row in rows]
    lines.insert(2, '{"instruction": "broken"')  # line 3
    lines.insert(5, json.dumps({"instruction": "no output here"}))  # line 6
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before_version = Store(workspace).data_version()

    report = prepare(
        Store(workspace),
        path,
        PrepareOptions(name="mixed", skip_bad_rows=True, embedder=KEYWORD_EMBEDDER, k_grid=(2, 4)),
    )

    assert report.n_rows == 8
    assert report.n_skipped == 2
    assert len(report.skipped) == 2
    assert report.skipped[0].startswith("line 3: malformed JSON")
    assert report.skipped[1] == "line 6, field 'output': missing required field"
    info = ds.get_dataset(Store(workspace), "mixed")
    assert (info.n_rows, info.n_skipped, info.status) == (8, 2, "ready")
    assert count_rows(workspace, "examples") == 24 + 8
    assert Store(workspace).data_version() > before_version


def test_skip_bad_rows_with_no_good_row_still_fails(tmp_path: Path) -> None:
    path = tmp_path / "allbad.jsonl"
    path.write_text("{oops\n" + GOOD[:20] + "\n", encoding="utf-8")

    with pytest.raises(IngestError, match=r"allbad\.jsonl: no usable rows found \(2 bad rows\)"):
        read_dataset(path, skip_bad_rows=True)


def test_utf8_bom_jsonl_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\n" + _line({"instruction": "Hi", "output": "Hello"})).encode())

    result = read_dataset(path)

    assert [e.instruction for e in result.examples] == ["Bake bread", "Hi"]
    assert list(result.examples[0].original) == ["instruction", "input", "output"]


def test_utf8_bom_json_array_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    rows = [json.loads(GOOD), {"instruction": "Hi", "output": "Hello"}]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(rows, indent=2).encode())

    result = read_dataset(path)

    assert [e.instruction for e in result.examples] == ["Bake bread", "Hi"]
    assert [e.original for e in result.examples] == rows


def test_utf8_bom_csv_header_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfinstruction,input,output\nBake bread,,Knead it\n")

    result = read_dataset(path)

    assert result.shape == "alpaca"
    assert (result.examples[0].instruction, result.examples[0].output) == ("Bake bread", "Knead it")


def test_failed_prepare_keeps_the_name_free(workspace: Path, tmp_path: Path) -> None:
    bad = tmp_path / "later.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    with pytest.raises(IngestError):
        prepare(Store(workspace), bad, PrepareOptions(name="later", embedder=KEYWORD_EMBEDDER, k_grid=(2,)))

    good = write_jsonl(tmp_path / "later_fixed.jsonl", keyword_rows(per_topic=2))
    report = prepare(Store(workspace), good, PrepareOptions(name="later", embedder=KEYWORD_EMBEDDER, k_grid=(2,)))

    assert (report.name, report.n_rows, report.reused) == ("later", 8, False)


def test_a_raised_row_limit_accepts_the_large_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.jsonl"
    path.write_bytes(HUGE_ROW_FILE)
    monkeypatch.setenv("CURATE_MAX_ROW_BYTES", str(6 * 1024 * 1024))

    result = read_dataset(path)

    assert [e.instruction for e in result.examples] == ["Bake bread", "Summarise"]
    assert len(result.examples[1].output.encode()) == 5 * 1024 * 1024


@pytest.mark.parametrize(("suffix", "unit"), [(".jsonl", "line"), (".json", "row")])
def test_skip_bad_rows_keeps_the_first_of_a_duplicated_id(tmp_path: Path, suffix: str, unit: str) -> None:
    rows = [
        {"id": "a", "instruction": "Say hi", "output": "Hi"},
        {"id": "b", "instruction": "Say bye", "output": "Bye"},
        {"id": "a", "instruction": "Say hello", "output": "Hello"},  # the repeat: skipped and reported
        {"id": 1, "instruction": "Count", "output": "1"},
        {"id": "1", "instruction": "Count again", "output": "one"},  # 1 and "1" are different ids
        {"instruction": "No id", "output": "fine"},
        {"instruction": "No id", "output": "fine"},  # rows without an id may repeat
    ]
    path = tmp_path / f"ids{suffix}"
    path.write_bytes(_jsonl(*rows) if suffix == ".jsonl" else json.dumps(rows).encode())

    result = read_dataset(path, skip_bad_rows=True)

    assert [e.original.get("id") for e in result.examples] == ["a", "b", 1, "1", None, None]
    assert result.examples[0].output == "Hi"
    assert [bad.describe() for bad in result.bad_rows] == [
        f"{unit} 3, field 'id': duplicate id 'a' (first seen on {unit} 1)"
    ]


def test_a_k_grid_too_large_for_the_file_is_refused_before_anything_is_stored(
    busy_workspace: Path, tmp_path: Path
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(GOOD + "\n")
    before = store_snapshot(busy_workspace)

    with pytest.raises(ValueError, match=r"one.jsonl: the k grid \[2\] has no k between 1 and the file's 1 rows"):
        prepare(Store(busy_workspace), path, PrepareOptions(name="one", embedder=KEYWORD_EMBEDDER, k_grid=(2,)))

    assert store_snapshot(busy_workspace) == before


WIDE_ROWS = [  # no commas or quotes, so the CSV needs no quoting
    {"instruction": "Bake bread", "input": "", "output": "Knead; rise; bake."},
    {"instruction": "Traduis « café »", "input": "日本語", "output": "coffee ☕ 😀"},  # 😀: a UTF-16 surrogate pair
]


def _wide_file(suffix: str) -> str:
    """WIDE_ROWS as the text of a .jsonl, .json or .csv file."""
    if suffix == ".jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in WIDE_ROWS)
    if suffix == ".json":
        return json.dumps(WIDE_ROWS, ensure_ascii=False, indent=2)
    return "instruction,input,output\r\n" + "".join(",".join(row.values()) + "\r\n" for row in WIDE_ROWS)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-16", b""),  # Python writes the byte-order mark itself (little-endian here)
        ("utf-16-be", b"\xfe\xff"),
        ("utf-16-le", b""),  # no mark: told by its NUL bytes
        ("utf-16-be", b""),
        ("utf-32", b""),
        ("utf-8-sig", b""),
    ],
)
def test_utf16_and_utf32_files_are_read_as_their_text(tmp_path: Path, suffix: str, encoding: str, bom: bytes) -> None:
    path = tmp_path / f"wide{suffix}"
    path.write_bytes(bom + _wide_file(suffix).encode(encoding))

    result = read_dataset(path)

    assert [e.original for e in result.examples] == WIDE_ROWS
    assert result.examples[1].output == "coffee ☕ 😀"
    assert columns_of(path) == ["instruction", "input", "output"]  # the column-mapping form reads it too


def test_a_utf16_file_prepares_and_exports_as_utf8(workspace: Path, tmp_path: Path) -> None:
    from core.export import build_export

    rows = keyword_rows(per_topic=2)
    path = tmp_path / "windows.jsonl"
    path.write_bytes("".join(json.dumps(row, ensure_ascii=False) + "\r\n" for row in rows).encode("utf-16"))

    prepare(Store(workspace), path, PrepareOptions(name="windows", embedder=KEYWORD_EMBEDDER, k_grid=(2,)))

    exported = build_export(Store(workspace), ds.get_dataset(Store(workspace), "windows")).jsonl
    assert [json.loads(line) for line in exported.decode("utf-8").splitlines()] == rows


def test_a_file_where_every_row_is_bad_does_not_advise_skipping_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "allbad.jsonl"
    path.write_text("{oops\n[1, 2]\n" + json.dumps({"instruction": "x"}) + "\n", encoding="utf-8")

    with pytest.raises(IngestError) as caught:
        read_dataset(path)

    message = str(caught.value)
    assert message.startswith("allbad.jsonl, line 1: malformed JSON")
    assert "and 2 more bad rows; no row is usable, so nothing was stored" in message
    assert "skip bad rows" not in message
    assert "iconv" not in message  # the rows are UTF-8: converting would not help


def test_a_file_in_another_encoding_is_refused_with_how_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    text = '{"instruction": "Un café", "output": "Oui"}\n{"instruction": "Une crème", "output": "Non"}\n'
    path.write_bytes(text.encode("latin-1"))

    for skip in (False, True):
        with pytest.raises(IngestError) as caught:
            read_dataset(path, skip_bad_rows=skip)
        message = str(caught.value)
        assert "line 1" in message and "not valid UTF-8 (byte 0xe9" in message
        assert "skip bad rows" not in message
        assert "the file is not UTF-8 text" in message and "iconv -f WINDOWS-1252 -t UTF-8 latin1.jsonl" in message


def test_a_few_bad_bytes_among_good_rows_still_advise_skipping_them(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    latin1_row = b'{"instruction": "caf\xe9", "output": "coffee"}\n'
    path.write_bytes(GOOD.encode() + b"\n" + latin1_row + latin1_row.replace(b"caf", b"th"))

    with pytest.raises(IngestError) as caught:
        read_dataset(path)

    message = str(caught.value)
    assert message.startswith("mixed.jsonl, line 2: not valid UTF-8 (byte 0xe9 at column 21)")
    assert "(and 1 more bad rows; nothing was stored. Turn on 'skip bad rows' to load the rest)" in message
    assert "iconv" not in message
    assert [e.instruction for e in read_dataset(path, skip_bad_rows=True).examples] == ["Bake bread"]


@pytest.mark.parametrize(
    ("file_name", "name", "fragments"),
    [
        ("ok.jsonl", "two\nlines", ["the dataset name 'two\\nlines' holds the control or invisible character"]),
        ("ok.jsonl", "../escape", ["the dataset name '../escape' holds a path separator"]),
        ("ok.jsonl", "   ", ["is blank: a dataset needs a name"]),
        (".hidden.jsonl", None, ["the dataset name '.hidden' starts with a dot", "give the dataset a name"]),
    ],
)
def test_a_dataset_name_that_cannot_be_one_is_refused_before_anything_is_stored(
    busy_workspace: Path, tmp_path: Path, file_name: str, name: str | None, fragments: list[str]
) -> None:
    path = write_jsonl(tmp_path / file_name, keyword_rows(per_topic=1))
    before = store_snapshot(busy_workspace)

    with pytest.raises(ValueError) as caught:
        prepare(Store(busy_workspace), path, PrepareOptions(name=name, embedder=KEYWORD_EMBEDDER, k_grid=(2,)))

    for fragment in fragments:
        assert fragment in str(caught.value)
    assert "letters, digits, spaces" in str(caught.value)
    assert store_snapshot(busy_workspace) == before


@pytest.mark.parametrize(
    ("file_name", "content", "expected"),
    [
        (
            "cut.jsonl",
            GOOD + '\n{"instruction": "Say hi\n',
            "cut.jsonl, line 2: malformed JSON: Unterminated string starting at column 17 (nothing was stored)",
        ),
        (
            "tab.json",
            '[{"instruction": "Say\thi", "output": "Hi"}]',
            "tab.json, line 1: malformed JSON: Invalid control character at column 22",
        ),
        (
            "chat.jsonl",
            json.dumps({"messages": '[{"role": "user'}) + "\n",
            "chat.jsonl, line 1, field 'messages': expected a list of turns, found a string that is not JSON: "
            "Unterminated string starting at column 11 (nothing was stored)",
        ),
    ],
)
def test_a_json_error_names_its_column_once(tmp_path: Path, file_name: str, content: str, expected: str) -> None:
    path = tmp_path / file_name
    path.write_text(content, encoding="utf-8")

    with pytest.raises(IngestError) as caught:
        read_dataset(path)

    assert str(caught.value) == expected  # "starting at column 17", not "starting at at column 17"
