"""Fine-tuning runs as background jobs, on a tiny saved model: train, evaluate, cancel, resume, survive a kill."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from core import jobs
from core.runs.run import RunSpec, compare_runs, evaluations, launch_run, losses, resume_run
from core.storage import datasets as ds
from core.storage import selections
from core.storage.database import Store


@pytest.fixture
def eval_file(tmp_path) -> Path:
    rows = [
        {"id": "e1", "instruction": "What is 2 + 2?", "input": "", "output": "4", "answer": "4"},
        {"id": "e2", "instruction": "Name a colour.", "input": "", "output": "Blue."},
    ]
    path = tmp_path / "tiny_eval.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _spec(model: Path, eval_file: Path, epochs: int = 2, **extra) -> RunSpec:
    config = {
        "model": str(model),
        "target_modules": "all-linear",
        "learning_rate": 2e-2,
        "epochs": epochs,
        "batch_size": 2,
        "grad_accum": 1,
        "max_length": 128,
        "checkpoint_every": 2,
    }
    return RunSpec(
        dataset="tiny",
        strategy="random",
        budget=8,
        config=config,
        eval_paths=[str(eval_file)],
        max_new_tokens=4,
        **extra,
    )


def _wait(workspace: Path, run_id: str, until=lambda s: not s.active, timeout: float = 180) -> jobs.JobStatus:
    deadline = time.monotonic() + timeout
    status = jobs.read_status(workspace, run_id)
    while not until(status):
        assert time.monotonic() < deadline, jobs.read_log(workspace, run_id)
        time.sleep(0.2)
        status = jobs.read_status(workspace, run_id)
    return status


def test_a_run_selects_trains_and_evaluates_against_the_base(workspace, tiny_model_dir, eval_file):
    run_id = launch_run(workspace, _spec(tiny_model_dir, eval_file, name="random 8"))
    status = _wait(workspace, run_id)
    assert status.state == "done", jobs.read_log(workspace, run_id)
    assert status.result["examples"] == 8 and status.result["steps"] == 8  # 8 examples / 2 per step x 2 epochs
    assert list(losses(workspace, run_id).step) == list(range(1, 9))
    evals = evaluations(workspace, run_id)["tiny_eval"]
    assert evals["base"]["n"] == 2 and evals["run"]["n"] == 2 and evals["run"]["loss"] != evals["base"]["loss"]
    saved = selections.get(Store(workspace), status.result["selection_id"])
    assert saved["strategy"] == "random" and saved["size"] == 8
    table = compare_runs(workspace, [run_id])
    assert list(table.eval_set) == ["tiny_eval"] and table.loss_change.iloc[0] == pytest.approx(
        evals["run"]["loss"] - evals["base"]["loss"]
    )
    assert (jobs.jobs_dir(workspace) / run_id / "final" / "adapter_model.safetensors").exists()


def test_a_cancelled_run_resumes_from_its_checkpoint_with_the_same_selection(workspace, tiny_model_dir, eval_file):
    run_id = launch_run(workspace, _spec(tiny_model_dir, eval_file, epochs=40))
    _wait(workspace, run_id, until=lambda s: s.stage == "train" and s.done >= 3)
    jobs.request_cancel(workspace, run_id)
    status = _wait(workspace, run_id)
    assert status.state == "cancelled"
    assert (jobs.jobs_dir(workspace) / run_id / "checkpoint" / "state.pt").exists()
    resume_run(workspace, run_id)
    status = _wait(workspace, run_id)
    assert status.state == "done", jobs.read_log(workspace, run_id)
    assert status.result["resumed_from"] >= 2 and status.result["steps"] == 160
    assert list(losses(workspace, run_id).step) == list(range(1, 161))  # no step logged twice
    assert len(selections.listing(Store(workspace), ds.get_dataset(Store(workspace)).dataset_id)) == 1


def test_a_killed_run_shows_interrupted_leaves_the_store_usable_and_resumes(workspace, tiny_model_dir, eval_file):
    run_id = launch_run(workspace, _spec(tiny_model_dir, eval_file, epochs=40))
    status = _wait(workspace, run_id, until=lambda s: s.stage == "train" and s.done >= 5)
    os.killpg(status.pid, signal.SIGKILL)
    status = _wait(workspace, run_id, until=lambda s: s.state == "interrupted", timeout=30)
    assert status.error == "the worker process ended without finishing"
    store = Store(workspace)
    assert len(selections.listing(store, ds.get_dataset(store).dataset_id)) == 1  # the store is readable, intact
    resume_run(workspace, run_id)
    assert _wait(workspace, run_id).state == "done", jobs.read_log(workspace, run_id)


def test_a_run_with_a_bad_eval_file_or_no_selection_is_refused_before_launch(workspace, tiny_model_dir, tmp_path):
    from core.errors import IngestError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "output": 3}\n')
    with pytest.raises(IngestError, match="line 1"):
        launch_run(workspace, _spec(tiny_model_dir, bad))
    with pytest.raises(ValueError, match="strategy and a budget"):
        launch_run(workspace, RunSpec(dataset="tiny"))
    with pytest.raises(ValueError, match="unknown training parameter"):
        launch_run(workspace, RunSpec(dataset="tiny", strategy="random", budget=4, config={"epochz": 1}))
    assert jobs.list_jobs(workspace, "train") == []


def test_an_iterative_kmq_run_records_its_rounds_and_saves_its_final_selection(workspace, tiny_model_dir, eval_file):
    spec = _spec(tiny_model_dir, eval_file, epochs=1)
    spec = RunSpec(
        **{
            **spec.__dict__,
            "strategy": None,
            "loop": "iterative_kmq",
            "budget": 6,
            "rounds": 2,
            "loop_params": {"max_new_tokens": 4},
        }
    )
    run_id = launch_run(workspace, spec)
    status = _wait(workspace, run_id, timeout=300)
    assert status.state == "done", jobs.read_log(workspace, run_id)
    rounds = status.result["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and sum(r["new"] for r in rounds) == 6
    for r in rounds:
        assert abs(sum(r["weights_after"]) - 1) < 1e-9 and min(r["weights_after"]) > 0
    saved = selections.get(Store(workspace), status.result["selection_id"])
    assert saved["strategy"] == "iterative_kmq" and saved["size"] == 6
    assert "run" in evaluations(workspace, run_id)["tiny_eval"]


def test_a_cluster_vetoed_while_a_loop_run_is_paused_is_left_out_of_the_next_round(
    workspace, tiny_model_dir, eval_file
):
    from core.storage import curation

    spec = _spec(tiny_model_dir, eval_file, epochs=30)  # long rounds, so the pause lands inside round 2
    spec = RunSpec(**{**spec.__dict__, "strategy": None, "loop": "iterative_kmq", "budget": 8, "rounds": 2,
                      "loop_params": {"max_new_tokens": 2}})  # fmt: skip
    run_id = launch_run(workspace, spec)
    round_1 = jobs.jobs_dir(workspace) / run_id / "loop" / "round_1" / "done.json"
    _wait(workspace, run_id, until=lambda s: round_1.exists() or not s.active, timeout=300)
    jobs.request_cancel(workspace, run_id)
    assert _wait(workspace, run_id).state == "cancelled", jobs.read_log(workspace, run_id)

    store = Store(workspace)
    dataset = ds.get_dataset(store)
    k = int(dataset.active_k)
    picked = json.loads((round_1.parent / "selection.json").read_text())
    vetoed_cluster = picked["cluster_ids"][0]  # a cluster round 1 drew from: its picks must leave training
    curation.set_cluster_veto(store, dataset.dataset_id, k, vetoed_cluster, True)
    resume_run(workspace, run_id)
    status = _wait(workspace, run_id, timeout=300)
    assert status.state == "done", jobs.read_log(workspace, run_id)

    second = status.result["rounds"][1]
    assert second["decisions"]["vetoed_clusters"] == [vetoed_cluster]
    assert set(second["dropped"]) == {
        e for e, c in zip(picked["example_ids"], picked["cluster_ids"], strict=True) if c == vetoed_cluster
    }
    assert status.result["rounds"][0]["decisions"]["vetoed_clusters"] == []
    saved = selections.get(store, status.result["selection_id"])
    members = curation.all_rows(store, dataset.dataset_id, k).set_index("example_id").cluster_id
    chosen = selections.items(store, status.result["selection_id"]).example_id
    assert saved["size"] == 8 and vetoed_cluster not in {int(members[e]) for e in chosen}
    assert [r["vetoed_clusters"] for r in saved["decisions"]["per_round"]] == [[], [vetoed_cluster]]


def test_vetoes_and_weights_set_while_a_loop_run_trains_hold_from_the_next_round_and_reach_the_manifest(
    workspace, tiny_model_dir, eval_file
):
    from core.export import build_export
    from core.storage import curation

    spec = _spec(tiny_model_dir, eval_file, epochs=60)  # long rounds, so the changes land inside round 1
    spec = RunSpec(**{**spec.__dict__, "strategy": None, "loop": "iterative_kmq", "budget": 9, "rounds": 3,
                      "loop_params": {"max_new_tokens": 2}})  # fmt: skip
    run_id = launch_run(workspace, spec)
    round_1 = jobs.jobs_dir(workspace) / run_id / "loop" / "round_1"
    _wait(workspace, run_id, until=lambda s: (round_1 / "train").exists() or not s.active, timeout=300)

    store = Store(workspace)  # the curator works while the worker trains round 1: no lock error, no waiting
    dataset = ds.get_dataset(store)
    k = int(dataset.active_k)
    vetoed, weighted = 0, 1
    started = time.monotonic()
    curation.set_cluster_veto(store, dataset.dataset_id, k, vetoed, True)
    curation.set_cluster_weight(store, dataset.dataset_id, k, weighted, 2.0)
    assert time.monotonic() - started < 30
    assert not (round_1 / "done.json").exists(), "round 1 ended before the curator's changes"
    status = _wait(workspace, run_id, timeout=600)
    assert status.state == "done", jobs.read_log(workspace, run_id)

    used = [r["decisions"] for r in status.result["rounds"]]
    assert used[0]["vetoed_clusters"] == [] and used[0]["weights"] == {}  # in force when round 1 started
    for later in used[1:]:
        assert later["vetoed_clusters"] == [vetoed] and later["weights"] == {str(weighted): 2.0}
    manifest = build_export(store, dataset, selection_id=status.result["selection_id"]).manifest
    assert manifest["selection"]["decisions"]["per_round"] == used
    members = curation.all_rows(store, dataset.dataset_id, k).set_index("example_id").cluster_id
    chosen = selections.items(store, status.result["selection_id"]).example_id
    assert vetoed not in {int(members[e]) for e in chosen}
