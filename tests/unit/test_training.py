"""Fine-tuning on a tiny randomly initialised causal LM: the loss falls, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.models.passes import IGNORE, collate, render_examples
from core.progress import Cancelled
from core.train.trainer import TrainConfig, checkpoint_step, step_plan, train
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

ROWS = pd.DataFrame(
    {
        "instruction": [f"Say the colour number {i}." for i in range(12)],
        "input": [""] * 12,
        "output": ["Blue." if i % 2 else "Red." for i in range(12)],
    }
)
CONFIG = TrainConfig(
    target_modules="all-linear",
    learning_rate=2e-2,
    epochs=3,
    batch_size=2,
    grad_accum=2,
    warmup_ratio=0.1,
    checkpoint_every=2,
)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = byte_tokenizer()
    return tiny_causal_lm(tokenizer), tokenizer


def test_labels_cover_exactly_the_response_tokens(tiny):
    _, tokenizer = tiny
    example = render_examples(tokenizer, ROWS.iloc[:1], 256)[0]
    response = [t for t, label in zip(example.ids, example.labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(response) == "Red.<|im_end|>\n"


def test_the_data_order_is_seeded_and_covers_every_example_once_per_epoch():
    plan = step_plan(12, CONFIG)
    assert len(plan) == 3 * 3  # 12 examples / (2 per micro-batch x 2 micro-batches) per epoch x 3 epochs
    first_epoch = np.concatenate([b for step in plan[:3] for b in step])
    assert sorted(first_epoch) == list(range(12))
    assert [b.tolist() for s in plan for b in s] == [b.tolist() for s in step_plan(12, CONFIG) for b in s]
    assert [b.tolist() for s in step_plan(12, TrainConfig(**{**CONFIG.__dict__, "seed": 1})) for b in s] != [
        b.tolist() for s in plan for b in s
    ]


def test_lora_training_lowers_the_loss_and_leaves_the_base_model_untouched(tiny, tmp_path):
    import torch

    model, tokenizer = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, tokenizer, ROWS, CONFIG, tmp_path / "run")
    assert result.steps == 9 and len(result.losses) == 9
    assert np.mean(result.losses[-3:]) < 0.95 * np.mean(result.losses[:3])  # a random tiny model learns slowly
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert (tmp_path / "run" / "final" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_cancelled_run_resumes_to_the_same_result_as_an_uninterrupted_one(tiny, tmp_path):
    import torch

    model, tokenizer = tiny
    config = TrainConfig(**{**CONFIG.__dict__, "lora_dropout": 0.1})  # dropout: the RNG state must be restored
    whole = train(model, tokenizer, ROWS, config, tmp_path / "whole")

    calls = {"n": 0}

    def stop_after_five() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(Cancelled, match="cancelled at step 5 of 9"):
        train(model, tokenizer, ROWS, config, tmp_path / "split", should_stop=stop_after_five)
    assert checkpoint_step(tmp_path / "split") == 5
    resumed = train(model, tokenizer, ROWS, config, tmp_path / "split")
    assert resumed.resumed_from == 5
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-5)
    for (name, a), (_, b) in zip(whole.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        if a.requires_grad:
            assert torch.allclose(a, b, atol=1e-6), name


def test_the_same_config_trains_the_same_adapter_whatever_the_process_drew_before(tiny, tmp_path):
    import torch

    model, tokenizer = tiny
    first = train(model, tokenizer, ROWS, CONFIG, tmp_path / "first")
    torch.rand(1000)  # other work in the same process moves the global RNG
    second = train(model, tokenizer, ROWS, CONFIG, tmp_path / "second")
    other = train(model, tokenizer, ROWS, CONFIG, tmp_path / "other", adapter_seed=CONFIG.seed + 1)
    assert second.losses == first.losses
    assert other.losses != first.losses  # the seed is what draws the adapter


def test_full_fine_tune_trains_every_weight(tiny, tmp_path):
    model, tokenizer = tiny
    config = TrainConfig(**{**CONFIG.__dict__, "method": "full", "learning_rate": 1e-3, "epochs": 1})
    result = train(model, tokenizer, ROWS, config, tmp_path / "full")
    assert all(p.requires_grad for p in result.model.parameters())
    assert (tmp_path / "full" / "final" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="empty"):
        train(model, tokenizer, ROWS.iloc[:0], config, tmp_path / "none")


def test_the_response_only_head_gives_the_loss_of_full_logits(tiny):
    import torch

    from core.train.trainer import _summed_loss

    model, tokenizer = tiny
    batch = collate(render_examples(tokenizer, ROWS.iloc[:3], 256), tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        full = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            batch["labels"][:, 1:].reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        assert float(_summed_loss(model, batch)) == pytest.approx(float(full), rel=1e-5)
