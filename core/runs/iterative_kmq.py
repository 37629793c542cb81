"""Iterative kMQ (docs/algorithms.md 2.6) with the model in the loop; the selection math is in :mod:`core.select.loops`.

The loop's settings are one frozen :class:`IterativeKMQConfig` (registered in :data:`core.runs.loops.LOOPS`).
Round t of T: quotas from learned weights x curator weights -> new picks -> fine-tune on everything
selected so far (from the base model; ``continue_training`` starts from the previous round's model
instead) -> greedy responses to the selected prompts -> per-example score "gold better than generation"
-> per-cluster mean -> weight update. The scorer is pluggable (:data:`core.runs.round_scorers.KMQScorer`).

Resume: a round is done when ``round_<t>/done.json`` exists; a rerun into the same ``out_dir`` reloads done
rounds (weights, selection, scores) instead of recomputing them and refuses an ``out_dir`` written with
other parameters. Inside an unfinished round, training resumes from the trainer's own checkpoint.
``hooks.should_stop`` is checked between rounds and passed to training; cancelling raises
:class:`core.progress.Cancelled`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from core.models.device import resolved_precision
from core.models.generation import generate_responses
from core.progress import Cancelled
from core.registry import param
from core.runs import round_files
from core.runs.loops import LOOPS, LoopHooks
from core.runs.round_files import check_params, describe, floats, nullable
from core.runs.round_scorers import KMQScorer, PerplexityDifferenceScorer
from core.select import loops
from core.select.pool import Decisions, Pool
from core.train.trainer import TrainConfig, train

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from core.engines import Engine
    from core.models.lm import CausalLM

ROUND_SHARD = 16  # prompts per shard when a round's generation runs on an engine: one actor's batch or two


@dataclasses.dataclass
class RoundRecord:
    """One round. Positions index the pool; per-cluster arrays are aligned with ``IterativeResult.clusters``.

    ``scored_positions`` are the examples generated for and scored this round, ``example_scores`` their S_i.
    ``dropped_positions``: earlier picks the curator vetoed before this round, left out of its training set
    and replaced by as many new picks. ``decisions``: the summary of the curator's decisions it used.
    """

    round: int
    new_positions: np.ndarray
    new_example_ids: list[str]
    quotas: np.ndarray
    weights_before: np.ndarray
    weights_after: np.ndarray
    cluster_scores: np.ndarray
    scored_positions: np.ndarray
    example_scores: np.ndarray
    mean_loss: float
    adapter_dir: Path
    dropped_positions: np.ndarray = dataclasses.field(default_factory=lambda: np.array([], dtype=int))
    decisions: dict[str, Any] = dataclasses.field(default_factory=dict)
    resumed: bool = False


@dataclasses.dataclass
class IterativeResult:
    """Every round's record, the whole selection (pool positions, pick order), the final weights and model."""

    rounds: list[RoundRecord]
    clusters: np.ndarray
    positions: np.ndarray
    example_ids: list[str]
    weights: np.ndarray
    model: CausalLM


@dataclasses.dataclass(frozen=True)
class _KMQPlan:
    """What stays fixed over the rounds: the data, its clusters, the per-round budgets and the options."""

    pool: Pool
    examples: pd.DataFrame
    clusters: np.ndarray
    sizes: np.ndarray
    curator: np.ndarray
    quality: np.ndarray | None
    budgets: list[int]
    decisions: Callable[[], Decisions]
    within: str
    allocation: str
    rule: str
    temperature: float
    generate_for: str
    scorer: KMQScorer
    max_new_tokens: int
    generation_batch_size: int
    generation_precision: str  # resolved: fp32 or bf16
    rng_seed: int


@LOOPS.register
@dataclasses.dataclass(frozen=True)
class IterativeKMQConfig:
    """Iterative kMQ: b/T new examples per round, each round fine-tuned on all picks so far, the clusters
    whose gold answers beat the model's own reweighted up for the next round (docs/algorithms.md 2.6).

    Parameters
    ----------
    budget : examples in all, a count; at least ``rounds``, at most what the clusters with a positive weight hold.
    rounds : rounds of selection and fine-tuning.
    quality : within-cluster sampling weights: none (uniform, the code's rule), a score name of the pool
        (e.g. ``combined``, kMQ's rule) or an array aligned with the pool; ``within`` says how they are used.
    within : how quality turns into sampling weights inside a cluster (weighted, softmax or uniform).
    allocation : quotas proportional to cluster size, or equal shares with redistribution.
    rule : the weight update of the paper (w * exp(s)) or of its code.
    temperature : of the weight update.
    continue_training : round t fine-tunes round t-1's model (merged) instead of the base model.
    generate_for : all scores everything selected so far (the default), new only the round's picks.
    max_new_tokens : greedy generation length per selected prompt.
    generation_batch_size : prompts per generation batch (speed only: not recorded for resume).
    generation_precision : the weights greedy generation runs on: auto (bf16 where the hardware multiplies
        bf16 natively), bf16 or fp32 (docs/algorithms.md 1.13); recorded for resume as what auto resolved to.
    rng_seed : seeds each round's draw (one stream per round).
    """

    name: ClassVar[str] = "iterative_kmq"
    title: ClassVar[str] = "Iterative kMQ (select and fine-tune in rounds)"
    rounds_label: ClassVar[str] = "Rounds (iterative kMQ)"
    run_fields: ClassVar[tuple[str, ...]] = ("budget", "rounds", "rng_seed")

    budget: int
    rounds: int
    quality: str | np.ndarray | None = None
    within: Literal["weighted", "softmax", "uniform"] = "weighted"
    allocation: Literal["proportional", "equal"] = "proportional"
    rule: Literal["paper", "code"] = "paper"
    temperature: float = 1.0
    continue_training: bool = False
    generate_for: Literal["all", "new"] = "all"
    max_new_tokens: int = param(64, low=1)
    generation_batch_size: int = param(8, low=1)
    generation_precision: Literal["auto", "fp32", "bf16"] = "auto"
    rng_seed: int = 0

    @classmethod
    def for_run(cls, budget: int, rounds: int, seed: int, **params: Any) -> IterativeKMQConfig:
        """A run's loop: its budget over its rounds, its seed for the draws."""
        return cls(budget=budget, rounds=rounds, rng_seed=seed, **params)


def run_iterative_kmq(
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pool: Pool,
    examples: pd.DataFrame,
    settings: IterativeKMQConfig,
    config: TrainConfig,
    out_dir: Path,
    *,
    scorer: KMQScorer | None = None,
    hooks: LoopHooks | None = None,
    engine: Engine | None = None,
) -> IterativeResult:
    """Iterative kMQ (docs/algorithms.md 2.6): ``settings.budget`` examples of ``pool`` over ``settings.rounds`` rounds.

    Parameters
    ----------
    pool : the examples; ``pool.cluster_weights`` are the curator's weights (missing: 1; weight 0 gives a
        cluster nothing) unless ``hooks.decisions`` is given.
    examples : instruction, input, output of the pool's examples, row i = pool position i.
    settings : the loop's parameters (:class:`IterativeKMQConfig`); ``config`` the fine-tuning's.
    scorer : S_i per example; defaults to :class:`PerplexityDifferenceScorer` at ``config.max_length``.
    hooks : ``decisions`` is called at the start of every round for the curator's decisions in force then
        (eligible positions, cluster weights), so they may change between rounds. None: every pool
        position is eligible, with the pool's weights. A vetoed example is never picked again, and one
        picked earlier leaves the training set of later rounds and is replaced, so every round still
        trains on the cumulative budget. A cluster kept again after a veto rejoins with the mean learned
        weight. With ``continue_training`` the earlier rounds' training on a since-vetoed example stays in
        the model (its adapter applies on top of the previous rounds' merged adapters).
    out_dir : per round ``round_<t>/`` with selection.json, weights.json, scores.json, the trainer's
        folder ``train/`` (adapter in ``train/final``) and done.json.
    engine : where each round's generation and re-scoring run (:mod:`core.engines`; LoRA runs only); None
        or local: in this process. Training always runs here.
    """
    out_dir = Path(out_dir)
    hooks = hooks or LoopHooks()
    scorer = scorer or PerplexityDifferenceScorer(max_length=config.max_length)
    precision = resolved_precision(settings.generation_precision, str(next(base_model.parameters()).device))
    decisions = hooks.decisions or (lambda: Decisions.fixed(pool))
    plan = _kmq_plan(pool, examples, settings, scorer, decisions, precision)
    check_params(out_dir, _recorded(settings, scorer, pool, config, precision))
    rounds, continue_training = settings.rounds, settings.continue_training
    on_round, on_step, should_stop = hooks.on_round, hooks.on_step, hooks.should_stop
    weights = loops.initial_weights(plan.curator)
    records: list[RoundRecord] = []
    model = None  # the last trained model, while it is in memory
    for t in range(1, rounds + 1):
        round_dir = out_dir / f"round_{t}"
        if round_files.is_done(round_dir):
            records.append(_load_round(round_dir))
            weights, model = records[-1].weights_after, None
            continue
        if should_stop and should_stop():
            raise Cancelled(f"cancelled before round {t} of {rounds}; a rerun resumes from here")
        start = _round_start(base_model, model, records, config) if continue_training else base_model
        selected = _selected(records)
        callbacks = {"on_step": on_step, "should_stop": should_stop}
        earlier = [r.adapter_dir for r in records] if continue_training else []
        work = _RoundWork(engine, earlier, out_dir) if engine is not None and engine.name != "local" else None
        record, model = _run_round(
            t, plan, weights, selected, start, tokenizer, config, round_dir, work=work, **callbacks
        )
        records.append(record)
        weights = record.weights_after
        if on_round:
            on_round(record)
    if model is None:  # every round was loaded from disk
        model = _trained_model(base_model, records, config, continue_training)
    selected = _selected(records)
    return IterativeResult(records, plan.clusters, selected, [pool.example_ids[i] for i in selected], weights, model)


def _recorded(
    settings: IterativeKMQConfig, scorer: KMQScorer, pool: Pool, config: TrainConfig, precision: str
) -> dict[str, Any]:
    """What a resume must find unchanged in ``run.json`` (the generation batch size only changes speed).

    The generation precision is recorded only when it is bf16: every run written before the option existed
    generated in float32, and recording fp32 as absent lets them resume."""
    options = {
        "within": settings.within,
        "allocation": settings.allocation,
        "rule": settings.rule,
        "temperature": settings.temperature,
        "generate_for": settings.generate_for,
        "scorer": scorer,
        "max_new_tokens": settings.max_new_tokens,
        "rng_seed": settings.rng_seed,
    }
    return {
        **{key: describe(value) for key, value in options.items()},
        "pool": pool.fingerprint(),
        "budget": int(settings.budget),
        "rounds": settings.rounds,
        "quality": describe(settings.quality),
        "continue_training": settings.continue_training,
        "config": dataclasses.asdict(config),
    } | ({"generation_precision": precision} if precision != "fp32" else {})


def _run_round(
    t: int,
    plan: _KMQPlan,
    weights: np.ndarray,
    selected: np.ndarray,
    start: Any,
    tokenizer: PreTrainedTokenizerBase,
    config: TrainConfig,
    round_dir: Path,
    work: _RoundWork | None = None,
    **train_callbacks: Any,
) -> tuple[RoundRecord, Any]:
    """Pick, fine-tune on the cumulative selection, generate, score (here, or on ``work``'s engine),
    update; write the round's files."""
    pool = plan.pool
    now = plan.decisions()  # the curator's decisions in force at the start of this round
    curator = _curator_weights(plan.clusters, now.weights)
    weights = _revive(weights, curator)
    dropped = selected[~now.eligible[selected]]
    selected = selected[now.eligible[selected]]
    available = now.eligible.copy()
    available[selected] = False
    available[dropped] = False  # a dropped example is vetoed, hence not available anyway
    remaining = loops.cluster_counts(pool.cluster_ids, plan.clusters, available)
    quotas = loops.next_round_quotas(
        plan.sizes, remaining, weights, plan.budgets[t - 1] + len(dropped), curator, allocation=plan.allocation
    )
    rng = np.random.default_rng([plan.rng_seed, t])  # one stream per round: a resumed run draws what a whole run draws
    new = loops.sample_round(
        rng, pool.cluster_ids, available, quotas, plan.quality, plan.within, clusters=plan.clusters
    )
    cumulative = np.concatenate([selected, new])
    round_files.keep_training_set(round_dir, [pool.example_ids[i] for i in cumulative], round_dir / "train")
    # each round draws its own adapter (seed + t), the same one in a whole run and in a resumed one
    trained = train(
        start,
        tokenizer,
        plan.examples.iloc[cumulative],
        config,
        round_dir / "train",
        adapter_seed=config.seed + t,
        **train_callbacks,
    )
    scored = cumulative if plan.generate_for == "all" else new
    frame = plan.examples.iloc[scored].reset_index(drop=True)
    if work is not None:
        generations, scores = work.run(t, plan, config, frame, round_dir / "train" / "final")
    else:
        generations = generate_responses(
            trained.model, tokenizer, frame, plan.max_new_tokens, plan.generation_batch_size, config.max_length,
            precision=plan.generation_precision, should_stop=train_callbacks.get("should_stop"),
        )  # fmt: skip
        scores = np.asarray(plan.scorer(trained.model, tokenizer, frame, generations), dtype=float)
    per_cluster = loops.cluster_scores(scores, pool.cluster_ids[scored], plan.clusters)
    after = loops.update_weights(weights, per_cluster, rule=plan.rule, temperature=plan.temperature)
    record = RoundRecord(
        round=t,
        new_positions=new,
        new_example_ids=[pool.example_ids[i] for i in new],
        quotas=quotas,
        weights_before=weights,
        weights_after=after,
        cluster_scores=per_cluster,
        scored_positions=scored,
        example_scores=scores,
        mean_loss=float(np.mean(trained.losses)),
        adapter_dir=round_dir / "train" / "final",
        dropped_positions=dropped,
        decisions=now.summary,
    )
    _save_round(round_dir, record, pool, plan.clusters, generations)
    return record, trained.model


def _kmq_plan(
    pool: Pool,
    examples: pd.DataFrame,
    settings: IterativeKMQConfig,
    scorer: KMQScorer,
    decisions: Callable[[], Decisions],
    precision: str,
) -> _KMQPlan:
    """Validate the inputs once, at the boundary, and derive what every round needs."""
    budget, rounds, quality = settings.budget, settings.rounds, settings.quality
    if len(examples) != len(pool):
        raise ValueError(f"{len(examples)} example rows for a pool of {len(pool)}: they must be aligned")
    missing = {"instruction", "input", "output"} - set(examples.columns)
    if missing:
        raise ValueError(f"examples lack the column(s) {sorted(missing)}")
    if settings.generate_for not in ("all", "new"):
        raise ValueError(f"generate_for must be all or new, not {settings.generate_for!r}")
    clusters, sizes = np.unique(pool.cluster_ids, return_counts=True)
    at_launch = decisions()
    curator = _curator_weights(clusters, at_launch.weights)
    positive = np.isin(pool.cluster_ids, clusters[curator > 0])
    capacity = int((at_launch.eligible & positive).sum())
    if not rounds <= budget <= capacity:
        raise ValueError(f"budget must be between rounds ({rounds}) and the selectable examples ({capacity})")
    values = pool.quality(quality) if isinstance(quality, str) else quality
    if values is not None and len(values) != len(pool):
        raise ValueError(f"{len(values)} quality values for a pool of {len(pool)}")
    budgets = loops.round_budgets(int(budget), rounds)
    frame = examples.reset_index(drop=True)
    return _KMQPlan(
        pool, frame, clusters, sizes, curator, values, budgets, decisions,
        within=settings.within, allocation=settings.allocation, rule=settings.rule,
        temperature=settings.temperature, generate_for=settings.generate_for, scorer=scorer,
        max_new_tokens=settings.max_new_tokens, generation_batch_size=settings.generation_batch_size,
        generation_precision=precision, rng_seed=settings.rng_seed,
    )  # fmt: skip


def _curator_weights(clusters: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    """The curator's weight per cluster (aligned with ``clusters``; missing: 1, vetoed: 0)."""
    return np.array([weights.get(int(c), 1.0) for c in clusters], dtype=float)


def _revive(weights: np.ndarray, curator: np.ndarray) -> np.ndarray:
    """Learned weights where a cluster the curator kept again (learned weight 0: it was vetoed at launch)
    rejoins with the mean learned weight of the others; unchanged when no cluster came back."""
    back = (weights <= 0) & (curator > 0)
    if not back.any():
        return weights
    alive = weights > 0
    revived = weights.copy()
    revived[back] = weights[alive].mean() if alive.any() else 1.0
    return revived / revived.sum()


def _selected(records: list[RoundRecord]) -> np.ndarray:
    """The training set after the last record: every round's picks, minus what later rounds dropped."""
    selected = np.array([], dtype=int)
    for record in records:
        selected = np.concatenate([selected[~np.isin(selected, record.dropped_positions)], record.new_positions])
    return selected.astype(int)


@dataclasses.dataclass(frozen=True)
class _RoundWork:
    """A round's generation and re-scoring on an engine: the round's adapters (``earlier`` ones first, with
    ``continue_training``) go to the workers inside the stage; results come back in the frame's order."""

    engine: Engine
    earlier: list[Path]
    out_dir: Path

    def run(
        self, t: int, plan: _KMQPlan, config: TrainConfig, frame: pd.DataFrame, adapter: Path
    ) -> tuple[list[str], np.ndarray]:
        import hashlib

        from core.engines import SHARD_FOLDER, run_in_order
        from core.gradients.stage import adapter_files
        from core.runs.round_stage import KMQRoundStage

        if config.method != "lora":
            raise ValueError("a round's generation runs on the ray engine for LoRA runs only: use the local engine")
        if frame.empty:  # nothing new this round: no model to ship
            return [], np.zeros(0)
        chain = tuple(adapter_files(folder) for folder in [*self.earlier, adapter])
        digest = hashlib.sha256(b"".join(c for files in chain for c in files.values())).hexdigest()[:16]
        stage = KMQRoundStage(
            round_key=f"{self.out_dir.resolve()}:round {t}:{digest}:{plan.generation_precision}",
            config=config,
            adapters=chain,
            scorer=plan.scorer,
            max_new_tokens=plan.max_new_tokens,
            batch_size=plan.generation_batch_size,
            precision=plan.generation_precision,
        )
        done = run_in_order(self.engine, stage, frame, folder=self.out_dir / SHARD_FOLDER, shard_rows=ROUND_SHARD)
        scores = np.asarray(done.column("score").to_numpy(zero_copy_only=False), dtype=float)
        return done.column("generation").to_pylist(), scores


def load_trained(start: Any, folder: Path, config: TrainConfig) -> Any:
    """The model a round saved: its LoRA adapter on ``start``, or its full weights."""
    if config.method == "lora":
        from peft import PeftModel

        return PeftModel.from_pretrained(copy.deepcopy(start), str(folder)).eval()
    from safetensors.torch import load_file

    model = copy.deepcopy(start)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval()


def merged(model: CausalLM) -> Any:
    """A plain model with the adapter folded in, so the next round's adapter trains on top of it."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _trained_model(base: Any, records: list[RoundRecord], config: TrainConfig, continue_training: bool) -> Any:
    """The last round's model from disk: its adapter applies to the base, or (continued) to the merged chain."""
    start = base
    if continue_training:
        for record in records[:-1]:
            start = merged(load_trained(start, record.adapter_dir, config))
    return load_trained(start, records[-1].adapter_dir, config)


def _round_start(base: Any, previous: Any, records: list[RoundRecord], config: TrainConfig) -> Any:
    """continue_training: where the next round starts (the previous model, merged; rebuilt from disk after a resume)."""
    if not records:
        return base
    return merged(previous if previous is not None else _trained_model(base, records, config, True))


def _save_round(round_dir: Path, record: RoundRecord, pool: Pool, clusters: np.ndarray, generations: list[str]) -> None:
    """The round's files: its selection, the weights and quotas, every scored example with its generation."""
    new = record.new_positions
    selection = {
        "positions": new.tolist(),
        "example_ids": record.new_example_ids,
        "row_idx": pool.row_idx[new].tolist(),
        "cluster_ids": pool.cluster_ids[new].tolist(),
        "dropped_positions": record.dropped_positions.tolist(),
        "dropped_example_ids": [pool.example_ids[i] for i in record.dropped_positions],
        "decisions": record.decisions,
    }
    weights = {
        "clusters": clusters.tolist(),
        "quotas": record.quotas.tolist(),
        "before": record.weights_before.tolist(),
        "after": record.weights_after.tolist(),
        "cluster_scores": nullable(record.cluster_scores),
    }
    scored = record.scored_positions
    rows = zip(scored.tolist(), nullable(record.example_scores), generations, strict=True)
    scores = [
        {
            "position": p,
            "example_id": pool.example_ids[p],
            "cluster": int(pool.cluster_ids[p]),
            "score": s,
            "generation": g,
        }
        for p, s, g in rows
    ]
    files = {"selection.json": selection, "weights.json": weights, "scores.json": scores}
    done = {"round": record.round, "mean_loss": record.mean_loss, "adapter": str(record.adapter_dir)}
    round_files.save_round(round_dir, files, done)


def _load_round(round_dir: Path) -> RoundRecord:
    files = round_files.load_round(round_dir, ["selection.json", "weights.json", "scores.json"])
    selection, weights, scores, done = files.values()
    return RoundRecord(
        round=int(done["round"]),
        new_positions=np.array(selection["positions"], dtype=int),
        new_example_ids=list(selection["example_ids"]),
        quotas=np.array(weights["quotas"], dtype=int),
        weights_before=np.array(weights["before"], dtype=float),
        weights_after=np.array(weights["after"], dtype=float),
        cluster_scores=floats(weights["cluster_scores"]),
        scored_positions=np.array([row["position"] for row in scores], dtype=int),
        example_scores=floats([row["score"] for row in scores]),
        mean_loss=float(done["mean_loss"]),
        adapter_dir=round_dir / "train" / "final",
        dropped_positions=np.array(selection.get("dropped_positions", []), dtype=int),
        decisions=selection.get("decisions", {}),
        resumed=True,
    )
