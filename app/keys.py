"""Keyboard shortcuts for a page, as a Streamlit custom component (v2): the page binds keys to actions, a key
pressed anywhere outside a text field runs its action (a rerun, like a click), and a one-line hint lists the
bindings. Streamlit has no key bindings of its own; the listener lives in ``keys.js`` beside this file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import streamlit as st

from app import map_component

_KEYS = st.components.v2.component(
    "curate_keys",
    html='<div class="keys-hint"></div>',
    css=".keys-hint { font-size: 12px; color: #777; }",
    js=(Path(__file__).resolve().parent / "keys.js").read_text(encoding="utf-8"),
)


def bind(bindings: Mapping[str, tuple[str, Callable[[], None]]], *, key: str) -> None:
    """Listen for ``bindings`` (a key, e.g. ``"j"``, to a short description and its action) on this page."""

    def on_key() -> None:
        pressed = map_component.event(key, "key") or {}
        action = bindings.get(pressed.get("key", ""))
        if action is not None:
            action[1]()

    hint = "Keys: " + " · ".join(f"{name} {text}" for name, (text, _) in bindings.items())
    _KEYS(key=key, data={"keys": list(bindings), "hint": hint}, on_key_change=on_key, height="content")
