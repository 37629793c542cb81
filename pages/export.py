"""Export page: per-cluster counts of what will be exported, then download or write JSONL + manifest.

Nothing is exported while the page renders (only counted). A download button, when clicked, streams the
export into the workspace's ``exports/downloads`` folder and hands that file to the browser; "Write to path"
streams it into ``exports/`` and never loads it into the app.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import queries
from app.state import pick_dataset, store, workspace
from app.text import clip, plain
from core.export import download_export, stream_export
from core.safe_paths import resolve_inside

st.title("Export")
dataset = pick_dataset()
if dataset is None:
    st.stop()

saved = queries.cached_selections(dataset)
choices = [None, *saved.selection_id.tolist()]
names = dict(zip(saved.selection_id, saved.name, strict=True))
selection_id = st.selectbox(
    "What to export",
    choices,
    format_func=lambda c: "Every non-vetoed example" if c is None else f"Selection #{c}: {clip(names[c], 80)}",
    key="export_what",
)
if selection_id is None:
    st.write(
        "Exports **every example that is not vetoed** (neither itself nor through its cluster at the chosen k), "
        "with its original fields, plus a manifest that records how it was made."
    )
else:
    st.write(
        f"Exports **selection #{selection_id}** in pick order, with its original fields, plus a manifest with "
        "the strategy, parameters, seed, budget and the pool it was drawn from."
    )
known_tags = queries.cached_tags(dataset)[0] if selection_id is None else {}
tag = None
if known_tags:
    tag = st.selectbox(
        "Only examples carrying a tag (tagged themselves or through their cluster)",
        [None, *known_tags],
        format_func=lambda t: "any (no tag filter)" if t is None else f"{t} ({known_tags[t]} tagged)",
        key="export_tag",
    )
counts = queries.cached_export_preview(dataset, selection_id, tag)
per_cluster = counts.per_cluster
st.metric("Examples to export", f"{counts.n_rows} of {dataset.n_rows}")
st.dataframe(
    [
        {
            "cluster": int(c),
            "label": v["label"],
            "size": v["size"],
            "exported": v["exported"],
            "vetoed": v["vetoed"],
            "weight": v["weight"],
        }
        for c, v in per_cluster.items()
    ],
    hide_index=True,
    key="export_preview",
)

stem = f"{dataset.name}-curated" if selection_id is None else f"{dataset.name}-selection-{selection_id}"
if tag is not None:  # a file name: the tag's letters and digits only
    stem += "-tag-" + ("".join(c if c.isalnum() else "-" for c in tag).strip("-") or "tag")
workspace_store, dataset_id = store(), dataset.dataset_id


def _written(manifest: bool) -> bytes:
    """The download's bytes, read from the export file written for it (run by Streamlit when clicked)."""
    from core.storage import datasets as ds

    written = download_export(workspace_store, ds.get_dataset(workspace_store, dataset_id), selection_id, stem, tag)
    return Path(written.manifest_path if manifest else written.jsonl_path).read_bytes()


left, right = st.columns(2)
left.download_button(
    "Download JSONL",
    lambda: _written(manifest=False),
    file_name=f"{stem}.jsonl",
    mime="application/jsonl",
    key="download_jsonl",
    type="primary",
    on_click="ignore",  # no rerun: a rerun racing the click could drop the file's callable before it ran
)
right.download_button(
    "Download manifest",
    lambda: _written(manifest=True),
    file_name=f"{stem}.manifest.json",
    mime="application/json",
    key="download_manifest",
    on_click="ignore",
)
st.caption(
    "A download writes the export into the workspace's exports/downloads folder first, then sends that file; "
    "the browser download passes through the app's memory (about 0.7 GB per million rows of typical length). "
    "For a large export, write it to a path below: it is written in chunks and never loaded into the app."
)

with st.container(border=True):
    export_dir = workspace() / "exports"
    relative = st.text_input(
        f"Or write to a file inside {export_dir}", f"{stem}.jsonl", key=f"export_path_{selection_id}"
    )
    if st.button("Write to path", key="write_export"):
        try:
            with st.spinner("Writing the export (about 20 s per million rows)..."):
                written = stream_export(
                    store(), dataset, resolve_inside(export_dir, relative), selection_id=selection_id, tag=tag
                )
        except ValueError as exc:  # a path leaving the folder, or naming a folder: the message names it
            st.error(plain(exc))
        else:
            st.success(
                f"Wrote {written.n_rows} rows to {plain(written.jsonl_path)} "
                f"and the manifest to {plain(written.manifest_path)}."
            )
