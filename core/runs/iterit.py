"""IterIT (docs/algorithms.md 3.5) with the model in the loop; the selection math is in :mod:`core.select.loops`.

IFD of the whole pool with the base model, then every epoch the greedy IFD x TF-IDF selection, one epoch
of training on it, and a re-score of the top u x m window with the model being trained, all under ONE
learning-rate schedule (``static`` reuses the epoch-0 selection); the settings are one frozen
:class:`IterITConfig` (registered in :data:`core.runs.loops.LOOPS`). Resume: from the end of the last done
epoch (``epoch_<e>/done.json``; optimizer, schedule and RNG included). ``hooks.should_stop`` is checked between
epochs and passed to training; cancelling raises :class:`core.progress.Cancelled`.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from core.models.passes import ifd_scores
from core.progress import Cancelled
from core.registry import param
from core.runs import round_files
from core.runs.loops import LOOPS, LoopHooks
from core.runs.round_files import check_params, describe, floats, nullable
from core.runs.round_scorers import IFDFunction
from core.select import loops
from core.select.pool import Decisions
from core.train.trainer import (
    TrainConfig,
    TrainingSession,
    epoch_steps,
    restore_session,
    save_model,
    save_session,
    start_session,
    train_pass,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from core.engines import Engine
    from core.models.lm import CausalLM


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
    decisions: dict[str, Any] = dataclasses.field(default_factory=dict)
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


@LOOPS.register
@dataclasses.dataclass(frozen=True)
class IterITConfig:
    """IterIT: every epoch trains on its own greedy IFD x TF-IDF selection, re-scoring the top of the ranking
    with the model being trained, under one learning-rate schedule (docs/algorithms.md 3.5).

    Parameters
    ----------
    epochs : epochs, each trained on its own greedy selection.
    per_epoch : m, examples per epoch, a count.
    update_ratio : u, the window of u x m top-ranked examples re-scored each epoch.
    decay : the greedy's n-gram decay (lambda): 0.1 for general data, 0 for domain data.
    static : score once and train every epoch on the epoch-0 selection (the code's baseline).
    score : greedy score: both (IFD x TF-IDF), ifd only, or diversity only.
    ngram_max : longest n-gram of the response TF-IDF.
    exclude_rejects : skip known IFD >= 1 examples when cutting the window.
    """

    name: ClassVar[str] = "iterit"
    title: ClassVar[str] = "IterIT (a fresh selection every epoch)"
    rounds_label: ClassVar[str] = "Epochs, each on its own selection (IterIT)"
    run_fields: ClassVar[tuple[str, ...]] = ("epochs", "per_epoch")

    epochs: int
    per_epoch: int
    update_ratio: float = 3
    decay: float = 0.1
    static: bool = False
    score: Literal["both", "ifd", "diversity"] = "both"
    ngram_max: int = param(3, low=1)
    exclude_rejects: bool = False

    @classmethod
    def for_run(cls, budget: int, rounds: int, seed: int, **params: Any) -> IterITConfig:
        """A run's loop: ``rounds`` epochs of budget / rounds examples (at least one); IterIT draws nothing
        at random, so the seed only seeds training."""
        return cls(epochs=rounds, per_epoch=max(1, budget // rounds), **params)


def run_iterit(
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: pd.DataFrame,
    settings: IterITConfig,
    config: TrainConfig,
    out_dir: Path,
    *,
    ifd: IFDFunction | None = None,
    hooks: LoopHooks | None = None,
    engine: Engine | None = None,
) -> IterITResult:
    """IterIT (docs/algorithms.md 3.5): ``settings.epochs`` epochs, each on its own greedy selection of ``per_epoch``.

    Parameters
    ----------
    examples : the kept examples (instruction, input, output); positions in the records index its rows.
    settings : the loop's parameters (:class:`IterITConfig`); ``config`` the fine-tuning's. An epoch
        trains on fewer than ``per_epoch`` when fewer candidates have IFD < 1, and on the previous epoch's
        picks when none has; the schedule is planned for ``epochs`` full epochs of m (``config.epochs``
        is not used), so a short epoch makes it end before its last step.
    ifd : the IFD function (default :func:`ifd_scores` at ``config.max_length``). Epoch 0 scores every
        example with ``base_model``; later epochs score the window with the model being trained.
    engine : where the default IFD function's re-scoring runs (:mod:`core.engines`; LoRA runs only): each
        epoch's adapter goes to the workers. None or local: in this process.
    hooks : ``on_round`` is called with each epoch's record. ``decisions`` is called before every epoch
        for the curator's decisions in force (only ``eligible``, over the rows of ``examples``, and
        ``summary`` are used): an ineligible example is neither scored nor picked, and the window takes
        the next eligible ones instead. IterIT has no cluster allocation, so a cluster weight other than 0
        does not change it (the caller makes weight-0 clusters ineligible). None: every example is eligible.
    out_dir : ``epoch_<e>/`` with epoch.json, state.npz and the session checkpoint of the last done
        epoch; the final adapter in ``final/``.
    """
    out_dir = Path(out_dir)
    hooks = hooks or LoopHooks()
    epochs, per_epoch = settings.epochs, settings.per_epoch
    on_epoch, on_step, should_stop, decisions = hooks.on_round, hooks.on_step, hooks.should_stop, hooks.decisions
    if epochs < 1 or not 1 <= per_epoch <= len(examples):
        raise ValueError(f"need epochs >= 1 and 1 <= per_epoch <= {len(examples)}, not {epochs} and {per_epoch}")
    on_engine = ifd is None and engine is not None and engine.name != "local"
    ifd = ifd or functools.partial(ifd_scores, max_length=config.max_length)
    params = {"n": len(examples), **dataclasses.asdict(settings), "ifd": describe(ifd)}  # the same on any engine
    if on_engine:
        from core.runs.round_stage import EngineIFD

        ifd = EngineIFD(engine, config, out_dir)
    check_params(out_dir, {**params, "config": dataclasses.asdict(config)})
    session = start_session(base_model, tokenizer, config, epochs * epoch_steps(per_epoch, config))
    records, state = _resume_iterit(out_dir, session)
    examples = examples.reset_index(drop=True)
    for epoch in range(len(records), epochs):
        if should_stop and should_stop():
            raise Cancelled(f"cancelled before epoch {epoch} of {epochs}; a rerun resumes from here")
        # epoch 0 scores with the base model, before any training; later epochs with the model being trained
        scorer_model = base_model if state is None else session.model
        now = decisions() if decisions else Decisions(np.ones(len(examples), dtype=bool), {}, {})
        positions, before, fresh, state = _select_epoch(
            settings, state, examples, ifd, scorer_model, tokenizer, now.eligible
        )
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
            decisions=now.summary,
        )
        _save_epoch(out_dir, record, state, session)
        records.append(record)
        if on_epoch:
            on_epoch(record)
    save_model(session.model, out_dir / "final", config)
    return IterITResult(records, session, state.order, state.ifd)


def _select_epoch(
    plan: IterITConfig,
    state: loops.IterITEpoch | None,
    examples: pd.DataFrame,
    ifd: IFDFunction,
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    eligible: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, loops.IterITEpoch]:
    """Score what this epoch re-scores with ``model``, then select: (positions, IFD before, IFD after, state)."""
    exclude = ~eligible
    if state is not None and plan.exclude_rejects:
        exclude = exclude | (np.nan_to_num(state.ifd, nan=0.0) >= 1)
    positions = loops.positions_to_score(
        state, len(examples), plan.per_epoch, plan.update_ratio, static=plan.static, exclude=exclude
    )
    positions = positions[eligible[positions]]  # epoch 0 scores everything: everything eligible
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
    if plan.static:  # the reused epoch-0 picks: without what the curator has vetoed since
        state = dataclasses.replace(state, picks=state.picks[eligible[state.picks]])
    return positions, before, fresh, state


def _rescore(
    ifd: IFDFunction, model: CausalLM, tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, positions: np.ndarray
) -> np.ndarray:
    """Fresh IFD of ``positions``; no model pass when there is nothing to score (a static epoch)."""
    if len(positions) == 0:
        return np.array([], dtype=float)
    return np.asarray(ifd(model, tokenizer, examples.iloc[positions].reset_index(drop=True)), dtype=float)


def _save_epoch(out_dir: Path, record: EpochRecord, state: loops.IterITEpoch, session: TrainingSession) -> None:
    """A session checkpoint, then the epoch's record and selection state; then drop the previous checkpoint."""
    folder = out_dir / f"epoch_{record.epoch}"
    save_session(session, folder)  # before done.json: a done epoch always has its checkpoint
    epoch = {
        "epoch": record.epoch,
        "picks": record.picks.tolist(),
        "order": record.order.tolist(),
        "rescored": record.rescored.tolist(),
        "ifd_before": nullable(record.ifd_before),
        "ifd_after": nullable(record.ifd_after),
        "mean_loss": record.mean_loss,
        "steps": record.steps,
        "decisions": record.decisions,
    }
    arrays = {"picks": state.picks, "order": state.order, "ifd": state.ifd}
    round_files.save_round(folder, {"epoch.json": epoch}, {"epoch": record.epoch, "step": session.step}, arrays)
    if record.epoch > 0:  # only the newest checkpoint is needed to resume; a full model's is large
        shutil.rmtree(out_dir / f"epoch_{record.epoch - 1}" / "checkpoint", ignore_errors=True)


def _resume_iterit(out_dir: Path, session: TrainingSession) -> tuple[list[EpochRecord], loops.IterITEpoch | None]:
    """The done epochs' records and the selection state after the last one, with the session restored."""
    folders = round_files.done_folders(out_dir, "epoch", 0)
    records = [_load_epoch(folder) for folder in folders]
    if not records:
        return records, None
    last = folders[-1]
    if not restore_session(session, last):
        raise ValueError(f"{last} is done but has no checkpoint to resume from; use another folder")
    saved = round_files.load_arrays(last)
    return records, loops.IterITEpoch(picks=saved["picks"], order=saved["order"], ifd=saved["ifd"])


def _load_epoch(folder: Path) -> EpochRecord:
    raw = round_files.load_round(folder, ["epoch.json"])["epoch.json"]
    arrays = {key: np.array(raw[key], dtype=int) for key in ("picks", "order", "rescored")}
    ifds = {key: floats(raw[key]) for key in ("ifd_before", "ifd_after")}
    return EpochRecord(
        epoch=raw["epoch"],
        mean_loss=raw["mean_loss"],
        steps=raw["steps"],
        decisions=raw.get("decisions", {}),
        resumed=True,
        **arrays,
        **ifds,
    )
