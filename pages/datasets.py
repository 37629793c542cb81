"""Datasets page: load a file (upload or path), map its columns if needed, prepare it in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import queries
from app.job_panel import JobView, job_panel, launch
from app.params_form import engine_choice, params_form
from app.state import pick_dataset, store, workspace
from app.text import plain
from core import ingest, jobs
from core.embed.embedders import DEFAULT_EMBEDDER, EMBEDDERS, embedder_spec
from core.prepare import PrepareOptions
from core.prepare_job import PrepareJob
from core.safe_paths import upload_path
from core.storage import datasets as ds

ROOT = Path(__file__).resolve().parents[1]

st.title("Datasets")


def dataset_table() -> None:
    rows = [
        {
            "name": d.name,
            "rows": d.n_rows,
            "skipped rows": d.n_skipped,
            "shape": d.shape,
            "k": d.active_k,
            "status": d.status,
            "source": Path(d.source_path).name,
        }
        for d in ds.list_datasets(store())
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="datasets_table")


def chosen_file() -> Path | None:
    source = st.radio("Source", ["A file on this machine", "Upload a file"], horizontal=True, key="source")
    if source == "Upload a file":
        limit = st.get_option("server.maxUploadSize")  # set in .streamlit/config.toml; the browser enforces it
        upload = st.file_uploader(
            "Dataset file",
            type=["jsonl", "json", "csv", "parquet"],
            key="upload",
            help=f"Up to {limit} MB. A bigger file: choose 'A file on this machine', or `python -m core prepare`.",
        )
        if upload is None:
            return None
        try:
            target = upload_path(workspace() / "uploads", upload.name)
        except ValueError as exc:
            st.error(plain(exc))  # the message quotes the uploaded file's name
            return None
        if st.session_state.get("upload_written") != upload.file_id:  # write each upload once, not every rerun
            target.write_bytes(upload.getvalue())
            st.session_state["upload_written"] = upload.file_id
        return target
    default = str(ROOT / "sample_data" / "sample.jsonl")
    text = st.text_input("Path", value=default, key="path").strip()
    return Path(text).expanduser() if text else None


def mapping_form(path: Path) -> dict[str, str | None] | None:
    columns = ingest.columns_of(path)
    recognised = {"messages", "conversations"} & set(columns) or {"instruction", "output"} <= set(columns)
    if not columns or recognised:
        return None
    st.warning("This file's columns are not Alpaca, chat or ShareGPT. Say which column holds what.")
    cols = st.columns(3)
    mapping: dict[str, str | None] = {}
    for col, field, optional in zip(cols, ingest.MAPPABLE_FIELDS, (False, True, False), strict=True):
        options = (["(none)"] if optional else []) + columns
        choice = col.selectbox(field, options, key=f"map_{field}")
        mapping[field] = None if choice == "(none)" else choice
    return mapping


def embedder_choice(column: Any) -> str:
    """The registered embedders, by their titles; the packaged sentence model first."""
    names = EMBEDDERS.names()
    return column.selectbox(
        "Embedder",
        names,
        index=names.index(DEFAULT_EMBEDDER),
        format_func=EMBEDDERS.title,
        key="embedder",
    )


def launch_form() -> None:
    path = chosen_file()
    if path is None:
        return
    mapping = mapping_form(path) if path.is_file() else None
    left, mid, right = st.columns(3)
    name = left.text_input("Dataset name", value=path.stem, key="dataset_name")
    embedder = embedder_choice(mid)
    fields = right.multiselect(
        "Embedded text", list(ingest.MAPPABLE_FIELDS), default=["instruction", "input"], key="embed_fields"
    )
    with st.expander("Embedder settings"):
        embedder_params = params_form(EMBEDDERS, embedder, "embedder")
    skip_bad = st.checkbox("Skip bad rows (store the good rows and report the bad ones)", key="skip_bad")
    engine = engine_choice("prepare")
    if st.button("Prepare", type="primary", key="prepare", disabled=not fields):
        options = PrepareOptions(
            name=name.strip() or path.stem,
            mapping=mapping,
            skip_bad_rows=skip_bad,
            embedder=embedder_spec(embedder, embedder_params),
            embed_fields=tuple(fields),
        )
        launch(PrepareJob(path=str(path), options=options, engine=engine), "prepare_job")


def dataset_name(status: jobs.JobStatus) -> str:
    """The name a prepare job gives its dataset: the one asked for, else the file's."""
    return (status.params.get("options") or {}).get("name") or Path(status.params.get("path", "")).stem


def show_outcome(status: jobs.JobStatus) -> None:
    """The finished job in an alert. Alerts are markdown, and the name, the skipped rows and the error
    come from the file (a bad row's message can quote it), so each goes through ``plain``."""
    name = plain(dataset_name(status), 120)
    if status.state == "done":
        result = status.result
        verb = "was already prepared; nothing recomputed" if result.get("reused") else "is ready"
        st.success(f"{name} {verb}: {result.get('n_rows')} rows, k={result.get('active_k', result.get('best_k'))}.")
        if result.get("n_skipped"):
            skipped = "; ".join(plain(message, 200) for message in result.get("skipped", [])[:10])
            st.warning(f"{result['n_skipped']} bad rows were skipped: {skipped}")


def summary() -> None:
    dataset = pick_dataset(ready_only=False)
    if dataset is None:
        return
    counts = queries.cached_summary(dataset)
    st.subheader(f"Summary: {plain(dataset.name, 120)}")
    cols = st.columns(5)
    cols[0].metric("Rows", counts["rows"])
    cols[1].metric("Exact duplicates", counts["duplicate_rows"], help=f"{counts['duplicate_groups']} groups")
    cols[2].metric("Repeated prompts", counts["repeated_prompt_rows"])
    cols[3].metric("Empty responses", counts["empty_outputs"])
    cols[4].metric("Rows with problems (skipped)", dataset.n_skipped)
    if dataset.skipped:
        with st.expander("Skipped rows"):
            st.text("\n".join(dataset.skipped))


dataset_table()
with st.container(border=True):
    st.subheader("Load a dataset")
    launch_form()
    # progress-bar labels are markdown: the name comes from the user or the file
    job_panel(JobView("prepare", "prepare_job", lambda s: f"Preparing {plain(dataset_name(s), 80)}", show_outcome, 5))
summary()
