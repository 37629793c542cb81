"""A fine-tuning run on a LESS selection of the tiny model's gradient features, evaluated on the target.

Split from tests/unit/test_gradients_pipeline.py: the run is a background job (a worker process).
"""

from __future__ import annotations


def test_a_run_fine_tunes_on_a_less_selection_and_evaluates_on_the_target(computed, tiny_model_dir, target_file):
    import time

    from core import jobs
    from core.runs.run import RunSpec, compare_runs, launch_run

    workspace, _, _ = computed
    config = {"model": str(tiny_model_dir), "target_modules": "all-linear", "epochs": 1, "batch_size": 2,
              "grad_accum": 1, "max_length": 96}  # fmt: skip
    spec = RunSpec(dataset="tiny", strategy="less", strategy_params={"target": str(target_file)}, budget=0.25,
                   config=config, eval_paths=[str(target_file)], max_new_tokens=2, name="less 25%")  # fmt: skip
    run_id = launch_run(workspace, spec)
    deadline = time.monotonic() + 180
    while jobs.read_status(workspace, run_id).active:
        assert time.monotonic() < deadline, jobs.read_log(workspace, run_id)
        time.sleep(0.3)
    status = jobs.read_status(workspace, run_id)
    assert status.state == "done", jobs.read_log(workspace, run_id)
    assert status.result["examples"] == 6
    table = compare_runs(workspace, [run_id])
    assert table.eval_set.tolist() == ["bread_target"] and table.label.tolist() == ["less 25%"]
