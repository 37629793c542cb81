"""Export page: per-cluster counts of what will be exported, then download or write it + its manifest.

The format picker lists ``core.export.formats.FORMATS`` (a new format needs no change here); two checkboxes add
LLaMA-Factory's dataset_info.json entry and an Axolotl datasets: block. Nothing is exported while the page
renders (only counted). A download button, when clicked, streams the export into the workspace's
``exports/downloads`` folder and hands that file to the browser (a ``datasets`` folder as a zip); "Write to
path" streams it into ``exports/`` and never loads it into the app.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import queries
from app.state import pick_dataset, store, workspace
from app.text import clip, plain
from core.export import (
    TrainerFiles,
    download_archive,
    download_export,
    export_name,
    manifest_path_for,
    stream_export,
)
from core.export.formats import FORMATS
from core.export.trainers import axolotl_path_for
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

formats = FORMATS.names()
fmt = st.selectbox("Format", formats, index=formats.index("jsonl"), format_func=FORMATS.title, key="export_format")
export_format = FORMATS.get(fmt)
st.caption(plain(export_format.rule))
left, right = st.columns(2)
trainer_files = TrainerFiles(
    llamafactory=left.checkbox(
        "Also LLaMA-Factory's dataset_info.json entry",
        key="export_llamafactory",
        help="Merged into dataset_info.json in the export's folder; its file_name points at the export.",
    ),
    axolotl=right.checkbox(
        "Also an Axolotl datasets: block",
        key="export_axolotl",
        help="NAME.axolotl.yaml beside the export, to paste into an Axolotl config.",
    ),
)
name = export_name(stem, fmt)
download_name = f"{name}.zip" if export_format.folder else name


def _written(part: str) -> bytes:
    """The download's bytes, read from the export written for it (run by Streamlit when clicked): the export
    itself (a folder: zipped), its manifest, or a trainer's file."""
    from core.storage import datasets as ds

    dataset_now = ds.get_dataset(workspace_store, dataset_id)
    written = download_export(workspace_store, dataset_now, selection_id, stem, tag, fmt, trainer_files)
    if part == "export":
        return (download_archive(written) if export_format.folder else written.path).read_bytes()
    if part == "manifest":
        return written.manifest_path.read_bytes()
    return next(path for path in written.trainer_files if path.name.endswith(part)).read_bytes()


buttons = st.columns(4)
buttons[0].download_button(
    f"Download {export_format.label}",
    lambda: _written("export"),
    file_name=download_name,
    mime=export_format.media_type,
    key=f"download_{fmt}",
    type="primary",
    on_click="ignore",  # no rerun: a rerun racing the click could drop the file's callable before it ran
)
buttons[1].download_button(
    "Download manifest",
    lambda: _written("manifest"),
    file_name=manifest_path_for(Path(name)).name,
    mime="application/json",
    key="download_manifest",
    on_click="ignore",
)
if trainer_files.llamafactory:
    buttons[2].download_button(
        "Download dataset_info.json",
        lambda: _written("dataset_info.json"),
        file_name="dataset_info.json",
        mime="application/json",
        key="download_llamafactory",
        on_click="ignore",
    )
if trainer_files.axolotl:
    buttons[3].download_button(
        "Download Axolotl block",
        lambda: _written(".axolotl.yaml"),
        file_name=axolotl_path_for(Path(name)).name,
        mime="application/yaml",
        key="download_axolotl",
        on_click="ignore",
    )
st.caption(
    "A download writes the export into the workspace's exports/downloads folder first, then sends that file; "
    "the browser download passes through the app's memory (about 0.7 GB per million rows of typical length). "
    "A datasets folder is sent as a zip: unzip it and give the folder inside to load_from_disk. "
    "Save the trainers' files in the same folder as the export: their paths are relative to it. "
    "For a large export, write it to a path below: it is written in chunks and never loaded into the app."
)

with st.container(border=True):
    export_dir = workspace() / "exports"
    what = "folder" if export_format.folder else "file"
    path_key = f"export_path_{selection_id}" + ("" if fmt == "jsonl" else f"_{fmt}")  # a default per format
    relative = st.text_input(f"Or write to a {what} inside {export_dir}", name, key=path_key)
    if st.button("Write to path", key="write_export"):
        try:
            with st.spinner("Writing the export (about 20 s per million rows)..."):
                written = stream_export(
                    store(),
                    dataset,
                    resolve_inside(export_dir, relative),
                    selection_id=selection_id,
                    tag=tag,
                    fmt=fmt,
                    trainer_files=trainer_files,
                )
        except ValueError as exc:  # a path leaving the folder, naming a folder, an unreadable dataset_info.json
            st.error(plain(exc))
        else:
            also = "".join(f" Also wrote {plain(path)}." for path in written.trainer_files)
            st.success(
                f"Wrote {written.n_rows} rows to {plain(written.path)} "
                f"and the manifest to {plain(written.manifest_path)}.{also}"
            )
