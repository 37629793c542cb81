"""The LLM judge (core/score/judge.py) against an in-process chat-completions server (tests/judge_server.py):
answers parsed or recorded as unparsed, retries on 500 and 429, a server that always fails stopping the run
with its URL and message, timeouts, bounded concurrency, the cache, resume after a cancel, and the API key sent
as a Bearer token but stored nowhere."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import jobs
from core.jobs import worker
from core.progress import Cancelled, Progress
from core.score import judge, scoring
from core.score.job import ScoreJob
from core.score.scorers import SCORERS, JudgeScorer
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage.database import Store
from tests.judge_server import FakeJudge, completion, prompt_of, rating

ROWS = 24  # the template workspace's dataset "tiny"


@pytest.fixture
def fake_judge() -> Iterator[FakeJudge]:
    """A fake judge server that rates by a hash of the prompt; closed after the test."""
    server = FakeJudge()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Retries wait milliseconds, not seconds (the backoff itself is tested below)."""
    monkeypatch.setattr(judge, "BACKOFF_BASE", 0.01)


def make(server: FakeJudge, **params: Any) -> JudgeScorer:
    return JudgeScorer(**{"base_url": server.url, "model": "judge-test", **params})


def run(workspace: Path, scorer: JudgeScorer, **kwargs: Any) -> scoring.ScoreReport:
    store = Store(workspace)
    return scoring.score_dataset(store, ds.get_dataset(store, "tiny"), scorer, **kwargs)


def stored(workspace: Path, scorer: JudgeScorer) -> Any:
    store = Store(workspace)
    return score_store.dataset_scores(store, ds.get_dataset(store, "tiny").dataset_id, [scorer.score_key()])


# ---------------------------------------------------------------- prompt and answers


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("4", 4.0),
        ("4.5\nThe response is accurate but brief.", 4.5),
        ("**3**\nMostly right.", 3.0),
        ("5/5", 5.0),
        ("2 out of 5.", 2.0),
        ("Score: 4", 4.0),
        ("The answer is fine. **Rating:** [[3]]", 3.0),
        ("I give it a score of 2 because it is vague.", 2.0),
    ],
)
def test_a_score_is_read_from_the_first_line_or_after_score_or_rating(answer, score):
    assert judge.parse_score(answer, judge.DEFAULT_PATTERN, 1, 5) == score


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "The response is good.",
        "1. The response answers the question.\n2. It is concise.",  # a list, not a score of 1
        "2 + 2 = 4",  # the model answered the question instead of rating it
        "7",  # off the 1-5 scale
        "0\nNo answer at all.",
        "I would rate this four.",
    ],
)
def test_an_answer_without_a_score_on_the_scale_is_unparsed_not_guessed(answer):
    assert math.isnan(judge.parse_score(answer, judge.DEFAULT_PATTERN, 1, 5))


def test_a_custom_pattern_and_scale_decide_what_is_read():
    assert judge.parse_score("verdict=8/10", r"verdict=(\d+)", 1, 10) == 8.0
    assert math.isnan(judge.parse_score("verdict=8/10", r"verdict=(\d+)", 1, 5))


def test_the_prompt_is_filled_in_one_pass_and_keeps_the_texts_braces():
    settings = judge.JudgeSettings(model="m", scale_max=10)
    text = judge.render(settings, "Format {output} as JSON", "", "{'a': 1} {input}")
    assert "Format {output} as JSON" in text and "{'a': 1} {input}" in text
    assert "scale of 1 to 10" in text


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("field", "params"),
    [
        ("base_url", {"base_url": "ftp://127.0.0.1/v1"}),
        ("base_url", {"base_url": "http://user:secret@127.0.0.1:8000/v1"}),
        ("base_url", {"base_url": "http://127.0.0.1:8000/v1?key=abc"}),
        ("base_url", {"base_url": "http://169.254.169.254/latest"}),
        ("base_url", {"base_url": "http://[::ffff:169.254.169.254]/v1"}),
        ("model", {"model": ""}),
        ("prompt", {"prompt": "Rate this: {instruction}"}),
        ("pattern", {"pattern": "(unclosed"}),
        ("scale_max", {"scale_min": 5.0, "scale_max": 1.0}),
        ("api_key_env", {"api_key_env": "AWS_SECRET_ACCESS_KEY"}),
    ],
)
def test_a_judge_job_that_cannot_work_is_refused_naming_the_field(workspace, field, params):
    spec = ScoreJob("tiny", "judge", {"model": "judge-test", **params})
    with pytest.raises(jobs.InvalidJob) as caught:
        spec.validate(workspace)
    assert caught.value.field == field
    assert "secret" not in str(caught.value)


def test_the_score_key_names_the_model_and_prompt_but_not_the_server_or_its_timeouts(fake_judge):
    base = make(fake_judge)
    moved = JudgeScorer(base_url="https://judge.example.org/v1", model="judge-test", timeout=5, concurrency=9)
    assert moved.score_key() == base.score_key()
    assert make(fake_judge, model="other").score_key() != base.score_key()
    assert make(fake_judge, prompt=base.prompt + " Be strict.").score_key() != base.score_key()


# ---------------------------------------------------------------- requests


def test_scores_unparsed_rows_and_tokens_come_back_per_row(fake_judge):
    def reply(body, count):
        prompt = prompt_of(body)
        if "bread" in prompt:
            return 200, completion("I cannot rate this."), {}
        return 200, completion(f"Score: {rating(prompt)}"), {}

    fake_judge.reply = reply
    frame = ds_frame()
    values = make(fake_judge).score(frame)
    bread = frame.instruction.str.contains("bread").to_numpy()
    assert np.isnan(values["judge"][bread]).all() and (values["judge_unparsed"][bread] == 1).all()
    expected = [rating(p) for p in sorted(fake_judge.prompts) if "bread" not in p]
    assert sorted(values["judge"][~bread]) == sorted(expected)
    assert (values["judge_failed"] == 0).all() and (values["judge_prompt_tokens"] == 100).all()
    body = fake_judge.requests[0]
    assert (body["model"], body["temperature"], body["max_tokens"], body["stream"]) == ("judge-test", 0.0, 128, False)


def test_500_and_429_are_retried_then_rated_and_retry_after_is_respected(fake_judge):
    failures: dict[str, int] = {}

    def reply(body, count):
        prompt = prompt_of(body)
        failures[prompt] = failures.get(prompt, 0) + 1
        if failures[prompt] == 1:
            return 500, {"error": {"message": "overloaded"}}, {}
        if failures[prompt] == 2:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.5"}
        return 200, completion(str(rating(prompt))), {}

    fake_judge.reply = reply
    start = time.perf_counter()
    values = make(fake_judge, max_retries=2).score(ds_frame().head(3))
    assert time.perf_counter() - start >= 0.5  # the server asked for half a second
    assert np.isfinite(values["judge"]).all() and (values["judge_failed"] == 0).all()
    assert len(fake_judge.requests) == 9


def test_the_backoff_doubles_with_full_jitter_and_a_cap(monkeypatch):
    monkeypatch.setattr(judge, "BACKOFF_BASE", 0.5)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (12, judge.MAX_WAIT)]:
        waits = [judge.backoff(attempt) for _ in range(200)]
        assert min(waits) >= 0 and max(waits) <= ceiling and max(waits) > ceiling / 2  # spread below the ceiling


def test_rows_that_fail_every_retry_are_recorded_failed_and_sent_again_next_run(workspace, fake_judge):
    broken = {"on": True}

    def reply(body, count):
        if broken["on"] and "planet" in prompt_of(body):
            return 503, "upstream unavailable", {}
        return 200, completion(str(rating(prompt_of(body)))), {}

    fake_judge.reply = reply
    scorer = make(fake_judge, max_retries=1)
    report = run(workspace, scorer, chunk=8)  # the last chunk: 2 rows rated, then the 6 planet rows fail
    assert report.tally["failed"] == 6 and report.tally["rated"] == ROWS - 6
    values = stored(workspace, scorer)
    assert values.judge_failed.sum() == 6 and values.judge.isna().sum() == 6
    assert len(fake_judge.requests) == ROWS + 6  # the failed rows' retry

    broken["on"] = False
    fake_judge.requests.clear()
    again = run(workspace, scorer)
    assert (again.scored, again.cached) == (6, ROWS - 6)
    assert len(fake_judge.requests) == 6 and all("planet" in p for p in fake_judge.prompts)
    assert stored(workspace, scorer).judge.notna().all()


def test_a_server_that_always_fails_stops_the_run_early_with_its_url_and_message(workspace, fake_judge):
    fake_judge.reply = lambda body, count: (401, {"error": {"message": "invalid api key"}}, {})
    scorer = make(fake_judge, concurrency=2)
    with pytest.raises(judge.JudgeUnavailable) as caught:
        run(workspace, scorer)
    message = str(caught.value)
    assert fake_judge.url + "/chat/completions" in message and "HTTP 401: invalid api key" in message
    assert len(fake_judge.requests) <= judge.FAIL_FAST + 2  # not one request per row
    assert stored(workspace, scorer).dropna(how="all").empty  # nothing recorded as a score


def test_a_server_that_is_not_there_stops_the_run_naming_it(workspace):
    scorer = JudgeScorer(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0)  # port 9: nothing listens
    with pytest.raises(judge.JudgeUnavailable, match=r"http://127.0.0.1:9/v1/chat/completions.*cannot reach"):
        run(workspace, scorer)


def test_a_request_past_the_timeout_is_recorded_failed_within_bounded_time(fake_judge):
    def reply(body, count):
        if "python" in prompt_of(body):
            time.sleep(1.5)
        return 200, completion(str(rating(prompt_of(body)))), {}

    fake_judge.reply = reply
    frame = ds_frame().head(12)  # 6 bread rows, 6 python rows
    start = time.perf_counter()
    values = make(fake_judge, timeout=0.3, max_retries=1, concurrency=6).score(frame)
    assert time.perf_counter() - start < 2.5  # two tries of 0.3 s each, in parallel, not 1.5 s each in turn
    slow = frame.instruction.str.contains("python").to_numpy()
    assert (values["judge_failed"][slow] == 1).all() and np.isnan(values["judge"][slow]).all()
    assert np.isfinite(values["judge"][~slow]).all()


def test_no_more_requests_are_in_flight_than_the_concurrency():
    server = FakeJudge(delay=0.1)
    try:
        make(server, concurrency=3).score(ds_frame().head(12))
        assert server.max_in_flight == 3
        server.max_in_flight = 0
        make(server, concurrency=1, model="serial").score(ds_frame().head(4))
        assert server.max_in_flight == 1
    finally:
        server.close()


# ---------------------------------------------------------------- cache, cancel, resume


def test_a_second_run_is_a_cache_hit_and_sends_nothing(workspace, fake_judge):
    scorer = make(fake_judge)
    first = run(workspace, scorer)
    assert (first.scored, first.tally["rated"], len(fake_judge.requests)) == (ROWS, ROWS, ROWS)
    second = run(workspace, make(fake_judge, concurrency=7, timeout=5))  # settings outside the key
    assert (second.scored, second.cached, len(fake_judge.requests)) == (0, ROWS, ROWS)


def test_a_cancelled_run_keeps_its_chunks_and_the_resumed_run_sends_only_the_rest(workspace, fake_judge):
    scorer = make(fake_judge)
    stop = Progress(should_stop=lambda: len(fake_judge.requests) >= 8)
    with pytest.raises(Cancelled):
        run(workspace, scorer, chunk=8, progress=stop)
    assert len(fake_judge.requests) == 8 and stored(workspace, scorer).judge.notna().sum() == 8
    rest = run(workspace, scorer, chunk=8)
    assert (rest.scored, rest.cached) == (ROWS - 8, 8)
    assert len(fake_judge.requests) == ROWS and len(set(fake_judge.prompts)) == ROWS  # none sent twice


def test_the_run_reports_its_rate_tokens_and_counts_as_it_goes(workspace, fake_judge):
    class Notes(Progress):
        def __init__(self):
            super().__init__()
            self.notes = []

        def note(self, text):
            self.notes.append(text)

    notes = Notes()
    run(workspace, make(fake_judge), chunk=8, progress=notes)
    assert len(notes.notes) == 3
    assert (
        "rows/s" in notes.notes[0] and "107 tokens/row" in notes.notes[0] and "0 unparsed, 0 failed" in notes.notes[0]
    )


def test_the_estimate_before_a_run_uses_the_rate_measured_by_an_earlier_run(workspace, fake_judge):
    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")
    scorer = make(fake_judge)
    before = judge.estimate_for(store, dataset.dataset_id, scorer, 1000)
    assert "1,000 requests to " + fake_judge.url in before and "prompt tokens" in before and "after its first" in before
    run(workspace, scorer)
    after = judge.estimate_for(store, dataset.dataset_id, scorer, 1000)
    assert "rows/s measured here" in after


# ---------------------------------------------------------------- the API key


def test_the_key_goes_as_a_bearer_token_and_is_stored_nowhere(workspace, fake_judge, monkeypatch):
    sentinel = "sk-sentinel-0f9e8d7c6b5a"
    monkeypatch.setenv("SENTINEL_API_KEY", sentinel)
    monkeypatch.setattr(jobs, "_spawn", worker.run_job)  # the worker runs in this process
    params = {"base_url": fake_judge.url, "model": "judge-test", "api_key_env": "SENTINEL_API_KEY"}
    job_id = jobs.launch(workspace, ScoreJob("tiny", "judge", params))
    status = jobs.read_status(workspace, job_id)
    assert status.state == "done" and status.result["tally"]["rated"] == ROWS
    assert {h.get("Authorization") for h in fake_judge.headers} == {f"Bearer {sentinel}"}
    assert sentinel not in json.dumps(dataclasses_dict(status))
    for path in workspace.rglob("*"):
        if path.is_file():
            assert sentinel.encode() not in path.read_bytes(), path


def test_a_refused_key_echoed_by_the_server_is_blanked_in_the_error(workspace, fake_judge, monkeypatch):
    sentinel = "sk-sentinel-echoed-1234"
    monkeypatch.setenv("SENTINEL_API_KEY", sentinel)
    fake_judge.reply = lambda body, count: (401, {"error": {"message": f"Incorrect API key: {sentinel}"}}, {})
    with pytest.raises(judge.JudgeUnavailable) as caught:
        run(workspace, make(fake_judge, api_key_env="SENTINEL_API_KEY"))
    assert sentinel not in str(caught.value) and "Incorrect API key: ***" in str(caught.value)


def test_without_the_variable_no_authorization_header_is_sent(fake_judge, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    make(fake_judge).score(ds_frame().head(2))
    assert all("Authorization" not in headers for headers in fake_judge.headers)


def test_try_once_shows_the_answer_its_score_and_the_served_model(fake_judge):
    fake_judge.reply = lambda body, count: (200, completion("4\nFine.", model="served-name"), {})
    verdict, _ = judge.try_once(make(fake_judge), "Name a colour.", "", "Blue.")
    assert (verdict.score, verdict.answer, verdict.served_model, verdict.error) == (4.0, "4\nFine.", "served-name", "")
    bad, _ = judge.try_once(make(fake_judge, model=""), "Name a colour.", "", "Blue.")
    assert bad.failed and "model" in bad.error


def test_the_cli_scores_with_the_judge_and_prints_the_estimate_and_counts(workspace, fake_judge, capsys):
    from core import cli

    args = ["score", "--workspace", str(workspace), "--scorer", "judge", "--model", "judge-test"]
    assert cli.main([*args, "--param", f"base_url={fake_judge.url}", "--param", "max_tokens=32"]) == 0
    out = capsys.readouterr().out
    assert f"judging 24 examples sends 24 requests to {fake_judge.url}" in out
    assert "scored 24 examples with judge" in out
    assert "24 rated, 0 unparsed, 0 failed, 2,400 prompt tokens, 168 completion tokens" in out
    assert {body["max_tokens"] for body in fake_judge.requests} == {32}


def test_the_cli_names_the_server_when_it_cannot_rate(workspace, capsys):
    from core import cli

    args = ["score", "--workspace", str(workspace), "--scorer", "judge", "--model", "m"]
    assert cli.main([*args, "--param", "base_url=http://127.0.0.1:9/v1", "--param", "max_retries=0"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: the judge server at http://127.0.0.1:9/v1/chat/completions failed the first 8")


def test_the_judge_is_registered_with_its_parameters():
    names = {p.name for p in SCORERS.params("judge")}
    assert {"base_url", "model", "prompt", "pattern", "scale_min", "scale_max", "concurrency", "timeout"} <= names
    assert {"max_retries", "api_key_env", "max_tokens", "temperature"} <= names


# ---------------------------------------------------------------- helpers


def ds_frame() -> Any:
    """The 24 keyword rows as a scorer's frame (bread rows first, then python, capital, planet)."""
    import pandas as pd

    from tests.conftest import keyword_rows

    return pd.DataFrame(keyword_rows())


def dataclasses_dict(status: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(status)
