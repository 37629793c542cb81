"""The packaged all-MiniLM-L6-v2 works offline as the default embedder (loads the real model: a few seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.embed.embedders import (
    SentenceTransformerEmbedder,
    build_embedder,
    load_sentence_transformer,
    resolve_model_path,
)

pytestmark = pytest.mark.real_model

COOKING = [
    "Bake the bread in a hot oven until golden.",
    "Knead the dough and let the bread rise for an hour.",
    "Fry the sliced onions in butter and add garlic.",
    "Simmer the tomato soup and season it with salt.",
]
PROGRAMMING = [
    "Write a Python function that sorts a list of numbers.",
    "Debug the Python code that raises a KeyError exception.",
    "Refactor this Python function to use a list comprehension.",
    "Write unit tests for the Python function with pytest.",
]
# lengths in no particular order, so length-sorted batches must be put back in input order
MIXED = ["Hi", "A much longer text about " + "many different things " * 30, *COOKING, "ok", *PROGRAMMING]


@pytest.fixture(scope="module")
def fp32_vectors() -> np.ndarray:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return SentenceTransformerEmbedder(precision="fp32", batch_size=3).embed(MIXED)


def test_default_model_is_the_packaged_copy() -> None:
    path = Path(resolve_model_path("all-MiniLM-L6-v2"))

    assert path.is_dir()
    assert "site-packages" in path.parts
    assert build_embedder(None).cache_key().startswith("st:all-MiniLM-L6-v2:")


def test_embeddings_are_unit_norm_384_d(fp32_vectors: np.ndarray) -> None:
    assert fp32_vectors.shape == (len(MIXED), 384)
    assert fp32_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fp32_vectors, axis=1), 1.0, atol=1e-5)


def test_length_sorted_batches_come_back_in_input_order(fp32_vectors: np.ndarray) -> None:
    model = load_sentence_transformer("all-MiniLM-L6-v2", "cpu")
    reference = model.encode(MIXED, normalize_embeddings=True, convert_to_numpy=True)

    cosines = (fp32_vectors * reference).sum(axis=1)

    assert cosines.min() > 0.999
    # and not merely similar texts: each row matches its own text far better than any other text
    assert np.array_equal((fp32_vectors @ reference.T).argmax(axis=1), np.arange(len(MIXED)))


def test_bf16_is_within_cosine_0999_of_fp32(fp32_vectors: np.ndarray) -> None:
    bf16 = SentenceTransformerEmbedder(precision="bf16", batch_size=3).embed(MIXED)

    assert bf16.shape == fp32_vectors.shape
    assert (bf16 * fp32_vectors).sum(axis=1).min() >= 0.999
    assert SentenceTransformerEmbedder(precision="bf16").cache_key() == "st:all-MiniLM-L6-v2:bf16"
    assert SentenceTransformerEmbedder(precision="fp32").cache_key() == "st:all-MiniLM-L6-v2:fp32"


def test_texts_on_one_topic_are_nearer_than_across_topics(fp32_vectors: np.ndarray) -> None:
    cooking = fp32_vectors[[MIXED.index(t) for t in COOKING]]
    programming = fp32_vectors[[MIXED.index(t) for t in PROGRAMMING]]
    off_diagonal = ~np.eye(len(COOKING), dtype=bool)

    within = np.concatenate([(cooking @ cooking.T)[off_diagonal], (programming @ programming.T)[off_diagonal]])
    across = (cooking @ programming.T).ravel()

    assert within.min() > across.max()


def test_empty_input_gives_an_empty_matrix() -> None:
    assert SentenceTransformerEmbedder(precision="fp32").embed([]).shape == (0, 384)
