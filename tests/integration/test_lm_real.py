"""The packaged SmolLM2-135M-Instruct loads offline from its GGUF file and scores sensibly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.models.lm import DEFAULT_LM, load_causal_lm, packaged_gguf
from core.score.scorers import IFDScorer, PerplexityScorer

pytestmark = pytest.mark.real_model


def test_packaged_smollm2_loads_offline_in_float32_on_cpu():
    assert packaged_gguf() is not None
    lm = load_causal_lm(DEFAULT_LM, device="cpu")
    assert lm.dtype == "float32" and lm.model_id == DEFAULT_LM
    assert "<|im_start|>assistant" in lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )


def test_a_fitting_answer_scores_better_than_gibberish():
    frame = pd.DataFrame(
        {
            "instruction": ["What is the capital of France?"] * 2,
            "input": ["", ""],
            "output": ["The capital of France is Paris.", "Zxq vorp blen kk qwa trull fepp."],
        }
    )
    result = IFDScorer(max_length=128).score(frame)
    assert np.all(np.isfinite(result["ifd"]))
    assert result["perplexity"][0] < result["perplexity"][1]
    assert result["ifd"][0] < 1.0  # the question helps predict its answer


def test_empty_and_whitespace_responses_get_no_perplexity_or_ifd_from_the_real_model():
    frame = pd.DataFrame(
        {
            "instruction": ["What is the capital of France?"] * 3,
            "input": ["", "", ""],
            "output": ["The capital of France is Paris.", "", "  \n\t"],
        }
    )
    ifd = IFDScorer(max_length=128).score(frame)
    ppl = PerplexityScorer(max_length=128).score(frame)
    for name, values in (("ifd", ifd["ifd"]), ("perplexity", ifd["perplexity"]), ("ppl", ppl["perplexity"])):
        assert np.isfinite(values[0]) and np.isnan(values[1:]).all(), name
    assert ppl["response_tokens"][0] > 0 and list(ppl["response_tokens"][1:]) == [0.0, 0.0]
