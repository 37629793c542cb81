"""The fast pass in scoring: response NLL, IFD, hidden states and evaluation loss in bf16 against float32.

The tiny random model's LM head is scaled up so that its predictions are peaked (NLLs spread over several
nats, as a trained model's do): a wrong mask or a lost prefix would move them by far more than bf16 does.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from core.hidden import pipeline as hidden_pipeline
from core.models import device as device_module
from core.models import fast, passes
from core.models.hidden import pooled_hidden_states
from core.progress import Cancelled
from core.runs.round_scorers import PerplexityDifferenceScorer
from core.score import scorers
from core.select import loops
from core.train import evaluate as ev
from core.train.trainer import TrainConfig, prepare_model
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

FRAME = pd.DataFrame(
    {
        "instruction": ["Add two and two.", "Name a colour.", "Say hi", "Greet the friend named in the input."],
        "input": ["", "", "politely", "Ana"],
        "output": ["Four.", "Blue is a colour.", "Hi!", "Hello, Ana! " * 15],
    }
)
BF16_NLL = 0.05  # nats: bf16 weights and activations against float32, on NLLs of about 10


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture
def model(tokenizer):
    network = tiny_causal_lm(tokenizer)
    with torch.no_grad():
        network.lm_head.weight.mul_(30.0)
    return network


def _state(network) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in network.named_parameters()}


def _assert_unchanged(network, before) -> None:
    assert network.config._attn_implementation == "sdpa"
    for name, param in network.named_parameters():
        assert param.dtype == torch.float32 and torch.equal(param, before[name]), name


def _sequences(tokenizer) -> list[passes.Sequence3]:
    pairs = [
        passes.render_pair(tokenizer, i, x, o, 200)
        for i, x, o in zip(FRAME.instruction, FRAME.input, FRAME.output, strict=True)
    ]
    return passes.ifd_sequences(pairs)


def _reference_nll(network, ids: list[int], start: int, n: int) -> float:
    """One unbatched float32 pass with full logits."""
    with torch.inference_mode():
        log_probs = torch.log_softmax(network(input_ids=torch.tensor([ids])).logits[0], dim=-1)
    return float(-np.mean([log_probs[p - 1, ids[p]].item() for p in range(start, start + n)]))


@pytest.mark.parametrize("share_prefix", [True, False])
def test_response_nll_in_bf16_and_fp32_matches_one_float32_pass_per_sequence(model, tokenizer, share_prefix):
    sequences = _sequences(tokenizer)
    reference = np.array([_reference_nll(model, *sequence) for sequence in sequences])
    assert reference.max() - reference.min() > 0.5  # peaked predictions: a broken pass shows
    options = {"pad_id": tokenizer.pad_token_id, "token_budget": 300, "share_prefix": share_prefix}  # padded batches
    fp32 = passes.response_nll(model, sequences, **options)
    before = _state(model)
    bf16 = passes.response_nll(model, sequences, bf16=True, **options)
    _assert_unchanged(model, before)
    np.testing.assert_allclose(fp32, reference, rtol=1e-5)
    np.testing.assert_allclose(bf16, reference, atol=BF16_NLL)
    assert not np.array_equal(bf16, fp32)  # it did run in bf16


@pytest.mark.parametrize("share_prefix", [True, False])
def test_the_fast_pass_packs_sequences_into_rows_with_the_nll_of_padded_batches(
    model, tokenizer, monkeypatch, share_prefix
):
    """In bf16 on a CPU the sequences go back to back into rows of up to token_budget tokens (no padding); the
    NLLs are those of length-sorted padded batches, up to bf16's rounding."""
    sequences = _sequences(tokenizer)
    options = {"pad_id": tokenizer.pad_token_id, "token_budget": 300, "share_prefix": share_prefix, "bf16": True}
    rows: list[int] = []
    real_packed = fast.packed_causal_attention

    def counted(query, key, value, plan, scaling=None):
        rows.append(len(fast._PACKING.get().bounds) - 1)  # the sequences of the row
        return real_packed(query, key, value, plan, scaling)

    monkeypatch.setattr(fast, "packed_causal_attention", counted)
    packed = passes.response_nll(model, sequences, **options)
    layers = model.config.num_hidden_layers
    assert rows and max(rows) >= 2 and sum(rows) == len(sequences) * layers  # every sequence, several a row
    monkeypatch.setattr(fast, "packs", lambda network: False)
    padded = passes.response_nll(model, sequences, **options)
    np.testing.assert_allclose(packed, padded, atol=BF16_NLL / 2)


def test_a_pass_that_misses_the_packed_attention_is_run_padded(model, tokenizer, monkeypatch):
    """A model whose attention never sees the packing (here: SDPA, the pass in float32) would mix the
    sequences of a row; the row is run in padded batches instead, with the float32 NLLs."""
    sequences = _sequences(tokenizer)
    options = {"pad_id": tokenizer.pad_token_id, "token_budget": 300}
    expected = passes.response_nll(model, sequences, **options)
    monkeypatch.setattr(fast, "packs", lambda network: True)
    np.testing.assert_allclose(passes.response_nll(model, sequences, **options), expected, rtol=1e-6)


def test_ifd_of_the_fast_pass_ranks_as_float32_does(model, tokenizer):
    frame = pd.concat([FRAME] * 2, ignore_index=True).assign(output=lambda f: f.output + f.index.astype(str) * 3)
    fp32 = passes.ifd_scores(model, tokenizer, frame, max_length=200)
    bf16 = passes.ifd_scores(model, tokenizer, frame, max_length=200, precision="bf16")
    np.testing.assert_allclose(bf16, fp32, rtol=2 * BF16_NLL)
    assert (np.argsort(bf16) == np.argsort(fp32)).mean() >= 0.75


def test_a_cancel_while_scoring_hands_the_model_back(model, tokenizer):
    before = _state(model)

    def cancel(_done: int) -> None:
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        passes.response_nll(model, _sequences(tokenizer), pad_id=tokenizer.pad_token_id, bf16=True, progress=cancel)
    _assert_unchanged(model, before)


def test_hidden_states_of_the_fast_pass_point_where_float32_ones_do(model, tokenizer):
    fp32 = pooled_hidden_states(model, tokenizer, FRAME, max_length=200, token_budget=300)
    before = _state(model)
    bf16 = pooled_hidden_states(model, tokenizer, FRAME, max_length=200, token_budget=300, bf16=True)
    _assert_unchanged(model, before)
    cosines = (fp32 * bf16).sum(axis=1)
    assert cosines.min() > 0.999 and not np.array_equal(fp32, bf16)


@pytest.fixture
def eval_set(tmp_path):
    path = tmp_path / "mini.jsonl"
    rows = FRAME.to_dict("records")
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return ev.load_eval_set(path)


@pytest.mark.parametrize("adapted", [False, True])
def test_eval_loss_of_the_fast_pass_is_the_float32_loss_for_a_base_model_and_an_adapter(
    model, tokenizer, eval_set, adapted
):
    network = model
    if adapted:  # LoRA with non-zero B: the adapter changes the loss, and its layers run in bf16 too
        network = prepare_model(model, TrainConfig())
        with torch.no_grad():
            for name, param in network.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(1))
    fp32 = ev.evaluate(network, tokenizer, eval_set, max_length=200, generate=False)
    before = _state(network)
    bf16 = ev.evaluate(network, tokenizer, eval_set, max_length=200, generate=False, precision="bf16")
    for name, param in network.named_parameters():
        assert param.dtype == torch.float32 and torch.equal(param, before[name]), name
    assert bf16.loss == pytest.approx(fp32.loss, abs=BF16_NLL) and bf16.loss != fp32.loss
    if adapted:
        base = ev.evaluate(model, tokenizer, eval_set, max_length=200, generate=False)
        assert abs(base.loss - fp32.loss) > 2 * BF16_NLL  # the adapter's effect is larger than bf16's


def test_the_kmq_round_scorer_goes_through_the_same_fast_response_nll(model, tokenizer):
    generations = ["Five.", "Red.", "Hello there.", "Hi Ana."]
    scorer = PerplexityDifferenceScorer(max_length=200, precision="bf16")
    gold = passes.response_nlls(model, tokenizer, FRAME, list(FRAME.output), 200, precision="bf16")
    generated = passes.response_nlls(model, tokenizer, FRAME, generations, 200, precision="bf16")
    np.testing.assert_array_equal(
        scorer(model, tokenizer, FRAME, generations), loops.ppl_difference_scores(gold, generated)
    )
    # a run records its scorer's repr: an fp32 scorer reads as it did before the precision existed
    assert repr(PerplexityDifferenceScorer()) == "PerplexityDifferenceScorer(max_length=512, convention='gold_better')"
    assert "precision='bf16'" in repr(scorer)


@pytest.mark.parametrize("native", [True, False])
def test_cache_keys_hold_the_resolved_precision_and_differ_by_it(monkeypatch, native):
    monkeypatch.setattr(device_module, "use_bf16", lambda device: native)
    resolved = "bf16" if native else "fp32"
    for scorer in (scorers.IFDScorer, scorers.PerplexityScorer):
        auto, bf16, fp32 = (scorer(precision=p).score_key() for p in ("auto", "bf16", "fp32"))
        assert bf16 != fp32 and auto == (bf16 if native else fp32)
        assert f'"precision": "{resolved}"' in auto and '"precision": "auto"' not in auto
        assert bf16.endswith(":pass=bf16-weights") and "pass=" not in fp32  # not the autocast pass's values
    config = hidden_pipeline.HiddenConfig(max_length=64)
    assert config.resolved_precision("cpu") == resolved
    dataset = SimpleNamespace(dataset_id=1, file_sha256="0" * 64)
    keys = {p: hidden_pipeline.pool_info(dataset, config, p, 4).feature_key for p in ("bf16", "fp32")}
    assert keys["bf16"] != keys["fp32"]
    assert device_module.resolved_precision("auto", "cpu") == resolved
    with pytest.raises(ValueError, match="precision"):
        device_module.resolved_precision("fp16", "cpu")
