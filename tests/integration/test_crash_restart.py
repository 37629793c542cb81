"""Crash and restart: kill -9 a job's worker mid-way, then find the store intact and the job resumable.

Every test here sends a real SIGKILL to a real worker (or writer) process. After it: the store opens,
what was committed before the kill is still there (the curator's vetoes and weights, embeddings, finished
scores, finished rounds), the job reads as ``interrupted``, and :func:`jobs.relaunch` finishes it to the
very result an uninterrupted job reaches. A job that raises instead ends ``failed`` with one readable line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core import jobs
from core.jobs import worker
from core.prepare import EMBED_CHUNK, PrepareOptions, prepare
from core.prepare_job import PrepareJob
from core.runs import run as runs
from core.score.job import ScoreJob
from core.storage import curation, selections
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import ROOT

TIMEOUT_SECONDS = 300
BIG_ROWS = 1200  # two embedding chunks; k-means and UMAP after them take seconds, so a kill lands mid-prepare
HASHING = {"name": "hashing"}  # model-free, and the worker process can build it (unlike the test-only embedder)
WORDS = ("bread", "python", "capital", "planet", "river", "music", "garden", "engine", "winter", "ocean", "paper")


def _rows(n: int) -> list[dict[str, str]]:
    """``n`` distinct Alpaca rows over a small vocabulary (seeded)."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b, c = rng.sample(WORDS, 3)
        rows.append(
            {
                "instruction": f"Task {i}: describe the {a} and the {b} near the {c}",
                "input": "",
                "output": f"The {a} is {i % 17} times the {c}, and the {b} is {'small' if i % 2 else 'large'}.",
            }
        )
    return rows


def _wait(
    workspace: Path, job_id: str, until: Callable[[jobs.JobStatus], bool] = lambda s: not s.active
) -> jobs.JobStatus:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    status = jobs.read_status(workspace, job_id)
    while not until(status):
        assert time.monotonic() < deadline, f"job {job_id} is {status.state}; log:\n{jobs.read_log(workspace, job_id)}"
        time.sleep(0.05)
        status = jobs.read_status(workspace, job_id)
    return status


def _wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _kill(workspace: Path, job_id: str) -> jobs.JobStatus:
    """SIGKILL the job's worker while it runs, as a crash or ``kill -9`` would; returns its status after."""
    status = jobs.read_status(workspace, job_id)
    assert status.state == "running", f"the job was {status.state} before the kill: nothing to interrupt"
    os.kill(status.pid, signal.SIGKILL)
    return _wait(workspace, job_id, until=lambda s: not s.active)


def _job_dir(workspace: Path, kind: str, params: dict[str, Any]) -> Path:
    """A job folder as ``jobs.launch`` makes it, for running the worker in this process."""
    job_dir = jobs.jobs_dir(workspace) / f"20000101-000000-{kind}"
    job_dir.mkdir(parents=True)
    (job_dir / "params.json").write_text(json.dumps({"kind": kind, "params": params}))
    jobs.write_status(job_dir, job_id=job_dir.name, kind=kind, state="queued", params=params)
    return job_dir


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _decisions(store: Store, dataset: ds.DatasetInfo) -> dict[str, Any]:
    """The curator's decisions on a dataset, and the history that records them."""
    table = curation.clusters(store, dataset.dataset_id, int(dataset.active_k))
    return {
        "clusters": table[["cluster_id", "vetoed", "weight"]].to_dict("records"),
        "examples": curation.decisions(store, dataset.dataset_id)["vetoed_examples"],
        "history": curation.history(store, dataset.dataset_id).drop(columns="changed_at").to_dict("records"),
    }


def _curate(store: Store, dataset: ds.DatasetInfo) -> None:
    """A veto of cluster 0, weight 2.5 on cluster 1 and one vetoed example, as a curator would set them."""
    k = int(dataset.active_k)
    curation.set_cluster_veto(store, dataset.dataset_id, k, 0, True)
    curation.set_cluster_weight(store, dataset.dataset_id, k, 1, 2.5)
    example = curation.all_rows(store, dataset.dataset_id, k).example_id.iloc[-1]
    curation.set_example_veto(store, dataset.dataset_id, example, True)


# ---------------------------------------------------------------------------------------------- prepare


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows(BIG_ROWS)), encoding="utf-8")
    return path


def _options(name: str = "big") -> dict[str, Any]:
    return {"name": name, "embedder": HASHING, "k_grid": [4, 8], "seed": 0}


@pytest.fixture(scope="module")
def big_reference(big_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace where ``big`` was prepared without interruption (do not modify: copy it)."""
    workspace = tmp_path_factory.mktemp("reference") / "ws"
    options = _options()
    prepare(Store(workspace), big_file, PrepareOptions(**{**options, "k_grid": tuple(options["k_grid"])}))
    return workspace


def _hashing_vectors(workspace: Path) -> int:
    with Store(workspace).read() as con:
        return con.execute("SELECT count(*) FROM embedding_cache WHERE embedder_key LIKE 'hashing:%'").fetchone()[0]


def _prepared(workspace: Path, name: str) -> dict[str, Any]:
    """Everything a prepare stores for a dataset, without its id (two workspaces number datasets apart)."""
    store = Store(workspace)
    info = ds.get_dataset(store, name)
    tables = {
        "examples": "row_idx",
        "k_sweep": "k",
        "assignments": "k, row_idx",
        "cluster_labels": "k, cluster_id",
        "map_coords": "row_idx",
    }
    with store.read() as con:
        frames = {
            table: con.execute(
                f"SELECT * EXCLUDE (dataset_id) FROM {table} WHERE dataset_id = ? ORDER BY {order}", [info.dataset_id]
            ).df()
            for table, order in tables.items()
        }
    fields = ("n_rows", "status", "embedder_key", "k_grid", "best_k", "knee_k", "active_k")
    return {
        "info": {field: getattr(info, field) for field in fields},
        "embeddings": ds.load_embeddings(store, info.dataset_id, info.embedder_key),
        **frames,
    }


def test_a_prepare_killed_mid_way_resumes_to_the_result_of_an_uninterrupted_prepare(
    workspace: Path, big_file: Path, big_reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "CURATE_EMBED_WRITE_ROWS", str(EMBED_CHUNK)
    )  # the worker commits every chunk: a kill lands between
    store = Store(workspace)
    tiny = ds.get_dataset(store, "tiny")  # another dataset of the workspace, already prepared and curated
    _curate(store, tiny)
    curated = _decisions(store, tiny)

    job_id = jobs.launch(workspace, PrepareJob.from_params({"path": str(big_file), "options": _options()}))
    _wait(workspace, job_id, until=lambda s: (s.stage in ("embed", "k sweep", "map") and s.done > 0) or not s.active)
    # progress counts a chunk when it is embedded, a moment before it is committed: wait for the commit
    _wait_for(lambda: _hashing_vectors(workspace) >= EMBED_CHUNK or not jobs.read_status(workspace, job_id).active)
    status = _kill(workspace, job_id)

    assert status.state == "interrupted" and status.error == "the worker process ended without finishing"
    store = Store(workspace)  # the store opens after the kill
    assert _decisions(store, tiny) == curated
    assert ds.get_dataset(store, "big").status != "ready"
    committed = _hashing_vectors(workspace)
    assert committed >= EMBED_CHUNK

    jobs.relaunch(workspace, job_id)
    status = _wait(workspace, job_id)

    assert status.state == "done", jobs.read_log(workspace, job_id)
    assert (status.result["embeddings_cached"], status.result["embedded"]) == (committed, BIG_ROWS - committed)
    resumed, reference = _prepared(workspace, "big"), _prepared(big_reference, "big")
    assert resumed["info"] == reference["info"] and resumed["info"]["status"] == "ready"
    np.testing.assert_array_equal(resumed["embeddings"], reference["embeddings"])
    for table in ("examples", "k_sweep", "assignments", "cluster_labels", "map_coords"):
        pd.testing.assert_frame_equal(resumed[table], reference[table], check_exact=True)  # UMAP too: bit for bit
    assert _decisions(Store(workspace), tiny) == curated


# ---------------------------------------------------------------------------------------------- scoring


def _scores(workspace: Path) -> pd.DataFrame:
    with Store(workspace).read() as con:
        return con.execute("SELECT * FROM scores ORDER BY score_key, content_hash, name").df()


def test_scoring_killed_after_a_chunk_keeps_its_scores_and_resumes_to_the_uninterrupted_scores(
    big_reference: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    interrupted = shutil.copytree(big_reference, tmp_path / "interrupted")
    uninterrupted = shutil.copytree(big_reference, tmp_path / "uninterrupted")
    # a limit: the resumed job must finish the sample it drew, not draw another from what is left
    spec = ScoreJob(
        dataset="big", scorer="perplexity", params={"model": str(tiny_model_dir), "max_length": 96}, limit=384
    )
    reference_id = jobs.launch(uninterrupted, spec)
    job_id = jobs.launch(interrupted, spec)
    # the job reports a chunk done only after committing it
    _wait(interrupted, job_id, until=lambda s: (s.stage.startswith("score") and s.done > 0) or not s.active)
    status = _kill(interrupted, job_id)

    assert status.state == "interrupted"
    finished = _scores(interrupted)  # the store opens; what was committed before the kill
    assert 0 < finished.content_hash.nunique() < 384 and finished.content_hash.nunique() % 128 == 0

    jobs.relaunch(interrupted, job_id)
    status, reference = _wait(interrupted, job_id), _wait(uninterrupted, reference_id)

    assert status.state == "done" and reference.state == "done", jobs.read_log(interrupted, job_id)
    assert status.result["scored"] == 384 - finished.content_hash.nunique()
    final = _scores(interrupted)
    assert final.content_hash.nunique() == 384
    pd.testing.assert_frame_equal(final, _scores(uninterrupted), check_exact=True)
    kept = final.merge(finished, on=["score_key", "content_hash", "name"], suffixes=("", "_before"))
    assert len(kept) == len(finished) and (kept.value == kept.value_before).all()  # finished scores untouched


# ---------------------------------------------------------------------------------------------- a loop run


def _loop_spec(model: Path) -> runs.RunSpec:
    config = {
        "model": str(model),
        "target_modules": "all-linear",
        "learning_rate": 2e-2,
        "epochs": 6,  # round 2 trains 24 steps, a checkpoint every 2: the kill lands inside it
        "batch_size": 2,
        "grad_accum": 1,
        "max_length": 96,
        "checkpoint_every": 2,
    }
    return runs.RunSpec(
        dataset="tiny",
        loop="iterative_kmq",
        budget=8,
        rounds=2,
        config=config,
        seed=3,
        loop_params={"max_new_tokens": 4},
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.json"))}


def test_a_loop_run_killed_in_round_2_keeps_round_1_and_resumes_to_the_uninterrupted_selection(
    workspace: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    store = Store(workspace)
    tiny = ds.get_dataset(store, "tiny")
    _curate(store, tiny)  # the rounds follow these decisions
    uninterrupted = shutil.copytree(workspace, tmp_path / "uninterrupted")
    reference_id = runs.launch_run(uninterrupted, _loop_spec(tiny_model_dir))
    run_id = runs.launch_run(workspace, _loop_spec(tiny_model_dir))
    loop = runs.run_dir(workspace, run_id) / "loop"
    _wait(workspace, run_id, until=lambda s: (loop / "round_1/done.json").exists() or not s.active)
    round_1 = _files(loop / "round_1")
    other_k = next(k for k in tiny.k_grid if k != tiny.active_k)  # a decision made meanwhile, which the run ignores
    curation.set_cluster_weight(store, tiny.dataset_id, other_k, 0, 3.0)
    curated = _decisions(store, tiny)
    _wait(workspace, run_id, until=lambda s: (loop / "round_2/train/checkpoint/state.pt").exists() or not s.active)
    status = _kill(workspace, run_id)

    assert status.state == "interrupted"
    assert (loop / "round_1/done.json").exists() and not (loop / "round_2/done.json").exists()
    picks = runs.round_picks(workspace, run_id)  # round 1's picks show while the run is stopped
    assert list(picks["round"]) == [1] * 4
    store = Store(workspace)
    assert _decisions(store, tiny) == curated

    runs.resume_run(workspace, run_id)
    status, reference = _wait(workspace, run_id), _wait(uninterrupted, reference_id)

    assert status.state == "done" and reference.state == "done", jobs.read_log(workspace, run_id)
    assert _files(loop / "round_1") == round_1  # round 1 was read back, not redone
    assert status.result["rounds"] == reference.result["rounds"]  # picks, quotas, learned weights, mean losses
    assert status.result["steps"] == reference.result["steps"] == 12 + 24
    chosen = selections.items(store, status.result["selection_id"]).example_id.tolist()
    expected = selections.items(Store(uninterrupted), reference.result["selection_id"]).example_id.tolist()
    assert chosen == expected and len(chosen) == 8
    adapter = "final/adapter_model.safetensors"
    assert (runs.run_dir(workspace, run_id) / adapter).read_bytes() == (
        runs.run_dir(uninterrupted, reference_id) / adapter
    ).read_bytes()  # training resumed from the checkpoint bit for bit
    resumed_losses, reference_losses = runs.losses(workspace, run_id), runs.losses(uninterrupted, reference_id)
    pd.testing.assert_frame_equal(resumed_losses[["step", "loss"]], reference_losses[["step", "loss"]])
    assert _decisions(store, tiny) == curated


# ---------------------------------------------------------------------------------------------- the store


def curation_op(j: int, clusters: list[int], example_ids: list[str]) -> tuple[str, Any, Any]:
    """The j-th write of :func:`write_forever`: a cluster weight (even j) or an example veto (odd j)."""
    if j % 2 == 0:
        return "weight", clusters[(j // 2) % len(clusters)], round(0.5 + (j * 37 % 95) / 10, 1)
    return "veto", example_ids[(j // 2) % len(example_ids)], (j // 2 // len(example_ids)) % 2 == 0


def write_forever(workspace: str, dataset_id: int, k: int, start: int, clusters: str, example_ids: str) -> None:
    """Entry point of the writer process: apply curation_op(start), (start + 1), ...; print j once committed."""
    store = Store(workspace)
    ids, example_list = [int(c) for c in clusters.split(",")], example_ids.split(",")
    j = start
    while True:
        kind, target, value = curation_op(j, ids, example_list)
        if kind == "weight":
            curation.set_cluster_weight(store, dataset_id, k, target, value)
        else:
            curation.set_example_veto(store, dataset_id, target, value)
        print(j, flush=True)
        j += 1


def _state(workspace: Path, dataset_id: int, k: int) -> tuple[dict[int, float], dict[str, bool], list[tuple]]:
    with Store(workspace).read() as con:
        weights = con.execute(
            "SELECT cluster_id, weight FROM cluster_decisions WHERE dataset_id = ? AND k = ?", [dataset_id, k]
        ).fetchall()
        vetoes = con.execute("SELECT example_id, vetoed FROM example_vetoes WHERE dataset_id = ?", [dataset_id])
        vetoes = vetoes.fetchall()
        history = con.execute(
            "SELECT action, target, new_value FROM history WHERE dataset_id = ? ORDER BY history_id", [dataset_id]
        ).fetchall()
    return dict(weights), dict(vetoes), history


def _replay(
    state: tuple[dict[int, float], dict[str, bool], list[tuple]], op: tuple[str, Any, Any], k: int
) -> tuple[dict[int, float], dict[str, bool], list[tuple]]:
    """The state after one write, as curation records it (a write that changes nothing adds no history)."""
    weights, vetoes, history = dict(state[0]), dict(state[1]), list(state[2])
    kind, target, value = op
    if kind == "weight" and weights.get(target, 1.0) != value:
        weights[target] = value
        history.append(("cluster_weight", f"k={k}/cluster={target}", json.dumps(value)))
    elif kind == "veto" and vetoes.get(target, False) != value:
        vetoes[target] = value
        history.append(("example_veto", target, json.dumps(value)))
    return weights, vetoes, history


def _write_until_killed(args: list[Any], rng: random.Random) -> list[int]:
    """Start :func:`write_forever` in a process, SIGKILL it at a random moment; returns the writes it reported."""
    workspace, dataset_id, k, start, clusters, example_ids = args
    code = (
        "from tests.integration.test_crash_restart import write_forever; "
        f"write_forever({workspace!r}, {dataset_id}, {k}, {start}, "
        f"{','.join(map(str, clusters))!r}, {','.join(example_ids)!r})"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    reported: list[int] = []
    reader = threading.Thread(target=lambda: reported.extend(int(line) for line in writer.stdout), daemon=True)
    reader.start()
    _wait_for(lambda: len(reported) >= 3 or writer.poll() is not None, timeout=120)
    assert writer.poll() is None, "the writer process stopped by itself"
    time.sleep(rng.uniform(0.0, 0.3))
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    reader.join(timeout=10)
    return reported


def test_the_store_survives_kills_during_write_transactions_with_every_reported_write(workspace: Path) -> None:
    store = Store(workspace)
    tiny = ds.get_dataset(store, "tiny")
    k = int(tiny.active_k)
    clusters = curation.clusters(store, tiny.dataset_id, k).cluster_id.tolist()
    example_ids = curation.all_rows(store, tiny.dataset_id, k).example_id.tolist()[:5]
    rng = random.Random(7)
    expected = _state(workspace, tiny.dataset_id, k)
    start = 0
    for _ in range(6):
        reported = _write_until_killed([str(workspace), tiny.dataset_id, k, start, clusters, example_ids], rng)

        assert reported == list(range(start, start + len(reported)))
        for j in reported:
            expected = _replay(expected, curation_op(j, clusters, example_ids), k)
        unreported = _replay(expected, curation_op(start + len(reported), clusters, example_ids), k)
        actual = _state(workspace, tiny.dataset_id, k)  # the store opens after every kill
        # every reported write is there; the write under way when the kill came is all there or not at all
        assert actual in (expected, unreported)
        expected = actual
        start += len(reported) + 1
    assert start > 6 * 3


# ---------------------------------------------------------------------------------------------- the app


LAUNCHER = (
    "import json, sys, time; from pathlib import Path; from core import jobs; from core.score.job import ScoreJob; "
    "print(jobs.launch(Path(sys.argv[1]), ScoreJob(**json.loads(sys.argv[2]))), flush=True); time.sleep(600)"
)


def test_killing_the_process_that_launched_a_job_does_not_stop_the_job(workspace: Path) -> None:
    params = {"dataset": "tiny", "scorer": "heuristics"}
    app = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(workspace), json.dumps(params)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, so killing the group below spares pytest
    )
    job_id = app.stdout.readline().strip()
    os.killpg(app.pid, signal.SIGKILL)  # the app and its whole process group, as closing its terminal would
    app.wait()

    status = _wait(workspace, job_id)

    assert status.state == "done", jobs.read_log(workspace, job_id)
    assert status.result["scored"] == 24


def _killed_job(workspace: Path, params: dict[str, Any]) -> tuple[str, Path]:
    """A score job whose worker vanished while it ran, as a kill -9 leaves it."""
    job_dir = _job_dir(workspace, "score", params)
    jobs.write_status(job_dir, state="running", stage="score heuristics", pid=_dead_pid())
    return job_dir.name, job_dir


def test_a_job_being_relaunched_is_never_taken_for_its_dead_worker(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _ = _killed_job(workspace, {"dataset": "tiny", "scorer": "heuristics"})
    assert jobs.read_status(workspace, job_id).state == "interrupted"
    seen = []
    spawn = jobs._spawn

    def spawn_while_the_app_polls(job_dir: Path) -> None:
        seen.append(jobs.read_status(workspace, job_id).state)  # a page reads between relaunch's two writes
        spawn(job_dir)

    monkeypatch.setattr(jobs, "_spawn", spawn_while_the_app_polls)
    jobs.relaunch(workspace, job_id)

    assert seen == ["queued"]
    status = _wait(workspace, job_id)
    assert status.state == "done" and status.result["scored"] == 24


def test_a_job_relaunched_while_the_app_checks_on_it_stays_running(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, job_dir = _killed_job(workspace, {"dataset": "tiny", "scorer": "heuristics"})
    # the app finds the old worker gone and waits a moment; meanwhile the CLI relaunched the job
    monkeypatch.setattr(jobs.time, "sleep", lambda _: jobs.write_status(job_dir, state="running", pid=os.getpid()))

    status = jobs.read_status(workspace, job_id)

    assert (status.state, status.pid) == ("running", os.getpid())


# ---------------------------------------------------------------------------------------------- failures


def test_score_jobs_with_a_missing_or_corrupt_model_fail_with_one_clear_line(workspace: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt-model"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{this is not json")
    missing = {"dataset": "tiny", "scorer": "perplexity", "params": {"model": "/does/not/exist"}}
    missing_id = jobs.launch(workspace, ScoreJob(**missing))  # a real worker process
    corrupt_dir = _job_dir(workspace, "score", {"dataset": "tiny", "scorer": "ifd", "params": {"model": str(corrupt)}})
    assert worker.run_job(corrupt_dir) == 1  # the same worker code, in this process (quicker)

    status, broken = _wait(workspace, missing_id), jobs.read_status(workspace, corrupt_dir.name)

    assert (status.state, status.error) == ("failed", "cannot load the model '/does/not/exist': no such file or folder")
    assert "Traceback" in jobs.read_log(workspace, missing_id)  # the detail stays in the job's log
    assert broken.state == "failed"
    assert broken.error.startswith(f"cannot load the model {str(corrupt)!r}: ") and "config.json" in broken.error
    assert "\n" not in broken.error and "Traceback" not in broken.error
    assert ds.get_dataset(Store(workspace), "tiny").status == "ready"


class OutOfMemoryError(RuntimeError):
    """Named like torch's, which the worker must recognise without importing torch."""


@pytest.mark.parametrize(
    "error",
    [MemoryError(), OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nSee the documentation")],
    ids=["MemoryError", "torch.OutOfMemoryError"],
)
def test_a_job_that_runs_out_of_memory_fails_saying_what_to_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def out_of_memory(kind: str, workspace: Path, params: dict[str, Any], progress: Any, job_dir: Path) -> dict:
        raise error

    monkeypatch.setattr(worker, "dispatch", out_of_memory)
    job_dir = _job_dir(tmp_path, "score", {})

    assert worker.run_job(job_dir) == 1

    status = jobs.read_status(tmp_path, job_dir.name)
    assert status.state == "failed"
    assert status.error.startswith("ran out of memory") and "\n" not in status.error
    assert "smaller batch size" in status.error and "max_length" in status.error and "limit" in status.error


def test_the_cli_reports_a_missing_or_corrupt_model_in_one_line_and_exits_1(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [sys.executable, "-m", "core", "score", "--workspace", str(workspace), "--dataset", "tiny"]
    command += ["--scorer", "perplexity", "--model", "/does/not/exist", "--yes"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip().splitlines()[-1] == "error: cannot load the model '/does/not/exist': no such file or folder"
    )

    from core.cli import main

    corrupt = tmp_path / "corrupt-model"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("[1, 2")
    assert main(["score", "--workspace", str(workspace), "--scorer", "ifd", "--model", str(corrupt), "--yes"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: cannot load the model {str(corrupt)!r}: ") and "config.json" in error
