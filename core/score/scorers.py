"""Quality scorers behind one protocol and registry; each returns raw per-example values by score name.

- ``perplexity``: PPL(response | instruction) from a causal LM.
- ``ifd``: IFD = PPL(response | instruction) / PPL(response alone) over the same response tokens
  (docs/algorithms.md 1.3; ``form="loss_ratio"`` gives Cherry's ratio of mean losses instead), by default
  under Cherry's Alpaca prompt (``template``). IFD >= 1 means the instruction does not help predict the response.

The LM scorers take ``template`` (``chat``: the model's chat template; ``alpaca``: Cherry's prompt text) and
``truncation`` (``keep_response``, ``skip``, ``cut_response``: what a too-long example loses, docs/algorithms.md
1.1); both are part of the score key. A row ``skip`` leaves out is NaN, with its ``truncated`` flag set.
- ``tfidf_diversity``: IterIT's response diversity, the row sum of the L2-normalised 1-3-gram TF-IDF row
  of each response, fitted on the responses of the scored set (docs/algorithms.md 3.3).
- ``heuristics``: response length, empty and cut-off responses, wrong stated arithmetic, gibberish (text in
  no language), near duplicates (embedding neighbours with nearly the same response).
- ``reward``: any sequence-classification reward model given by path (off by default).

An empty or whitespace-only response (:func:`core.models.passes.is_empty_response`) has no LM score: the
perplexity and IFD scorers give it NaN without running the model on it, since the only token left to score
would be the template's end-of-turn token. The reward scorer does score it: a reward model judges the
(instruction, response) pair as a whole, and an empty answer is one it rates, typically low.

Scores are stored raw; normalising and weighting them into a combined quality happens at query time.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import pandas as pd

from core.models.fast import FAST_PASS
from core.models.passes import TEMPLATES, TRUNCATIONS, Template, Truncation, empty_responses
from core.registry import Registry, param
from core.score import judge, minhash
from core.score.arithmetic import arithmetic_errors
from core.score.heuristics import looks_cut_off, looks_gibberish, near_duplicates

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ProgressFn = Callable[[int], None]
NanPolicy = Literal["never", "empty_response", "flagged"]


class Scorer(Protocol):
    """Scores a frame of examples (columns instruction, input, output) into named raw values per row.

    ``nan_policy`` declares where a value may be NaN: ``never``, or ``empty_response`` (only for an empty or
    whitespace-only response, and there the scorer's own score, the one named like it, is always NaN), or
    ``flagged`` (the scorer's own score is NaN exactly where one of its ``nan_flags`` is 1: the judge's
    unparsed or failed rows; its other values may be NaN where the source reported nothing).
    ``key_ignores`` names the parameters that cannot change a score, so they are left out of the score key.

    Optional hooks :mod:`core.score.scoring` reads when a scorer has them (the judge does): ``retry_flag`` (rows
    with that flag raised are scored again by the next run), ``chunk_rows`` (rows per committed chunk),
    ``tally(values)`` and ``run_note(totals, done, total, seconds)`` (counts summed over a run, reported as it
    goes and in its report), ``run_device`` (the device its recorded runs name).
    """

    name: ClassVar[str]
    uses_model: ClassVar[bool]
    set_dependent: ClassVar[bool]
    nan_policy: ClassVar[NanPolicy]
    key_ignores: ClassVar[frozenset[str]]

    def score_key(self) -> str:
        """Identifies the scorer, its model and parameters: equal keys mean equal scores for equal text."""
        ...

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]: ...


SCORERS: Registry[Scorer] = Registry("scorer")


def _key(instance: Any) -> str:
    return instance.name + ":" + json.dumps(dataclasses.asdict(instance), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class _LMScorer:
    """Shared by the LM scorers. ``precision``: ``auto`` is bf16 on CUDA and on CPUs with native bf16, ``fp32``
    keeps float32, ``bf16`` forces it. A bf16 pass is the fast pass (:func:`core.models.fast.fast_pass`: bf16
    weights, the chunked CPU attention; docs/benchmarks.md has its speed and its IFD rank correlation with
    fp32). The resolved precision is part of the score key, so bf16 and fp32 scores are cached apart, and a
    bf16 key names the fast pass, so values of the earlier autocast pass are not reused. Empty responses are
    not rendered or run: their values are NaN (``empty_response``), and the key says so, so no value cached
    before that rule is reused."""

    nan_policy: ClassVar[NanPolicy] = "empty_response"
    key_ignores: ClassVar[frozenset[str]] = frozenset({"token_budget"})  # how passes are batched, not what they give
    model: str = "SmolLM2-135M-Instruct"
    max_length: int = 512
    token_budget: int = 4096
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    template: Template = "chat"
    truncation: Truncation = "keep_response"

    def score_key(self) -> str:
        from core.models.lm import model_id

        resolved = "bf16" if self._bf16() else "fp32"
        key = _key(dataclasses.replace(self, model=model_id(self.model), token_budget=0, precision=resolved))
        return key + ":empty=nan" + (f":pass={FAST_PASS}" if resolved == "bf16" else "")

    def _bf16(self) -> bool:
        from core.models.device import pick_device, use_bf16

        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        return use_bf16(pick_device()) if self.precision == "auto" else self.precision == "bf16"

    def _render(self, examples: pd.DataFrame, progress: ProgressFn | None) -> tuple[Any, list[Any], np.ndarray]:
        """(model, rendered pairs of the non-empty responses, mask of those rows); empty rows count as done."""
        from core.models.lm import load_causal_lm
        from core.models.passes import render_pair

        if self.template not in TEMPLATES or self.truncation not in TRUNCATIONS:  # before the model is loaded
            raise ValueError(f"unknown template {self.template!r} or truncation {self.truncation!r}")
        scored = ~empty_responses(examples.output)
        if progress and not scored.all():
            progress(int((~scored).sum()))
        if not scored.any():  # nothing to score: the model is not even loaded
            return None, [], scored
        lm = load_causal_lm(self.model)
        rows = examples[scored]
        pairs = [
            render_pair(lm.tokenizer, i, x, o, self.max_length, template=self.template, truncation=self.truncation)
            for i, x, o in zip(rows.instruction, rows.input, rows.output, strict=True)
        ]
        return lm, pairs, scored

    def _nll(self, lm: Any, sequences: list[Any], progress: ProgressFn | None) -> np.ndarray:
        from core.models.passes import response_nll

        if not sequences:  # every response was empty: no model pass at all
            return np.zeros(0)
        return response_nll(
            lm.model,
            sequences,
            pad_id=lm.tokenizer.pad_token_id,
            token_budget=self.token_budget,
            bf16=self._bf16(),
            progress=progress,
        )


def _spread(values: Any, scored: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """The values of the scored rows put back in row order, ``fill`` (NaN: no score) on the others."""
    result = np.full(len(scored), fill, dtype=float)
    result[scored] = np.asarray(values, dtype=float)
    return result


@SCORERS.register
@dataclasses.dataclass(frozen=True)
class PerplexityScorer(_LMScorer):
    """Perplexity of the response given the instruction (one forward pass per example)."""

    name: ClassVar[str] = "perplexity"
    title: ClassVar[str] = "Perplexity (SmolLM2, one pass)"
    uses_model: ClassVar[bool] = True
    set_dependent: ClassVar[bool] = False

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        lm, pairs, scored = self._render(examples, progress)
        nll = self._nll(lm, [(p.conditional, p.conditional_start, p.n_response) for p in pairs], progress)
        return {
            "perplexity": _spread(np.exp(nll), scored),
            "response_tokens": _spread([p.n_response for p in pairs], scored, fill=0.0),
            "truncated": _spread([p.truncated for p in pairs], scored, fill=0.0),
        }


@SCORERS.register
@dataclasses.dataclass(frozen=True)
class IFDScorer(_LMScorer):
    """Instruction-following difficulty; ``form`` is ``ppl_ratio`` (IterIT, Superfiltering; default) or
    ``loss_ratio`` (the Cherry paper's ratio of mean losses). Both agree on the IFD < 1 threshold.

    ``template`` defaults to ``alpaca`` (Cherry's prompt; the response alone after ``### Response:``): under
    the chat template the lone response is scored after a template header the chat model never sees without
    a user turn, which inflates its loss, so IFD >= 1 practically never happens there (0 of 120 real rows,
    against 13 of 120 under ``alpaca``; docs/algorithms.md 1.3). ``template=alpaca form=loss_ratio
    truncation=cut_response`` is Cherry's code exactly."""

    name: ClassVar[str] = "ifd"
    title: ClassVar[str] = "IFD (instruction-following difficulty)"
    uses_model: ClassVar[bool] = True
    set_dependent: ClassVar[bool] = False
    template: Template = "alpaca"
    form: Literal["ppl_ratio", "loss_ratio"] = "ppl_ratio"

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        if self.form not in ("ppl_ratio", "loss_ratio"):  # checked here too: before the model is loaded
            raise ValueError(f"IFD form must be ppl_ratio or loss_ratio, not {self.form!r}")
        from core.models.passes import ifd_from_nll, ifd_sequences

        lm, pairs, scored = self._render(examples, progress)
        half = (lambda n: progress(n / 2)) if progress else None
        ifd, conditional, alone = ifd_from_nll(self._nll(lm, ifd_sequences(pairs), half), self.form)
        return {
            "ifd": _spread(ifd, scored),
            "perplexity": _spread(np.exp(conditional), scored),
            "perplexity_alone": _spread(np.exp(alone), scored),
            "instruction_does_not_help": _spread(np.where(np.isfinite(ifd), ifd >= 1, np.nan), scored),
            "truncated": _spread([p.truncated for p in pairs], scored, fill=0.0),
        }


@SCORERS.register
@dataclasses.dataclass(frozen=True)
class TfidfDiversityScorer:
    """Row sum of each response's L2-normalised TF-IDF row (1..``ngram_max``-grams) over the scored set."""

    name: ClassVar[str] = "tfidf_diversity"
    title: ClassVar[str] = "TF-IDF diversity"
    uses_model: ClassVar[bool] = False
    set_dependent: ClassVar[bool] = True
    nan_policy: ClassVar[NanPolicy] = "never"
    key_ignores: ClassVar[frozenset[str]] = frozenset()
    ngram_max: int = 3

    def score_key(self) -> str:
        return _key(self)

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        responses = list(examples.output)
        try:
            matrix = TfidfVectorizer(ngram_range=(1, self.ngram_max)).fit_transform(responses)
            sums = np.asarray(matrix.sum(axis=1)).ravel()
        except ValueError:  # no response has a word of two or more characters
            sums = np.zeros(len(responses))
        if progress:
            progress(len(responses))
        return {"tfidf_diversity": sums}


@SCORERS.register
@dataclasses.dataclass(frozen=True)
class MinHashScorer:
    """Near-duplicate groups by MinHash and LSH over word shingles: all but one row of each group are flagged
    (docs/algorithms.md 1.12).

    field : what is shingled: the instruction with its input, the response, or both
    shingle : words per shingle (3 found 97 % of copies with one to three words edited, 5 only 84 %)
    num_perm : MinHash permutations (more: a closer Jaccard estimate, a bigger signature)
    threshold : estimated Jaccard similarity at or above which two rows are near duplicates
    keep : which row of a group is kept: first (dataset order), longest (response), quality (highest combined
        quality with default weights, without this flag; with no scores yet, the first non-empty row)

    Gives ``minhash_group`` (the row number of the row the group keeps), ``minhash_similarity`` (estimated
    Jaccard to it) and the flag ``minhash_duplicate``. Rows shorter than one shingle are groups of their own.
    """

    name: ClassVar[str] = "minhash"
    title: ClassVar[str] = "MinHash near duplicates (no model)"
    uses_model: ClassVar[bool] = False
    set_dependent: ClassVar[bool] = True
    order_dependent: ClassVar[bool] = True  # keep=first and the group ids follow row order: part of the key
    nan_policy: ClassVar[NanPolicy] = "never"
    key_ignores: ClassVar[frozenset[str]] = frozenset()
    ignores_signals: ClassVar[frozenset[str]] = frozenset({"minhash_duplicate"})  # left out of keep=quality
    field: minhash.Field = "both"
    shingle: int = param(3, low=1, high=64)
    num_perm: int = param(128, low=16, high=1024)
    threshold: float = param(0.7, low=0.05, high=1.0)
    keep: minhash.Keep = "first"

    @property
    def needs_quality(self) -> bool:
        """Whether scoring must pass each row's combined quality (column ``quality``) to :meth:`score`."""
        return self.keep == "quality"

    def score_key(self) -> str:
        return f"{_key(self)}:seed={minhash.SEED}"

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        texts = minhash.row_texts(examples.instruction, examples.input, examples.output, self.field)
        sig, too_short = minhash.signatures(texts, self.shingle, self.num_perm, progress)
        lengths = examples.output.fillna("").str.len().to_numpy()
        quality = examples["quality"].to_numpy(dtype=float) if "quality" in examples else None
        if self.keep == "quality" and quality is None:  # no quality given: every row ties, the first is kept
            quality = np.full(len(examples), np.nan)
        groups = minhash.group_rows(sig, too_short, self.threshold, minhash.keep_order(self.keep, lengths, quality))
        ids = examples["row_idx"].to_numpy() if "row_idx" in examples else np.arange(len(examples))
        return {
            "minhash_group": np.asarray(ids, dtype=float)[groups.group],
            "minhash_similarity": groups.similarity,
            "minhash_duplicate": groups.duplicate.astype(float),
        }


_TOKEN = re.compile(r"\w+|[^\w\s]")
PROGRESS_ROWS = 256  # the heuristics scorer reports progress every this many rows


@SCORERS.register
@dataclasses.dataclass(frozen=True)
class HeuristicsScorer:
    """Cheap signals: response length (words and punctuation), empty or cut-off responses, wrong stated
    arithmetic (:mod:`core.score.arithmetic`), gibberish, near duplicates (docs/algorithms.md 1.7).

    Gibberish (:func:`core.score.heuristics.looks_gibberish`) is judged on the response, on the prompt and on
    both together: a nonsense prompt makes a nonsense example even when the answer plays along.

    A cut-off response stops where a finished one cannot (:func:`core.score.heuristics.looks_cut_off`):
    an open code block or bracket, a dangling word or comma, prose whose last sentence is unpunctuated;
    complete code, list items, line-based text and short answers are not cut off. A near duplicate repeats
    another example of different content (exact duplicates are flagged from content hashes at query time):
    one of its nearest neighbours at embedding cosine >= ``near_duplicate_threshold`` has nearly the same
    response, and for a short response nearly the same prompt too
    (:func:`core.score.heuristics.near_duplicates`). Rows that only share a template (different numbers,
    different answers) are not near duplicates.
    """

    name: ClassVar[str] = "heuristics"
    title: ClassVar[str] = "Heuristics (flags, no model)"
    uses_model: ClassVar[bool] = False
    set_dependent: ClassVar[bool] = True
    nan_policy: ClassVar[NanPolicy] = "never"
    key_ignores: ClassVar[frozenset[str]] = frozenset()
    needs_embeddings: ClassVar[bool] = True
    # Bumped whenever a flag's rule changes, so that scores cached under the old rules are recomputed.
    rules: ClassVar[int] = 3
    near_duplicate_threshold: float = 0.95
    arithmetic_check: bool = True

    def score_key(self) -> str:
        return f"{_key(self)}:rules={self.rules}"

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        outputs = list(examples.output)
        prompts = [f"{i}\n\n{x}" for i, x in zip(examples.instruction, examples.input, strict=True)]
        columns: dict[str, list[float]] = {name: [] for name in self._row_flags()}
        for start in range(0, len(outputs), PROGRESS_ROWS):  # the per-row rules report as they go
            stop = min(start + PROGRESS_ROWS, len(outputs))
            for text, prompt in zip(outputs[start:stop], prompts[start:stop], strict=True):
                for name, value in self._row_values(text, prompt).items():
                    columns[name].append(value)
            if progress:
                progress(stop - start)
        result = {name: np.array(values, dtype=float) for name, values in columns.items()}
        result["empty_response"] = empty_responses(outputs).astype(float)
        if "embedding" in examples:
            result["near_duplicate"] = near_duplicates(
                np.stack(examples.embedding.to_numpy()), self.near_duplicate_threshold, prompts, outputs
            )
        return result

    def _row_flags(self) -> list[str]:
        names = ["response_length", "cut_off_response", "gibberish"]
        return [*names, "arithmetic_error"] if self.arithmetic_check else names

    def _row_values(self, text: str, prompt: str) -> dict[str, float]:
        values = {
            "response_length": float(len(_TOKEN.findall(text))),
            "cut_off_response": float(looks_cut_off(text, prompt)),
            "gibberish": float(
                looks_gibberish(text) or looks_gibberish(prompt) or looks_gibberish(f"{prompt}\n{text}")
            ),
        }
        if self.arithmetic_check:
            values["arithmetic_error"] = float(arithmetic_errors(text) > 0)
        return values


@SCORERS.register
@dataclasses.dataclass(frozen=True)
class JudgeScorer(judge.JudgeSettings):
    """An LLM judge on any OpenAI-compatible server rates each response 1-5 for accuracy and helpfulness
    (AlpaGasus-style; docs/algorithms.md 1.11). The server sees every example it rates.

    base_url : the API's base URL; requests go to {base_url}/chat/completions (vLLM, TGI, llama.cpp, Ollama,
        transformers serve, a hosted API)
    model : the model's name on that server (required; part of the score key, the URL is not)
    prompt : the rating prompt; {instruction}, {input}, {output}, {scale_min} and {scale_max} are filled in
    pattern : regular expression whose first matching group is the score; no match or a number off the scale
        is recorded as unparsed, never guessed
    scale_min : the lowest score the prompt asks for
    scale_max : the highest score the prompt asks for
    temperature : sampling temperature (0: the most likely answer)
    max_tokens : the longest answer the server may write
    concurrency : requests in flight at once
    timeout : seconds to wait for one answer
    max_retries : retries of a connection error, timeout, 429 or 5xx, with backoff (Retry-After respected)
    api_key_env : the environment variable holding the API key (sent as a Bearer token; never stored); its
        name ends in _API_KEY; unset or empty sends no key (local servers)

    Gives ``judge`` (the score; a higher one is better), the flags ``judge_unparsed`` and ``judge_failed`` and
    the tokens the server reported. Failed rows are sent again by the next run; rated and unparsed rows are
    cached by model, prompt, pattern, scale, temperature and max_tokens.
    """

    name: ClassVar[str] = "judge"
    title: ClassVar[str] = "LLM judge (OpenAI-compatible server)"
    uses_model: ClassVar[bool] = False  # no model loads here: the server has it
    set_dependent: ClassVar[bool] = False
    nan_policy: ClassVar[NanPolicy] = "flagged"
    nan_flags: ClassVar[tuple[str, ...]] = ("judge_unparsed", "judge_failed")
    key_ignores: ClassVar[frozenset[str]] = judge.KEY_IGNORES
    retry_flag: ClassVar[str] = "judge_failed"  # rows flagged so are not cached: the next run sends them again
    run_device: ClassVar[str] = "server"  # what its recorded runs name as their device

    @property
    def chunk_rows(self) -> int:
        """Rows rated and committed at once: a cancel or a stopped server loses at most this many answers."""
        return max(16, 4 * self.concurrency)

    def score_key(self) -> str:
        return judge.score_key(self)

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        return judge.score_frame(self, examples, progress)

    def tally(self, values: dict[str, np.ndarray]) -> dict[str, float]:
        return judge.tally(values)

    def run_note(self, totals: dict[str, float], done: int, total: int, seconds: float) -> str:
        return judge.run_note(totals, done, total, seconds)


@SCORERS.register
@dataclasses.dataclass(frozen=True)
class RewardScorer:
    """A Hugging Face sequence-classification reward model (given by path or hub id) scores each
    (instruction, response) pair: the single logit, or the probability of the last label when there are
    several. None ships offline, so this scorer is off until a curator names a model."""

    name: ClassVar[str] = "reward"
    title: ClassVar[str] = "Reward model"
    uses_model: ClassVar[bool] = True
    set_dependent: ClassVar[bool] = False
    nan_policy: ClassVar[NanPolicy] = "never"
    key_ignores: ClassVar[frozenset[str]] = frozenset()
    model: str = ""
    max_length: int = 512
    batch_size: int = 8

    def score_key(self) -> str:
        return _key(self)

    def score(self, examples: pd.DataFrame, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        import torch

        from core.models.lm import load_reward_model
        from core.models.passes import user_turn

        if not self.model:
            raise ValueError("the reward scorer needs a reward model path or hub id (--model); none ships offline")
        tokenizer, network = load_reward_model(self.model)
        prompts = [user_turn(i, x) for i, x in zip(examples.instruction, examples.input, strict=True)]
        responses = list(examples.output)
        values = []
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                batch = _reward_inputs(
                    tokenizer,
                    prompts[start : start + self.batch_size],
                    responses[start : start + self.batch_size],
                    self.max_length,
                )
                logits = network(**{k: v.to(network.device) for k, v in batch.items()}).logits.float()
                scores = logits[:, 0] if logits.shape[1] == 1 else torch.softmax(logits, dim=-1)[:, -1]
                values.append(scores.cpu().numpy())
                if progress:
                    progress(len(scores))
        return {"reward": np.concatenate(values) if values else np.zeros(0)}


def _reward_inputs(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], responses: list[str], max_length: int
) -> Any:
    """Chat-template rendering when the reward model's tokenizer has one, else a (prompt, response) text pair."""
    if getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
            )
            for p, r in zip(prompts, responses, strict=True)
        ]
        return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return tokenizer(prompts, responses, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
