"""Benchmark of the k sweep fitted on a sample and assigned over every row, against k-means fitted on every row.

The rows: the distinct embedded texts of the reference pool (``--data-dir`` or ``CURATE_BENCH_DATA``; about 51k),
embedded with the ``hashing`` embedder, repeated ``--copies`` times with seeded Gaussian noise (sigma ``--noise``,
then renormalised) so the sweep sees ``--copies`` x 51k distinct rows shaped like real text. For each k of ``--ks``
it runs ``core.cluster.clustering.sweep_k`` with the sample threshold above the row count (k-means on every row,
what prepare does up to 100,000 rows) and below it (k-means on a seeded ``--sample``-row sample, every row assigned
to its nearest centroid), and prints wall seconds and the inertia over every row. Target: the sampled sweep's
inertia within 2 % of the full fit's (the elbow and the clusters are then the same to a curator) and its time
lower.

Run from the project root: ``.venv/bin/python -m bench.sweep_scale`` (options: ``--copies``, ``--sample``, ``--ks``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.map_scale import pool_texts
from bench.prepare import DATA_DIR, verdict
from core.cluster import clustering
from core.embed.embedders import HashingEmbedder, l2_normalise

TARGET_INERTIA_RATIO = 1.02


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--copies", type=int, default=4, help="noisy copies of the pool (4: about 206k rows)")
    parser.add_argument("--noise", type=float, default=0.02, help="per-dimension noise of each copy")
    parser.add_argument("--sample", type=int, default=clustering.FIT_SAMPLE)
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def noisy_copies(base: np.ndarray, copies: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [base + rng.normal(scale=noise, size=base.shape).astype(np.float32) for _ in range(copies)]
    return l2_normalise(np.concatenate(parts))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    embeddings = noisy_copies(HashingEmbedder().embed(pool_texts(args.data_dir)), args.copies, args.noise, args.seed)
    n = len(embeddings)
    print(f"{n} rows ({args.copies} noisy copies of the pool), sample {args.sample}; load {os.getloadavg()}")
    print(f"{'k':>5}{'full s':>9}{'sampled s':>11}{'full inertia':>14}{'sampled inertia':>17}{'ratio':>8}  target")
    for k in args.ks:
        started = time.perf_counter()
        full, _ = clustering.sweep_k(embeddings, [k], seed=args.seed, fit_sample_above=n)
        full_s = time.perf_counter() - started
        started = time.perf_counter()
        sampled, _ = clustering.sweep_k(
            embeddings, [k], seed=args.seed, fit_sample_above=args.sample, fit_sample=args.sample
        )
        sampled_s = time.perf_counter() - started
        ratio = sampled[0].inertia / full[0].inertia
        ok = ratio <= TARGET_INERTIA_RATIO and sampled_s < full_s
        print(
            f"{k:>5}{full_s:>9.1f}{sampled_s:>11.1f}{full[0].inertia:>14.1f}{sampled[0].inertia:>17.1f}{ratio:>8.4f}"
            f"  {verdict(ok)} (ratio <= {TARGET_INERTIA_RATIO}, faster)"
        )
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
