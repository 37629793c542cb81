"""The cost of a method: what a strategy needs and what is missing with its estimated time here, before a
selection; the compute a saved selection consumed, after (core/select/needs.py, core/storage/stage_runs.py)."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import pytest

from core.score.scoring import build_scorer, score_dataset
from core.select import needs
from core.select.run import build_strategy, run_selection, save_selection
from core.storage import datasets as ds
from core.storage import selections, stage_runs
from core.storage.database import Store


@pytest.fixture
def store(workspace) -> Store:
    return Store(workspace)


def _by_need(found: list[needs.Requirement]) -> dict[str, needs.Requirement]:
    return {req.need: req for req in found}


def test_a_selection_records_non_zero_seconds_for_each_stage_it_ran(store, tmp_path, capsys):
    from core.export import stream_export

    dataset = ds.get_dataset(store)
    # the prepare embedded the 24 texts (the template workspace was prepared in this session)
    assert [run.rows for run in stage_runs.runs(store, stage="embeddings", dataset_id=dataset.dataset_id)] == [24]
    score_dataset(store, dataset, build_scorer("heuristics"))
    result = run_selection(store, dataset, build_strategy("kmq"), 6, seed=0)
    selection_id = save_selection(store, dataset, result)

    cost = selections.get(store, selection_id)["cost"]
    assert cost["seconds"]["embeddings"] > 0
    assert cost["seconds"]["scores:heuristics"] > 0
    assert cost["seconds"]["select"] == pytest.approx(result.seconds, abs=1e-5) and cost["seconds"]["select"] > 0
    assert cost["total"] == pytest.approx(sum(cost["seconds"].values()), abs=1e-5)
    assert cost["device"] == "cpu"  # the keyword embedder and the heuristics load no model

    # the export's manifest carries it, and the listing says it in one phrase
    written = stream_export(store, dataset, tmp_path / "sel.jsonl", selection_id=selection_id)
    assert json.loads(written.manifest_path.read_text())["selection"]["cost"] == cost
    phrase = selections.listing(store, dataset.dataset_id).cost.iloc[0]
    assert phrase.startswith(f"{cost['total']:.1f} s on cpu (embeddings ") and "scores:heuristics" in phrase


def test_rows_found_in_a_cache_cost_nothing(store):
    dataset = ds.get_dataset(store)
    score_dataset(store, dataset, build_scorer("heuristics"))
    score_dataset(store, dataset, build_scorer("heuristics"))  # every row cached: nothing computed, nothing recorded
    assert [run.rows for run in stage_runs.runs(store, stage="scores", scorer="heuristics")] == [24]
    assert not stage_runs.record(
        store, dataset.dataset_id, stage="hidden_states", key="k", rows=0, seconds=1.0, device="cpu"
    )


def test_a_strategy_needing_ifd_lists_it_missing_with_an_estimate_then_measured_here(store):
    dataset = ds.get_dataset(store)
    found = _by_need(needs.requirements(store, dataset, build_strategy("ifd_topk")))
    ifd = found["scores:ifd"]
    assert found["embeddings"].present and not ifd.present
    assert ifd.rows == 24 and ifd.source == needs.REFERENCE
    assert ifd.seconds == pytest.approx(24 / 5.04)  # core/score/cost.py's IFD rate on the reference CPU
    assert "(reference CPU)" in ifd.estimate()

    # an IFD run recorded in this workspace (another dataset's: a rate belongs to the machine) is used instead
    stage_runs.record(
        store, 99, stage="scores", scorer="ifd", key="ifd:x", rows=10, seconds=5.0, device=needs.machine_device()
    )
    ifd = _by_need(needs.requirements(store, dataset, build_strategy("ifd_topk")))["scores:ifd"]
    assert ifd.source == needs.MEASURED and ifd.seconds == pytest.approx(24 / 2.0)
    assert "measured here" in ifd.estimate()


def test_a_run_on_this_device_is_preferred_to_one_elsewhere(store):
    here = needs.machine_device()
    elsewhere = "cuda" if here == "cpu" else "cpu"
    stage_runs.record(store, 1, stage="scores", scorer="ifd", key="a", rows=100, seconds=1.0, device=elsewhere)
    stage_runs.record(store, 1, stage="scores", scorer="ifd", key="a", rows=10, seconds=10.0, device=here)
    assert needs.measured_rate(store, "scores", here, scorer="ifd") == pytest.approx(1.0)


def test_combined_quality_needs_a_scorer_and_counts_every_scorer_that_ran(store):
    dataset = ds.get_dataset(store)
    found = _by_need(needs.requirements(store, dataset, build_strategy("kmq")))
    assert not found["scores:heuristics"].present  # no scorer yet: the cheapest is named
    assert found["scores:heuristics"].source == needs.REFERENCE and found["scores:heuristics"].seconds > 0
    score_dataset(store, dataset, build_scorer("heuristics"))
    found = _by_need(needs.requirements(store, dataset, build_strategy("kmq")))
    assert found["scores:heuristics"].present and not needs.missing(list(found.values()))
    # a raw score names its scorer
    found = _by_need(needs.requirements(store, dataset, build_strategy("kmq", {"quality": "perplexity"})))
    assert not found["scores:perplexity"].present


def test_gradient_strategies_list_features_graph_and_target(store, target_file):
    dataset = ds.get_dataset(store)
    found = _by_need(needs.requirements(store, dataset, build_strategy("g2is")))
    assert {"gradients", "graph", "target"} <= set(found)
    assert not found["gradients"].present and found["gradients"].seconds > 0
    assert found["gradients"].source == needs.REFERENCE
    assert "choose a target set" in found["target"].note and found["target"].estimate() == ""
    found = _by_need(needs.requirements(store, dataset, build_strategy("less", {"target": str(target_file)})))
    assert found["target"].rows == 6 and found["target"].seconds == pytest.approx(6 / 1.99)


def test_a_recorded_gradient_run_is_present_and_counted(computed):
    workspace, report, _ = computed
    store = Store(workspace)
    dataset = ds.get_dataset(store)
    found = _by_need(needs.requirements(store, dataset, build_strategy("g2is")))
    assert found["gradients"].present and found["graph"].present
    recorded = {run.stage for run in stage_runs.runs(store, stage="gradients")} | {
        run.stage for run in stage_runs.runs(store, stage="graph")
    }
    assert recorded == {"gradients", "graph"}
    assert stage_runs.seconds_for(store, dataset.dataset_id, "gradients", [report["pool"]]) > 0


@dataclasses.dataclass(frozen=True)
class _HiddenStrategy:
    name: ClassVar[str] = "hidden_test"
    needs: ClassVar[frozenset[str]] = frozenset({"hidden_states"})


def test_hidden_states_fall_back_to_a_reference_rate_until_a_run_is_recorded(store):
    dataset = ds.get_dataset(store)
    hidden = _by_need(needs.requirements(store, dataset, _HiddenStrategy()))["hidden_states"]
    assert not hidden.present and hidden.source == needs.REFERENCE and hidden.seconds == pytest.approx(24 / 3.7)
    stage_runs.record(store, dataset.dataset_id, stage="hidden_states", key="h", rows=24, seconds=2.0, device="cpu")
    assert _by_need(needs.requirements(store, dataset, _HiddenStrategy()))["hidden_states"].present


def test_cli_select_prints_what_is_missing_before_it_runs(store, capsys):
    from core.cli import main

    args = ["select", "--strategy", "ifd_topk", "--budget", "5", "--workspace", str(store.workspace)]
    assert main(args) == 1  # the scores are missing: the run refuses, after saying what they would take
    out = capsys.readouterr().out
    assert "ifd_topk needs:" in out and "scores:ifd: missing, 24 rows, about 5 s (reference CPU)" in out
    assert main(["select", "--strategy", "random", "--budget", "5", "--workspace", str(store.workspace)]) == 0
    out = capsys.readouterr().out
    assert "needs:" not in out and "cost: " in out and "on cpu (embeddings" in out
