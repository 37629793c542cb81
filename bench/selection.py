"""Benchmark of every selection strategy on the whole data pool at a 10 % budget: seconds and peak memory.

Setup, once (kept in ``--workspace``, default ``bench/.work/select``, so later runs skip it):
- every top-level ``*.jsonl`` of the data dir (``--data-dir`` or ``CURATE_BENCH_DATA``, about 52k rows) is concatenated and
  prepared with the default options (packaged MiniLM embeddings, default k sweep, seed 0);
- the ``heuristics`` and ``tfidf_diversity`` scorers run on it (seconds);
- **IFD is a stand-in**: scoring 52k examples with SmolLM2 takes hours on this CPU (bench/score.py), so
  the benchmark stores seeded uniform(0.2, 1.2) values under the score key ``ifd:bench-stand-in`` (about
  80 % below 1, as on real data). Only ``ifd_topk`` and ``iterit_greedy`` read IFD; their run time
  depends on how many examples have IFD < 1, not on the values. A workspace with real IFD scores can be
  passed with ``--workspace`` and is used as it is.

Then each strategy runs in a fresh child process (``run_selection`` with default parameters, budget 0.1,
seed 0, the active k), so its peak memory is its own: the child reports the wall seconds of the whole
selection (loading the pool from DuckDB included) and of the strategy alone, and its own peak RSS
(``VmHWM``; ``ru_maxrss`` would carry the parent's peak over ``exec``).
Targets (issue 4): every strategy under 60 s and under 4 GB on the 2-core CPU.

Run from the project root: ``make bench-select`` or ``.venv/bin/python -m bench.selection`` (``--data-dir`` for a
smaller pool). Each row prints a fingerprint of the selected ids in pick order (``ids sha``), so two runs, or
two versions of the code, can be seen to give the same selection for the same seed. Results are printed and written as JSON
to ``bench/results/select-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
TARGETED_NEEDS = frozenset({"target", "target_embeddings", "gradients", "graph"})
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from bench.prepare import DATA_DIR, gb, log, machine_info, pool_lines, verdict, write_json  # noqa: E402

TARGET_SECONDS = 60.0
TARGET_PEAK_BYTES = 4e9
DATASET = "pool"
STAND_IN_KEY = "ifd:bench-stand-in"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--workspace", type=Path, default=ROOT / "bench" / ".work" / "select")
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--strategies", nargs="*", help="default: every registered strategy")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def setup(workspace: Path, data_dir: Path) -> dict[str, Any]:
    """Prepare and score the pool once; later runs find it ready and only report what is there."""
    from core import prepare as pipeline
    from core.score import scoring
    from core.storage import datasets as ds
    from core.storage import scores as score_store
    from core.storage.database import Store

    store = Store(workspace)
    known = {d.name: d for d in ds.list_datasets(store)}
    timings: dict[str, float] = {}
    if DATASET not in known or known[DATASET].status != "ready":
        lines = pool_lines(data_dir)
        with tempfile.TemporaryDirectory(prefix="bench-select-") as scratch:
            pool_file = Path(scratch) / f"{DATASET}.jsonl"
            pool_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
            log(f"preparing {len(lines)} rows into {workspace} (once; about 10 minutes)")
            started = time.perf_counter()
            pipeline.prepare(store, pool_file, pipeline.PrepareOptions(name=DATASET, replace=True))
            timings["prepare"] = time.perf_counter() - started
    dataset = ds.get_dataset(store, DATASET)
    for name in ("heuristics", "tfidf_diversity"):
        started = time.perf_counter()
        report = scoring.score_dataset(store, dataset, scoring.build_scorer(name))
        if report.scored:
            timings[name] = time.perf_counter() - started
    keys = score_store.latest_keys(store, dataset.dataset_id)
    if "ifd" not in keys:
        hashes = ds.content_hashes(store)
        values = np.random.default_rng(0).uniform(0.2, 1.2, len(hashes))
        score_store.register_run(store, STAND_IN_KEY, "ifd", {"stand_in": "seeded uniform(0.2, 1.2)"})
        score_store.put_scores(store, STAND_IN_KEY, hashes, {"ifd": values})
        keys = score_store.latest_keys(store, dataset.dataset_id)
    return {"rows": dataset.n_rows, "k": dataset.active_k, "score_keys": keys, "setup_seconds": timings}


def child(workspace: Path, name: str, budget: float) -> None:
    """Run one strategy and print its figures as one JSON line (called in a fresh process)."""
    from core.select import run as selection_run
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    dataset = ds.get_dataset(store, DATASET)
    strategy = selection_run.build_strategy(name)
    timed: dict[str, float] = {}
    original = selection_run._select

    def timed_select(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = original(*args, **kwargs)
        timed["strategy"] = time.perf_counter() - started
        return result

    selection_run._select = timed_select  # time the strategy apart from loading the pool
    started = time.perf_counter()
    result = selection_run.run_selection(store, dataset, strategy, budget, seed=0)
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    figures = {"strategy": name, "seconds": seconds, "strategy_seconds": timed.get("strategy", float("nan"))}
    figures |= {"selected": len(result.example_ids), "pool": result.pool_size, "peak_rss_bytes": peak}
    figures["ids_sha"] = ids_fingerprint(result.example_ids)
    print(json.dumps(figures))


def ids_fingerprint(example_ids: Sequence[str]) -> str:
    """The selected ids in pick order, hashed: equal fingerprints are equal selections."""
    return hashlib.sha256("\n".join(example_ids).encode()).hexdigest()[:12]


def peak_rss_bytes() -> int:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that over exec from the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_child(workspace: Path, name: str, budget: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.selection", "--child", name, "--workspace", str(workspace)]
    command += ["--budget", str(budget)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"strategy": name, "error": done.stderr.strip().splitlines()[-1:], "process_seconds": 0.0}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_seconds"] = time.perf_counter() - started
    figures["pass"] = figures["seconds"] < TARGET_SECONDS and figures["peak_rss_bytes"] < TARGET_PEAK_BYTES
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.workspace, args.child, args.budget)
        return 0
    from core.select.strategies import STRATEGIES

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    results["setup"] = setup(args.workspace, args.data_dir)
    # The targeted strategies need a target set (and most, gradient features): bench/targeted.py measures them.
    names = args.strategies or [n for n in STRATEGIES.names() if not STRATEGIES.get(n).needs & TARGETED_NEEDS]
    rows = []
    for name in names:
        log(f"{name}: running")
        rows.append(run_child(args.workspace, name, args.budget))
        log(f"{name}: {rows[-1].get('seconds', float('nan')):.1f} s")
    results["strategies"] = rows
    results["machine"] = machine_info()
    print_results(results)
    print(f"\nresults written to {write_json(results, 'select').relative_to(ROOT)}")
    return 0


def print_results(results: dict[str, Any]) -> None:
    setup_info = results["setup"]
    print(f"\n== selection on {setup_info['rows']} rows, k = {setup_info['k']}, budget {results['args']['budget']} ==")
    for scorer, key in setup_info["score_keys"].items():
        print(f"score {scorer}: {key}")
    if setup_info["setup_seconds"]:
        print("setup this run: " + ", ".join(f"{k} {v:.0f} s" for k, v in setup_info["setup_seconds"].items()))
    print(
        f"\n{'strategy':<15} {'selected':>8} {'pool':>7} {'total s':>8} {'strategy s':>10} {'peak RSS':>9}  "
        f"{'ids sha':<12}  target"
    )
    for row in results["strategies"]:
        if "error" in row:
            print(f"{row['strategy']:<15} error: {' '.join(row['error'])}")
            continue
        print(
            f"{row['strategy']:<15} {row['selected']:>8} {row['pool']:>7} {row['seconds']:8.1f} "
            f"{row['strategy_seconds']:10.1f} {gb(row['peak_rss_bytes']):>9}  {row['ids_sha']:<12}  {verdict(row['pass'])}"
        )
    ok = all(row.get("pass", False) for row in results["strategies"])
    print(f"\nevery strategy under {TARGET_SECONDS:.0f} s and {gb(TARGET_PEAK_BYTES)}: {verdict(ok)}")


if __name__ == "__main__":
    raise SystemExit(main())
