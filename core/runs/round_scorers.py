"""The pluggable scorers of the iterative loops' rounds: iterative kMQ's S (Eq. 4: S = score(x + y_gold) -
score(x + y_gen)) and the type of IterIT's IFD function.

Scoring here uses the model being trained, not one loaded by name as :mod:`core.score.scorers` does; the
LM passes themselves (response NLLs, IFD, generation) are in :mod:`core.models`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from core.models.passes import response_nlls
from core.select import loops

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from core.models.lm import CausalLM

KMQScorer = Callable[[Any, Any, pd.DataFrame, list[str]], np.ndarray]
"""(model, tokenizer, examples, generations) -> S_i per row; S > 0: the gold response beats the generation."""
IFDFunction = Callable[[Any, Any, pd.DataFrame], np.ndarray]
"""(model, tokenizer, examples) -> IFD per row (default: :func:`core.models.passes.ifd_scores`)."""

# ---------------------------------------------------------------------------------------------------
# kMQ round scorers (Eq. 4: S = score(x + y_gold) - score(x + y_gen))
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PerplexityDifferenceScorer:
    """S = log PPL(generation) - log PPL(gold) under the current model (``loops.ppl_difference_scores``;
    ``convention="eq7"`` flips the sign as Eq. 7 is printed). The perplexities are the scorers' response NLL
    (:func:`core.models.passes.response_nll`) at ``precision``: ``fp32``, or ``bf16`` / ``auto`` for the fast
    pass (:func:`core.models.fast.fast_pass`)."""

    max_length: int = 512
    convention: Literal["gold_better", "eq7"] = "gold_better"
    precision: Literal["auto", "bf16", "fp32"] = "fp32"

    def __call__(
        self, model: CausalLM, tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, generations: list[str]
    ) -> np.ndarray:
        gold = response_nlls(model, tokenizer, examples, list(examples.output), self.max_length, self.precision)
        generated = response_nlls(model, tokenizer, examples, generations, self.max_length, self.precision)
        return loops.ppl_difference_scores(gold, generated, convention=self.convention)

    def __repr__(self) -> str:
        """The dataclass's, naming the precision only when it is not fp32: a run records its scorer's repr, and
        runs recorded before the precision existed must still resume."""
        extra = f", precision={self.precision!r}" if self.precision != "fp32" else ""
        return f"PerplexityDifferenceScorer(max_length={self.max_length!r}, convention={self.convention!r}{extra})"


@dataclasses.dataclass(frozen=True)
class EmbeddingSimilarityScorer:
    """S = cos(prompt, gold) - cos(prompt, generation): Eq. 4 with "relevance to the prompt" as the score.

    ``embedder``: a spec for :func:`core.embed.embedders.build_embedder` (None: the packaged default).
    Model-free with respect to the LM; a cheap check that is blind to fluency.
    """

    embedder: dict[str, Any] | None = None

    def __call__(
        self, model: CausalLM, tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, generations: list[str]
    ) -> np.ndarray:
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

    def __call__(
        self, model: CausalLM, tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, generations: list[str]
    ) -> np.ndarray:
        from core.score.scorers import RewardScorer

        reward = RewardScorer(model=self.model, max_length=self.max_length)
        gold = reward.score(examples.reset_index(drop=True))["reward"]
        generated = reward.score(examples.reset_index(drop=True).assign(output=list(generations)))["reward"]
        return np.asarray(gold, dtype=float) - np.asarray(generated, dtype=float)
