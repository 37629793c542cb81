"""Mixed-precision LoRA training: bf16 passes over the frozen base, float32 for everything that learns.

``TrainConfig.precision = "bf16"`` (LoRA only) runs each step's forward and backward passes on bf16 copies
of the frozen base weights, with the CPU's chunked attention and the LM head fused with the response loss
(:mod:`core.models.fast`). What learns stays float32: the LoRA A/B matrices, their gradients (peft casts a
layer's input to the LoRA weights' dtype, so their products run in float32), the AdamW moments and every
checkpoint. The bf16 copies live only inside :func:`training_passes`, which hands the float32 weights back
however it is left (a finished pass, a cancel, an error mid-step), so nothing rounded is ever saved or reused.

Full fine-tuning keeps float32: its master weights are the weights the passes run on, so bf16 passes would
need a second, float32 copy of the whole model and a cast of every weight after every step.

bf16 is refused where the hardware has no native bf16 (a CPU without AVX512-BF16 or AMX, a GPU without bf16):
there, bf16 matrix products are emulated and slower than float32, so the option would cost time and accuracy
for nothing. ``CURATE_PRECISION=bf16`` lifts the refusal, as it forces bf16 inference.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from core.models.fast import bf16_weights, cpu_chunked_attention
from core.models.passes import unwrapped

if TYPE_CHECKING:
    from core.models.lm import CausalLM

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str, method: str) -> None:
    """Refuse a precision that is not one of :data:`PRECISIONS`, or bf16 with full fine-tuning."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32 or bf16, not {precision!r}")
    if precision == "bf16" and method == "full":
        raise ValueError(
            "precision bf16 trains LoRA adapters only: full fine-tuning keeps float32 (use precision=fp32, "
            "or method=lora)"
        )


def require_native_bf16(device_type: str) -> None:
    """Refuse bf16 training on a device that would emulate bf16 (``CURATE_PRECISION=bf16`` forces it anyway)."""
    from core import config
    from core.models.device import cpu_has_fast_bf16

    if config.precision_override() == "bf16":
        return
    if device_type == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return
        raise ValueError("precision bf16 needs a GPU with bf16 support; this one has none: use precision=fp32")
    if device_type == "cpu" and cpu_has_fast_bf16():
        return
    raise ValueError(
        f"precision bf16 needs native bf16 (a CPU with AVX512-BF16 or AMX, or a bf16 GPU); this {device_type} "
        "would emulate it, slower than float32: use precision=fp32 (CURATE_PRECISION=bf16 forces bf16)"
    )


@contextmanager
def training_passes(model: CausalLM, precision: str) -> Iterator[None]:
    """Inside the block, ``model``'s passes run at ``precision``: for bf16, on bf16 copies of its frozen
    weights with the CPU's chunked attention; for fp32, as they are."""
    with ExitStack() as stack:
        if precision == "bf16":
            stack.enter_context(bf16_frozen_weights(model))
            stack.enter_context(cpu_chunked_attention(unwrapped(model)))  # peft's wrapper has no attention choice
        yield


@contextmanager
def bf16_frozen_weights(model: CausalLM) -> Iterator[None]:
    """bf16 copies of ``model``'s frozen floating parameters inside the block; the float32 tensors come back after
    bit for bit. Trainable parameters are never touched: they are the float32 master weights."""
    with bf16_weights(model, frozen_only=True):
        yield
