"""The LLM judge's part of the Quality page: its prompt as a text area in the generated form, where the examples
go, the estimate before a run, "Test connection" (one example sent once, its answer shown), and the counts of
unparsed and failed rows stored so far."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import streamlit as st

from app.state import store
from app.text import plain
from app.widgets import plain_text
from core.score import judge
from core.storage import datasets
from core.storage.datasets import DatasetInfo

PRIVACY = (
    "The judge sends every example it rates (instruction, input and response) to the server at base_url: "
    "use a server you trust with this data. Its API key is read from the environment variable api_key_env "
    "names, in the app's process, and is never stored."
)


def prompt_area(key: str) -> str:
    """The prompt's widget for :func:`app.params_form.params_form` (``custom``): a text area, since the prompt
    spans lines that a one-line input would lose."""
    return st.text_area(
        "prompt",
        value=judge.DEFAULT_PROMPT,
        key=key,
        height=200,
        help="{instruction}, {input}, {output}, {scale_min} and {scale_max} are filled in; the score key holds "
        "a hash of it, so editing it rates again",
    )


CUSTOM = {"prompt": prompt_area}


def settings_of(values: dict[str, Any]) -> judge.JudgeSettings:
    """The judge's settings from the generated form's values (a blank one keeps its default)."""
    known = {field.name for field in dataclasses.fields(judge.JudgeSettings)}
    return judge.JudgeSettings(**{name: value for name, value in values.items() if name in known and value is not None})


def judge_panel(dataset: DatasetInfo, values: dict[str, Any], n_rows: int) -> bool:
    """The privacy note, the estimate, Test connection and the stored counts; returns whether the settings can
    work (the Score button stays off until they can)."""
    settings = settings_of(values)
    st.caption(PRIVACY)
    try:
        judge.check_settings(settings)
    except judge.JudgeSettingError as exc:
        st.warning(plain(exc))
        return False
    st.info(plain(judge.estimate_for(store(), dataset.dataset_id, settings, n_rows)))
    if st.button(
        "Test connection", key="judge_test", help="sends the dataset's first example once and shows the answer"
    ):
        connection_check(dataset, settings)
    return True


def connection_check(dataset: DatasetInfo, settings: judge.JudgeSettings) -> None:
    """Send the first example once; show the server's answer and what the judge reads from it, or why it failed."""
    row = datasets.examples_at(store(), dataset.dataset_id, [0]).iloc[0]
    verdict, seconds = judge.try_once(settings, row.instruction, row.input, row.output)
    if verdict.failed:
        st.error(f"No rating: {plain(verdict.error)}")
        return
    read = f"score {verdict.score:g}" if not verdict.unparsed else "no score on the scale: unparsed"
    served = f" ({plain(verdict.served_model, 80)})" if verdict.served_model else ""
    st.success(f"The server{served} answered in {seconds:.1f} s; the judge reads {read}. Its answer:")
    plain_text(verdict.answer or "(empty)")


def stored_counts(raw: pd.DataFrame) -> str | None:
    """One line on the judge's stored rows (rated, unparsed, failed), or None before it ran on the dataset."""
    if "judge_failed" not in raw or raw.judge_failed.isna().all():
        return None
    rated = int(raw["judge"].notna().sum()) if "judge" in raw else 0  # every row unparsed: no judge column
    unparsed, failed = int(raw.judge_unparsed.sum()), int(raw.judge_failed.sum())
    line = f"LLM judge: {rated:,} rows rated, {unparsed:,} unparsed (no score on the scale in the answer)"
    return line + f", {failed:,} failed (sent again by the next run)."


def tally_line(tally: dict[str, float] | None) -> str:
    """A finished run's counts, for its outcome line: `` · 20 rated, 3 unparsed, 1 failed``."""
    if not tally:
        return ""
    counts = ", ".join(f"{tally.get(name, 0):,.0f} {name}" for name in ("rated", "unparsed", "failed"))
    tokens = tally.get("prompt_tokens", 0) + tally.get("completion_tokens", 0)
    return f" · {counts}" + (f", {tokens:,.0f} tokens" if tokens else "")
