"""Benchmark of keyword search over instruction and output at 1M rows: the alternatives side by side.

DuckDB's full-text search extension (``fts``) is not bundled and cannot be installed offline, so this
compares what runs without it, on one synthetic workspace table built from the reference pool (every
top-level ``*.jsonl`` of the data dir, ``--data-dir`` or ``CURATE_BENCH_DATA``): the pool's rows cycled to
``--rows`` rows (default 1,000,000), each copy after the first with a numbered suffix on its instruction, so
the length distribution is the pool's and no row repeats beyond the pool's own duplicates.

Methods (each answers a keyword with the total count, the first page of 20 rows in row order and a page
deep in the results), on the ``examples`` table of a real workspace:

- ``ilike``: ``instruction ILIKE '%kw%' OR output ILIKE '%kw%'`` (with an escape character, as the app had);
- ``contains_lower``: ``contains(lower(instruction), kw) OR contains(lower(output), kw)``;
- ``regexp``: ``regexp_matches(instruction, kw, 'i') OR ...`` with the keyword escaped;
- ``lower_column``: ``contains(search_text, kw)`` on a precomputed lower-cased ``instruction || output``
  column of a side table (built once, its build time and size reported);
- ``app``: what the app runs, :func:`core.storage.curation.examples` with a keyword: the word index of
  :mod:`core.storage.search` (built at prepare time; its build time and vocabulary reported) narrows the
  rows, ``contains(lower(...))`` decides; count and page as the Clusters page asks for them (with the
  cluster, veto and copies columns).

It prints, per method and keyword, the median of ``--repeats`` (default 5) runs of count + first page, and
of a page at offset ``--deep`` (default 10,000, or the last page when fewer match), with the load average,
and PASS/FAIL against the 1 s target of issue 16. Run from the project root: ``python -m bench.search``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.prepare import DATA_DIR, pool_lines
from core.storage import curation
from core.storage import search as keyword_search
from core.storage.database import Store

TARGET_SECONDS = 1.0
PAGE = 20
KEYWORDS = ("python", "Photosynthesis", "the capital of", "50%", "of", "qqzx")
ESCAPE = "\\"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--deep", type=int, default=10_000)
    parser.add_argument("--workspace", type=Path, help="reuse (or build) the workspace here")
    parser.add_argument("--methods", default="ilike,contains_lower,regexp,lower_column,app")
    return parser.parse_args()


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def build(store: Store, data_dir: Path, n_rows: int) -> dict[str, float]:
    """The examples (and one clustering's assignments) of a ``n_rows`` dataset, from the pool cycled."""
    import pyarrow as pa

    rows = [json.loads(line) for line in pool_lines(data_dir)]
    pool = pa.table(
        {
            "p": list(range(len(rows))),
            "instruction": [str(r.get("instruction") or "") for r in rows],
            "input": [str(r.get("input") or "") for r in rows],
            "output": [str(r.get("output") or "") for r in rows],
        }
    )
    started = time.perf_counter()
    with store.write() as con:
        con.register("pool", pool)
        n_pool = len(rows)
        con.execute(
            "INSERT INTO datasets (dataset_id, name, n_rows, active_k, status, embed_fields, k_grid) "
            "VALUES (1, 'search-bench', ?, 100, 'ready', '[\"instruction\"]', '[100]')",
            [n_rows],
        )
        con.execute(
            """
            INSERT INTO examples (dataset_id, row_idx, example_id, location, instruction, input, output, original,
                                  content_hash, prompt_hash, text_hash)
            SELECT 1, r, md5(r::VARCHAR)[:16], 'line ' || (r + 1),
                   p.instruction || CASE WHEN r >= ? THEN ' (' || (r // ?) || ')' ELSE '' END, p.input, p.output,
                   '{}', md5(r::VARCHAR), md5(p.p::VARCHAR), md5(r::VARCHAR)
            FROM range(?) t(r) JOIN pool p ON p.p = r % ?
            """,
            [n_pool, n_pool, n_rows, n_pool],
        )
        con.execute("INSERT INTO assignments SELECT 1, 100, r, r % 100 FROM range(?) t(r)", [n_rows])
        con.execute(
            "INSERT INTO cluster_labels (dataset_id, k, cluster_id, label, size) "
            "SELECT 1, 100, c, 'cluster ' || c, ? FROM range(100) t(c)",
            [n_rows // 100],
        )
        con.unregister("pool")
    return {"examples_s": time.perf_counter() - started}


def pattern(keyword: str) -> str:
    escaped = keyword.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def regex(keyword: str) -> str:
    import re

    return re.escape(keyword)


CONDITIONS: dict[str, tuple[str, Callable[[str], list[Any]]]] = {
    "ilike": (
        "(e.instruction ILIKE ? ESCAPE '\\' OR e.output ILIKE ? ESCAPE '\\')",
        lambda kw: [pattern(kw), pattern(kw)],
    ),
    "contains_lower": (
        "(contains(lower(e.instruction), ?) OR contains(lower(e.output), ?))",
        lambda kw: [kw.lower(), kw.lower()],
    ),
    "regexp": (
        "(regexp_matches(e.instruction, ?, 'i') OR regexp_matches(e.output, ?, 'i'))",
        lambda kw: [regex(kw), regex(kw)],
    ),
    "lower_column": (
        "e.row_idx IN (SELECT row_idx FROM search_text WHERE dataset_id = 1 AND contains(text, ?))",
        lambda kw: [kw.lower()],
    ),
}


def build_lower_column(store: Store) -> dict[str, float]:
    started = time.perf_counter()
    with store.write() as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS search_text AS SELECT dataset_id, row_idx, "
            "lower(instruction || chr(10) || output) AS text FROM examples ORDER BY dataset_id, row_idx"
        )
    return {"lower_column_build_s": time.perf_counter() - started}


def build_word_index(store: Store) -> dict[str, float]:
    with store.read() as con:
        if keyword_search.is_indexed(con, 1):
            return {}
    started = time.perf_counter()
    words = keyword_search.build_index(store, 1)
    return {"word_index_build_s": time.perf_counter() - started, "word_index_vocabulary": words}


def query_plain(store: Store, method: str, keyword: str, offset: int) -> tuple[int, list[int]]:
    condition, params = CONDITIONS[method]
    where = f"e.dataset_id = 1 AND {condition}"
    with store.read() as con:
        total = con.execute(f"SELECT count(*) FROM examples e WHERE {where}", params(keyword)).fetchone()[0]
        page = con.execute(
            f"SELECT e.row_idx, e.instruction, e.output FROM examples e WHERE {where} "
            "ORDER BY e.row_idx LIMIT ? OFFSET ?",
            [*params(keyword), PAGE, offset],
        ).fetchall()
    return int(total), [row[0] for row in page]


def query_app(store: Store, keyword: str, offset: int) -> tuple[int, list[int]]:
    page, total = curation.examples(store, 1, 100, search=keyword, limit=PAGE, offset=offset)
    return total, [int(r) for r in page.row_idx]


def runner(method: str) -> Callable[[Store, str, int], tuple[int, list[int]]]:
    if method == "app":
        return query_app
    return lambda store, keyword, offset: query_plain(store, method, keyword, offset)


def timed(run: Callable[[], tuple[int, list[int]]], repeats: int) -> tuple[float, tuple[int, list[int]]]:
    seconds, result = [], (0, [])
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main() -> None:
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="search-bench-"))
    workspace = args.workspace or scratch / "ws"
    fresh = not (workspace / "curate.duckdb").exists()
    store = Store(workspace)
    methods = args.methods.split(",")
    print(f"bench.search: {args.rows:,} rows, {load()}")
    builds: dict[str, float] = build(store, args.data_dir, args.rows) if fresh else {}
    if "lower_column" in methods:
        builds |= build_lower_column(store)
    if "app" in methods:
        builds |= build_word_index(store)
    for name, value in builds.items():
        print(f"  build {name}: {value:,.1f}")
    print(f"  database file: {(workspace / 'curate.duckdb').stat().st_size / 2**30:.2f} GiB, {load()}")
    print(f"{'method':<15} {'keyword':<16} {'matches':>8} {'first page s':>13} {'deep page s':>12}  verdict")
    reference: dict[str, tuple[int, list[int]]] = {}
    for keyword in KEYWORDS:
        for method in methods:
            run = runner(method)
            first_s, (total, rows) = timed(functools.partial(run, store, keyword, 0), args.repeats)
            deep = max(0, min(args.deep, total - PAGE))
            deep_s, _ = timed(functools.partial(run, store, keyword, deep), args.repeats)
            agree = reference.setdefault(keyword, (total, rows)) == (total, rows)
            verdict = "PASS" if max(first_s, deep_s) < TARGET_SECONDS else "FAIL"
            note = "" if agree else "  (results differ from the first method's)"
            print(f"{method:<15} {keyword!r:<16} {total:>8,} {first_s:>13.3f} {deep_s:>12.3f}  {verdict}{note}")
    print(f"done, {load()}")


if __name__ == "__main__":
    main()
