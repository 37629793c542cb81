"""LESS-style gradient features: per-example LoRA gradients, Adam-preconditioned or plain, projected, normalised.

For each example (docs/algorithms.md 1.5, 4.2): the gradient g of its response loss (mean NLL over its response
tokens) with respect to the trainable (LoRA) parameters; for pool examples the Adam direction
m' / sqrt(v' + eps) built from the warmup's AdamW moments, for target examples g itself; then a seeded random
projection to d dimensions (:mod:`core.gradients.projection`) and L2 normalisation, stored as float16.

**Per-example gradients in one batched pass (hooks, not torch.func).** A forward hook on every
``nn.Linear`` with trainable weights (peft's ``lora_A`` / ``lora_B`` layers) keeps its input x and puts a hook
on its output; in the backward pass that hook receives the output gradient dy and adds the example's weight
gradient sum_t dy[b, t]^T x[b, t] (the Opacus trick; a bias gets sum_t dy[b, t]). The loss of a micro-batch
is the *sum* of the examples' mean response NLLs, so dy of row b comes from example b alone; with right
padding and a causal model no real token sees a pad and no loss sees a pad's output, so pads get exactly
zero gradient and the result equals b separate backward passes. We chose hooks over
``torch.func.vmap(grad(functional_call))`` because vmap must trace through transformers' attention-mask
construction and SDPA kernels, which breaks between versions, and it would materialise per-example copies
of the frozen graph; the hooks see plain tensors and cost one einsum per LoRA layer. A trainable parameter
that is not the weight or bias of an ``nn.Linear`` (DoRA magnitudes, LoRA embeddings, modules_to_save
norms) raises :class:`ValueError` rather than being silently left out.

Passes run in eval mode (no dropout draw), so features are deterministic. The device is the model's own
(placed by :func:`core.models.device.pick_device` when loaded). Precision: ``auto`` is bf16 on CUDA and on
CPUs with native bf16, as for the scorers; ``fp32`` keeps float32. A bf16 pass runs on bf16 copies of the
weights, as LESS does (it loads its model in bf16), with the CPU attention and the LM head + loss of
:mod:`core.models.fast`: 1.9x faster than a float32 pass here, feature cosine to float32
0.995 at worst and 0.999 on average on real data. The per-example products of the hooks run in the pass's
dtype and are added up in float32.

Examples are rendered as training renders them, sorted by length (longest first, so an out-of-memory
shows at once) into micro-batches, processed in chunks of ``chunk_size``; with ``out_dir`` each finished
chunk is saved as one ``.npy`` and a rerun skips it. An example whose response is empty after truncation
has no gradient: its row is all zeros.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from core.atomic import replacing, write_bytes
from core.gradients.projection import Projector, build_projector
from core.models.fast import fast_pass, fused_head_allowed, weighted_head_nll
from core.progress import Cancelled

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from core.models.lm import CausalLM

CHUNK_SIZE = 256  # examples per saved file: at most this much work is lost when a run is cancelled
TOKEN_BUDGET = 2048  # padded tokens per pass: ~3 GB of activations for SmolLM2-135M, whatever the lengths
# A shorter example joins a pass only if it fills most of the pass's width: batching saves ~10 % per token in
# float32 and 1.5-1.7x in bf16 passes (batch 1 to 4), but padding costs its full share; a cost model of the
# bench sample put lower fills (0.6-0.8) within 1 % of this one.
MIN_FILL = 0.85
# what a bf16 pass means, part of a chunk folder's fingerprint (autocast over float32 weights came before)
BF16_PASSES = "bf16 weights, chunked CPU attention"


def lora_parameters(model: CausalLM) -> list[tuple[str, torch.nn.Parameter]]:
    """The trainable parameters in name order; their flattened concatenation is the P-vector of a feature."""
    params = sorted((name, p) for name, p in model.named_parameters() if p.requires_grad)
    if not params:
        raise ValueError("the model has no trainable parameters: add a LoRA adapter first (prepare_model)")
    return params


def per_example_gradients(model: CausalLM, batch: dict[str, torch.Tensor], *, bf16: bool | None = None) -> torch.Tensor:
    """(b, P) float32 gradients of each example's mean response NLL, from one forward and one backward pass.

    ``batch`` holds right-padded ``input_ids``, ``attention_mask`` and ``labels`` (IGNORE off the response),
    as :func:`core.models.passes.collate` makes them. Columns follow :func:`lora_parameters`. The model's
    ``.grad`` fields are left untouched; the model runs in eval mode and is put back in its previous mode.
    ``bf16`` autocasts the passes' matrix products to bf16 (None: on CUDA only, as training does);
    :func:`gradient_features` instead runs its bf16 passes on bf16 weights, with autocast off. The
    per-example products of the hooks run in the dtype of the layer inputs they see.
    """
    import torch

    params = lora_parameters(model)
    device = params[0][1].device
    batch = {key: value.to(device) for key, value in batch.items()}
    n_rows = batch["input_ids"].shape[0]
    collector = _GradientCollector(model, params, n_rows, device)
    was_training = model.training
    model.eval()
    try:
        with collector.hooked(), torch.enable_grad():  # callers may hold no_grad (gradient_features does)
            loss = _response_loss(model, batch, device.type == "cuda" if bf16 is None else bf16)
            # autograd.grad, not backward: the batch gradient is not needed, and .grad stays as it was
            torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    finally:
        model.train(was_training)
    return collector.grads


def adam_direction(
    grads: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> torch.Tensor:
    """The update direction m' / sqrt(v' + eps) Adam would take from moments (m, v) after gradient g.

    m' = beta1 m + (1 - beta1) g and v' = beta2 v + (1 - beta2) g^2, with no bias correction (as LESS).
    ``grads`` is (b, P); ``exp_avg`` and ``exp_avg_sq`` are (P,) and broadcast over the rows.
    """
    exp_avg = exp_avg.to(grads.device, grads.dtype)
    exp_avg_sq = exp_avg_sq.to(grads.device, grads.dtype)
    first = beta1 * exp_avg + (1 - beta1) * grads
    second = beta2 * exp_avg_sq + (1 - beta2) * grads.square()
    return first / (second + eps).sqrt()


def adam_moments(optimizer: Any, model: CausalLM) -> tuple[torch.Tensor, torch.Tensor]:
    """AdamW's (exp_avg, exp_avg_sq) flattened in :func:`lora_parameters` order, float32 on the CPU.

    A parameter the optimizer has not stepped yet has no state: its moments are zeros.
    """
    import torch

    firsts, seconds = [], []
    for _, param in lora_parameters(model):
        state = optimizer.state.get(param, {})
        zeros = torch.zeros(param.numel())
        firsts.append(state["exp_avg"].detach().float().flatten().cpu() if "exp_avg" in state else zeros)
        seconds.append(state["exp_avg_sq"].detach().float().flatten().cpu() if "exp_avg_sq" in state else zeros)
    return torch.cat(firsts), torch.cat(seconds)


def gradient_features(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    examples: pd.DataFrame,
    *,
    moments: tuple[torch.Tensor, torch.Tensor] | None,
    d: int,
    projection: Literal["sparse", "rademacher"] = "sparse",
    seed: int = 0,
    max_length: int = 512,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    out_dir: Path | None = None,
    chunk_size: int = CHUNK_SIZE,
    token_budget: int = TOKEN_BUDGET,
    precision: Literal["auto", "fp32", "bf16"] = "auto",
) -> np.ndarray:
    """(n, d) float16 features of ``examples`` (instruction, input, output), rows in the input order.

    Parameters
    ----------
    moments : the warmup's flattened (exp_avg, exp_avg_sq), each (P,), for pool examples (Adam direction);
        None for target examples (plain gradient).
    d, projection, seed : the random projection (:func:`core.gradients.projection.build_projector`).
    max_length, batch_size : rendering length and examples per forward/backward pass.
    token_budget : at most this many padded tokens per pass (fewer than ``batch_size`` long examples):
        the backward pass keeps every layer's activations, about 1.4 MB per token for a 135M model.
    progress : called with the number of examples just finished (chunks found in ``out_dir`` included).
    should_stop : polled between micro-batches; when it returns true, :class:`Cancelled` is raised.
    out_dir : where finished chunks are saved; a rerun with the same inputs resumes from them.
    chunk_size : examples per saved chunk.
    precision : ``auto`` runs bf16 passes on CUDA and on CPUs that multiply bf16 natively
        (:func:`core.models.device.use_bf16`; ``CURATE_PRECISION`` overrides it), ``fp32`` keeps float32,
        ``bf16`` forces bf16 passes (bf16 weights for the duration; the model is left as it came).
        Features differ slightly between the two: record the choice with them.

    Rows are unit-norm, except all-zero rows for examples with no response token.
    """
    import torch

    from core.models.passes import pad_token_id, render_examples

    if min(batch_size, chunk_size, token_budget) < 1:
        raise ValueError(
            f"batch_size, chunk_size and token_budget must be positive: {batch_size, chunk_size, token_budget}"
        )
    params = lora_parameters(model)
    n_params = sum(p.numel() for _, p in params)
    bf16 = resolve_bf16(precision, params[0][1].device.type)
    if moments is not None and any(m.numel() != n_params for m in moments):
        raise ValueError(f"moments have {[m.numel() for m in moments]} values; the adapter has {n_params}")
    rendered = render_examples(tokenizer, examples, max_length)
    projector = build_projector(projection, n_params, d, seed)
    order = np.argsort([-len(item.ids) for item in rendered], kind="stable")
    chunks = [order[start : start + chunk_size] for start in range(0, len(order), chunk_size)]
    settings = [projection, d, seed, chunk_size, BF16_PASSES if bf16 else "fp32"]
    folder = _chunk_folder(out_dir, _fingerprint(rendered, params, moments, settings))
    pad_id = pad_token_id(tokenizer)
    features = np.zeros((len(rendered), d), dtype=np.float16)
    steps = _Steps(batch_size, token_budget, progress, should_stop)
    with torch.no_grad(), _pass_precision(model, bf16):  # only the passes in per_example_gradients need a graph
        for index, chunk in enumerate(chunks):
            path = folder / f"chunk-{index:05d}.npy" if folder else None
            if path is not None and path.exists():
                features[chunk] = np.load(path)
                if progress:
                    progress(len(chunk))
                continue
            items = [rendered[i] for i in chunk]
            features[chunk] = _chunk_features(model, items, pad_id, moments, projector, steps)
            if path is not None:
                _save_chunk(path, features[chunk])
    return features


@contextmanager
def _pass_precision(model: CausalLM, bf16: bool) -> Iterator[None]:
    """bf16 passes run in the fast pass (:func:`core.models.fast.fast_pass`): bf16 weights and, on a CPU, the
    chunked attention."""
    with fast_pass(model, bf16):
        yield


def resolve_bf16(precision: str, device_type: str) -> bool:
    """Whether passes autocast to bf16 under ``precision`` (auto, fp32 or bf16) on a device of this type."""
    from core.models.device import use_bf16

    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    return use_bf16(device_type) if precision == "auto" else precision == "bf16"


# ---------------------------------------------------------------------------------------------------
# The loss and the per-example gradient hooks
# ---------------------------------------------------------------------------------------------------


def _response_loss(model: CausalLM, batch: dict[str, torch.Tensor], bf16: bool) -> torch.Tensor:
    """Sum over the rows of each row's mean response NLL (a row with no response token adds nothing).

    As in :func:`core.train.trainer._summed_loss`, only positions that predict a response token go
    through the LM head; a plain frozen head goes with the loss in one chunked step
    (:func:`core.models.fast.weighted_head_nll`).
    """
    import torch

    from core.models.passes import IGNORE

    device = batch["input_ids"].device
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    body, head = causal.base_model, causal.get_output_embeddings()
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE
    rows = scored.nonzero()[:, 0]
    row_weights = 1 / scored.sum(dim=1).clamp(min=1)[rows]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if body is causal or head is None:
            logits = causal(**inputs).logits[:, :-1][scored]
        else:
            hidden = body(**inputs).last_hidden_state[:, :-1][scored]
            if fused_head_allowed(head):
                return weighted_head_nll(hidden, head.weight, targets[scored], row_weights)
            logits = head(hidden)
        nll = torch.nn.functional.cross_entropy(logits.float(), targets[scored], reduction="none")
    return (nll * row_weights).sum()


class _GradientCollector:
    """Forward/backward hooks that add each example's weight (and bias) gradient of every trainable Linear."""

    def __init__(self, model: CausalLM, params: list[tuple[str, torch.nn.Parameter]], n_rows: int, device: Any):
        import torch

        offsets, start = {}, 0
        for _, param in params:
            offsets[id(param)] = (start, param.numel())
            start += param.numel()
        self.grads = torch.zeros(n_rows, start, device=device)
        self._slots: dict[int, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {}
        self._modules = []
        covered: set[int] = set()
        for module in model.modules():
            if not isinstance(module, torch.nn.Linear):
                continue
            weight = offsets.get(id(module.weight)) if module.weight.requires_grad else None
            bias = offsets.get(id(module.bias)) if module.bias is not None and module.bias.requires_grad else None
            if weight or bias:
                self._slots[id(module)] = (weight, bias)
                self._modules.append(module)
                covered |= {id(module.weight)} if weight else set()
                covered |= {id(module.bias)} if bias else set()
        missing = [name for name, param in params if id(param) not in covered]
        if missing:
            raise ValueError(
                f"per-example gradients cover the weights and biases of Linear layers (LoRA's A and B) only; "
                f"these trainable parameters are not: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )

    @contextmanager
    def hooked(self) -> Iterator[None]:
        handles = [module.register_forward_hook(self._on_forward) for module in self._modules]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _on_forward(self, module: Any, inputs: Sequence[torch.Tensor], output: torch.Tensor) -> None:
        if output.requires_grad:
            activations = inputs[0].detach()
            output.register_hook(lambda grad_output: self._add(module, activations, grad_output))

    def _add(self, module: Any, activations: torch.Tensor, grad_output: torch.Tensor) -> None:
        import torch

        n_rows = self.grads.shape[0]
        # (b, tokens, features) whatever the layer's input shape; a module used twice adds twice, as autograd does.
        # The product runs in the pass's dtype (the kernel sums in float32); float32 copies of x and dy were
        # 3 % of a bf16 pass at 4 x 512 tokens.
        x = activations.reshape(n_rows, -1, activations.shape[-1])
        dy = grad_output.reshape(n_rows, -1, grad_output.shape[-1]).to(x.dtype)
        weight, bias = self._slots[id(module)]
        if weight:
            start, size = weight
            self.grads[:, start : start + size] += torch.einsum("bto,bti->boi", dy, x).reshape(n_rows, size)
        if bias:
            start, size = bias
            self.grads[:, start : start + size] += dy.sum(dim=1, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------
# Chunks: gradients -> direction -> projection -> normalisation, saved and resumed
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Steps:
    """How a chunk is walked: examples per pass, and who hears about each pass or may stop the walk."""

    batch_size: int
    token_budget: int
    progress: Callable[[int], None] | None
    should_stop: Callable[[], bool] | None


def _chunk_features(
    model: CausalLM,
    items: list[Any],
    pad_id: int,
    moments: tuple[torch.Tensor, torch.Tensor] | None,
    projector: Projector,
    steps: _Steps,
) -> np.ndarray:
    """Features of one chunk's items (in their order): project once ``projector.rows_per_call`` rows are ready."""
    import torch

    from core.models.passes import collate

    projected: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    for batch in _micro_batches(items, steps.batch_size, steps.token_budget):
        if steps.should_stop and steps.should_stop():
            raise Cancelled("gradient features cancelled; a rerun with the same out_dir resumes from saved chunks")
        grads = per_example_gradients(model, collate(batch, pad_id), bf16=False)  # bf16 comes from the weights
        pending.append(adam_direction(grads, *moments) if moments is not None else grads)
        if steps.progress:
            steps.progress(len(batch))
        if sum(len(rows) for rows in pending) >= projector.rows_per_call:
            projected.append(projector.project(torch.cat(pending)))
            pending = []
    if pending:
        projected.append(projector.project(torch.cat(pending)))
    rows = torch.cat(projected)
    rows = rows / rows.norm(dim=1, keepdim=True).clamp(min=1e-30)  # an all-zero row stays zero
    return rows.cpu().numpy().astype(np.float16)


def _micro_batches(items: list[Any], batch_size: int, token_budget: int) -> Iterator[list[Any]]:
    """Consecutive runs of length-sorted items: at most ``batch_size`` items and ``token_budget`` padded tokens,
    and none shorter than ``MIN_FILL`` of the run's longest (its padding would cost more than batching saves)."""
    batch: list[Any] = []
    for item in items:
        width = max([len(item.ids), *(len(other.ids) for other in batch)])
        full = len(batch) >= batch_size or width * (len(batch) + 1) > token_budget
        if batch and (full or len(item.ids) < MIN_FILL * width):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _fingerprint(
    rendered: list[Any],
    params: list[tuple[str, torch.nn.Parameter]],
    moments: tuple[torch.Tensor, torch.Tensor] | None,
    settings: list[Any],
) -> str:
    """A hash of everything a chunk depends on, so a folder of another run's chunks is never reused."""
    digest = hashlib.sha256(json.dumps([*settings, len(rendered)]).encode())
    for item in rendered:
        digest.update(np.asarray([*item.ids, -1, *item.labels], dtype=np.int64).tobytes())
    for name, param in params:
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().numpy().tobytes())
    for moment in moments or ():
        digest.update(moment.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _chunk_folder(out_dir: Path | None, fingerprint: str) -> Path | None:
    """``out_dir`` ready for chunks of this fingerprint; raises if it holds chunks of different inputs."""
    if out_dir is None:
        return None
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "fingerprint.txt"
    if stamp.exists() and stamp.read_text().strip() != fingerprint:
        raise ValueError(f"{folder} holds gradient features of other inputs or settings; use another folder")
    if not stamp.exists():
        write_bytes(stamp, fingerprint.encode())
    return folder


def _save_chunk(path: Path, rows: np.ndarray) -> None:
    """Atomically: a kill never leaves a half-written chunk under its name for a resume to trust."""
    with replacing(path) as scratch, open(scratch, "wb") as handle:
        np.save(handle, rows)
