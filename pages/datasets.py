"""Datasets page: load a file (upload or path) or a Hugging Face dataset (hub id or folder), map its columns if
needed, prepare it in the background."""

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
from core.ingest import hf
from core.prepare import PrepareOptions
from core.prepare_job import PrepareJob
from core.safe_paths import upload_path
from core.storage import datasets as ds

ROOT = Path(__file__).resolve().parents[1]
HF_SOURCE = "Hugging Face dataset or folder"

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
            "source": d.source_path if d.source else Path(d.source_path).name,  # hf:ORG/NAME or a folder in full
        }
        for d in ds.list_datasets(store())
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="datasets_table")


def chosen_file(source: str) -> Path | None:
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


def chosen_hf() -> hf.HFSource | None:
    """A Hugging Face source: a hub id or a folder (save_to_disk, or Parquet shards), with its config and split."""
    left, mid, right = st.columns([3, 1, 1])
    spec = left.text_input(
        HF_SOURCE,
        key="hf_source",
        placeholder="hf:ORG/NAME or /path/to/folder",
        help="hf:ORG/NAME reads a hub dataset through the datasets library (its cache in HF_HOME; offline with "
        "HF_HUB_OFFLINE=1). A folder written by save_to_disk, or holding Parquet shards such as "
        "data/train-00000-of-00002.parquet, is read from this machine.",
    ).strip()
    config = mid.text_input("Config", key="hf_config", help="the dataset's config (subset), if it has several")
    split = right.text_input("Split", key="hf_split", placeholder="train", help="default: the only split, else train")
    streaming = st.checkbox(
        "Stream the rows (a big hub dataset is read as it downloads, not copied into the cache first)",
        key="hf_streaming",
    )
    if not spec:
        return None
    if not spec.startswith(hf.PREFIX) and not Path(spec).expanduser().is_dir():
        spec = hf.PREFIX + spec  # ORG/NAME typed without its prefix
    return hf.HFSource(spec, config.strip() or None, split.strip() or None, streaming)


@st.cache_data(ttl=300, show_spinner=False)
def hf_columns(spec: str, config: str | None, split: str | None) -> list[str]:
    """A Hugging Face source's columns (its first rows, streamed), cached: a hub id costs a request."""
    return hf.columns_of(hf.HFSource(spec, config, split))


def mapping_form(columns: list[str]) -> dict[str, str | None] | None:
    recognised = {"messages", "conversations"} & set(columns) or {"instruction", "output"} <= set(columns)
    if not columns or recognised:
        return None
    st.warning("This dataset's columns are not Alpaca, chat or ShareGPT. Say which column holds what.")
    cols = st.columns(3)
    mapping: dict[str, str | None] = {}
    for col, field, optional in zip(cols, ingest.MAPPABLE_FIELDS, (False, True, False), strict=True):
        options = (["(none)"] if optional else []) + columns
        choice = col.selectbox(field, options, key=f"map_{field}")
        mapping[field] = None if choice == "(none)" else choice
    return mapping


def name_input(column: Any, default: str) -> str:
    """The dataset's name: the source's default (a file's stem; a Hugging Face dataset's name, config and split),
    following the source as it changes until the curator types a name of their own."""
    shown = st.session_state.get("dataset_name")
    if shown is None or shown == st.session_state.get("dataset_name_default"):
        st.session_state["dataset_name"] = default
    st.session_state["dataset_name_default"] = default
    return str(column.text_input("Dataset name", key="dataset_name"))


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
    kind = st.radio("Source", ["A file on this machine", "Upload a file", HF_SOURCE], horizontal=True, key="source")
    hf_source = chosen_hf() if kind == HF_SOURCE else None
    path = None if kind == HF_SOURCE else chosen_file(kind)
    if hf_source is not None:
        source, default = hf_source.spec, hf.default_name(hf_source)
        mapping = mapping_form(hf_columns(hf_source.spec, hf_source.config, hf_source.split))
    elif path is not None:
        source, default = str(path), path.stem
        mapping = mapping_form(ingest.columns_of(path)) if path.is_file() else None
    else:
        return
    left, mid, right = st.columns(3)
    name = name_input(left, default)
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
            name=name.strip() or default,
            mapping=mapping,
            skip_bad_rows=skip_bad,
            embedder=embedder_spec(embedder, embedder_params),
            embed_fields=tuple(fields),
            hf_config=hf_source.config if hf_source else None,
            hf_split=hf_source.split if hf_source else None,
            hf_streaming=hf_source.streaming if hf_source else False,
        )
        launch(PrepareJob(path=source, options=options, engine=engine), "prepare_job")


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
