"""Quality page: scoring runs in the background; weights move the pass counts; proposals veto or dismiss."""

from __future__ import annotations

import time

from core import jobs
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


def _wait(workspace, job_id):
    deadline = time.monotonic() + 120
    while jobs.read_status(workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(workspace, job_id)
        time.sleep(0.3)
    return jobs.read_status(workspace, job_id)


def test_quality_page_scores_weighs_and_proposes_vetoes(page, prepared_workspace):
    at = page("quality").run()
    assert not at.exception
    assert "No scores yet" in at.info[0].value
    at.selectbox(key="scorer").select("heuristics").run()
    at.button(key="start_score").click().run()
    assert _wait(prepared_workspace, at.session_state["score_job"]).state == "done"
    at.run()
    assert not at.exception
    assert at.metric[0].value == "24 of 24"  # no defect in the tiny data: every example passes 0.3

    at.slider(key="threshold").set_value(1.0).run()  # now only perfect examples pass; lowest clusters proposed
    accept = [b for b in at.button if b.key.startswith("accept_")]
    dismiss = [b for b in at.button if b.key.startswith("dismiss_")]
    assert accept and len(accept) == len(dismiss)
    cluster = int(accept[0].key.removeprefix("accept_"))
    accept[0].click().run()
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    table = curation.clusters(store, dataset.dataset_id, dataset.active_k)
    assert bool(table.vetoed[table.cluster_id == cluster].iloc[0])
    assert f"accept_{cluster}" not in [b.key for b in at.button]

    other = next(b for b in at.button if b.key.startswith("dismiss_"))
    dismissed = int(other.key.removeprefix("dismiss_"))
    other.click().run()
    assert dismissed in curation.dismissed_proposals(store, dataset.dataset_id, dataset.active_k)
    assert f"dismiss_{dismissed}" not in [b.key for b in at.button]


def test_the_scorer_form_passes_the_parameters_the_curator_changed(page, monkeypatch):
    launched = []
    monkeypatch.setattr(
        jobs, "launch", lambda workspace, spec: launched.append((spec.kind, spec.to_params())) or "fake"
    )
    at = page("quality").run()
    at.selectbox(key="scorer").select("heuristics").run()
    assert at.number_input(key="score_heuristics_near_duplicate_threshold").value == 0.95
    at.number_input(key="score_heuristics_near_duplicate_threshold").set_value(0.9).run()
    at.checkbox(key="score_heuristics_arithmetic_check").uncheck().run()
    at.button(key="start_score").click().run()
    assert not at.exception
    ((kind, params),) = launched
    assert (kind, params["scorer"]) == ("score", "heuristics")
    assert params["params"] == {"near_duplicate_threshold": 0.9, "arithmetic_check": False}
    at.selectbox(key="scorer").select("ifd").run()
    assert at.selectbox(key="score_ifd_form").options == ["ppl_ratio", "loss_ratio"]
    at.selectbox(key="score_ifd_form").select("loss_ratio").run()
    at.button(key="start_score").click().run()
    assert launched[-1][1]["params"] == {"form": "loss_ratio"}  # the defaults stay out of the job file


def test_a_score_job_that_would_fail_shows_its_error_at_the_button_and_launches_nothing(page, prepared_workspace):
    at = page("quality").run()
    at.selectbox(key="scorer").select("reward").run()  # the reward scorer needs a model; none is named
    at.button(key="start_score").click().run()
    assert not at.exception
    errors = [error.value.replace("\\", "") for error in at.error]  # plain() escapes markdown characters
    assert any(error.startswith("model: the reward scorer needs a reward model") for error in errors), errors
    assert "score_job" not in at.session_state
    assert jobs.list_jobs(prepared_workspace) == []
