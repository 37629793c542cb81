"""The base model's final-layer hidden states, position-weighted mean pooled: the RDS+ features
(docs/algorithms.md 4.10).

Each example is rendered as every LM pass renders it (:func:`core.models.passes.render_pair`: the user turn
and the response through the model's chat template, cut to ``max_length`` tokens), run through the model
without its LM head, and its final-layer states averaged with weights that grow with the position: token i of
n real tokens (1-based) weighs i / (1 + 2 + ... + n), so later tokens, which have seen more of the example,
count more (SGPT's pooling, which RDS+ adopts). The pooled vector is L2-normalised.

Examples are sorted by length and batched with right padding up to a token budget. Padding counts nowhere:
its weight is zero, and under the causal mask no real token attends to a pad on its right, so a padded
example's features equal those of the example alone (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from core.models.passes import pad_token_id, render_pair, unwrapped

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from transformers import PreTrainedTokenizerBase

    from core.models.lm import CausalLM

# Padded tokens and examples per forward pass. On a CPU larger passes gain nothing; on a GPU they do: with a
# SmolLM2-135M-shaped model in bf16 on an H200 (2026-12-04, 4,000 sample rows, byte tokens, up to 2048), 8,192
# tokens / 16 rows gave 138 rows/s, 65,536 / 128 gave 679 rows/s at 2.4 GB, 131,072 / 256 697 rows/s at 4.5 GB.
TOKEN_BUDGET = 8192
MAX_BATCH = 16
CUDA_TOKEN_BUDGET = 65536
CUDA_MAX_BATCH = 128


def rendered_ids(tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int) -> list[list[int]]:
    """Token ids of each row (instruction, input -> output) as the LM passes render it, prompt and response."""
    rows = zip(frame.instruction, frame.input, frame.output, strict=True)
    return [render_pair(tokenizer, i, x, o, max_length).conditional for i, x, o in rows]


def position_weights(mask: torch.Tensor) -> torch.Tensor:
    """(b, L) float32 weights from an attention mask: real token i (1-based) gets i / sum_j j, padding 0."""
    positions = (mask.cumsum(dim=1) * mask).float()
    return positions / positions.sum(dim=1, keepdim=True)


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b, d) float32: the position-weighted mean of ``hidden`` (b, L, d) over the real tokens, L2-normalised."""
    import torch

    # zeroed, not only weighted zero: a kernel may leave anything at a pad position, and 0 * nan is nan
    states = hidden.float().masked_fill(mask.unsqueeze(-1) == 0, 0.0)
    pooled = (states * position_weights(mask).unsqueeze(-1)).sum(dim=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def final_hidden_states(model: CausalLM, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b, L, d) final-layer hidden states (after the model's last norm, as ``hidden_states[-1]``), computed by
    the model's body alone: the LM head's (b, L, vocabulary) logits would cost more than the whole pass."""
    network = unwrapped(model)
    body = network.base_model
    if body is network:  # no separate body: ask the whole model for its hidden states
        return network(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    return body(input_ids=ids, attention_mask=mask).last_hidden_state


def length_batches(lengths: list[int], token_budget: int, max_batch: int) -> list[list[int]]:
    """Indices grouped longest first, each batch's padded size (width x rows) within ``token_budget``."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else []
        width = lengths[current[0]] if current else lengths[index]  # the first of a batch is its longest
        if not current or len(current) >= max_batch or width * (len(current) + 1) > token_budget:
            batches.append([index])
        else:
            current.append(index)
    return batches


def pooled_hidden_states(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    *,
    max_length: int,
    bf16: bool = False,
    token_budget: int | None = None,
    max_batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(rows, d) float32 unit vectors, one per row of ``frame`` (instruction, input, output), in its order.

    ``bf16`` runs the forward passes in :func:`core.models.fast.fast_pass` (bf16 weights and, on a CPU, the
    chunked attention; the pooling stays float32); ``token_budget`` and ``max_batch`` bound a pass (default:
    the device's, above); ``progress`` is told how many rows each batch finished.
    """
    import torch

    from core.models.fast import fast_pass

    sequences = rendered_ids(tokenizer, frame, max_length)
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    token_budget = token_budget or (CUDA_TOKEN_BUDGET if cuda else TOKEN_BUDGET)
    max_batch = max_batch or (CUDA_MAX_BATCH if cuda else MAX_BATCH)
    pad = pad_token_id(tokenizer)
    result: np.ndarray | None = None
    with torch.inference_mode(), fast_pass(model, bf16):
        for batch in length_batches([len(s) for s in sequences], token_budget, max_batch):
            ids, mask = _padded([sequences[i] for i in batch], pad)
            ids, mask = ids.to(device), mask.to(device)
            vectors = pool(final_hidden_states(model, ids, mask), mask).cpu().numpy()
            if result is None:
                result = np.zeros((len(sequences), vectors.shape[1]), dtype=np.float32)
            result[batch] = vectors
            if progress:
                progress(len(batch))
    return result if result is not None else np.zeros((0, 0), dtype=np.float32)


def _padded(sequences: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask."""
    import torch

    width = max(len(ids) for ids in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, tokens in enumerate(sequences):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return ids, mask
