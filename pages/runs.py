"""Runs page: launch a fine-tune on a selection, watch it live, read its evaluation, compare runs, export."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from app import queries
from app.job_panel import launch
from app.needs_table import needs_table
from app.params_form import engine_choice, params_form
from app.state import pick_dataset, store, workspace
from app.text import clip, hover, plain
from app.widgets import target_files, target_picker
from core import jobs
from core.export import download_export
from core.runs import run as runs
from core.runs.loops import LOOPS
from core.select.strategies import STRATEGIES
from core.storage import datasets as ds
from core.storage.database import Store
from core.train.mixed import PRECISIONS
from core.train.trainer import TrainConfig

# what a curator weighs when choosing bf16 (docs/user-guide.md, Runs: the measured trade-off)
PRECISION_HELP = (
    "fp32: float32 throughout (the default). bf16: LoRA only, on a CPU with native bf16 (AVX512-BF16/AMX) or a "
    "bf16 GPU: the frozen base runs in bf16, the adapter and optimizer stay float32; faster steps, a loss within "
    "about 1 % of fp32's. Refused elsewhere, and with method full."
)

st.title("Runs")
dataset = pick_dataset()
if dataset is None:
    st.stop()


def strategy_title(name: str) -> str:
    """A loop's or a strategy's human name (their registries declare it)."""
    return LOOPS.title(name) if name in LOOPS.names() else STRATEGIES.title(name)


def run_target(key: str) -> str:
    """A targeted strategy's target files (the key stays ``run_target`` whatever the strategy)."""
    target = target_picker(workspace(), "run_target", "Target set(s) the selection should help")
    st.caption("Evaluate on held-out rows of the same task: the target rows steer the selection.")
    return target


def launch_form() -> None:
    saved = queries.cached_selections(dataset)
    source = st.radio("Train on", ["a strategy", "a saved selection"], horizontal=True, key="run_source")
    spec: dict = {"dataset": dataset.name}
    cols = st.columns(3)
    if source == "a saved selection":
        if saved.empty:
            st.info("No saved selection yet: make one on the Select page, or train on a strategy.")
            return
        names = dict(zip(saved.selection_id, saved.name, strict=True))
        spec["selection_id"] = int(
            cols[0].selectbox(
                "Selection", list(names), format_func=lambda i: f"#{i}: {clip(names[i], 80)}", key="run_selection"
            )
        )
        examples = int(saved[saved.selection_id == spec["selection_id"]]["size"].iloc[0])
    else:
        options = [*LOOPS.names(), *STRATEGIES.names()]  # the selection-and-fine-tune loops, then the strategies
        choice = cols[0].selectbox(
            "Strategy", options, index=options.index("kmq"), format_func=strategy_title, key="run_strategy"
        )
        spec["budget"] = float(
            cols[1].number_input("Budget (count, or fraction < 1)", 0.001, value=150.0, key="run_budget")
        )
        budget = spec["budget"]
        examples = round(budget * dataset.n_rows) if budget < 1 else int(budget)
        if choice in LOOPS.names():
            spec["loop"] = choice
            spec["rounds"] = int(st.number_input(LOOPS.get(choice).rounds_label, 1, value=2, key="run_rounds"))
            st.caption(LOOPS.summary(choice))
            spec["loop_params"] = params_form(LOOPS, choice, "run_loop")
            spec["engine"] = engine_choice("run")  # the rounds' generation and re-scoring may run on a cluster
        else:
            spec["strategy"] = choice
            spec["strategy_params"] = params_form(STRATEGIES, choice, "run_param", custom={"target": run_target})
            needs_table(dataset, choice, spec["strategy_params"], budget)
    spec["seed"] = int(cols[2].number_input("Seed", 0, value=0, key="run_seed"))
    defaults = TrainConfig()
    cols = st.columns(6)
    config = {
        "model": st.text_input("Model (path or hub id; default: packaged SmolLM2)", defaults.model, key="run_model"),
        "epochs": int(cols[0].number_input("Epochs", 1, value=2, key="run_epochs")),
        "learning_rate": float(cols[1].number_input("Learning rate", 1e-6, value=2e-4, format="%.1e", key="run_lr")),
        "lora_r": int(cols[2].number_input("LoRA rank", 1, value=defaults.lora_r, key="run_r")),
        "max_length": int(cols[3].number_input("Max length", 32, value=256, key="run_max_length")),
        "method": cols[4].selectbox("Method", ["lora", "full"], key="run_method"),
        "precision": cols[5].selectbox("Precision", PRECISIONS, key="run_precision", help=PRECISION_HELP),
        "seed": spec["seed"],
    }
    available = target_files(workspace())
    chosen = st.multiselect("Evaluation sets", available, key="run_evals")
    extra = st.text_input("More evaluation files (comma-separated paths)", "", key="run_eval_paths")
    cols = st.columns(3)
    limit = int(cols[0].number_input("Evaluate the first N rows (0 = all)", 0, value=50, key="run_eval_limit"))
    generate = cols[1].checkbox("Exact match (greedy generation)", value=True, key="run_generate")
    spec |= {
        "config": config,
        "eval_paths": chosen + [p.strip() for p in extra.split(",") if p.strip()],
        "eval_limit": limit or None,
        "generate": generate,
        "name": cols[2].text_input("Run name", "", key="run_name") or None,
    }
    minutes = runs.training_seconds(workspace(), examples, config["epochs"], config["max_length"]) / 60
    st.caption(
        f"Estimate: about {minutes:.0f} min of training for {examples} examples, plus evaluation and model load."
    )
    if st.button("Launch run", key="launch_run", type="primary"):
        launch(runs.RunSpec(**spec), "run_job", start=runs.launch_run)


@st.fragment(run_every=2.0)
def run_list() -> None:
    statuses = runs.list_runs(workspace())
    if not statuses:
        st.caption("No runs yet.")
        return
    rows = [
        {
            "run": s.job_id,
            "name": runs.run_label(s.params),
            "state": s.state,
            "stage": s.stage,
            "step": f"{s.done}/{s.total}" if s.stage == "train" else "",
            "loss": s.loss,
            "tokens/s": s.tokens_per_second,
            "ETA min": None if s.eta_seconds is None or not s.active else round(s.eta_seconds / 60, 1),
        }
        for s in statuses
    ]
    st.dataframe(rows, hide_index=True, key="run_table")
    active = {s.job_id for s in statuses if s.active}
    if st.session_state.get("active_runs", set()) - active:  # a run just ended: refresh its curve, results, downloads
        st.session_state["active_runs"] = active
        st.rerun(scope="app")
    st.session_state["active_runs"] = active
    for status in statuses:
        if status.active and st.button(f"Cancel {status.job_id}", key=f"cancel_run_{status.job_id}"):
            jobs.request_cancel(workspace(), status.job_id)
        if status.state in ("cancelled", "interrupted") and st.button(
            f"Resume {status.job_id}", key=f"resume_run_{status.job_id}"
        ):
            runs.resume_run(workspace(), status.job_id)


def run_detail(run_id: str) -> None:
    status = jobs.read_status(workspace(), run_id)
    if status.error:
        st.error(plain(status.error))  # a training error can quote a row or a path
    curve = runs.losses(workspace(), run_id)
    if not curve.empty:
        st.plotly_chart(px.line(curve, x="step", y="loss", title="Training loss"), key=f"loss_{run_id}")
    table = runs.compare_runs(workspace(), [run_id])
    if not table.empty:
        st.dataframe(table.drop(columns=["run", "label", "state"]), hide_index=True, key=f"evals_{run_id}")
    rounds = status.result.get("rounds")
    if rounds:
        weights = pd.DataFrame(
            [
                {"round": r["round"], "cluster": str(c), "weight": w, "quota": q}
                for r in rounds
                for c, w, q in zip(r["clusters"], r["weights_after"], r["quotas"], strict=True)
            ]
        )
        st.plotly_chart(
            px.line(
                weights, x="round", y="weight", color="cluster", markers=True, title="Cluster weights after each round"
            ),
            key=f"weights_{run_id}",
        )
        st.caption(
            "A cluster gains weight when its gold answers beat the model's own generations (perplexity difference)."
        )
    _decisions_per_round(rounds or status.result.get("epochs") or [])
    picks = runs.round_picks(workspace(), run_id)
    if not picks.empty:
        st.markdown("**Examples selected in each round**")
        st.dataframe(picks, hide_index=True, key=f"picks_{run_id}")
    selection_id = status.result.get("selection_id", status.params.get("selection_id"))
    final = runs.run_dir(workspace(), run_id) / "final"
    cols = st.columns(2)
    if status.state == "done" and final.exists():
        cols[0].download_button("Download adapter (zip)", _zip(final), f"{run_id}-adapter.zip", key=f"adapter_{run_id}")
    if selection_id is not None:
        cols[1].download_button(  # written on click from the export file (pages/export.py), not on every render
            "Download its selection (JSONL)",
            _selection_download(store(), dataset, int(selection_id), f"{run_id}-selection"),
            f"{run_id}-selection.jsonl",
            key=f"sel_{run_id}",
        )


def _selection_download(
    workspace_store: Store, dataset: ds.DatasetInfo, selection_id: int, stem: str
) -> Callable[[], bytes]:
    """What the selection's download button runs when clicked: the streamed export's file, read then."""

    def read() -> bytes:
        return download_export(workspace_store, dataset, selection_id, stem).jsonl_path.read_bytes()

    return read


def _decisions_per_round(records: list[dict]) -> None:
    """What the curator had decided when each round started: rounds follow vetoes made during a run."""
    rows = [
        {
            "round": r.get("round", r.get("epoch")),
            "vetoed clusters": ", ".join(map(str, r["decisions"].get("vetoed_clusters", []))) or "none",
            "cluster weights": ", ".join(f"{c}: {w:g}" for c, w in r["decisions"].get("weights", {}).items())
            or "all 1",
            "vetoed examples": len(r["decisions"].get("vetoed_examples", [])),
            "dropped from training": len(r.get("dropped", [])),
        }
        for r in records
        if r.get("decisions")
    ]
    if rows:
        st.markdown("**Curator decisions each round used**")
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()


with st.expander("Launch a run", expanded=not runs.list_runs(workspace())):
    launch_form()
st.subheader("Runs")
run_list()
finished = [s.job_id for s in runs.list_runs(workspace())]
if finished:
    st.subheader("A run")
    run_detail(st.selectbox("Run", finished, key="run_pick"))
    st.subheader("Compare runs")
    picked = st.multiselect("Runs to compare", finished, default=finished[:2], key="compare_runs")
    table = runs.compare_runs(workspace(), picked)
    if table.empty:
        st.caption("None of these runs has evaluation results yet.")
    else:
        st.dataframe(table, hide_index=True, key="compare_table")
        metric = "run_accuracy" if table.run_accuracy.notna().any() else "run_loss"
        # run names and evaluation file names become ticks, legend and hover labels, where plotly reads HTML
        shown = table.assign(label=table.label.map(hover), eval_set=table.eval_set.map(hover))
        figure = px.bar(shown, x="eval_set", y=metric, color="label", barmode="group", title=metric.replace("_", " "))
        st.plotly_chart(figure, key="compare_plot")
