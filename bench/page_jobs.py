"""Benchmark of the Diagnostics page's "Run sweep" as a background job: how long the page's script thread waits.

Prepares the packaged ``sample_data/sample.jsonl`` (2,240 rows) with the ``hashing`` embedder in a temporary
workspace, then fits one more k the old way (``core.prepare.add_k_values`` in the calling thread, as the page did)
and the new way (``core.jobs.launch`` of a ``SweepJob``, then waits for the worker), and prints the seconds the
caller waited in each, the job's end-to-end time (worker start-up included) and the load average. Target: launch
returns in under 1 s, whatever the dataset size (the fit's own time grows with the rows: minutes per k at 1M).

Run from the project root: ``.venv/bin/python -m bench.page_jobs``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.prepare import verdict
from core import jobs
from core.prepare import PrepareOptions, add_k_values, prepare
from core.storage import datasets as ds
from core.storage.database import Store
from core.sweep_job import SweepJob

ROOT = Path(__file__).resolve().parents[1]
TARGET_LAUNCH_SECONDS = 1.0


def main() -> int:
    workspace = Path(tempfile.mkdtemp(prefix="page_jobs_"))
    print(f"load {os.getloadavg()}")
    store = Store(workspace)
    prepare(store, ROOT / "sample_data" / "sample.jsonl", PrepareOptions(name="s", embedder={"name": "hashing"}))
    dataset = ds.get_dataset(store, "s")
    started = time.perf_counter()
    add_k_values(store, dataset, [33])
    in_thread = time.perf_counter() - started
    started = time.perf_counter()
    job_id = jobs.launch(workspace, SweepJob(dataset="s", ks=(35,)))
    launched = time.perf_counter() - started
    while jobs.read_status(workspace, job_id).active:
        time.sleep(0.05)
    total = time.perf_counter() - started
    state = jobs.read_status(workspace, job_id).state
    print(f"{dataset.n_rows} rows: one k fitted in the calling thread {in_thread:.2f} s")
    print(
        f"launch returned in {launched:.3f} s  {verdict(launched < TARGET_LAUNCH_SECONDS)} (< {TARGET_LAUNCH_SECONDS} s)"
    )
    print(f"the job ({state}) ended {total:.2f} s after the launch, worker start-up included")
    print(f"load {os.getloadavg()}")
    return 0 if state == "done" and launched < TARGET_LAUNCH_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
