"""The fast pass: bf16 weights that come back as they were, the chunked CPU attention, oneDNN's packed linear
layers, the fused head and loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from core.gradients.features import gradient_features
from core.models import fast as fast_passes
from core.models.device import cpu_has_onednn_bf16
from core.models.fast import (
    ATTENTION_NAME,
    bf16_weights,
    chunked_causal_attention,
    cpu_chunked_attention,
    fast_pass,
    fused_head_allowed,
    head_nll,
    packed_causal_attention,
    packed_plan,
    weighted_head_nll,
)
from core.models.passes import collate, render_examples
from core.progress import Cancelled
from core.train.trainer import TrainConfig, prepare_model
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

FRAME = pd.DataFrame(
    {
        "instruction": ["Say b.", "Greet the friend in the input.", "What is two plus two?", "Hi"],
        "input": ["", "Ana", "", ""],
        "output": ["b", "Hello, Ana! " * 12, "4", "Hello."],
    }
)


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    lora = prepare_model(tiny_causal_lm(tokenizer), TrainConfig())
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.1)
    return lora.eval()


def _qkv(batch: int, heads: int, groups: int, length: int, dim: int):
    generator = torch.Generator().manual_seed(0)
    shapes = [(batch, heads, length, dim), (batch, groups, length, dim), (batch, groups, length, dim)]
    return [torch.randn(shape, generator=generator).requires_grad_(True) for shape in shapes]


def _padding_mask(lengths: list[int], length: int) -> torch.Tensor:
    """(b, 1, T, T): causal, and no query attends to a pad key (right padding), as transformers builds it."""
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    real = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return (causal[None] & real[:, None, :])[:, None]


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("chunk", [5, 64])  # several chunks with a ragged last one; one chunk
def test_chunked_attention_and_its_gradients_equal_sdpa(padded, chunk):
    query, key, value = _qkv(batch=3, heads=6, groups=2, length=23, dim=8)
    mask = _padding_mask([23, 17, 9], 23) if padded else None
    ours = chunked_causal_attention(query, key, value, mask, scaling=0.3, chunk=chunk)
    reference = torch.nn.functional.scaled_dot_product_attention(
        query,
        key.repeat_interleave(3, dim=1),
        value.repeat_interleave(3, dim=1),
        attn_mask=mask,
        is_causal=mask is None,
        scale=0.3,
    ).transpose(1, 2)
    assert ours.shape == (3, 23, 6, 8)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1))
    ours_grads = torch.autograd.grad(ours, (query, key, value), upstream)
    reference_grads = torch.autograd.grad(reference, (query, key, value), upstream)
    for got, expected in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_the_model_uses_the_chunked_attention_only_inside_the_block(model, tokenizer, monkeypatch):
    batch = collate(render_examples(tokenizer, FRAME, 128), tokenizer.pad_token_id)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[3] is not None)  # whether a padding mask came in
        return chunked_causal_attention(*args, **kwargs)

    monkeypatch.setattr(fast_passes, "chunked_causal_attention", counted)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        expected = model(**inputs).logits
        assert not calls
        with cpu_chunked_attention(model):
            assert model.config._attn_implementation == ATTENTION_NAME
            got = model(**inputs).logits
        assert model.config._attn_implementation == "sdpa"
    assert calls == [True] * model.config.num_hidden_layers  # padded batch: the mask reached every layer
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-4, atol=1e-5)


def test_a_model_on_another_attention_is_left_alone(tokenizer):
    eager = tiny_causal_lm(tokenizer)
    eager.config._attn_implementation = "eager"
    with cpu_chunked_attention(eager):
        assert eager.config._attn_implementation == "eager"


def test_bf16_weights_come_back_as_the_same_float32_tensors_even_after_an_error(model):
    before = {name: (param, param.data_ptr()) for name, param in model.named_parameters()}
    buffers = {name: buffer.dtype for name, buffer in model.named_buffers()}
    with pytest.raises(RuntimeError, match="boom"), bf16_weights(model):
        assert {param.dtype for param in model.parameters()} == {torch.bfloat16}
        assert {name: buffer.dtype for name, buffer in model.named_buffers()} == buffers  # rotary stays float32
        assert all(param is before[name][0] for name, param in model.named_parameters())
        raise RuntimeError("boom")
    for name, param in model.named_parameters():
        assert param is before[name][0] and param.data_ptr() == before[name][1] and param.dtype == torch.float32


@pytest.mark.parametrize("chunk", [4, 256])
def test_the_fused_head_gives_the_weighted_cross_entropy_and_its_gradient(monkeypatch, chunk):
    monkeypatch.setattr(fast_passes, "HEAD_CHUNK", chunk)
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(10, 6, generator=generator, requires_grad=True)
    weight = torch.randn(13, 6, generator=generator)
    targets = torch.randint(0, 13, (10,), generator=generator)
    row_weights = torch.rand(10, generator=generator)
    ours = weighted_head_nll(hidden, weight, targets, row_weights)
    nll = torch.nn.functional.cross_entropy(hidden @ weight.T, targets, reduction="none")
    expected = (nll * row_weights).sum()
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(torch.autograd.grad(2 * ours, hidden)[0], torch.autograd.grad(2 * expected, hidden)[0])


def test_only_a_plain_frozen_head_is_fused():
    head = torch.nn.Linear(4, 7, bias=False).requires_grad_(False)
    assert fused_head_allowed(head)
    assert not fused_head_allowed(torch.nn.Linear(4, 7, bias=False))  # trainable: its own gradient is needed
    assert not fused_head_allowed(torch.nn.Linear(4, 7).requires_grad_(False))  # a bias


def test_bf16_features_leave_the_model_as_it_was_even_when_cancelled(model, tokenizer):
    state = {name: param.detach().clone() for name, param in model.named_parameters()}
    options = {"moments": None, "d": 16, "max_length": 128, "batch_size": 2, "precision": "bf16"}
    features = gradient_features(model, tokenizer, FRAME, **options)
    with pytest.raises(Cancelled):
        gradient_features(model, tokenizer, FRAME, should_stop=lambda: True, **options)
    assert model.config._attn_implementation == "sdpa"
    for name, param in model.named_parameters():
        assert param.dtype == torch.float32 and torch.equal(param, state[name]), name
    assert (features.astype("float32") ** 2).sum(axis=1).min() > 0.99  # unit rows: every example had a gradient


def _reference_attention(query, key, value, mask, scaling):
    """SDPA with the key heads repeated; without a mask, causal with the queries as the last positions."""
    shared = query.shape[1] // key.shape[1]
    if mask is None:
        length, keys = query.shape[2], key.shape[2]
        mask = torch.ones(length, keys, dtype=torch.bool).tril(diagonal=keys - length)
    return torch.nn.functional.scaled_dot_product_attention(
        query,
        key.repeat_interleave(shared, dim=1),
        value.repeat_interleave(shared, dim=1),
        attn_mask=mask,
        scale=scaling,
    ).transpose(1, 2)


@pytest.mark.parametrize("padded", [False, True])
def test_chunked_attention_after_cached_prefix_keys_equals_sdpa(padded):
    """Queries that follow 7 cached keys (a shared prefix run once) see the prefix and their own past only."""
    generator = torch.Generator().manual_seed(4)
    query = torch.randn(3, 6, 16, 8, generator=generator)
    key, value = (torch.randn(3, 2, 7 + 16, 8, generator=generator) for _ in range(2))
    mask = None
    if padded:  # the batch's rows end after 16, 11 and 4 of their own tokens
        causal = torch.ones(16, 23, dtype=torch.bool).tril(diagonal=7)
        real = torch.arange(23)[None, :] < torch.tensor([23, 18, 11])[:, None]
        mask = (causal[None] & real[:, None, :])[:, None]
    ours = chunked_causal_attention(query, key, value, mask, scaling=0.4, chunk=5)
    expected = _reference_attention(query, key, value, mask, 0.4)
    rows = [16, 11, 4] if padded else [16] * 3
    for row, n in enumerate(rows):  # a pad query's output is nobody's input
        torch.testing.assert_close(ours[row, :n], expected[row, :n], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sizes", [[9, 3, 12], [2, 2, 9, 1, 3, 12, 4]])
@pytest.mark.parametrize("prefix", [0, 7])
def test_packed_attention_gives_each_sequence_its_own_attention(prefix, sizes):
    """Sequences back to back in one row (after ``prefix`` cached keys every one shares): each output is the
    one its sequence gets alone, with query chunks of 5 that cut the long sequences and hold several short
    ones (2 + 2, then 1 + 3)."""
    generator = torch.Generator().manual_seed(5)
    query = torch.randn(1, 6, sum(sizes), 8, generator=generator)
    key, value = (torch.randn(1, 2, prefix + sum(sizes), 8, generator=generator) for _ in range(2))
    bounds = torch.tensor([0, *np.cumsum(sizes)])
    plan = packed_plan(bounds, 5, query.dtype, query.device)
    ours = packed_causal_attention(query, key, value, plan, scaling=0.4)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        own = [*range(prefix), *range(prefix + lo, prefix + hi)]
        alone = chunked_causal_attention(query[:, :, lo:hi], key[:, :, own], value[:, :, own], None, scaling=0.4)
        torch.testing.assert_close(ours[:, lo:hi], alone, rtol=1e-5, atol=1e-5)


def test_a_packed_plan_puts_short_sequences_together_and_cuts_long_ones_at_their_start():
    plan = packed_plan(torch.tensor([0, 2, 4, 13, 14, 17, 29]), 5, torch.float32, torch.device("cpu"))
    assert [(c.lo, c.hi, c.first) for c in plan] == [
        (0, 4, 0),
        (4, 9, 4),
        (9, 13, 4),
        (13, 17, 13),
        (17, 22, 17),
        (22, 27, 17),
        (27, 29, 17),
    ]


def _state(model):
    return {name: (param, param.data_ptr(), param.detach().clone()) for name, param in model.named_parameters()}


def _assert_handed_back(model, before) -> None:
    assert model.config._attn_implementation == "sdpa"
    assert not [name for name, module in model.named_modules() if "forward" in vars(module)]  # no packed layer left
    for name, param in model.named_parameters():
        original, pointer, values = before[name]
        assert param is original and param.data_ptr() == pointer and param.dtype == torch.float32, name
        assert torch.equal(param, values), name


@pytest.mark.parametrize("stop", [RuntimeError("boom"), Cancelled("stop"), KeyboardInterrupt()])
@pytest.mark.parametrize("peft", [False, True])
def test_the_fast_pass_hands_the_model_back_bit_for_bit_after_an_error_or_a_cancel(tokenizer, model, stop, peft):
    network = model if peft else tiny_causal_lm(tokenizer)
    before = _state(network)
    batch = collate(render_examples(tokenizer, FRAME, 128), tokenizer.pad_token_id)
    with pytest.raises(type(stop)), fast_pass(network, "bf16") as bf16:
        assert bf16 and {param.dtype for param in network.parameters()} == {torch.bfloat16}
        assert network.config._attn_implementation == ATTENTION_NAME
        with torch.inference_mode():
            network(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        raise stop
    _assert_handed_back(network, before)


def test_an_fp32_pass_leaves_the_model_as_it_is(tokenizer):
    network = tiny_causal_lm(tokenizer)
    before = _state(network)
    with fast_pass(network, "fp32") as bf16:
        assert not bf16 and network.config._attn_implementation == "sdpa"
        assert {param.dtype for param in network.parameters()} == {torch.float32}
    _assert_handed_back(network, before)
    with pytest.raises(ValueError, match="precision"), fast_pass(network, "fp16"):
        pass


def test_nested_fast_passes_hand_back_only_at_the_outer_end(tokenizer):
    network = tiny_causal_lm(tokenizer)
    before = _state(network)
    with fast_pass(network, True):
        with fast_pass(network, True):
            pass
        assert {param.dtype for param in network.parameters()} == {torch.bfloat16}
        assert network.config._attn_implementation == ATTENTION_NAME
    _assert_handed_back(network, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_head_nll_gives_each_positions_cross_entropy(monkeypatch, dtype):
    monkeypatch.setattr(fast_passes, "HEAD_CHUNK", 4)  # several chunks, a ragged last one
    generator = torch.Generator().manual_seed(5)
    hidden = torch.randn(10, 6, generator=generator)
    weight = torch.randn(13, 6, generator=generator) * 3
    targets = torch.randint(0, 13, (10,), generator=generator)
    head = torch.nn.Linear(6, 13, bias=False)
    head.weight.data = weight
    expected = torch.nn.functional.cross_entropy(hidden @ weight.T, targets, reduction="none")
    got = head_nll(hidden.to(dtype), head.to(dtype), targets)
    assert got.dtype == torch.float32 and got.shape == (10,)
    tolerance = 1e-5 if dtype == torch.float32 else 0.02  # bf16 logits: rounded to 8 bits
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)


def test_head_nll_of_a_target_far_below_the_others_is_its_exact_logit_gap():
    logits = torch.tensor([[0.0, 120.0, 5.0], [3.0, 0.0, 0.0]])
    got = head_nll(logits, lambda x: x, torch.tensor([0, 0]))
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0]), reduction="none")
    torch.testing.assert_close(got, expected)  # 120 nats: a softmax would have rounded p to 0
    assert got[0] > 119


def test_head_nll_of_a_nearly_certain_bf16_target_keeps_its_digits():
    # 49,152 other tokens 16 to 20 nats below the target: p_t = 1 - 6e-3..1e-4, which bf16 rounds by up to
    # 2e-3 (to 1 for the last): 1 - p_t taken from a bf16 p_t would be off by 30 % to 100 %
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 49_152, generator=generator) * 0.1 - torch.tensor([[16.0], [18.0], [20.0]])
    logits[:, 7] = 0.0
    logits = logits.to(torch.bfloat16)
    targets = torch.tensor([7, 7, 7])
    # float64: float32's log-sum-exp minus the target's logit itself loses 7 % of an NLL of 1e-4
    expected = torch.nn.functional.cross_entropy(logits.double(), targets, reduction="none").float()
    got = head_nll(logits, lambda x: x, targets)
    assert bool((expected < 6e-3).all())
    torch.testing.assert_close(got, expected, rtol=0.004, atol=0)  # 0.4 %, not the 100 % of a rounded-off p_t


onednn_bf16 = pytest.mark.skipif(not cpu_has_onednn_bf16(), reason="this CPU has no oneDNN bf16 kernels")


@onednn_bf16
def test_packed_linear_layers_give_the_bits_of_a_plain_product_and_step_aside_for_gradients(tokenizer):
    network = tiny_causal_lm(tokenizer)
    before = _state(network)
    layer = network.model.layers[0].self_attn.q_proj
    x = torch.randn(2, 5, 32).bfloat16()
    with fast_pass(network, True):
        assert "forward" in vars(layer)
        with torch.inference_mode():
            assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight))
        x.requires_grad_(True)
        layer(x).sum().backward()  # with gradients on, the layer's own forward runs: autograd sees the product
        assert x.grad is not None and layer.weight.grad is not None
    layer.weight.grad = None
    _assert_handed_back(network, before)


@onednn_bf16
def test_the_gated_mlp_runs_fused_to_the_unfused_values(tokenizer, monkeypatch):
    network = tiny_causal_lm(tokenizer)
    mlp = network.model.layers[1].mlp
    calls = []
    fused = fast_passes._packed_gated_mlp
    monkeypatch.setattr(fast_passes, "_packed_gated_mlp", lambda *args: calls.append(1) or fused(*args))
    x = torch.randn(3, 7, 32, generator=torch.Generator().manual_seed(0)).bfloat16()
    with fast_pass(network, True), torch.inference_mode():
        ours = mlp(x)
        reference = type(mlp).forward(mlp, x)  # the class's own forward: silu and the product apart, in bf16
    assert calls == [1]
    assert (ours.float() - reference.float()).norm() < 0.02 * reference.float().norm()


@onednn_bf16
def test_a_layer_with_a_forward_of_its_own_keeps_it(tokenizer):
    network = tiny_causal_lm(tokenizer)
    layer = network.model.layers[0].mlp.down_proj
    hooked = layer.forward  # the bound method, as accelerate's hooks install their own
    layer.forward = hooked
    with fast_pass(network, True):
        assert layer.forward is hooked
        assert "forward" in vars(network.model.layers[0].mlp.up_proj)
        assert "forward" not in vars(network.model.layers[0].mlp)  # fused, its down product would skip the hook
        assert "forward" in vars(network.model.layers[1].mlp)
    assert layer.forward is hooked


@onednn_bf16
def test_a_hook_on_a_product_of_the_mlp_still_sees_its_call(tokenizer):
    network = tiny_causal_lm(tokenizer)
    mlp = network.model.layers[0].mlp
    seen = []
    with fast_pass(network, True), torch.inference_mode():
        handle = mlp.up_proj.register_forward_hook(lambda module, args, out: seen.append(out.shape))
        mlp(torch.randn(1, 4, 32).bfloat16())
        handle.remove()
    assert seen == [torch.Size([1, 4, 64])]


def test_every_mlp_class_fused_has_the_gated_silu_forward_it_is_fused_to():
    import importlib
    import inspect

    from transformers.models.llama.modeling_llama import LlamaMLP

    expected = inspect.getsource(LlamaMLP.forward)  # down_proj(act_fn(gate_proj(x)) * up_proj(x))
    assert "self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))" in expected
    for name in fast_passes.GATED_MLPS:
        family = name.removesuffix("MLP").lower()
        module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        assert inspect.getsource(getattr(module, name).forward) == expected, name
