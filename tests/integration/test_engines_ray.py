"""The ray engine on a real local Ray cluster: the same vectors, scores, gradient features and hidden states as the
local engine, a killed actor's shards retried with every row once, and a killed driver's rerun computing only the
missing shards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.engines import RayEngine
from core.prepare import PrepareOptions, prepare
from core.score.scorers import IFDScorer
from core.score.scoring import score_dataset
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage.database import Store
from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.real_model, pytest.mark.subprocess]

SAMPLE = ROOT / "sample_data" / "sample.jsonl"
MINILM_FP32 = {"name": "sentence-transformers", "precision": "fp32"}


@pytest.fixture(scope="module")
def cluster():
    """A Ray instance in this process with two CPUs, as ``ray.init(num_cpus=2)`` starts one."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _rows(path: Path, n: int, tmp_path: Path) -> Path:
    lines = SAMPLE.read_text().splitlines()[:n]
    out = tmp_path / path
    out.write_text("\n".join(lines) + "\n")
    return out


def _vectors(store: Store) -> np.ndarray:
    """Every row's vector; first checked that each distinct text has exactly one in the cache."""
    dataset = ds.get_dataset(store, "s")
    hashes = set(ds.text_hashes(store, dataset.dataset_id))
    assert ds.cached_text_hashes(store, dataset.embedder_key or "", list(hashes)) == hashes
    return ds.load_embeddings(store, dataset.dataset_id, dataset.embedder_key or "")


def test_embeddings_and_float32_lm_scores_are_the_local_engines(cluster, tmp_path: Path) -> None:
    source = _rows(Path("some.jsonl"), 200, tmp_path)
    options = PrepareOptions(name="s", embedder=MINILM_FP32, k_grid=(3,))
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    prepare(local, source, options)
    report = prepare(remote, source, options, engine=RayEngine(shard_rows=50))

    assert report.engine is not None and report.engine["engine"] == "ray"
    assert report.engine["computed_shards"] == report.engine["shards"] >= 4
    a, b = _vectors(local), _vectors(remote)
    assert a.shape == b.shape == (200, 384)
    assert float((a * b).sum(axis=1).min()) >= 0.99999

    # IFD's values hold both passes: the conditional perplexity (the perplexity scorer's) and the response alone's
    scorer, runs = IFDScorer(precision="fp32", max_length=128), {}
    for name, store, engine in (("local", local, None), ("ray", remote, RayEngine(shard_rows=6))):
        dataset = ds.get_dataset(store, "s")
        only = sorted(set(ds.example_texts(store, dataset.dataset_id).content_hash))[:18]
        done = score_dataset(store, dataset, scorer, only=only, engine=engine)
        assert done.scored == 18
        runs[name] = score_store.dataset_scores(store, dataset.dataset_id, [done.score_key])
    assert {"ifd", "perplexity", "perplexity_alone"} <= set(runs["local"].columns)
    first, second = runs["local"].to_numpy(dtype=float), runs["ray"].to_numpy(dtype=float)
    scored = ~np.isnan(first)
    assert scored.sum() >= 18 and np.array_equal(scored, ~np.isnan(second))
    relative = np.abs(first[scored] - second[scored]) / np.maximum(np.abs(first[scored]), 1e-12)
    assert float(relative.max()) <= 1e-5


def test_a_killed_actor_is_replaced_and_every_row_is_embedded_once(cluster, tmp_path: Path) -> None:
    source = _rows(Path("some.jsonl"), 800, tmp_path)
    store = Store(tmp_path / "ws")
    engine = RayEngine(shard_rows=40)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = prepare(store, source, PrepareOptions(name="s", embedder=MINILM_FP32), engine=engine)
        except BaseException as exc:  # reported below, in the test's own thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    records = tmp_path / "ws" / "engine"
    killed = _kill_an_actor_once_it_computed(records, worker)
    worker.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"].engine  # type: ignore[attr-defined]
    assert killed
    assert report["computed_shards"] == report["shards"] == 20
    vectors = _vectors(store)
    assert len(vectors) == 800 and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # no row missing (zeros) or half-written
    assert not list((records).glob("embed-*/in/*.parquet"))  # every shard merged, then removed


def _kill_an_actor_once_it_computed(root: Path, worker: threading.Thread) -> int:
    """SIGKILL one actor's process after the first output shard exists; its pid, or 0 if the job ended first."""
    deadline = time.monotonic() + 300
    while worker.is_alive() and time.monotonic() < deadline:
        folders = list(root.glob("embed-*"))
        if folders:
            records = [json.loads(p.read_text()) for p in folders[0].glob("workers/*.json")]
            merged_or_done = list(folders[0].glob("out/*.parquet"))
            if records and merged_or_done:
                pid = int(records[0]["pid"])
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.05)
    return 0


@pytest.fixture
def head_node():
    """A Ray head of 2 CPUs started with ``ray start --head --block`` on a free port, its processes ended
    afterwards (``ray stop`` would end every Ray instance of the machine, the module's own too)."""
    pytest.importorskip("ray")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    head = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},  # the test's own cluster, on this machine: no token
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:  # its orderly stop takes half a minute: nothing here needs one
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_rerun_after_the_driver_was_killed_computes_only_the_missing_shards(head_node, tmp_path: Path) -> None:
    source = _rows(Path("some.jsonl"), 600, tmp_path)
    workspace = tmp_path / "ws"
    env = {**os.environ, "CURATE_WORKSPACE": str(workspace), "CURATE_SHARD_ROWS": "40", "RAY_AUTH_MODE": "disabled"}
    command = [
        sys.executable,
        "-m",
        "core",
        "prepare",
        str(source),
        "--name",
        "s",
        "--engine",
        "ray",
        "--ray-address",
        head_node,
        "--k-grid",
        "3",
    ]
    first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    folder = None
    deadline = time.monotonic() + 300
    while first.poll() is None and time.monotonic() < deadline:
        found = list((workspace / "engine").glob("embed-*/out/*.parquet"))
        if len(found) >= 2:
            folder = found[0].parent.parent
            break
        time.sleep(0.05)
    assert folder is not None, first.communicate()[0].decode()[-2000:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    waiting = {p.stem for p in folder.glob("in/*.parquet")}
    finished = {p.stem for p in folder.glob("out/*.parquet")}
    assert finished <= waiting and 0 < len(finished) < len(waiting) <= 15  # 600 rows in shards of 40

    again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    line = re.search(r"ray: (\d+) shards computed, (\d+) merged from an earlier run", again.stdout)
    assert line, again.stdout
    computed, merged = int(line.group(1)), int(line.group(2))
    # every shard the kill left finished is merged, not computed again (an actor may finish one more before
    # Ray stops it); the rest of the 15 is computed: the waiting shards, and the rows of any shard the killed
    # driver had merged into its write buffer but not yet committed (the buffer is what a kill may lose)
    assert merged >= len(finished) and computed + merged == 15, (computed, merged, len(waiting), len(finished))
    vectors = _vectors(Store(workspace))
    assert len(vectors) == 600 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_an_unreachable_cluster_fails_at_launch_in_one_line(tmp_path: Path) -> None:
    source = _rows(Path("some.jsonl"), 20, tmp_path)
    env = {**os.environ, "CURATE_WORKSPACE": str(tmp_path / "ws")}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    done = subprocess.run(
        [sys.executable, "-m", "core", "prepare", str(source), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in errors[0], done.stderr[-2000:]


def test_a_cluster_without_a_package_the_stage_needs_is_refused_at_launch(cluster) -> None:
    from core.engines._ray import _check_packages
    from core.errors import EngineError

    _check_packages(cluster, "local", ("core", "sentence_transformers"))  # what the sample needs: there
    with pytest.raises(EngineError, match=r"^the Ray cluster at local lacks no_such_package_here: install"):
        _check_packages(cluster, "local", ("core", "no_such_package_here"))


def test_gradient_features_on_ray_are_the_local_engines(
    cluster, template_workspace, tiny_model_dir, target_file, tmp_path: Path
) -> None:
    from core.gradients.pipeline import GradientConfig, compute_gradients
    from core.storage import gradients as gstore

    config = GradientConfig(
        model=str(tiny_model_dir), d=64, neighbours=8, warmup_fraction=0.25, max_length=96, precision="fp32"
    )
    found = {}
    for name, engine in (("local", None), ("ray", RayEngine(shard_rows=5))):
        workspace = tmp_path / name
        shutil.copytree(template_workspace, workspace)
        store = Store(workspace)
        report = compute_gradients(store, ds.get_dataset(store, "tiny"), config, [target_file], engine=engine)
        keys = [report["pool"], *report["targets"].values()]
        found[name] = keys, [gstore.load_features(store, key).astype(np.float64) for key in keys]
        assert not list((workspace / "engine").glob("gradients-*/in/*.parquet"))  # every shard merged
    assert found["local"][0] == found["ray"][0]  # the same settings: the same feature keys
    for local, remote in zip(found["local"][1], found["ray"][1], strict=True):
        assert local.shape == remote.shape and local.shape[1] == 64
        norms = np.linalg.norm(local, axis=1) * np.linalg.norm(remote, axis=1)
        cosine = (local * remote).sum(axis=1) / np.maximum(norms, 1e-12)
        assert float(cosine.min()) >= 0.99999


def test_hidden_states_on_ray_are_the_local_engines(
    cluster, template_workspace, tiny_model_dir, target_file, tmp_path: Path
) -> None:
    from core.hidden.pipeline import HiddenConfig, compute_hidden_states
    from core.storage import hidden as hstore

    config = HiddenConfig(model=str(tiny_model_dir), max_length=96, precision="fp32")
    found = {}
    for name, engine in (("local", None), ("ray", RayEngine(shard_rows=5))):
        workspace = tmp_path / name
        shutil.copytree(template_workspace, workspace)
        store = Store(workspace)
        report = compute_hidden_states(store, ds.get_dataset(store, "tiny"), config, [target_file], engine=engine)
        assert report["computed"] == 24 and report["left"] == 0
        keys = [report["key"], *report["targets"].values()]
        found[name] = keys, [hstore.load_features(store, key).astype(np.float64) for key in keys]
        assert not list((workspace / "engine").glob("hidden_states-*/in/*.parquet"))  # every shard merged
    assert found["local"][0] == found["ray"][0]  # the same settings: the same feature keys
    for local, remote in zip(found["local"][1], found["ray"][1], strict=True):
        assert local.shape == remote.shape
        cosine = (local * remote).sum(axis=1) / (np.linalg.norm(local, axis=1) * np.linalg.norm(remote, axis=1))
        assert float(cosine.min()) >= 0.99999


def test_a_kmq_rounds_generations_and_scores_on_ray_are_the_local_ones(cluster, tiny_model_dir, tmp_path: Path) -> None:
    from core.models.lm import load_causal_lm
    from core.runs.iterative_kmq import IterativeKMQConfig, run_iterative_kmq
    from tests.unit.test_iterative import DATA, KEPT, _pool

    config = _tiny_training(tiny_model_dir)
    # continued training: round 2's model is round 1's adapter merged into the base, then round 2's adapter
    settings = IterativeKMQConfig(6, 2, continue_training=True, max_new_tokens=4)
    lm = load_causal_lm(str(tiny_model_dir))
    rounds = {}
    for name, engine in (("local", None), ("ray", RayEngine(shard_rows=3))):
        out = tmp_path / name
        result = run_iterative_kmq(
            lm.model, lm.tokenizer, _pool(), DATA.iloc[KEPT], settings, config, out, engine=engine
        )
        rounds[name] = (
            [json.loads((out / f"round_{t}" / "scores.json").read_text()) for t in (1, 2)],
            result.positions.tolist(),
        )
        assert not list((out / "engine").glob("*/in/*.parquet")) if name == "ray" else True
    (local, local_picks), (remote, remote_picks) = rounds["local"], rounds["ray"]
    assert local_picks == remote_picks
    for first, second in zip(local, remote, strict=True):
        assert [row["generation"] for row in first] == [row["generation"] for row in second]
        a = np.array([row["score"] for row in first], dtype=float)
        b = np.array([row["score"] for row in second], dtype=float)
        # a score is a difference of two float32 NLLs of a few nats, summed on 1 thread (an actor) or 2 (here):
        # 1e-5 absolute is that rounding; a wrong model or text moves it by 1e-2 or more
        assert np.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_iterits_rescoring_on_ray_is_the_local_one(cluster, tiny_model_dir, tmp_path: Path) -> None:
    from core.models.lm import load_causal_lm
    from core.runs.iterit import IterITConfig, run_iterit
    from tests.unit.test_iterative import ITERIT_DATA

    config = _tiny_training(tiny_model_dir)
    settings = IterITConfig(epochs=3, per_epoch=2, update_ratio=2)
    lm = load_causal_lm(str(tiny_model_dir))
    epochs = {}
    for name, engine in (("local", None), ("ray", RayEngine(shard_rows=3))):
        result = run_iterit(lm.model, lm.tokenizer, ITERIT_DATA, settings, config, tmp_path / name, engine=engine)
        epochs[name] = result.epochs
    for local, remote in zip(epochs["local"], epochs["ray"], strict=True):
        assert local.picks.tolist() == remote.picks.tolist() and local.rescored.tolist() == remote.rescored.tolist()
        # epoch 0 under the base model, later ones under the session's adapter as it stood
        assert np.allclose(local.ifd_after, remote.ifd_after, rtol=1e-5, atol=1e-7)


def _tiny_training(model_dir: Path) -> object:
    """The unit tier's loop training settings (tests/unit/test_iterative.py), on the tiny model saved as a folder
    the actors can load by its path."""
    import dataclasses

    from tests.unit.test_iterative import CONFIG

    return dataclasses.replace(CONFIG, model=str(model_dir))
