"""Benchmark of the 2-D map fitted on a sample and extended to every row, against a full UMAP fit.

On the distinct embedded texts of the reference pool (every top-level ``*.jsonl`` of the data dir, ``--data-dir``
or ``CURATE_BENCH_DATA``; about 50k texts, the most this pool gives without repeating rows), embedded with the
``hashing`` embedder, it fits:

- **full**: UMAP on every row (what prepare does up to ``UMAPReducer.fit_sample_above`` rows);
- **S + k neighbours**: UMAP on a seeded sample of S rows (``--samples``), every other row placed at the
  distance-weighted mean of its k nearest sample rows' positions (``core.cluster.reduce.place_by_neighbours``;
  k = 1, 3, 10; exact search up to 20,000 sample rows, an IVF index above);
- **S + transform**: the same fitted sample, the other rows placed by UMAP's ``transform``.

UMAP's numba compilation is paid first by an untimed fit on 5,000 rows, so no variant carries it. Faithfulness
is the kNN preservation: for ``--queries`` seeded rows, the fraction of their 10 nearest neighbours in
embedding space (cosine, exact) that are also among their 10 nearest on the map (exact), averaged; a random
layout scores about 10 / N. ``full, other seed`` is a second full fit, the noise of the measure. Target: an
extension keeps at least 90 % of the full fit's preservation (a map fitted on a sample should show nearly the
same neighbourhoods as one fitted on everything). Placement time is reported per 100k placed rows.

Run from the project root: ``.venv/bin/python -m bench.map_scale`` (options: ``--rows``, ``--sample``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.prepare import DATA_DIR, embed_texts_of, verdict
from core.cluster.reduce import UMAPReducer, map_sample, place_by_neighbours
from core.embed.embedders import HashingEmbedder

TARGET_RATIO = 0.9
NEIGHBOURS = 10


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--rows", type=int, default=None, help="a seeded subset of the pool's texts (default all)")
    parser.add_argument(
        "--samples", type=int, nargs="+", default=[10_000, 25_000], help="sizes of the samples the map is fitted on"
    )
    parser.add_argument("--queries", type=int, default=5_000, help="rows whose neighbours are compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-transform", action="store_true", help="leave out UMAP's transform (slow)")
    return parser.parse_args(argv)


def pool_texts(data_dir: Path) -> list[str]:
    files = sorted(data_dir.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no *.jsonl files in {data_dir}")
    return list(dict.fromkeys(text for path in files for text in embed_texts_of(path)))


def neighbours(points: np.ndarray, queries: np.ndarray, *, cosine: bool) -> np.ndarray:
    """The ``NEIGHBOURS`` nearest rows of ``points`` to each query row (itself excluded), exact."""
    import faiss

    data = np.ascontiguousarray(points, dtype=np.float32)
    index = faiss.IndexFlatIP(data.shape[1]) if cosine else faiss.IndexFlatL2(data.shape[1])
    index.add(data)
    _, found = index.search(data[queries], NEIGHBOURS + 1)
    return np.array([[j for j in row if j != q][:NEIGHBOURS] for q, row in zip(queries, found, strict=True)])


def preservation(truth: np.ndarray, coords: np.ndarray, queries: np.ndarray) -> float:
    on_map = neighbours(coords, queries, cosine=False)
    return float(np.mean([len(set(a) & set(b)) / NEIGHBOURS for a, b in zip(truth, on_map, strict=True)]))


def timed(work: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    texts = pool_texts(args.data_dir)
    if args.rows is not None and args.rows < len(texts):
        keep = np.sort(np.random.default_rng(args.seed).choice(len(texts), args.rows, replace=False))
        texts = [texts[i] for i in keep]
    embeddings = HashingEmbedder().embed(texts)
    n = len(embeddings)
    print(f"{n} distinct pool texts, hashing embedder {embeddings.shape[1]}-d; load {os.getloadavg()}")
    reducer = UMAPReducer(seed=args.seed, fit_sample_above=n + 1)
    warm = UMAPReducer(seed=args.seed, fit_sample_above=2_000, sample_size=1_000, extend="transform")
    warm.reduce(embeddings[:5_000])  # pays numba's compilation (fit, nn-descent, transform) outside the timings
    queries = np.sort(np.random.default_rng(args.seed + 1).choice(n, min(args.queries, n), replace=False))
    truth = neighbours(embeddings, queries, cosine=True)

    full, full_s = timed(lambda: reducer.reduce(embeddings))
    other, other_s = timed(lambda: UMAPReducer(seed=args.seed + 1, fit_sample_above=n + 1).reduce(embeddings))
    rows: list[tuple[str, float, float, float | None]] = [
        ("full", full_s, preservation(truth, full, queries), None),
        ("full, other seed", other_s, preservation(truth, other, queries), None),
    ]
    for size in args.samples:
        rows += sampled_rows(embeddings, size, args, truth, queries)
    print_rows(rows, n)
    return 0


def sampled_rows(
    embeddings: np.ndarray, size: int, args: argparse.Namespace, truth: np.ndarray, queries: np.ndarray
) -> list[tuple[str, float, float, float | None]]:
    """The neighbour placement and UMAP's transform from one sampled fit: (name, wall, kept, place s/100k)."""
    n = len(embeddings)
    sample = map_sample(n, size, args.seed)
    model = UMAPReducer(seed=args.seed)._model(len(sample))
    sample_coords, fit_s = timed(lambda: model.fit_transform(embeddings[sample]).astype(np.float32))
    per_100k = 100_000 / (n - len(sample))
    rows: list[tuple[str, float, float, float | None]] = []
    for k in (1, 3, NEIGHBOURS):
        placed, place_s = timed(lambda k=k: place_by_neighbours(embeddings, sample, sample_coords, k))
        kept = preservation(truth, placed, queries)
        rows.append((f"{size} + {k} neighbours", fit_s + place_s, kept, place_s * per_100k))
    if not args.skip_transform:
        moved, transform_s = timed(lambda: model.transform(embeddings).astype(np.float32))
        moved[sample] = sample_coords
        rows.append(
            (f"{size} + transform", fit_s + transform_s, preservation(truth, moved, queries), transform_s * per_100k)
        )
    return rows


def print_rows(rows: list[tuple[str, float, float, float | None]], n: int) -> None:
    full = rows[0][2]
    print(f"\n{n} rows; 10-NN preservation on the map; 'S + method': UMAP fitted on S rows, the rest placed")
    print(f"{'variant':<26}{'wall s':>8}{'place s/100k':>14}{'10-NN kept':>12}{'vs full':>9}  target")
    for name, wall, kept, place in rows:
        per_100k = f"{place:.1f}" if place is not None else "-"
        target = f"{verdict(kept >= TARGET_RATIO * full)} (>= {TARGET_RATIO:.0%} of full)" if place else ""
        print(f"{name:<26}{wall:>8.1f}{per_100k:>14}{kept:>12.3f}{kept / full:>9.2f}  {target}")
    print(f"random layout: about {NEIGHBOURS / n:.4f}; load {os.getloadavg()}")


if __name__ == "__main__":
    raise SystemExit(main())
