"""Supervised fine-tuning of a causal LM on selected examples: LoRA (peft) or full, resumable.

The loss is the response-only NLL of the chat-template rendering (the same rendering as the scorers,
:func:`core.models.passes.render_pair`), averaged over every response token of an optimizer
step, so gradient accumulation gives the same update as one big batch. The schedule is linear warmup
then cosine decay. The data order of epoch e is a permutation seeded by ``seed + e``.

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
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.models.lm import DEFAULT_LM
from core.progress import Cancelled

IGNORE = -100


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one fine-tune (recorded with the run).

    target_modules: the linear layers LoRA adapts; ``all-linear`` lets peft pick every linear layer.
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

    model: Any
    losses: list[float]
    steps: int
    tokens: int
    seconds: float
    out_dir: Path
    resumed_from: int = 0


@dataclasses.dataclass(frozen=True)
class _Example:
    ids: list[int]
    labels: list[int]


def render_examples(tokenizer: Any, frame: pd.DataFrame, max_length: int) -> list[_Example]:
    """Token ids with labels on the response tokens only (IGNORE elsewhere)."""
    from core.models.passes import render_pair

    rendered = []
    for instruction, input_text, output in zip(frame.instruction, frame.input, frame.output, strict=True):
        pair = render_pair(tokenizer, instruction, input_text, output, max_length)
        labels = [IGNORE] * pair.conditional_start + pair.conditional[pair.conditional_start :]
        rendered.append(_Example(pair.conditional, labels))
    return rendered


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


def _collate(batch: list[_Example], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(example.ids) for example in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        ids[row, : len(example.ids)] = torch.tensor(example.ids)
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
        mask[row, : len(example.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _summed_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Sum of the response-token NLLs of a micro-batch (labels shifted as the model does).

    Only the hidden states of positions that predict a response token go through the LM head: the
    full (batch x length x 49k vocabulary) logits would cost a fifth of the step's FLOPs and most of its
    memory for prompt positions whose loss is masked anyway. On CUDA the forward pass autocasts to
    bf16 (the issue's GPU precision); the CPU stays float32.
    """
    import torch

    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: holds the LoRA layers
    body, head = causal.base_model, causal.get_output_embeddings()
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        if body is causal or head is None:  # no separate head to apply by hand: full logits
            logits = causal(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            logits = logits[scored]
        else:
            hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            logits = head(hidden[:, :-1][scored])
    return torch.nn.functional.cross_entropy(logits.float(), targets[scored], reduction="sum")


def _optimizer(model: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    import torch
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = math.ceil(config.warmup_ratio * total_steps)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


def train(
    base_model: Any,
    tokenizer: Any,
    examples: pd.DataFrame,
    config: TrainConfig,
    out_dir: Path,
    *,
    on_step: Callable[[TrainStatus], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune a copy of ``base_model`` on ``examples`` (instruction, input, output) into ``out_dir``.

    Resumes from ``out_dir/checkpoint`` when one exists. Raises :class:`Cancelled` after saving a
    checkpoint when ``should_stop`` returns true between steps.
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if examples.empty:
        raise ValueError("nothing to train on: the selection is empty")
    data = render_examples(tokenizer, examples, config.max_length)
    plan = step_plan(len(data), config)
    model = prepare_model(base_model, config)
    optimizer, scheduler = _optimizer(model, config, len(plan))
    losses, start = _resume(out_dir, model, optimizer, scheduler)
    if start == 0:  # a resumed run restores the RNG state of its checkpoint instead
        torch.manual_seed(config.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    started, tokens = time.perf_counter(), 0
    for step in range(start, len(plan)):
        if should_stop and should_stop():
            _save_checkpoint(out_dir, model, optimizer, scheduler, step, losses, config)
            raise Cancelled(f"cancelled at step {step} of {len(plan)}; a rerun resumes from here")
        step_tokens = sum(sum(label != IGNORE for label in data[i].labels[1:]) for batch in plan[step] for i in batch)
        total = 0.0
        for batch in plan[step]:
            loss = _summed_loss(model, _collate([data[i] for i in batch], pad_id)) / max(step_tokens, 1)
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)
        tokens += sum(len(data[i].ids) for batch in plan[step] for i in batch)
        if on_step:
            elapsed = time.perf_counter() - started
            rate = (step + 1 - start) / elapsed if elapsed > 0 else 0.0
            remaining = (len(plan) - step - 1) / rate if rate > 0 else float("nan")
            on_step(TrainStatus(step + 1, len(plan), total, tokens / max(elapsed, 1e-9), remaining))
        # after reporting the step: a crash in between leaves the caller's log ahead of the checkpoint (a resume
        # reports those steps again), never behind it (a step the resume skips would be missing from the log)
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < len(plan):
            _save_checkpoint(out_dir, model, optimizer, scheduler, step + 1, losses, config)
    model.eval()
    save_model(model, out_dir / "final", config)
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    return TrainResult(model, losses, len(plan), tokens, time.perf_counter() - started, out_dir, start)


def save_model(model: Any, folder: Path, config: TrainConfig) -> Path:
    """The adapter (peft, safetensors) or the full weights, plus the training config."""
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(folder), safe_serialization=True)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return folder


def _trainable_state(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(
    out_dir: Path, model: Any, optimizer: Any, scheduler: Any, step: int, losses: list[float], config: TrainConfig
) -> None:
    """Write the checkpoint to a temporary folder, then swap it in: a crash never leaves half of one."""
    import torch

    tmp = out_dir / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "weights": _trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "losses": losses,
            "rng": torch.get_rng_state(),
            "config": dataclasses.asdict(config),
        },
        tmp / "state.pt",
    )
    final = out_dir / "checkpoint"
    old = out_dir / "checkpoint.old"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _resume(out_dir: Path, model: Any, optimizer: Any, scheduler: Any) -> tuple[list[float], int]:
    import torch

    path = out_dir / "checkpoint" / "state.pt"
    if not path.exists() and (out_dir / "checkpoint.old" / "state.pt").exists():  # crashed mid-swap
        path = out_dir / "checkpoint.old" / "state.pt"
    if not path.exists():
        return [], 0
    state = load_checkpoint(path)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["weights"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return list(state["losses"]), int(state["step"])


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


# ---------------------------------------------------------------------------------------------------
# A training session kept across calls: one model, optimizer and LR schedule over several data sets
# (IterIT trains each epoch on a different selection under one schedule, docs/algorithms.md 3.5).
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingSession:
    """A trainable model with its optimizer and a schedule planned for ``total_steps`` optimizer steps.

    ``step`` counts the steps taken so far; ``losses`` holds one loss per step.
    """

    model: Any
    tokenizer: Any
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


def start_session(base_model: Any, tokenizer: Any, config: TrainConfig, total_steps: int) -> TrainingSession:
    """A trainable copy of ``base_model`` (as :func:`train` makes one) with a schedule over ``total_steps``."""
    import torch

    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, not {total_steps}")
    torch.manual_seed(config.seed)  # before prepare_model: LoRA's A matrices are drawn from the torch RNG
    model = prepare_model(base_model, config)
    optimizer, scheduler = _optimizer(model, config, total_steps)
    return TrainingSession(model, tokenizer, config, optimizer, scheduler, total_steps)


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
    pad_id = session.tokenizer.pad_token_id
    pad_id = pad_id if pad_id is not None else session.tokenizer.eos_token_id
    losses: list[float] = []
    started, tokens = time.perf_counter(), 0
    session.model.train()
    try:
        for index, micro_batches in enumerate(plan):
            if should_stop and should_stop():
                raise Cancelled(f"cancelled at step {session.step} of {session.total_steps}")
            loss, step_tokens = _take_step(session, data, micro_batches, pad_id)
            losses.append(loss)
            tokens += step_tokens
            if on_step:
                elapsed = max(time.perf_counter() - started, 1e-9)
                remaining = (session.total_steps - session.step) * elapsed / (index + 1)
                on_step(TrainStatus(session.step, session.total_steps, loss, tokens / elapsed, remaining))
    finally:
        session.model.eval()
    return losses


def _take_step(
    session: TrainingSession, data: list[_Example], micro_batches: list[np.ndarray], pad_id: int
) -> tuple[float, int]:
    """One optimizer step, exactly as :func:`train` takes it: (loss, tokens seen)."""
    import torch

    model = session.model
    step_tokens = sum(sum(label != IGNORE for label in data[i].labels[1:]) for batch in micro_batches for i in batch)
    total = 0.0
    for batch in micro_batches:
        loss = _summed_loss(model, _collate([data[i] for i in batch], pad_id)) / max(step_tokens, 1)
        loss.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    session.optimizer.step()
    session.scheduler.step()
    session.optimizer.zero_grad(set_to_none=True)
    session.step += 1
    session.losses.append(total)
    return total, sum(len(data[i].ids) for batch in micro_batches for i in batch)


def save_session(session: TrainingSession, folder: Path) -> None:
    """Checkpoint the session into ``folder/checkpoint`` (atomically, in :func:`train`'s format)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    _save_checkpoint(
        Path(folder), session.model, session.optimizer, session.scheduler, session.step, session.losses, session.config
    )


def restore_session(session: TrainingSession, folder: Path) -> bool:
    """Load ``folder``'s checkpoint (weights, optimizer, schedule, step, RNG) into ``session``; False if none."""
    losses, step = _resume(Path(folder), session.model, session.optimizer, session.scheduler)
    if step == 0:
        return False
    session.losses, session.step = losses, step
    return True
