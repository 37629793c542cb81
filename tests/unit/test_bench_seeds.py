"""The statistics behind ``--seeds`` in bench/replicate.py and bench/targeted.py: the paired difference against
random and its Student-t interval, which decide what a benchmark table over three seeds may claim."""

from __future__ import annotations

import math

import pytest

from bench.seeds import format_table, paired_interval, summarise


def rows(arm: str, values: list[float], group: str = "gsm8k") -> list[dict[str, object]]:
    return [{"arm": arm, "seed": seed, "eval_set": group, "loss_change": v} for seed, v in enumerate(values)]


def test_paired_interval_uses_student_t_with_n_minus_1_degrees() -> None:
    mean, low, high = paired_interval([-0.02, -0.04, -0.03])
    half = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2) x sample std / sqrt(n), by hand
    assert mean == pytest.approx(-0.03)
    assert (low, high) == pytest.approx((-0.03 - half, -0.03 + half), rel=1e-5)


def test_an_arm_is_compared_with_random_seed_by_seed() -> None:
    # the pools differ by seed (seed 2's is easy for everyone), yet the arm beats random by 0.01 at every seed:
    # a paired comparison sees it, two overlapping means would not
    table = rows("random", [-0.05, -0.06, -0.20]) + rows("kmq", [-0.06, -0.07, -0.21])
    by_arm = {s.arm: s for s in summarise(table, "loss_change", ["eval_set"])}
    assert by_arm["random"].diff is None
    assert by_arm["kmq"].diff == pytest.approx(-0.01)
    assert by_arm["kmq"].interval_excludes_zero
    assert by_arm["kmq"].std > 0.05  # the spread across pools is large; the paired difference is not


def test_one_seed_gives_no_interval_and_missing_seeds_are_not_paired() -> None:
    table = rows("random", [-0.05]) + rows("less", [-0.08]) + [{"arm": "g2is", "seed": 5, "eval_set": "gsm8k"}]
    summaries = summarise(table, "loss_change", ["eval_set"])
    less = next(s for s in summaries if s.arm == "less")
    assert less.diff == pytest.approx(-0.03)
    assert less.low is not None and math.isnan(less.low)  # one pair: no spread to build an interval from
    assert not less.interval_excludes_zero
    assert "g2is" not in {s.arm for s in summaries}  # a run with no loss is left out, not counted as zero
    assert "less" in format_table(summaries, "loss change")
