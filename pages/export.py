"""Export page: per-cluster counts of what will be exported, then download or write JSONL + manifest."""

from __future__ import annotations

import json

import streamlit as st

from app import queries
from app.state import pick_dataset, workspace
from app.text import clip, plain
from core.export import write_export
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
bundle = queries.cached_export(dataset, selection_id)
per_cluster = bundle.manifest["counts"]["per_cluster"]
st.metric("Examples to export", f"{bundle.n_rows} of {dataset.n_rows}")
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
left, right = st.columns(2)
left.download_button(
    "Download JSONL",
    bundle.jsonl,
    file_name=f"{stem}.jsonl",
    mime="application/jsonl",
    key="download_jsonl",
    type="primary",
)
right.download_button(
    "Download manifest",
    json.dumps(bundle.manifest, indent=2),
    file_name=f"{stem}.manifest.json",
    mime="application/json",
    key="download_manifest",
)

with st.container(border=True):
    export_dir = workspace() / "exports"
    relative = st.text_input(
        f"Or write to a file inside {export_dir}", f"{stem}.jsonl", key=f"export_path_{selection_id}"
    )
    if st.button("Write to path", key="write_export"):
        try:
            out, manifest = write_export(bundle, resolve_inside(export_dir, relative))
        except ValueError as exc:  # a path leaving the folder, or naming a folder: the message names it
            st.error(plain(exc))
        else:
            st.success(f"Wrote {bundle.n_rows} rows to {plain(out)} and the manifest to {plain(manifest)}.")
