"""Greedy generation from a chat model: the evaluation's answers and the iterative loops' responses.

Prompts are rendered as the scorers render them (:func:`core.models.passes.user_turn` through the chat
template, with the assistant header appended), so a generated answer continues exactly where a scored
reference response starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.models.passes import chat_ids, eval_mode, pad_token_id, user_turn

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedTokenizerBase

    from core.models.lm import CausalLM


def prompt_ids(tokenizer: PreTrainedTokenizerBase, user_text: str) -> list[int]:
    """The chat-template ids of one user turn, ending with the assistant header the answer follows."""
    return chat_ids(tokenizer, [{"role": "user", "content": user_text}], generation_prompt=True)


def stop_ids(model: CausalLM, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The model's configured end tokens plus the tokenizer's: a base model's generation config may name only
    ``<|endoftext|>`` while the chat template ends a turn with another token; without it generation would
    run past the answer to ``max_new_tokens`` and add numbers after it."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(configured) if isinstance(configured, list | tuple) else [configured]
    return sorted({token for token in [*ids, tokenizer.eos_token_id] if token is not None})


def generate(
    model: CausalLM, tokenizer: PreTrainedTokenizerBase, rows: Sequence[Any], max_length: int, max_new_tokens: int
) -> list[str]:
    """Greedy answers to a batch of rows with ``instruction`` and ``input`` (evaluation rows, data-frame tuples),
    from the last ``max_length`` prompt tokens, decoded from the new tokens only.

    The batch is padded on the left by hand rather than by flipping ``tokenizer.padding_side``: the
    tokenizer is shared (the app caches one per model), and a temporary change would race with other users.
    The caller sets eval mode and ``torch.inference_mode``.
    """
    import torch

    prompts = [prompt_ids(tokenizer, user_turn(row.instruction, row.input))[-max_length:] for row in rows]
    pad_id = pad_token_id(tokenizer)
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention_mask[row, width - len(prompt) :] = 1
    device = next(model.parameters()).device
    # PreTrainedModel's type has no generate(): each causal-LM class mixes GenerationMixin in (peft forwards it)
    output = model.generate(  # type: ignore[operator]
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad_id,
        eos_token_id=stop_ids(model, tokenizer),
    )
    return tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)


def generate_responses(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    prompts: pd.DataFrame,
    max_new_tokens: int,
    batch_size: int = 8,
    max_length: int = 512,
) -> list[str]:
    """Greedy responses to the (instruction, input) rows of ``prompts``, ``batch_size`` prompts at a time."""
    import torch

    rows = list(prompts[["instruction", "input"]].itertuples(index=False))
    texts: list[str] = []
    with eval_mode(model), torch.inference_mode():
        for begin in range(0, len(rows), batch_size):
            texts += generate(model, tokenizer, rows[begin : begin + batch_size], max_length, max_new_tokens)
    return texts
