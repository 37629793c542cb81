"""Benchmark of the export at scale: the streamed export at about 90k and 900k kept rows beside the in-memory one.

It builds (once, reused from ``--work-dir``) workspaces of 100,000 and 1,000,000 rows without the embedder:
the pool's rows (the top-level ``*.jsonl`` of ``--data-dir`` or ``CURATE_BENCH_DATA``, read by the app's own
ingest) repeated in order, each copy given a ``bench_copy`` field so no line repeats, stored with
``insert_dataset``; a clustering at k=50 (row ``i`` in cluster ``i % 50``) stored with ``save_sweep``; five
clusters vetoed, so 90 % of the rows (90,000 and 900,000) are kept, and 20 examples vetoed.

Each export then runs in a fresh child process, which reports its wall time, its resident memory once the
workspace is open and its peak (``VmHWM``, which counts DuckDB's native memory too): the streamed export
(``stream_export``, as the CLI and the page write it) at both sizes, and the in-memory one (``build_export`` then
``write_export``, what the CLI did before) at the small size. Targets (issue 16): the 900k-row streamed export
under 60 s, and flat memory: its peak RSS at most 1.25x the streamed peak at 90k. The load average is printed.

Run from the project root: ``.venv/bin/python -m bench.export`` (``--sizes 100000`` for a quick run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.prepare import DATA_DIR, gb, log, verdict, write_json

TARGET_SECONDS = 60.0
TARGET_FLAT_RATIO = 1.25
K = 50
VETOED_CLUSTERS = (3, 14, 25, 36, 47)
DATASET = "bench-export"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/curate-bench-export"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="rows per workspace")
    parser.add_argument("--child", choices=("stream", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_workspace(data_dir: Path, folder: Path, n_rows: int) -> Path:
    """A workspace holding one clustered dataset of ``n_rows`` pool rows (see the module docstring); reused
    when a finished one is there."""
    import numpy as np

    from core import ingest
    from core.storage import curation
    from core.storage import datasets as ds
    from core.storage.database import Store

    done = folder / "bench-done.json"
    if done.exists():
        return folder
    started = time.perf_counter()
    pool: list[ingest.Example] = []
    results = [ingest.read_dataset(path, skip_bad_rows=True) for path in sorted(data_dir.glob("*.jsonl"))]
    for result in results:
        pool += result.examples
    examples = []
    for row in range(n_rows):
        copy, base = divmod(row, len(pool))
        example = pool[base]
        examples.append(
            dataclasses.replace(
                example,
                row_number=row + 1,
                original={**example.original, "bench_copy": copy},
                example_id=f"{example.content_hash[:16]}-{row}",
            )
        )
    merged = dataclasses.replace(results[0], examples=examples, bad_rows=[])
    store = Store(folder)
    dataset_id = ds.insert_dataset(
        store,
        merged,
        name=DATASET,
        embedder={"name": "none (benchmark)"},
        embedder_key="none",
        embed_fields=["instruction", "input"],
        seed=0,
        text_hashes=[e.example_id for e in examples],
    )
    del examples, merged, pool, results
    labels = np.arange(n_rows) % K
    point = {"k": K, "inertia": 0.0, "silhouette": 0.0, "silhouette_sample": 0, "seed": 0}
    point |= {"min_size": n_rows // K, "median_size": n_rows / K, "max_size": n_rows // K + 1}
    sizes = np.bincount(labels, minlength=K)
    names = [{"cluster_id": c, "label": f"cluster {c}", "terms": [], "size": int(sizes[c])} for c in range(K)]
    ds.save_sweep(store, dataset_id, [point], {K: labels}, {K: names})
    ds.update_dataset(store, dataset_id, active_k=K, best_k=K, k_grid=[K], status="ready")
    for cluster in VETOED_CLUSTERS:
        curation.set_cluster_veto(store, dataset_id, K, cluster, True)
    kept_ids = curation.kept_row_chunks(store, dataset_id, K, 20)
    for example_id, *_ in next(iter(kept_ids)):
        curation.set_example_veto(store, dataset_id, example_id, True)
    kept_ids.close()
    done.write_text(json.dumps({"rows": n_rows, "seconds": time.perf_counter() - started}))
    return folder


def child(kind: str, workspace: Path, out: Path) -> None:
    """One export in this (fresh) process; prints a JSON line with its figures."""
    from core.export import build_export, stream_export, write_export
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    info = ds.get_dataset(store, DATASET)
    base = _status_bytes("VmRSS:")
    started = time.perf_counter()
    if kind == "stream":
        rows = stream_export(store, info, out).n_rows
    else:
        bundle = build_export(store, info)
        write_export(bundle, out)
        rows = bundle.n_rows
    seconds = time.perf_counter() - started
    peak = _status_bytes("VmHWM:")  # not ru_maxrss: Linux carries the parent's peak across fork and exec
    print(json.dumps({"kind": kind, "rows": rows, "seconds": seconds, "base_rss": base, "peak_rss": peak}))


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM its peak), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def run_child(kind: str, workspace: Path, out: Path) -> dict[str, Any]:
    for path in (out, out.with_name(out.stem + ".manifest.json")):
        path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.export", "--child", kind, "--workspace", str(workspace), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["file_bytes"] = out.stat().st_size
    figures["load"] = os.getloadavg()
    log(
        f"{kind:>6} export of {figures['rows']:>9,} rows: {figures['seconds']:6.1f} s, "
        f"RSS {gb(figures['base_rss'])} after opening, peak {gb(figures['peak_rss'])}, "
        f"file {gb(figures['file_bytes'])}, load {figures['load'][0]:.2f}"
    )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.workspace, args.out)
        return 0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    log(f"load average before: {os.getloadavg()}")
    workspaces = {n: build_workspace(args.data_dir, args.work_dir / f"ws-{n}", n) for n in sorted(args.sizes)}
    small, large = min(workspaces), max(workspaces)
    out = args.work_dir / "out"
    runs = {
        f"stream-{small}": run_child("stream", workspaces[small], out / "small-stream.jsonl"),
        f"memory-{small}": run_child("memory", workspaces[small], out / "small-memory.jsonl"),
    }
    same = (out / "small-stream.jsonl").read_bytes() == (out / "small-memory.jsonl").read_bytes()
    if large != small:
        runs[f"stream-{large}"] = run_child("stream", workspaces[large], out / "large-stream.jsonl")
    big, little = runs[f"stream-{large}"], runs[f"stream-{small}"]
    fast = big["seconds"] < TARGET_SECONDS
    flat = big["peak_rss"] <= TARGET_FLAT_RATIO * little["peak_rss"]
    print(f"load average: {os.getloadavg()}")
    print(f"streamed and in-memory JSONL identical at {small:,} rows: {verdict(same)}")
    print(
        f"streamed export of {big['rows']:,} rows: {big['seconds']:.1f} s (target < {TARGET_SECONDS:.0f} s): {verdict(fast)}"
    )
    print(
        f"peak RSS {gb(big['peak_rss'])} at {big['rows']:,} rows vs {gb(little['peak_rss'])} at {little['rows']:,} "
        f"(target <= {TARGET_FLAT_RATIO}x): {verdict(flat)}"
    )
    mem = runs[f"memory-{small}"]
    print(
        f"in-memory export at {mem['rows']:,} rows: {mem['seconds']:.1f} s, peak {gb(mem['peak_rss'])} "
        f"(streamed: {little['seconds']:.1f} s, peak {gb(little['peak_rss'])})"
    )
    path = write_json({"args": vars(args), "runs": runs, "identical": same}, "export")
    print(f"results: {path}")
    return 0 if same and fast and flat else 1


if __name__ == "__main__":
    sys.exit(main())
