"""MiniLM embedding throughput at the end of a 1M-row prepare against a 50k-row one (issue 16's target: the
rate at 1M within 10 % of the rate at 50k), without running the ~2 h of a whole 1M MiniLM embedding.

The model's cost per text does not depend on the dataset's size; what can grow with it is the store's side of
``core.prepare.embed_missing``: each commit of vectors into a cache that holds ~1M of them (DuckDB keeps its key
index), and reading and skipping the rows already embedded. So the benchmark builds the state at the END of a
real 1M run and times the embedding of the last texts there:

- **1M tail.** A copy of a prepared 1M workspace (default ``bench/results/scale/ws-1000000``, dataset
  ``scale``, built by ``bench.scale --keep`` with the hashing embedder; the original is not touched) gets a
  placeholder vector (a random unit vector, written with ``put_embeddings`` in large batches) under the MiniLM
  cache key for every distinct text except the last W in row order, so ``embed_missing`` reads every row,
  skips the cached ones and embeds exactly those W texts while the cache holds ~1M MiniLM vectors. The copy
  also keeps the hashing run's 1M vectors, so its cache index holds ~2M keys: if anything, harder than a fresh
  1M MiniLM run.
- **50k.** A fresh store holding a 50,000-row dataset ingested the way the prepare ingests (the staging file,
  then ``insert_dataset``): the LAST 50,000 rows of the same file, placeholders for every distinct text but
  the same W, so both windows embed the very same texts (the file's rows differ in source and length along
  the file: a window from its head would measure other texts, not another size) and differ only in the store
  around them: a 50k-row dataset and a ~50k-vector cache against a 1M-row dataset and a ~1M-vector cache.

Only ``embed_missing`` is timed; the embedder is wrapped to note when its first text arrives, so each window
splits into its start-up (text_hashes, cached_text_hashes, reading and skipping the cached rows: paid once per
run, about 2 h at 1M) and the embedding itself (reading the window's rows, the model, the commits of its
vectors every 30 s or 16,384 rows as in a real run; their count and seconds are printed beside); the rate is
texts / embedding seconds. The windows run alternately, 1M 50k 1M 50k ..., in one process so the shared box's
load hits both; between repeats the window's vectors are removed again
(``core.storage.datasets.delete_embeddings``). Printed per window: texts, start-up, embedding seconds (the
model's and the store's, the rest), commits, texts/s, load average; then the median rates, rate(1M)/rate(50k),
PASS/FAIL against >= 0.90, each pair's ratio, the ratio from the store's seconds alone ((model 50k + store 50k)
/ (model 50k + store 1M): the model's seconds swing with the box's load, the store's are what can grow with the
size), and the projected whole 1M MiniLM embedding: start-up + distinct texts / rate at 1M. The window's texts
are the file's last rows (shorter than its average: FLAN chain-of-thought and Code Alpaca rows), so the model
runs faster on them than on the whole file; a second projection therefore times the model alone on a seeded
random sample of the file's rows (``--sample``) and adds the store's seconds per text measured at 1M:
start-up + distinct texts x (model seconds per sampled text + store seconds per window text at 1M).
Results go to ``bench/results/scale/embed-rate-<timestamp>.json``; the scratch copies are deleted.

Run from the project root: ``.venv/bin/python -m bench.embed_rate`` (``--texts W --repeats R``; about 4 min
at the defaults on the quiet 2-core reference box, 25 min under a load of 6).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "scale"
TARGET_RATIO = 0.90
FILL_BATCH = 131_072  # placeholder vectors per put_embeddings call


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=9_000, help="texts embedded per window (W)")
    parser.add_argument("--repeats", type=int, default=3, help="windows per size, run alternately")
    parser.add_argument("--workspace", type=Path, default=OUT / "ws-1000000", help="the prepared 1M workspace")
    parser.add_argument("--dataset", default="scale", help="the dataset's name in that workspace")
    parser.add_argument("--file", type=Path, default=OUT / "scale-1000000.jsonl", help="its source file")
    parser.add_argument("--small-rows", type=int, default=50_000, help="rows of the small dataset")
    parser.add_argument("--sample", type=int, default=3_000, help="random rows whose texts time the model alone")
    parser.add_argument("--scratch", type=Path, default=OUT, help="folder for the scratch copies (deleted)")
    return parser.parse_args(argv)


class _TimedEmbedder:
    """The embedder, noting when ``embed_missing`` first hands it texts (the end of the start-up) and the
    seconds spent inside the model (the rest of the embedding is the store's side)."""

    def __init__(self, embedder: Any):
        self.embedder, self.first_call, self.texts, self.seconds = embedder, None, 0, 0.0

    def cache_key(self) -> str:
        return self.embedder.cache_key()

    def embed(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        if self.first_call is None:
            self.first_call = time.perf_counter()
        self.texts += len(texts)
        begun = time.perf_counter()
        vectors = self.embedder.embed(texts, progress=progress)
        self.seconds += time.perf_counter() - begun
        return vectors


def distinct_in_row_order(store: Any, dataset_id: int) -> list[str]:
    """The dataset's distinct text hashes by first row: the order in which ``embed_missing`` embeds them."""
    from core.storage import datasets as ds

    return list(dict.fromkeys(ds.text_hashes(store, dataset_id)))


def fill_placeholders(store: Any, key: str, hashes: list[str], dim: int, seed: int = 0) -> float:
    """Random unit vectors under ``key`` for ``hashes``, in large batches; returns the seconds it took."""
    from core.embed.embedders import l2_normalise
    from core.storage import datasets as ds

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for first in range(0, len(hashes), FILL_BATCH):
        batch = hashes[first : first + FILL_BATCH]
        ds.put_embeddings(store, key, batch, l2_normalise(rng.standard_normal((len(batch), dim), dtype=np.float32)))
    return time.perf_counter() - start


def ingest_small(path: Path, n_rows: int, folder: Path, embedder: Any) -> tuple[Any, int, tuple[str, ...]]:
    """A fresh store in ``folder`` holding the last ``n_rows`` rows of ``path`` as a dataset, stored the way
    the prepare stores one (its staging file, then ``insert_dataset``); nothing embedded."""
    from core import ingest
    from core import prepare as pipeline
    from core.progress import Progress
    from core.registry import spec_of
    from core.storage import datasets as ds
    from core.storage.database import Store
    from core.storage.staging import ExampleStaging

    folder.mkdir(parents=True)
    small = folder / f"scale-last-{n_rows}.jsonl"
    with path.open(encoding="utf-8") as source:
        lines = collections.deque(source, maxlen=n_rows)
    small.write_text("".join(lines), encoding="utf-8")
    store = Store(folder / "ws")
    options = pipeline.PrepareOptions(name=f"scale-last-{n_rows}")
    with ExampleStaging(store.workspace) as staged:
        found = pipeline._read_into(staged, small, options, ingest.BATCH_ROWS, Progress())
        dataset_id = ds.insert_dataset(
            store,
            found,
            staged,
            name=options.name,
            embedder=spec_of(embedder),
            embedder_key=embedder.cache_key(),
            embed_fields=list(options.embed_fields),
            seed=options.seed,
        )
    return store, dataset_id, options.embed_fields


def run_window(
    label: str, store: Any, dataset_id: int, fields: tuple[str, ...], embedder: Any, window: list[str]
) -> dict[str, Any]:
    """One timed ``embed_missing`` that embeds exactly ``window``; its vectors are removed again after."""
    from core import prepare as pipeline
    from core.progress import Progress
    from core.storage import datasets as ds

    timed = _TimedEmbedder(embedder)
    commits: list[float] = []
    put = ds.put_embeddings

    def timed_put(*args: Any, **kwargs: Any) -> None:  # each commit of vectors, as the prepare makes it
        begun = time.perf_counter()
        put(*args, **kwargs)
        commits.append(time.perf_counter() - begun)

    load_before = os.getloadavg()
    ds.put_embeddings = timed_put
    start = time.perf_counter()
    try:
        embedded, cached = pipeline.embed_missing(store, timed, dataset_id, fields, Progress())
    finally:
        end = time.perf_counter()
        ds.put_embeddings = put
    load_after = os.getloadavg()
    if embedded != len(window) or timed.texts != len(window):
        raise RuntimeError(f"{label}: embedded {embedded} ({timed.texts} texts) where the window holds {len(window)}")
    first = timed.first_call or end
    removed = ds.delete_embeddings(store, embedder.cache_key(), window)
    if removed != len(window):
        raise RuntimeError(f"{label}: removed {removed} vectors of the window's {len(window)}")
    return {
        "size": label,
        "texts": embedded,
        "cached": cached,
        "startup_seconds": first - start,
        "embed_seconds": end - first,
        "model_seconds": timed.seconds,
        "store_seconds": end - first - timed.seconds,
        "rate": embedded / (end - first),
        "commits": len(commits),
        "commit_seconds": sum(commits),
        "load_before": load_before,
        "load_after": load_after,
    }


def _load(values: Sequence[float]) -> str:
    return " ".join(f"{x:.2f}" for x in values)


HEADER = (
    f"{'#':>2} {'size':>4} {'texts':>6} {'start-up s':>10} {'embed s':>8} {'model s':>8} {'store s':>8} "
    f"{'commits (s)':>11} {'texts/s':>8}   load average before -> after"
)


def print_window(number: int, record: dict[str, Any]) -> None:
    commits = f"{record['commits']} ({record['commit_seconds']:.1f})"
    print(
        f"{number:>2} {record['size']:>4} {record['texts']:>6,} {record['startup_seconds']:>10.1f} "
        f"{record['embed_seconds']:>8.1f} {record['model_seconds']:>8.1f} {record['store_seconds']:>8.1f} "
        f"{commits:>11} {record['rate']:>8.1f}   {_load(record['load_before'])} -> {_load(record['load_after'])}",
        flush=True,
    )


def time_sample(store: Any, dataset_id: int, n_rows: int, fields: tuple[str, ...], embedder: Any, size: int) -> dict:
    """Seconds per text of the model alone on a seeded random sample of ``size`` rows (the file's mix of texts)."""
    from core import prepare as pipeline

    rows = np.sort(np.random.default_rng(0).choice(n_rows, size=min(size, n_rows), replace=False))
    texts = pipeline.TextReader(store, dataset_id, fields)(rows)
    load_before = os.getloadavg()
    start = time.perf_counter()
    embedder.embed(texts)
    seconds = time.perf_counter() - start
    return {
        "texts": len(texts),
        "seconds": seconds,
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def window_mean_chars(store: Any, dataset_id: int, n_rows: int, fields: tuple[str, ...], window: list[str]) -> float:
    """The mean length in characters of the window's texts (read from the dataset's last rows)."""
    from core import prepare as pipeline
    from core.storage import datasets as ds

    frame = ds.texts_in_rows(store, dataset_id, max(0, n_rows - 2 * len(window)), n_rows)
    wanted = set(window)
    texts = dict(
        (h, t) for h, t in zip(frame.text_hash, pipeline._embed_texts(frame, fields), strict=True) if h in wanted
    )
    return float(np.mean([len(t) for t in texts.values()]))


def summary(windows: list[dict[str, Any]], n_distinct_large: int, sample: dict[str, Any]) -> dict[str, Any]:
    """Median rates, start-ups and store seconds per size, the ratio of the median rates and its verdict, each
    1M window's rate over the 50k window after it (the pair ran under about the same load), the ratio the
    store's seconds alone give, and the projected 1M embedding."""
    median = {
        size: {
            field: statistics.median(w[field] for w in windows if w["size"] == size)
            for field in ("rate", "startup_seconds", "store_seconds", "model_seconds")
        }
        for size in ("1M", "50k")
    }
    ratio = median["1M"]["rate"] / median["50k"]["rate"]
    large = [w for w in windows if w["size"] == "1M"]
    small = [w for w in windows if w["size"] == "50k"]
    pairs = [a["rate"] / b["rate"] for a, b in zip(large, small, strict=True)]
    # the ratio the store alone would give: the 50k window's model seconds under both stores' own seconds. The
    # model's seconds swing with the shared box's load; the store's are what can grow with the size.
    model = median["50k"]["model_seconds"]
    store_ratio = (model + median["50k"]["store_seconds"]) / (model + median["1M"]["store_seconds"])
    projected = median["1M"]["startup_seconds"] + n_distinct_large / median["1M"]["rate"]
    per_text = sample["seconds"] / sample["texts"] + median["1M"]["store_seconds"] / windows[0]["texts"]
    projected_mix = median["1M"]["startup_seconds"] + n_distinct_large * per_text
    return {
        "median": median,
        "ratio": ratio,
        "pair_ratios": pairs,
        "store_ratio": store_ratio,
        "passed": ratio >= TARGET_RATIO,
        "projected_1m_seconds": projected,
        "projected_1m_mix_seconds": projected_mix,
        "sample": sample,
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from core.embed.embedders import build_embedder
    from core.storage import datasets as ds
    from core.storage.database import Store

    began = time.perf_counter()
    print(f"load average at start: {_load(os.getloadavg())}", flush=True)
    embedder = build_embedder(None)  # the prepare's default: the packaged all-MiniLM-L6-v2
    key = embedder.cache_key()
    # torch's first batches of each length are slow: warm the model up on texts of many lengths first
    dim = embedder.embed([" ".join(["warm up the model"] * (1 + i % 64)) for i in range(512)]).shape[1]
    args.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="embed-rate-", dir=args.scratch))
    try:
        start = time.perf_counter()
        shutil.copytree(args.workspace, scratch / "ws-1m")
        large = Store(scratch / "ws-1m")
        info = ds.get_dataset(large, args.dataset)
        fields = tuple(info.embed_fields)
        distinct = distinct_in_row_order(large, info.dataset_id)
        window = distinct[-args.texts :]
        ds.delete_embeddings(large, key, window)  # in case the copied workspace holds MiniLM vectors already
        print(
            f"1M: copied {args.workspace.name} ({time.perf_counter() - start:.1f} s); {info.n_rows:,} rows, "
            f"{len(distinct):,} distinct texts (fields {', '.join(fields)}), embedder key {key}",
            flush=True,
        )
        seconds = fill_placeholders(large, key, distinct[: -args.texts], dim)
        print(f"1M: {len(distinct) - len(window):,} placeholder vectors in {seconds:.1f} s", flush=True)

        start = time.perf_counter()
        small, small_id, small_fields = ingest_small(args.file, args.small_rows, scratch / "small", embedder)
        small_distinct = distinct_in_row_order(small, small_id)
        if not set(window) <= set(small_distinct) or small_fields != fields:
            raise SystemExit("the small dataset does not hold the 1M window's texts: is --file the workspace's file?")
        chosen = set(window)
        seconds = fill_placeholders(small, key, [h for h in small_distinct if h not in chosen], dim, seed=1)
        print(
            f"50k: last {args.small_rows:,} rows stored, {len(small_distinct):,} distinct texts, "
            f"{len(small_distinct) - len(window):,} placeholders ({time.perf_counter() - start:.1f} s)",
            flush=True,
        )

        print("\n" + HEADER)
        windows = []
        for _ in range(args.repeats):
            for label, store, dataset_id in (("1M", large, info.dataset_id), ("50k", small, small_id)):
                windows.append(run_window(label, store, dataset_id, fields, embedder, window))
                print_window(len(windows), windows[-1])
        sample = time_sample(large, info.dataset_id, info.n_rows, fields, embedder, args.sample)
        sample["window_mean_chars"] = window_mean_chars(large, info.dataset_id, info.n_rows, fields, window)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    result = summary(windows, len(distinct), sample)
    for size in ("1M", "50k"):
        entry = result["median"][size]
        print(
            f"median {size:>4}: {entry['rate']:.1f} texts/s, start-up {entry['startup_seconds']:.1f} s, model "
            f"{entry['model_seconds']:.1f} s, store {entry['store_seconds']:.1f} s per {args.texts:,} texts"
        )
    verdict = "PASS" if result["passed"] else "FAIL"
    print(f"rate(1M) / rate(50k) = {result['ratio']:.3f} (target >= {TARGET_RATIO:.2f}): {verdict}")
    pairs = result["pair_ratios"]
    print(f"each pair's ratio: {', '.join(f'{x:.3f}' for x in pairs)} (median {statistics.median(pairs):.3f})")
    print(
        f"the ratio from the store's seconds alone (the same model seconds at both sizes): {result['store_ratio']:.3f}"
    )
    projected = result["projected_1m_seconds"]
    print(
        f"projected MiniLM embedding of the 1M file: {result['median']['1M']['startup_seconds']:.0f} s start-up + "
        f"{len(distinct):,} texts / {result['median']['1M']['rate']:.1f} texts/s = {projected:,.0f} s "
        f"({projected / 3600:.2f} h)"
    )
    sample, mix = result["sample"], result["projected_1m_mix_seconds"]
    print(
        f"the model alone on {sample['texts']:,} random rows of the file (mean {sample['mean_chars']:.0f} characters, "
        f"the window's {sample['window_mean_chars']:.0f}): {sample['texts'] / sample['seconds']:.1f} texts/s, load "
        f"{_load(sample['load_before'])} -> {_load(sample['load_after'])}\n"
        f"projected with the file's mix of texts: start-up + {len(distinct):,} x (model "
        f"{sample['seconds'] / sample['texts'] * 1e3:.2f} ms + store at 1M "
        f"{result['median']['1M']['store_seconds'] / args.texts * 1e3:.3f} ms) = {mix:,.0f} s ({mix / 3600:.2f} h)"
    )
    out = OUT / f"embed-rate-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {"texts": args.texts, "repeats": args.repeats, "key": key, "windows": windows, **result}
    record["distinct_1m"], record["seconds"] = len(distinct), time.perf_counter() - began
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"load average at end: {_load(os.getloadavg())}; {record['seconds'] / 60:.1f} min; results in {out}")


if __name__ == "__main__":
    main()
