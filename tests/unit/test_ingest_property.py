"""Property: any JSONL file either loads and exports the rows the user gave (equal values), or fails cleanly.

Hypothesis writes small JSONL files of Alpaca-like rows whose values are arbitrary text (control characters,
NUL, quotes, newlines, markup, BOMs, line separators, half of a surrogate pair) or the wrong type, with
optional user ids that sometimes collide and extra fields of any name. Preparing such a file must either raise
:class:`IngestError` whose message starts with the file name, leaving the store as it was, or succeed; then
exporting gives back every row, in order, with the same keys, values and JSON types.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import IngestError
from core.export import build_export
from core.prepare import PrepareOptions, prepare
from core.storage import datasets as ds
from core.storage.database import Store
from tests.unit.conftest import store_snapshot

# Strings a curator's file really holds and that break naive readers and writers.
TRICKY = [
    "",
    " ",
    "\x00",
    "\r\n",
    "\n",
    "\t",
    '"',
    "\\",
    "\\u0000",
    "\ufeff",
    "\u2028",
    "\x85",
    "\x1c",
    "<b>bold</b> &amp;",
    "**markdown** `code`",
    "```python\nprint('hi')\n```",
    '{"instruction": "nested"}',
    "😀",
    "\ud800",  # half a surrogate pair: only an ASCII-escaped file can carry it, as "\ud800"
]
# Any code point but surrogates, which UTF-8 cannot carry; TRICKY adds one on purpose.
PLAIN = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
TEXT = st.one_of(PLAIN, st.sampled_from(TRICKY), st.tuples(PLAIN, st.sampled_from(TRICKY), PLAIN).map("".join))
WORDY = st.tuples(st.sampled_from(["Explain", "Name", "Bake"]), TEXT).map(" ".join)  # a non-blank instruction
WRONG = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),  # NaN != NaN would defeat the equality check
    st.none(),
    st.booleans(),
    st.lists(PLAIN, max_size=3),
)
VALUE = st.one_of(TEXT, TEXT, WRONG)
USER_ID = st.one_of(st.sampled_from(["a", "b", "1", ""]), st.integers(0, 3), st.just(1.0), PLAIN, WRONG)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """2-6 rows; half the files have only well-typed texts, so successful prepares are common too."""
    well_typed = draw(st.booleans())
    core_fields = {
        "instruction": WORDY if well_typed else st.one_of(WORDY, VALUE),
        "input": TEXT if well_typed else VALUE,
        "output": TEXT if well_typed else VALUE,
    }
    row = st.fixed_dictionaries({}, optional={"id": USER_ID, **core_fields})
    if well_typed:
        row = st.fixed_dictionaries(core_fields, optional={"id": USER_ID})
    extra = st.dictionaries(st.one_of(st.sampled_from(["source", "meta", "tags"]), PLAIN), VALUE, max_size=2)
    pairs = st.tuples(extra, row).map(lambda pair: {**pair[0], **pair[1]})
    return draw(st.lists(pairs, min_size=2, max_size=6))  # prepare needs 2 rows to cluster at k=2


def _write_jsonl(path: Path, data: list[dict[str, Any]], ensure_ascii: bool) -> None:
    text = "".join(json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in data)
    # Without ASCII escapes a lone surrogate can only be written as invalid UTF-8: the reader must say so.
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


def _canonical(value: Any) -> bytes:
    """Bytes that differ whenever the JSON types differ (1 vs 1.0 vs true, 0.0 vs -0.0), unlike ==."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")


@pytest.fixture
def fresh_workspaces(tmp_path: Path) -> itertools.count[int]:
    """A counter for one new workspace folder per Hypothesis example (tmp_path is shared by all of them)."""
    return itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    database=None,  # no .hypothesis folder in the project
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=rows(), ensure_ascii=st.booleans())
def test_ingest_then_export_round_trips_or_fails_cleanly(
    data: list[dict[str, Any]], ensure_ascii: bool, tmp_path: Path, fresh_workspaces: itertools.count[int]
) -> None:
    folder = tmp_path / f"example-{next(fresh_workspaces)}"
    folder.mkdir()
    path, workspace = folder / "rows.jsonl", folder / "ws"
    _write_jsonl(path, data, ensure_ascii)
    before = store_snapshot(workspace)

    try:
        prepare(Store(workspace), path, PrepareOptions(name="prop", embedder={"name": "hashing"}, k_grid=(2,)))
    except IngestError as exc:
        event(f"refused: {exc.detail.split(' (')[0][:40]}")
        assert str(exc).startswith("rows.jsonl")
        assert exc.detail.strip()
        assert store_snapshot(workspace) == before
        return

    event("loaded")
    exported = build_export(Store(workspace), ds.get_dataset(Store(workspace), "prop")).jsonl
    lines = exported.split(b"\n")
    assert lines[-1] == b""  # every row ends with a newline
    parsed = [json.loads(line) for line in lines[:-1]]
    assert len(parsed) == len(data)
    for got, sent in zip(parsed, data, strict=True):
        assert got == sent
        assert list(got) == list(sent)  # field order kept
        assert _canonical(got) == _canonical(sent)
        for key, value in sent.items():
            assert _canonical(got[key]) == _canonical(value)
