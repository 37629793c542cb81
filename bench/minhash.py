"""Benchmark of MinHash near-duplicate grouping (issue 20): three MinHash implementations on the same rows, the
shingle size and threshold on planted paraphrase-level copies, and the whole ``minhash`` scorer against its
targets at a million rows.

1. **Rows.** ``--rows`` synthetic rows (cached in ``bench/results/minhash/``, git-ignored) built from the
   pool's sentences (the top-level ``*.jsonl`` of the data dir): an instruction of two sentences of two
   random pool instructions, a response of three to five sentences of random pool responses, so two rows
   share almost no five words in a row. ``--planted`` (2 %) of the rows are copies of another row with one
   to three word edits (a word substituted by a pool word, deleted, or two neighbours swapped) and the case
   of some words and the punctuation changed.
2. **Implementations** (``--compare-rows`` rows, default up to 100,000, each in its own process: peak RSS
   is the process's ``VmHWM``): ``rensa`` (our numpy shingle hashes, rensa's Rust MinHash from a flat hash
   buffer, numpy bands and grouping: what the scorer runs), ``numpy`` (the same with the permutations as
   vectorised multiply-shift hashes in numpy), ``datasketch`` (``MinHash.update_batch`` per row on the same
   normalised word shingles, ``MinHashLSH`` insert and query, then the same verification and grouping).
   Rows/s of signatures and of LSH + grouping, peak RSS, recall and false-group rate at 5-word shingles and
   threshold 0.7.
3. **Settings** (in the rensa process): recall and false-group rate per shingle size and threshold, and
   the exact Jaccard of the planted pairs under word and character shingles (median and share >= 0.7).
4. **The scorer** (``--rows`` rows): a workspace is stored from the rows (ingest and store of ``prepare``,
   in one process), then ``score_dataset`` with ``minhash`` at its defaults in another: seconds and peak
   RSS against the targets (1M rows in under 10 min and 6 GB: PASS/FAIL when ``--rows`` is 1,000,000;
   below it the figures are extrapolated linearly and marked so), recall and false-group rate read back from
   the store.

Recall: the share of planted copies found in the group of the row they copy. False-group rate: the share of
rows that are neither a copy nor copied yet sit in a group of two or more.

Run from the project root: ``.venv/bin/python -m bench.minhash --rows 100000`` (docs/benchmarks.md).
Results are printed and written to ``bench/results/minhash-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "minhash"
TARGET_SECONDS_1M = 10 * 60
TARGET_PEAK_BYTES_1M = 6e9
SENTENCE = re.compile(r"(?<=[.!?])\s+")

import numpy as np  # noqa: E402

from bench.prepare import DATA_DIR, log, write_json  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--compare-rows", type=int, default=None, help="rows for the implementations (<= 100k)")
    parser.add_argument("--planted", type=float, default=0.02, help="share of rows that are edited copies")
    parser.add_argument("--libraries", default="rensa,numpy,datasketch")
    parser.add_argument("--skip-scorer", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("rensa", "numpy", "datasketch", "store", "scorer"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--status", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- rows


def pool_sentences(data_dir: Path) -> tuple[list[str], list[str]]:
    """The sentences of the pool's instructions and of its responses."""
    prompts, answers = [], []
    for path in sorted(data_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                row = json.loads(line)
                prompts += [s for s in SENTENCE.split(str(row.get("instruction", ""))) if len(s.split()) >= 3]
                answers += [s for s in SENTENCE.split(str(row.get("output", ""))) if len(s.split()) >= 3]
    return prompts, answers


def edited(text: str, rng: np.random.Generator, vocabulary: list[str], edits: int) -> str:
    """``text`` with ``edits`` word edits (substitute, delete, swap), some words' case and punctuation changed."""
    words = text.split()
    for _ in range(edits):
        if len(words) < 3:
            break
        at = int(rng.integers(0, len(words) - 1))
        kind = rng.integers(0, 3)
        if kind == 0:
            words[at] = vocabulary[int(rng.integers(len(vocabulary)))]
        elif kind == 1:
            del words[at]
        else:
            words[at], words[at + 1] = words[at + 1], words[at]
    for at in rng.choice(len(words), size=min(3, len(words)), replace=False):
        words[at] = words[at].upper() if rng.random() < 0.5 else words[at].capitalize()
    out = " ".join(words).replace(". ", "; ", 1).replace(",", "")
    return out + ("!" if out.endswith(".") else "")


def build_rows(n: int, planted: float, seed: int, data_dir: Path) -> tuple[Path, np.ndarray]:
    """(the JSONL of ``n`` rows, source[i]: the row that row i copies, or -1), cached by size and seed."""
    OUT.mkdir(parents=True, exist_ok=True)
    path, truth = OUT / f"rows-{n}-{planted}-{seed}.jsonl", OUT / f"rows-{n}-{planted}-{seed}.npy"
    if path.exists() and truth.exists():
        return path, np.load(truth)
    prompts, answers = pool_sentences(data_dir)
    rng = np.random.default_rng(seed)
    vocabulary = [w for s in answers[:20000] for w in s.split()]
    source = np.full(n, -1, dtype=np.int64)
    copies = rng.choice(n, size=int(n * planted), replace=False)
    others = np.setdiff1d(np.arange(n), copies)
    source[copies] = rng.choice(others, size=len(copies))
    rows: list[dict[str, str]] = []
    for _ in range(n):
        ask = " ".join(prompts[j] for j in rng.integers(len(prompts), size=2))
        say = " ".join(answers[j] for j in rng.integers(len(answers), size=int(rng.integers(3, 6))))
        rows.append({"instruction": ask, "input": "", "output": say})
    for i in copies:
        original, edits = rows[int(source[i])], int(rng.integers(1, 4))
        split = int(rng.integers(0, edits + 1))  # the edits fall on the instruction or the response
        rows[i] = {
            "instruction": edited(original["instruction"], rng, vocabulary, split),
            "input": "",
            "output": edited(original["output"], rng, vocabulary, edits - split),
        }
    with path.open("w", encoding="utf-8") as out:
        for i, row in enumerate(rows):
            out.write(json.dumps({"id": f"m{i}", **row}) + "\n")
    np.save(truth, source)
    return path, source


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    """Instruction and response of each row, as the scorer's ``field=both`` joins them."""
    from core.score.minhash import row_texts

    with path.open(encoding="utf-8") as handle:  # only the rows asked for: the peak RSS is the implementation's
        rows = [json.loads(line) for line in itertools.islice(handle, limit) if line.strip()]
    return row_texts([r["instruction"] for r in rows], [r["input"] for r in rows], [r["output"] for r in rows], "both")


def quality_of(groups: np.ndarray, source: np.ndarray) -> dict[str, float]:
    """Recall of the planted copies and the false-group rate of the rows that are neither copy nor copied."""
    copies = np.flatnonzero(source >= 0)
    recall = float((groups[copies] == groups[source[copies]]).mean()) if len(copies) else float("nan")
    plain = np.ones(len(groups), dtype=bool)
    plain[copies] = plain[source[copies]] = False
    sizes = np.bincount(np.unique(groups, return_inverse=True)[1])[np.unique(groups, return_inverse=True)[1]]
    return {"recall": recall, "false_group_rate": float((sizes[plain] > 1).mean())}


def peak_rss() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) * 1024
    return float("nan")


# ---------------------------------------------------------------- the implementations (child processes)


def numpy_signatures(texts: list[str], size: int, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """MinHash with numpy alone: per permutation the multiply-shift hash (a*x + b) >> 32 of every shingle hash
    of a batch, then each row's minimum with ``np.minimum.reduceat``."""
    from core.score.minhash import BATCH_ROWS, shingle_hashes

    rng = np.random.default_rng(1)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sig = np.full((len(texts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    too_short = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(texts), BATCH_ROWS):
        hashes, offsets = shingle_hashes(texts[start : start + BATCH_ROWS], size)
        counts = np.diff(offsets.astype(np.int64))
        filled = np.flatnonzero(counts > 0)
        too_short[start : start + len(counts)] = counts == 0
        if not len(filled):
            continue
        with np.errstate(over="ignore"):
            for j in range(num_perm):
                values = ((hashes * a[j] + b[j]) >> np.uint64(32)).astype(np.uint32)
                sig[start + filled, j] = np.minimum.reduceat(values, offsets[:-1].astype(np.int64)[filled])
    return sig, too_short


def datasketch_groups(texts: list[str], size: int, num_perm: int, threshold: float) -> tuple[np.ndarray, float, float]:
    """(groups, signature seconds, LSH + grouping seconds) with datasketch's MinHash and MinHashLSH."""
    from datasketch import MinHash, MinHashLSH
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from core.score.minhash import words as words_of

    start = time.perf_counter()
    hashes = []
    for text in texts:
        words = words_of(text)
        shingles = {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch(list(shingles))
        hashes.append(m if shingles else None)
    signed = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, m in enumerate(hashes):
        if m is not None:
            lsh.insert(i, m)
    left, right = [], []
    for i, m in enumerate(hashes):
        if m is not None:
            for j in lsh.query(m):
                if j > i and m.jaccard(hashes[j]) >= threshold:
                    left.append(i)
                    right.append(j)
    n = len(texts)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    return labels, signed - start, time.perf_counter() - signed


def child_implementation(args: argparse.Namespace) -> dict[str, Any]:
    from core.score import minhash

    source = np.load(str(args.file).replace(".jsonl", ".npy"))[: args.rows]
    source = np.where(source < args.rows, source, -1)
    texts = read_texts(args.file, args.rows)
    rank = np.arange(len(texts))
    result: dict[str, Any] = {"rows": len(texts)}
    if args.child == "datasketch":
        labels, signing, grouping = datasketch_groups(texts, 5, 128, 0.7)
        result.update(signature_seconds=signing, group_seconds=grouping, **quality_of(labels, source))
    else:
        start = time.perf_counter()
        make = minhash.signatures if args.child == "rensa" else numpy_signatures
        sig, too_short = make(texts, 5, 128)
        signed = time.perf_counter()
        groups = minhash.group_rows(sig, too_short, 0.7, rank)
        result.update(signature_seconds=signed - start, group_seconds=time.perf_counter() - signed)
        result.update(quality_of(groups.group, source))
        if args.child == "rensa":
            result["settings"] = settings_grid(texts, source, rank)
            result["exact_jaccard"] = exact_jaccard(texts, source)
    result["peak_rss_bytes"] = peak_rss()
    return result


def settings_grid(texts: list[str], source: np.ndarray, rank: np.ndarray) -> list[dict[str, Any]]:
    """Recall and false-group rate per shingle size and threshold (rensa signatures, 128 permutations)."""
    from core.score import minhash

    rows = []
    for size in (2, 3, 5):
        sig, too_short = minhash.signatures(texts, size, 128)
        for threshold in (0.5, 0.6, 0.7, 0.8):
            groups = minhash.group_rows(sig, too_short, threshold, rank)
            rows.append({"shingle": size, "threshold": threshold, **quality_of(groups.group, source)})
    return rows


def exact_jaccard(texts: list[str], source: np.ndarray, pairs: int = 2000) -> dict[str, dict[str, float]]:
    """The exact Jaccard of up to ``pairs`` planted pairs and as many random pairs, per shingle kind."""
    from core.score.minhash import words as words_of

    def shingles(text: str, kind: str, size: int) -> set[Any]:
        words = words_of(text)
        if kind == "char":
            joined = " ".join(words)
            return {joined[i : i + size] for i in range(len(joined) - size + 1)}
        return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}

    rng = np.random.default_rng(0)
    copies = np.flatnonzero(source >= 0)[:pairs]
    strangers = rng.integers(len(texts), size=(len(copies), 2))
    out = {}
    for kind, size in (("word", 2), ("word", 3), ("word", 5), ("char", 5), ("char", 9)):

        def jaccard(i: int, j: int) -> float:
            a, b = shingles(texts[i], kind, size), shingles(texts[j], kind, size)  # noqa: B023
            return len(a & b) / max(len(a | b), 1)

        planted = np.array([jaccard(int(i), int(source[i])) for i in copies])
        random_pairs = np.array([jaccard(int(i), int(j)) for i, j in strangers])
        out[f"{kind}-{size}"] = {
            "planted_median": float(np.median(planted)),
            "planted_share_at_0.7": float((planted >= 0.7).mean()),
            "planted_share_at_0.5": float((planted >= 0.5).mean()),
            "random_p99": float(np.quantile(random_pairs, 0.99)),
        }
    return out


def child_store(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest and store the rows as ``prepare`` does, stopping before the embedding."""
    from core import prepare as pipeline
    from core.progress import Cancelled, Progress
    from core.storage import datasets as ds
    from core.storage.database import Store

    stored = []
    insert = ds.insert_dataset

    def insert_and_stop(*a: Any, **k: Any) -> Any:
        stored.append(True)
        return insert(*a, **k)

    ds.insert_dataset = insert_and_stop  # type: ignore[assignment]
    start = time.perf_counter()
    options = pipeline.PrepareOptions(name="minhash", embedder={"name": "hashing"})
    with contextlib.suppress(Cancelled):  # stopped once the rows are stored: no embedding, no sweep
        pipeline.prepare(Store(args.workspace), args.file, options, Progress(should_stop=lambda: bool(stored)))
    return {"seconds": time.perf_counter() - start}


def child_scorer(args: argparse.Namespace) -> dict[str, Any]:
    """The whole scorer on the stored rows: read, signatures, LSH, groups, store."""
    from core.score.scorers import MinHashScorer
    from core.score.scoring import score_dataset
    from core.storage import datasets as ds
    from core.storage import scores as score_store
    from core.storage.database import Store

    store = Store(args.workspace)
    dataset = ds.get_dataset(store, "minhash")
    base = peak_rss()
    start = time.perf_counter()
    report = score_dataset(store, dataset, MinHashScorer())
    seconds = time.perf_counter() - start
    peak = peak_rss()
    values = score_store.dataset_scores(store, dataset.dataset_id, [report.score_key])
    source = np.load(str(args.file).replace(".jsonl", ".npy"))
    found = quality_of(values.minhash_group.to_numpy(), source)
    groups = values.minhash_group.value_counts()
    return {
        "rows": int(dataset.n_rows),
        "seconds": seconds,
        "peak_rss_bytes": peak,
        "rss_before_bytes": base,
        "groups_of_two_or_more": int((groups > 1).sum()),
        "flagged": int(values.minhash_duplicate.sum()),
        **found,
    }


def run_child(kind: str, args: argparse.Namespace, file: Path, rows: int, workspace: Path | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        status = Path(handle.name)
    command = [sys.executable, "-m", "bench.minhash", "--child", kind, "--file", str(file), "--rows", str(rows)]
    command += ["--status", str(status)] + (["--workspace", str(workspace)] if workspace else [])
    log(f"{kind}: {rows:,} rows")
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    if done.returncode != 0:
        return {"failed": f"exit status {done.returncode}"}
    return json.loads(status.read_text())


def scorer_run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """Store the rows of ``path`` in a fresh workspace (one process), then run the scorer on them (another)."""
    rows = sum(1 for _ in path.open(encoding="utf-8"))
    with tempfile.TemporaryDirectory(dir=OUT) as folder:
        workspace = Path(folder) / "ws"
        stored = run_child("store", args, path, rows, workspace)
        return {"store_seconds": stored.get("seconds"), **run_child("scorer", args, path, rows, workspace)}


def at_million(big: dict[str, Any], small: dict[str, Any], name: str) -> float:
    """``name`` at 1M rows on the line through the two sizes' figures."""
    slope = (big[name] - small[name]) / (big["rows"] - small["rows"])
    return big[name] + slope * (1_000_000 - big["rows"])


# ---------------------------------------------------------------- report


def verdict(measured: float, target: float, rows: int) -> str:
    if rows >= 1_000_000:
        return "PASS" if measured * 1_000_000 / rows <= target else "FAIL"
    return "not measured at 1M"


def report(results: dict[str, Any]) -> None:
    print(f"load average at start {results['load_start']}, end {results['load_end']}")
    for name, r in results["implementations"].items():
        if "failed" in r:
            print(f"{name:11s} FAILED ({r['failed']})")
            continue
        print(
            f"{name:11s} {r['rows']:,} rows: signatures {r['rows'] / r['signature_seconds']:,.0f} rows/s, "
            f"LSH + groups {r['rows'] / r['group_seconds']:,.0f} rows/s, peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB, "
            f"recall {r['recall']:.3f}, false-group rate {r['false_group_rate']:.4f}"
        )
    rensa = results["implementations"].get("rensa", {})
    for row in rensa.get("settings", []):
        print(
            f"  shingle {row['shingle']} threshold {row['threshold']}: recall {row['recall']:.3f}, "
            f"false-group rate {row['false_group_rate']:.4f}"
        )
    for name, row in rensa.get("exact_jaccard", {}).items():
        print(
            f"  exact Jaccard {name}: planted median {row['planted_median']:.2f}, >= 0.7 {row['planted_share_at_0.7']:.2f}, "
            f">= 0.5 {row['planted_share_at_0.5']:.2f}; random pairs p99 {row['random_p99']:.3f}"
        )
    scorer = results.get("scorer")
    if scorer and "failed" not in scorer:
        n = scorer["rows"]
        per_million = 1_000_000 / n
        print(
            f"scorer {n:,} rows: {scorer['seconds']:.1f} s, peak RSS {scorer['peak_rss_bytes'] / 1e9:.2f} GB, "
            f"recall {scorer['recall']:.3f}, false-group rate {scorer['false_group_rate']:.4f}, "
            f"{scorer['flagged']:,} flagged in {scorer['groups_of_two_or_more']:,} groups"
        )
        small = results.get("scorer_small")
        if n < 1_000_000 and small and "failed" not in small:
            print(
                f"scorer {small['rows']:,} rows: {small['seconds']:.1f} s, peak RSS {small['peak_rss_bytes'] / 1e9:.2f} GB; "
                f"1M on the line through both sizes: {at_million(scorer, small, 'seconds'):.0f} s, "
                f"{at_million(scorer, small, 'peak_rss_bytes') / 1e9:.2f} GB "
                f"(in proportion to {n:,} rows: {scorer['seconds'] * per_million:.0f} s)"
            )
        print(f"target 1M rows in under {TARGET_SECONDS_1M} s: {verdict(scorer['seconds'], TARGET_SECONDS_1M, n)}")
        print(f"target 1M rows under 6 GB peak RSS: {verdict(scorer['peak_rss_bytes'], TARGET_PEAK_BYTES_1M, n)}")
    elif scorer:
        print(f"scorer FAILED ({scorer['failed']}): targets FAIL")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        children = {"store": child_store, "scorer": child_scorer}
        result = children.get(args.child, child_implementation)(args)
        args.status.write_text(json.dumps(result))
        return
    path, _ = build_rows(args.rows, args.planted, args.seed, args.data_dir)
    compare = min(args.compare_rows or args.rows, args.rows, 100_000)
    results: dict[str, Any] = {"rows": args.rows, "compare_rows": compare, "load_start": os.getloadavg()}
    results["implementations"] = {
        name: run_child(name, args, path, compare) for name in args.libraries.split(",") if name
    }
    if not args.skip_scorer:
        results["scorer"] = scorer_run(args, path)
        if args.rows < 1_000_000:  # a second size, so the 1M figures come from a slope, not a ratio
            small = max(args.rows // 5, 1000)
            results["scorer_small"] = scorer_run(args, build_rows(small, args.planted, args.seed, args.data_dir)[0])
    results["load_end"] = os.getloadavg()
    report(results)
    log(f"wrote {write_json(results, 'minhash')}")


if __name__ == "__main__":
    main()
