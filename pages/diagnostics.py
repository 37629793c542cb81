"""Diagnostics page: elbow and silhouette by k, cluster sizes, and choosing k or sweeping more values (a job)."""

from __future__ import annotations

import streamlit as st

from app import figures, queries
from app.job_panel import JobView, job_panel, launch
from app.state import pick_dataset, store, workspace
from app.text import plain
from core import jobs
from core.prepare import sample_note, sweep_notes
from core.sweep_job import SweepJob

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


def job_title(status: jobs.JobStatus) -> str:
    """Names a sweep job by what it does (markdown-safe: the dataset name goes through ``plain``)."""
    params = status.params
    what = f"Fitting k={params['choose']}" if params.get("choose") and not params.get("ks") else "Sweeping k"
    return f"{what} on {plain(str(params.get('dataset', '')), 80)}"


def show_outcome(status: jobs.JobStatus) -> None:
    if status.state == "done":
        ks = ", ".join(map(str, status.result.get("ks") or []))
        swept = f"Swept k={ks}; " if ks else ""
        st.success(f"{swept}chosen k={status.result.get('active_k')}.")


def running_job() -> jobs.JobStatus | None:
    """This dataset's sweep job still running, if any: a second one would fit beside it and race to store."""
    return next(
        (s for s in jobs.list_jobs(workspace(), kind="sweep") if s.active and s.params.get("dataset") == dataset.name),
        None,
    )


busy = running_job() is not None
with st.container(border=True):
    st.subheader("Choose k")
    st.caption(
        f"Fitting runs in the background ({dataset.n_rows:,} rows; at a million rows each k takes minutes): "
        "you can leave this page, and Cancel stops it between k values with the stored sweep unchanged."
    )
    cols = st.columns([2, 1])
    new_k = cols[0].number_input(
        "k (any value; one not swept yet is fitted now, without re-embedding)",
        2,
        max(2, dataset.n_rows),
        value=k,
        key="k_choice",
    )
    if cols[1].button("Use this k", key="use_k", disabled=int(new_k) == k or busy):
        launch(SweepJob(dataset=dataset.name, choose=int(new_k)), "sweep_job")
    grid_text = st.text_input(
        "Sweep these k values (comma-separated)", ", ".join(map(str, dataset.k_grid)), key="k_grid"
    )
    if st.button("Run sweep", key="run_sweep", disabled=busy):
        try:
            grid = sorted({int(part) for part in grid_text.split(",") if part.strip()})
        except ValueError:
            st.error("The k values must be whole numbers separated by commas.")
        else:
            launch(SweepJob(dataset=dataset.name, ks=tuple(grid)), "sweep_job")
    job_panel(JobView("sweep", "sweep_job", job_title, show_outcome))
