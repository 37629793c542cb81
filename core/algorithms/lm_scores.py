"""Response losses from a causal LM: chat rendering with a response-only mask, and batched mean NLL.

ALGORITHMS.md section 1: (instruction, input) is the user turn and the output the assistant turn; the
loss is the mean NLL over the response tokens only. For IFD the response is also scored "alone": rendered
as a lone assistant message through the same template (so still after the template's header, as IterIT
does), over exactly the same response tokens. Long examples are cut to ``max_length`` tokens and the cut
is recorded.

Batches hold sequences of similar length (sorted, filled up to a token budget), and only the hidden
states at response positions go through the LM head: the full (batch x length x vocabulary) logits of a
49k-token vocabulary would cost more memory than the model itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class RenderedPair:
    """Token ids of one example, rendered twice, with the span of response tokens scored in both."""

    conditional: list[int]
    conditional_start: int
    unconditional: list[int]
    unconditional_start: int
    n_response: int
    truncated: bool


def user_turn(instruction: str, input_text: str) -> str:
    """The user message: the instruction, then the input after a blank line when there is one."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def _template(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # newer tokenizers return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def render_pair(tokenizer: Any, instruction: str, input_text: str, output: str, max_length: int) -> RenderedPair:
    """Render (instruction, input) -> output for the conditional and the response-alone passes."""
    user = {"role": "user", "content": user_turn(instruction, input_text)}
    assistant = {"role": "assistant", "content": output}
    prompt = _template(tokenizer, [user], generation_prompt=True)
    full = _template(tokenizer, [user, assistant])
    response = full[len(prompt) :] if full[: len(prompt)] == prompt else _tokens(tokenizer, output)
    alone = _template(tokenizer, [assistant])
    header = alone[: len(alone) - len(response)] if alone[len(alone) - len(response) :] == response else alone
    keep = max(1, min(len(response), max_length // 2))
    truncated = len(prompt) + len(response) > max_length
    if truncated and len(prompt) > max_length - keep:
        prompt = prompt[-(max_length - keep) :]  # keep the end of a long prompt, next to the response
    n = max(1, min(len(response), max_length - len(prompt))) if response else 0
    return RenderedPair(prompt + response[:n], len(prompt), header + response[:n], len(header), n, truncated)


def _tokens(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


Sequence3 = tuple[list[int], int, int]


def _batches(lengths: np.ndarray, token_budget: int, max_batch: int) -> list[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    batches: list[list[int]] = [[]]
    for index in order:
        longest = max(lengths[index], max((lengths[i] for i in batches[-1]), default=0))
        if batches[-1] and (longest * (len(batches[-1]) + 1) > token_budget or len(batches[-1]) >= max_batch):
            batches.append([])
        batches[-1].append(int(index))
    return [np.array(batch) for batch in batches if batch]


def response_nll(
    model: Any,
    sequences: Sequence[Sequence3],
    *,
    pad_id: int,
    token_budget: int = 4096,
    max_batch: int = 16,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Mean NLL of ``ids[start:start+n]`` given the tokens before it, for each (ids, start, n); NaN when n = 0."""
    import torch

    result = np.full(len(sequences), np.nan, dtype=np.float64)
    lengths = np.array([len(ids) for ids, _, _ in sequences])
    device = next(model.parameters()).device
    with torch.inference_mode():
        for batch in _batches(lengths, token_budget, max_batch):
            width = int(lengths[batch].max())
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                ids[row, : lengths[index]] = torch.tensor(sequences[index][0])
                mask[row, : lengths[index]] = 1
            hidden = _hidden_states(model, ids.to(device), mask.to(device))
            for row, index in enumerate(batch):
                tokens, start, n = sequences[index]
                if n > 0:
                    result[index] = _span_nll(model, hidden[row, start - 1 : start - 1 + n], tokens[start : start + n])
            if progress:
                progress(len(batch))
    return result


def _hidden_states(model: Any, ids: Any, mask: Any) -> Any:
    base = model.base_model if model.base_model is not model else None
    if base is None:  # a model without a separate head: fall back to full logits
        return model(input_ids=ids, attention_mask=mask).logits
    return base(input_ids=ids, attention_mask=mask).last_hidden_state


def _span_nll(model: Any, states: Any, targets: list[int]) -> float:
    import torch

    logits = states if states.shape[-1] == model.config.vocab_size else model.get_output_embeddings()(states)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs[torch.arange(len(targets)), torch.tensor(targets, device=log_probs.device)]
    return float(-picked.mean())
