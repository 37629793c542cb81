"""Reusable Streamlit widgets: a progress bar for core work, dataset text shown verbatim, the example card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from app.state import if_current, synced_key
from app.text import keyword_in_context, plain
from core import config
from core.models.passes import is_empty_response
from core.progress import Progress, count_text


class StreamlitProgress(Progress):
    """Shows core progress in an ``st.progress`` bar (for short work run inside the page script)."""

    def __init__(self, label: str):
        super().__init__()
        self._label = label
        self._bar = st.progress(0.0, text=label)

    def update(self) -> None:
        fraction = min(1.0, self.done / self.total) if self.total else 0.0
        self._bar.progress(
            fraction, text=f"{self._label}: {self.stage} {count_text(self.stage, self.done, self.total)}"
        )

    def close(self) -> None:
        self._bar.empty()


# Characters above which a text scrolls in a box of its own rather than stretching its card down the page.
LONG_TEXT = 5_000
LONG_TEXT_HEIGHT = 320


def plain_text(text: str) -> None:
    """Dataset text verbatim: ``st.text`` never reads markdown or HTML, and wraps even one endless word.
    A very long text scrolls inside a fixed-height box so one row cannot make a card pages tall."""
    if len(text) > LONG_TEXT:
        with st.container(height=LONG_TEXT_HEIGHT, border=False):
            st.text(text)
    else:
        st.text(text)


def example_card(
    row: object, on_veto: Callable[[str, bool], None], key_prefix: str, highlight: str | None = None
) -> None:
    """One example as plain text (never markdown or HTML), with its own veto checkbox; ``highlight``: a search
    keyword, shown highlighted in one line of context (escaped) above the full text."""
    example_id = str(row.example_id)
    title = f"{plain(row.location, 80)} · id {plain(example_id, 80)} · cluster {row.cluster_id}"
    if int(row.copies) > 1:
        title += f" · exact duplicate ×{int(row.copies)}"
    with st.container(border=True):
        st.caption(title)
        if highlight:
            for field in ("instruction", "input", "output"):
                shown = keyword_in_context(getattr(row, field), highlight)
                if shown:
                    st.markdown(f"{field}: {shown}")
                    break
        plain_text(row.instruction)
        if row.input:
            st.caption("input")
            plain_text(row.input)
        st.caption("output")
        plain_text("(empty response)" if is_empty_response(row.output) else row.output)
        vetoed, base = bool(row.vetoed), f"{key_prefix}_veto_{example_id}"
        key = synced_key(base, vetoed)  # another session may have vetoed it
        st.checkbox(
            "Veto this example",
            value=vetoed,
            key=key,
            on_change=lambda: if_current(base, key, lambda value: on_veto(example_id, value)),
        )


def target_files(workspace: Path) -> list[str]:
    """Target / evaluation JSONL files on offer: uploaded ones (``<workspace>/targets``), then the evaluation
    folder's (``CURATE_EVAL_DIR``, default ``<workspace>/eval``)."""
    found: list[Path] = []
    for folder in (workspace / "targets", config.eval_dir(workspace)):
        found += sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    return [str(path) for path in found]


def target_picker(workspace: Path, key: str, label: str = "Target set(s)") -> str:
    """A multiselect of the known target files plus a free path field; the strategies' ``target`` value
    (paths separated by commas, each a sub-task). What each chosen file holds is shown below it."""
    chosen = st.multiselect(label, target_files(workspace), key=key, format_func=lambda p: Path(p).name)
    typed = st.text_input("Other target files (comma-separated paths)", "", key=f"{key}_paths")
    paths = [*chosen, *(p.strip() for p in typed.split(",") if p.strip())]
    target_summary(paths)
    return ",".join(paths)


def target_summary(paths: list[str]) -> None:
    """Each target's rows, responses and mean response length, with its warnings (no responses, a few
    empty ones, too few rows), so the curator sees what a target is made of before using it."""
    for path in paths:
        try:
            stat = Path(path).stat()
            report = _target_report(path, stat.st_mtime_ns, stat.st_size)
        except (ValueError, OSError) as exc:  # a missing file or a bad row: its message names the file
            st.error(plain(exc))
            continue
        st.caption(plain(report.line()))
        for note in report.warnings():
            st.warning(plain(note))


@st.cache_data(show_spinner=False, max_entries=64)
def _target_report(path: str, mtime_ns: int, size: int) -> Any:
    """Cached by the file's modification time and size: a page rerun does not reread an unchanged file."""
    from core.gradients.target_report import describe_paths

    return describe_paths([path])[0]
