"""The two selection loops that need a model in the loop: iterative kMQ and IterIT (ALGORITHMS.md 2.6, 3.5).

The selection math lives in :mod:`core.training.loops` (arrays in, arrays out); this module owns the
model: it fine-tunes (:mod:`core.training.trainer`), generates greedily, scores with response NLLs
(:mod:`core.algorithms.lm_scores`) and writes every round or epoch to disk. No UI code.

Iterative kMQ, :func:`run_iterative_kmq`, round t of T:
quotas from learned weights x curator weights -> new picks -> fine-tune on everything selected so
far (from the base model; ``continue_training`` starts from the previous round's model instead) ->
greedy responses to the selected prompts -> per-example score "gold better than generation" -> per-
cluster mean -> weight update. The scorer is pluggable (:data:`KMQScorer`): the perplexity difference
(default), an embedding similarity, or a reward model named by path (none ships offline).

IterIT, :func:`run_iterit`: IFD of the whole pool with the base model, then every epoch the greedy
IFD x TF-IDF selection, one epoch of training on it, and a re-score of the top u x m window with the
model being trained, all under ONE learning-rate schedule (``static`` reuses the epoch-0 selection).

Resume: a round (epoch) is done when ``round_<t>/done.json`` (``epoch_<e>/done.json``) exists; a rerun
into the same ``out_dir`` reloads done rounds (weights, selection, scores) instead of recomputing them
and refuses an ``out_dir`` written with other parameters. Inside an unfinished kMQ round, training
resumes from the trainer's own checkpoint; IterIT resumes from the end of its last done epoch
(optimizer, schedule and RNG included). ``should_stop`` is checked between rounds / epochs and passed
to training; cancelling raises :class:`core.progress.Cancelled`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.progress import Cancelled
from core.selection.pool import Pool
from core.training import loops
from core.training.trainer import (
    TrainConfig,
    TrainingSession,
    TrainStatus,
    epoch_steps,
    restore_session,
    save_model,
    save_session,
    start_session,
    train,
    train_pass,
)

KMQScorer = Callable[[Any, Any, pd.DataFrame, list[str]], np.ndarray]
"""(model, tokenizer, examples, generations) -> S_i per row; S > 0: the gold response beats the generation."""
IFDFunction = Callable[[Any, Any, pd.DataFrame], np.ndarray]
"""(model, tokenizer, examples) -> IFD per row."""

# ---------------------------------------------------------------------------------------------------
# Model passes: generation, response NLLs, IFD
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Eval mode (no dropout) for scoring, restored per module afterwards, as evaluate.evaluate does."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def generate_responses(
    model: Any, tokenizer: Any, prompts: pd.DataFrame, max_new_tokens: int, batch_size: int = 8, max_length: int = 512
) -> list[str]:
    """Greedy responses to the (instruction, input) rows of ``prompts``, through evaluate.py's generation."""
    import torch

    from core.training.evaluate import _generate

    rows = list(prompts[["instruction", "input"]].itertuples(index=False))
    texts: list[str] = []
    with _eval_mode(model), torch.inference_mode():
        for begin in range(0, len(rows), batch_size):
            texts += _generate(model, tokenizer, rows[begin : begin + batch_size], max_length, max_new_tokens)
    return texts


def response_nlls(
    model: Any, tokenizer: Any, examples: pd.DataFrame, outputs: list[str], max_length: int
) -> np.ndarray:
    """Mean NLL (= log PPL) of each ``outputs[i]`` as the answer to row i's prompt, under ``model``."""
    from core.algorithms.lm_scores import render_pair, response_nll
    from core.training.evaluate import _pad_id

    prompts = zip(examples.instruction, examples.input, outputs, strict=True)
    pairs = [render_pair(tokenizer, i, x, o, max_length) for i, x, o in prompts]
    with _eval_mode(model):
        return response_nll(
            model, [(p.conditional, p.conditional_start, p.n_response) for p in pairs], pad_id=_pad_id(tokenizer)
        )


def ifd_scores(model: Any, tokenizer: Any, examples: pd.DataFrame, max_length: int = 512) -> np.ndarray:
    """IFD = exp(NLL(response | prompt) - NLL(response alone)), as :class:`IFDScorer` computes it, but with an
    in-memory model (the one being trained) rather than one loaded by name."""
    from core.algorithms.lm_scores import render_pair, response_nll
    from core.training.evaluate import _pad_id

    rows = zip(examples.instruction, examples.input, examples.output, strict=True)
    pairs = [render_pair(tokenizer, i, x, o, max_length) for i, x, o in rows]
    # both passes in one call: batches of similar length pack better and share one prefix cache
    sequences = [(p.conditional, p.conditional_start, p.n_response) for p in pairs]
    sequences += [(p.unconditional, p.unconditional_start, p.n_response) for p in pairs]
    with _eval_mode(model):
        nll = response_nll(model, sequences, pad_id=_pad_id(tokenizer))
    return np.exp(nll[: len(pairs)] - nll[len(pairs) :])


# ---------------------------------------------------------------------------------------------------
# kMQ round scorers (Eq. 4: S = score(x + y_gold) - score(x + y_gen))
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PerplexityDifferenceScorer:
    """S = log PPL(generation) - log PPL(gold) under the current model (``loops.ppl_difference_scores``;
    ``convention="eq7"`` flips the sign as Eq. 7 is printed)."""

    max_length: int = 512
    convention: Literal["gold_better", "eq7"] = "gold_better"

    def __call__(self, model: Any, tokenizer: Any, examples: pd.DataFrame, generations: list[str]) -> np.ndarray:
        gold = response_nlls(model, tokenizer, examples, list(examples.output), self.max_length)
        generated = response_nlls(model, tokenizer, examples, generations, self.max_length)
        return loops.ppl_difference_scores(gold, generated, convention=self.convention)


@dataclasses.dataclass(frozen=True)
class EmbeddingSimilarityScorer:
    """S = cos(prompt, gold) - cos(prompt, generation): Eq. 4 with "relevance to the prompt" as the score.

    ``embedder``: a spec for :func:`core.models.embedders.build_embedder` (None: the packaged default).
    Model-free with respect to the LM; a cheap check that is blind to fluency.
    """

    embedder: dict[str, Any] | None = None

    def __call__(self, model: Any, tokenizer: Any, examples: pd.DataFrame, generations: list[str]) -> np.ndarray:
        from core.algorithms.lm_scores import user_turn
        from core.models.embedders import build_embedder

        prompts = [user_turn(i, x) for i, x in zip(examples.instruction, examples.input, strict=True)]
        n = len(prompts)
        vectors = build_embedder(self.embedder).embed(prompts + list(examples.output) + list(generations))
        prompt, gold, generated = vectors[:n], vectors[n : 2 * n], vectors[2 * n :]
        return (prompt * gold).sum(axis=1) - (prompt * generated).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class RewardDifferenceScorer:
    """S = r(gold) - r(generation) with a sequence-classification reward model (the paper's best scorer).

    None ships offline, so ``model`` (a path or hub id) is required; it is not tested here.
    """

    model: str
    max_length: int = 512

    def __call__(self, model: Any, tokenizer: Any, examples: pd.DataFrame, generations: list[str]) -> np.ndarray:
        from core.algorithms.scorers import RewardScorer

        reward = RewardScorer(model=self.model, max_length=self.max_length)
        gold = reward.score(examples.reset_index(drop=True))["reward"]
        generated = reward.score(examples.reset_index(drop=True).assign(output=list(generations)))["reward"]
        return np.asarray(gold, dtype=float) - np.asarray(generated, dtype=float)


# ---------------------------------------------------------------------------------------------------
# Iterative kMQ
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RoundRecord:
    """One round. Positions index the pool; per-cluster arrays are aligned with ``IterativeResult.clusters``.

    ``scored_positions`` are the examples generated for and scored this round, ``example_scores`` their S_i.
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
    resumed: bool = False


@dataclasses.dataclass
class IterativeResult:
    """Every round's record, the whole selection (pool positions, pick order), the final weights and model."""

    rounds: list[RoundRecord]
    clusters: np.ndarray
    positions: np.ndarray
    example_ids: list[str]
    weights: np.ndarray
    model: Any


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
    within: str
    allocation: str
    rule: str
    temperature: float
    generate_for: str
    scorer: KMQScorer
    max_new_tokens: int
    generation_batch_size: int
    rng_seed: int


def run_iterative_kmq(
    base_model: Any,
    tokenizer: Any,
    pool: Pool,
    examples: pd.DataFrame,
    budget: int,
    rounds: int,
    config: TrainConfig,
    out_dir: Path,
    *,
    quality: str | np.ndarray | None = None,
    within: Literal["weighted", "softmax", "uniform"] = "weighted",
    allocation: Literal["proportional", "equal"] = "proportional",
    rule: Literal["paper", "code"] = "paper",
    temperature: float = 1.0,
    continue_training: bool = False,
    generate_for: Literal["all", "new"] = "all",
    scorer: KMQScorer | None = None,
    max_new_tokens: int = 64,
    generation_batch_size: int = 8,
    on_round: Callable[[RoundRecord], None] | None = None,
    on_step: Callable[[TrainStatus], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    rng_seed: int = 0,
) -> IterativeResult:
    """Iterative kMQ (ALGORITHMS.md 2.6): ``budget`` examples of ``pool`` over ``rounds`` rounds of b/T.

    Parameters
    ----------
    pool : the kept examples (vetoes already applied); ``pool.cluster_weights`` are the curator's weights
        (missing: 1; weight 0 gives a cluster nothing).
    examples : instruction, input, output of the pool's examples, row i = pool position i.
    budget : a count, at least ``rounds``, at most what the clusters with a positive weight hold.
    quality : within-cluster sampling weights: None (uniform: the code's rule), a score name of the pool
        (e.g. ``combined``: kMQ's rule) or an array aligned with the pool. ``within``: how they are used.
    allocation, rule, temperature : :func:`loops.next_round_quotas` and :func:`loops.update_weights`.
    continue_training : round t fine-tunes round t-1's model (merged) instead of the base model; its
        adapter then applies on top of the previous rounds' merged adapters.
    generate_for : ``all`` scores everything selected so far (ALGORITHMS.md default), ``new`` only the
        round's picks. ``scorer`` defaults to :class:`PerplexityDifferenceScorer` at ``config.max_length``.
    out_dir : per round ``round_<t>/`` with selection.json, weights.json, scores.json, the trainer's
        folder ``train/`` (adapter in ``train/final``) and done.json.
    """
    out_dir = Path(out_dir)
    options = {
        "within": within,
        "allocation": allocation,
        "rule": rule,
        "temperature": temperature,
        "generate_for": generate_for,
        "scorer": scorer or PerplexityDifferenceScorer(max_length=config.max_length),
        "max_new_tokens": max_new_tokens,
        "generation_batch_size": generation_batch_size,
        "rng_seed": rng_seed,
    }
    plan = _kmq_plan(pool, examples, budget, rounds, quality, options)
    described = {key: _describe(value) for key, value in options.items() if key != "generation_batch_size"}
    _check_params(
        out_dir,
        {
            **described,
            "pool": pool.fingerprint(),
            "budget": int(budget),
            "rounds": rounds,
            "quality": _describe(quality),
            "continue_training": continue_training,
            "config": dataclasses.asdict(config),
        },
    )
    weights = loops.initial_weights(plan.curator)
    records: list[RoundRecord] = []
    model = None  # the last trained model, while it is in memory
    for t in range(1, rounds + 1):
        round_dir = out_dir / f"round_{t}"
        if (round_dir / "done.json").exists():
            records.append(_load_round(round_dir))
            weights, model = records[-1].weights_after, None
            continue
        if should_stop and should_stop():
            raise Cancelled(f"cancelled before round {t} of {rounds}; a rerun resumes from here")
        start = _round_start(base_model, model, records, config) if continue_training else base_model
        selected = _selected(records)
        callbacks = {"on_step": on_step, "should_stop": should_stop}
        record, model = _run_round(t, plan, weights, selected, start, tokenizer, config, round_dir, **callbacks)
        records.append(record)
        weights = record.weights_after
        if on_round:
            on_round(record)
    if model is None:  # every round was loaded from disk
        model = _trained_model(base_model, records, config, continue_training)
    selected = _selected(records)
    return IterativeResult(records, plan.clusters, selected, [pool.example_ids[i] for i in selected], weights, model)


def _run_round(
    t: int,
    plan: _KMQPlan,
    weights: np.ndarray,
    selected: np.ndarray,
    start: Any,
    tokenizer: Any,
    config: TrainConfig,
    round_dir: Path,
    **train_callbacks: Any,
) -> tuple[RoundRecord, Any]:
    """Pick, fine-tune on the cumulative selection, generate, score, update; write the round's files."""
    import torch

    pool = plan.pool
    available = np.ones(len(pool), dtype=bool)
    available[selected] = False
    remaining = loops.cluster_counts(pool.cluster_ids, plan.clusters, available)
    quotas = loops.next_round_quotas(
        plan.sizes, remaining, weights, plan.budgets[t - 1], plan.curator, allocation=plan.allocation
    )
    rng = np.random.default_rng([plan.rng_seed, t])  # one stream per round: a resumed run draws what a whole run draws
    new = loops.sample_round(
        rng, pool.cluster_ids, available, quotas, plan.quality, plan.within, clusters=plan.clusters
    )
    cumulative = np.concatenate([selected, new])
    # train() draws the new adapter's initial weights from the global torch RNG before seeding it, so seed
    # here: otherwise round t's adapter would depend on what ran before it, and a resumed run would differ
    torch.manual_seed(config.seed + t)
    trained = train(start, tokenizer, plan.examples.iloc[cumulative], config, round_dir / "train", **train_callbacks)
    scored = cumulative if plan.generate_for == "all" else new
    frame = plan.examples.iloc[scored].reset_index(drop=True)
    generations = generate_responses(
        trained.model, tokenizer, frame, plan.max_new_tokens, plan.generation_batch_size, config.max_length
    )
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
    )
    _save_round(round_dir, record, pool, plan.clusters, generations)
    return record, trained.model


def _kmq_plan(
    pool: Pool,
    examples: pd.DataFrame,
    budget: int,
    rounds: int,
    quality: str | np.ndarray | None,
    options: dict[str, Any],
) -> _KMQPlan:
    """Validate the inputs once, at the boundary, and derive what every round needs."""
    if len(examples) != len(pool):
        raise ValueError(f"{len(examples)} example rows for a pool of {len(pool)}: they must be aligned")
    missing = {"instruction", "input", "output"} - set(examples.columns)
    if missing:
        raise ValueError(f"examples lack the column(s) {sorted(missing)}")
    if options["generate_for"] not in ("all", "new"):
        raise ValueError(f"generate_for must be all or new, not {options['generate_for']!r}")
    clusters, sizes = np.unique(pool.cluster_ids, return_counts=True)
    curator = np.array([pool.cluster_weights.get(int(c), 1.0) for c in clusters], dtype=float)
    capacity = int(sizes[curator > 0].sum())
    if not rounds <= budget <= capacity:
        raise ValueError(f"budget must be between rounds ({rounds}) and the selectable examples ({capacity})")
    values = pool.quality(quality) if isinstance(quality, str) else quality
    if values is not None and len(values) != len(pool):
        raise ValueError(f"{len(values)} quality values for a pool of {len(pool)}")
    budgets = loops.round_budgets(int(budget), rounds)
    frame = examples.reset_index(drop=True)
    return _KMQPlan(pool, frame, clusters, sizes, curator, values, budgets, **options)


def _selected(records: list[RoundRecord]) -> np.ndarray:
    return np.concatenate([np.array([], dtype=int)] + [r.new_positions for r in records]).astype(int)


def _load_trained(start: Any, folder: Path, config: TrainConfig) -> Any:
    """The model a round saved: its LoRA adapter on ``start``, or its full weights."""
    if config.method == "lora":
        from peft import PeftModel

        return PeftModel.from_pretrained(copy.deepcopy(start), str(folder)).eval()
    from safetensors.torch import load_file

    model = copy.deepcopy(start)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval()


def _merged(model: Any) -> Any:
    """A plain model with the adapter folded in, so the next round's adapter trains on top of it."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _trained_model(base: Any, records: list[RoundRecord], config: TrainConfig, continue_training: bool) -> Any:
    """The last round's model from disk: its adapter applies to the base, or (continued) to the merged chain."""
    start = base
    if continue_training:
        for record in records[:-1]:
            start = _merged(_load_trained(start, record.adapter_dir, config))
    return _load_trained(start, records[-1].adapter_dir, config)


def _round_start(base: Any, previous: Any, records: list[RoundRecord], config: TrainConfig) -> Any:
    """continue_training: where the next round starts (the previous model, merged; rebuilt from disk after a resume)."""
    if not records:
        return base
    return _merged(previous if previous is not None else _trained_model(base, records, config, True))


# --- round files --------------------------------------------------------------------------------


def _nullable(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def _floats(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _write_json(path: Path, payload: Any) -> None:
    """Write through a temporary file, so a crash never leaves half a file that looks done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def _save_round(round_dir: Path, record: RoundRecord, pool: Pool, clusters: np.ndarray, generations: list[str]) -> None:
    new = record.new_positions
    _write_json(
        round_dir / "selection.json",
        {
            "positions": new.tolist(),
            "example_ids": record.new_example_ids,
            "row_idx": pool.row_idx[new].tolist(),
            "cluster_ids": pool.cluster_ids[new].tolist(),
        },
    )
    _write_json(
        round_dir / "weights.json",
        {
            "clusters": clusters.tolist(),
            "quotas": record.quotas.tolist(),
            "before": record.weights_before.tolist(),
            "after": record.weights_after.tolist(),
            "cluster_scores": _nullable(record.cluster_scores),
        },
    )
    scored = record.scored_positions
    rows = zip(scored.tolist(), _nullable(record.example_scores), generations, strict=True)
    _write_json(
        round_dir / "scores.json",
        [
            {
                "position": p,
                "example_id": pool.example_ids[p],
                "cluster": int(pool.cluster_ids[p]),
                "score": s,
                "generation": g,
            }
            for p, s, g in rows
        ],
    )
    done = {"round": record.round, "mean_loss": record.mean_loss, "adapter": str(record.adapter_dir)}
    _write_json(round_dir / "done.json", done)  # last: its presence means every file above is complete


def _load_round(round_dir: Path) -> RoundRecord:
    selection = json.loads((round_dir / "selection.json").read_text())
    weights = json.loads((round_dir / "weights.json").read_text())
    scores = json.loads((round_dir / "scores.json").read_text())
    done = json.loads((round_dir / "done.json").read_text())
    return RoundRecord(
        round=int(done["round"]),
        new_positions=np.array(selection["positions"], dtype=int),
        new_example_ids=list(selection["example_ids"]),
        quotas=np.array(weights["quotas"], dtype=int),
        weights_before=np.array(weights["before"], dtype=float),
        weights_after=np.array(weights["after"], dtype=float),
        cluster_scores=_floats(weights["cluster_scores"]),
        scored_positions=np.array([row["position"] for row in scores], dtype=int),
        example_scores=_floats([row["score"] for row in scores]),
        mean_loss=float(done["mean_loss"]),
        adapter_dir=round_dir / "train" / "final",
        resumed=True,
    )


def _describe(value: Any) -> Any:
    """A stable description of a parameter for the resume check (a function by name, an array by hash)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, np.ndarray):
        return "sha256:" + hashlib.sha256(np.ascontiguousarray(value, dtype=float).tobytes()).hexdigest()[:16]
    if dataclasses.is_dataclass(value):
        return repr(value)
    if isinstance(value, functools.partial):
        return f"partial({_describe(value.func)}, {sorted(value.keywords.items())})"
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__qualname__)}"


def _check_params(out_dir: Path, params: dict[str, Any]) -> None:
    """Record the run's parameters; refuse to resume a folder that holds a run with other ones."""
    path = out_dir / "run.json"
    params = json.loads(json.dumps(params))  # tuples become lists, as they come back from the file
    if path.exists():
        stored = json.loads(path.read_text())
        changed = sorted(key for key in params.keys() | stored.keys() if params.get(key) != stored.get(key))
        if changed:
            raise ValueError(f"{out_dir} holds a run with other parameters ({', '.join(changed)}); use another folder")
        return
    _write_json(path, params)


# ---------------------------------------------------------------------------------------------------
# IterIT
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class EpochRecord:
    """One epoch: its ``picks`` (positions of ``examples``, pick order), the ranking ``order`` the next window
    is cut from, the ``rescored`` positions with their
    IFD before (stale; NaN if never scored) and after re-scoring, and the mean loss of its ``steps``."""

    epoch: int
    picks: np.ndarray
    order: np.ndarray
    rescored: np.ndarray
    ifd_before: np.ndarray
    ifd_after: np.ndarray
    mean_loss: float
    steps: int
    resumed: bool = False


@dataclasses.dataclass
class IterITResult:
    """Every epoch's record, the training session (model, optimizer, schedule), the last ordering and IFDs."""

    epochs: list[EpochRecord]
    session: TrainingSession
    order: np.ndarray
    ifd: np.ndarray

    @property
    def model(self) -> Any:
        return self.session.model


def run_iterit(
    base_model: Any,
    tokenizer: Any,
    examples: pd.DataFrame,
    epochs: int,
    per_epoch: int,
    config: TrainConfig,
    out_dir: Path,
    *,
    update_ratio: float = 3,
    decay: float = 0.1,
    static: bool = False,
    score: Literal["both", "ifd", "diversity"] = "both",
    ngram_max: int = 3,
    exclude_rejects: bool = False,
    ifd: IFDFunction | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_step: Callable[[TrainStatus], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IterITResult:
    """IterIT (ALGORITHMS.md 3.5): ``epochs`` epochs, each on its own greedy selection of ``per_epoch`` examples.

    Parameters
    ----------
    examples : the kept examples (instruction, input, output); positions in the records index its rows.
    per_epoch : m, a count. An epoch trains on fewer when fewer than m candidates have IFD < 1, and on
        the previous epoch's picks when none has; the schedule is planned for ``epochs`` full epochs of
        m (``config.epochs`` is not used), so a short epoch makes it end before its last step.
    update_ratio, decay, score, ngram_max : the window multiplier u and the greedy's parameters.
    static : score once and train every epoch on the epoch-0 selection (the code's ``baseline``).
    exclude_rejects : skip known IFD >= 1 examples when cutting the window (ALGORITHMS.md 3.5 flag).
    ifd : the IFD function (default :func:`ifd_scores` at ``config.max_length``). Epoch 0 scores every
        example with ``base_model``; later epochs score the window with the model being trained.
    out_dir : ``epoch_<e>/`` with epoch.json, state.npz and the session checkpoint of the last done
        epoch; the final adapter in ``final/``.
    """
    out_dir = Path(out_dir)
    if epochs < 1 or not 1 <= per_epoch <= len(examples):
        raise ValueError(f"need epochs >= 1 and 1 <= per_epoch <= {len(examples)}, not {epochs} and {per_epoch}")
    plan = _IterITPlan(per_epoch, update_ratio, decay, static, score, ngram_max, exclude_rejects)
    ifd = ifd or functools.partial(ifd_scores, max_length=config.max_length)
    params = {"n": len(examples), "epochs": epochs, **dataclasses.asdict(plan), "ifd": _describe(ifd)}
    _check_params(out_dir, {**params, "config": dataclasses.asdict(config)})
    session = start_session(base_model, tokenizer, config, epochs * epoch_steps(per_epoch, config))
    records, state = _resume_iterit(out_dir, session)
    examples = examples.reset_index(drop=True)
    for epoch in range(len(records), epochs):
        if should_stop and should_stop():
            raise Cancelled(f"cancelled before epoch {epoch} of {epochs}; a rerun resumes from here")
        # epoch 0 scores with the base model, before any training; later epochs with the model being trained
        scorer_model = base_model if state is None else session.model
        positions, before, fresh, state = _select_epoch(plan, state, examples, ifd, scorer_model, tokenizer)
        if len(state.picks) == 0 and not records:
            raise ValueError("no example has IFD < 1 under the base model, so there is nothing to select")
        if len(state.picks) == 0:  # nothing in the window qualifies any more: train on the last selection again
            state = dataclasses.replace(state, picks=records[-1].picks)
        losses = train_pass(session, examples.iloc[state.picks], epoch, on_step=on_step, should_stop=should_stop)
        record = EpochRecord(
            epoch=epoch,
            picks=state.picks,
            order=state.order,
            rescored=positions,
            ifd_before=before,
            ifd_after=fresh,
            mean_loss=float(np.mean(losses)),
            steps=len(losses),
        )
        _save_epoch(out_dir, record, state, session)
        records.append(record)
        if on_epoch:
            on_epoch(record)
    save_model(session.model, out_dir / "final", config)
    return IterITResult(records, session, state.order, state.ifd)


@dataclasses.dataclass(frozen=True)
class _IterITPlan:
    """IterIT's selection settings (recorded in run.json)."""

    per_epoch: int
    update_ratio: float
    decay: float
    static: bool
    score: str
    ngram_max: int
    exclude_rejects: bool


def _select_epoch(
    plan: _IterITPlan,
    state: loops.IterITEpoch | None,
    examples: pd.DataFrame,
    ifd: IFDFunction,
    model: Any,
    tokenizer: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, loops.IterITEpoch]:
    """Score what this epoch re-scores with ``model``, then select: (positions, IFD before, IFD after, state)."""
    exclude = None if state is None or not plan.exclude_rejects else np.nan_to_num(state.ifd, nan=0.0) >= 1
    positions = loops.positions_to_score(
        state, len(examples), plan.per_epoch, plan.update_ratio, static=plan.static, exclude=exclude
    )
    before = np.full(len(positions), np.nan) if state is None else state.ifd[positions]
    fresh = _rescore(ifd, model, tokenizer, examples, positions)
    state = loops.next_epoch(
        state,
        positions,
        fresh,
        list(examples.output),
        plan.per_epoch,
        decay=plan.decay,
        ngram_max=plan.ngram_max,
        score=plan.score,
        static=plan.static,
    )
    return positions, before, fresh, state


def _rescore(ifd: IFDFunction, model: Any, tokenizer: Any, examples: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """Fresh IFD of ``positions``; no model pass when there is nothing to score (a static epoch)."""
    if len(positions) == 0:
        return np.array([], dtype=float)
    return np.asarray(ifd(model, tokenizer, examples.iloc[positions].reset_index(drop=True)), dtype=float)


def _save_epoch(out_dir: Path, record: EpochRecord, state: loops.IterITEpoch, session: TrainingSession) -> None:
    """The epoch's record, the selection state and a session checkpoint; then drop the previous checkpoint."""
    folder = out_dir / f"epoch_{record.epoch}"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "state.npz", picks=state.picks, order=state.order, ifd=state.ifd)
    save_session(session, folder)
    _write_json(
        folder / "epoch.json",
        {
            "epoch": record.epoch,
            "picks": record.picks.tolist(),
            "order": record.order.tolist(),
            "rescored": record.rescored.tolist(),
            "ifd_before": _nullable(record.ifd_before),
            "ifd_after": _nullable(record.ifd_after),
            "mean_loss": record.mean_loss,
            "steps": record.steps,
        },
    )
    _write_json(folder / "done.json", {"epoch": record.epoch, "step": session.step})
    if record.epoch > 0:  # only the newest checkpoint is needed to resume; a full model's is large
        shutil.rmtree(out_dir / f"epoch_{record.epoch - 1}" / "checkpoint", ignore_errors=True)


def _resume_iterit(out_dir: Path, session: TrainingSession) -> tuple[list[EpochRecord], loops.IterITEpoch | None]:
    """The done epochs' records and the selection state after the last one, with the session restored."""
    records: list[EpochRecord] = []
    while (out_dir / f"epoch_{len(records)}" / "done.json").exists():
        raw = json.loads((out_dir / f"epoch_{len(records)}" / "epoch.json").read_text())
        arrays = {key: np.array(raw[key], dtype=int) for key in ("picks", "order", "rescored")}
        ifds = {key: _floats(raw[key]) for key in ("ifd_before", "ifd_after")}
        records.append(
            EpochRecord(
                epoch=raw["epoch"], mean_loss=raw["mean_loss"], steps=raw["steps"], resumed=True, **arrays, **ifds
            )
        )
    if not records:
        return records, None
    last = out_dir / f"epoch_{len(records) - 1}"
    if not restore_session(session, last):
        raise ValueError(f"{last} is done but has no checkpoint to resume from; use another folder")
    with np.load(last / "state.npz") as saved:
        state = loops.IterITEpoch(picks=saved["picks"], order=saved["order"], ifd=saved["ifd"])
    return records, state
