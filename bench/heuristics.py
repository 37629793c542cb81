"""Benchmark of the heuristic flags (cut-off response, near duplicate) per source, old rules against new.

The first rules misfired on code and templated tasks (issue 15): a response of six or more words without
closing punctuation was "cut off", and an embedding neighbour at cosine >= 0.95 was a "near duplicate".
This script keeps those rules (``old_looks_cut_off``, ``old_near_duplicates``) as the baseline and runs
them beside the current ones (``core.score.heuristics``) in one process. Each file of the data dir is a
source: every top-level ``*.jsonl`` (``--data-dir`` or ``CURATE_BENCH_DATA``), plus ``eval/mbpp_test.jsonl``
as a code set of reference solutions.

Per source it reports:

1. **Cut-off rate** of the old and the new rule over every row (pure Python, so all rows).
2. **Near-duplicate rate** of the old and the new rule within the source (a source is scored as one
   dataset), on a seeded sample of ``--per-source`` rows (default 2,000) embedded with the packaged
   MiniLM on instruction and input, as prepare embeds by default. Embeddings are cached in
   ``bench/results/`` so a second run skips the embedding.
3. **Recall on synthetic truncations**: up to ``--truncations`` responses of 20 or more words per source
   are chopped after a seeded random word between 25 % and 90 % of their words (never right after a
   sentence or statement end, ``.!?;}``), half of them inside the next word, keeping their line breaks,
   and each rule's detection rate is reported. A cut at the end of a line of code or a list item leaves
   text that reads as complete, so no rule can reach 100 %. The planted truncated answers of
   ``sample_data/sample.jsonl`` are scored the same way.
4. **A hand-check sample**: ``--show`` rows per source that the new rule flags (cut off, near-duplicate
   pairs) are printed, to confirm by eye that real cut-offs and repeats are still caught.

Run from the project root: ``.venv/bin/python -m bench.heuristics`` (docs/benchmarks.md lists the options).
Results are printed and written as JSON to ``bench/results/heuristics-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from bench.prepare import DATA_DIR, log, seeded_subset, write_json  # noqa: E402
from core.score.heuristics import looks_cut_off, near_duplicates  # noqa: E402

CODE_SETS = ("eval/mbpp_test.jsonl",)
SAMPLE_DATA = ROOT / "sample_data" / "sample.jsonl"
MIN_TRUNCATION_WORDS = 20


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--per-source", type=int, default=2000, help="rows per source for near duplicates")
    parser.add_argument("--truncations", type=int, default=300, help="synthetic truncations per source")
    parser.add_argument("--show", type=int, default=3, help="flagged rows printed per source")
    parser.add_argument("--no-embed", action="store_true", help="skip near duplicates (no model load)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the old rules (the baseline)


def old_looks_cut_off(text: str, min_words: int = 6) -> bool:
    """The first cut-off rule: six or more words and no closing punctuation (a code fence exempts)."""
    stripped = text.rstrip()
    if not stripped or "```" in stripped or len(stripped.split()) < min_words:
        return False
    return stripped[-1].isalnum() or stripped[-1] in ",;:(-"


def old_near_duplicates(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """The first near-duplicate rule: the nearest other row is at cosine >= ``threshold``."""
    import faiss

    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    if len(data) < 2:
        return np.zeros(len(data))
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    similarities, _ = index.search(data, 2)
    return (similarities[:, 1] >= threshold - 1e-6).astype(float)


# ---------------------------------------------------------------- data


def read_rows(path: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [{k: str(r.get(k) or "") for k in ("instruction", "input", "output")} for r in rows]


def sources(data_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Each top-level ``*.jsonl`` and each code set, by file name."""
    paths = sorted(data_dir.glob("*.jsonl")) + [data_dir / name for name in CODE_SETS if (data_dir / name).exists()]
    if not paths:
        raise SystemExit(f"no *.jsonl files in {data_dir}")
    return {path.name: read_rows(path) for path in paths}


def prompt_of(row: dict[str, str]) -> str:
    return f"{row['instruction']}\n\n{row['input']}"  # as HeuristicsScorer joins them


def embed_text(row: dict[str, str]) -> str:
    from core.ingest import embed_text as join_fields

    return join_fields(row["instruction"], row["input"], row["output"], ("instruction", "input"))


# ---------------------------------------------------------------- cut off


def cut_off_rates(rows: list[dict[str, str]]) -> dict[str, Any]:
    started = time.perf_counter()
    new = [looks_cut_off(r["output"], prompt_of(r)) for r in rows]
    seconds = time.perf_counter() - started
    old = [old_looks_cut_off(r["output"]) for r in rows]
    return {"old": float(np.mean(old)), "new": float(np.mean(new)), "new_seconds": seconds, "flags": new}


def truncate(text: str, rng: random.Random) -> str:
    """``text`` cut after a random word between 25 % and 90 % of its words, half the time inside the next
    word; never right after a sentence or statement end (``.!?;}``), where the text would read as complete.
    Line breaks and indentation before the cut are kept."""
    spans = [match.span() for match in re.finditer(r"\S+", text)]
    size = rng.randint(len(spans) // 4, len(spans) * 9 // 10)
    while size < len(spans) - 1 and text[spans[size - 1][1] - 1] in ".!?;}":
        size += 1
    start, end = spans[size]
    if rng.random() < 0.5 and end - start > 2:
        return text[: start + rng.randint(1, end - start - 2)]
    return text[: spans[size - 1][1]]


def truncation_recall(rows: list[dict[str, str]], n: int, rng: random.Random) -> dict[str, Any] | None:
    """Each rule's detection rate on up to ``n`` responses of ``MIN_TRUNCATION_WORDS`` or more words, cut."""
    long_enough = [r for r in rows if len(r["output"].split()) >= MIN_TRUNCATION_WORDS]
    if not long_enough:
        return None
    chosen = rng.sample(long_enough, min(n, len(long_enough)))
    cut = [(truncate(r["output"].rstrip(), rng), prompt_of(r)) for r in chosen]
    return {
        "n": len(cut),
        "old": float(np.mean([old_looks_cut_off(text) for text, _ in cut])),
        "new": float(np.mean([looks_cut_off(text, prompt) for text, prompt in cut])),
        "missed_by_new": [text[-160:] for text, prompt in cut if not looks_cut_off(text, prompt)][:3],
    }


def planted_recall() -> dict[str, Any]:
    """Both rules on the sample data's planted truncated answers (the non-empty ones)."""
    rows = [json.loads(line) for line in SAMPLE_DATA.read_text(encoding="utf-8").split("\n") if line.strip()]
    cut = [r for r in rows if r.get("topic") == "planted/truncated" and r["output"].strip()]
    clean = [r for r in rows if not str(r.get("topic", "")).startswith("planted")]
    return {
        "n": len(cut),
        "old": float(np.mean([old_looks_cut_off(r["output"]) for r in cut])),
        "new": float(np.mean([looks_cut_off(r["output"], r["instruction"]) for r in cut])),
        "clean_n": len(clean),
        "clean_old": float(np.mean([old_looks_cut_off(r["output"]) for r in clean])),
        "clean_new": float(np.mean([looks_cut_off(r["output"], r["instruction"]) for r in clean])),
    }


# ---------------------------------------------------------------- near duplicates


def embeddings_for(texts: list[str]) -> np.ndarray:
    """The packaged MiniLM's vectors for ``texts``, cached in bench/results/ by the texts' hash."""
    from core.embed.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    digest = hashlib.sha256((embedder.cache_key() + "\0" + "\0".join(texts)).encode()).hexdigest()[:16]
    cache = ROOT / "bench" / "results" / f"heuristics-embeddings-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    vectors = embedder.embed(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def near_duplicate_rates(rows: list[dict[str, str]], threshold: float = 0.95) -> dict[str, Any]:
    started = time.perf_counter()
    vectors = embeddings_for([embed_text(r) for r in rows])
    embed_seconds = time.perf_counter() - started
    old = old_near_duplicates(vectors, threshold)
    started = time.perf_counter()
    new = near_duplicates(vectors, threshold, [prompt_of(r) for r in rows], [r["output"] for r in rows])
    return {
        "n": len(rows),
        "old": float(old.mean()),
        "new": float(new.mean()),
        "embed_seconds": embed_seconds,
        "new_seconds": time.perf_counter() - started,
        "pairs": flagged_pairs(vectors, new, rows),
    }


def flagged_pairs(vectors: np.ndarray, flags: np.ndarray, rows: list[dict[str, str]]) -> list[tuple[int, int]]:
    """For each flagged row, its nearest other flagged row (for the hand-check print)."""
    flagged = np.flatnonzero(flags)
    pairs = []
    for row in flagged:
        others = flagged[flagged != row]
        if len(others):
            pairs.append((int(row), int(others[np.argmax(vectors[others] @ vectors[row])])))
    return pairs


# ---------------------------------------------------------------- report


def one_line(text: str, width: int = 150) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "..." + flat[-(width - 3) :]


def print_table(results: dict[str, Any]) -> None:
    print("\n== Heuristic flags per source, old rule -> new rule ==")
    header = f"{'source':32} {'rows':>6}  {'cut off old':>11} {'new':>6}  {'near-dup n':>10} {'old':>6} {'new':>6}"
    print(header + f"  {'trunc. n':>8} {'recall old':>10} {'new':>6}")
    for name, entry in results["sources"].items():
        cut, near, trunc = entry["cut_off"], entry.get("near_duplicate"), entry.get("truncation")
        line = f"{name:32} {entry['rows']:6d}  {cut['old']:11.1%} {cut['new']:6.1%}  "
        line += f"{near['n']:10d} {near['old']:6.1%} {near['new']:6.1%}  " if near else f"{'-':>10} {'':6} {'':6}  "
        line += f"{trunc['n']:8d} {trunc['old']:10.1%} {trunc['new']:6.1%}" if trunc else f"{'-':>8}"
        print(line)
    pooled = results["truncation_pooled"]
    print(
        f"synthetic truncations, all sources: {pooled['n']} cut, recall old {pooled['old']:.1%}, new {pooled['new']:.1%}"
    )
    planted = results["planted"]
    print(
        f"sample_data planted truncated answers: {planted['n']}, recall old {planted['old']:.1%}, new "
        f"{planted['new']:.1%}; its {planted['clean_n']} clean rows flagged old {planted['clean_old']:.1%}, "
        f"new {planted['clean_new']:.1%}"
    )


def print_hand_check(name: str, rows: list[dict[str, str]], entry: dict[str, Any], show: int, seed: int) -> None:
    rng = random.Random(seed)
    flagged = [i for i, flag in enumerate(entry["cut_off"]["flags"]) if flag]
    print(f"\n-- {name}: {len(flagged)} cut off (new rule); a sample of the endings:")
    for i in rng.sample(flagged, min(show, len(flagged))):
        print(f"   cut off: {one_line(rows[i]['output'][-200:])!r}")
    trunc = entry.get("truncation")
    for text in (trunc or {}).get("missed_by_new", [])[:show]:
        print(f"   synthetic truncation missed: {one_line(text)!r}")
    near = entry.get("near_duplicate")
    if near:
        sample = entry["near_sample"]
        for a, b in rng.sample(near["pairs"], min(show, len(near["pairs"]))):
            print(f"   near duplicate: {one_line(prompt_of(sample[a]), 70)!r} -> {one_line(sample[a]['output'], 60)!r}")
            print(f"               ~ : {one_line(prompt_of(sample[b]), 70)!r} -> {one_line(sample[b]['output'], 60)!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args), "sources": {}}
    results["load_before"] = os.getloadavg()
    rng = random.Random(args.seed)
    all_sources = sources(args.data_dir)
    pooled: list[float] = []
    pooled_old: list[float] = []
    for name, rows in all_sources.items():
        log(f"{name}: {len(rows)} rows")
        entry: dict[str, Any] = {"rows": len(rows), "cut_off": cut_off_rates(rows)}
        entry["truncation"] = truncation_recall(rows, args.truncations, rng)
        if entry["truncation"]:
            pooled += [entry["truncation"]["new"]] * entry["truncation"]["n"]
            pooled_old += [entry["truncation"]["old"]] * entry["truncation"]["n"]
        if not args.no_embed:
            entry["near_sample"] = seeded_subset(rows, args.per_source, args.seed)
            entry["near_duplicate"] = near_duplicate_rates(entry["near_sample"])
        results["sources"][name] = entry
    results["truncation_pooled"] = {"n": len(pooled), "old": float(np.mean(pooled_old)), "new": float(np.mean(pooled))}
    results["planted"] = planted_recall()
    results["load_after"] = os.getloadavg()
    for name, rows in all_sources.items():
        print_hand_check(name, rows, results["sources"][name], args.show, args.seed)
    print_table(results)
    print(f"1-min load average before / after: {results['load_before'][0]:.1f} / {results['load_after'][0]:.1f}")
    for entry in results["sources"].values():
        entry["cut_off"].pop("flags")
        entry.pop("near_sample", None)
    print(f"results written to {write_json(results, 'heuristics').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
