"""Gradient graph page: compute LoRA-gradient features and their graph in the background, then see which
clusters help a target task, the map colored by alignment with it, one example's gradient neighbourhood
and the walk path of a G2IS selection; and, for RDS+, the base model's pooled hidden states of every example."""

from __future__ import annotations

from pathlib import Path

import plotly.express as px
import streamlit as st

from app import figures, map_component, map_spec, queries
from app.job_panel import JobView, job_panel, launch
from app.params_form import engine_choice
from app.state import pick_dataset, store, workspace
from app.text import hover, plain
from app.widgets import target_files, target_summary
from core import jobs
from core.errors import MissingGradients
from core.gradients import pipeline, views
from core.gradients.job import GradientsJob
from core.hidden import pipeline as hidden
from core.hidden.job import HiddenStatesJob
from core.safe_paths import upload_path
from core.storage import selections as store_selections

st.title("Gradient graph")
dataset = pick_dataset()
if dataset is None:
    st.stop()
k = int(dataset.active_k)


def upload_target() -> None:
    upload = st.file_uploader("Upload a target set (JSONL of instruction/input/output rows)", type=["jsonl"])
    if upload is not None:
        try:
            path = upload_path(workspace() / "targets", upload.name)
        except ValueError as exc:
            st.error(plain(exc))  # the message quotes the uploaded file's name
            return
        path.write_bytes(upload.getvalue())
        st.caption(f"Saved as {plain(path.name)}; pick it below.")


def launch_panel() -> None:
    upload_target()
    chosen = st.multiselect(
        "Target sets", target_files(workspace()), key="gradient_targets", format_func=lambda p: Path(p).name
    )
    target_summary(chosen)  # a target without responses is refused when the job is launched
    current = pipeline.current_config(store(), dataset.dataset_id)  # a new target must match computed features
    cols = st.columns(3)
    d = cols[0].number_input(
        "Feature dimension d (0: 1024 on CPU, 8192 on CUDA)", 0, 16384, current.d, key="gradient_d"
    )
    fraction = cols[1].number_input("Warmup fraction", 0.01, 1.0, current.warmup_fraction, 0.01, key="gradient_warmup")
    neighbours = cols[2].number_input("Neighbours per example (M)", 5, 500, current.neighbours, key="gradient_m")
    st.caption(
        "A short LoRA warmup on a random fraction of the dataset, then one batched backward pass per example "
        "(about 1.5 examples/s with the default 135M model on a 2-core CPU: 25 min for the sample data), "
        "then the top-M neighbour graph. "
        "Everything is cached: a target added later costs only its own rows."
    )
    engine = engine_choice("gradients")  # the features; the warmup and the graph run in the job itself
    if st.button("Compute features and graph", key="start_gradients", type="primary"):
        config = {"d": int(d), "warmup_fraction": float(fraction), "neighbours": int(neighbours)}
        spec = GradientsJob(dataset=dataset.name, config=config, targets=tuple(chosen), engine=engine)
        launch(spec, "gradient_job")


def gradients_outcome(status: jobs.JobStatus) -> None:
    st.caption(f"Gradients: {status.state}.")


def hidden_states_panel() -> None:
    """RDS+'s features: the base model's pooled hidden states of every example, computed by a background job."""
    st.subheader("Hidden states for RDS+")
    done = hidden.latest_pool(store(), dataset.dataset_id)
    if done is not None:
        st.caption(
            f"Computed: {done.n_rows} examples, d={done.d}, model {plain(done.model_id)}, {done.precision}, "
            f"up to {done.max_length} tokens each. RDS+ (rds_plus on the Select page) compares them with a target's."
        )
    else:
        st.caption(
            "RDS+ (rds_plus on the Select page) needs them: one forward pass of the base model per example (no "
            "warmup, no backward pass). Resumable; a target's own are computed when a selection first uses it."
        )
    engine = engine_choice("hidden")
    if st.button("Compute hidden states", key="start_hidden_states"):
        launch(HiddenStatesJob(dataset=dataset.name, engine=engine), "hidden_job")


def hidden_outcome(status: jobs.JobStatus) -> None:
    st.caption(f"Hidden states: {status.state}.")


with st.container(border=True):
    launch_panel()
    job_panel(JobView("gradients", "gradient_job", lambda _: "Computing gradients", gradients_outcome, 2))

with st.container(border=True):
    hidden_states_panel()
    job_panel(JobView("hidden_states", "hidden_job", lambda _: "Computing hidden states", hidden_outcome, 2))

try:
    pool = pipeline.pool_set(store(), dataset.dataset_id)
except MissingGradients:
    st.info("No gradient features yet: compute them above (or `python -m core gradients --target FILE`).")
    st.stop()
st.caption(
    f"Features: {pool.n_rows} examples, d={pool.d}, {plain(pool.projection)} projection, model {plain(pool.model_id)}."
)

computed = views.targets(store(), dataset.dataset_id)


def show_neighbours() -> None:
    """A click on the alignment map shows that example's gradient neighbourhood."""
    clicked = map_component.event("alignment_map", "click")
    if clicked and 0 <= int(clicked["row"]) < pool.n_rows:
        st.session_state["neighbour_row"] = int(clicked["row"])


if computed:
    st.subheader("Which clusters help each target")
    table = views.cluster_target_alignment(store(), dataset.dataset_id, k)
    labels = queries.cached_clusters(dataset).set_index("cluster_id").label
    # cluster labels and target names become the heatmap's ticks and hover labels, where plotly reads HTML
    table.index = [hover(f"{c}: {labels.get(c, '')}", 60) for c in table.index]
    table.columns = [hover(name, 60) for name in table.columns]
    st.plotly_chart(
        px.imshow(table, color_continuous_scale="RdBu", color_continuous_midpoint=0.0, aspect="auto"),
        key="alignment_heatmap",
    )
    st.caption("Mean cosine between a cluster's gradients and the target's: blue helps, red conflicts.")
    target = st.selectbox("Color the map by alignment with", list(computed), key="alignment_target")
    values = views.example_alignment(store(), dataset.dataset_id, computed[target])
    points = queries.cached_map(dataset)
    aligned = values.reindex(points.row_idx).reset_index(drop=True)
    map_component.show(
        map_spec.score_spec(points, aligned, f"alignment with {target}"), key="alignment_map", on_click=show_neighbours
    )
    st.caption("Click a point to see its gradient neighbourhood below.")
else:
    st.info("No target set computed yet: pick one above and compute, to see which clusters help it.")

with st.expander("Gradient alignment between clusters"):
    between = views.cluster_alignment(store(), dataset.dataset_id, k)
    st.plotly_chart(
        px.imshow(between, color_continuous_scale="RdBu", color_continuous_midpoint=0.0, aspect="auto"),
        key="cluster_alignment",
    )
    st.caption("Mean cosine between two clusters' gradients: training on one helps (blue) or hurts (red) the other.")

st.subheader("An example's gradient neighbourhood")
row = int(st.number_input("Example row", 0, pool.n_rows - 1, 0, key="neighbour_row"))
nodes, edges = views.neighbourhood(store(), dataset.dataset_id, row)
st.plotly_chart(figures.node_link(nodes, edges), key="neighbourhood")
st.caption("Green edges: aligned gradients; red: conflicting. Thicker: stronger.")

walks = [s for s in store_selections.listing(store(), dataset.dataset_id).itertuples() if s.strategy.startswith("g2is")]
if walks:
    st.subheader("Walk path of a G2IS selection")
    chosen = st.selectbox("Selection", walks, format_func=lambda s: f"#{s.selection_id} {s.name}", key="walk_pick")
    path = views.walk_path(store(), int(chosen.selection_id))
    st.plotly_chart(figures.walk_path(queries.cached_map(dataset), path), key="walk_map")
    st.caption("Picks joined in the order the walk took them, one color per target direction (component).")
