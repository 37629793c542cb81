"""Runs page with a fake launcher: the form builds the run it shows; a finished run shows its curve, evaluation
and downloads; runs can be compared."""

from __future__ import annotations

import json

import pytest

from core import jobs
from core.runs import run as runs
from tests.ui.conftest import fake_run


def test_runs_page_launches_what_the_form_says(page, prepared_workspace, monkeypatch, tmp_path):
    launched = []
    monkeypatch.setattr(runs, "launch_run", lambda workspace, spec: launched.append(spec) or "fake-run")
    eval_file = tmp_path / "mine.jsonl"
    eval_file.write_text('{"instruction": "q", "output": "a"}\n')
    at = page("runs").run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    at.selectbox(key="run_strategy").select("kmq").run()
    at.number_input(key="run_budget").set_value(6.0).run()
    at.number_input(key="run_epochs").set_value(3).run()
    at.text_input(key="run_eval_paths").input(str(eval_file)).run()
    assert any("Estimate: about" in c.value for c in at.caption)
    at.button(key="launch_run").click().run()
    assert not at.exception
    (spec,) = launched
    assert (spec.strategy, spec.budget, spec.config["epochs"], spec.eval_paths) == ("kmq", 6.0, 3, [str(eval_file)])
    assert at.session_state["run_job"] == "fake-run"


def test_a_finished_run_shows_its_curve_evaluation_downloads_and_compares(page, prepared_workspace):
    fake_run(prepared_workspace, "20990101-000000-aaaaaa", name="random", loss=1.5)
    fake_run(prepared_workspace, "20990101-000001-bbbbbb", name="kmq", loss=1.2)
    at = page("runs").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 2  # the loss curve and the comparison
    compare = at.dataframe[-1].value
    assert sorted(compare.label) == ["kmq", "random"]
    assert compare.set_index("label").loss_change["kmq"] == -1.3
    assert [b.label for b in at.get("download_button")][:1] == ["Download adapter (zip)"]


def test_the_form_launches_an_iterative_loop_and_a_loop_run_charts_its_cluster_weights(
    page, prepared_workspace, monkeypatch
):
    launched = []
    monkeypatch.setattr(runs, "launch_run", lambda workspace, spec: launched.append(spec) or "fake-loop")
    fake_run(prepared_workspace, "20990101-000002-cccccc", name="iterative", loss=1.4)
    folder = jobs.jobs_dir(prepared_workspace) / "20990101-000002-cccccc"
    rounds = [
        {"round": 1, "clusters": [0, 1], "weights_before": [0.5, 0.5], "weights_after": [0.3, 0.7], "quotas": [2, 2]},
        {"round": 2, "clusters": [0, 1], "weights_before": [0.3, 0.7], "weights_after": [0.2, 0.8], "quotas": [1, 3]},
    ]
    rounds[1]["decisions"] = {"vetoed_clusters": [3], "weights": {"1": 2.0}, "vetoed_examples": ["x"]}
    rounds[1]["dropped"] = ["ex-a", "ex-b"]
    jobs.write_status(folder, result={"examples": 8, "steps": 4, "rounds": rounds})
    for t, positions in ((1, [0, 5]), (2, [7])):  # positions index every example in row order
        round_dir = folder / "loop" / f"round_{t}"
        round_dir.mkdir(parents=True)
        (round_dir / "selection.json").write_text(json.dumps({"positions": positions}))
        (round_dir / "done.json").write_text(json.dumps({"round": t}))
    at = page("runs").run()
    at.selectbox(key="run_strategy").select("iterative_kmq").run()
    at.number_input(key="run_rounds").set_value(3).run()
    at.button(key="launch_run").click().run()
    (spec,) = launched
    assert (spec.loop, spec.rounds, spec.strategy) == ("iterative_kmq", 3, None)
    titles = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("Cluster weights after each round" in title for title in titles)
    assert not at.exception, at.exception
    frames = {i: frame.value for i, frame in enumerate(at.dataframe)}
    picks = next(frame for frame in frames.values() if "example_id" in frame.columns)
    assert picks["round"].tolist() == [1, 1, 2]
    instructions = picks.instruction.tolist()
    assert "number 0" in instructions[0] and "number 5" in instructions[1]  # rows 0, 5 and 7 of the dataset
    decided = next(frame for frame in frames.values() if "vetoed clusters" in frame.columns)
    assert decided.iloc[0].to_dict() == {
        "round": 2,
        "vetoed clusters": "3",
        "cluster weights": "1: 2",
        "vetoed examples": 1,
        "dropped from training": 2,
    }


def test_the_form_shows_every_loop_parameter_and_passes_them_with_the_rounds(page, prepared_workspace, monkeypatch):
    from core.runs.loops import LOOPS

    launched = []
    monkeypatch.setattr(runs, "launch_run", lambda workspace, spec: launched.append(spec) or "fake-loop")
    at = page("runs").run()
    at.selectbox(key="run_strategy").select("iterit").run()
    shown = {w.key for kind in ("number_input", "selectbox", "checkbox", "text_input") for w in at.get(kind)}
    assert {f"run_loop_iterit_{p.name}" for p in LOOPS.params("iterit")} <= shown
    assert "run_loop_iterit_epochs" not in shown  # the rounds field says how many
    at.number_input(key="run_rounds").set_value(4).run()
    at.number_input(key="run_loop_iterit_decay").set_value(0.3).run()
    at.checkbox(key="run_loop_iterit_static").check().run()
    at.selectbox(key="run_loop_iterit_score").select("ifd").run()
    at.button(key="launch_run").click().run()
    assert not at.exception
    (spec,) = launched
    assert (spec.loop, spec.rounds) == ("iterit", 4)
    assert spec.loop_params["decay"] == pytest.approx(0.3)
    assert (spec.loop_params["static"], spec.loop_params["score"], spec.loop_params["ngram_max"]) == (True, "ifd", 3)


def test_the_form_offers_bf16_training_and_launches_it(page, prepared_workspace, monkeypatch):
    launched = []
    monkeypatch.setattr(runs, "launch_run", lambda workspace, spec: launched.append(spec) or "fake-bf16")
    at = page("runs").run()
    assert at.selectbox(key="run_precision").value == "fp32"  # float32 stays the default
    assert at.selectbox(key="run_precision").options == ["fp32", "bf16"]
    at.selectbox(key="run_strategy").select("kmq").run()
    at.number_input(key="run_budget").set_value(6.0).run()
    at.selectbox(key="run_precision").select("bf16").run()
    at.button(key="launch_run").click().run()
    assert not at.exception
    (spec,) = launched
    assert spec.config["precision"] == "bf16" and spec.train_config().precision == "bf16"
