"""LM passes on chat-rendered examples: rendering, training batches, response NLL and IFD.

docs/algorithms.md section 1: (instruction, input) is the user turn and the output the assistant turn; the
loss is the mean NLL over the response tokens only. For IFD the response is also scored "alone": rendered
as a lone assistant message through the same template (so still after the template's header, as IterIT
does), over exactly the same response tokens. Long examples are cut to ``max_length`` tokens and the cut
is recorded. An empty or whitespace-only response (:func:`is_empty_response`) has no answer to score: its
rendering would hold the template's end-of-turn token alone, so the scoring passes leave it out and give it
no value (NaN) rather than a number about that one token. Training renders the same way (:func:`render_examples`), so the trainer, the scorers, the
evaluation and the gradient features all see one tokenisation. Greedy generation is in
:mod:`core.models.generation`.

In the fast pass on a CPU the scored sequences go back to back into rows of up to a token budget, with no
padding (:func:`core.models.fast.packed_sequences`); elsewhere batches hold sequences of similar length
(sorted, filled up to the budget, padded). Only the hidden states at response positions go through the LM
head: the full (batch x length x vocabulary) logits of a 49k-token vocabulary would cost more memory than
the model itself.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from core.models.lm import CausalLM

IGNORE = -100
"""The label of a token the training loss skips (the ``ignore_index`` of PyTorch's cross-entropy)."""


Template = Literal["chat", "alpaca"]
"""How an example becomes text: the model's chat template (ours), or the Alpaca prompt Cherry's code uses."""

Truncation = Literal["keep_response", "skip", "cut_response"]
"""What a too-long example loses (docs/algorithms.md 1.1): ``keep_response`` (ours) cuts the prompt's start and
keeps at least half the response; ``skip`` scores no such row (NaN); ``cut_response`` keeps the prompt and cuts
the response's end, as the IterIT and Cherry code do."""

TEMPLATES: tuple[str, ...] = ("chat", "alpaca")
TRUNCATIONS: tuple[str, ...] = ("keep_response", "skip", "cut_response")

ALPACA_PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)
ALPACA_ALONE_HEADER = "### Response:"
"""What Cherry's code puts before the response scored alone: the prompt's last line, no instruction."""

CHERRY_ALONE_MARGIN = 2
"""Cherry's code gives the response-alone text a window of ``max_length - prompt tokens - 2`` tokens (its
comment: an estimate, for Llama, of what ``### Response:`` adds), so on a cut row the alone span is a few
tokens shorter than the conditioned one. Kept to port its numbers exactly."""


@dataclasses.dataclass(frozen=True)
class RenderedPair:
    """Token ids of one example, rendered twice, with the span of response tokens scored in each.

    ``n_response`` tokens from ``conditional_start`` and ``n_alone`` from ``unconditional_start``: the same
    tokens under the chat template, and under ``alpaca`` the response as Cherry tokenises it in each text.
    Both are 0 for a row the truncation rule leaves unscored."""

    conditional: list[int]
    conditional_start: int
    unconditional: list[int]
    unconditional_start: int
    n_response: int
    truncated: bool
    n_alone: int


def is_empty_response(text: str) -> bool:
    """An empty or whitespace-only response: the one rule every scorer, pass and strategy uses for "empty"."""
    return not text.strip()


def empty_responses(texts: Iterable[str]) -> np.ndarray:
    """A boolean mask: True where the response is empty (:func:`is_empty_response`)."""
    return np.array([is_empty_response(text) for text in texts], dtype=bool)


def user_turn(instruction: str, input_text: str) -> str:
    """The user message: the instruction, then the input after a blank line when there is one."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def chat_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation_prompt: bool = False
) -> list[int]:
    """Token ids of ``messages`` through the tokenizer's chat template."""
    # a list of ids, or a BatchEncoding from newer tokenizers (the stubs' union also has text, never given here)
    ids: Any = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # newer tokenizers return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def render_pair(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    input_text: str,
    output: str,
    max_length: int,
    *,
    template: Template = "chat",
    truncation: Truncation = "keep_response",
) -> RenderedPair:
    """Render (instruction, input) -> output for the conditional and the response-alone passes."""
    if template not in TEMPLATES:
        raise ValueError(f"template must be chat or alpaca, not {template!r}")
    if template == "alpaca":
        prompt, response, header, alone = _alpaca_parts(tokenizer, instruction, input_text, output)
    else:
        prompt, response, header, alone = _chat_parts(tokenizer, instruction, input_text, output)
    return _truncate(prompt, response, header, alone, max_length, truncation, cherry=template == "alpaca")


def _chat_parts(
    tokenizer: PreTrainedTokenizerBase, instruction: str, input_text: str, output: str
) -> tuple[list[int], list[int], list[int], list[int]]:
    """(prompt, response, alone header, response): the user turn, then the assistant turn; alone, the
    assistant turn as a lone message, so still after the template's header (IterIT)."""
    user = {"role": "user", "content": user_turn(instruction, input_text)}
    assistant = {"role": "assistant", "content": output}
    prompt = chat_ids(tokenizer, [user], generation_prompt=True)
    full = chat_ids(tokenizer, [user, assistant])
    response = full[len(prompt) :] if full[: len(prompt)] == prompt else _tokens(tokenizer, output)
    alone = chat_ids(tokenizer, [assistant])
    header = alone[: len(alone) - len(response)] if alone[len(alone) - len(response) :] == response else alone
    return prompt, response, header, response


def alpaca_prompt(instruction: str, input_text: str) -> str:
    """Cherry's Alpaca prompt, ending in ``### Response:``; the input section only for a non-empty input."""
    if input_text == "":  # Cherry's own test: a whitespace-only input still gets its section
        return ALPACA_PROMPT_NO_INPUT.format_map({"instruction": instruction})
    return ALPACA_PROMPT_INPUT.format_map({"instruction": instruction, "input": input_text})


def _alpaca_parts(
    tokenizer: PreTrainedTokenizerBase, instruction: str, input_text: str, output: str
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Cherry's tokens: prompt + response tokenised as one text, the response starting where the prompt's
    own tokens end; alone, ``### Response:`` + response as plain text. ``encode`` adds what the tokenizer
    adds by default (a BOS for Llama, nothing for SmolLM2), as Cherry's calls do."""
    prompt_text = alpaca_prompt(instruction, input_text)
    full = list(tokenizer.encode(prompt_text + output))
    start = len(tokenizer.encode(prompt_text))
    alone = list(tokenizer.encode(ALPACA_ALONE_HEADER + output))
    header = len(tokenizer.encode(ALPACA_ALONE_HEADER))
    return full[:start], full[start:], alone[:header], alone[header:]


def _truncate(
    prompt: list[int],
    response: list[int],
    header: list[int],
    alone: list[int],
    max_length: int,
    truncation: Truncation,
    cherry: bool,
) -> RenderedPair:
    """Fit the conditioned rendering into ``max_length`` tokens by ``truncation`` (see :data:`Truncation`)."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be keep_response, skip or cut_response, not {truncation!r}")
    truncated = len(prompt) + len(response) > max_length
    if truncation == "skip" and truncated:  # not scored: a guess at the cut-off part would not be the row's
        return RenderedPair(prompt, len(prompt), header, len(header), 0, True, 0)
    if truncation == "cut_response":
        n = max(0, min(len(response), max_length - len(prompt)))
        window = max_length - len(prompt) - CHERRY_ALONE_MARGIN - len(header) if cherry else n
        n_alone = max(0, min(len(alone), window))
    else:
        keep = max(1, min(len(response), max_length // 2))
        if truncated and len(prompt) > max_length - keep:
            prompt = prompt[-(max_length - keep) :]  # keep the end of a long prompt, next to the response
        n = max(1, min(len(response), max_length - len(prompt))) if response else 0
        n_alone = min(n, len(alone))
    return RenderedPair(
        prompt + response[:n], len(prompt), header + alone[:n_alone], len(header), n, truncated, n_alone
    )


def _tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its end-of-sequence token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


# ---------------------------------------------------------------------------------------------------
# Training batches: the conditional rendering with labels on the response tokens only
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainExample:
    """One example as training sees it: token ids, and labels that are IGNORE off the response tokens."""

    ids: list[int]
    labels: list[int]


def render_examples(tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int) -> list[TrainExample]:
    """Token ids with labels on the response tokens only (IGNORE elsewhere)."""
    rendered = []
    for instruction, input_text, output in zip(frame.instruction, frame.input, frame.output, strict=True):
        pair = render_pair(tokenizer, instruction, input_text, output, max_length)
        labels = [IGNORE] * pair.conditional_start + pair.conditional[pair.conditional_start :]
        rendered.append(TrainExample(pair.conditional, labels))
    return rendered


def collate(batch: list[TrainExample], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (IGNORE on the padding) of a micro-batch."""
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


# ---------------------------------------------------------------------------------------------------
# Response NLL: batched, over response tokens only, with the shared prefix computed once
# ---------------------------------------------------------------------------------------------------


Sequence3 = tuple[list[int], int, int]

MIN_SHARED_PREFIX = 8


def shared_prefix(sequences: Sequence[Sequence3]) -> list[int]:
    """The token prefix whose single pass saves the most work (length x sequences sharing it): the chat
    template's system turn, which every rendering repeats. It ends before each sharer's scored span."""
    firsts = [ids[0] for ids, _, _ in sequences if ids]
    if not firsts:
        return []
    first = max(set(firsts), key=firsts.count)
    members = [seq for seq in sequences if seq[0] and seq[0][0] == first]
    reference = members[0][0]
    best, best_saving, length = 0, 0, 1
    while len(members) >= 2 and length < len(reference):
        if length >= MIN_SHARED_PREFIX and length * len(members) > best_saving:
            best, best_saving = length, length * len(members)
        # the position before the first scored token stays outside the prefix: its hidden state is needed
        members = [
            seq
            for seq in members
            if len(seq[0]) > length and seq[0][length] == reference[length] and seq[1] - 1 > length + 1
        ]
        length += 1
    return list(reference[:best])


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
    model: CausalLM,
    sequences: Sequence[Sequence3],
    *,
    pad_id: int,
    token_budget: int = 4096,
    max_batch: int = 16,
    bf16: bool = False,
    share_prefix: bool = True,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Mean NLL of ``ids[start:start+n]`` given the tokens before it, for each (ids, start, n); NaN when n = 0.

    ``bf16`` runs the passes in :func:`core.models.fast.fast_pass` (bf16 weights and, on a CPU, the chunked
    attention); otherwise the model runs as loaded. With ``share_prefix`` the prefix most sequences share (the
    template's system turn) runs once and its key/value cache is reused by every batch, at the same
    positions, so the losses are those of the full sequences. The LM head and the loss go together over the
    response positions of a whole batch (:func:`core.models.fast.head_nll`).
    """
    import torch

    from core.models.fast import fast_pass, packs

    model = unwrapped(model)
    result = np.full(len(sequences), np.nan, dtype=np.float64)
    device = next(model.parameters()).device
    spans = [i for i, (_, _, n) in enumerate(sequences) if n > 0]  # no span (a skipped row): NaN, no pass
    if progress and len(spans) < len(sequences):
        progress(len(sequences) - len(spans))
    prefix = shared_prefix([sequences[i] for i in spans]) if share_prefix and _has_base(model) else []
    with_prefix = [i for i in spans if _starts_with(sequences[i][0], prefix, sequences[i][1])]
    rest = sorted(set(spans) - set(with_prefix)) if prefix else spans
    with torch.inference_mode(), fast_pass(model, bf16):
        cache = _prefix_cache(model, prefix, device) if prefix and with_prefix else None
        group_nll = _packed_nll if packs(model) and _has_base(model) else _group_nll
        for group, shared in ((with_prefix, prefix), (rest, [])):
            if not group:
                continue
            subset = [sequences[i] for i in group]
            for batch, values in group_nll(model, subset, shared, cache, pad_id, token_budget, max_batch, device):
                result[np.asarray(group)[batch]] = values
                if progress:
                    progress(len(batch))
    return result


def unwrapped(model: CausalLM) -> PreTrainedModel:
    """A peft model's ``get_base_model()`` (its ``base_model`` is peft's wrapper; this one holds the LoRA
    layers), else the model itself."""
    get_base_model = getattr(model, "get_base_model", None)
    return cast("PreTrainedModel", model if get_base_model is None else get_base_model())


def _has_base(model: PreTrainedModel) -> bool:
    return model.base_model is not model


def _starts_with(ids: list[int], prefix: list[int], start: int) -> bool:
    return bool(prefix) and start - 1 > len(prefix) and ids[: len(prefix)] == prefix


def _prefix_cache(model: PreTrainedModel, prefix: list[int], device: Any) -> Any:
    import torch

    return model.base_model(input_ids=torch.tensor([prefix], device=device), use_cache=True).past_key_values


def _group_nll(
    model: PreTrainedModel,
    sequences: list[Sequence3],
    prefix: list[int],
    cache: Any,
    pad_id: int,
    token_budget: int,
    max_batch: int,
    device: Any,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (batch indices, mean NLLs) over length-sorted batches of sequences that all start with ``prefix``."""
    import torch

    skip = len(prefix)
    lengths = np.array([len(ids) - skip for ids, _, _ in sequences])
    for batch in _batches(lengths, token_budget, max_batch):
        width = int(lengths[batch].max())
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), skip + width), dtype=torch.long)
        mask[:, :skip] = 1
        for row, index in enumerate(batch):
            ids[row, : lengths[index]] = torch.tensor(sequences[index][0][skip:])
            mask[row, skip : skip + lengths[index]] = 1
        hidden = _hidden_states(model, ids.to(device), mask.to(device), cache, skip)
        yield batch, _batch_nll(model, hidden, [sequences[index] for index in batch], skip)


def _packs(lengths: np.ndarray, token_budget: int) -> list[np.ndarray]:
    """Rows of sequences back to back, each up to ``token_budget`` tokens (a longer sequence alone), in order."""
    rows: list[list[int]] = [[]]
    filled = 0
    for index, length in enumerate(lengths):
        if rows[-1] and filled + length > token_budget:
            rows.append([])
            filled = 0
        rows[-1].append(index)
        filled += int(length)
    return [np.array(row) for row in rows if row]


def _packed_nll(
    model: PreTrainedModel,
    sequences: list[Sequence3],
    prefix: list[int],
    cache: Any,
    pad_id: int,
    token_budget: int,
    max_batch: int,
    device: Any,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`_group_nll` with no padding: the sequences (after ``prefix``) go back to back into rows of up to
    ``token_budget`` tokens, each attending to the prefix and to itself only
    (:func:`core.models.fast.packed_sequences`). Padding was a fifth of the tokens of length-sorted batches
    of a few hundred sequences. A model whose pass misses the packed attention gets padded batches instead."""
    from core.models.fast import PackingMissed

    skip = len(prefix)
    lengths = np.array([len(ids) - skip for ids, _, _ in sequences])
    rows = _packs(lengths, token_budget)
    for number, row in enumerate(rows):
        try:
            hidden = _packed_hidden(model, [sequences[index][0][skip:] for index in row], cache, skip, device)
        except PackingMissed:
            left = np.concatenate(rows[number:])
            subset = [sequences[index] for index in left]
            for batch, values in _group_nll(model, subset, prefix, cache, pad_id, token_budget, max_batch, device):
                yield left[batch], values
            return
        starts = np.concatenate([[0], np.cumsum(lengths[row])[:-1]])
        yield row, _batch_nll(model, hidden, [sequences[index] for index in row], skip, starts.tolist())


def _packed_hidden(model: PreTrainedModel, tokens: list[list[int]], cache: Any, skip: int, device: Any) -> Any:
    """The last hidden states (1, total, h) of ``tokens`` packed in one row after the cached ``skip`` prefix
    tokens, each sequence at its own positions (from ``skip``)."""
    import torch

    from core.models.fast import packed_sequences

    sizes = [len(part) for part in tokens]
    ids = torch.tensor([[token for part in tokens for token in part]], device=device)
    positions = torch.cat([torch.arange(skip, skip + size) for size in sizes])[None].to(device)
    bounds = torch.tensor([0, *np.cumsum(sizes).tolist()])
    mask = torch.ones((1, skip + ids.shape[1]), dtype=torch.long, device=device)  # all real: no padding here
    past = None
    if cache is not None and skip:
        past = copy.deepcopy(cache)  # the forward pass appends to the cache it is given
    with packed_sequences(bounds, getattr(model.config, "num_hidden_layers", None)):
        output = model.base_model(
            input_ids=ids, attention_mask=mask, past_key_values=past, position_ids=positions, use_cache=past is not None
        )
    return output.last_hidden_state


def _batch_nll(
    model: PreTrainedModel, hidden: Any, sequences: list[Sequence3], skip: int, starts: list[int] | None = None
) -> np.ndarray:
    """Mean NLL of each row's span, the head applied once to the span positions of every row together.

    ``starts``: the sequences are packed in one row of ``hidden``, sequence i from position ``starts[i]``."""
    import torch

    rows = [0 if starts else row for row, (_, _, n) in enumerate(sequences) for _ in range(n)]
    shift = starts or [0] * len(sequences)
    positions = [  # the state before each token
        shift[row] + start - skip - 1 + k for row, (_, start, n) in enumerate(sequences) for k in range(n)
    ]
    targets = [token for tokens, start, n in sequences for token in tokens[start : start + n]]
    values = np.full(len(sequences), np.nan)
    if not targets:
        return values
    device = hidden.device
    states = hidden[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]
    nll = _head_nll(model, states, torch.tensor(targets, device=device)).double().cpu().numpy()
    counts = np.array([n for _, _, n in sequences])
    scored = counts > 0
    values[scored] = np.add.reduceat(nll, np.cumsum(counts)[scored] - counts[scored]) / counts[scored]
    return values


def _head_nll(model: PreTrainedModel, states: Any, targets: Any) -> Any:
    """Per-position NLL through the model's LM head (``states`` are logits already for a model without one)."""
    from core.models.fast import head_nll

    head = model.get_output_embeddings() if _has_base(model) else None
    return head_nll(states, head if head is not None else (lambda logits: logits), targets)


def _hidden_states(model: PreTrainedModel, ids: Any, mask: Any, cache: Any = None, skip: int = 0) -> Any:
    import torch

    if not _has_base(model):  # a model without a separate head: fall back to full logits
        return model(input_ids=ids, attention_mask=mask).logits
    if cache is None or skip == 0:
        return model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    past = copy.deepcopy(cache)  # the forward pass appends to the cache it is given
    past.batch_repeat_interleave(ids.shape[0])
    positions = torch.arange(skip, skip + ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
    output = model.base_model(input_ids=ids, attention_mask=mask, past_key_values=past, position_ids=positions)
    return output.last_hidden_state


# ---------------------------------------------------------------------------------------------------
# Passes with an in-memory model (the one being trained, or one loaded by a scorer), and IFD
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: CausalLM) -> Iterator[None]:
    """Eval mode (no dropout) for scoring, restored per module afterwards: a peft model keeps its frozen
    parts in their own mode, so one ``model.train()`` afterwards would not restore it."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def ifd_sequences(pairs: Sequence[RenderedPair]) -> list[Sequence3]:
    """Every pair's response given its prompt, then every response alone: both passes in one pool, since
    batches of similar length pack better and share one prefix cache."""
    sequences = [(p.conditional, p.conditional_start, p.n_response) for p in pairs]
    return sequences + [(p.unconditional, p.unconditional_start, p.n_alone) for p in pairs]


def ifd_from_nll(nll: np.ndarray, form: str = "ppl_ratio") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IFD, conditional NLL, alone NLL) from the NLLs of :func:`ifd_sequences`.

    ``ppl_ratio``: exp(NLL(response | prompt) - NLL(response alone)) (IterIT, Superfiltering); ``loss_ratio``:
    the ratio of the mean losses (the Cherry paper). Both agree on the IFD < 1 threshold.
    """
    if form not in ("ppl_ratio", "loss_ratio"):
        raise ValueError(f"IFD form must be ppl_ratio or loss_ratio, not {form!r}")
    half = len(nll) // 2
    conditional, alone = nll[:half], nll[half:]
    ifd = np.exp(conditional - alone) if form == "ppl_ratio" else conditional / alone
    return ifd, conditional, alone


def response_nlls(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    examples: pd.DataFrame,
    outputs: list[str],
    max_length: int,
    precision: str = "fp32",
) -> np.ndarray:
    """Mean NLL (= log PPL) of each ``outputs[i]`` as the answer to row i's prompt, under ``model``, at
    ``precision`` (auto, bf16: :func:`core.models.fast.fast_pass`; fp32: the model as it is)."""
    prompts = zip(examples.instruction, examples.input, outputs, strict=True)
    pairs = [render_pair(tokenizer, i, x, o, max_length) for i, x, o in prompts]
    with eval_mode(model):
        return response_nll(
            model,
            [(p.conditional, p.conditional_start, p.n_response) for p in pairs],
            pad_id=pad_token_id(tokenizer),
            bf16=_bf16(model, precision),
        )


def ifd_scores(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    examples: pd.DataFrame,
    max_length: int = 512,
    precision: str = "fp32",
) -> np.ndarray:
    """IFD (``ppl_ratio``) of each row, as :class:`core.score.scorers.IFDScorer` computes it, but with an
    in-memory model (the one being trained) rather than one loaded by name, at ``precision`` (as for
    :func:`response_nlls`). NaN for an empty response."""
    scored = ~empty_responses(examples.output)
    result = np.full(len(examples), np.nan)
    rows = zip(examples.instruction[scored], examples.input[scored], examples.output[scored], strict=True)
    pairs = [render_pair(tokenizer, i, x, o, max_length) for i, x, o in rows]
    if pairs:
        with eval_mode(model):
            nll = response_nll(
                model, ifd_sequences(pairs), pad_id=pad_token_id(tokenizer), bf16=_bf16(model, precision)
            )
        result[scored] = ifd_from_nll(nll)[0]
    return result


def _bf16(model: CausalLM, precision: str) -> bool:
    """Whether ``precision`` means bf16 on the device ``model`` sits on."""
    from core.models.device import resolved_precision

    return resolved_precision(precision, str(next(model.parameters()).device)) == "bf16"
