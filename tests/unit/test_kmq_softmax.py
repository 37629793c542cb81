"""kMQ's ``within=softmax`` draws as sharply as the released kMQ code (docs/algorithms.md 2.3).

The code scores an example with an integer s from 1 to 36 and draws a cluster's quota without replacement
with p = exp(s) / sum exp(s). Our strategy sees a quality q in [0, 1]; at temperature 1 it must draw as the
code does for s = 1 + 35 q. Both draws are repeated a few thousand times with seeded generators and each
row's inclusion frequency is compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.registry import params_of
from core.select.pool import Pool
from core.select.strategies import STRATEGIES, KMQStrategy

# one cluster of 19 rows with the code's integer scores (int quality x int complexity)
SCORES = np.array([36, 36, 30, 30, 25, 20, 18, 16, 15, 12, 12, 10, 9, 8, 6, 4, 3, 2, 1])
# close scores, where the code's draw is far from a top-k: every row's inclusion is in between
CLOSE = np.array([30, 29, 29, 28, 28, 27, 27, 26, 25, 24, 22, 20, 18, 15, 12, 9, 6, 3, 1])
QUOTA = 4
DRAWS = 3000


def reference_draw(scores: np.ndarray, size: int, rng: np.random.RandomState) -> np.ndarray:
    """A port of the kMQ code's within-cluster rule: numpy's choice without replacement, p = softmax(score)."""
    p = np.exp(scores) / np.exp(scores).sum()  # as the code does it: no max-subtraction (fine up to 36)
    return rng.choice(len(scores), size=size, replace=False, p=p)


def one_cluster_pool(q: np.ndarray) -> Pool:
    n = len(q)
    return Pool(
        row_idx=np.arange(n),
        example_ids=[f"e{i}" for i in range(n)],
        cluster_ids=np.zeros(n, dtype=int),
        cluster_weights={},
        scores=pd.DataFrame({"combined": q}),
    )


def inclusion(draws: list[np.ndarray], n: int) -> np.ndarray:
    counts = np.zeros(n)
    for picks in draws:
        counts[picks] += 1
    return counts / len(draws)


def draw_both(scores: np.ndarray, quota: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusion frequencies of the code's rule on ``scores`` and of our strategy on q = (s - 1) / 35."""
    rng = np.random.RandomState(0)
    reference = inclusion([reference_draw(scores, quota, rng) for _ in range(DRAWS)], len(scores))
    pool = one_cluster_pool((scores - 1) / 35)
    strategy = KMQStrategy(within="softmax")
    generator = np.random.default_rng(1)
    ours = inclusion([strategy.select(pool, quota, rng=generator) for _ in range(DRAWS)], len(scores))
    return reference, ours


@pytest.mark.parametrize(("scores", "quota"), [(SCORES, QUOTA), (CLOSE, 5)], ids=["spread", "close"])
def test_softmax_at_temperature_one_draws_as_the_kmq_code_does(scores, quota):
    reference, ours = draw_both(scores, quota)
    pooled = (reference + ours) / 2
    standard_error = np.sqrt(pooled * (1 - pooled) * 2 / DRAWS)
    assert np.all(np.abs(ours - reference) <= 4 * standard_error + 0.01), np.c_[scores, reference, ours]
    assert ours.sum() == pytest.approx(quota)


def test_the_codes_rule_is_nearly_a_top_k_on_spread_scores():
    _, ours = draw_both(SCORES, QUOTA)
    # the two 36s always, the two 30s almost always, the 25 rarely, nothing below it
    assert ours[:2].min() > 0.99 and ours[2:4].min() > 0.95 and ours[4] < 0.1 and ours[5:].max() < 0.01


def test_a_higher_temperature_flattens_the_draw_and_the_field_documents_its_scale():
    pool = one_cluster_pool((SCORES - 1) / 35)
    generator = np.random.default_rng(2)
    flat = KMQStrategy(within="softmax", temperature=35.0)  # logits = q: the old, nearly uniform draw
    freq = inclusion([flat.select(pool, QUOTA, rng=generator) for _ in range(DRAWS)], len(SCORES))
    assert freq[0] < 0.5 and freq[-1] > 0.1  # no row is sure, the worst is still drawn

    (temperature,) = [p for p in params_of(KMQStrategy) if p.name == "temperature"]
    assert temperature.kind is float and temperature.default == 1.0
    assert "35" in temperature.help and "1-36" in temperature.help
    with pytest.raises(ValueError, match="temperature must be at least"):
        STRATEGIES.parse("kmq", {"temperature": "0"})
    assert STRATEGIES.parse("kmq", {"within": "softmax", "temperature": "2.5"})["temperature"] == 2.5
