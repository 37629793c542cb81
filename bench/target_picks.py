"""What the targeted strategies pick toward a GSM8K target: the share of the target's own task in their picks.

This is a result, not a test, and it trains nothing (``bench/targeted.py`` fine-tunes on the picks). The
question (issue 15): on a target with real solutions, LESS picked mostly maths rows and G2IS almost none;
which part of G2IS (docs/algorithms.md 4.4-4.5) loses the task?

1. A pool of ``--maths`` seeded GSM8K train rows and ``--per-file`` seeded rows of each of eight other files
   (Alpaca-Libre, Code Alpaca, Cherry Alpaca, GPTeacher Roleplay and four FLAN CoT sets) is prepared with the
   model-free hashing embedder in the workspace.
2. ``--draws`` targets of ``--target-rows`` rows each: consecutive blocks of the GSM8K test file (with their
   solutions). Gradient features of the pool and of every target (default ``GradientConfig``,
   ``max_length`` = ``--max-length``) are computed once, cached in the workspace.
3. For each target and ``--budgets``, every arm selects through ``run_selection``; the GSM8K share of its
   picks is printed beside the pool's base rate. The arms are LESS, embedding kNN, random (seeds 0-2), G2IS
   with its defaults and with each flag changed (``center``, ``orient``, ``pca_ratio``, ``refill``), and the
   "w/o graph" ablation.
4. Diagnostics of the target's core knowledge: the number of components, the cosine of the first with the
   mean target gradient (the direction LESS ranks by), and the GSM8K share of the rows most aligned with it.

    .venv/bin/python -m bench.target_picks [--workspace DIR]

About 25 minutes on the 2-core CPU under load, nearly all of it the 600 + 90 gradient features; a rerun on
the same workspace reuses them. Results are written to ``bench/results/target_picks-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np

from bench.prepare import DATA_DIR, log, write_json

OTHERS = (
    "alpaca_libre.jsonl",
    "code_alpaca_2k.jsonl",
    "flan_cot_aqua.jsonl",
    "flan_cot_ecqa.jsonl",
    "flan_cot_creak.jsonl",
    "flan_cot_strategyqa.jsonl",
    "cherry_alpaca_5pct.jsonl",
    "gpteacher_roleplay.jsonl",
)
# (label, strategy, parameters): G2IS's defaults, then one flag changed at a time, then the ablation
ARMS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("less", "less", {}),
    ("embedding_knn", "embedding_knn", {}),
    ("g2is", "g2is", {}),
    ("g2is center=False", "g2is", {"center": False}),
    ("g2is orient=False", "g2is", {"orient": False}),
    ("g2is center=False orient=False", "g2is", {"center": False, "orient": False}),
    ("g2is pca_ratio=0.9", "g2is", {"pca_ratio": 0.9}),
    ("g2is refill=less_topk", "g2is", {"refill": "less_topk"}),
    ("g2is_no_graph", "g2is_no_graph", {}),
    ("g2is_no_graph center=False", "g2is_no_graph", {"center": False}),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--workspace", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--maths", type=int, default=200, help="GSM8K train rows in the pool")
    parser.add_argument("--per-file", type=int, default=50, help="rows of each other file in the pool")
    parser.add_argument("--target-rows", type=int, default=30)
    parser.add_argument("--draws", type=int, default=3, help="targets: consecutive blocks of GSM8K test")
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 60])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def read_rows(path: Path) -> list[dict[str, Any]]:
    # split on "\n" only: some rows hold U+2028, which str.splitlines would split a JSON line on
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def build_pool(args: argparse.Namespace, workspace: Path) -> list[str]:
    """Write and prepare the pool; returns each row's source (the file's ``source`` before any ``/``)."""
    from core import prepare as pipeline
    from core.storage.database import Store

    rng = random.Random(args.seed)
    rows = rng.sample(read_rows(args.data_dir / "gsm8k_train.jsonl"), args.maths)
    for name in OTHERS:
        rows += rng.sample(read_rows(args.data_dir / name), args.per_file)
    rng.shuffle(rows)
    path = write_rows(workspace / "pool.jsonl", rows)
    options = pipeline.PrepareOptions(name="pool", seed=args.seed, embedder={"name": "hashing"})
    pipeline.prepare(Store(workspace), path, options)
    return [str(row["source"]).split("/")[0] for row in rows]


def write_targets(args: argparse.Namespace, workspace: Path) -> list[Path]:
    test = read_rows(args.data_dir / "eval" / "gsm8k_test.jsonl")
    size = args.target_rows
    return [write_rows(workspace / f"gsm8k_test_{i}.jsonl", test[i * size : (i + 1) * size]) for i in range(args.draws)]


def core_knowledge_diagnostics(workspace: Path, target: Path, maths: np.ndarray, budget: int) -> dict[str, Any]:
    """How G2IS's components relate to the mean target gradient, centred and not."""
    from core.gradients import pipeline
    from core.select import walk
    from core.storage import datasets as ds
    from core.storage import gradients as gstore
    from core.storage.database import Store

    store = Store(workspace)
    pool = pipeline.pool_set(store, ds.get_dataset(store, "pool").dataset_id)
    features = gstore.load_features(store, pool.feature_key).astype(np.float32)
    (target_set,) = pipeline.target_sets(store, pool, [target])
    targets = gstore.load_features(store, target_set.feature_key).astype(np.float32)
    mean = targets.mean(axis=0)
    mean /= np.linalg.norm(mean)
    out: dict[str, Any] = {"mean_target_cosine": float(np.mean(targets @ mean))}
    for center in (True, False):
        components, weights = walk.core_knowledge(targets, center=center)
        top = np.argsort(-(features @ components[0]), kind="stable")[:budget]
        out[f"center={center}"] = {
            "components": len(components),
            "first_weight": round(float(weights[0]), 3),
            "first_cosine_with_mean": round(float(components[0] @ mean), 3),
            "gsm8k_share_of_top_by_first": round(float(maths[top].mean()), 3),
        }
    return out


def select_share(workspace: Path, strategy: str, params: dict[str, Any], budget: int, maths: np.ndarray, seed: int):
    from core.select.run import build_strategy, run_selection
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    result = run_selection(store, ds.get_dataset(store, "pool"), build_strategy(strategy, params), budget, seed=seed)
    picks = np.asarray(result.row_idx, dtype=int)
    return (float(maths[picks].mean()) if len(picks) else float("nan")), len(picks)


def main(argv: Sequence[str] | None = None) -> int:
    from core.gradients.pipeline import GradientConfig, compute_gradients
    from core.storage import datasets as ds
    from core.storage.database import Store

    args = parse_args(argv)
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="target-picks-"))
    workspace.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sources = np.array(build_pool(args, workspace))
    maths = sources == "gsm8k"
    targets = write_targets(args, workspace)
    store = Store(workspace)
    report = compute_gradients(
        store, ds.get_dataset(store, "pool"), GradientConfig(max_length=args.max_length), targets
    )
    log(f"gradient features: {report['seconds']} s; pool GSM8K base rate {maths.mean():.3f}")
    results: dict[str, Any] = {"args": vars(args), "base_rate": float(maths.mean()), "load": os.getloadavg()}
    results["gradients"] = {key: report[key] for key in ("rows", "d", "examples_per_second", "seconds")}
    for target in targets:
        for budget in args.budgets:
            row = {"diagnostics": core_knowledge_diagnostics(workspace, target, maths, budget)}
            shares = [select_share(workspace, "random", {}, budget, maths, seed)[0] for seed in range(3)]
            row["random (seeds 0-2)"] = (round(float(np.mean(shares)), 3), budget)
            for label, strategy, params in ARMS:
                share, picked = select_share(workspace, strategy, {"target": str(target), **params}, budget, maths, 0)
                row[label] = (round(share, 3), picked)
            results[f"{target.stem} @ {budget}"] = row
            print(f"\n{target.stem}, budget {budget} (GSM8K base rate {maths.mean():.2f}): GSM8K share (picked)")
            for label, value in row.items():
                print(f"  {label:32s} {value}")
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["load_after"] = os.getloadavg()
    log(f"written to {write_json(results, 'target_picks')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
