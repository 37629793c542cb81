"""The fast model pass every stage shares: bf16 weights, a chunked CPU attention, the LM head fused with the loss.

:func:`fast_pass` is the one entry point: for a bf16 pass it puts the model on bf16 weights and, on a CPU,
on the chunked attention, and hands it back as it was however the block ends. The scorers (perplexity, IFD),
the evaluation's loss, the iterative loops' scoring, the RDS+ hidden states and the gradient features run
their bf16 passes in it; a float32 pass runs as the model is (SDPA, float32 weights). Its two parts:

* :func:`bf16_weights` swaps every floating parameter's data for a bf16 copy for the duration, then puts the
  float32 tensors back (the originals are kept, so nothing is rounded for good). The passes then run in bf16
  end to end, as LESS runs its gradient passes (it loads the model in bf16). Against ``torch.autocast`` over
  float32 weights this drops the weight and activation casts (8 % of a pass here) and halves the memory
  traffic of every element-wise op. Buffers (rotary frequencies) stay float32: the model's own code casts them
  where it uses them, and in bf16 the rotary angles of late positions would be visibly wrong.
* :func:`cpu_chunked_attention` replaces the model's SDPA attention, on a CPU only, by
  :func:`chunked_causal_attention`: plain bf16 matrix products over chunks of 128 queries, each against the
  keys up to its end (the causal upper triangle is skipped, only the diagonal block masked), with the key/value heads of a GQA
  model shared by their query group instead of repeated. PyTorch's CPU flash kernel is slow in bf16: forward
  plus backward of SmolLM2's 30 layers took 2.0 s at 4x512 tokens, 0.92 s at 8x203 and 0.51 s at 8x103;
  the chunked products take 0.74, 0.37 and about 0.14 s (``bench/gradients.py`` measures the end-to-end gain).
  Queries may follow cached keys (a shared prefix computed once: they are the last of the keys). Anything it
  does not cover (sliding windows, soft-capping, attention sinks, a float mask, dropout in training, a model
  whose config has sub-configs) goes to transformers' own SDPA function.

With the chunked attention, scoring packs its sequences back to back into rows with no padding
(:func:`packed_sequences`, :func:`packed_causal_attention`): each sequence attends to the shared cached
prefix and to itself. The row's padding was a fifth of the tokens of length-sorted batches. The row's query
chunks follow its sequences and carry additive masks, both made once for all layers (:func:`packed_plan`).

And on a CPU with oneDNN's bf16 kernels, :func:`cpu_fast_layers`: the linear layers' no-grad calls run on
weights prepacked once for oneDNN, and a SiLU-gated MLP as three such products with the SiLU and the gate
fused into them.

On CUDA only the bf16 weights apply: its attention kernels are fast in bf16 (and the default LM is loaded in
bf16 there, so the swap has nothing to do).

And, at any precision, the LM head with the loss in chunks of :data:`HEAD_CHUNK` positions:
:func:`weighted_head_nll` (differentiable, for the gradient features and training; a plain frozen
``nn.Linear`` head) and :func:`head_nll` (forward only, each position's NLL, for scoring).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import itertools
import math
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from core.models.lm import CausalLM

FAST_PASS = "bf16-weights"
"""What cache keys of bf16 results say (score keys, hidden-state keys): values of the fast pass, not of the
earlier bf16 autocast over float32 weights, which differ from them in the last digits."""
ATTENTION_NAME = "curate_chunked_causal"
QUERY_CHUNK = 128  # 64, 96 and 192 measured the same; 256 and the whole sequence at once were slower
# keyword arguments of an attention call that change its arithmetic: with any of them set, SDPA does the call
_UNSUPPORTED = ("softcap", "sliding_window", "s_aux", "sinks", "position_bias", "cache", "output_attentions")

# One lock per model: the bf16 swap changes the parameters every thread sees, so two passes over one shared model
# (load_causal_lm shares it within a process) take turns instead of one handing float32 weights back mid-pass.
_PASS_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


@contextmanager
def fast_pass(model: CausalLM, precision: str | bool) -> Iterator[bool]:
    """Run ``model``'s passes inside the block at ``precision``; yields whether they run in bf16.

    ``precision`` is ``bf16``, ``fp32``, ``auto`` (resolved for the model's device by
    :func:`core.models.device.resolved_precision`) or a bool (True: bf16). bf16: the model runs on bf16 copies
    of its weights (:func:`bf16_weights`) and, on a CPU, on :func:`chunked_causal_attention` (for SDPA models)
    and :func:`cpu_fast_layers`;
    everything is handed back on exit, after an error or a cancel too. fp32: the model is left as it is.
    The caller owns the no-grad or inference mode: the gradient features run backward passes in here.
    """
    from core.models.device import resolved_precision
    from core.models.passes import unwrapped

    device = next(model.parameters()).device
    bf16 = precision if isinstance(precision, bool) else resolved_precision(precision, str(device)) == "bf16"
    if not bf16:
        yield False
        return
    with ExitStack() as stack:
        stack.enter_context(_pass_lock(model))
        stack.enter_context(bf16_weights(model))
        stack.enter_context(cpu_chunked_attention(unwrapped(model)))  # peft's wrapper holds no attention choice
        stack.enter_context(cpu_fast_layers(model))
        yield True


def _pass_lock(model: CausalLM) -> threading.RLock:
    with _LOCKS_GUARD:
        return _PASS_LOCKS.setdefault(model, threading.RLock())


@contextmanager
def bf16_weights(model: CausalLM, frozen_only: bool = False) -> Iterator[None]:
    """Run ``model`` on bf16 copies of its floating parameters inside the block; the float32 ones come back after.

    Parameters keep their identity (hooks and optimizers that hold them still see the same objects); only
    ``.data`` is swapped. A parameter already in bf16 (or not floating) is left as it is. ``frozen_only``
    leaves the trainable parameters alone: mixed-precision training keeps them as the float32 master weights.
    """
    import torch

    saved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for param in model.parameters():  # tied weights (embeddings and LM head) are listed once
                if frozen_only and param.requires_grad:
                    continue
                if param.is_floating_point() and param.dtype != torch.bfloat16:
                    saved.append((param, param.data))
                    param.data = param.data.to(torch.bfloat16)
        yield
    finally:
        for param, data in saved:
            param.data = data


@contextmanager
def cpu_chunked_attention(model: CausalLM) -> Iterator[None]:
    """Inside the block, a CPU model that uses SDPA attention uses :func:`chunked_causal_attention` instead."""
    config = getattr(model, "config", None)
    device = next(model.parameters()).device
    if (
        config is None
        or device.type != "cpu"
        or getattr(config, "_attn_implementation", None) != "sdpa"
        or getattr(config, "sub_configs", None)  # restoring would overwrite each sub-config's own choice
    ):
        yield
        return
    _register()
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"


def _register() -> None:
    """Add the chunked attention (and SDPA's mask builder for it) to transformers' registries, once."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if ATTENTION_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION_NAME, _attention_forward)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def _attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; the cases the chunked product does not cover go to SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    packing = _PACKING.get()
    if packing is not None:  # several sequences in one row: only the packed product keeps them apart
        if not (_covered(module, query, key, None, dropout, causal, kwargs) and packing.fits(query)):
            raise PackingMissed("a packed pass reached an attention call the chunked attention does not cover")
        packing.calls += 1
        plan = packing.plan(QUERY_CHUNK, query.dtype, query.device)
        return packed_causal_attention(query, key, value, plan, scaling), None
    if _covered(module, query, key, attention_mask, dropout, causal, kwargs):
        return chunked_causal_attention(query, key, value, attention_mask, scaling), None
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
    )


def _covered(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    dropout: float,
    causal: bool,
    kwargs: dict[str, Any],
) -> bool:
    """Whether the call is plain causal self-attention over a whole sequence, which the chunked product computes."""
    import torch

    batch, heads, length, _ = query.shape
    keys = key.shape[2]
    return (
        causal
        and (dropout == 0.0 or not module.training)
        and all(kwargs.get(name) is None for name in _UNSUPPORTED)
        and keys >= length  # equal, or cached keys of a prefix before the queries'
        and heads % key.shape[1] == 0
        and (
            mask is None
            or (mask.dtype == torch.bool and mask.shape[0] in (1, batch) and mask.shape[1:] == (1, length, keys))
        )
    )


def chunked_causal_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float | None = None,
    chunk: int = QUERY_CHUNK,
) -> torch.Tensor:
    """Causal softmax attention, (b, T, H, d) like transformers' attention functions return it.

    ``query`` is (b, H, T, d); ``key`` and ``value`` are (b, G, P + T, d) with G dividing H (query heads
    h*H/G ... (h+1)*H/G - 1 share key head h) and P >= 0 cached keys before the queries' own (a shared prefix
    computed once); ``mask`` is None (causal) or a (b or 1, 1, T, P + T) boolean mask, True where a query may
    attend, as transformers' SDPA mask builder makes it. Everything runs in the query's dtype: the scores come
    out of a bf16 product already rounded to bf16, and the CPU softmax of bf16 sums in float32, so float32
    copies of the scores cost 4 % of a pass and changed no feature's cosine to the float32 features (0.9963 at
    worst either way). Query chunk [lo, hi) sees keys [0, P + hi) only.
    """
    import torch

    batch, heads, length, dim = query.shape
    groups, offset = key.shape[1], key.shape[2] - length
    shared = heads // groups
    scale = scaling if scaling is not None else 1 / math.sqrt(dim)
    queries = (query * scale).view(batch, groups, shared, length, dim)
    keys_t = key.transpose(-1, -2)
    value = value.to(query.dtype)
    lowest = torch.finfo(query.dtype).min
    outputs = []
    for lo in range(0, length, chunk):
        hi = min(length, lo + chunk)
        end = offset + hi  # the chunk's last query sits at key position end - 1
        rows = queries[:, :, :, lo:hi].reshape(batch, groups, shared * (hi - lo), dim)
        scores = (rows @ keys_t[..., :end]).view(batch, groups, shared, hi - lo, end)
        if mask is None:  # only the chunk's own keys hold future positions: mask that block in place
            future = torch.ones(hi - lo, hi - lo, dtype=torch.bool, device=query.device).triu(diagonal=1)
            scores[..., offset + lo : end].masked_fill_(future, lowest)  # the backward does not need its output
        else:
            scores = scores.masked_fill(~mask[:, :, None, lo:hi, :end], lowest)  # (b, 1, 1, rows, keys): every head
        weights = scores.softmax(dim=-1)
        mixed = weights.view(batch, groups, shared * (hi - lo), end) @ value[:, :, :end]
        outputs.append(mixed.view(batch, groups, shared, hi - lo, dim))
    return torch.cat(outputs, dim=3).view(batch, heads, length, dim).transpose(1, 2).contiguous()


# ---------------------------------------------------------------------------------------------------
# oneDNN's prepacked bf16 products for the linear layers
# ---------------------------------------------------------------------------------------------------

GATED_MLPS = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP", "Olmo2MLP", "GraniteMLP"})
"""MLP classes whose forward is ``down_proj(silu(gate_proj(x)) * up_proj(x))``: :func:`cpu_fast_layers` runs
them as three products with the SiLU and the gate in the products' epilogues. Another class keeps its forward
(its linear layers still run packed)."""


@contextmanager
def cpu_fast_layers(model: Any) -> Iterator[None]:
    """Inside the block, the no-grad calls of ``model``'s plain bf16 ``nn.Linear`` layers on a CPU run on
    oneDNN's prepacked weights, and a SiLU-gated MLP (:data:`GATED_MLPS`) runs fused.

    oneDNN reorders a weight once into the blocked layout its bf16 kernel reads (``_reorder_linear_weight``);
    ``torch.nn.functional.linear`` reorders on every call. Measured on this project's CPU, the packed products
    give the same bits as ``F.linear``, 5-12 % faster on 4,096-token rows and about twice as fast on the few
    rows of a generation step. The fused MLP also drops the passes of the SiLU and the product over the
    (tokens x intermediate) activations, and rounds to bf16 once where the unfused one rounds three times:
    scores moved by 0.37 % on average, towards float32 (0.31 % from it instead of 0.38 %). Together: 7 % off
    perplexity + IFD on 80 rows, interleaved in one process (docs/benchmarks.md).

    A call with gradients on (the gradient features, training), or on float32 or non-CPU inputs, runs the
    layer's own forward, and so does a fused MLP one of whose products has a hook. The packed weights are made
    at a layer's first call in the block and dropped at its end (a second bf16 copy of the linear weights
    while the block lasts). Modules that already carry a forward of their own (an accelerate hook) and
    adapter layers (peft's, whose base layer is packed) are left alone; nothing is left behind after the block.
    """
    from core.models.device import cpu_has_onednn_bf16

    if not cpu_has_onednn_bf16() or next(model.parameters()).device.type != "cpu":
        yield
        return
    packed: dict[Any, Any] = {}  # layer -> its packed weight
    patched = []
    try:
        for module in model.modules():
            if "forward" in vars(module):  # someone else's forward (an accelerate hook, an outer block's)
                continue
            if _plain_linear(module):
                module.forward = functools.partial(_packed_linear, module, packed)
            elif type(module).__name__ in GATED_MLPS and _gated(module):
                module.forward = functools.partial(_packed_gated_mlp, module, packed)
            else:
                continue
            patched.append(module)
        yield
    finally:
        for module in patched:
            vars(module).pop("forward", None)
        packed.clear()


def _plain_linear(module: Any) -> bool:
    import torch

    return type(module) is torch.nn.Linear


def _gated(module: Any) -> bool:
    import torch
    from transformers.activations import SiLUActivation

    parts = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    silu = type(getattr(module, "act_fn", None)) in (SiLUActivation, torch.nn.SiLU)
    return silu and all(_plain_linear(part) and "forward" not in vars(part) for part in parts)


def _packs_now(x: Any, *layers: Any) -> bool:
    """Whether this call may run packed: no gradient to record, and bf16 inputs and weights on a CPU."""
    import torch

    return (
        not torch.is_grad_enabled()
        and x.dtype == torch.bfloat16
        and x.device.type == "cpu"
        and all(layer.weight.dtype == torch.bfloat16 for layer in layers)
    )


def _packed_weight(layer: Any, packed: dict[Any, Any]) -> Any:
    import torch

    if layer not in packed:
        packed[layer] = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), None)
    return packed[layer]


def _packed_linear(layer: Any, packed: dict[Any, Any], x: Any) -> Any:
    import torch

    if not _packs_now(x, layer):
        return type(layer).forward(layer, x)
    return torch.ops.mkldnn._linear_pointwise(x, _packed_weight(layer, packed), layer.bias, "none", [], "")


def _packed_gated_mlp(mlp: Any, packed: dict[Any, Any], x: Any) -> Any:
    """``down(silu(gate(x)) * up(x))`` as three packed products, the SiLU and the gate in their epilogues."""
    import torch

    gate, up, down = mlp.gate_proj, mlp.up_proj, mlp.down_proj
    hooked = any(layer._forward_hooks or layer._forward_pre_hooks for layer in (gate, up, down))
    if hooked or not _packs_now(x, gate, up, down):  # a hook on a product must see that product's call
        return type(mlp).forward(mlp, x)
    linear = torch.ops.mkldnn._linear_pointwise
    activated = linear(x, _packed_weight(gate, packed), gate.bias, "swish", [], "")
    gated = linear.binary(x, activated, _packed_weight(up, packed), up.bias, "mul")
    return linear(gated, _packed_weight(down, packed), down.bias, "none", [], "")


# ---------------------------------------------------------------------------------------------------
# Packed sequences: several sequences in one row, no padding
# ---------------------------------------------------------------------------------------------------


class PackingMissed(RuntimeError):
    """A packed pass did not go through :func:`packed_causal_attention` in every layer (a model whose attention
    does not call transformers' attention functions, or a call they do not cover): its results would mix the
    sequences of a row, so the caller runs that row padded instead."""


@dataclasses.dataclass
class _Packing:
    bounds: torch.Tensor  # (n + 1,) the sequences' first positions in the row, then the row's length
    calls: int = 0
    plans: dict[tuple[Any, ...], list[_Chunk]] = dataclasses.field(default_factory=dict)

    def fits(self, query: torch.Tensor) -> bool:
        return query.shape[0] == 1 and query.shape[2] == int(self.bounds[-1])

    def plan(self, chunk: int, dtype: torch.dtype, device: torch.device) -> list[_Chunk]:
        """The row's chunks, made by the first layer's call and reused by the others (same row, same masks)."""
        key = (chunk, dtype, device)
        if key not in self.plans:
            self.plans[key] = packed_plan(self.bounds, chunk, dtype, device)
        return self.plans[key]


_PACKING: contextvars.ContextVar[_Packing | None] = contextvars.ContextVar("curate_packing", default=None)


@contextmanager
def packed_sequences(bounds: torch.Tensor, layers: int | None) -> Iterator[None]:
    """Inside the block, attention calls of the fast pass treat their one row as the sequences that start at
    ``bounds[:-1]`` (each attends to the cached prefix keys and to its own earlier tokens only).

    The row's position ids must restart with each sequence (the caller gives them). Raises
    :class:`PackingMissed` when the block's pass made no packed attention call, or fewer than ``layers``.
    Needs :func:`fast_pass` in bf16 on a CPU (the chunked attention); it is the caller's to check
    (:func:`packs`).
    """
    import torch

    packing = _Packing(bounds.to("cpu", dtype=torch.long))
    token = _PACKING.set(packing)
    try:
        yield
    finally:
        _PACKING.reset(token)
    if packing.calls == 0 or (layers is not None and packing.calls % layers):
        raise PackingMissed(f"{packing.calls} packed attention calls for {layers} layers")


def packs(model: CausalLM) -> bool:
    """Whether ``model`` runs on the chunked attention now (inside :func:`fast_pass` in bf16 on a CPU), which
    is what :func:`packed_sequences` needs."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) == ATTENTION_NAME


@dataclasses.dataclass(frozen=True)
class _Chunk:
    lo: int  # the chunk's queries are the row's positions [lo, hi)
    hi: int
    first: int  # the start of the sequence holding lo: the chunk's own keys are [first, hi)
    hidden: torch.Tensor  # (hi - lo, hi - first): 0 where a query sees the key, the dtype's lowest where not


def packed_plan(bounds: torch.Tensor, chunk: int, dtype: torch.dtype, device: torch.device) -> list[_Chunk]:
    """The query chunks of a packed row, each with the additive mask of its own keys: a key of another
    sequence, or a later one, is hidden. ``bounds`` (n + 1,) holds the sequences' starts in the row, then
    the row's length.

    Chunks follow the sequences: whole sequences of up to ``chunk`` positions share a chunk, and a longer one
    is cut into chunks of its own. Cutting the row every ``chunk`` positions instead made a chunk that starts
    late in a sequence multiply with all of that sequence's earlier keys and the next one's: 37 % more
    scores on rows of instruction data (a sequence of 116 tokens on average), for 24 % fewer chunks.
    """
    import torch

    edges = [int(b) for b in bounds.tolist()]
    spans: list[tuple[int, int, int]] = []  # (lo, hi, first)
    for start, end in itertools.pairwise(edges):
        if end - start > chunk:
            spans.extend((lo, min(end, lo + chunk), start) for lo in range(start, end, chunk))
        elif spans and end - spans[-1][2] <= chunk:  # joins the chunk before (never a long sequence's piece,
            spans[-1] = (spans[-1][0], end, spans[-1][2])  # whose first is that sequence's start)
        else:
            spans.append((start, end, start))
    sizes = torch.tensor(edges).diff()
    sequence = torch.repeat_interleave(torch.arange(len(sizes)), sizes)  # which sequence each position is in
    positions = torch.arange(edges[-1])
    lowest = torch.finfo(dtype).min
    chunks = []
    for lo, hi, first in spans:
        hidden = (sequence[None, first:hi] != sequence[lo:hi, None]) | (
            positions[None, first:hi] > positions[lo:hi, None]
        )
        bias = torch.zeros(hidden.shape, dtype=dtype).masked_fill_(hidden, lowest)
        chunks.append(_Chunk(lo, hi, first, bias.to(device)))
    return chunks


def packed_causal_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    plan: list[_Chunk],
    scaling: float | None = None,
) -> torch.Tensor:
    """:func:`chunked_causal_attention` over one row that holds several sequences back to back.

    ``query`` is (1, H, T, d); ``key`` and ``value`` (1, G, P + T, d), the P cached keys a prefix every
    sequence shares; ``plan`` the row's :func:`packed_plan` in the query's dtype (made once for all layers).
    A query attends to the prefix and to its own sequence's keys up to itself. Chunk [lo, hi) is multiplied
    with the prefix and with the row's keys from the start of the sequence holding ``lo`` to ``hi``: no
    product with a key of another sequence but the chunk's own neighbours, which the plan's mask hides. Adding that mask costs a third of filling the scores
    through a boolean one (a broadcast mask is the slow case of ``masked_fill_``). Returns (1, T, H, d).
    """
    import torch

    _, heads, length, dim = query.shape
    groups, offset = key.shape[1], key.shape[2] - length
    shared = heads // groups
    scale = scaling if scaling is not None else 1 / math.sqrt(dim)
    queries = (query * scale).view(1, groups, shared, length, dim)
    keys_t = key.transpose(-1, -2)
    value = value.to(query.dtype)
    outputs = []
    for part in plan:
        lo, hi, first = part.lo, part.hi, part.first
        rows = queries[:, :, :, lo:hi].reshape(1, groups, shared * (hi - lo), dim)
        own = (rows @ keys_t[..., offset + first : offset + hi]).view(1, groups, shared, hi - lo, hi - first)
        own += part.hidden
        if offset:
            ahead = (rows @ keys_t[..., :offset]).view(1, groups, shared, hi - lo, offset)
            scores = torch.cat([ahead, own], dim=-1)
            values = torch.cat([value[:, :, :offset], value[:, :, offset + first : offset + hi]], dim=2)
        else:
            scores, values = own, value[:, :, first:hi]
        weights = scores.softmax(dim=-1).view(1, groups, shared * (hi - lo), -1)
        outputs.append((weights @ values).view(1, groups, shared, hi - lo, dim))
    return torch.cat(outputs, dim=3).view(1, heads, length, dim).transpose(1, 2).contiguous()


# ---------------------------------------------------------------------------------------------------
# The LM head and the loss in one step
# ---------------------------------------------------------------------------------------------------

HEAD_CHUNK = 256  # scored positions per step: 25 MB of bf16 logits for a 49k vocabulary


def fused_head_allowed(head: Any) -> bool:
    """Whether :func:`weighted_head_nll` may stand in for ``head``: a plain frozen ``nn.Linear`` with no bias
    (a trainable or adapted head needs its own output gradient, which the fused step never makes)."""
    import torch

    return type(head) is torch.nn.Linear and head.bias is None and not head.weight.requires_grad


def weighted_head_nll(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, row_weights: torch.Tensor
) -> torch.Tensor:
    """sum_i row_weights[i] * NLL(targets[i] | softmax(hidden[i] @ weight^T)), differentiable in ``hidden``.

    ``hidden`` is (n, h), ``weight`` (V, h), ``targets`` (n,) and ``row_weights`` (n,). The logits of
    :data:`HEAD_CHUNK` positions at a time are made, turned into the loss and into the gradient of
    ``hidden`` (w_i (softmax_i - onehot_i) @ weight) at once, then dropped. Unfused, autograd keeps the
    (n, V) logits, casts them to float32 and back, and its NLL backward zero-fills an (n, V) tensor: for a
    batch with 835 response tokens that was 0.6 s of a 4 s pass.
    """
    return _head_nll_function().apply(hidden, weight, targets, row_weights)


def _chunk_nll(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, row_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted NLL sum, gradient of ``hidden``) of one chunk of positions.

    The (c, V) work stays in the pass's dtype: the softmax of bf16 logits sums in float32 inside its kernel,
    and float32 copies of the logits were most of the head's time (they go to memory: 50 MB a chunk). The
    target's entry p_t - 1 is -(sum of the other probabilities), added up in float32: computed as p_t - 1
    in bf16 it would lose most of its digits when p_t is near 1. The row weights scale the (c, h) product, not
    the (c, V) probabilities.
    """
    probs = (hidden @ weight.t()).softmax(dim=1)
    nll = _target_nll(probs, targets)
    return (nll * row_weights).sum(), (probs @ weight) * row_weights[:, None].to(weight.dtype)


def _target_nll(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(c,) float32 -log p_t of each row's target; ``probs`` (c, V) becomes softmax - onehot in place.

    Near p_t = 1 the NLL comes from the sum of the other probabilities (a float32 accumulator, rounded once
    to the probabilities' dtype: no cancellation); an underflowing p_t counts as float32's smallest normal
    number (87.3 nats).
    """
    import torch

    rows = torch.arange(len(targets), device=targets.device)
    picked = probs[rows, targets].float()
    probs[rows, targets] = 0
    # The CPU sum of bf16 adds in float32 and rounds once at the end (2^-9 of the sum); asking it for a
    # float32 result instead copies the whole (c, V) block to float32 first: 50x slower, 4 % of a pass.
    rest = probs.sum(dim=1)
    probs[rows, targets] = -rest  # the row is now softmax - onehot
    rest = rest.float()
    return torch.where(picked > 0.5, -torch.log1p(-rest), -picked.clamp_min(torch.finfo(torch.float32).tiny).log())


FAR_NLL = 69.0  # -log(1e-30): a target this unlikely gets its NLL from the logits (a softmax would round p_t)


def head_nll(hidden: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """(n,) float32 NLL of each ``targets[i]`` under softmax(head(hidden[i])): forward only, for scoring.

    ``hidden`` is (n, h) and ``head`` maps it to (n, V) logits (a model's LM head, or the identity when
    ``hidden`` holds logits already). :data:`HEAD_CHUNK` positions at a time: one product for the positions
    of every row of a batch, no float32 copy of the logits (the softmax of bf16 logits sums in float32
    inside its kernel), and the probability of the target in the logits' own dtype, which bounds the rounding
    of a bf16 NLL by about 2^-9 nats whatever its size (a bf16 log-sum-exp minus the target's logit would lose most of
    its digits). A target less likely than 1e-30 takes the float32 log-sum-exp of its own row.
    """
    import torch

    result = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
    for lo in range(0, len(targets), HEAD_CHUNK):
        part = slice(lo, lo + HEAD_CHUNK)
        logits = head(hidden[part])
        nll = _target_nll(logits.softmax(dim=1), targets[part])
        far = (nll > FAR_NLL).nonzero()[:, 0]
        if len(far):
            exact = logits[far].float()
            nll[far] = exact.logsumexp(dim=1) - exact[torch.arange(len(far)), targets[part][far]]
        result[part] = nll
    return result


@functools.cache
def _head_nll_function() -> Any:
    """The autograd function of :func:`weighted_head_nll` (made on first use: torch loads only when needed)."""
    import torch

    class WeightedHeadNLL(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, row_weights: Any) -> Any:
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad = torch.empty_like(hidden)
            for lo in range(0, len(targets), HEAD_CHUNK):
                part = slice(lo, lo + HEAD_CHUNK)
                loss, grad[part] = _chunk_nll(hidden[part], weight, targets[part], row_weights[part].float())
                total += loss
            ctx.save_for_backward(grad)
            return total

        @staticmethod
        def backward(ctx: Any, grad_total: Any) -> Any:
            (grad,) = ctx.saved_tensors
            return grad * grad_total.to(grad.dtype), None, None, None

    return WeightedHeadNLL
