"""Datasets, Diagnostics and Export pages, and the entry point's navigation."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core import jobs
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import keyword_rows, write_jsonl


def test_main_routes_to_every_page(page):
    at = page("main").run()
    assert not at.exception
    assert at.title[0].value == "Curation studio"  # the home page is the default
    for name, title in [
        ("datasets", "Datasets"),
        ("clusters", "Clusters"),
        ("diagnostics", "Diagnostics"),
        ("quality", "Quality"),
        ("gradients", "Gradient graph"),
        ("select", "Select"),
        ("runs", "Runs"),
        ("export", "Export"),
    ]:
        at.switch_page(f"../pages/{name}.py").run()
        assert not at.exception, name
        assert at.title[0].value == title


def test_datasets_page_shows_summary_and_prepares_a_file_in_the_background(page, prepared_workspace, tmp_path):
    at = page("datasets").run()
    assert not at.exception
    assert at.subheader[-1].value == "Summary: tiny"
    assert [m.value for m in at.metric][:4] == ["24", "0", "0", "0"]
    rows = [*keyword_rows(per_topic=3), keyword_rows(per_topic=1)[0]]  # one exact duplicate
    path = write_jsonl(tmp_path / "more.jsonl", rows)
    at.text_input(key="path").input(str(path)).run()
    at.text_input(key="dataset_name").input("more").run()
    at.selectbox(key="embedder").select("hashing").run()
    at.button(key="prepare").click().run()
    job_id = at.session_state["prepare_job"]
    deadline = time.monotonic() + 180
    while jobs.read_status(prepared_workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(prepared_workspace, job_id)
        time.sleep(0.5)
    assert jobs.read_status(prepared_workspace, job_id).state == "done", jobs.read_log(prepared_workspace, job_id)
    at.run()
    assert any("more is ready: 13 rows" in s.value for s in at.success)
    at.selectbox(key="dataset").select("more").run()
    assert [m.value for m in at.metric][:2] == ["13", "2"]  # the duplicate pair is flagged, not dropped


def test_a_prepare_of_a_missing_file_shows_its_error_at_the_button_and_launches_nothing(
    page, prepared_workspace, tmp_path
):
    at = page("datasets").run()
    at.text_input(key="path").input(str(tmp_path / "nowhere.jsonl")).run()
    at.button(key="prepare").click().run()
    assert not at.exception
    errors = [error.value.replace("\\", "") for error in at.error]  # plain() escapes markdown characters
    assert any(error.startswith("path: no file at ") and "nowhere.jsonl" in error for error in errors), errors
    assert "prepare_job" not in at.session_state
    assert jobs.list_jobs(prepared_workspace) == []


def test_a_dataset_name_with_a_path_separator_is_refused_at_the_button(page, prepared_workspace, tmp_path):
    path = write_jsonl(tmp_path / "more.jsonl", keyword_rows(per_topic=1))
    at = page("datasets").run()
    at.text_input(key="path").input(str(path)).run()
    at.text_input(key="dataset_name").input("../escape").run()
    at.button(key="prepare").click().run()
    assert not at.exception
    errors = [error.value.replace("\\", "") for error in at.error]  # plain() escapes markdown characters
    assert any(error.startswith("name: the dataset name '../escape' holds a path separator") for error in errors)
    assert any("letters, digits, spaces" in error for error in errors), errors
    assert "prepare_job" not in at.session_state
    assert jobs.list_jobs(prepared_workspace) == []


def test_datasets_page_asks_for_a_column_mapping_when_the_shape_is_unknown(page, tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    at = page("datasets").run()
    at.text_input(key="path").input(str(path)).run()
    assert at.selectbox(key="map_instruction").options == ["prompt", "completion"]
    assert at.selectbox(key="map_input").options == ["(none)", "prompt", "completion"]


def _wait_for_job(workspace: Path, job_id: str) -> jobs.JobStatus:
    deadline = time.monotonic() + 180
    while jobs.read_status(workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(workspace, job_id)
        time.sleep(0.3)
    return jobs.read_status(workspace, job_id)


def test_diagnostics_page_chooses_a_new_k_in_a_background_job_without_reembedding(page, prepared_workspace):
    at = page("diagnostics").run()
    assert not at.exception
    assert "Chosen k=4" in at.caption[0].value
    at.number_input(key="k_choice").set_value(3).run()
    at.button(key="use_k").click().run()
    assert not at.exception
    job_id = at.session_state["sweep_job"]
    status = jobs.read_status(prepared_workspace, job_id)
    assert (status.kind, status.params) == ("sweep", {"dataset": "tiny", "ks": [], "choose": 3})
    assert _wait_for_job(prepared_workspace, job_id).state == "done", jobs.read_log(prepared_workspace, job_id)
    at.run()
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    assert dataset.active_k == 3
    assert 3 in set(ds.load_sweep(store, dataset.dataset_id).k)
    assert "Chosen k=3" in at.caption[0].value
    assert any("chosen k=3" in s.value for s in at.success)


def test_diagnostics_page_sweeps_more_k_in_a_background_job_and_shows_them(page, prepared_workspace):
    at = page("diagnostics").run()
    assert 5 not in set(at.dataframe[0].value["k"])
    at.text_input(key="k_grid").input("2, 5").run()
    at.button(key="run_sweep").click().run()
    assert not at.exception
    job_id = at.session_state["sweep_job"]
    assert _wait_for_job(prepared_workspace, job_id).state == "done", jobs.read_log(prepared_workspace, job_id)
    at.run()
    assert {2, 4, 5, 6} <= set(at.dataframe[0].value["k"])
    assert "Chosen k=4" in at.caption[0].value  # a sweep adds k values; it does not change the chosen one
    assert any("Swept k=2, 5" in s.value for s in at.success)


def test_diagnostics_page_refuses_a_k_past_the_rows_at_the_button(page, prepared_workspace):
    at = page("diagnostics").run()
    at.text_input(key="k_grid").input("2, 500").run()
    at.button(key="run_sweep").click().run()
    assert "k must be a whole number from 2 to 24" in at.error[0].value
    assert jobs.list_jobs(prepared_workspace) == []


def test_export_page_counts_and_writes_inside_the_export_folder(page, prepared_workspace):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    curation.set_cluster_veto(store, dataset.dataset_id, dataset.active_k, 0, True)
    at = page("export").run()
    assert not at.exception
    assert at.metric[0].value == "18 of 24"
    at.text_input(key="export_path_None").input("../escape.jsonl").run()
    at.button(key="write_export").click().run()
    assert "would leave the folder" in at.error[0].value
    at.text_input(key="export_path_None").input("out/curated.jsonl").run()
    at.button(key="write_export").click().run()
    out = Path(prepared_workspace) / "exports" / "out" / "curated.jsonl"
    assert len(out.read_text().splitlines()) == 18
    manifest = json.loads((out.parent / "curated.manifest.json").read_text())
    assert manifest["vetoes"]["clusters"] == [0]


def _prepare_extra(workspace: Path, tmp_path: Path, name: str, rows: list[dict], grid: tuple[int, ...]) -> None:
    """Prepare a second dataset in the page's workspace; the page opens on the newest."""
    from core.prepare import PrepareOptions, prepare
    from tests.conftest import KEYWORD_EMBEDDER

    source = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    prepare(Store(workspace), source, PrepareOptions(name=name, embedder=KEYWORD_EMBEDDER, k_grid=grid, seed=0))


def test_diagnostics_page_says_when_the_best_k_is_the_largest_swept(page, prepared_workspace, tmp_path):
    _prepare_extra(prepared_workspace, tmp_path, "edge", keyword_rows(), (2, 4))

    at = page("diagnostics").run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1
    assert "The best silhouette k=4 is the largest k swept" in warnings[0]
    assert "try k=5, 6, 8" in warnings[0]
    assert "Sweep these k values" in warnings[0]
    assert at.text_input(key="k_grid").label == "Sweep these k values (comma-separated)"


def test_diagnostics_page_says_why_identical_rows_have_no_best_k(page, prepared_workspace, tmp_path):
    same = [{"instruction": "Tell me about bread", "input": "", "output": "An answer."}] * 200
    _prepare_extra(prepared_workspace, tmp_path, "same", same, (4, 6, 8))

    at = page("diagnostics").run()
    assert not at.exception
    assert "best silhouette k=None" in at.caption[0].value
    warnings = [w.value for w in at.warning]
    assert "No best k by silhouette and no knee" in warnings[0]
    assert "using k=4" in warnings[0]
    assert "Empty clusters were dropped" in warnings[1]


def test_diagnostics_page_only_notes_the_k_past_the_distinct_points(page):
    at = page("diagnostics").run()  # tiny: four topics of identical vectors, best k=4 inside the grid 2, 4, 6
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "Empty clusters were dropped (the data has fewer distinct points than k): k=6 gave 4."
    ]


def test_diagnostics_page_shows_a_running_sweep_with_cancel_and_blocks_a_second_one(page, prepared_workspace):
    folder = jobs.jobs_dir(prepared_workspace) / "20261203-000000-abcdef"
    folder.mkdir(parents=True)
    params = {"dataset": "tiny", "ks": [5, 7], "choose": None}
    jobs.write_status(
        folder, job_id=folder.name, kind="sweep", state="running", stage="k sweep", done=1, total=2, params=params
    )

    at = page("diagnostics").run()

    assert not at.exception
    assert at.button(key="run_sweep").disabled and at.button(key="use_k").disabled
    assert at.button(key=f"cancel_{folder.name}").label == "Cancel"
    at.button(key=f"cancel_{folder.name}").click().run()
    assert (folder / "cancel").exists()  # the worker stops at its next k
