"""The one place that decides where neural work runs (CUDA when present, else CPU) and in which precision."""

from __future__ import annotations

import functools
from pathlib import Path

from core import config


@functools.cache
def pick_device() -> str:
    """``CURATE_DEVICE`` if set, else ``cuda`` when a GPU is visible, else ``cpu``."""
    override = config.device_override()
    if override:
        return override
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX), where bf16 autocast is ~1.7x faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def cpu_has_onednn_bf16() -> bool:
    """True when torch's oneDNN backend has bf16 kernels on this CPU (its prepacked products need them)."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


PRECISIONS = ("auto", "bf16", "fp32")


def resolved_precision(precision: str, device: str) -> str:
    """``bf16`` or ``fp32``: what ``precision`` (auto, bf16 or fp32) means on ``device``. Every cache key of a
    model pass holds this, never ``auto``, so one key never stands for two precisions."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "auto":
        return "bf16" if use_bf16(device) else "fp32"
    return precision


def use_bf16(device: str) -> bool:
    """Whether neural inference on ``device`` should run in bf16 (``CURATE_PRECISION`` can force it)."""
    precision = config.precision_override()
    if precision != "auto":
        return precision == "bf16"
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()
