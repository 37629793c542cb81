"""Keyword search over instructions and outputs: pages in row order, the total, any case, every character
literal, and the same answers with the word index as by testing every text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.prepare import PrepareOptions, prepare
from core.storage import curation, search
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, write_jsonl

ROWS = [
    *({"instruction": f"Write Python code number {i}", "output": f"print({i})"} for i in range(25)),
    {"instruction": "Apply a 50% discount to the bread", "output": "Half price."},
    {"instruction": "Apply a 50 percent discount to the bread", "output": "Half price."},
    {"instruction": "Rename the variable snake_case", "output": "Done."},
    {"instruction": "Rename the variable snakeXcase", "output": "Done: a_b."},
    {"instruction": "What is the capital of France?", "output": "The CAPITAL of France is Paris."},
    {"instruction": "Name a capital city", "output": "Rome is the capital of Italy."},
    {"instruction": "Café au lait", "output": "A coffee with milk (hot)."},
    {"instruction": "Translate to French", "output": "Jython, CPython and PyPy run python code."},
]
KEYWORDS = (
    "python",
    "PYTHON",
    "ytho",
    "code number 1",
    "50%",
    "%",
    "_",
    "snake_case",
    "a_b",
    "capital of",
    "e capital o",
    "café",
    "(hot)",
    ")",
    "number 2",
    "qqzx",
    "",
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("search")
    options = PrepareOptions(name="rows", embedder=KEYWORD_EMBEDDER, k_grid=(2,))
    prepare(Store(folder / "ws"), write_jsonl(folder / "rows.jsonl", ROWS), options)
    return folder / "ws"


@pytest.fixture
def store(prepared: Path, tmp_path: Path) -> Store:
    """A copy of the prepared workspace, so a test may change it."""
    shutil.copytree(prepared, tmp_path / "ws", ignore=shutil.ignore_patterns(".lock"))
    return Store(tmp_path / "ws")


def _dataset(store: Store) -> int:
    return ds.get_dataset(store, "rows").dataset_id


def _expected(keyword: str) -> list[int]:
    """The rows a user expects: the keyword inside the instruction or the output, ignoring case."""
    word = keyword.lower()
    return [i for i, row in enumerate(ROWS) if word in row["instruction"].lower() or word in row["output"].lower()]


def _found(store: Store, keyword: str, limit: int = 100, offset: int = 0, **kwargs) -> tuple[list[int], int]:
    page, total = curation.examples(store, _dataset(store), 2, search=keyword, limit=limit, offset=offset, **kwargs)
    return [int(row) for row in page.row_idx], total


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_search_finds_exactly_the_rows_holding_the_keyword_in_any_case(prepared: Path, keyword: str) -> None:
    rows, total = _found(Store(prepared), keyword)

    if keyword:
        assert rows == _expected(keyword)
        assert total == len(rows)
    else:  # no keyword: every row
        assert total == len(ROWS)


def test_percent_and_underscore_are_literal(prepared: Path) -> None:
    store = Store(prepared)
    assert _found(store, "50%")[0] == [25]
    assert _found(store, "snake_case")[0] == [27]  # not snakeXcase
    assert _found(store, "a_b")[0] == [28]  # found through the output
    assert _found(store, "%")[0] == [25]
    assert _found(store, "bread%number")[1] == 0


def test_page_two_holds_the_next_rows_and_the_total_is_all_matches(prepared: Path) -> None:
    store = Store(prepared)
    everything = _expected("python")
    assert len(everything) == 26

    first, total = _found(store, "python", limit=10)
    second, total_again = _found(store, "python", limit=10, offset=10)
    last, _ = _found(store, "python", limit=10, offset=20)
    beyond, total_beyond = _found(store, "python", limit=10, offset=30)

    assert first == everything[:10] and second == everything[10:20] and last == everything[20:]
    assert total == total_again == total_beyond == 26
    assert beyond == []


def test_search_within_a_cluster_pages_only_its_rows(prepared: Path) -> None:
    store = Store(prepared)
    dataset_id = _dataset(store)
    members = curation.examples(store, dataset_id, 2, cluster_id=0, limit=100)[0]
    expected = [int(r) for r in members.row_idx if int(r) in _expected("python")]

    rows, total = _found(store, "python", limit=3, offset=0, cluster_id=0)
    more, _ = _found(store, "python", limit=100, offset=3, cluster_id=0)

    assert rows + more == expected
    assert total == len(expected)


def test_page_rows_carry_cluster_veto_and_copies(store: Store) -> None:
    dataset_id = _dataset(store)
    page, _ = curation.examples(store, dataset_id, 2, search="capital of", limit=1)
    curation.set_example_veto(store, dataset_id, str(page.example_id.item()), True)

    page, total = curation.examples(store, dataset_id, 2, search="capital of")

    assert total == 2
    assert list(page.vetoed) == [True, False]
    assert list(page.copies) == [1, 1]
    assert page.cluster_id.notna().all()
    assert page.instruction.iloc[0] == ROWS[29]["instruction"]


def test_a_dataset_without_the_index_gives_the_same_answers(store: Store) -> None:
    indexed = {keyword: _found(store, keyword) for keyword in KEYWORDS}
    with store.write() as con:
        search.drop_index(con, _dataset(store))
    with store.read() as con:
        assert not search.is_indexed(con, _dataset(store))

    assert {keyword: _found(store, keyword) for keyword in KEYWORDS} == indexed


def test_deleting_a_dataset_deletes_its_index(store: Store) -> None:
    dataset_id = _dataset(store)
    with store.read() as con:
        assert search.is_indexed(con, dataset_id)

    ds.delete_dataset(store, dataset_id)

    with store.read() as con:
        assert not search.is_indexed(con, dataset_id)


def test_the_index_command_gives_an_old_dataset_its_word_index(store: Store, capsys) -> None:
    from core.cli import main

    indexed = {keyword: _found(store, keyword) for keyword in KEYWORDS}
    with store.write() as con:  # a dataset prepared before the index existed
        search.drop_index(con, _dataset(store))
    assert not search.has_index(store, _dataset(store))

    assert main(["index", "--workspace", str(store.workspace), "--dataset", "rows"]) == 0
    assert "words indexed" in capsys.readouterr().out
    assert search.has_index(store, _dataset(store))
    assert {keyword: _found(store, keyword) for keyword in KEYWORDS} == indexed
