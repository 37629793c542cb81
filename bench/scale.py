"""Benchmark of the curator path at 100k, 300k and 1M rows (issue 16): datasets built from the pool, the
prepare stage by stage, each size in its own process.

1. **Datasets.** ``scale-<N>.jsonl`` of N rows is built from the pool's top-level ``*.jsonl`` files (the
   data dir of ``bench.prepare``: 16 files, 51,772 rows), deterministically: row i is pool row ``i mod P``
   (files sorted by name, rows in file order); its r-th repeat (r = i div P >= 1) gets " (variant r)" appended
   to its instruction and "#r" to its id, so the file holds no exact duplicate the pool does not hold itself and
   keeps the pool's length distribution (a repeat is 12-18 characters longer). Files are cached in ``--out``
   (default ``bench/results/scale/``, git-ignored) beside a ``.sha256`` of each.
2. **Prepare per size.** A child process per size runs ``core.prepare.prepare`` with the ``hashing``
   embedder (default k grid, seed 0) into a fresh workspace and reports each stage of the prepare's own
   timer (ingest, store, embed, load, k_sweep, umap, store of the map) with its wall time and the peak RSS
   while it ran (a thread samples ``VmRSS`` every 0.1 s), and the process's peak (``ru_maxrss``). A size
   that runs past ``--timeout`` seconds is stopped; the stages it finished are reported, the rest as
   skipped. ``--until store`` stops each prepare after the dataset is stored (ingest and store only).
3. **Ingest before and after** (``--compare-ingest``): in a child process per reader and size, the
   in-memory reader of commit 0748816 (before streaming: ``read_dataset`` plus the Arrow table its insert
   built) against the streaming reader (``DatasetStream`` into the staging Parquet file); wall time and
   peak RSS.

Printed per size: each stage's seconds, rows/s and peak RSS; between consecutive sizes each stage's growth
exponent log(t2/t1)/log(n2/n1); then the targets with PASS/FAIL: prepare of 1M rows under 20 min and under
8 GB peak RSS, no stage's exponent above 1.15 between 300k and 1M (a target whose sizes were not run is
reported as not measured). Results go to ``<out>/scale-<timestamp>.json``.

4. **The browser** (``--browser``): ``bench.browser_scale`` on the largest size's workspace (kept as
   ``<out>/ws-<N>``): the Clusters page's first render, open, veto, search, page switches, a lasso of about
   10,000 rows and the export in Chromium, each against its target.

Run from the project root: ``.venv/bin/python -m bench.scale --sizes 100000,300000`` (see docs/benchmarks.md);
every figure and target of issue 16 from one command: ``.venv/bin/python -m bench.scale --browser``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "scale"
SIZES = (100_000, 300_000, 1_000_000)
TARGET_SECONDS_1M = 20 * 60
TARGET_PEAK_BYTES_1M = 8e9
TARGET_EXPONENT = 1.15
STAGES = ("ingest", "store", "embed", "load", "k_sweep", "umap", "store_map")
BASELINE_REF = "0748816"  # the last commit whose ingest read the whole file into memory


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES), help="comma-separated row counts")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the datasets and results")
    parser.add_argument("--data-dir", type=Path, help="the pool's folder (default: bench.prepare.DATA_DIR)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one size's prepare may run")
    parser.add_argument(
        "--until", choices=("store", "embed", "all"), default="all", help="stop each prepare after this stage"
    )
    parser.add_argument("--compare-ingest", action="store_true", help="also the in-memory ingest of before")
    parser.add_argument("--skip-prepare", action="store_true", help="only build the datasets (and compare)")
    parser.add_argument(
        "--keep", action="store_true", help="keep each prepared workspace as <out>/ws-<N> (for bench.browser_scale)"
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="then run bench.browser_scale (Chromium) on the largest size's workspace (implies --keep)",
    )
    parser.add_argument("--child", choices=("prepare", "ingest-old", "ingest-new"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--status", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- datasets


def pool_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Every row of the pool's top-level JSONL files, files in name order, rows in file order."""
    rows = []
    for path in sorted(data_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def variant(row: dict[str, Any], repeat: int) -> dict[str, Any]:
    """The ``repeat``-th copy of a pool row, made distinct: a numbered tag on the instruction and the id."""
    if repeat == 0:
        return row
    changed = dict(row, instruction=f"{row['instruction']} (variant {repeat})")
    if "id" in row:
        changed["id"] = f"{row['id']}#{repeat}"
    return changed


def build_dataset(n_rows: int, pool: list[dict[str, Any]], out: Path) -> Path:
    """``scale-<n_rows>.jsonl`` in ``out``, written unless a complete copy (its .sha256 matches) is there."""
    path = out / f"scale-{n_rows}.jsonl"
    stamp = path.with_suffix(".sha256")
    if path.exists() and stamp.exists() and stamp.read_text().strip() == _sha256(path):
        return path
    out.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for i in range(n_rows):
            handle.write(json.dumps(variant(pool[i % len(pool)], i // len(pool)), ensure_ascii=False) + "\n")
    partial.replace(path)
    stamp.write_text(_sha256(path) + "\n")
    return path


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


# ---------------------------------------------------------------- child processes


class _PeakSampler:
    """Samples the process's resident set every 0.1 s and keeps the peak per named stage."""

    def __init__(self) -> None:
        self.stage = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def enter(self, stage: str) -> None:
        self.sample()
        self.stage = stage
        self.sample()

    def sample(self) -> None:
        rss = _rss_bytes()
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class _StageLog:
    """Each stage's wall time and peak RSS, written to the status file as each ends (a stopped child's
    finished stages survive it)."""

    def __init__(self, status: Path):
        self.status = status
        self.sampler = _PeakSampler()
        self.stages: list[dict[str, Any]] = []

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            self.sampler.enter(stage)
            start = time.perf_counter()
            result = function(*args, **kwargs)  # a stage stopped by --until raises and is not recorded
            self.sampler.sample()
            seconds = time.perf_counter() - start
            self.stages.append({"stage": stage, "seconds": seconds, "peak_rss": self.sampler.peaks[stage]})
            self.sampler.enter("between")
            self.write()
            return result

        return run

    def write(self, **extra: Any) -> None:
        record = {"stages": self.stages, "max_rss": _max_rss_bytes(), "load": os.getloadavg(), **extra}
        self.status.write_text(json.dumps(record))


def child_prepare(args: argparse.Namespace) -> None:
    """Prepare ``args.file`` with every stage function wrapped in a timer (the names of the prepare's timer)."""
    from core import prepare as pipeline
    from core.cluster.reduce import REDUCERS
    from core.progress import Cancelled, Progress
    from core.storage import datasets as ds
    from core.storage.database import Store

    log = _StageLog(args.status)
    wrap = {
        (pipeline, "_read_into"): "ingest",
        (ds, "insert_dataset"): "store",
        (pipeline, "embed_missing"): "embed",
        (ds, "load_embeddings"): "load",
        (pipeline, "run_sweep"): "k_sweep",
        (ds, "save_map"): "store_map",
    }
    for (module, name), stage in wrap.items():
        setattr(module, name, log.timed(stage, getattr(module, name)))
    reducer_class = type(REDUCERS.build(pipeline.DEFAULT_REDUCER, seed=0))
    reducer_class.reduce = log.timed("umap", reducer_class.reduce)
    progress = Progress(should_stop=lambda: args.until != "all" and any(s["stage"] == args.until for s in log.stages))
    options = pipeline.PrepareOptions(name="scale", embedder={"name": "hashing"})
    start = time.perf_counter()
    try:
        report = pipeline.prepare(Store(args.workspace), args.file, options, progress)
        done = {"n_rows": report.n_rows, "timer": report.seconds, "best_k": report.best_k}
    except Cancelled:
        done = {"stopped_after": args.until}
    log.write(total_seconds=time.perf_counter() - start, **done)


def child_ingest(args: argparse.Namespace) -> None:
    """Read ``args.file`` as the prepare's ingest and store steps did before (old) or do now (new), short of
    DuckDB: wall seconds and peak RSS."""
    from core import prepare as pipeline
    from core.progress import Progress

    log = _StageLog(args.status)
    options = pipeline.PrepareOptions(name="scale", embedder={"name": "hashing"})
    if args.child == "ingest-new":
        from core.storage.staging import ExampleStaging

        def read_new() -> int:
            with ExampleStaging(args.workspace) as staged:
                return pipeline._read_into(staged, args.file, options, pipeline.ingest.BATCH_ROWS, Progress()).n_rows

        n_rows = log.timed("ingest", read_new)()
    else:
        old = _baseline_ingest(args.workspace)

        def read_old() -> int:
            import pyarrow as pa

            result = old.read_dataset(args.file)
            hashes = [pipeline._text_hash(e, options.embed_fields) for e in result.examples]
            columns = {  # what the old insert_dataset built before handing it to DuckDB
                "example_id": [e.example_id for e in result.examples],
                "location": [e.location for e in result.examples],
                "instruction": [e.instruction for e in result.examples],
                "input": [e.input for e in result.examples],
                "output": [e.output for e in result.examples],
                "original": [json.dumps(e.original, ensure_ascii=False, default=str) for e in result.examples],
                "content_hash": [e.content_hash for e in result.examples],
                "prompt_hash": [e.prompt_hash for e in result.examples],
                "text_hash": hashes,
            }
            return pa.table(columns).num_rows

        n_rows = log.timed("ingest", read_old)()
    log.write(n_rows=n_rows)


def _baseline_ingest(folder: Path) -> Any:
    """core/ingest/__init__.py of BASELINE_REF, loaded as a module from a copy in ``folder``."""
    source = subprocess.run(
        ["git", "show", f"{BASELINE_REF}:core/ingest/__init__.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    path = folder / "ingest_before.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("ingest_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ingest_before"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def run_child(kind: str, file: Path, until: str, timeout: float, keep: Path | None = None) -> dict[str, Any]:
    """One child process; its status file, with ``timed_out`` when it was stopped. ``keep``: the workspace
    goes there (replacing what was there) and stays after the run."""
    with tempfile.TemporaryDirectory(prefix="scale-", dir=OUT if OUT.exists() else None) as scratch:
        status = Path(scratch) / "status.json"
        workspace = keep or Path(scratch) / "ws"
        if keep is not None and keep.exists():
            shutil.rmtree(keep)
        command = [sys.executable, "-m", "bench.scale", "--child", kind, "--file", str(file)]
        command += ["--workspace", str(workspace), "--status", str(status), "--until", until]
        workspace.mkdir(parents=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        try:
            completed = subprocess.run(command, cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True)
            timed_out, error = False, completed.stderr[-2000:] if completed.returncode else ""
        except subprocess.TimeoutExpired:
            timed_out, error = True, ""
        record = json.loads(status.read_text()) if status.exists() else {"stages": []}
    record.update(timed_out=timed_out, error=error)
    return record


# ---------------------------------------------------------------- report


def stage_table(record: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Seconds and peak RSS per stage name (the two stores kept apart: store, store_map)."""
    table: dict[str, dict[str, float]] = {}
    for item in record["stages"]:
        entry = table.setdefault(item["stage"], {"seconds": 0.0, "peak_rss": 0})
        entry["seconds"] += item["seconds"]
        entry["peak_rss"] = max(entry["peak_rss"], item["peak_rss"])
    return table


def exponent(n1: int, t1: float, n2: int, t2: float) -> float | None:
    if t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def print_prepare(results: dict[int, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    sizes = sorted(results)
    tables = {n: stage_table(results[n]) for n in sizes}
    print("\nprepare, hashing embedder: seconds (rows/s) and peak RSS per stage")
    print(f"{'stage':<10}" + "".join(f"{n:>30,}" for n in sizes))
    for stage in STAGES:
        cells = []
        for n in sizes:
            entry = tables[n].get(stage)
            if entry is None:
                cells.append(f"{'skipped' if results[n]['timed_out'] or results[n].get('stopped_after') else '-':>30}")
            else:
                rate = n / entry["seconds"] if entry["seconds"] > 0 else float("inf")
                cells.append(f"{entry['seconds']:>9.1f} s {rate:>8,.0f}/s {entry['peak_rss'] / 1e9:>6.2f} GB")
        print(f"{stage:<10}" + "".join(cells))
    for n in sizes:
        record = results[n]
        state = (
            "stopped at --timeout"
            if record["timed_out"]
            else record.get("stopped_after") and f"until {record['stopped_after']}"
        )
        print(
            f"{n:>9,} rows: total {record.get('total_seconds', float('nan')):.1f} s, process peak RSS "
            f"{record['max_rss'] / 1e9:.2f} GB, load {' '.join(f'{x:.2f}' for x in record['load'])}"
            + (f" ({state})" if state else "")
            + (f"\n  error: {record['error']}" if record.get("error") else "")
        )
    checks: list[tuple[str, bool | None, str]] = []
    for n1, n2 in itertools.pairwise(sizes):
        print(f"\ngrowth exponent {n1:,} -> {n2:,}: log(t2/t1) / log(n2/n1)")
        for stage in STAGES:
            a, b = tables[n1].get(stage), tables[n2].get(stage)
            value = exponent(n1, a["seconds"], n2, b["seconds"]) if a and b else None
            print(f"  {stage:<10} {'-' if value is None else f'{value:.2f}'}")
            if (n1, n2) == (300_000, 1_000_000) and value is not None:
                checks.append(
                    (f"{stage} exponent 300k->1M <= {TARGET_EXPONENT}", value <= TARGET_EXPONENT, f"{value:.2f}")
                )
    return checks


def print_targets(results: dict[int, dict[str, Any]], checks: list[tuple[str, bool | None, str]]) -> None:
    full = results.get(1_000_000)
    complete = full is not None and not full["timed_out"] and "timer" in full
    total = full.get("total_seconds") if complete and full else None
    peak = full["max_rss"] if full else None
    rows = [
        ("prepare 1M rows < 20 min", None if total is None else total < TARGET_SECONDS_1M, f"{total or 0:.0f} s"),
        ("peak RSS at 1M < 8 GB", None if peak is None else peak < TARGET_PEAK_BYTES_1M, f"{(peak or 0) / 1e9:.2f} GB"),
    ]
    if not checks:
        rows.append((f"stage exponents 300k->1M <= {TARGET_EXPONENT}", None, ""))
    print("\ntargets")
    for name, passed, value in rows + checks:
        verdict = "not measured" if passed is None else ("PASS" if passed else "FAIL")
        print(f"  {name:<42} {value:>12}  {verdict}")


def print_ingest(compare: dict[int, dict[str, dict[str, Any]]]) -> None:
    print(f"\ningest alone: before ({BASELINE_REF}, whole file in memory) vs now (streamed into the staging file)")
    for n, pair in sorted(compare.items()):
        for kind, record in pair.items():
            table = stage_table(record)
            entry = table.get("ingest", {"seconds": float("nan"), "peak_rss": 0})
            print(
                f"  {n:>9,} rows {kind:<11} {entry['seconds']:>7.1f} s  peak RSS {record['max_rss'] / 1e9:5.2f} GB"
                f"  load {' '.join(f'{x:.2f}' for x in record['load'])}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child == "prepare":
        child_prepare(args)
        return
    if args.child:
        child_ingest(args)
        return
    from bench.prepare import DATA_DIR

    global OUT
    OUT = args.out
    sizes = [int(text) for text in args.sizes.split(",") if text.strip()]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    pool = pool_rows(args.data_dir or DATA_DIR)
    if not pool:
        raise SystemExit(f"no pool rows in {args.data_dir or DATA_DIR}: give --data-dir or CURATE_BENCH_DATA")
    files = {}
    for n in sizes:
        start = time.perf_counter()
        files[n] = build_dataset(n, pool, args.out)
        size = files[n].stat().st_size
        print(f"dataset {files[n].name}: {size / 1e6:,.0f} MB ({time.perf_counter() - start:.1f} s)")
    compare: dict[int, dict[str, dict[str, Any]]] = {}
    if args.compare_ingest:
        for n in sizes:
            compare[n] = {kind: run_child(f"ingest-{kind}", files[n], "all", args.timeout) for kind in ("old", "new")}
        print_ingest(compare)
    results: dict[int, dict[str, Any]] = {}
    if not args.skip_prepare:
        for n in sizes:
            keep = args.out / f"ws-{n}" if args.keep or args.browser else None
            results[n] = run_child("prepare", files[n], args.until, args.timeout, keep)
        print_targets(results, print_prepare(results))
    if args.browser and not args.skip_prepare:
        largest = args.out / f"ws-{max(sizes)}"
        print(f"\nthe curator's path in Chromium on {largest} (bench.browser_scale):", flush=True)
        command = [sys.executable, "-m", "bench.browser_scale", "--workspace", str(largest), "--timeout", "300"]
        subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out / f"scale-{stamp}.json"
    out.write_text(json.dumps({"sizes": sizes, "prepare": results, "ingest": compare}, indent=1))
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; results in {out}")


if __name__ == "__main__":
    main()
