"""Model passes the selection loops make with an in-memory model: greedy generation, response NLLs, IFD,
and the pluggable iterative-kMQ round scorers (Eq. 4: S = score(x + y_gold) - score(x + y_gen)).

Scoring here uses the model being trained, not one loaded by name as :mod:`core.score.scorers` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.select import loops

KMQScorer = Callable[[Any, Any, pd.DataFrame, list[str]], np.ndarray]
"""(model, tokenizer, examples, generations) -> S_i per row; S > 0: the gold response beats the generation."""
IFDFunction = Callable[[Any, Any, pd.DataFrame], np.ndarray]
"""(model, tokenizer, examples) -> IFD per row."""

# ---------------------------------------------------------------------------------------------------
# Model passes: generation, response NLLs, IFD
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Eval mode (no dropout) for scoring, restored per module afterwards, as evaluate.evaluate does."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def generate_responses(
    model: Any, tokenizer: Any, prompts: pd.DataFrame, max_new_tokens: int, batch_size: int = 8, max_length: int = 512
) -> list[str]:
    """Greedy responses to the (instruction, input) rows of ``prompts``, through evaluate.py's generation."""
    import torch

    from core.train.evaluate import _generate

    rows = list(prompts[["instruction", "input"]].itertuples(index=False))
    texts: list[str] = []
    with _eval_mode(model), torch.inference_mode():
        for begin in range(0, len(rows), batch_size):
            texts += _generate(model, tokenizer, rows[begin : begin + batch_size], max_length, max_new_tokens)
    return texts


def response_nlls(
    model: Any, tokenizer: Any, examples: pd.DataFrame, outputs: list[str], max_length: int
) -> np.ndarray:
    """Mean NLL (= log PPL) of each ``outputs[i]`` as the answer to row i's prompt, under ``model``."""
    from core.models.passes import render_pair, response_nll
    from core.train.evaluate import _pad_id

    prompts = zip(examples.instruction, examples.input, outputs, strict=True)
    pairs = [render_pair(tokenizer, i, x, o, max_length) for i, x, o in prompts]
    with _eval_mode(model):
        return response_nll(
            model, [(p.conditional, p.conditional_start, p.n_response) for p in pairs], pad_id=_pad_id(tokenizer)
        )


def ifd_scores(model: Any, tokenizer: Any, examples: pd.DataFrame, max_length: int = 512) -> np.ndarray:
    """IFD = exp(NLL(response | prompt) - NLL(response alone)), as :class:`IFDScorer` computes it, but with an
    in-memory model (the one being trained) rather than one loaded by name."""
    from core.models.passes import render_pair, response_nll
    from core.train.evaluate import _pad_id

    rows = zip(examples.instruction, examples.input, examples.output, strict=True)
    pairs = [render_pair(tokenizer, i, x, o, max_length) for i, x, o in rows]
    # both passes in one call: batches of similar length pack better and share one prefix cache
    sequences = [(p.conditional, p.conditional_start, p.n_response) for p in pairs]
    sequences += [(p.unconditional, p.unconditional_start, p.n_response) for p in pairs]
    with _eval_mode(model):
        nll = response_nll(model, sequences, pad_id=_pad_id(tokenizer))
    return np.exp(nll[: len(pairs)] - nll[len(pairs) :])


# ---------------------------------------------------------------------------------------------------
# kMQ round scorers (Eq. 4: S = score(x + y_gold) - score(x + y_gen))
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PerplexityDifferenceScorer:
    """S = log PPL(generation) - log PPL(gold) under the current model (``loops.ppl_difference_scores``;
    ``convention="eq7"`` flips the sign as Eq. 7 is printed)."""

    max_length: int = 512
    convention: Literal["gold_better", "eq7"] = "gold_better"

    def __call__(self, model: Any, tokenizer: Any, examples: pd.DataFrame, generations: list[str]) -> np.ndarray:
        gold = response_nlls(model, tokenizer, examples, list(examples.output), self.max_length)
        generated = response_nlls(model, tokenizer, examples, generations, self.max_length)
        return loops.ppl_difference_scores(gold, generated, convention=self.convention)


@dataclasses.dataclass(frozen=True)
class EmbeddingSimilarityScorer:
    """S = cos(prompt, gold) - cos(prompt, generation): Eq. 4 with "relevance to the prompt" as the score.

    ``embedder``: a spec for :func:`core.embed.embedders.build_embedder` (None: the packaged default).
    Model-free with respect to the LM; a cheap check that is blind to fluency.
    """

    embedder: dict[str, Any] | None = None

    def __call__(self, model: Any, tokenizer: Any, examples: pd.DataFrame, generations: list[str]) -> np.ndarray:
        from core.embed.embedders import build_embedder
        from core.models.passes import user_turn

        prompts = [user_turn(i, x) for i, x in zip(examples.instruction, examples.input, strict=True)]
        n = len(prompts)
        vectors = build_embedder(self.embedder).embed(prompts + list(examples.output) + list(generations))
        prompt, gold, generated = vectors[:n], vectors[n : 2 * n], vectors[2 * n :]
        return (prompt * gold).sum(axis=1) - (prompt * generated).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class RewardDifferenceScorer:
    """S = r(gold) - r(generation) with a sequence-classification reward model (the paper's best scorer).

    None ships offline, so ``model`` (a path or hub id) is required; it is not tested here.
    """

    model: str
    max_length: int = 512

    def __call__(self, model: Any, tokenizer: Any, examples: pd.DataFrame, generations: list[str]) -> np.ndarray:
        from core.score.scorers import RewardScorer

        reward = RewardScorer(model=self.model, max_length=self.max_length)
        gold = reward.score(examples.reset_index(drop=True))["reward"]
        generated = reward.score(examples.reset_index(drop=True).assign(output=list(generations)))["reward"]
        return np.asarray(gold, dtype=float) - np.asarray(generated, dtype=float)
