"""The Quality page launches a scoring job on the ray engine (a Ray instance the job starts on this machine)
and shows its progress, counted in finished shards, until the scores are in."""

from __future__ import annotations

import time

import pytest

from core import jobs
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage.database import Store

pytestmark = [pytest.mark.ray, pytest.mark.real_model, pytest.mark.subprocess]


def test_a_score_job_on_ray_shows_its_progress_and_stores_its_scores(page, prepared_workspace) -> None:
    pytest.importorskip("ray")
    at = page("quality").run()
    at.selectbox(key="scorer").select("perplexity").run()
    at.number_input(key="score_limit").set_value(6).run()
    at.selectbox(key="score_perplexity_precision").select("fp32").run()
    at.number_input(key="score_perplexity_max_length").set_value(64).run()
    at.selectbox(key="score_engine").select("ray").run()
    at.number_input(key="score_ray_shard_rows").set_value(2).run()
    at.number_input(key="score_ray_actors").set_value(1).run()
    at.button(key="start_score").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job_id = at.session_state["score_job"]
    assert jobs.read_status(prepared_workspace, job_id).params["engine"] == {
        "name": "ray",
        "actors": 1,
        "shard_rows": 2,
    }

    seen: set[str] = set()
    deadline = time.monotonic() + 300
    while jobs.read_status(prepared_workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(prepared_workspace, job_id)
        at.run()
        seen.update(bar.text for bar in at.get("progress") if bar.text)
        time.sleep(0.5)
    status = jobs.read_status(prepared_workspace, job_id)
    assert status.state == "done", jobs.read_log(prepared_workspace, job_id)
    # the bar moved in whole shards of 2 as they were merged
    counted = {text.rsplit(" ", 1)[-1] for text in seen if "score perplexity" in text}
    assert counted <= {"0/6", "2/6", "4/6", "6/6"} and counted, seen
    assert status.result["engine"]["engine"] == "ray" and status.result["engine"]["computed_shards"] == 3

    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    values = score_store.dataset_scores(store, dataset.dataset_id, [status.result["score_key"]])
    assert int(values["perplexity"].notna().sum()) == 6
