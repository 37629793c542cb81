"""Rows of JSON objects as Arrow tables, a bounded batch at a time: the Parquet and ``datasets`` exports.

A JSON file has no schema and Arrow needs one for the whole file, so the writers go twice through the rows:
:class:`SchemaScan` sees every batch once and settles each column's type (``pyarrow`` infers a batch's types;
batches are merged with its permissive promotion: an integer column that also holds fractions becomes a
float, an object gains the keys later rows add, a column missing from a row is null there), then
:func:`table` builds each batch with that schema. A column whose values have no common Arrow type (a number
in one row, text in another; an integer beyond 64 bits; an empty object, which Parquet cannot store) is
written as JSON text, and the manifest names it. Columns come in the order the rows first show them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

JSON_TEXT = None
"""A column's type when its values share none: the values are written as JSON text."""


class SchemaScan:
    """The Arrow type of every column seen so far, merged batch by batch."""

    def __init__(self) -> None:
        self.types: dict[str, pa.DataType | None] = {}

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Merge the types of one batch's columns into what is known."""
        names = list(dict.fromkeys(key for row in rows for key in row))
        for name in names:
            found = _column_type([row.get(name) for row in rows])
            self.types[name] = _merge(self.types[name], found) if name in self.types else found

    def schema(self, empty: dict[str, pa.DataType]) -> pa.Schema:
        """The file's schema (JSON-text columns as strings); ``empty`` is the schema when no row was seen."""
        import pyarrow as pa

        if not self.types:
            return pa.schema(list(empty.items()))
        return pa.schema([(name, pa.string() if kind is JSON_TEXT else kind) for name, kind in self.types.items()])

    def json_text_columns(self) -> list[str]:
        return [name for name, kind in self.types.items() if kind is JSON_TEXT]


def table(rows: Sequence[dict[str, Any]], schema: pa.Schema, json_text: set[str]) -> pa.Table:
    """One batch of rows as a table of ``schema``; a key a row lacks is null."""
    import pyarrow as pa

    columns = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if field.name in json_text:
            values = [None if value is None else json.dumps(value, ensure_ascii=False) for value in values]
        try:
            columns.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:  # the scan saw these values: a bug
            raise ValueError(f"column {field.name!r} does not fit its type {field.type}: {exc}") from exc
    return pa.Table.from_arrays(columns, schema=schema)


def _column_type(values: list[Any]) -> pa.DataType | None:
    import pyarrow as pa

    try:
        kind = pa.array(values).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return JSON_TEXT
    return JSON_TEXT if _has_empty_struct(kind) else kind


def _merge(known: pa.DataType | None, found: pa.DataType | None) -> pa.DataType | None:
    import pyarrow as pa

    if known is JSON_TEXT or found is JSON_TEXT:
        return JSON_TEXT
    if known == found:
        return known
    try:
        merged = pa.unify_schemas([pa.schema([("c", known)]), pa.schema([("c", found)])], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
        return JSON_TEXT
    return merged.field("c").type


def _has_empty_struct(kind: pa.DataType) -> bool:
    """Whether ``kind`` holds an object with no keys anywhere: Parquet cannot write a struct without fields."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return kind.num_fields == 0 or any(_has_empty_struct(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _has_empty_struct(kind.value_type)
    return False
