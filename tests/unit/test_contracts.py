"""The contracts every registered scorer and embedder keeps, in the style of the strategy contract test.

Scorers: one value per row for every score, NaN only where the scorer's ``nan_policy`` allows it (and, for
``empty_response``, always on an empty response; for ``flagged``, exactly where a flag says why), the same values again for the same rows (and, when not
``set_dependent``, whatever the other rows), and a stable score key: equal parameters give equal keys, a changed parameter another key unless the scorer
declares it cannot change a score (``key_ignores``). Embedders: (N, d) float32 unit rows, deterministic,
a row independent of its batch, and the same key stability for ``cache_key``. Every member runs: the LM
scorers on a tiny random Llama, the reward scorer on a tiny random BERT, the judge on an in-process fake
server (tests/judge_server.py), and only embedders that need no
model (the keyword test embedder and hashing; the sentence model has tests/unit/test_embedders_real.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.embed.embedders import EMBEDDERS
from core.registry import Param
from core.score.scorers import SCORERS
from tests.unit.test_judge import fake_judge  # noqa: F401  (a fixture)
from tests.unit.test_scorers import tiny_lm, tiny_reward_model, use_tiny  # noqa: F401  (fixtures)

ROWS = pd.DataFrame(
    {
        "instruction": ["Add two and two.", "Name a colour.", "Say hi", "Add two and two.", "What is 3 + 4?"],
        "input": ["", "", "politely", "", ""],
        "output": ["Four.", "Blue is a colour.", "", "Four.", "3 + 4 = 8, I think"],
    }
)
TEXTS = ["bread is baked", "python lists sort", "the capital of France", "a planet orbits", "bread and python"]


def _other(param: Param, value: Any) -> Any:
    """A valid value of ``param`` other than ``value``."""
    if param.choices:
        return next(choice for choice in reversed(param.choices) if choice != value)
    if param.kind is bool:
        return not value
    if param.kind is int:
        return value + 1
    if param.kind is float:
        return value / 2 if value else 0.5
    return f"{value or ''}-other"


# --- scorers --------------------------------------------------------------------------------------


@pytest.fixture
def make_scorer(request, use_tiny):  # noqa: F811  (the imported fixture)
    """Builds scorer ``name`` on its test double: the tiny LM (fp32, so runs compare exactly) or reward model."""

    def build(name: str, **params: Any) -> Any:
        cls = SCORERS.get(name)
        fields = {field.name for field in dataclasses.fields(cls)}
        if name == "reward":
            params = {"model": request.getfixturevalue("tiny_reward_model"), **params}
        elif name == "judge":  # an in-process server that rates by a hash of the prompt
            params = {"base_url": request.getfixturevalue("fake_judge").url, "model": "judge-test", **params}
        elif cls.uses_model:
            params = {"model": "tiny", "precision": "fp32", **params}
        assert set(params) <= fields
        return SCORERS.build(name, **params)

    return build


def _frame(scorer: Any, rows: pd.DataFrame = ROWS) -> pd.DataFrame:
    """The rows as the scoring stage gives them: with their embeddings for scorers that read them."""
    if not getattr(scorer, "needs_embeddings", False):
        return rows.reset_index(drop=True)
    embeddings = EMBEDDERS.build("hashing", dim=32).embed(list(rows.instruction))
    return rows.reset_index(drop=True).assign(embedding=list(embeddings))


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_gives_one_value_per_row_with_its_declared_nan_policy(make_scorer, name):
    scorer = make_scorer(name)
    done = []
    values = scorer.score(_frame(scorer), progress=done.append)
    assert values and sum(done) == pytest.approx(len(ROWS))
    empty = (ROWS.output.str.strip() == "").to_numpy()
    for score, column in values.items():
        column = np.asarray(column)
        assert column.shape == (len(ROWS),), score
        assert np.issubdtype(column.dtype, np.floating), score
        missing = np.isnan(column)
        if scorer.nan_policy == "never":
            assert not missing.any(), score
        elif scorer.nan_policy == "flagged":  # the own score is NaN exactly where a flag says why
            raised = np.any([np.asarray(values[flag]) == 1 for flag in scorer.nan_flags], axis=0)
            if score == name:
                np.testing.assert_array_equal(missing, raised, err_msg=score)
            if score in scorer.nan_flags:
                assert not missing.any(), score
        else:  # empty_response: only an empty response has no value, and its scorer's own score never has one
            assert scorer.nan_policy == "empty_response"
            assert not (missing & ~empty).any(), score
            if score == name:
                np.testing.assert_array_equal(missing, empty, err_msg=score)


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_gives_the_same_values_again_and_per_row_unless_set_dependent(make_scorer, name):
    scorer = make_scorer(name)
    first = scorer.score(_frame(scorer))
    again = make_scorer(name).score(_frame(scorer))
    for score in first:
        np.testing.assert_allclose(again[score], first[score], rtol=1e-6, equal_nan=True, err_msg=score)
    if scorer.set_dependent:
        return
    subset = [4, 1]
    alone = scorer.score(_frame(scorer, ROWS.iloc[subset]))
    for score in first:
        np.testing.assert_allclose(alone[score], first[score][subset], rtol=1e-4, atol=1e-5, err_msg=score)


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_key_is_stable_and_changes_with_every_parameter_that_can_change_a_score(make_scorer, name):
    base = make_scorer(name)
    assert make_scorer(name).score_key() == base.score_key()
    assert base.key_ignores <= {p.name for p in SCORERS.params(name)}
    for param in SCORERS.params(name):
        changed = make_scorer(name, **{param.name: _other(param, getattr(base, param.name))})
        if param.name in base.key_ignores:
            assert changed.score_key() == base.score_key(), param.name
        else:
            assert changed.score_key() != base.score_key(), param.name


# --- embedders ------------------------------------------------------------------------------------

MODEL_FREE_EMBEDDERS = [name for name in EMBEDDERS.names() if not getattr(EMBEDDERS.get(name), "uses_model", False)]


def test_the_model_free_embedders_include_hashing_and_the_test_double():
    assert {"hashing", "keyword-test"} <= set(MODEL_FREE_EMBEDDERS)
    assert EMBEDDERS.get("sentence-transformers").uses_model


@pytest.mark.parametrize("name", MODEL_FREE_EMBEDDERS)
def test_every_embedder_gives_unit_float32_rows_deterministically_and_per_row(name):
    embedder = EMBEDDERS.build(name)
    done = []
    vectors = embedder.embed(TEXTS, progress=done.append)
    assert vectors.dtype == np.float32 and vectors.ndim == 2 and vectors.shape[0] == len(TEXTS)
    assert sum(done) == len(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(EMBEDDERS.build(name).embed(TEXTS), vectors)  # a fresh instance, same vectors
    np.testing.assert_allclose(embedder.embed(TEXTS[2:3]), vectors[2:3], atol=1e-6)  # independent of the batch
    assert embedder.embed([]).shape == (0, vectors.shape[1])


@pytest.mark.parametrize("name", MODEL_FREE_EMBEDDERS)
def test_every_embedder_cache_key_is_stable_and_changes_with_every_parameter(name):
    base = EMBEDDERS.build(name)
    assert EMBEDDERS.build(name).cache_key() == base.cache_key()
    for param in EMBEDDERS.params(name):
        changed = EMBEDDERS.build(name, **{param.name: _other(param, getattr(base, param.name))})
        assert changed.cache_key() != base.cache_key(), param.name
