"""Failed and interrupted background jobs on the pages: the error shows in an st.error, the rest still works.

The jobs fail for real: the worker's own :func:`core.jobs.worker.run_job` runs in this process on a job
folder made as :func:`core.jobs.launch` makes one (a missing model, a malformed file), so the pages
read exactly what a failed worker leaves behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core import jobs
from core.jobs import worker
from core.score import scoring
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import keyword_rows

MISSING_MODEL = "/does/not/exist"
MODEL_ERROR = f"cannot load the model '{MISSING_MODEL}': no such file or folder"


def _job_folder(workspace: Path, job_id: str, kind: str, params: dict[str, Any], **status: Any) -> Path:
    """A job folder as ``jobs.launch`` leaves it, without starting a worker process."""
    job_dir = jobs.jobs_dir(workspace) / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "params.json").write_text(json.dumps({"kind": kind, "params": params}))
    jobs.write_status(job_dir, job_id=job_id, kind=kind, params=params, **{"state": "queued", **status})
    return job_dir


def _failed_job(workspace: Path, job_id: str, kind: str, params: dict[str, Any]) -> str:
    """Run the worker on a new job that fails; returns its id."""
    assert worker.run_job(_job_folder(workspace, job_id, kind, params)) == 1
    assert jobs.read_status(workspace, job_id).state == "failed"
    return job_id


def _shown(text: str) -> str:
    """Text as the reader sees it: without the escapes that keep markdown inert."""
    return text.replace("\\", "").replace("\u2060", "")


def _errors(at: Any) -> list[str]:
    return [_shown(element.value) for element in at.error]


def _table_with(at: Any, *columns: str) -> Any:
    """The first table of the page that has these columns."""
    return next(frame.value for frame in at.dataframe if set(columns) <= set(frame.value.columns))


def _score_job(workspace: Path) -> str:
    params = {"dataset": "tiny", "scorer": "perplexity", "params": {"model": MISSING_MODEL}}
    return _failed_job(workspace, "20000101-000000-score0", "score", params)


def test_quality_page_shows_a_failed_score_job_and_keeps_working(page, prepared_workspace: Path) -> None:
    store = Store(prepared_workspace)
    scoring.score_dataset(store, ds.get_dataset(store, "tiny"), scoring.build_scorer("heuristics"))
    job_id = _score_job(prepared_workspace)
    at = page("quality")
    at.session_state["score_job"] = job_id  # this session launched it

    at.run()

    assert not at.exception
    assert f"Scoring perplexity failed: {MODEL_ERROR}" in _errors(at)
    assert at.metric[0].value == "24 of 24"  # the scores, metrics and tables below still render
    assert at.button(key="start_score") is not None
    at.selectbox(key="scorer").select("tfidf_diversity").run()  # and the page still responds
    assert not at.exception


def test_quality_page_shows_a_failed_score_job_after_an_app_restart(page, prepared_workspace: Path) -> None:
    _score_job(prepared_workspace)
    at = page("quality").run()
    assert any(MODEL_ERROR in error for error in _errors(at))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _run_params(model: str) -> dict[str, Any]:
    return {"dataset": "tiny", "strategy": "random", "budget": 4, "config": {"model": model}, "name": "doomed"}


def test_runs_page_shows_a_failed_run_and_offers_to_resume_an_interrupted_one(page, prepared_workspace: Path) -> None:
    failed = _failed_job(prepared_workspace, "20000101-000001-run000", "train", _run_params(MISSING_MODEL))
    killed = "20000101-000000-run111"  # older; its worker vanished mid-training (kill -9)
    progress = {"state": "running", "stage": "train", "done": 3, "total": 8, "pid": _dead_pid()}
    _job_folder(prepared_workspace, killed, "train", _run_params("tiny"), **progress)

    at = page("runs").run()

    assert not at.exception
    assert MODEL_ERROR in _errors(at)  # the newest run's detail: the failed one
    table = _table_with(at, "run", "state")
    assert dict(zip(table["run"], table["state"], strict=True)) == {failed: "failed", killed: "interrupted"}
    assert f"Resume {killed}" in [button.label for button in at.button]
    assert f"Resume {failed}" not in [button.label for button in at.button]  # a failure needs a fix, not a resume
    at.selectbox(key="run_pick").select(killed).run()
    assert not at.exception
    assert "the worker process ended without finishing" in _errors(at)


def _prepare_job(workspace: Path, tmp_path: Path) -> str:
    source = tmp_path / "broken.jsonl"
    source.write_text(json.dumps(keyword_rows(1)[0]) + "\n" + '{"instruction": \n', encoding="utf-8")
    params = {"path": str(source), "options": {"name": "broken", "embedder": {"name": "hashing"}}}
    return _failed_job(workspace, "20000101-000000-prep00", "prepare", params)


def test_datasets_page_shows_a_failed_prepare_and_keeps_working(page, prepared_workspace: Path, tmp_path) -> None:
    job_id = _prepare_job(prepared_workspace, tmp_path)
    at = page("datasets")
    at.session_state["prepare_job"] = job_id

    at.run()

    assert not at.exception
    assert any(
        error.startswith("Preparing broken failed: broken.jsonl, line 2: malformed JSON") for error in _errors(at)
    )
    assert list(_table_with(at, "name", "status")["name"]) == ["tiny"]  # the table and summary still show
    assert at.subheader[-1].value == "Summary: tiny"
    assert at.metric[0].value == "24"


def test_datasets_page_shows_a_failed_prepare_after_an_app_restart(page, prepared_workspace: Path, tmp_path) -> None:
    _prepare_job(prepared_workspace, tmp_path)
    at = page("datasets").run()
    assert any("broken.jsonl, line 2" in error for error in _errors(at))


def test_an_interrupted_prepare_offers_resume_to_every_session_and_dismiss_hides_it(
    page, prepared_workspace: Path, tmp_path
) -> None:
    source = tmp_path / "more.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in keyword_rows(2)), encoding="utf-8")
    params = {"path": str(source), "options": {"name": "more", "embedder": {"name": "hashing"}, "k_grid": [2]}}
    killed = "20000101-000000-prep11"  # its worker was killed (kill -9) mid-embedding; the app restarted since
    _job_folder(prepared_workspace, killed, "prepare", params, state="running", stage="embed", pid=_dead_pid())

    at = page("datasets").run()  # a new session: it did not launch the job
    assert not at.exception
    assert any(text.startswith("Preparing more was interrupted") for text in map(_shown, [w.value for w in at.warning]))
    at.button(key=f"resume_{killed}").click().run()
    deadline = time.monotonic() + 120
    while (status := jobs.read_status(prepared_workspace, killed)).state != "done":
        assert time.monotonic() < deadline and status.state in ("queued", "running"), status
        time.sleep(0.3)
    assert ds.get_dataset(Store(prepared_workspace), "more").status == "ready"

    failed = _prepare_job(prepared_workspace, tmp_path)
    at = page("datasets").run()
    assert any("broken.jsonl, line 2" in error for error in _errors(at))
    at.button(key=f"dismiss_{failed}").click().run()
    assert not any("broken.jsonl" in error for error in _errors(at))
    assert jobs.read_status(prepared_workspace, failed).dismissed
