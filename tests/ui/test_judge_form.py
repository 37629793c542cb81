"""The LLM judge on the Quality page, against an in-process chat-completions server (tests/judge_server.py):
the privacy note, Score held back until the settings can work, the estimate, Test connection showing the
server's answer, and a real score job whose outcome counts rated, unparsed and failed rows."""

from __future__ import annotations

import time

from core import jobs
from tests.judge_server import FakeJudge, completion, prompt_of


def _text(elements) -> str:
    return " ".join(element.value for element in elements).replace("\\", "").replace("\u2060", "")  # plain()


def test_the_judge_form_tests_the_connection_and_scores_with_counts(page, prepared_workspace):
    def reply(body, count):  # bread rows get an answer without a score: unparsed
        prompt = prompt_of(body)
        return 200, completion("No idea." if "bread" in prompt else "4\nGood."), {}

    server = FakeJudge(reply)
    try:
        at = page("quality").run()
        at.selectbox(key="scorer").select("judge").run()
        assert not at.exception
        assert "sends every example it rates" in _text(at.caption)
        assert "model: name the model" in _text(at.warning)
        assert at.button(key="start_score").disabled  # no model named yet

        at.text_input(key="score_judge_base_url").input(server.url)
        at.text_input(key="score_judge_model").input("judge-test").run()
        assert not at.warning and not at.button(key="start_score").disabled
        assert f"judging 24 examples sends 24 requests to {server.url}" in _text(at.info)

        at.button(key="judge_test").click().run()
        # the first example is a bread row: the answer is shown as the server wrote it, and read as unparsed
        assert "the judge reads no score on the scale: unparsed" in _text(at.success)
        assert "No idea." in [element.value for element in at.text]
        assert len(server.requests) == 1

        at.button(key="start_score").click().run()
        job_id = at.session_state["score_job"]
        deadline = time.monotonic() + 120
        while jobs.read_status(prepared_workspace, job_id).active:
            assert time.monotonic() < deadline, jobs.read_log(prepared_workspace, job_id)
            time.sleep(0.3)
        assert jobs.read_status(prepared_workspace, job_id).state == "done"
        at.run()
        assert not at.exception
        captions = _text(at.caption)
        assert "18 rated, 6 unparsed, 0 failed" in captions  # the finished job's outcome
        assert "LLM judge: 18 rows rated, 6 unparsed" in captions  # what the store holds
        assert len(server.requests) == 25
    finally:
        server.close()
