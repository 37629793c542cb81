"""Evaluate a causal LM (a base model or the same model with a fine-tuned adapter) on a held-out set.

Two numbers answer "did fine-tuning on this selection help?":

- *response loss*: the mean NLL of each reference output given its prompt, over the response tokens
  only. It is computed by the same code as the perplexity scorer (``core.models.passes``), so a
  base model and its adapter are measured identically, and it needs no generation, so it is cheap.
- *accuracy*: for rows that carry a gold ``answer`` (a GSM8K number, an MMLU letter), the model answers
  greedily, the final answer is extracted from its text and compared with the gold one.

An evaluation file has the shape of training data (``instruction``, optional ``input``, ``output``) plus
an optional ``answer`` and an optional ``id``. This module never touches storage; the caller caches a
result under :func:`eval_key` (the base model is evaluated once per set).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import IngestError
from core.ingest import Example, read_dataset

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from core.models.lm import CausalLM

ANSWER_KINDS = ("number", "choice", "exact")


@dataclasses.dataclass(frozen=True)
class EvalRow:
    """One evaluation example; ``answer`` is the gold final answer, None when the row has none."""

    id: str
    instruction: str
    input: str
    output: str
    answer: str | None


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """An evaluation file as read: its name (the file stem), where it is, the SHA-256 of its bytes, its rows."""

    name: str
    path: Path
    sha256: str
    rows: tuple[EvalRow, ...]


def load_eval_set(path: str | Path) -> EvalSet:
    """Read an evaluation file; a bad row raises :class:`IngestError` naming the file, line and field."""
    path = Path(path)
    try:
        result = read_dataset(path)
    except IngestError as exc:  # reworded: read_dataset's message says "nothing was stored", which is for datasets
        detail = re.sub(r"; nothing was stored\.[^)]*\)", ")", exc.detail).replace(" (nothing was stored)", "")
        detail = detail.replace(", so nothing was stored)", ")")
        raise IngestError(path, detail, exc.location, exc.field_name) from None
    rows: list[EvalRow] = []
    seen: dict[str, str] = {}
    for example in result.examples:
        row_id = _row_id(path, example)
        if row_id in seen:
            raise IngestError(path, f"duplicate id {row_id!r} (also at {seen[row_id]})", example.location, "id")
        seen[row_id] = example.location
        answer = _row_answer(path, example)
        rows.append(EvalRow(row_id, example.instruction, example.input, example.output, answer))
    return EvalSet(path.stem, path, result.file_sha256, tuple(rows))


def _row_id(path: Path, example: Example) -> str:
    """The file's own ``id`` (so results can be traced to the source), else the content-hash id."""
    value = example.original.get("id")
    if value is None:
        return example.example_id
    if isinstance(value, bool) or not isinstance(value, str | int):
        found = type(value).__name__
        raise IngestError(path, f"expected a string or an integer, found {found}", example.location, "id")
    if not str(value).strip():
        raise IngestError(path, "is empty", example.location, "id")
    return str(value)


def _row_answer(path: Path, example: Example) -> str | None:
    """``answer`` is not one of the fields read_dataset normalises, so it is taken from the original row."""
    value = example.original.get("answer")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        found = type(value).__name__
        raise IngestError(path, f"expected a string or a number, found {found}", example.location, "answer")
    if not str(value).strip():
        message = "is empty; leave the field out (or null) for a row without a gold answer"
        raise IngestError(path, message, example.location, "answer")
    return str(value).strip()


# A number as written in GSM8K: optional minus, optional thousands commas, optional decimals. It must not
# continue a word or a decimal ("x2", ".5"), and a minus right after a digit is an operator ("16-3").
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")
_GOLD_NUMBER = re.compile(r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\.?")
# The letter is upper-case unless parenthesised, so "the answer is a prime" is not read as (A).
_LETTER = r"(?:\(([A-Ea-e])\)|\b([A-E])\b)"
_ANSWER_PHRASE = re.compile(rf"(?i:answer)\s*(?:(?i:is)\s*)?:?\s*(?:(?i:option)\s*)?{_LETTER}")
_LEADING_LETTER = re.compile(r"\s*(?:\(([A-Ea-e])\)|([A-E])(?=[).:,]|[ \t]*(?:\n|$)))")
_PARENTHESISED_LETTER = re.compile(r"\(([A-E])\)")
_GOLD_CHOICE = re.compile(r"\(?[A-E]\)?")


def extract_answer(text: str, kind: str) -> str | None:
    """The final answer stated in ``text`` in canonical form, or None when there is none.

    ``number``: the first number after the last ``####`` when there is one, else the last number; commas,
    ``$`` and a trailing ``.`` are dropped and "18.0" becomes "18". ``choice``: a letter A-E from "the
    answer is (B)" / "answer: C", else a leading "B)", "(B)" or lone "B", else the first "(B)" anywhere.
    ``exact``: the text (after the last ``####`` if any), case-folded, spaces collapsed, end punctuation off.
    """
    if kind == "number":
        return _extract_number(text)
    if kind == "choice":
        return _extract_choice(text)
    if kind == "exact":
        return _normalise_text(text)
    raise ValueError(f"answer kind must be one of {ANSWER_KINDS}, not {kind!r}")


def _extract_number(text: str) -> str | None:
    if "####" in text:
        match = _NUMBER.search(text.rsplit("####", 1)[1].replace("$", ""))
        return _canonical_number(match.group()) if match else None
    numbers = _NUMBER.findall(text.replace("$", ""))
    return _canonical_number(numbers[-1]) if numbers else None


def _canonical_number(written: str) -> str:
    value = Decimal(written.replace(",", ""))
    if value == value.to_integral_value():
        return str(int(value))  # also turns "-0" into "0"
    return format(value.normalize(), "f")


def _extract_choice(text: str) -> str | None:
    stated = list(_ANSWER_PHRASE.finditer(text))
    # the last statement wins: a reasoning chain may mention other options before concluding
    match = stated[-1] if stated else _LEADING_LETTER.match(text) or _PARENTHESISED_LETTER.search(text)
    if match is None:
        return None
    return next(group for group in match.groups() if group).upper()


def _normalise_text(text: str) -> str | None:
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    normalised = " ".join(text.casefold().split()).strip(" .,;:!?\"'`")
    return normalised or None


def answer_kind(answers: Iterable[str | None]) -> str:
    """How a set's answers are compared: ``choice`` when every gold answer is a letter A-E, ``number`` when
    every one is a number, else ``exact``. Rows without an answer do not count."""
    golds = [answer.strip() for answer in answers if answer is not None]
    if golds and all(_GOLD_CHOICE.fullmatch(gold) for gold in golds):
        return "choice"
    if golds and all(_GOLD_NUMBER.fullmatch(gold) for gold in golds):
        return "number"
    return "exact"


def is_correct(prediction_text: str, gold: str, kind: str) -> bool:
    """Whether the answer extracted from a generated text equals the gold answer, both in canonical form."""
    predicted = extract_answer(prediction_text, kind)
    return predicted is not None and predicted == extract_answer(gold, kind)


@dataclasses.dataclass
class EvalResult:
    """What :func:`evaluate` measured. ``loss`` is None when no row had a response to score, ``accuracy``
    when no evaluated row had a gold answer (or generation was off)."""

    set_name: str
    set_sha256: str
    n: int
    loss: float | None
    perplexity: float | None
    accuracy: float | None
    n_answered: int
    answer_kind: str
    seconds: float
    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the per-example records, for storing as JSON."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "examples"}


def evaluate(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    eval_set: EvalSet,
    *,
    max_length: int = 512,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    limit: int | None = None,
    generate: bool = True,
    progress: Callable[[int], None] | None = None,
    precision: str = "fp32",
) -> EvalResult:
    """Response loss on every row and, with ``generate``, greedy-answer accuracy on rows with a gold answer.

    Parameters
    ----------
    model, tokenizer : a transformers causal LM (or a peft LoRA model around one) and its chat tokenizer.
    max_length : prompt + response tokens kept for the loss (longer rows are cut as the scorers cut them),
        and prompt tokens kept for generation (the end of the prompt, next to the answer, is kept).
    limit : evaluate only the first ``limit`` rows (a deterministic subset).
    precision : of the greedy answers (:func:`core.models.generation.greedy_decode`) and of the loss passes
        (bf16: the fast pass of :func:`core.models.fast.fast_pass`): fp32, bf16 or auto.
    progress : called after each batch of ``batch_size`` rows with the number of rows it held.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    import torch

    from core.models.passes import eval_mode

    rows = eval_set.rows[:limit] if limit is not None else eval_set.rows
    kind = answer_kind(row.answer for row in eval_set.rows)  # the whole set's, so a limit cannot change it
    started = time.perf_counter()
    with eval_mode(model), torch.inference_mode():
        nlls, predictions = _run(
            model, tokenizer, rows, max_length, max_new_tokens, batch_size, generate, progress, precision
        )
    return _result(eval_set, rows, nlls, predictions, kind, time.perf_counter() - started)


def _run(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[EvalRow],
    max_length: int,
    max_new_tokens: int,
    batch_size: int,
    generate: bool,
    progress: Callable[[int], None] | None,
    precision: str = "fp32",
) -> tuple[np.ndarray, dict[int, str]]:
    """Per-row NLLs and generated texts (by row index), one batch of rows at a time so progress is honest."""
    from core.models.generation import generate as generate_answers
    from core.models.passes import pad_token_id, render_pair, response_nll

    loss_model = _loss_model(model)
    loss_bf16 = _bf16(model, precision)
    pad_id = pad_token_id(tokenizer)
    nlls = np.full(len(rows), np.nan)
    predictions: dict[int, str] = {}
    for begin in range(0, len(rows), batch_size):
        batch = rows[begin : begin + batch_size]
        pairs = [render_pair(tokenizer, row.instruction, row.input, row.output, max_length) for row in batch]
        sequences = [(pair.conditional, pair.conditional_start, pair.n_response) for pair in pairs]
        nlls[begin : begin + len(batch)] = response_nll(
            loss_model, sequences, pad_id=pad_id, max_batch=batch_size, bf16=loss_bf16
        )
        answered = [begin + offset for offset, row in enumerate(batch) if row.answer is not None]
        if generate and answered:
            texts = generate_answers(
                model, tokenizer, [rows[i] for i in answered], max_length, max_new_tokens, precision=precision
            )
            predictions.update(zip(answered, texts, strict=True))
        if progress:
            progress(len(batch))
    return nlls, predictions


def _bf16(model: CausalLM, precision: str) -> bool:
    """Whether the loss passes run in bf16: the fast pass (:func:`core.models.fast.fast_pass`). Its head and
    loss apply to an adapted model too: LoRA adapts the body's layers, and the head runs as the module it is."""
    from core.models.device import resolved_precision

    return resolved_precision(precision, str(next(model.parameters()).device)) == "bf16"


def _loss_model(model: CausalLM) -> CausalLM:
    """response_nll reads hidden states from ``model.base_model``; on a peft model that is the tuner wrapper,
    whose forward returns logits. The transformers model underneath carries the injected LoRA layers, so
    scoring it scores the adapted model. Prompt-learning adapters live outside it and are refused."""
    from core.models.passes import unwrapped

    config = getattr(model, "active_peft_config", None)
    if config is None:
        return model
    if config.is_prompt_learning:
        raise ValueError(f"evaluating a {config.peft_type} adapter is not supported; use a LoRA adapter")
    return unwrapped(model)


def _result(
    eval_set: EvalSet,
    rows: Sequence[EvalRow],
    nlls: np.ndarray,
    predictions: dict[int, str],
    kind: str,
    seconds: float,
) -> EvalResult:
    examples: list[dict[str, Any]] = []
    for index, (row, nll) in enumerate(zip(rows, nlls, strict=True)):
        text = predictions.get(index)
        examples.append(
            {
                "id": row.id,
                "nll": float(nll) if np.isfinite(nll) else None,  # an empty output has no response tokens
                "prediction": text,
                "extracted": extract_answer(text, kind) if text is not None else None,
                "gold": row.answer,
                "correct": is_correct(text, row.answer, kind) if text is not None and row.answer is not None else None,
            }
        )
    finite = nlls[np.isfinite(nlls)]
    loss = float(finite.mean()) if finite.size else None
    graded = [example["correct"] for example in examples if example["correct"] is not None]
    return EvalResult(
        set_name=eval_set.name,
        set_sha256=eval_set.sha256,
        n=len(rows),
        loss=loss,
        perplexity=float(np.exp(loss)) if loss is not None else None,
        accuracy=float(np.mean(graded)) if graded else None,
        n_answered=len(graded),
        answer_kind=kind,
        seconds=seconds,
        examples=examples,
    )


def eval_key(model_id: str, adapter_hash: str | None, eval_set: EvalSet, params: dict[str, Any]) -> str:
    """A stable key for caching a result: the model, the adapter (None for the base model), the set's content
    hash (not its name or path, so a moved file keeps its results) and the evaluation parameters."""
    payload = {"model": model_id, "adapter": adapter_hash, "eval_set": eval_set.sha256, "params": params}
    return "eval:" + json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
