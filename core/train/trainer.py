"""Supervised fine-tuning of a causal LM on selected examples: LoRA (peft) or full, resumable.

The loss is the response-only NLL of the chat-template rendering (the same rendering as the scorers,
:func:`core.models.passes.render_pair`), averaged over every response token of an optimizer
step, so gradient accumulation gives the same update as one big batch. The schedule is linear warmup
then cosine decay. The data order of epoch e is a permutation seeded by ``seed + e``.

There is one training loop, :func:`run_steps`, over a :class:`TrainingSession` (model, optimizer,
schedule, step). :func:`train` runs a whole fine-tune through it; :func:`train_pass` runs one epoch of a
session that IterIT keeps across epochs.

A checkpoint (adapter or weights, optimizer, scheduler, step, torch RNG state) is written atomically
every ``checkpoint_every`` optimizer steps and when the run is cancelled. Training again into the same
folder resumes from it and reaches the result an uninterrupted run reaches: the data order is a pure
function of the seed and the step, and dropout draws from the restored RNG.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from core.atomic import replacing
from core.models.fast import fused_head_allowed, weighted_head_nll
from core.models.lm import DEFAULT_LM
from core.models.passes import IGNORE, TrainExample, collate, pad_token_id, render_examples, unwrapped
from core.progress import Cancelled
from core.train.mixed import check_precision, require_native_bf16, training_passes

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from core.models.lm import CausalLM


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one fine-tune (recorded with the run).

    target_modules: the linear layers LoRA adapts; ``all-linear`` lets peft pick every linear layer.
    precision: ``fp32``, or ``bf16`` for LoRA on hardware with native bf16: bf16 passes over the frozen base,
    float32 adapter, optimizer and checkpoints (:mod:`core.train.mixed`).
    """

    model: str = DEFAULT_LM
    method: Literal["lora", "full"] = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: str = "q_proj,k_proj,v_proj,o_proj"
    learning_rate: float = 2e-4
    epochs: int = 1
    batch_size: int = 4
    grad_accum: int = 4
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_length: int = 512
    seed: int = 0
    checkpoint_every: int = 20
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        check_precision(self.precision, self.method)


@dataclasses.dataclass(frozen=True)
class TrainStatus:
    """Reported after every optimizer step."""

    step: int
    total_steps: int
    loss: float
    tokens_per_second: float
    eta_seconds: float


@dataclasses.dataclass
class TrainResult:
    """What a finished fine-tune leaves: the model (with adapter), its losses per step, where it is saved."""

    model: CausalLM
    losses: list[float]
    steps: int
    tokens: int
    seconds: float
    out_dir: Path
    resumed_from: int = 0


def step_plan(n_examples: int, config: TrainConfig) -> list[list[np.ndarray]]:
    """For every optimizer step, its micro-batches of example indices (a pure function of n and the seed)."""
    plan: list[list[np.ndarray]] = []
    for epoch in range(config.epochs):
        order = np.random.default_rng(config.seed + epoch).permutation(n_examples)
        micro = [order[i : i + config.batch_size] for i in range(0, n_examples, config.batch_size)]
        plan += [micro[i : i + config.grad_accum] for i in range(0, len(micro), config.grad_accum)]
    return plan


def prepare_model(base: Any, config: TrainConfig) -> Any:
    """A trainable copy of ``base``: with a LoRA adapter, or all weights for ``method="full"``."""
    model = copy.deepcopy(base)
    if config.method == "full":
        model.requires_grad_(True)
        return model
    if config.method != "lora":
        raise ValueError(f"method must be lora or full, not {config.method!r}")
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = config.target_modules
    if targets != "all-linear":
        targets = [name.strip() for name in config.target_modules.split(",") if name.strip()]
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _summed_loss(model: CausalLM, batch: dict[str, Any], *, bf16: bool = False) -> Any:
    """Sum of the response-token NLLs of a micro-batch (labels shifted as the model does).

    Only the hidden states of positions that predict a response token go through the LM head: the
    full (batch x length x 49k vocabulary) logits would cost a fifth of the step's FLOPs and most of its
    memory for prompt positions whose loss is masked anyway. On CUDA a float32 model's forward pass
    autocasts to bf16 (the issue's GPU precision); the CPU stays float32. ``bf16``: the passes run on bf16
    weights already (:func:`core.train.mixed.training_passes`), so nothing autocasts (the LoRA products stay
    float32), and a frozen head goes with the loss in one chunked step (:func:`weighted_head_nll`).
    """
    import torch

    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    causal = unwrapped(model)  # peft: the model underneath holds the LoRA layers
    body, head = causal.base_model, causal.get_output_embeddings()
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and not bf16):
        if body is causal or head is None:  # no separate head to apply by hand: full logits
            logits = causal(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            logits = logits[scored]
        else:
            hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            hidden = hidden[:, :-1][scored]
            if bf16 and fused_head_allowed(head):
                ones = torch.ones(len(hidden), dtype=torch.float32, device=device)
                return weighted_head_nll(hidden, head.weight, targets[scored], ones)
            logits = head(hidden)
    return torch.nn.functional.cross_entropy(logits.float(), targets[scored], reduction="sum")


def _optimizer(model: CausalLM, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    import torch
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = math.ceil(config.warmup_ratio * total_steps)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


@dataclasses.dataclass
class TrainingSession:
    """A trainable model with its optimizer and a schedule planned for ``total_steps`` optimizer steps.

    ``step`` counts the steps taken so far; ``losses`` holds one loss per step. :func:`train` runs one
    session over its whole plan; IterIT keeps one across calls of :func:`train_pass`, training each epoch
    on a different selection under one schedule (docs/algorithms.md 3.5).
    """

    model: CausalLM
    tokenizer: PreTrainedTokenizerBase
    config: TrainConfig
    optimizer: Any
    scheduler: Any
    total_steps: int
    step: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)


def epoch_steps(n_examples: int, config: TrainConfig) -> int:
    """Optimizer steps of one pass over ``n_examples`` (micro-batches of batch_size, grad_accum per step)."""
    micro_batches = math.ceil(n_examples / config.batch_size)
    return math.ceil(micro_batches / config.grad_accum)


def start_session(
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: TrainConfig,
    total_steps: int,
    adapter_seed: int | None = None,
) -> TrainingSession:
    """A trainable copy of ``base_model`` with a schedule over ``total_steps``, its adapter drawn from
    ``adapter_seed`` (``config.seed`` when None), whatever the process drew before."""
    import torch

    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, not {total_steps}")
    # before prepare_model: LoRA's A matrices are drawn from the torch RNG
    torch.manual_seed(config.seed if adapter_seed is None else adapter_seed)
    if config.precision == "bf16":  # before the copy: refused on hardware that would emulate bf16
        require_native_bf16(next(base_model.parameters()).device.type)
    model = prepare_model(base_model, config)
    optimizer, scheduler = _optimizer(model, config, total_steps)
    return TrainingSession(model, tokenizer, config, optimizer, scheduler, total_steps)


def train(
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: pd.DataFrame,
    config: TrainConfig,
    out_dir: Path,
    *,
    on_step: Callable[[TrainStatus], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    adapter_seed: int | None = None,
) -> TrainResult:
    """Fine-tune a copy of ``base_model`` on ``examples`` (instruction, input, output) into ``out_dir``.

    Resumes from ``out_dir/checkpoint`` when one exists. Raises :class:`Cancelled` after saving a
    checkpoint when ``should_stop`` returns true between steps. The new adapter is drawn from
    ``adapter_seed`` (``config.seed`` when None) and training itself is seeded by ``config.seed``, so the
    same call gives the same weights whatever the process ran before it.
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if examples.empty:
        raise ValueError("nothing to train on: the selection is empty")
    data = render_examples(tokenizer, examples, config.max_length)
    plan = step_plan(len(data), config)
    session = start_session(base_model, tokenizer, config, len(plan), adapter_seed)
    restore_session(session, out_dir)
    start = session.step
    if start == 0:  # a resumed run restores the RNG state of its checkpoint instead
        torch.manual_seed(config.seed)
    started = time.perf_counter()
    tokens = run_steps(session, data, plan[start:], on_step=on_step, should_stop=should_stop, checkpoint_dir=out_dir)
    save_model(session.model, out_dir / "final", config)
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    return TrainResult(session.model, session.losses, len(plan), tokens, time.perf_counter() - started, out_dir, start)


def train_pass(
    session: TrainingSession,
    examples: pd.DataFrame,
    epoch: int,
    *,
    on_step: Callable[[TrainStatus], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[float]:
    """One pass over ``examples`` in the order :func:`train` uses for epoch ``epoch``; returns its step losses.

    The session's schedule goes on where the previous pass left it. Raises :class:`Cancelled` between
    steps when ``should_stop`` returns true (nothing is saved: see :func:`save_session`). The model is
    left in eval mode, ready to score.
    """
    if examples.empty:
        raise ValueError("nothing to train on: the selection is empty")
    data = render_examples(session.tokenizer, examples, session.config.max_length)
    plan = step_plan(len(data), dataclasses.replace(session.config, epochs=1, seed=session.config.seed + epoch))
    if session.step + len(plan) > session.total_steps:
        raise ValueError(f"{len(plan)} more steps would pass the {session.total_steps} the schedule was planned for")
    first = session.step
    run_steps(session, data, plan, on_step=on_step, should_stop=should_stop)
    return session.losses[first:]


def run_steps(
    session: TrainingSession,
    data: list[TrainExample],
    steps: list[list[np.ndarray]],
    *,
    on_step: Callable[[TrainStatus], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_dir: Path | None = None,
) -> int:
    """The training loop: take ``steps`` (each a list of micro-batches of indices into ``data``); returns the
    tokens they saw.

    ``should_stop`` is asked before every step; a true answer raises :class:`Cancelled`. With
    ``checkpoint_dir`` the session is checkpointed there then, and every ``config.checkpoint_every`` steps.
    The model trains in train mode (dropout) at ``config.precision`` and is left in eval mode with its float32
    weights, however the loop ends (a bf16 run's checkpoints hold only the float32 trainable weights).
    """
    pad_id = pad_token_id(session.tokenizer)
    session.model.train()
    try:
        with training_passes(session.model, session.config.precision):
            tokens = _steps(session, data, steps, pad_id, on_step, should_stop, checkpoint_dir)
    finally:
        session.model.eval()
    return tokens


def _steps(
    session: TrainingSession,
    data: list[TrainExample],
    steps: list[list[np.ndarray]],
    pad_id: int,
    on_step: Callable[[TrainStatus], None] | None,
    should_stop: Callable[[], bool] | None,
    checkpoint_dir: Path | None,
) -> int:
    """The body of :func:`run_steps`, inside its precision."""
    every = session.config.checkpoint_every
    started, tokens = time.perf_counter(), 0
    for taken, step in enumerate(steps, start=1):
        if should_stop and should_stop():
            _cancel(session, checkpoint_dir)
        batches = [[data[i] for i in micro_batch] for micro_batch in step]
        loss = _take_step(session, batches, pad_id)
        tokens += sum(len(example.ids) for batch in batches for example in batch)
        if on_step:
            elapsed = max(time.perf_counter() - started, 1e-9)
            remaining = (session.total_steps - session.step) * elapsed / taken
            on_step(TrainStatus(session.step, session.total_steps, loss, tokens / elapsed, remaining))
        # after reporting the step: a crash in between leaves the caller's log ahead of the checkpoint (a
        # resume reports those steps again), never behind it (a step the resume skips would be missing)
        if checkpoint_dir and session.step % every == 0 and session.step < session.total_steps:
            save_session(session, checkpoint_dir)
    return tokens


def _cancel(session: TrainingSession, checkpoint_dir: Path | None) -> None:
    """Raise :class:`Cancelled`, after checkpointing into ``checkpoint_dir`` when there is one."""
    where = f"cancelled at step {session.step} of {session.total_steps}"
    if checkpoint_dir is None:
        raise Cancelled(where)
    save_session(session, checkpoint_dir)
    raise Cancelled(f"{where}; a rerun resumes from here")


def _take_step(session: TrainingSession, batches: list[list[TrainExample]], pad_id: int) -> float:
    """One optimizer step over ``batches`` (its micro-batches); returns its loss.

    Each micro-batch's summed NLL is divided by the response tokens of the whole step, so accumulating
    the gradients of the micro-batches gives the update of one big batch.
    """
    import torch

    model, bf16 = session.model, session.config.precision == "bf16"
    step_tokens = sum(sum(label != IGNORE for label in example.labels[1:]) for batch in batches for example in batch)
    total = 0.0
    for batch in batches:
        loss = _summed_loss(model, collate(batch, pad_id), bf16=bf16) / max(step_tokens, 1)
        loss.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    session.optimizer.step()
    session.scheduler.step()
    session.optimizer.zero_grad(set_to_none=True)
    session.step += 1
    session.losses.append(total)
    return total


def save_model(model: CausalLM, folder: Path, config: TrainConfig) -> Path:
    """The adapter (peft, safetensors) or the full weights, plus the training config."""
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(folder), safe_serialization=True)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return folder


def save_session(session: TrainingSession, folder: Path) -> None:
    """Checkpoint the session (trained weights, optimizer, schedule, step, losses, torch RNG) into
    ``folder/checkpoint/state.pt``, atomically: a kill never leaves half a checkpoint."""
    import torch

    checkpoint = Path(folder) / "checkpoint"
    checkpoint.mkdir(parents=True, exist_ok=True)
    state = {
        "weights": {name: p.detach().clone() for name, p in session.model.named_parameters() if p.requires_grad},
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "step": session.step,
        "losses": session.losses,
        "rng": torch.get_rng_state(),
        "config": dataclasses.asdict(session.config),
    }
    with replacing(checkpoint / "state.pt") as scratch:
        torch.save(state, scratch)


def restore_session(session: TrainingSession, folder: Path) -> bool:
    """Load ``folder``'s checkpoint (weights, optimizer, schedule, step, losses, RNG) into ``session``; False
    when there is none, or it was saved before the first step."""
    import torch

    path = Path(folder) / "checkpoint" / "state.pt"
    older = Path(folder) / "checkpoint.old" / "state.pt"
    if not path.exists() and older.exists():  # earlier versions swapped folders; killed mid-swap, this one is whole
        path = older
    if not path.exists():
        return False
    state = load_checkpoint(path)
    params = dict(session.model.named_parameters())
    with torch.no_grad():
        for name, value in state["weights"].items():
            params[name].copy_(value)
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    session.losses, session.step = list(state["losses"]), int(state["step"])
    return session.step > 0


def checkpoint_step(out_dir: Path) -> int | None:
    """The optimizer step a rerun would resume from, or None when there is no checkpoint."""
    path = Path(out_dir) / "checkpoint" / "state.pt"
    return int(load_checkpoint(path)["step"]) if path.exists() else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state: tensors and plain values only (``weights_only``), never arbitrary pickled objects,
    since a run folder is a file anyone with access to the workspace could have replaced."""
    import pickle

    import torch

    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path} holds objects other than tensors and plain values, so it was not loaded (it was not written "
            f"by this app, or was altered). Delete its folder to restart that training from scratch. ({exc})"
        ) from None
