"""Our KV-cached greedy loop on the tiny random Llama: model.generate's tokens in float32, the prompts' order,
finished rows leaving the batch, a cancel that hands the weights back, bf16 weights, a LoRA model."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from core.models import generation as gen
from core.progress import Cancelled
from core.train.trainer import TrainConfig, prepare_model
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

TEXTS = [
    "Hi",
    "Say something long about bread and butter, and about the bakery at the corner of the street",
    "What is 2+2?",
    "x",
    "Tell me a story about a cat and a dog who are friends",
    "Name three planets.",
    "Why?",
]
NEW = 12


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture
def model(tokenizer):
    return tiny_causal_lm(tokenizer)


@pytest.fixture
def prompts(tokenizer) -> list[list[int]]:
    return [gen.prompt_ids(tokenizer, text) for text in TEXTS]


def _reference(model, tokenizer, prompts):
    """model.generate's greedy tokens, every prompt in one left-padded batch."""
    with torch.inference_mode():
        return gen.reference_generate(model, tokenizer, prompts, NEW, batch_size=len(prompts))


def _ours(model, tokenizer, prompts, **options):
    stop, pad_id = gen.stop_ids(model, tokenizer), tokenizer.pad_token_id
    return gen.greedy_decode(model, prompts, max_new_tokens=NEW, stop=stop, pad_id=pad_id, **options)


def _stop_early(model, tokenizer, prompts) -> None:
    """Make two tokens the random model emits mid-answer its end tokens, so rows stop at different steps."""
    free = _reference(model, tokenizer, prompts)
    model.generation_config.eos_token_id = [free[1][3], free[4][6]]


def _snapshot(model) -> list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]]:
    return [(param, param.data, param.data.clone()) for param in model.parameters()]


def _unchanged(snapshot) -> bool:
    """Every parameter holds its own float32 tensor again, bit for bit."""
    return all(
        param.data_ptr() == data.data_ptr() and param.dtype == torch.float32 and torch.equal(data, copy)
        for param, data, copy in snapshot
    )


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_greedy_tokens_equal_model_generate_in_float32(model, tokenizer, prompts, batch_size):
    _stop_early(model, tokenizer, prompts)
    reference = _reference(model, tokenizer, prompts)
    lengths = [len(ids) for ids in reference]
    assert min(lengths) < NEW and len(set(lengths)) > 2  # early stops at different steps, and full-length rows
    assert len({len(ids) for ids in prompts}) == len(prompts)  # every batch of two or more is left-padded
    assert _ours(model, tokenizer, prompts, batch_size=batch_size, precision="fp32") == reference


def test_outputs_come_back_in_the_prompts_order(model, tokenizer, prompts):
    _stop_early(model, tokenizer, prompts)
    forward = _ours(model, tokenizer, prompts, batch_size=3)
    backward = _ours(model, tokenizer, prompts[::-1], batch_size=3)
    assert backward == forward[::-1]
    alone = [_ours(model, tokenizer, [prompt])[0] for prompt in prompts]
    assert forward == alone


def test_responses_are_the_rows_answers_and_progress_counts_every_prompt(model, tokenizer):
    frame = pd.DataFrame({"instruction": TEXTS, "input": ["", "with butter", "", "", "", "", ""]})
    done: list[int] = []
    texts = gen.generate_responses(model, tokenizer, frame, NEW, batch_size=3, progress=done.append)
    one_by_one = [gen.generate(model, tokenizer, [row], 512, NEW)[0] for row in frame.itertuples(index=False)]
    assert texts == one_by_one and any(texts)
    assert sorted(done) == [1, 3, 3] and sum(done) == len(TEXTS)


def test_finished_rows_leave_the_batch(model, tokenizer, prompts):
    _stop_early(model, tokenizer, prompts)
    reference = _reference(model, tokenizer, prompts)
    rows_per_call: list[int] = []
    hook = model.register_forward_hook(
        lambda module, args, kwargs, out: rows_per_call.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    try:
        _ours(model, tokenizer, prompts, batch_size=len(prompts))
    finally:
        hook.remove()
    lengths = sorted(len(ids) for ids in reference)
    # the prefill, then one call per step with the rows still writing: step k holds the rows longer than k
    assert rows_per_call == [len(prompts)] + [sum(n > k for n in lengths) for k in range(1, max(lengths))]


def test_a_cancel_between_steps_stops_and_hands_the_float32_weights_back(model, tokenizer, prompts):
    snapshot = _snapshot(model)
    asked = []
    seen_dtypes = []
    hook = model.register_forward_hook(lambda module, args, out: seen_dtypes.append(out.logits.dtype))

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) >= 3

    try:
        with pytest.raises(Cancelled, match="generating"):
            _ours(model, tokenizer, prompts, precision="bf16", should_stop=stop_after_three)
    finally:
        hook.remove()
    assert len(seen_dtypes) == 3 and set(seen_dtypes) == {torch.bfloat16}  # stopped at the third check
    assert _unchanged(snapshot)
    assert model.config._attn_implementation == "sdpa"
    assert not torch.is_inference_mode_enabled() and not model.training


def test_bf16_generation_runs_on_bf16_weights_and_restores_them(model, tokenizer, prompts):
    snapshot = _snapshot(model)
    seen_dtypes = []
    hook = model.register_forward_hook(lambda module, args, out: seen_dtypes.append(out.logits.dtype))
    try:
        bf16 = _ours(model, tokenizer, prompts, precision="bf16", batch_size=4)
    finally:
        hook.remove()
    assert set(seen_dtypes) == {torch.bfloat16}
    assert [len(ids) for ids in bf16] == [NEW] * len(prompts)  # the random model never says its end token
    assert _unchanged(snapshot)
    assert _ours(model, tokenizer, prompts, precision="fp32") == _reference(model, tokenizer, prompts)


def test_an_error_inside_the_loop_hands_the_weights_back(model, tokenizer, prompts):
    snapshot = _snapshot(model)

    def broken() -> bool:
        raise RuntimeError("the status file vanished")

    with pytest.raises(RuntimeError, match="vanished"):
        _ours(model, tokenizer, prompts, precision="bf16", should_stop=broken)
    assert _unchanged(snapshot)


@pytest.fixture
def lora(tokenizer):
    """The tiny model with a LoRA adapter whose B matrices are not zero, so the adapter changes the answers."""
    torch.manual_seed(0)
    adapted = prepare_model(tiny_causal_lm(tokenizer), TrainConfig())
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    return adapted.eval()


def test_a_lora_model_generates_its_own_greedy_answers(lora, model, tokenizer, prompts):
    reference = _reference(lora, tokenizer, prompts)  # model.generate through peft
    assert _ours(lora, tokenizer, prompts, batch_size=3) == reference
    assert reference != _reference(model, tokenizer, prompts)  # the adapter is applied
    snapshot = _snapshot(lora)
    bf16 = _ours(lora, tokenizer, prompts, batch_size=3, precision="bf16")
    assert len(bf16) == len(prompts) and all(bf16)
    assert _unchanged(snapshot)


def test_a_generation_config_with_a_repetition_penalty_goes_through_model_generate(model, tokenizer, prompts):
    plain = _reference(model, tokenizer, prompts)
    model.generation_config.repetition_penalty = 3.0
    penalised = _reference(model, tokenizer, prompts)
    assert penalised != plain  # the penalty changes the answers...
    assert _ours(model, tokenizer, prompts, batch_size=3) == penalised  # ...and our path applies it


def test_nothing_to_generate(model, tokenizer, prompts):
    assert _ours(model, tokenizer, []) == []
    stop, pad_id = gen.stop_ids(model, tokenizer), tokenizer.pad_token_id
    assert gen.greedy_decode(model, prompts[:2], max_new_tokens=0, stop=stop, pad_id=pad_id) == [[], []]
    with pytest.raises(ValueError, match="batch_size"):
        _ours(model, tokenizer, prompts, batch_size=0)


def test_a_kmq_round_generates_at_its_precision_and_records_it_for_resume(tmp_path, monkeypatch):
    import json

    from core.runs import iterative_kmq
    from core.runs.iterative_kmq import IterativeKMQConfig
    from core.runs.loops import LoopHooks
    from tests.unit.test_iterative import CONFIG, DATA, KEPT, _pool, planted_scorer

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return gen.generate_responses(*args, **kwargs)

    monkeypatch.setattr(iterative_kmq, "generate_responses", spy)
    tokenizer = byte_tokenizer()
    model = tiny_causal_lm(tokenizer)
    hooks = LoopHooks(should_stop=lambda: False)
    runs = {}
    for precision in ("bf16", "fp32"):
        settings = IterativeKMQConfig(2, 1, max_new_tokens=2, generation_precision=precision)
        out = tmp_path / precision
        iterative_kmq.run_iterative_kmq(
            model, tokenizer, _pool(), DATA.iloc[KEPT], settings, CONFIG, out, scorer=planted_scorer, hooks=hooks
        )
        runs[precision] = json.loads((out / "run.json").read_text())
    assert [call["precision"] for call in calls] == ["bf16", "fp32"]
    assert all(call["should_stop"] is hooks.should_stop for call in calls)  # a cancel reaches the decoding steps
    assert runs["bf16"]["generation_precision"] == "bf16"
    assert "generation_precision" not in runs["fp32"]  # as every run written before the option: they still resume
    other = IterativeKMQConfig(2, 1, max_new_tokens=2, generation_precision="fp32")
    with pytest.raises(ValueError, match="generation_precision"):
        iterative_kmq.run_iterative_kmq(
            model, tokenizer, _pool(), DATA.iloc[KEPT], other, CONFIG, tmp_path / "bf16", scorer=planted_scorer
        )
