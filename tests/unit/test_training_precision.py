"""bf16 LoRA training: bf16 passes over the frozen base, float32 adapter, optimizer and checkpoints, the
float32 base handed back however the loop ends, and a loss that follows the float32 run's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from core import jobs
from core.models import device
from core.models.passes import render_examples, unwrapped
from core.progress import Cancelled
from core.runs.run import RunSpec
from core.train.trainer import TrainConfig, load_checkpoint, run_steps, start_session, step_plan, train
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

ROWS = pd.DataFrame(
    {
        "instruction": [f"Say the colour number {i}." for i in range(12)],
        "input": [""] * 12,
        "output": ["Blue." if i % 2 else "Red." for i in range(12)],
    }
)
BF16 = TrainConfig(
    target_modules="all-linear",
    learning_rate=2e-2,
    epochs=3,
    batch_size=2,
    grad_accum=2,
    warmup_ratio=0.1,
    checkpoint_every=2,
    precision="bf16",
)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = byte_tokenizer()
    return tiny_causal_lm(tokenizer), tokenizer


@pytest.fixture(autouse=True)
def native_bf16(monkeypatch):
    """bf16 training is refused on a CPU without native bf16; these tests check what it computes on any CPU."""
    monkeypatch.delenv("CURATE_PRECISION", raising=False)
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)


def _train(tiny, config: TrainConfig, out_dir, **kwargs):
    model, tokenizer = tiny
    return train(model, tokenizer, ROWS, config, out_dir, **kwargs)


def _session(tiny, config=BF16):
    model, tokenizer = tiny
    data = render_examples(tokenizer, ROWS, config.max_length)
    plan = step_plan(len(data), config)
    return start_session(model, tokenizer, config, len(plan)), data, plan


def _frozen(session) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in session.model.named_parameters() if not p.requires_grad}


def _assert_float32_base_as_before(session, before: dict[str, torch.Tensor]) -> None:
    params = dict(session.model.named_parameters())
    for name, value in before.items():
        assert params[name].dtype == torch.float32, name
        assert torch.equal(params[name], value), name  # bit for bit: the bf16 copies never wrote back
    assert not session.model.training


def test_a_bf16_step_runs_the_base_in_bf16_and_trains_only_the_float32_lora_weights(tiny):
    session, data, plan = _session(tiny)
    frozen, trainable = _frozen(session), {n: p.detach().clone() for n, p in session.model.named_parameters()}
    seen: list[torch.dtype] = []
    hook = unwrapped(session.model).base_model.register_forward_hook(lambda m, i, out: seen.append(out[0].dtype))
    try:
        run_steps(session, data, plan[:2])
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the passes really ran on bf16 weights
    _assert_float32_base_as_before(session, frozen)
    lora = {name: p for name, p in session.model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in name for name in lora)
    assert all(p.dtype == torch.float32 for p in lora.values())
    assert all(not torch.equal(p, trainable[name]) for name, p in lora.items() if "lora_B" in name)
    moments = [v for state in session.optimizer.state.values() for k, v in state.items() if k.startswith("exp_avg")]
    assert len(moments) == 2 * len(lora) and all(v.dtype == torch.float32 for v in moments)


def test_bf16_gradients_reach_the_lora_weights_in_float32(tiny):
    session, data, plan = _session(tiny)
    grads: dict[str, torch.dtype] = {}
    for name, param in session.model.named_parameters():
        if param.requires_grad:
            param.register_hook(lambda grad, name=name: grads.__setitem__(name, grad.dtype))
    run_steps(session, data, plan[:1])
    lora = [name for name, p in session.model.named_parameters() if p.requires_grad]
    assert sorted(grads) == sorted(lora) and set(grads.values()) == {torch.float32}


def test_the_bf16_loss_follows_the_float32_loss_within_one_percent(tiny, tmp_path):
    fp32 = _train(tiny, TrainConfig(**{**BF16.__dict__, "precision": "fp32"}), tmp_path / "fp32")
    bf16 = _train(tiny, BF16, tmp_path / "bf16")
    assert len(bf16.losses) == len(fp32.losses) == 9
    # bf16 keeps 8 bits of mantissa: 0.4 % per rounding; the tiny model's losses differed by 0.1 % at most
    np.testing.assert_allclose(bf16.losses, fp32.losses, rtol=1e-2)
    assert fp32.losses[0] != bf16.losses[0]  # the two runs did not take the same path
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())


def test_an_error_inside_a_bf16_step_hands_back_the_float32_base(tiny, monkeypatch):
    session, data, plan = _session(tiny)
    before = _frozen(session)

    def broken_step(*args, **kwargs):
        raise RuntimeError("out of memory in the optimizer")

    monkeypatch.setattr(session.optimizer, "step", broken_step)  # after the backward pass, bf16 weights in place
    with pytest.raises(RuntimeError, match="out of memory"):
        run_steps(session, data, plan)
    _assert_float32_base_as_before(session, before)


def test_a_cancelled_bf16_loop_hands_back_the_float32_base(tiny):
    session, data, plan = _session(tiny)
    before = _frozen(session)
    asked = iter([False, False, True])
    with pytest.raises(Cancelled, match="cancelled at step 2 of 9"):
        run_steps(session, data, plan, should_stop=lambda: next(asked))
    _assert_float32_base_as_before(session, before)


def test_a_bf16_checkpoint_holds_float32_tensors_and_resumes_to_the_uninterrupted_run(tiny, tmp_path):
    whole = _train(tiny, BF16, tmp_path / "whole")
    asked = iter([False] * 5 + [True])
    with pytest.raises(Cancelled, match="cancelled at step 5 of 9"):
        _train(tiny, BF16, tmp_path / "split", should_stop=lambda: next(asked))
    state = load_checkpoint(tmp_path / "split" / "checkpoint" / "state.pt")
    assert state["weights"] and all(w.dtype == torch.float32 for w in state["weights"].values())
    assert all("lora_" in name for name in state["weights"])  # the (bf16-run) base is never saved
    moments = [v for s in state["optimizer"]["state"].values() for k, v in s.items() if k.startswith("exp_avg")]
    assert moments and all(v.dtype == torch.float32 for v in moments)
    assert state["config"]["precision"] == "bf16"
    resumed = _train(tiny, BF16, tmp_path / "split")
    assert resumed.resumed_from == 5
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-5)
    for (name, a), (_, b) in zip(whole.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        if a.requires_grad:
            assert a.dtype == b.dtype == torch.float32 and torch.allclose(a, b, atol=1e-6), name


def test_an_unknown_precision_or_bf16_full_fine_tuning_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="precision must be fp32 or bf16, not 'fp16'"):
        TrainConfig(precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision bf16 trains LoRA adapters only: full fine-tuning keeps float32"):
        TrainConfig(method="full", precision="bf16")
    spec = RunSpec(dataset="d", strategy="random", budget=4, config={"precision": "half"})
    with pytest.raises(jobs.InvalidJob, match="precision must be fp32 or bf16, not 'half'") as refused:
        spec.train_config()
    assert refused.value.field == "config"


def test_bf16_is_refused_on_a_cpu_without_native_bf16_unless_forced(tiny, monkeypatch):
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    with pytest.raises(ValueError, match=r"precision bf16 needs native bf16 .* use precision=fp32"):
        _session(tiny)
    monkeypatch.setenv("CURATE_PRECISION", "bf16")
    session, _, _ = _session(tiny)
    assert session.config.precision == "bf16"
