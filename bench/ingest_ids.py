"""Benchmark of the memory the ingest keeps to refuse a repeated ``id``: one entry per row that has one.

Each variant runs in a process of its own and registers ``--rows`` distinct synthetic ids (``example-000000001`` ...,
18 characters each; no pool text is needed) the way the ingest does, then reports the
growth of its resident memory and the time taken:

- ``text``: the map before (commit 682add7): the id's JSON text to the location string of its first row;
- ``digest``: ``core.ingest._check_unique_id`` as it is: a 16-byte BLAKE2b digest (an int) to the row number.

Target: the digest map at most 75 % of the text map's memory.

Run from the project root: ``.venv/bin/python -m bench.ingest_ids`` (option: ``--rows``, default 1,000,000).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.prepare import verdict

TARGET_RATIO = 0.75


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def _fill(variant: str, rows: int) -> dict[object, object]:
    from core.ingest import _check_unique_id, _Record

    seen: dict[object, object] = {}
    for number in range(1, rows + 1):
        value = f"example-{number:09d}"
        if variant == "text":
            seen[json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)] = f"line {number}"
        else:
            _check_unique_id({"id": value}, _Record(f"line {number}", number, None), seen)  # type: ignore[arg-type]
    return seen


def _child(variant: str, rows: int) -> None:
    import core.ingest  # noqa: F401 - imported before the first reading, so its modules are not counted

    gc.collect()
    before, start = _rss_bytes(), time.perf_counter()
    seen = _fill(variant, rows)
    gc.collect()
    print(json.dumps({"mb": (_rss_bytes() - before) / 1e6, "seconds": time.perf_counter() - start, "n": len(seen)}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("text", "digest"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.rows)
        return 0
    found = {}
    for variant in ("text", "digest"):
        command = [sys.executable, "-m", "bench.ingest_ids", "--rows", str(args.rows), "--child", variant]
        found[variant] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        entry = found[variant]
        print(f"{variant:>6}: {entry['mb']:.0f} MB for {entry['n']:,} ids, {entry['seconds']:.2f} s")
    ratio = found["digest"]["mb"] / found["text"]["mb"]
    print(f"digest / text memory: {ratio:.2f} (target <= {TARGET_RATIO}): {verdict(ratio <= TARGET_RATIO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
