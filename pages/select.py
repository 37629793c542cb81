"""Select page: run a selection strategy on the kept examples (a background job above 100k rows), preview it per
cluster, save, compare."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import queries
from app.job_panel import JobView, job_panel, launch
from app.needs_table import needs_table
from app.params_form import params_form
from app.state import actor, pick_dataset, store, workspace
from app.text import plain
from app.widgets import target_picker
from core import jobs
from core.errors import MissingScores
from core.score import quality
from core.select import cost
from core.select import job as select_job
from core.select.job import SelectJob
from core.select.pool import resolve_budget
from core.select.run import build_strategy, per_cluster, run_selection, save_selection
from core.select.strategies import STRATEGIES
from core.storage import curation, selections

st.title("Select")
dataset = pick_dataset()
if dataset is None:
    st.stop()
k = int(dataset.active_k)


def settings() -> tuple[str, dict[str, object], float, int]:
    names = STRATEGIES.names()
    name = st.selectbox("Strategy", names, index=names.index("kmq"), format_func=STRATEGIES.title, key="strategy")
    st.caption(f"{STRATEGIES.summary(name)} (id `{name}` in the CLI and manifests)")
    # targeted strategies: the task the selection should help, from the known target files
    params = params_form(STRATEGIES, name, "param", custom={"target": lambda key: target_picker(workspace(), key)})
    left, right = st.columns(2)
    budget = left.number_input(
        "Budget: a count, or a fraction below 1 of the dataset's rows", min_value=0.001, value=0.1, key="budget"
    )
    seed = right.number_input("Seed", min_value=0, value=0, step=1, key="seed")
    return name, params, float(budget), int(seed)


def cost_notice(name: str, budget: float, candidates: int) -> None:
    """The projected cost of a selection past a minute, before Preview (the dataset's rows bound the pool)."""
    try:
        count = resolve_budget(budget, dataset.n_rows, dataset.n_rows)
    except ValueError:
        return  # a fractional count: the run itself says what is wrong with it
    seconds = cost.projected_seconds(name, dataset.n_rows, count, candidates)
    if seconds is not None and seconds > cost.ANNOUNCE_SECONDS:
        line = cost.cost_line(name, dataset.n_rows, count, candidates)
        st.warning(f"{line[0].upper()}{line[1:]}. Instead: {cost.bounded_form(name, dataset.n_rows, count)}.")


name, params, budget, seed = settings()
cost_notice(name, budget, int(str(params.get("candidates") or 0)))
needs_table(dataset, name, params, budget)  # what is missing, and its time here
request = (dataset.dataset_id, k, name, tuple(sorted(params.items())), budget, seed)
in_page = dataset.n_rows <= select_job.PREVIEW_IN_PAGE_ROWS
if not in_page:
    st.caption(
        f"{dataset.n_rows:,} rows: the preview runs in the background (progress and Cancel below); "
        "you can leave this page meanwhile."
    )
clicked = st.button("Preview", key="preview", type="primary")
if clicked and in_page:
    try:
        with st.spinner(f"Selecting with {name}..."):
            result = run_selection(store(), dataset, build_strategy(name, params), budget, seed=seed, k=k)
        st.session_state["selection_preview"] = (request, result)
    except (MissingScores, ValueError) as exc:
        st.session_state.pop("selection_preview", None)
        st.error(plain(exc))  # messages can name a target file or a score
elif clicked:
    spec = SelectJob(dataset=dataset.name, strategy=name, params=params, budget=budget, seed=seed, k=k)
    if launch(spec, "select_job"):
        st.session_state["select_job_request"] = request
        st.session_state.pop("selection_preview", None)


def job_title(status: jobs.JobStatus) -> str:
    return f"Selecting with {plain(str(status.params.get('strategy', '')), 40)}"


def job_outcome(status: jobs.JobStatus) -> None:
    """Shows the finished job's selection as the preview below (once: a saved preview is not brought back)."""
    if status.state == "done" and st.session_state.get("select_job_shown") != status.job_id:
        st.session_state["select_job_shown"] = status.job_id
        result = select_job.load_result(workspace(), status.job_id)
        st.session_state["selection_preview"] = (st.session_state.get("select_job_request"), result)


if not in_page or st.session_state.get("select_job"):
    job_panel(JobView("select", "select_job", job_title, job_outcome))


def low_quality_note(rows: list[int]) -> None:
    """How many picks come from clusters whose mean combined quality (default weights) is below the threshold."""
    raw = queries.cached_signals(dataset)
    if not quality.has_scores(raw):
        return
    threshold = quality.DEFAULT_THRESHOLD
    scores = pd.Series(queries.cached_quality_of_rows(dataset))  # once per data version, not per rerun
    assigned = queries.cached_assignment(dataset)
    picks, clusters = quality.picks_below(scores, assigned, rows)
    st.caption(
        f"{picks} of the {len(rows)} picks come from {clusters} clusters whose mean quality is below {threshold} "
        "(default weights; the Quality page proposes the clusters to veto, with their reasons)."
    )
    low = quality.clusters_below(scores, assigned, rows)
    if low:
        st.button(
            f"Leave them out: veto these {len(low)} clusters (one batch, undone on the Clusters page), then "
            "preview again",
            key="veto_low_clusters",
            on_click=veto_low_clusters,
            args=(low,),
        )


def veto_low_clusters(clusters: list[int]) -> None:
    """Veto the low-quality clusters a preview drew from (one history batch) and drop the preview, which no
    longer matches the pool."""
    changed = curation.bulk_cluster_decision(
        store(),
        dataset.dataset_id,
        int(dataset.active_k),
        clusters,
        vetoed=True,
        actor=actor(),
        reason="below the quality threshold (Select)",
    )
    st.session_state.pop("selection_preview", None)
    st.session_state["select_notice"] = f"Vetoed {changed} clusters below the quality threshold; preview again."


notice = st.session_state.pop("select_notice", None)
if notice:
    st.success(notice)
preview = st.session_state.get("selection_preview")
if preview and preview[0] == request:
    result = preview[1]
    st.metric("Selected", f"{len(result.example_ids)} of {result.pool_size} kept examples")
    low_quality_note(result.row_idx)
    if result.report.get("shortfall"):  # G2IS's walk may stop early; the paper's code says nothing, we do
        st.warning(
            f"{result.report['shortfall']} short of the budget of {result.report['budget']}: "
            f"{plain(result.report.get('why', 'the strategy found no more eligible examples'))}."
        )
    for note in result.report.get("notes", []):  # e.g. the clusters left without a quota: only empty responses
        st.info(plain(note))
    table = per_cluster(store(), dataset, result.row_idx, k)
    st.dataframe(table, hide_index=True, key="preview_table")
    st.bar_chart(table.set_index("cluster_id")[["size", "selected"]], stack=False)
    label = st.text_input("Name", f"{name} {len(result.example_ids)} (seed {seed})", key="selection_name")
    if st.button("Save selection", key="save_selection"):
        selection_id = save_selection(store(), dataset, result, label)
        st.session_state.pop("selection_preview", None)
        spent = selections.cost_phrase(selections.get(store(), selection_id)["cost"])
        st.success(f"Saved selection #{selection_id} (compute: {spent}). Export it from the Export page.")
elif preview:
    st.caption("The settings changed since the preview: preview again to save.")

st.subheader("Saved selections")
saved = queries.cached_selections(dataset)
if saved.empty:
    st.caption("None yet.")
    st.stop()
st.dataframe(saved.drop(columns=["pool_hash"]), hide_index=True, key="saved_table")
if len(saved) >= 2:
    ids = saved.selection_id.tolist()
    left, right = st.columns(2)
    first = left.selectbox("Compare", ids, index=1, key="compare_a")
    second = right.selectbox("with", ids, index=0, key="compare_b")
    if first != second:
        report = queries.cached_comparison(dataset, int(first), int(second))
        cols = st.columns(4)
        cols[0].metric("Shared", report["shared"])
        cols[1].metric(f"Only in #{first}", report["only_first"])
        cols[2].metric(f"Only in #{second}", report["only_second"])
        cols[3].metric("Jaccard", f"{report['jaccard']:.2f}")
        st.dataframe(report["metrics"], hide_index=True, key="compare_metrics")
        st.caption(
            "Diversity: the Vendi score of the embeddings, the effective number of distinct examples (grows "
            "with size: compare selections of similar size). Cost: what computing each took, when recorded."
        )
        st.caption(f"Per cluster at k={report['k']}: each selection's count and share of its picks.")
        st.dataframe(report["per_cluster"], hide_index=True, key="compare_table")
        if report["sources"] is not None:
            st.caption("Shares by the dataset's `source` column.")
            st.dataframe(report["sources"], hide_index=True, key="compare_sources")
