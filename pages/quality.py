"""Quality page: score in the background, weigh the signals, see score distributions and the worst clusters,
confirm or dismiss the proposed vetoes of clusters below the threshold, and browse near-duplicate groups."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from app import figures, judge_form, queries
from app.duplicates import duplicates_panel
from app.job_panel import JobView, job_panel, launch
from app.params_form import engine_choice, params_form
from app.state import pick_dataset, store
from app.text import plain
from app.widgets import plain_text
from core import jobs
from core.models.passes import is_empty_response
from core.registry import changed_values
from core.score import cost, quality
from core.score.job import ScoreJob
from core.score.proposals import FLAG_SHARE, MIN_SCORE_SIGNALS, propose
from core.score.scorers import SCORERS
from core.storage import curation, datasets

SCATTER_POINTS = 20_000  # the scatter draws at most this many rows: a seeded sample beyond it

st.title("Quality")
dataset = pick_dataset()
if dataset is None:
    st.stop()
k = int(dataset.active_k)


def launch_panel() -> None:
    cols = st.columns([2, 1, 1])
    scorer = cols[0].selectbox("Scorer", SCORERS.names(), key="scorer", format_func=SCORERS.title)
    limit = cols[1].number_input(
        "At most (0 = all; a sample stratified by cluster)", 0, dataset.n_rows, 0, key="score_limit"
    )
    st.caption(SCORERS.summary(scorer))
    values = params_form(SCORERS, scorer, "score", custom=judge_form.CUSTOM)  # the judge's prompt: a text area
    confirmed = True
    if SCORERS.get(scorer).uses_model:
        confirmed = cost_notice(scorer, int(limit) or dataset.n_rows, str(values.get("precision") or "auto"))
        st.caption(
            "LM scorers run SmolLM2-135M-Instruct (packaged) unless you name another model, about 2-4 examples/s "
            "on a 2-core CPU; the job measures its speed on a few examples first and shows the estimate here. "
            "The reward scorer needs a sequence-classification reward model. "
            "Scores are cached by scorer, model, parameters and example text."
        )
    if scorer == "judge":  # where the data goes, the estimate, Test connection; no Score until settings work
        confirmed = judge_form.judge_panel(dataset, values, int(limit) or dataset.n_rows)
    engine = engine_choice("score") if SCORERS.get(scorer).uses_model else None
    if cols[2].button("Score", key="start_score", type="primary", disabled=not confirmed):
        params = changed_values(SCORERS.params(scorer), values)
        spec = ScoreJob(dataset=dataset.name, scorer=scorer, params=params, limit=int(limit) or None, engine=engine)
        launch(spec, "score_job")


def cost_notice(scorer: str, n_rows: int, precision: str) -> bool:
    """The cost from bench/score.py's measured rates, before the button: saying it loads no model. A run past
    ``cost.CONFIRM_SECONDS`` (an hour) needs a tick first, as the CLI needs ``--yes``; returns whether the
    Score button may start it."""
    line = cost.cost_line(scorer, n_rows, precision)
    if line is None:
        return True
    seconds = cost.projected_seconds(scorer, n_rows, precision) or 0.0
    long_run = seconds > cost.CONFIRM_SECONDS
    (st.warning if long_run else st.info)(line[0].upper() + line[1:] + ".")
    if not long_run:
        return True
    return st.checkbox(f"Start it anyway: about {cost.duration(seconds)}", key=f"score_confirm_{scorer}_{n_rows}")


def scoring(status: jobs.JobStatus) -> str:
    return f"Scoring {plain(status.params.get('scorer'), 80)}"


def score_outcome(status: jobs.JobStatus) -> None:
    tally = judge_form.tally_line(status.result.get("tally"))  # the judge's rated, unparsed and failed rows
    st.caption(f"{scoring(status)}: {status.state} ({status.result.get('scored', 0)} scored{tally}).")


def weights_form(available: list[str]) -> dict[str, float]:
    """Weights of the continuous signals (a weighted mean) and penalties of the flags (multipliers)."""
    weights = {}
    continuous = [name for name in available if not quality.SIGNALS[name].is_flag]
    flags = [name for name in available if quality.SIGNALS[name].is_flag]
    st.caption("Weights of the scores averaged into the quality (0 leaves a score out).")
    cols = st.columns(4)
    for index, name in enumerate(continuous):
        default = quality.DEFAULT_WEIGHTS[name]
        weights[name] = cols[index % 4].slider(name, 0.0, 3.0, default, 0.1, key=f"w_{name}")
    if flags:
        st.caption("Penalties of the defect flags: a flagged example's quality is multiplied by 1 - penalty.")
        cols = st.columns(4)
        for index, name in enumerate(flags):
            default = quality.DEFAULT_WEIGHTS[name]
            weights[name] = cols[index % 4].slider(name, 0.0, 1.0, default, 0.05, key=f"w_{name}")
    return weights


def proposals_panel(
    raw: pd.DataFrame, normalised: pd.DataFrame, weights: dict[str, float], threshold: float, table: pd.DataFrame
) -> None:
    """The proposed vetoes (decided in core.score.proposals), each with its reasons and the rows behind it."""
    skip = {int(c) for c in curation.dismissed_proposals(store(), dataset.dataset_id, k)}
    skip |= {int(c) for c in table.cluster_id[table.vetoed.astype(bool)]}
    found = propose(raw, weights, queries.cached_assignment(dataset), threshold, skip=skip, normalised=normalised)
    st.subheader(f"Proposed vetoes ({len(found)})")
    st.caption(
        f"A cluster is proposed when at least {FLAG_SHARE:.0%} of its rows carry a defect flag, or when its mean "
        f"quality is below the threshold and it is low on {MIN_SCORE_SIGNALS} or more scores; never on one weak "
        "signal alone."
    )
    for proposal in found:
        cluster = proposal.cluster_id
        label = table.label[table.cluster_id == cluster].iloc[0]
        cols = st.columns([4, 1, 1])
        cols[0].markdown(f"Cluster {cluster}: {plain(label, 120)} · quality {proposal.quality:.2f}")
        cols[0].caption(plain(proposal.summary()))
        with cols[0].expander(f"The {len(proposal.examples)} rows behind it"):
            rows = list(proposal.examples)
            frame = datasets.examples_at(store(), dataset.dataset_id, rows).set_index("row_idx").loc[rows]
            flags = [name for name in raw if quality.is_flag(name)]
            raised = raw.loc[rows, flags].fillna(0) >= 0.5
            frame.insert(0, "flags", [", ".join(n for n in flags if row[n]) for _, row in raised.iterrows()])
            st.dataframe(frame.reset_index(), hide_index=True, key=f"proposal_rows_{cluster}")  # plain cells
        if cols[1].button("Veto", key=f"accept_{cluster}"):
            curation.set_cluster_veto(store(), dataset.dataset_id, k, int(cluster), True)
            st.rerun()
        if cols[2].button("Dismiss", key=f"dismiss_{cluster}"):
            curation.record_choice(
                store(), dataset.dataset_id, "dismiss_veto_proposal", f"k={k}/cluster={cluster}", False, True
            )
            st.rerun()


with st.container(border=True):
    launch_panel()
    job_panel(JobView("score", "score_job", scoring, score_outcome))

raw = queries.cached_signals(dataset)
available = [name for name in quality.SIGNALS if name in raw and raw[name].notna().any()]
if not quality.has_scores(raw):
    st.info("No scores yet: run a scorer above (heuristics and tfidf_diversity take seconds).")
    st.stop()
if judged := judge_form.stored_counts(raw):
    st.caption(judged)
st.subheader("Combined quality")
weights = weights_form(available)
threshold = st.slider("Threshold", 0.0, 1.0, quality.DEFAULT_THRESHOLD, 0.05, key="threshold")
normalised = quality.normalise(raw)
combined = quality.combined(normalised, weights)
clusters = queries.cached_clusters(dataset)
assignment = pd.Series(queries.cached_assignment(dataset))
means = quality.cluster_quality(combined, assignment.to_numpy())
passing = int((combined >= threshold).sum())
st.metric("Examples at or above the threshold", f"{passing} of {len(combined)}")
st.metric("Clusters at or above the threshold", f"{int((means >= threshold).sum())} of {len(means)}")

left, right = st.columns(2)
# real scores first, so the default charts show a distribution, not the 0/1 of a flag
names = [c for c in raw.columns if raw[c].notna().any()]
score_names = [c for c in names if not quality.is_flag(c)] + [c for c in names if quality.is_flag(c)]
shown = left.selectbox("Histogram of", score_names, key="hist_score")
left.plotly_chart(figures.binned_histogram(raw[shown], shown), key="histogram")
x_name = right.selectbox("Scatter x", score_names, key="scatter_x")
y_name = right.selectbox("Scatter y", score_names, index=min(1, len(score_names) - 1), key="scatter_y")
scatter = figures.sample_rows(raw.assign(row_idx=raw.index, cluster=assignment), SCATTER_POINTS)
if len(scatter) < len(raw):
    right.caption(f"A random sample of {len(scatter):,} of {len(raw):,} rows.")
event = right.plotly_chart(
    px.scatter(scatter, x=x_name, y=y_name, custom_data=["row_idx"], render_mode="webgl"),
    key="scatter",
    on_select="rerun",
    selection_mode="points",
)
points = event.selection.get("points", []) if event else []
if points:
    row = int(points[0]["customdata"][0])
    frame, _ = curation.examples(store(), dataset.dataset_id, k, limit=1, offset=row)
    st.caption(f"Example {plain(frame.example_id.iloc[0], 80)} (cluster {frame.cluster_id.iloc[0]})")
    plain_text(frame.instruction.iloc[0])
    output = frame.output.iloc[0]
    plain_text("(empty response)" if is_empty_response(output) else output)

table = clusters.assign(quality_mean=clusters.cluster_id.map(means).round(3))
st.subheader("Clusters by quality")
st.dataframe(
    table.sort_values("quality_mean")[["cluster_id", "label", "size", "quality_mean", "vetoed"]],
    hide_index=True,
    key="quality_table",
)
proposals_panel(raw, normalised, weights, threshold, clusters)
duplicates_panel(store(), dataset.dataset_id, raw)
