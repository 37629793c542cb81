"""Per-example LoRA gradients, the Adam direction, the random projections and resumable gradient features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from core.gradients import projection as proj
from core.gradients.features import (
    adam_direction,
    adam_moments,
    gradient_features,
    lora_parameters,
    per_example_gradients,
)
from core.models.passes import collate, render_examples
from core.progress import Cancelled
from core.train.trainer import TrainConfig, prepare_model
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

FRAME = pd.DataFrame(
    {
        "instruction": [
            "Say b.",
            "Greet the friend in the input.",
            "x",
            "What is two plus two?",
            "Name a colour.",
            "Hi",
        ],
        "input": ["", "Ana", "", "", "", ""],
        "output": ["b", "Hello, Ana!", "A much longer answer than the others here.", "4", "Red.", "Hello."],
    }
)


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    """A tiny Llama with LoRA on every linear layer; B drawn non-zero, else every A gradient would be 0."""
    torch.manual_seed(0)
    lora = prepare_model(tiny_causal_lm(tokenizer), TrainConfig(target_modules="all-linear"))
    with torch.no_grad():
        for _, param in lora_parameters(lora):
            param.normal_(0.0, 0.1)
    return lora.eval()


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([param.grad.flatten() for _, param in lora_parameters(model)])


def test_batched_per_example_gradients_equal_one_backward_per_example(model, tokenizer):
    items = render_examples(tokenizer, FRAME.iloc[:4], 128)
    assert len({len(item.ids) for item in items}) == 4  # different lengths, so the batch is padded
    grads = per_example_gradients(model, collate(items, tokenizer.pad_token_id))
    assert grads.shape == (4, sum(p.numel() for _, p in lora_parameters(model)))
    for row, item in enumerate(items):
        model.zero_grad(set_to_none=True)
        single = collate([item], tokenizer.pad_token_id)
        model(**single).loss.backward()  # transformers' own loss: the mean NLL over the labelled tokens
        reference = _flat_grad(model)
        assert reference.abs().max() > 0
        torch.testing.assert_close(grads[row], reference, rtol=1e-4, atol=1e-6)
    model.zero_grad(set_to_none=True)


def test_per_example_gradients_reject_parameters_outside_linear_layers(tokenizer):
    lora = prepare_model(tiny_causal_lm(tokenizer), TrainConfig(target_modules="all-linear"))
    lora.get_input_embeddings().weight.requires_grad_(True)
    batch = collate(render_examples(tokenizer, FRAME.iloc[:2], 64), tokenizer.pad_token_id)
    with pytest.raises(ValueError, match="embed_tokens"):
        per_example_gradients(lora, batch)


def test_adam_direction_follows_the_formula_without_bias_correction():
    generator = torch.Generator().manual_seed(0)
    grads = torch.randn(3, 50, generator=generator)
    exp_avg = torch.randn(50, generator=generator) * 0.1
    exp_avg_sq = torch.rand(50, generator=generator) * 0.01
    got = adam_direction(grads, exp_avg, exp_avg_sq).numpy()
    g, m, v = grads.double().numpy(), exp_avg.double().numpy(), exp_avg_sq.double().numpy()
    expected = (0.9 * m + 0.1 * g) / np.sqrt(0.999 * v + 0.001 * g**2 + 1e-8)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_adam_moments_flatten_the_optimizer_state_in_parameter_order(tokenizer):
    lora = prepare_model(tiny_causal_lm(tokenizer), TrainConfig(target_modules="q_proj,v_proj"))
    params = lora_parameters(lora)
    optimizer = torch.optim.AdamW([p for _, p in params[1:]], lr=1e-3)  # the first parameter gets no state
    lora(**collate(render_examples(tokenizer, FRAME.iloc[:2], 64), tokenizer.pad_token_id)).loss.backward()
    optimizer.step()
    exp_avg, exp_avg_sq = adam_moments(optimizer, lora)
    first = params[0][1].numel()
    assert exp_avg.shape == exp_avg_sq.shape == (sum(p.numel() for _, p in params),)
    assert not exp_avg[:first].any() and not exp_avg_sq[:first].any()
    expected = torch.cat([optimizer.state[p]["exp_avg_sq"].flatten() for _, p in params[1:]])
    torch.testing.assert_close(exp_avg_sq[first:], expected)


def _test_vectors(n_params: int) -> torch.Tensor:
    """Unit vectors with inner products spread over [-1, 1]: random ones, near copies and a negation."""
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(8, n_params, generator=generator)
    near = base[:4] + 0.7 * torch.randn(4, n_params, generator=generator)
    vectors = torch.cat([base, near, -base[:2]])
    return vectors / vectors.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("kind", ["sparse", "rademacher"])
def test_projections_preserve_inner_products(kind):
    n_params, d = 20_000, 1024
    vectors = _test_vectors(n_params)
    projector = proj.build_projector(kind, n_params, d, seed=0)
    projected = projector.project(vectors)
    assert projected.shape == (len(vectors), d) and projected.dtype == torch.float32
    # <Px, Py> has a standard deviation of about sqrt((1 + <x,y>^2) / d) (0.031-0.044 here). Over 25 seeds the
    # largest of these 105 errors was 3.8 sigma (a flat 0.15 was exceeded once: 0.168 at |<x,y>| = 1) and the mean
    # error at most 0.034; a zero, unscaled or unseeded matrix misses by far more.
    inner = vectors @ vectors.T
    error = (projected @ projected.T - inner).abs()
    assert (error / ((1 + inner**2) / d).sqrt()).max() < 5.0
    assert error.mean() < 0.05


@pytest.mark.parametrize("kind", ["sparse", "rademacher"])
def test_projection_matrix_is_a_function_of_the_seed(kind):
    vectors = _test_vectors(5_000)
    first = proj.build_projector.__wrapped__(kind, 5_000, 64, seed=3).project(vectors)  # a fresh draw, not cached
    projector = proj.build_projector(kind, 5_000, 64, seed=3)
    assert torch.equal(projector.project(vectors), first)
    assert torch.equal(projector.project(vectors), first)  # and again from the same object
    assert not torch.allclose(proj.build_projector(kind, 5_000, 64, seed=4).project(vectors), first)


def test_rademacher_projection_holds_one_small_block_at_a_time(monkeypatch):
    n_params, d = 40_000, 512
    projector = proj.build_projector("rademacher", n_params, d, seed=0)
    assert projector.block_rows * d <= proj.BLOCK_ENTRIES
    shapes = []
    block = proj.RademacherProjector.block

    def recording_block(self, index):
        signs = block(self, index)
        shapes.append(tuple(signs.shape))
        return signs

    monkeypatch.setattr(proj.RademacherProjector, "block", recording_block)
    vectors = _test_vectors(n_params)
    projected = projector.project(vectors)
    assert [rows for rows, _ in shapes] == [32_768, 7_232]  # 2^24 / 512 rows, then the rest
    assert all(rows * width <= proj.BLOCK_ENTRIES for rows, width in shapes)
    # the blocks stacked are the +-1/sqrt(d) matrix the projection applied
    dense = torch.cat([block(projector, index) for index in range(2)]) * 2 - 1
    torch.testing.assert_close(projected, vectors @ dense / d**0.5, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def moments(model):
    n_params = sum(p.numel() for _, p in lora_parameters(model))
    generator = torch.Generator().manual_seed(2)
    return torch.randn(n_params, generator=generator) * 1e-3, torch.rand(n_params, generator=generator) * 1e-5


def _features(model, tokenizer, frame, **options):
    settings = {"moments": None, "d": 64, "max_length": 128, "batch_size": 3, "precision": "fp32"} | options
    return gradient_features(model, tokenizer, frame, **settings)


@pytest.mark.parametrize("projection", ["sparse", "rademacher"])
def test_gradient_features_are_unit_rows_in_input_order(model, tokenizer, moments, projection):
    shuffled = FRAME.sample(frac=1.0, random_state=0).reset_index(drop=True)
    features = _features(model, tokenizer, shuffled, moments=moments, projection=projection)
    assert features.shape == (len(FRAME), 64) and features.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(features.astype(np.float32), axis=1), 1.0, atol=2e-3)
    for row in range(len(shuffled)):  # each example alone: no batching, no sorting
        alone = _features(model, tokenizer, shuffled.iloc[[row]], moments=moments, projection=projection)
        np.testing.assert_allclose(features[row].astype(np.float32), alone[0].astype(np.float32), atol=2e-3)


@pytest.mark.parametrize("pool", [False, True])
def test_gradient_features_are_the_projected_normalised_directions(model, tokenizer, moments, pool):
    items = render_examples(tokenizer, FRAME, 128)
    grads = per_example_gradients(model, collate(items, tokenizer.pad_token_id))
    directions = adam_direction(grads, *moments) if pool else grads
    projected = proj.build_projector("sparse", grads.shape[1], 64, seed=0).project(directions)
    expected = (projected / projected.norm(dim=1, keepdim=True)).numpy()
    features = _features(model, tokenizer, FRAME, moments=moments if pool else None)
    np.testing.assert_allclose(features.astype(np.float32), expected, atol=2e-3)


def test_cancelled_features_resume_from_saved_chunks(model, tokenizer, moments, tmp_path):
    options = {"moments": moments, "batch_size": 2, "chunk_size": 2}
    uninterrupted = _features(model, tokenizer, FRAME, **options)

    def stop_after_first_chunk() -> bool:
        return (tmp_path / "chunk-00000.npy").exists()

    with pytest.raises(Cancelled):
        _features(model, tokenizer, FRAME, out_dir=tmp_path, should_stop=stop_after_first_chunk, **options)
    assert sorted(path.name for path in tmp_path.glob("*.npy")) == ["chunk-00000.npy"]
    done = []
    resumed = _features(model, tokenizer, FRAME, out_dir=tmp_path, progress=done.append, **options)
    np.testing.assert_array_equal(resumed, uninterrupted)
    assert sum(done) == len(FRAME) and done[0] == 2  # the saved chunk is reported at once
    with pytest.raises(ValueError, match="other inputs"):
        _features(model, tokenizer, FRAME.iloc[:4], out_dir=tmp_path, **options)


def test_bf16_features_stay_close_to_float32(model, tokenizer):
    exact = _features(model, tokenizer, FRAME).astype(np.float32)
    fast = _features(model, tokenizer, FRAME, precision="bf16").astype(np.float32)
    assert not np.array_equal(exact, fast)
    assert (exact * fast).sum(axis=1).min() > 0.99
    with pytest.raises(ValueError, match="precision"):
        _features(model, tokenizer, FRAME, precision="fp16")
