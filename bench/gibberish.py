"""Benchmark of the gibberish flag: how often it fires per source of real data, and on the sample's planted group.

The rule (``core.score.heuristics.looks_gibberish``, docs/algorithms.md 1.7) is applied as the heuristics
scorer applies it: to the response, to the prompt (instruction and input) and to both together. Real data
should be almost never flagged (each flag there is a false positive unless the text is meant to be no
language: a password, a cipher); the planted gibberish of ``sample_data/sample.jsonl`` should be. ``--show``
flagged rows per source are printed for a check by eye (their text is printed, never stored).

Run from the project root: ``.venv/bin/python -m bench.gibberish [--data-dir DIR] [--show N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.heuristics import DATA_DIR, one_line, prompt_of, read_rows
from core.score.heuristics import looks_gibberish

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "sample.jsonl"


def flagged(row: dict[str, str]) -> bool:
    prompt = prompt_of(row)
    return looks_gibberish(row["output"]) or looks_gibberish(prompt) or looks_gibberish(f"{prompt}\n{row['output']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--show", type=int, default=0, help="flagged rows printed per source")
    args = parser.parse_args()
    started = time.perf_counter()
    total = hits = 0
    for path in sorted(args.data_dir.glob("*.jsonl")):
        rows = read_rows(path)
        found = [row for row in rows if flagged(row)]
        total, hits = total + len(rows), hits + len(found)
        print(f"{path.name:32} {len(found):5} of {len(rows):6} ({len(found) / max(len(rows), 1):.3%})")
        for row in found[: args.show]:
            print("    ", one_line(row["output"] if looks_gibberish(row["output"]) else prompt_of(row)))
    print(f"{'all sources':32} {hits:5} of {total:6} ({hits / max(total, 1):.3%})")
    sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    planted = [flagged(row) for row in sample if row["topic"] == "planted/gibberish"]
    clean = [flagged(row) for row in sample if not row["topic"].startswith("planted/")]
    print(f"sample: planted gibberish {sum(planted)} of {len(planted)}, clean topics {sum(clean)} of {len(clean)}")
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
