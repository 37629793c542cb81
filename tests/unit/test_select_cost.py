"""Every selection strategy states its cost before it runs; the CLI wants --yes past the limit."""

from __future__ import annotations

import core.select.targeted  # noqa: F401  (registers the targeted strategies)
from core.cli import main
from core.select import cost
from core.select.strategies import STRATEGIES


def test_every_registered_strategy_has_a_growth_law_and_a_bounded_form():
    for name in STRATEGIES.names():
        assert name in cost.COSTS, f"{name}: add its cost to core/select/cost.py"
        assert cost.COSTS[name].bounded


def test_the_projection_grows_with_the_pool_and_flags_the_greedy_ones_at_a_million():
    small, large = (
        cost.projected_seconds("k_center", 10_000, 1_000),
        cost.projected_seconds("k_center", 1_000_000, 100_000),
    )
    assert small is not None and large is not None and large > 1000 * small  # a pass over the pool per pick
    assert cost.needs_confirmation("k_center", 1_000_000, 100_000)
    assert cost.needs_confirmation("qdit", 1_000_000, 100_000)
    assert not cost.needs_confirmation("random", 1_000_000, 100_000)
    assert "about 2.2 h" in cost.cost_line("k_center", 1_000_000, 100_000)
    assert "not measured" in cost.cost_line("g2is", 1_000_000, 100_000)


def test_the_cli_refuses_a_long_selection_without_yes(workspace, monkeypatch, capsys):
    monkeypatch.setattr(cost, "ANNOUNCE_SECONDS", 0.0)
    monkeypatch.setattr(cost, "CONFIRM_SECONDS", 0.0)
    command = ["select", "--workspace", str(workspace), "--strategy", "k_center", "--budget", "4"]
    assert main(command) == 1
    out, err = capsys.readouterr()
    assert "k_center selecting 4 of 24 rows takes about" in out
    assert "add --yes" in err and "km_closest or kmq" in err
    assert main([*command, "--yes"]) == 0
    assert "selection 1:" in capsys.readouterr().out  # the refused run saved nothing


def test_a_shortlist_bounds_k_center_and_qdit_and_covers_every_cluster():
    import numpy as np
    import pandas as pd

    from core.select.pool import Pool
    from core.select.strategies import KCenterStrategy, QDITStrategy, shortlist

    rng = np.random.default_rng(0)
    clusters = np.repeat([0, 1, 2], [300, 60, 6])
    vectors = rng.standard_normal((len(clusters), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = pd.DataFrame({"quality": rng.uniform(size=len(clusters))})
    pool = Pool(np.arange(len(clusters)), [str(i) for i in range(len(clusters))], clusters, {}, embeddings=vectors)
    short = shortlist(pool, 40, 10, np.random.default_rng(1))
    assert len(short) == 40 and set(clusters[short]) == {0, 1, 2}  # every cluster has its share
    assert shortlist(pool, 0, 10, rng) is None  # 0: the whole pool, as before
    picks = KCenterStrategy(candidates=40).select(pool, 10, rng=np.random.default_rng(1))
    assert len(set(picks)) == 10 and set(picks) <= set(short)  # the same seed draws the same shortlist
    qdit = QDITStrategy(candidates=40, quality="quality", neighbours=0)
    picks = qdit.select(dataclasses_replace_scores(pool, scores), 10, rng=np.random.default_rng(1))
    assert len(set(picks)) == 10 and set(picks) <= set(short)
    # at a million rows qdit's all-pairs graph over the suggested shortlist fits the limit, the whole pool not;
    # k_center passes over its candidates once per pick, so 100,000 picks stay too slow even from a shortlist
    fits = cost.fitting_candidates("qdit", 1_000_000, 100_000)
    assert fits is not None and 100_000 <= fits < 1_000_000
    assert not cost.needs_confirmation("qdit", 1_000_000, 100_000, fits)
    assert f"--param candidates={fits}" in cost.bounded_form("qdit", 1_000_000, 100_000)
    assert cost.fitting_candidates("k_center", 1_000_000, 100_000) is None
    assert "candidates" not in cost.bounded_form("k_center", 1_000_000, 100_000)
    assert cost.fitting_candidates("k_center", 1_000_000, 10_000) is not None  # a 1 % budget can


def dataclasses_replace_scores(pool, scores):
    import dataclasses

    return dataclasses.replace(pool, scores=scores)
