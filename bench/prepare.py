"""Benchmark of ``core.prepare.prepare`` on the real data pool, plus the embedder against its baseline.

What it measures, in one process:

1. **Full prepare.** Every top-level ``*.jsonl`` of the data dir (``--data-dir`` or ``CURATE_BENCH_DATA``: 16 files, 51,772 real rows;
   ``eval/`` is left out) is concatenated into one temporary JSONL and prepared with the default options
   (packaged all-MiniLM-L6-v2, default k grid, seed 0) into a fresh workspace. Per stage of the pipeline's own
   timer (``PrepareReport.seconds``: ingest, store, embed, load, k_sweep, umap) it prints seconds and rows/s, and
   the peak resident memory: a thread samples ``VmRSS`` every 0.2 s and keeps the maximum per progress phase
   (ingest, embed, k sweep, map); ``ru_maxrss`` (the process's peak so far) is read at each phase boundary.
   A phase table adds wall and CPU seconds and the load average, to tell a slow stage from a contended box.
   Targets (issue): the whole prepare under 15 minutes and under 6 GB (decimal) peak RSS on the 2-core CPU.
   It runs first, in a cold process, so its time includes the model load and UMAP's numba JIT, as a user sees.

2. **Embed comparison.** On the same seeded sample of 2,000 pool texts (the text the pipeline embeds:
   ``core.ingest.embed_text`` of instruction and input): (a) the baseline the issue names, a plain
   ``SentenceTransformer(packaged MiniLM, device="cpu").encode(texts, batch_size=64)`` in float32; (b) our
   ``SentenceTransformerEmbedder()`` (precision ``auto``: bf16 autocast on CPUs with AVX512-BF16/AMX); (c) our
   embedder forced to ``fp32``. Each gets an untimed warm-up on 100 texts; the timed runs are interleaved
   (a, b, c, a, b, c, ...) so drift on the shared box hits all three alike, and the median is reported.
   Targets: (b)/(a) >= 1.5x and row-wise cosine of (b) to (a) >= 0.999 for every text.

Run from the project root: ``.venv/bin/python -m bench.prepare`` (see docs/benchmarks.md for the options).
Results are printed and written as JSON to ``bench/results/prepare-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub
ROOT = Path(__file__).resolve().parents[1]
# The reference pool every benchmark reads (docs/benchmarks.md lists its files): CURATE_BENCH_DATA or
# --data-dir name its folder; on the reference machine it lies beside the checkout, hence the default.
DATA_DIR = Path(os.environ.get("CURATE_BENCH_DATA") or ROOT.parent / "shared" / "data")

import numpy as np  # noqa: E402

from core import ingest  # noqa: E402
from core import prepare as pipeline  # noqa: E402
from core.progress import Progress  # noqa: E402
from core.storage.database import Store  # noqa: E402

TARGET_SECONDS = 15 * 60
TARGET_PEAK_BYTES = 6e9
TARGET_EMBED_RATIO = 1.5
TARGET_MIN_COSINE = 0.999
EMBED_FIELDS = ("instruction", "input")
STAGES = ("ingest", "store", "embed", "load", "k_sweep", "umap")
# Progress phases (Progress.start names) in which each timed stage runs, for the memory column.
PHASES_OF_STAGE = {
    "ingest": ("ingest",),
    "store": ("ingest", "map"),  # the example insert, then the map coordinates
    "embed": ("embed",),
    "load": ("embed",),
    "k_sweep": ("k sweep",),
    "umap": ("map",),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--workspace", type=Path, help="empty or new folder (default: a fresh temp dir)")
    parser.add_argument("--limit", type=int, help="prepare a seeded sample of N rows instead of all")
    parser.add_argument("--skip-full", action="store_true", help="skip the full prepare")
    parser.add_argument("--skip-embed-compare", action="store_true", help="skip the embed comparison")
    parser.add_argument("--compare-n", type=int, default=2000, help="texts in the embed comparison")
    parser.add_argument("--embed-runs", type=int, default=3, help="timed runs per embedder (median)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- memory


def rss_bytes() -> int:
    """Current resident set size of this process (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PhaseMonitor(threading.Thread):
    """Per progress phase: wall and CPU seconds, peak VmRSS and the 1-min load average (sampled every 0.2 s).

    CPU seconds over wall seconds near the core count means the process had the CPUs to itself; a load
    average above the core count means other processes competed for them (the box is shared).
    """

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval = interval
        self.phase = "setup"
        self.phases: dict[str, dict[str, float]] = {}
        self._loads: dict[str, list[float]] = {}
        self._mark = (time.perf_counter(), time.process_time())
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        stats = self.phases.setdefault(self.phase, {"peak_rss_bytes": 0})
        stats["peak_rss_bytes"] = max(stats["peak_rss_bytes"], rss_bytes())
        self._loads.setdefault(self.phase, []).append(os.getloadavg()[0])

    def enter(self, phase: str) -> None:
        """Close the current phase (times, ru_maxrss, load) and start ``phase``."""
        self.sample()
        wall, cpu = time.perf_counter(), time.process_time()
        stats = self.phases[self.phase]
        stats["wall_seconds"] = stats.get("wall_seconds", 0.0) + wall - self._mark[0]
        stats["cpu_seconds"] = stats.get("cpu_seconds", 0.0) + cpu - self._mark[1]
        stats["max_rss_at_end_bytes"] = max_rss_bytes()
        stats["load_mean"] = statistics.fmean(self._loads[self.phase])
        stats["load_max"] = max(self._loads[self.phase])
        self._mark = (wall, cpu)
        self.phase = phase
        self.sample()

    def stop(self) -> None:
        self.enter("done")
        self._halt.set()
        self.join()


class BenchProgress(Progress):
    """Tells the monitor where each progress phase starts and logs progress to stderr."""

    def __init__(self, monitor: PhaseMonitor, started: float):
        super().__init__()
        self.monitor = monitor
        self.started = started
        self._next_log = 0

    def start(self, stage: str, total: int) -> None:
        self.monitor.enter(stage)
        self._next_log = max(1, total // 10)
        log(f"[{time.perf_counter() - self.started:7.1f} s] {stage}: {total} units")
        super().start(stage, total)

    def update(self) -> None:
        if self.stage == "embed" and self.done >= self._next_log:
            self._next_log += max(1, self.total // 10)
            log(f"[{time.perf_counter() - self.started:7.1f} s] embed: {self.done}/{self.total}")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


# ---------------------------------------------------------------- data


def pool_lines(data_dir: Path) -> list[str]:
    """Every row (a JSON line) of the top-level ``*.jsonl`` files, in file-name order."""
    files = sorted(data_dir.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no *.jsonl files in {data_dir}")
    lines: list[str] = []
    for path in files:
        lines += [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return lines


def seeded_subset(items: list[Any], n: int | None, seed: int) -> list[Any]:
    """``n`` items drawn without replacement with a seeded RNG, kept in their original order."""
    if n is None or n >= len(items):
        return list(items)
    index = np.sort(np.random.default_rng(seed).choice(len(items), n, replace=False))
    return [items[i] for i in index]


def embed_texts_of(path: Path) -> list[str]:
    """The distinct texts the pipeline embeds for the file, in first-seen order."""
    result = ingest.read_dataset(path)
    texts = (ingest.embed_text(e.instruction, e.input, e.output, EMBED_FIELDS) for e in result.examples)
    return list(dict.fromkeys(texts))


# ---------------------------------------------------------------- full prepare


def fresh_workspace(explicit: Path | None, scratch: Path) -> Path:
    if explicit is None:
        return scratch / "workspace"
    if explicit.exists() and any(explicit.iterdir()):
        raise SystemExit(f"--workspace {explicit} is not empty; the benchmark needs a fresh workspace")
    return explicit


def run_full_prepare(pool_file: Path, workspace: Path, n_rows: int) -> dict[str, Any]:
    """Prepare ``pool_file`` with default options; returns timings and memory per stage and per phase."""
    log(f"full prepare of {n_rows} rows into {workspace}")
    monitor = PhaseMonitor()
    monitor.start()
    started = time.perf_counter()
    report = pipeline.prepare(Store(workspace), pool_file, pipeline.PrepareOptions(), BenchProgress(monitor, started))
    wall = time.perf_counter() - started
    monitor.stop()
    phases = {name: stats for name, stats in monitor.phases.items() if name not in ("setup", "done")}
    peak = max_rss_bytes()
    return {
        "rows": report.n_rows,
        "rows_skipped": report.n_skipped,
        "texts_embedded": report.embedded,
        "texts_cached": report.embeddings_cached,
        "best_k": report.best_k,
        "knee_k": report.knee_k,
        "stages": [stage_row(stage, report, phases) for stage in STAGES],
        "phases": phases,
        "other_seconds": wall - sum(report.seconds.values()),
        "wall_seconds": wall,
        "peak_rss_bytes": peak,
        "pass_time": wall < TARGET_SECONDS,
        "pass_memory": peak < TARGET_PEAK_BYTES,
    }


def stage_row(stage: str, report: pipeline.PrepareReport, phases: dict[str, dict[str, float]]) -> dict[str, Any]:
    seconds = report.seconds.get(stage, 0.0)
    units = report.embedded if stage == "embed" else report.n_rows
    names = PHASES_OF_STAGE[stage]
    return {
        "stage": stage,
        "seconds": seconds,
        "units": units,
        "per_second": units / seconds if seconds > 0 else None,
        "phases": list(names),
        "phase_peak_rss_bytes": max(phases.get(p, {}).get("peak_rss_bytes", 0) for p in names),
    }


def print_full(result: dict[str, Any]) -> None:
    print(f"\n== Full prepare: {result['rows']} rows ({result['rows_skipped']} skipped), default options ==")
    print(f"texts embedded {result['texts_embedded']} (cached {result['texts_cached']}), ", end="")
    print(f"best k {result['best_k']}, knee k {result['knee_k']}")
    print(f"{'stage':<8} {'seconds':>8} {'rows/s':>9}  {'peak RSS':>8}  (peak RSS of the progress phase)")
    for row in result["stages"]:
        rate = f"{row['per_second']:9.1f}" if row["per_second"] else f"{'-':>9}"
        print(
            f"{row['stage']:<8} {row['seconds']:8.1f} {rate}  {gb(row['phase_peak_rss_bytes']):>8}  ({' + '.join(row['phases'])})"
        )
    print(f"{'other':<8} {result['other_seconds']:8.1f}  (text hashing, label texts, reads outside the timed stages)")
    print("(embed rows/s counts distinct texts embedded; the other stages count dataset rows)")
    print(
        f"\n{'phase':<8} {'wall s':>7} {'CPU s':>7} {'CPU/wall':>8} {'load mean/max':>13} {'peak RSS':>9} {'ru_maxrss':>9}"
    )
    for name, stats in result["phases"].items():
        share = stats["cpu_seconds"] / max(stats["wall_seconds"], 1e-9)
        print(
            f"{name:<8} {stats['wall_seconds']:7.1f} {stats['cpu_seconds']:7.1f} {share:8.2f} "
            f"{stats['load_mean']:6.1f}/{stats['load_max']:<6.1f} {gb(stats['peak_rss_bytes']):>9} "
            f"{gb(stats['max_rss_at_end_bytes']):>9}"
        )
    wall, peak = result["wall_seconds"], result["peak_rss_bytes"]
    print(f"total wall {wall:.1f} s ({wall / 60:.1f} min), {result['rows'] / wall:.1f} rows/s; peak RSS {gb(peak)}")
    print(f"target wall < {TARGET_SECONDS / 60:.0f} min: {verdict(result['pass_time'])}")
    print(f"target peak RSS < {gb(TARGET_PEAK_BYTES)}: {verdict(result['pass_memory'])}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# ---------------------------------------------------------------- embed comparison


def embed_variants() -> dict[str, Callable[[list[str]], np.ndarray]]:
    """The three embedders compared: the plain baseline, ours (auto precision), ours in float32."""
    from sentence_transformers import SentenceTransformer

    from core.embed.embedders import SentenceTransformerEmbedder, resolve_model_path

    plain = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    return {
        "plain_encode_fp32": lambda texts: plain.encode(texts, batch_size=64, show_progress_bar=False),
        "ours_auto": SentenceTransformerEmbedder().embed,
        "ours_fp32": SentenceTransformerEmbedder(precision="fp32").embed,
    }


def time_variants(
    variants: dict[str, Callable[[list[str]], np.ndarray]], texts: list[str], runs: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, np.ndarray]]:
    """Warm each variant up, then time ``runs`` interleaved rounds; returns wall and CPU seconds, first vectors."""
    for name, embed in variants.items():
        log(f"warm-up {name}")
        embed(texts[:100])
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in variants}
    vectors: dict[str, np.ndarray] = {}
    for run in range(runs):
        for name, embed in variants.items():
            gc.collect()
            started, cpu_started = time.perf_counter(), time.process_time()
            out = embed(texts)
            seconds[name].append(time.perf_counter() - started)
            cpu_seconds[name].append(time.process_time() - cpu_started)
            vectors.setdefault(name, np.asarray(out, dtype=np.float32))
            log(f"run {run + 1}/{runs} {name}: {seconds[name][-1]:.1f} s (load {os.getloadavg()[0]:.1f})")
    return {"wall": seconds, "cpu": cpu_seconds}, vectors


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def run_embed_compare(texts: list[str], runs: int) -> dict[str, Any]:
    """Plain ``encode`` vs our embedder (auto and fp32) on the same texts, same process."""
    import torch

    from core.embed.embedders import SentenceTransformerEmbedder, load_sentence_transformer

    log(f"embed comparison on {len(texts)} texts, {runs} run(s) each, torch threads {torch.get_num_threads()}")
    variants = embed_variants()
    model = load_sentence_transformer("all-MiniLM-L6-v2", "cpu")
    tokens = [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]]
    load_before = os.getloadavg()[0]
    timings, vectors = time_variants(variants, texts, runs)
    seconds = timings["wall"]
    rate = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
    base = rate["plain_encode_fp32"]
    cos_auto = row_cosines(vectors["ours_auto"], vectors["plain_encode_fp32"])
    cos_fp32 = row_cosines(vectors["ours_fp32"], vectors["plain_encode_fp32"])
    ratio = rate["ours_auto"] / base
    return {
        "texts": len(texts),
        "runs": runs,
        "torch_threads": torch.get_num_threads(),
        "auto_cache_key": SentenceTransformerEmbedder().cache_key(),
        "tokens_mean": float(np.mean(tokens)),
        "tokens_p95": float(np.percentile(tokens, 95)),
        "seconds": seconds,
        "cpu_seconds": timings["cpu"],
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "texts_per_second": rate,
        "ratio_auto_vs_plain": ratio,
        "ratio_fp32_vs_plain": rate["ours_fp32"] / base,
        "cosine_auto_vs_plain": {"min": float(cos_auto.min()), "mean": float(cos_auto.mean())},
        "cosine_fp32_vs_plain": {"min": float(cos_fp32.min()), "mean": float(cos_fp32.mean())},
        "pass_ratio": ratio >= TARGET_EMBED_RATIO,
        "pass_cosine": float(cos_auto.min()) >= TARGET_MIN_COSINE,
    }


def print_compare(result: dict[str, Any]) -> None:
    runs = result["runs"]
    how = f"median of {runs} interleaved runs" if runs > 1 else "1 run each (no median: single timing)"
    print(f"\n== Embed comparison: {result['texts']} pool texts, {how}, torch threads {result['torch_threads']} ==")
    print(f"tokens/text mean {result['tokens_mean']:.0f}, p95 {result['tokens_p95']:.0f}; ", end="")
    print(f"ours (auto) cache key {result['auto_cache_key']}")
    labels = {
        "plain_encode_fp32": "(a) SentenceTransformer.encode, bs 64, fp32",
        "ours_auto": "(b) SentenceTransformerEmbedder() auto",
        "ours_fp32": "(c) SentenceTransformerEmbedder(precision='fp32')",
    }
    for name, label in labels.items():
        runs_text = ", ".join(f"{s:.1f}" for s in result["seconds"][name])
        cpu_text = ", ".join(f"{s:.1f}" for s in result["cpu_seconds"][name])
        print(f"{label:<52} {result['texts_per_second'][name]:7.1f} texts/s  (wall: {runs_text} s; CPU: {cpu_text} s)")
    cos_b, cos_c = result["cosine_auto_vs_plain"], result["cosine_fp32_vs_plain"]
    print(f"ratio (b)/(a) {result['ratio_auto_vs_plain']:.2f}x, (c)/(a) {result['ratio_fp32_vs_plain']:.2f}x")
    print(f"cosine (b) vs (a): min {cos_b['min']:.5f}, mean {cos_b['mean']:.5f}")
    print(f"cosine (c) vs (a): min {cos_c['min']:.5f}, mean {cos_c['mean']:.5f}")
    load = result["load_average_1min"]
    print(
        f"1-min load average before / after: {load['before']:.1f} / {load['after']:.1f} (2 CPUs; above ~2.5 = contended)"
    )
    print(f"target (b)/(a) >= {TARGET_EMBED_RATIO}x: {verdict(result['pass_ratio'])}")
    print(f"target min cosine (b) vs (a) >= {TARGET_MIN_COSINE}: {verdict(result['pass_cosine'])}")


# ---------------------------------------------------------------- main


def machine_info() -> dict[str, Any]:
    import duckdb
    import faiss
    import sentence_transformers
    import torch
    import transformers
    import umap

    from core.models.device import cpu_has_fast_bf16

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "cpu_bf16": cpu_has_fast_bf16(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "umap": umap.__version__,
        "faiss": faiss.__version__,
        "duckdb": duckdb.__version__,
    }


def write_json(results: dict[str, Any], benchmark: str = "prepare") -> Path:
    """Write ``results`` to bench/results/<benchmark>-<timestamp>.json (git-ignored)."""
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{benchmark}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lines = seeded_subset(pool_lines(args.data_dir), args.limit, args.seed)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as scratch:
        pool_file = Path(scratch) / "pool.jsonl"
        pool_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if not args.skip_full:
            workspace = fresh_workspace(args.workspace, Path(scratch))
            results["full_prepare"] = run_full_prepare(pool_file, workspace, len(lines))
        if not args.skip_embed_compare:
            texts = seeded_subset(embed_texts_of(pool_file), args.compare_n, args.seed)
            results["embed_compare"] = run_embed_compare(texts, args.embed_runs)
    results["machine"] = machine_info()
    results["process_peak_rss_bytes"] = max_rss_bytes()
    machine = results["machine"]
    print(f"\nmachine: {machine['cpu']}, {machine['cpus']} CPUs, native bf16 {machine['cpu_bf16']}, ", end="")
    print(f"torch {machine['torch']}, sentence-transformers {machine['sentence_transformers']}")
    if "full_prepare" in results:
        print_full(results["full_prepare"])
    if "embed_compare" in results:
        print_compare(results["embed_compare"])
    print(f"\nresults written to {write_json(results).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
