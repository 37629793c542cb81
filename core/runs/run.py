"""Fine-tuning runs as background jobs: select (or take a saved selection), evaluate the base, train, evaluate.

A run is a job of kind ``train`` (:mod:`core.jobs`): its folder holds the parameters, the status
(step / total, loss, tokens/s, ETA), the log, ``losses.jsonl`` (one line per optimizer step), the
trainer's checkpoint, the final adapter (``final/``) and ``evals.json``. A cancelled or interrupted run
is resumed with :func:`resume_run`: the selection is not redrawn (its id is kept in ``selection.json``)
and training continues from the last checkpoint.

Evaluation results are cached in the store by (model, adapter, set, parameters), so the base model is
evaluated once per set and every run shows its change against the base.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from core import atomic, jobs
from core.engines import engine_from_spec
from core.progress import Progress
from core.train.trainer import TrainConfig, TrainStatus, step_plan, train

if TYPE_CHECKING:
    from core.models.lm import CausalLM, LoadedLM
    from core.storage.database import Store

RUN_KIND = "train"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What to train on and how; everything a run needs, stored as its job parameters.

    Either ``selection_id`` (a saved selection) or ``strategy`` with ``budget`` (selected when the run
    starts, then saved), or ``loop`` (``iterative_kmq`` or ``iterit``) with ``budget`` and ``rounds``
    (rounds of iterative kMQ, epochs of IterIT; ``loop_params`` go to the loop, e.g. ``within``,
    ``rule``, ``continue_training``, ``update_ratio``, ``decay``, ``static``). ``eval_paths``: JSONL
    evaluation sets; ``eval_limit`` evaluates their first N rows; ``generate`` turns on greedy
    generation for exact-match accuracy where rows carry ``answer``.
    """

    dataset: str
    selection_id: int | None = None
    strategy: str | None = None
    strategy_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    budget: float | None = None
    seed: int = 0
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    eval_paths: list[str] = dataclasses.field(default_factory=list)
    eval_limit: int | None = None
    generate: bool = True
    max_new_tokens: int = 128
    name: str | None = None
    loop: str = "none"
    rounds: int = 2
    loop_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    engine: dict[str, Any] | None = None  # where a loop's generation and re-scoring run (core.engines)

    kind: ClassVar[str] = RUN_KIND

    def train_config(self) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(self.config) - known
        if unknown:
            raise jobs.InvalidJob("config", f"unknown training parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        with jobs.blame("config"):  # TrainConfig refuses a bad value (an unknown precision) naming its parameter
            return TrainConfig(**self.config)

    def validate(self, workspace: Path) -> None:
        """Fail before launching on what would fail later: the dataset, the selection or strategy, the eval files."""
        from core.gradients.target_report import check_strategy_target
        from core.models.device import pick_device
        from core.runs.loops import LOOPS
        from core.select.run import build_strategy
        from core.select.strategies import STRATEGIES
        from core.storage import selections
        from core.storage.database import Store
        from core.train.evaluate import load_eval_set
        from core.train.mixed import require_native_bf16

        store = Store(workspace)
        jobs.ready_dataset(workspace, self.dataset)
        if self.train_config().precision == "bf16":  # refused before launching on hardware that would emulate it
            with jobs.blame("config"):
                require_native_bf16(pick_device().split(":")[0])
        loops = ("none", *LOOPS.names())
        if self.loop not in loops:
            raise jobs.InvalidJob("loop", f"choose one of {', '.join(loops)}, not {self.loop!r}")
        with jobs.blame("engine"):
            engine = engine_from_spec(self.engine)  # the parameters only: no cluster is reached here
        if engine is not None and self.loop == "none":
            raise jobs.InvalidJob(
                "engine", "the ray engine runs a loop's generation and re-scoring; this run has no loop to run there"
            )
        if engine is not None and self.train_config().method != "lora":
            raise jobs.InvalidJob("engine", "a round's model goes to the workers as LoRA adapters: use method lora")
        if self.loop != "none":
            if self.budget is None or self.rounds < 1:
                raise jobs.InvalidJob("budget", f"{self.loop} needs a budget and at least one round")
            with jobs.blame("loop_params"):
                LOOPS.parse(self.loop, self.loop_params)
        elif self.selection_id is not None:
            with jobs.blame("selection_id"):
                selections.get(store, self.selection_id)
        elif self.strategy is None or self.budget is None:
            raise jobs.InvalidJob("strategy", "a run needs a saved selection, or a strategy and a budget")
        else:
            with jobs.blame("strategy"):
                STRATEGIES.get(self.strategy)
            with jobs.blame("strategy_params"):  # a gradient method's target without responses, too
                strategy = build_strategy(self.strategy, self.strategy_params)
                check_strategy_target(getattr(strategy, "target", ""), strategy.needs)
        for path in self.eval_paths:
            load_eval_set(Path(path))  # an IngestError names the file, line and field

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RunSpec:
        return cls(**params)


def launch_run(workspace: Path, spec: RunSpec) -> str:
    """Validate, then start the run in a worker process; returns its id."""
    return jobs.launch(workspace, spec)


def resume_run(workspace: Path, run_id: str) -> None:
    """Continue a cancelled or interrupted run from its last checkpoint."""
    jobs.relaunch(workspace, run_id)


def run_dir(workspace: Path, run_id: str) -> Path:
    return jobs.job_folder(workspace, run_id)


def list_runs(workspace: Path) -> list[jobs.JobStatus]:
    """Every run, newest first."""
    return jobs.list_jobs(workspace, RUN_KIND)


def run_rows(workspace: Path) -> list[dict[str, Any]]:
    """Every run as a row of a listing (the CLI's ``runs``, the Python API's ``Workspace.runs``), newest first."""
    return [
        {
            "run_id": s.job_id,
            "state": s.state,
            "stage": s.stage,
            "step": s.done,
            "steps": s.total,
            "loss": s.loss,
            "name": run_label(s.params),
            "selection": s.result.get("selection_id", s.params.get("selection_id")),
            "created_at": s.created_at,
            "error": s.error,
        }
        for s in list_runs(workspace)
    ]


# Measured on the 2-core CPU with SmolLM2-135M and LoRA (bench/train.py); refined by this workspace's last run.
DEFAULT_TOKENS_PER_SECOND = 120.0


def training_seconds(workspace: Path, examples: int, epochs: int, max_length: int) -> float:
    """Training time from the last finished run's speed (or the benchmark's), assuming ~60 % of max_length
    (the Runs page states it before Launch, the home page before the first run)."""
    rate = next((s.tokens_per_second for s in list_runs(workspace) if s.tokens_per_second), None)
    return examples * epochs * 0.6 * max_length / (rate or DEFAULT_TOKENS_PER_SECOND)


def losses(workspace: Path, run_id: str) -> pd.DataFrame:
    """The run's loss per optimizer step so far (columns step, loss, tokens_per_second)."""
    rows = _log_rows(run_dir(workspace, run_id) / "losses.jsonl")
    return pd.DataFrame(rows, columns=["step", "loss", "tokens_per_second"])


def evaluations(workspace: Path, run_id: str) -> dict[str, Any]:
    """``{set name: {"base": summary, "run": summary}}`` once the run has evaluated."""
    path = run_dir(workspace, run_id) / "evals.json"
    return json.loads(path.read_text()) if path.exists() else {}


def round_picks(workspace: Path, run_id: str) -> pd.DataFrame:
    """A loop run's picks per round (iterative kMQ) or epoch (IterIT), read from its round files, so they
    show while the run goes on: round, example_id, cluster, instruction; empty for a plain run."""
    from core.storage import curation
    from core.storage import datasets as ds
    from core.storage.database import Store

    status = jobs.read_status(workspace, run_id)
    loop = run_dir(workspace, run_id) / "loop"
    picks: list[tuple[int, int]] = []  # (round, position in the loop's pool: every example in row order)
    for done in sorted(loop.glob("round_*/done.json")):
        selection = json.loads((done.parent / "selection.json").read_text())
        picks += [(int(done.parent.name.split("_")[1]), p) for p in selection["positions"]]
    for done in sorted(loop.glob("epoch_*/done.json")):
        epoch = json.loads((done.parent / "epoch.json").read_text())
        picks += [(int(epoch["epoch"]), p) for p in epoch["picks"]]
    if not picks:
        return pd.DataFrame(columns=["round", "example_id", "cluster", "instruction"])
    store = Store(workspace)
    dataset = ds.get_dataset(store, status.params.get("dataset"))
    rows = curation.all_rows(store, dataset.dataset_id, int(dataset.active_k))
    texts = _pool_rows(store, dataset.dataset_id, rows.row_idx)
    frame = pd.DataFrame(picks, columns=["round", "position"])
    return pd.DataFrame(
        {
            "round": frame["round"],
            "example_id": rows.example_id.to_numpy()[frame.position],
            "cluster": rows.cluster_id.to_numpy()[frame.position],
            "instruction": texts.instruction.to_numpy()[frame.position],
        }
    ).sort_values("round", kind="stable", ignore_index=True)


# ---------------------------------------------------------------- the worker side


def execute_run(workspace: Path, spec: RunSpec, progress: Progress, folder: Path) -> dict[str, Any]:
    """Job kind ``train``: the whole run, resumable in its job folder. Returns the summary stored as its result."""
    from core.models.lm import load_causal_lm
    from core.score.scoring import checked_load
    from core.storage.database import Store

    config = spec.train_config()
    folder = Path(folder)
    store = Store(workspace)
    progress.start("load model", 1)
    lm = checked_load(load_causal_lm, config.model)
    evals = {name: {"base": summary} for name, summary in _evaluate_all(store, lm, lm.model, None, spec, progress)}
    log = _LossLog(folder / "losses.jsonl", functools.partial(_phase, folder, spec.loop))

    def on_step(status: TrainStatus) -> None:
        progress.done = log.append(status)
        progress.update()
        if (folder / "status.json").exists():  # a job folder: show the live figures beside the progress
            jobs.write_status(
                folder, loss=status.loss, tokens_per_second=status.tokens_per_second, eta_seconds=status.eta_seconds
            )

    if spec.loop == "none":
        selection_id = _selection_for(store, spec, folder)
        frame = _selected_rows(store, selection_id)
        progress.start("train", len(step_plan(len(frame), config)))
        result = train(
            lm.model, lm.tokenizer, frame, config, folder, on_step=on_step, should_stop=progress.stop_requested
        )
        model, steps, last_loss, resumed, extra = result.model, result.steps, result.losses[-1], result.resumed_from, {}
    else:
        model, selection_id, frame, extra = _run_loop(store, lm, spec, config, folder, progress, on_step)
        steps, last_loss, resumed = log.count, extra.get("last_loss"), 0
    adapter = _adapter_hash(folder / "final") if (folder / "final").exists() else None
    for name, summary in _evaluate_all(store, lm, model, adapter or folder.name, spec, progress):
        evals.setdefault(name, {})["run"] = summary
    (folder / "evals.json").write_text(json.dumps(evals, indent=2, default=str))
    return {
        "selection_id": selection_id,
        "examples": len(frame),
        "steps": steps,
        "final_loss": last_loss,
        "resumed_from": resumed,
        "adapter": str(folder / "final"),
        "evals": evals,
        **extra,
    }


def _run_loop(
    store: Any, lm: Any, spec: RunSpec, config: TrainConfig, folder: Path, progress: Progress, on_step: Any
) -> tuple[Any, int, pd.DataFrame, dict[str, Any]]:
    """Iterative kMQ or IterIT on the kept pool; the final selection is saved like any other."""
    from core.runs import iterative_kmq, iterit
    from core.runs.loops import LoopHooks, config_for_run
    from core.select.loading import current_decisions, load_pool
    from core.select.pool import resolve_budget
    from core.select.run import SelectionResult, save_selection
    from core.storage import datasets as ds
    from core.train.trainer import save_model

    dataset = ds.get_dataset(store, spec.dataset)
    params = dict(spec.loop_params)
    k = int(dataset.active_k)
    # every example, vetoed or not: each round reads the decisions in force when it starts, so a curator
    # may veto or reweight while the run is paused (or running) and the next round follows
    needs = frozenset({"scores"}) if params.get("quality") else frozenset()
    pool = load_pool(store, dataset, k, needs, kept_only=False)
    examples = _pool_rows(store, dataset.dataset_id, pool.row_idx)
    decisions = functools.partial(_answered_only, functools.partial(current_decisions, store, dataset, k, pool), pool)
    budget = resolve_budget(float(spec.budget or 0), dataset.n_rows, int(decisions().eligible.sum()))
    progress.start(f"{spec.loop}: {spec.rounds} rounds", 0)
    extra: dict[str, Any] = {}
    settings = config_for_run(spec.loop, budget=budget, rounds=spec.rounds, seed=spec.seed, params=params)
    hooks = LoopHooks(on_step=on_step, should_stop=progress.stop_requested, decisions=decisions)
    if spec.loop == "iterative_kmq":
        engine = engine_from_spec(spec.engine)
        outcome = iterative_kmq.run_iterative_kmq(
            lm.model, lm.tokenizer, pool, examples, settings, config, folder / "loop", hooks=hooks, engine=engine
        )
        positions, model = outcome.positions, outcome.model
        extra["rounds"] = [
            {
                "round": r.round,
                "clusters": outcome.clusters.tolist(),
                "weights_before": r.weights_before.tolist(),
                "weights_after": r.weights_after.tolist(),
                "quotas": r.quotas.tolist(),
                "new": len(r.new_positions),
                "dropped": [pool.example_ids[i] for i in r.dropped_positions],
                "decisions": r.decisions,
                "mean_loss": r.mean_loss,
            }
            for r in outcome.rounds
        ]
        extra["last_loss"] = outcome.rounds[-1].mean_loss if outcome.rounds else None
    else:
        iterit_hooks = dataclasses.replace(hooks, decisions=lambda: _without_zero_weights(decisions(), pool))
        outcome = iterit.run_iterit(
            lm.model,
            lm.tokenizer,
            examples,
            settings,
            config,
            folder / "loop",
            hooks=iterit_hooks,
            engine=engine_from_spec(spec.engine),
        )
        positions, model = outcome.epochs[-1].picks, outcome.model
        extra["epochs"] = [
            {"epoch": e.epoch, "picks": len(e.picks), "rescored": len(e.rescored), "decisions": e.decisions}
            for e in outcome.epochs
        ]
        extra["last_loss"] = outcome.epochs[-1].mean_loss if outcome.epochs else None
    save_model(model, folder / "final", config)
    result = SelectionResult(
        strategy={"name": spec.loop, "rounds": spec.rounds, **params},
        seed=spec.seed,
        budget=float(spec.budget or 0),
        k=int(dataset.active_k),
        pool_hash=pool.fingerprint(),
        pool_size=len(pool),
        decisions={"per_round": [r.get("decisions", {}) for r in extra.get("rounds", extra.get("epochs", []))]},
        score_keys={},
        row_idx=[int(pool.row_idx[i]) for i in positions],
        example_ids=[pool.example_ids[i] for i in positions],
        cluster_ids=[int(pool.cluster_ids[i]) for i in positions],
        seconds=0.0,
    )
    selection_id = save_selection(store, dataset, result, spec.name and f"{spec.name} (final selection)")
    return model, selection_id, examples.iloc[positions], extra


def _answered_only(decisions: Any, pool: Any) -> Any:
    """The decisions in force, with empty responses never eligible: a loop would train on them (teaching the
    model to stop at once) and a kMQ cluster of nothing else would get a quota. The summary counts them."""
    now = decisions()
    empty = pool.empty_responses()
    if not empty.any():
        return now
    summary = {**now.summary, "empty_responses_left_out": int((now.eligible & empty).sum())}
    return dataclasses.replace(now, eligible=now.eligible & ~empty, summary=summary)


def _without_zero_weights(decisions: Any, pool: Any) -> Any:
    """IterIT has no cluster allocation: a cluster weighted 0 is left out like a vetoed one."""
    zero = [c for c, w in decisions.weights.items() if w <= 0]
    eligible = decisions.eligible & ~np.isin(pool.cluster_ids, zero)
    return dataclasses.replace(decisions, eligible=eligible)


def _pool_rows(store: Any, dataset_id: int, row_idx: Any) -> pd.DataFrame:
    from core.storage import datasets as ds

    frame = ds.example_texts(store, dataset_id)[["row_idx", "instruction", "input", "output"]]
    return frame.set_index("row_idx").loc[list(row_idx)].reset_index(drop=True)


def _selection_for(store: Any, spec: RunSpec, folder: Path) -> int:
    """The run's selection: the saved one it names, or the one it drew at its first start (kept on resume)."""
    from core.select.run import build_strategy, run_selection, save_selection
    from core.storage import datasets as ds

    if spec.selection_id is not None:
        return spec.selection_id
    marker = folder / "selection.json"
    if marker.exists():
        return int(json.loads(marker.read_text())["selection_id"])
    dataset = ds.get_dataset(store, spec.dataset)
    strategy = build_strategy(str(spec.strategy), spec.strategy_params)
    result = run_selection(store, dataset, strategy, float(spec.budget or 0), seed=spec.seed)
    selection_id = save_selection(store, dataset, result, spec.name and f"{spec.name} (selection)")
    marker.write_text(json.dumps({"selection_id": selection_id}))
    return selection_id


def _selected_rows(store: Any, selection_id: int) -> pd.DataFrame:
    from core.storage import selections

    return selections.item_texts(store, selection_id)


def _evaluate_all(
    store: Store, lm: LoadedLM, model: CausalLM, adapter: str | None, spec: RunSpec, progress: Progress
) -> list[tuple[str, dict[str, Any]]]:
    """Evaluate ``model`` on every set, reusing a cached result for the same model, adapter, set and settings."""
    from core.storage import evals
    from core.train.evaluate import eval_key, evaluate, load_eval_set

    results = []
    settings = {"limit": spec.eval_limit, "generate": spec.generate, "max_new_tokens": spec.max_new_tokens}
    settings["max_length"] = spec.train_config().max_length
    for path in spec.eval_paths:
        eval_set = load_eval_set(Path(path))
        key = eval_key(lm.model_id, adapter, eval_set, settings)
        cached = evals.get(store, key)
        if cached is None:
            progress.start(f"evaluate {'base' if adapter is None else 'run'} on {eval_set.name}", 1)
            result = evaluate(
                model,
                lm.tokenizer,
                eval_set,
                max_length=settings["max_length"],
                max_new_tokens=spec.max_new_tokens,
                limit=spec.eval_limit,
                generate=spec.generate,
            )
            evals.put(store, key, lm.model_id, adapter, result.summary(), result.examples)
            cached = result.summary()
        results.append((eval_set.name, {k: v for k, v in cached.items() if k != "examples"}))
    return results


def _adapter_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class _LossLog:
    """The run's ``losses.jsonl`` (one line per optimizer step, numbered on across rounds) kept whole across resumes.

    Each line also names its phase (``train``, ``round_<t>``, ``epoch_<e>``: see :func:`_phase`) and the
    trainer's step in it. A resumed attempt re-trains from its checkpoint and reports those steps again, so
    the first step this process logs in a phase drops what an earlier attempt logged there from that step
    on; finished rounds keep their lines. The log then reads as an uninterrupted run's.
    """

    def __init__(self, path: Path, phase: Callable[[], str]):
        self.path, self.phase = path, phase
        self.count = 0  # lines in the log
        self._trimmed: set[str] = set()

    def append(self, status: TrainStatus) -> int:
        """Log one step; returns its number in the run."""
        phase = self.phase()
        if phase not in self._trimmed:
            self._trimmed.add(phase)
            self._trim(phase, status.step)
        self.count += 1
        row = {"step": self.count, "loss": status.loss, "tokens_per_second": status.tokens_per_second}
        with open(self.path, "a") as log:
            log.write(json.dumps({**row, "phase": phase, "phase_step": status.step}) + "\n")
        return self.count

    def _trim(self, phase: str, first_step: int) -> None:
        rows = _log_rows(self.path)
        # lines written before phases were logged come from a plain run, where the step is the trainer's
        kept = [r for r in rows if r.get("phase", phase) != phase or r.get("phase_step", r["step"]) < first_step]
        atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.count = len(kept)


def _log_rows(path: Path) -> list[dict[str, Any]]:
    """The lines of a loss log; a line cut short (the disk filled up mid-write) is skipped, not fatal."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _phase(folder: Path, loop: str) -> str:
    """What the trainer trains now: ``train`` in a plain run, else the loop's first round or epoch not done."""
    if loop == "none":
        return "train"
    prefix, index = ("round_", 1) if loop == "iterative_kmq" else ("epoch_", 0)
    while (folder / "loop" / f"{prefix}{index}" / "done.json").exists():
        index += 1
    return f"{prefix}{index}"


def compare_runs(workspace: Path, run_ids: list[str]) -> pd.DataFrame:
    """One row per (run, evaluation set): strategy, examples, base and run loss and accuracy, and the change."""
    rows = []
    for run_id in run_ids:
        status = jobs.read_status(workspace, run_id)
        params = status.params
        label = run_label(params)
        for name, pair in evaluations(workspace, run_id).items():
            base, run = pair.get("base", {}), pair.get("run", {})
            rows.append(
                {
                    "run": run_id,
                    "label": label,
                    "state": status.state,
                    "examples": status.result.get("examples"),
                    "eval_set": name,
                    "base_loss": base.get("loss"),
                    "run_loss": run.get("loss"),
                    "loss_change": _diff(run.get("loss"), base.get("loss")),
                    "base_accuracy": base.get("accuracy"),
                    "run_accuracy": run.get("accuracy"),
                    "accuracy_change": _diff(run.get("accuracy"), base.get("accuracy")),
                }
            )
    return pd.DataFrame(rows)


def run_label(params: dict[str, Any]) -> str:
    """How a run is named in lists: its name, else its loop or strategy, else its saved selection."""
    loop = params.get("loop", "none")
    return (
        params.get("name")
        or (loop if loop != "none" else None)
        or params.get("strategy")
        or (f"selection #{params.get('selection_id')}")
    )


def _diff(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before
