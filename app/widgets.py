"""Reusable Streamlit widgets: a progress bar for core work, and the example card."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.progress import Progress


class StreamlitProgress(Progress):
    """Shows core progress in an ``st.progress`` bar (for short work run inside the page script)."""

    def __init__(self, label: str):
        super().__init__()
        self._label = label
        self._bar = st.progress(0.0, text=label)

    def update(self) -> None:
        fraction = min(1.0, self.done / self.total) if self.total else 0.0
        self._bar.progress(fraction, text=f"{self._label}: {self.stage} {self.done}/{self.total}")

    def close(self) -> None:
        self._bar.empty()


def example_card(row: object, on_veto: Callable[[str, bool], None], key_prefix: str) -> None:
    """One example as plain text (never markdown or HTML), with its own veto checkbox."""
    example_id = str(row.example_id)
    title = f"{row.location} · id {example_id} · cluster {row.cluster_id}"
    if int(row.copies) > 1:
        title += f" · exact duplicate ×{int(row.copies)}"
    with st.container(border=True):
        st.caption(title)
        st.text(row.instruction)
        if row.input:
            st.caption("input")
            st.text(row.input)
        st.caption("output")
        st.text(row.output if row.output.strip() else "(empty response)")
        st.checkbox(
            "Veto this example",
            value=bool(row.vetoed),
            key=f"{key_prefix}_veto_{example_id}",
            on_change=lambda: on_veto(example_id, st.session_state[f"{key_prefix}_veto_{example_id}"]),
        )
