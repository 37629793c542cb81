"""Home page: where the chosen dataset stands (prepared, scored, selected, fine-tuned, exported), the next step
to take, and what each expensive step costs on this machine, with a link to the page of each step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from app import queries
from app.state import pick_dataset, store, workspace
from app.text import clip, plain
from core.export import past_exports
from core.gradients.job import EXAMPLES_PER_SECOND as GRADIENT_EXAMPLES_PER_SECOND
from core.prepare import PREPARE_ROWS_PER_SECOND
from core.runs import run as runs
from core.score import cost as score_cost
from core.select import cost as select_cost
from core.select.strategies import STRATEGIES
from core.storage import datasets as ds
from core.storage import scores

ROOT = Path(__file__).resolve().parents[1]
EXPORT_ROWS_PER_SECOND = 50_000  # the Export page's figure: about 20 s per million rows written
# The Runs page's defaults: what the first run's estimate assumes when no selection is saved yet.
RUN_EXAMPLES, RUN_EPOCHS, RUN_MAX_LENGTH = 150, 2, 256
# The navigation's names of the pages (app/main.py), for the links.
PAGE_TITLES = {
    "datasets": "Datasets",
    "clusters": "Clusters",
    "quality": "Quality",
    "gradients": "Gradient graph",
    "select": "Select",
    "runs": "Runs",
    "export": "Export",
}


@dataclass(frozen=True)
class Step:
    """One step of the curation path: its page, whether it is done, what is there, and what it costs."""

    title: str
    page: str  # the script under pages/
    icon: str
    done: bool
    status: str  # markdown: what this dataset has for the step
    cost: str = ""  # markdown: the estimate of running it on this machine
    optional: bool = False


def page_path(name: str) -> str:
    return str(ROOT / "pages" / f"{name}.py")


def duration(seconds: float) -> str:
    return "under a second" if seconds < 1 else score_cost.duration(seconds)


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


st.title("Curation studio")
st.caption(
    "Load an instruction dataset, find and veto its bad clusters and examples, score it, select a subset, "
    "fine-tune on it and export it. This page says where the chosen dataset stands and what to do next."
)

datasets = ds.list_datasets(store())
if not datasets:
    st.info(
        "**Next: load a dataset.** Pick or upload a `.jsonl`, `.json`, `.csv` or `.parquet` file and prepare it: "
        f"ingest, embed, sweep k, label, map. With the packaged embedder that takes about "
        f"{duration(50_000 / PREPARE_ROWS_PER_SECOND)} per 50,000 rows on a 2-core CPU (the hashing embedder: "
        "seconds)."
    )
    st.page_link(page_path("datasets"), label="Datasets: load and prepare", icon=":material/database:")
    st.stop()

dataset = pick_dataset(ready_only=False)
if dataset is None:
    st.stop()
name = plain(dataset.name, 120)  # a name comes from the user or the file
if dataset.status != "ready":
    st.info(f"**{name}** is not ready yet ({plain(dataset.status, 40)}): its prepare job shows on Datasets.")
    st.page_link(page_path("datasets"), label="Datasets", icon=":material/database:")
    st.stop()

n_rows, k = dataset.n_rows, int(dataset.active_k or 0)
scorers = sorted(scores.latest_keys(store(), dataset.dataset_id))
saved = queries.cached_selections(dataset)
dataset_runs = [s for s in runs.list_runs(workspace()) if s.params.get("dataset") == dataset.name]
exports = past_exports(workspace(), dataset.name)

cols = st.columns(5)
cols[0].metric("Rows", f"{n_rows:,}")
cols[1].metric("Clusters (k)", k)
cols[2].metric("Scorers run", len(scorers))
cols[3].metric("Saved selections", len(saved))
cols[4].metric("Runs", len(dataset_runs))


def scoring_cost() -> str:
    """What the scorers not run yet cost: the heuristic ones take seconds, the LM ones come from bench/score.py's
    measured rates."""
    lines = [] if "heuristics" in scorers else [f"heuristics: seconds for {n_rows:,} rows"]
    lines += [score_cost.cost_line(scorer, n_rows) or "" for scorer in ("ifd", "perplexity") if scorer not in scorers]
    return "; ".join(line for line in lines if line)


def selection_cost() -> str:
    """kMQ (the default strategy) at a 10 % budget, from its calibrated growth law."""
    budget = max(1, n_rows // 10)
    seconds = select_cost.projected_seconds("kmq", n_rows, budget) or 0.0
    return f"{STRATEGIES.title('kmq')} picking {budget:,} of {n_rows:,} rows (10 %): {duration(seconds)}"


def decisions() -> str:
    """The curator's decisions at the active k, from the small decision tables."""
    overlay = queries.cached_decisions(dataset)
    vetoed, examples = int(overlay.vetoed.sum()), int(overlay.vetoed_examples.sum())
    reweighted = int((overlay.weight != 1.0).sum())
    if not (vetoed or examples or reweighted):
        return "no decision yet: open clusters, read their examples, veto the bad ones or change their weight"
    return (
        f"{count(vetoed, 'cluster')} vetoed, {count(examples, 'example')} vetoed one by one, "
        f"{count(reweighted, 'cluster')} reweighted"
    )


def run_examples() -> int:
    return int(saved["size"].iloc[0]) if not saved.empty else RUN_EXAMPLES


def steps() -> list[Step]:
    swept = ", ".join(str(value) for value in dataset.k_grid)
    latest = saved.iloc[0] if not saved.empty else None
    finished = [s for s in dataset_runs if s.state == "done"]
    active = [s for s in dataset_runs if s.active]
    examples = run_examples()
    train_seconds = runs.training_seconds(workspace(), examples, RUN_EPOCHS, RUN_MAX_LENGTH)
    return [
        Step(
            "Prepare",
            "datasets",
            ":material/database:",
            True,
            f"{n_rows:,} rows ({dataset.n_skipped:,} skipped), k = {k} of {swept} swept",
        ),
        Step(
            "Review the clusters",
            "clusters",
            ":material/bubble_chart:",
            False,
            decisions(),
            optional=True,
        ),
        Step(
            "Score",
            "quality",
            ":material/grade:",
            bool(scorers),
            f"scored with {plain(', '.join(scorers), 200)}" if scorers else "not scored yet",
            scoring_cost(),
        ),
        Step(
            "Gradient graph",
            "gradients",
            ":material/hub:",
            False,
            "for the targeted strategies (LESS, G2IS; RDS+ from the base model's hidden states): features "
            "compared with a target task",
            f"about {duration(n_rows / GRADIENT_EXAMPLES_PER_SECOND)} for {n_rows:,} rows on a 2-core CPU",
            optional=True,
        ),
        Step(
            "Select",
            "select",
            ":material/checklist:",
            latest is not None,
            (
                f"{len(saved)} saved; newest #{latest.selection_id} {plain(clip(str(latest['name']), 60))} "
                f"({int(latest['size']):,} examples)"
                if latest is not None
                else "no saved selection yet"
            ),
            selection_cost(),
        ),
        Step(
            "Fine-tune and compare",
            "runs",
            ":material/model_training:",
            bool(finished),
            (
                f"{count(len(dataset_runs), 'run')}: {len(finished)} done, {len(active)} running"
                if dataset_runs
                else "no run yet"
            ),
            f"about {duration(train_seconds)} of LoRA training for {examples:,} examples, {RUN_EPOCHS} epochs "
            "(plus model load and evaluation)",
        ),
        Step(
            "Export",
            "export",
            ":material/download:",
            bool(exports),
            (
                f"{count(len(exports), 'export')}; newest: {plain(exports[0].jsonl_path.name, 80)} "
                f"({plain(exports[0].selection, 80)}, {exports[0].n_rows:,} rows)"  # a manifest is a file anyone can edit
                if exports
                else "not exported yet"
            ),
            f"{duration(n_rows / EXPORT_ROWS_PER_SECOND)} to write {n_rows:,} rows",
        ),
    ]


plan = steps()
following = next((step for step in plan if not step.done and not step.optional), None)
if following is None:
    st.success(f"**{name}** has been scored, selected, fine-tuned on and exported. Refine and repeat at will.")
else:
    with st.container(border=True):
        st.markdown(f"**Next step for {name}: {following.title}**, {following.status}.")
        if following.cost:
            st.caption(f"Estimated cost: {following.cost}.")
        st.page_link(page_path(following.page), label=f"Go to {PAGE_TITLES[following.page]}", icon=following.icon)

st.subheader("Where it stands")
for step in plan:
    mark = "✔" if step.done else "○"  # characters, not :material/ icons: no markdown directive in this body
    left, middle, right = st.columns([3, 6, 2], vertical_alignment="center")
    left.markdown(f"{mark} **{step.title}**" + (" (optional)" if step.optional else ""))
    middle.markdown(step.status)
    if step.cost:
        middle.caption(step.cost)
    right.page_link(page_path(step.page), label=PAGE_TITLES[step.page], icon=step.icon)
