"""Quality page: scoring runs in the background; weights move the pass counts; proposals veto or dismiss."""

from __future__ import annotations

import time

import pytest

from core import jobs
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl

GIBBERISH = "wazjk troku greq kozz blorf quex snimfrex drylp."


@pytest.fixture
def prepared_workspace(tmp_path):
    """The tiny dataset with two defect topics: every "planet" answer states wrong arithmetic, every "bread"
    answer is gibberish; "python" and "capital" are clean (and short)."""
    from core.prepare import PrepareOptions, prepare

    rows = keyword_rows()
    for number, row in enumerate(rows):
        if "planet" in row["instruction"]:
            row["output"] = f"{number} plus 2 is {number + 5}."
        elif "bread" in row["instruction"]:
            row["output"] = GIBBERISH
    path = write_jsonl(tmp_path / "tiny.jsonl", rows)
    workspace = tmp_path / "ws"
    prepare(Store(workspace), path, PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(4,), seed=0))
    return workspace


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
    assert at.metric[0].value == "12 of 24"  # the flagged half is multiplied by 1 - 0.8: below 0.3

    accept = [b for b in at.button if b.key.startswith("accept_")]
    dismiss = [b for b in at.button if b.key.startswith("dismiss_")]
    assert len(accept) == len(dismiss) == 2  # the two defect topics, not the clean ones
    captions = " ".join(caption.value for caption in at.caption).replace("\\", "")  # plain() escapes markdown
    assert "arithmetic_error: 100% of the cluster's rows" in captions and "gibberish: 100%" in captions
    shown = [frame.value for frame in at.dataframe if "flags" in frame.value.columns]  # AppTest keeps no key
    assert len(shown) == 2 and all(len(rows) == 5 for rows in shown)  # the rows behind each, as plain cells
    assert {"flags", "instruction", "output"} <= set(shown[0].columns)
    assert all("arithmetic_error" in flags or "gibberish" in flags for flags in shown[0]["flags"])
    assert at.selectbox(key="hist_score").value == "response_length"  # a real score, not a 0/1 flag

    at.slider(key="threshold").set_value(1.0).run()  # a threshold alone proposes no clean cluster
    assert len([b for b in at.button if b.key.startswith("accept_")]) == 2
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
