"""Checks the growth laws of core/select/cost.py on synthetic data: the quadratic parts of the greedy
strategies, measured at two pool sizes, against the ratio their law predicts.

Synthetic pool: seeded unit vectors of 384 dimensions (MiniLM's), a 10 % budget. Timed parts: ``k_center``'s
farthest-first loop (law n*b) and ``qdit``'s exact 64-nearest-neighbour graph (law n^2, most of qdit's time).
Doubling the pool (and so the budget) should multiply both by about 4. PASS when each measured ratio is
within a factor 1.5 of the law's; then the 1M projections printed (from bench/selection.py's figures) stand.

Run from the project root: ``.venv/bin/python -m bench.select_cost [--rows 10000]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from core.select import cost, greedy


def _vectors(rows: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="the smaller pool; the larger is twice it")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    ok = True
    greedy.farthest_first(_vectors(2_000), 200, 0)  # warm-up: the first products pay BLAS's start
    greedy.knn_graph(_vectors(2_000), 64)
    for strategy, part in (("k_center", "farthest_first"), ("qdit", "knn_graph")):
        law = cost.COSTS[strategy].law
        seconds = []
        for rows in (args.rows, 2 * args.rows):
            vectors, budget = _vectors(rows), rows // 10
            if part == "farthest_first":
                seconds.append(_timed(greedy.farthest_first, vectors, budget, 0))
            else:
                seconds.append(_timed(greedy.knn_graph, vectors, 64))
        predicted = cost.growth(law, 2 * args.rows, args.rows // 5) / cost.growth(law, args.rows, args.rows // 10)
        measured = seconds[1] / seconds[0]
        verdict = "PASS" if predicted / 1.5 <= measured <= predicted * 1.5 else "FAIL"
        ok &= verdict == "PASS"
        print(
            f"{strategy:10} {part:15} law {law:5} {args.rows:>7,} rows {seconds[0]:6.2f} s, {2 * args.rows:>7,} rows "
            f"{seconds[1]:6.2f} s: x{measured:.2f}, law x{predicted:.2f}  {verdict}"
        )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    print("projected at 1,000,000 rows, budget 100,000 (from bench/selection.py's 52k figures):")
    for name, entry in cost.COSTS.items():
        seconds_1m = cost.projected_seconds(name, 1_000_000, 100_000)
        if seconds_1m is not None:
            mark = "over 120 s: states its cost, needs --yes" if seconds_1m > cost.CONFIRM_SECONDS else "within 120 s"
            print(f"  {name:15} {entry.law:8} {seconds_1m:8.0f} s  {mark}")
    print("growth laws: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
