"""Benchmark of the ``ray`` engine against the ``local`` one on this machine: the same work, side by side.

What it measures, in one process, on a seeded sample of the top-level ``*.jsonl`` files of the data dir
(``--data-dir`` or ``CURATE_BENCH_DATA``; ``eval/`` is left out):

1. **Setup (untimed).** ``--rows`` rows (default 20,000) are prepared once with the model-free hashing
   embedder (ingest, store, a sweep of one k) into a temporary workspace, which is then copied twice, one copy
   per engine, so each engine starts from the same store with no sentence vectors and no scores.
2. **Ray start.** ``ray.init(num_cpus=2)``: the local cluster the ``ray`` engine's default address
   (``local``) starts for a job, timed on its own.
3. **Embedding.** ``core.prepare.embed_missing`` with the packaged MiniLM (precision ``auto``) over every row:
   ``local`` (one process, torch's 2 threads) and ``ray`` (two 1-thread actors, shards of 1,024 texts).
4. **LM scoring.** ``core.score.scoring.score_dataset`` with ``PerplexityScorer()`` on the first ``--score-rows``
   content hashes (default 500): ``local`` and ``ray`` (two 1-thread actors, shards of 128 examples).

For each stage it prints both wall times, the Ray overhead ``(ray + start - local) / local`` against the
target (at most 15 %), and where the Ray run's time went: shard writing, the pipeline (scheduling and compute,
merges during it included), the merges alone, and each actor's model load. It also checks that both engines
computed the same values (cosine of the vectors; relative difference of the perplexities).

Run from the project root: ``.venv/bin/python -m bench.engines``. Prints PASS/FAIL per stage and the load average
at the start and the end, and writes ``bench/results/engines-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the models are packaged; never reach for the hub
ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CURATE_BENCH_DATA") or ROOT.parent / "shared" / "data")
RESULTS = ROOT / "bench" / "results"
TARGET_OVERHEAD = 0.15

import numpy as np  # noqa: E402

from bench.prepare import pool_lines, seeded_subset  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def setup(rows: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """Two copies of a workspace holding ``rows`` pool rows, prepared with the hashing embedder."""
    from core.prepare import PrepareOptions, prepare
    from core.storage.database import Store

    source = folder / "pool.jsonl"
    source.write_text("\n".join(seeded_subset(pool_lines(DATA_DIR), rows, seed)) + "\n", encoding="utf-8")
    base = folder / "base"
    prepare(Store(base), source, PrepareOptions(name="pool", embedder={"name": "hashing"}, k_grid=(8,), seed=seed))
    copies = folder / "local", folder / "ray"
    for copy in copies:
        shutil.copytree(base, copy)
    shutil.rmtree(base)
    return copies


def embed(workspace: Path, engine: Any) -> dict[str, Any]:
    """Every row embedded with the packaged MiniLM on ``engine``; wall seconds and the engine's report."""
    from core.embed.embedders import build_embedder
    from core.embed.stage import for_device
    from core.prepare import embed_missing
    from core.progress import Progress
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    dataset = ds.get_dataset(store, "pool")
    embedder = build_embedder(None)
    if engine is not None:
        embedder = for_device(embedder, engine.device())
    started = time.perf_counter()
    embedded, _, run = embed_missing(store, embedder, dataset.dataset_id, ("instruction", "input"), Progress(), engine)
    wall = time.perf_counter() - started
    vectors = ds.load_embeddings(store, dataset.dataset_id, embedder.cache_key())  # row order: the same rows
    return {"wall_s": round(wall, 2), "rows": embedded, "report": run.__dict__, "vectors": vectors}


def score(workspace: Path, engine: Any, n: int) -> dict[str, Any]:
    """Perplexity of the first ``n`` content hashes on ``engine``; wall seconds, the report and the values."""
    from core.score.scorers import PerplexityScorer
    from core.score.scoring import score_dataset
    from core.storage import datasets as ds
    from core.storage import scores as score_store
    from core.storage.database import Store

    store = Store(workspace)
    dataset = ds.get_dataset(store, "pool")
    only = sorted(set(ds.example_texts(store, dataset.dataset_id).content_hash))[:n]
    started = time.perf_counter()
    report = score_dataset(store, dataset, PerplexityScorer(), only=only, engine=engine)
    wall = time.perf_counter() - started
    values = score_store.dataset_scores(store, dataset.dataset_id, [report.score_key])["perplexity"].to_numpy(float)
    return {"wall_s": round(wall, 2), "rows": report.scored, "report": report.engine, "values": values}


def verdict(local: float, ray: float, start: float) -> dict[str, Any]:
    overhead = (ray + start - local) / local
    return {
        "local_s": round(local, 2),
        "ray_s": round(ray, 2),
        "ray_start_s": round(start, 2),
        "overhead": round(overhead, 4),
        "verdict": "PASS" if overhead <= TARGET_OVERHEAD else "FAIL",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--score-rows", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import ray

    from core.engines import RayEngine

    print(f"load average at start: {load()}", flush=True)
    result: dict[str, Any] = {"rows": args.rows, "score_rows": args.score_rows, "load_start": load()}
    with tempfile.TemporaryDirectory(prefix="engines-", dir=RESULTS.parent) as tmp:
        local_ws, ray_ws = setup(args.rows, args.seed, Path(tmp))
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        start = time.perf_counter() - started
        engine = RayEngine(cpus_per_actor=1)
        print(f"ray.init(num_cpus=2): {start:.2f} s (load {load()})", flush=True)

        local = embed(local_ws, None)
        print(f"embed local: {local['wall_s']} s (load {load()})", flush=True)
        remote = embed(ray_ws, engine)
        print(f"embed ray:   {remote['wall_s']} s (load {load()}) {remote['report']['seconds']}", flush=True)
        cosine = float((local.pop("vectors") * remote.pop("vectors")).sum(axis=1).min())
        result["embed"] = {**verdict(local["wall_s"], remote["wall_s"], start), "min_cosine": cosine}
        result["embed"]["ray_report"] = remote["report"]

        local = score(local_ws, None, args.score_rows)
        print(f"score local: {local['wall_s']} s (load {load()})", flush=True)
        remote = score(ray_ws, engine, args.score_rows)
        print(f"score ray:   {remote['wall_s']} s (load {load()}) {remote['report']['seconds']}", flush=True)
        first, second = local.pop("values"), remote.pop("values")
        scored = ~np.isnan(first)
        relative = float(np.max(np.abs(first[scored] - second[scored]) / np.abs(first[scored])))
        result["score"] = {**verdict(local["wall_s"], remote["wall_s"], start), "max_relative_difference": relative}
        result["score"]["ray_report"] = remote["report"]
        ray.shutdown()
    result["load_end"] = load()
    for stage in ("embed", "score"):
        row = result[stage]
        report = row["ray_report"]
        loads = ", ".join(f"{s:.1f}" for s in report["model_load_seconds"])
        print(
            f"{stage:6} local {row['local_s']:8.1f} s  ray {row['ray_s']:8.1f} s (+{row['ray_start_s']:.1f} s start)  "
            f"overhead {row['overhead']:+.1%} (target <= {TARGET_OVERHEAD:.0%})  {row['verdict']}\n"
            f"       ray: {report['shards']} shards, {report['actors']} actors, phases {report['seconds']}, "
            f"model loads [{loads}] s"
        )
    print(
        f"embed min cosine {result['embed']['min_cosine']:.6f}; score max relative difference "
        f"{result['score']['max_relative_difference']:.2e}"
    )
    print(f"load average at start: {result['load_start']}; at end: {result['load_end']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"engines-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
