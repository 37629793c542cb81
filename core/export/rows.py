"""What an exported row looks like in each shape: the dataset's own shape, chat ``messages`` and ShareGPT.

The conversion to chat turns is the one our own chat rendering uses (docs/algorithms.md 1.1): an Alpaca row
becomes a user turn, the instruction followed by the input after a blank line when there is one
(:func:`core.models.passes.user_turn`, the rule the scorers and the trainer see), then an assistant turn, the
output. A chat row keeps every turn as ingest normalised it (roles lower-cased, ShareGPT's ``human``/``gpt``
read as user/assistant). A top-level text field ``system`` (LLaMA-Factory's name for a row's system prompt)
becomes a leading system turn, unless the turns already start with one; otherwise a row gets no system turn.
Every other field of the row is kept as a top-level key beside the turns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SYSTEM_FIELD = "system"
"""A row's system prompt, where it has one: LLaMA-Factory's column name, read from any shape."""

SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}
"""ShareGPT's ``from`` value for each of our roles (LLaMA-Factory's and FastChat's defaults)."""

CHAT_SHAPES = ("messages", "sharegpt")


@dataclass(frozen=True)
class SourceShape:
    """The dataset's shape and column mapping as ingest found them (``datasets.shape`` / ``mapping``)."""

    shape: str
    mapping: dict[str, str | None]

    @property
    def chat(self) -> bool:
        return self.shape in CHAT_SHAPES

    @property
    def turns_field(self) -> str | None:
        """The field that holds a chat row's turns (``messages`` or ``conversations``); None for Alpaca rows."""
        return {"messages": "messages", "sharegpt": "conversations"}.get(self.shape)

    def alpaca_fields(self) -> tuple[str, str | None, str]:
        """The (instruction, input, output) field names of an Alpaca or mapped row; input may be absent."""
        mapping = self.mapping or {}
        return (
            mapping.get("instruction") or "instruction",
            mapping.get("input") if self.shape == "mapped" else mapping.get("input", "input"),
            mapping.get("output") or "output",
        )

    def turn_fields(self) -> set[str]:
        """The fields the chat formats turn into turns (the rest are kept as they are)."""
        if self.turns_field:
            return {self.turns_field}
        return {name for name in self.alpaca_fields() if name}


def chat_turns(
    row: dict[str, Any], stored_turns: str | None, source: SourceShape, user_turn: Callable[[str, str], str]
) -> list[dict[str, str]]:
    """The row's conversation as ``[{"role", "content"}, ...]`` (module docstring); ``stored_turns`` is the
    JSON text of the turns ingest normalised (None for an Alpaca row)."""
    if source.chat:
        turns: list[dict[str, str]] = json.loads(stored_turns or "[]")
    else:
        instruction, input_field, output = source.alpaca_fields()
        prompt = user_turn(row[instruction], (row.get(input_field) or "") if input_field else "")
        turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": row[output]}]
    system = row.get(SYSTEM_FIELD)
    if isinstance(system, str) and system.strip() and not (turns and turns[0]["role"] == "system"):
        turns = [{"role": "system", "content": system}, *turns]
    return turns


def extra_fields(row: dict[str, Any], source: SourceShape) -> dict[str, Any]:
    """The row's fields that are not part of its conversation, in their order (a text ``system`` field is)."""
    consumed = source.turn_fields()
    if isinstance(row.get(SYSTEM_FIELD), str):
        consumed.add(SYSTEM_FIELD)
    return {key: value for key, value in row.items() if key not in consumed}


def as_messages(row: dict[str, Any], turns: list[dict[str, str]], source: SourceShape) -> dict[str, Any]:
    """``{"messages": [{"role", "content"}, ...], **other fields}``: the turns' key comes first and wins over a
    field of the same name."""
    return {"messages": turns, **{k: v for k, v in extra_fields(row, source).items() if k != "messages"}}


def as_sharegpt(row: dict[str, Any], turns: list[dict[str, str]], source: SourceShape) -> dict[str, Any]:
    """``{"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...], **other fields}``."""
    conversation = [{"from": SHAREGPT_FROM[turn["role"]], "value": turn["content"]} for turn in turns]
    extras = {k: v for k, v in extra_fields(row, source).items() if k != "conversations"}
    return {"conversations": conversation, **extras}


def has_system_field(original: str) -> bool:
    """Whether a row's JSON text has a text ``system`` field; a substring test first, so the JSONL export parses
    only the rows that mention one."""
    return '"system"' in original and isinstance(json.loads(original).get(SYSTEM_FIELD), str)
