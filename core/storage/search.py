"""Keyword search over a dataset's instructions and outputs: a word index built once at prepare time.

A search is a case-insensitive substring search of the instruction or the output, with every character of
the keyword literal (``%`` and ``_`` too). Scanning every text costs about 3.5 s at a million rows on two
cores (``ILIKE``, 4-7 s under load; 2-4 s for a pre-lowered column or a regular expression: docs/benchmarks.md), so the
words of each row are indexed instead, DuckDB's full-text extension being unavailable offline: a vocabulary
(``search_vocab``: each distinct lower-cased run of letters and digits) and postings (``search_postings``:
which rows hold each word). A keyword's runs of letters and digits name the words a matching row must hold:
a run inside the keyword is a whole word of the text, the first run may end a longer word, the last may
begin one, and a keyword that is one run may sit anywhere inside a word. A one-word keyword is answered by
the index alone (a row holds it exactly when one of its words does); for a phrase, the rows holding the
rarest run's words are the candidates, and the substring test on them alone gives the exact answer. A
keyword with no letter or digit (``%``), or a dataset prepared before the index existed, is answered by a
scan: the same answer, more slowly. Words are runs of ASCII letters and digits after DuckDB's ``lower``;
any other character only separates words, which keeps the candidates a superset of the matches.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from core.storage.database import one_row

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from core.storage.database import Store

# The same split in SQL (index) and Python (keyword): lower-case, then runs of ASCII letters and digits.
WORD_PATTERN = "[a-z0-9]+"
_SPLIT_SQL = "[^a-z0-9]+"


def build_index(store: Store, dataset_id: int) -> int:
    """(Re)build the dataset's word index from its instructions and outputs; returns the vocabulary size."""
    with store.write() as con:
        drop_index(con, dataset_id)
        con.execute(
            "CREATE TEMP TABLE new_words AS SELECT DISTINCT row_idx, word FROM ("
            "SELECT row_idx, unnest(regexp_split_to_array(lower(coalesce(instruction, '') || ' ' || "
            "coalesce(output, '')), ?)) AS word FROM examples WHERE dataset_id = ?) WHERE word <> ''",
            [_SPLIT_SQL, dataset_id],
        )
        con.execute(
            "INSERT INTO search_vocab SELECT ?, row_number() OVER (ORDER BY word) - 1, word, n_rows "
            "FROM (SELECT word, count(*) AS n_rows FROM new_words GROUP BY word)",
            [dataset_id],
        )
        con.execute(
            "INSERT INTO search_postings SELECT ?, v.word_id, w.row_idx FROM new_words w "
            "JOIN search_vocab v ON v.dataset_id = ? AND v.word = w.word ORDER BY v.word_id, w.row_idx",
            [dataset_id, dataset_id],
        )
        con.execute("DROP TABLE new_words")
        return int(one_row(con.execute("SELECT count(*) FROM search_vocab WHERE dataset_id = ?", [dataset_id]))[0])


def drop_index(con: duckdb.DuckDBPyConnection, dataset_id: int) -> None:
    """Remove the dataset's word index (inside the caller's write: deleting or re-preparing a dataset)."""
    con.execute("DELETE FROM search_postings WHERE dataset_id = ?", [dataset_id])
    con.execute("DELETE FROM search_vocab WHERE dataset_id = ?", [dataset_id])


def word_conditions(keyword: str) -> list[tuple[str, str]]:
    """What each run of letters and digits of ``keyword`` requires of a word of a matching text, as
    (SQL condition on ``word``, its parameter); empty when the keyword has no such run."""
    lowered = keyword.lower()
    runs = list(re.finditer(WORD_PATTERN, lowered))
    conditions = []
    for run in runs:
        closed_left, closed_right = run.start() > 0, run.end() < len(lowered)
        if closed_left and closed_right:
            conditions.append(("word = ?", run.group()))
        elif closed_left:
            conditions.append(("starts_with(word, ?)", run.group()))
        elif closed_right:
            conditions.append(("suffix(word, ?)", run.group()))
        else:
            conditions.append(("contains(word, ?)", run.group()))
    return conditions


def _word_rows(conditions: list[tuple[str, str]], dataset_id: int) -> tuple[str, list[Any]]:
    """A query of the row indices holding, for every condition, a word that meets it (with duplicates)."""
    parts, params = [], []
    for condition, value in conditions:
        parts.append(
            "SELECT row_idx FROM search_postings WHERE dataset_id = ? AND word_id IN "
            f"(SELECT word_id FROM search_vocab WHERE dataset_id = ? AND {condition})"
        )
        params += [dataset_id, dataset_id, value]
    return " INTERSECT ".join(parts), params


def _rarest(con: duckdb.DuckDBPyConnection, dataset_id: int, conditions: list[tuple[str, str]]) -> tuple[str, str]:
    """The condition whose words are held by the fewest rows (counted from the vocabulary alone)."""

    def rows_of(condition: tuple[str, str]) -> int:
        sql, value = condition
        total = con.execute(
            f"SELECT coalesce(sum(n_rows), 0) FROM search_vocab WHERE dataset_id = ? AND {sql}", [dataset_id, value]
        )
        return int(one_row(total)[0])

    return min(conditions, key=rows_of)


def has_index(store: Store, dataset_id: int) -> bool:
    """:func:`is_indexed`, through the store (for a page that says whether searches scan)."""
    with store.read() as con:
        return is_indexed(con, dataset_id)


def is_indexed(con: duckdb.DuckDBPyConnection, dataset_id: int) -> bool:
    """Whether the dataset has a word index (a dataset prepared before the index existed has none)."""
    return con.execute("SELECT 1 FROM search_vocab WHERE dataset_id = ? LIMIT 1", [dataset_id]).fetchone() is not None


def matching(con: duckdb.DuckDBPyConnection, dataset_id: int, keyword: str, alias: str = "e") -> tuple[str, list[Any]]:
    """A SQL condition on the examples table (as ``alias``) true for the rows whose instruction or output
    holds ``keyword`` (any case, every character literal), with its parameters.

    A keyword that is one word (letters and digits only) is answered by the index alone: a row holds it
    exactly when one of its words does, so no text is read. Otherwise the index gives the candidates and
    the substring test on their texts decides; without letters or digits, or without an index, every text
    is tested."""
    exact = f"(contains(lower({alias}.instruction), lower(?)) OR contains(lower({alias}.output), lower(?)))"
    conditions = word_conditions(keyword)
    if not conditions or not is_indexed(con, dataset_id):
        return exact, [keyword, keyword]
    if conditions[0][0] == "contains(word, ?)" and conditions[0][1] == keyword.lower():
        query, params = _word_rows(conditions, dataset_id)
        return f"{alias}.row_idx IN ({query})", params
    # a phrase: the rows of its rarest word only (intersecting with "the" or "of" costs more than it
    # saves); the substring test below checks the rest
    query, params = _word_rows([_rarest(con, dataset_id, conditions)], dataset_id)
    rows = con.execute(f"SELECT DISTINCT row_idx FROM ({query}) ORDER BY row_idx", params).fetchall()
    if not rows:
        return "FALSE", []
    # the candidates as a constant list: DuckDB then filters the scan by it, where a join with the postings
    # reads every row's text before the join removes it
    return f"({alias}.row_idx IN (SELECT unnest(?)) AND {exact})", [[row for (row,) in rows], keyword, keyword]


def search(
    store: Store, dataset_id: int, keyword: str, *, limit: int = 20, offset: int = 0
) -> tuple[pd.DataFrame, int]:
    """A page of the rows holding ``keyword`` (row index, instruction, output), in row order, and the total."""
    with store.read() as con:
        condition, params = matching(con, dataset_id, keyword)
        where = f"e.dataset_id = ? AND {condition}"
        total = one_row(con.execute(f"SELECT count(*) FROM examples e WHERE {where}", [dataset_id, *params]))[0]
        page = con.execute(
            f"SELECT e.row_idx, e.instruction, e.output FROM examples e WHERE {where} "
            "ORDER BY e.row_idx LIMIT ? OFFSET ?",
            [dataset_id, *params, limit, offset],
        ).df()
    return page, int(total)
