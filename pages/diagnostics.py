"""Diagnostics page: elbow and silhouette by k, cluster sizes, and choosing k or sweeping more values."""

from __future__ import annotations

import streamlit as st

from app import figures, queries
from app.state import pick_dataset, store
from app.widgets import StreamlitProgress
from core.prepare import add_k_values, choose_k, sample_note, sweep_notes

st.title("Diagnostics")
dataset = pick_dataset()
if dataset is None:
    st.stop()
sweep = queries.cached_sweep(dataset)
k = int(dataset.active_k)
st.caption(
    f"Chosen k={k}; best silhouette k={dataset.best_k}; elbow knee k={dataset.knee_k}. "
    "Silhouettes use cosine distance, exact up to 10,000 rows and on a seeded 10,000-row sample above."
)
sampled = sample_note(store(), dataset)  # a large dataset's sweep is fitted on a sample: say so before the charts
if sampled:
    st.info(sampled[0].upper() + sampled[1:])
# the sweep can be unable to decide (no best k) or decide at the grid's edge: say so before the charts
hint = "Add those values to 'Sweep these k values' below and press Run sweep."
for note in sweep_notes(store(), dataset, extend_hint=hint):
    st.warning(note)

left, right = st.columns(2)
left.plotly_chart(figures.elbow(sweep, k, dataset.knee_k), key="elbow_chart")
right.plotly_chart(figures.silhouette(sweep, k, dataset.best_k), key="silhouette_chart")
sizes = queries.cached_clusters(dataset)["size"]
left.plotly_chart(figures.size_histogram(sizes), key="size_histogram")
right.dataframe(sweep.round(4), hide_index=True, key="sweep_table")


def run_with_progress(label: str, work) -> None:
    progress = StreamlitProgress(label)
    try:
        work(progress)
    finally:
        progress.close()
    st.rerun()


with st.container(border=True):
    st.subheader("Choose k")
    cols = st.columns([2, 1])
    new_k = cols[0].number_input(
        "k (any value; one not swept yet is fitted now, without re-embedding)",
        2,
        max(2, dataset.n_rows),
        value=k,
        key="k_choice",
    )
    if cols[1].button("Use this k", key="use_k", disabled=int(new_k) == k):
        run_with_progress(f"Fitting k={int(new_k)}", lambda p: choose_k(store(), dataset, int(new_k), p))
    grid_text = st.text_input(
        "Sweep these k values (comma-separated)", ", ".join(map(str, dataset.k_grid)), key="k_grid"
    )
    if st.button("Run sweep", key="run_sweep"):
        try:
            grid = sorted({int(part) for part in grid_text.split(",") if part.strip()})
        except ValueError:
            st.error("The k values must be whole numbers separated by commas.")
        else:
            run_with_progress("Sweeping k", lambda p: add_k_values(store(), dataset, grid, p))
