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
