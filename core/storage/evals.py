"""Cached evaluation results: a base model is evaluated once per evaluation set, and every run's results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.storage.database import Store


def get(store: Store, eval_key: str) -> dict[str, Any] | None:
    """The stored summary (with ``examples``) under ``eval_key``, or None."""
    with store.read() as con:
        row = con.execute("SELECT summary, examples FROM eval_results WHERE eval_key = ?", [eval_key]).fetchone()
    if row is None:
        return None
    return {**json.loads(row[0]), "examples": json.loads(row[1])}


def put(
    store: Store, eval_key: str, model_id: str, adapter: str | None, summary: dict[str, Any], examples: list
) -> None:
    """Store (or replace) one evaluation result."""
    with store.write() as con:
        con.execute("DELETE FROM eval_results WHERE eval_key = ?", [eval_key])
        con.execute(
            "INSERT INTO eval_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                eval_key,
                model_id,
                adapter,
                summary.get("name"),
                summary.get("sha256"),
                json.dumps(summary, default=str),
                json.dumps(examples, default=str),
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
