"""IFD and perplexity under Cherry's Alpaca template, and the three ways to handle a too-long example.

``template="alpaca"`` must render exactly Cherry's prompt and give exactly Cherry's loss ratio (two plain
forward passes with the labels masked before the response, as its code computes them); ``truncation``
``keep_response``, ``skip`` and ``cut_response`` each treat a long example as documented in
docs/algorithms.md 1.1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.models import lm as lm_module
from core.models import passes
from core.score import scorers
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

MAX = 300
CHAT = {"model": "tiny", "precision": "fp32", "max_length": MAX, "template": "chat"}  # the truncation tests' scorers
LONG = pd.DataFrame(
    {
        "instruction": ["Repeat the letter q as often as you can: " + "x" * 200, "Name a colour."],
        "input": ["", ""],
        "output": ["q " * 200, "Blue."],
    }
)


@pytest.fixture(scope="module")
def tiny_lm():
    tokenizer = byte_tokenizer()
    return lm_module.LoadedLM(tiny_causal_lm(tokenizer), tokenizer, "tiny", "cpu", "float32")


@pytest.fixture
def use_tiny(tiny_lm, monkeypatch):
    monkeypatch.setattr(lm_module, "load_causal_lm", lambda model="tiny", device=None: tiny_lm)
    return tiny_lm


def test_the_alpaca_prompt_is_cherrys_text_with_and_without_input():
    assert passes.alpaca_prompt("Name a colour.", "") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nName a colour.\n\n### Response:"
    )
    assert passes.alpaca_prompt("Translate to French.", "Good {morning}") == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate to French."
        "\n\n### Input:\nGood {morning}\n\n### Response:"
    )


def test_alpaca_renders_the_prompt_then_the_response_and_the_response_alone_after_its_header(tiny_lm):
    tokenizer = tiny_lm.tokenizer
    pair = passes.render_pair(tokenizer, "Translate to French.", "Good morning", "Bonjour", 512, template="alpaca")
    prompt = passes.alpaca_prompt("Translate to French.", "Good morning")
    assert tokenizer.decode(pair.conditional) == prompt + "Bonjour"
    assert tokenizer.decode(pair.conditional[: pair.conditional_start]) == prompt
    assert tokenizer.decode(pair.unconditional) == "### Response:Bonjour"  # no system turn, no template
    assert tokenizer.decode(pair.unconditional[pair.unconditional_start :]) == "Bonjour"
    assert pair.n_response == pair.n_alone == len("Bonjour") and not pair.truncated


def _cherry_loss(model, tokenizer, text: str, target: str, max_length: int) -> float:
    """Cherry's get_perplexity_and_embedding_part_text: the loss of ``text`` cut to ``max_length`` tokens,
    with the labels masked before the tokens of ``text[:text.rfind(target)]``."""
    import torch

    ids = torch.tensor([tokenizer.encode(text)[:max_length]])
    start = len(tokenizer.encode(text[: text.rfind(target)]))
    labels = ids.clone()
    labels[0, :start] = -100
    with torch.no_grad():
        return float(model(ids, labels=labels).loss)


@pytest.mark.parametrize("max_length", [512, 250])  # 250 cuts the first row's response
def test_alpaca_ifd_is_cherrys_loss_ratio_computed_by_hand(tiny_lm, use_tiny, max_length):
    frame = pd.DataFrame(
        {"instruction": ["Repeat q.", "Name a colour."], "input": ["", "any"], "output": ["q " * 60, "Blue."]}
    )
    scorer = scorers.IFDScorer(
        model="tiny",
        template="alpaca",
        form="loss_ratio",
        truncation="cut_response",
        max_length=max_length,
        precision="fp32",
    )
    result = scorer.score(frame)
    model, tokenizer = tiny_lm.model, tiny_lm.tokenizer
    for row, (instruction, input_text, output) in enumerate(frame.itertuples(index=False)):
        prompt = passes.alpaca_prompt(instruction, input_text)
        prompt_len = len(tokenizer.encode(prompt))
        condition = _cherry_loss(model, tokenizer, prompt + output, output, max_length)
        alone = _cherry_loss(model, tokenizer, "### Response:" + output, output, max_length - prompt_len - 2)
        assert result["ifd"][row] == pytest.approx(condition / alone, rel=1e-4)
        assert result["perplexity"][row] == pytest.approx(np.exp(condition), rel=1e-4)
    assert result["truncated"].tolist() == ([1.0, 0.0] if max_length == 250 else [0.0, 0.0])


def test_template_and_truncation_are_part_of_the_score_key():
    keys = {
        scorers.IFDScorer(template=template, truncation=truncation).score_key()
        for template in ("chat", "alpaca")
        for truncation in ("keep_response", "skip", "cut_response")
    }
    assert len(keys) == 6
    assert scorers.PerplexityScorer(template="alpaca").score_key() != scorers.PerplexityScorer().score_key()


def test_an_unknown_template_or_truncation_is_refused_before_the_model_loads(monkeypatch):
    monkeypatch.setattr(lm_module, "load_causal_lm", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ValueError, match="template"):
        scorers.IFDScorer(template="vicuna").score(LONG)
    with pytest.raises(ValueError, match="truncation"):
        scorers.PerplexityScorer(truncation="middle").score(LONG)


# --- truncation modes on a long example -------------------------------------------------------------


def test_keep_response_cuts_the_prompts_start_and_keeps_the_response(tiny_lm, use_tiny):
    pair = passes.render_pair(tiny_lm.tokenizer, "Explain: " + "x" * 300, "", "q " * 100, MAX)
    assert pair.truncated and len(pair.conditional) == MAX
    assert pair.n_response == pair.n_alone == MAX // 2  # half the window: the response's first 150 tokens
    prompt = tiny_lm.tokenizer.decode(pair.conditional[: pair.conditional_start])
    assert prompt.endswith("x<|im_end|>\n<|im_start|>assistant\n") and "Explain" not in prompt  # its start went
    result = scorers.IFDScorer(**CHAT).score(LONG)
    assert np.isfinite(result["ifd"]).all() and result["truncated"].tolist() == [1.0, 0.0]


def test_skip_leaves_a_long_row_unscored_and_flags_it(use_tiny):
    for scorer in (scorers.IFDScorer, scorers.PerplexityScorer):
        result = scorer(**CHAT, truncation="skip").score(LONG)
        assert np.isnan(result["perplexity"][0]) and np.isfinite(result["perplexity"][1])
        assert result["truncated"].tolist() == [1.0, 0.0]
        if "ifd" in result:
            assert np.isnan(result["ifd"][0]) and np.isfinite(result["ifd"][1])
            assert np.isnan(result["instruction_does_not_help"][0])
    short = scorers.IFDScorer(**CHAT).score(LONG.iloc[[1]])
    skipped = scorers.IFDScorer(**CHAT, truncation="skip").score(LONG)
    assert skipped["ifd"][1] == pytest.approx(short["ifd"][0], rel=1e-5)  # the short row is scored as ever


def test_cut_response_keeps_the_whole_prompt_and_cuts_the_responses_end(tiny_lm, use_tiny):
    tokenizer = tiny_lm.tokenizer
    instruction, _, output = LONG.iloc[0]
    pair = passes.render_pair(tokenizer, instruction, "", output, MAX, truncation="cut_response")
    whole = passes.render_pair(tokenizer, instruction, "", output, 4096)
    assert pair.truncated and len(pair.conditional) == MAX
    assert pair.conditional[: pair.conditional_start] == whole.conditional[: whole.conditional_start]
    assert pair.n_response == MAX - pair.conditional_start == pair.n_alone  # IterIT: one span in both passes
    assert pair.conditional[pair.conditional_start :] == whole.conditional[whole.conditional_start :][: pair.n_response]
    result = scorers.IFDScorer(**CHAT, truncation="cut_response").score(LONG)
    assert np.isfinite(result["ifd"]).all() and result["truncated"].tolist() == [1.0, 0.0]
    kept = scorers.IFDScorer(**CHAT).score(LONG)
    assert result["ifd"][0] != pytest.approx(kept["ifd"][0], rel=1e-6)  # a different span, a different value
    assert result["ifd"][1] == pytest.approx(kept["ifd"][1], rel=1e-6)  # a row that fits is not touched


def test_cut_response_gives_no_score_when_the_prompt_alone_fills_the_window(tiny_lm, use_tiny):
    long_prompt = LONG.assign(instruction=["x" * 400, "Name a colour."])
    result = scorers.IFDScorer(**CHAT, truncation="cut_response").score(long_prompt)
    assert np.isnan(result["ifd"][0]) and np.isfinite(result["ifd"][1])


def test_ifd_defaults_to_the_alpaca_rendering_and_perplexity_keeps_the_chat_template(use_tiny):
    default = scorers.IFDScorer(model="tiny", precision="fp32").score(LONG)
    alpaca = scorers.IFDScorer(model="tiny", precision="fp32", template="alpaca").score(LONG)
    chat = scorers.IFDScorer(model="tiny", precision="fp32", template="chat").score(LONG)
    np.testing.assert_array_equal(default["ifd"], alpaca["ifd"])
    assert not np.allclose(default["ifd"], chat["ifd"])
    perplexity = scorers.PerplexityScorer(model="tiny", precision="fp32").score(LONG)["perplexity"]
    np.testing.assert_allclose(perplexity, chat["perplexity"], rtol=1e-6)
