"""Random vs kMQ vs iterative kMQ vs IterIT at the same budget and seed: fine-tune, evaluate, print the table.

This is a result, not a test. On a seeded sample of ``--pool`` rows of the top-level ``*.jsonl`` of the data
dir (a mix of every source), prepared with the default options and scored with the heuristics, four runs
are launched one after the other through the same code a user's runs take (``core.runs.run``):

- ``random``: ``--budget`` examples drawn uniformly, fine-tuned ``--epochs`` epochs;
- ``balanced_random``: uniform within the k-means clusters at the dataset's k, quotas proportional to size;
- ``kmq``: static kMQ (proportional allocation, sampling by the combined quality), same training;
- ``iterative_kmq``: ``--rounds`` rounds of budget / rounds, each fine-tuned from the base on the cumulative
  selection (``--epochs`` epochs per round), perplexity-difference cluster reweighting;
- ``iterit``: ``--epochs`` epochs, each on its own greedy IFD x TF-IDF selection of ``--budget`` examples,
  IFD of the whole pool with the base model first, then the top 3 x budget window re-scored every epoch
  with the model being trained (one learning-rate schedule across the epochs).

Each is evaluated on the first ``--eval-limit`` rows of every ``--eval`` file (response loss; exact match
where rows carry ``answer``); the base model is evaluated once per set and cached. The table gives each
run's metric and its change against the base. Defaults fit in about half an hour on the 2-core CPU:

    .venv/bin/python -m bench.replicate

``--seeds 0 1 2`` runs all of it once per seed (each in its own workspace; the seed draws the pool sample, the
selection and the training order) and ends with each arm's mean and standard deviation of the loss change, and
its paired difference against random with a 95 % Student-t interval (bench/seeds.py). Sized for three seeds in about an hour
(an estimate from the one-seed timings): ``--pool 400 --budget 40 --eval-limit 20 --seeds 0 1 2``.

Results are printed and written as JSON to ``bench/results/replicate-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]

from bench.prepare import DATA_DIR, log, machine_info, pool_lines, seeded_subset, write_json  # noqa: E402

ARMS = ("random", "balanced_random", "kmq", "iterative_kmq", "iterit")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    data = DATA_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=data)
    parser.add_argument("--pool", type=int, default=600, help="pool rows (seeded sample of every source)")
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2, help="iterative kMQ rounds")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="the seed of a single run (see --seeds)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="run the whole experiment once per seed (pool sample, selection, training order) and report "
        "mean, std and the paired difference against random with a 95 %% interval (default: --seed alone)",
    )
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--model", default=None, help="default: the packaged SmolLM2-135M-Instruct")
    parser.add_argument(
        "--eval", action="append", default=None, help="evaluation JSONL (repeatable; default gsm8k + mmlu)"
    )
    parser.add_argument("--eval-limit", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--workspace", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--arms", nargs="*", default=list(ARMS))
    return parser.parse_args(argv)


def prepare_pool(workspace: Path, args: argparse.Namespace) -> None:
    from core import prepare as pipeline
    from core.score import scoring
    from core.storage import datasets as ds
    from core.storage.database import Store

    lines = seeded_subset(pool_lines(args.data_dir), args.pool, args.seed)
    path = workspace / "pool.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = Store(workspace)
    pipeline.prepare(store, path, pipeline.PrepareOptions(name="pool", seed=args.seed))
    scoring.score_dataset(store, ds.get_dataset(store, "pool"), scoring.build_scorer("heuristics"))


def spec_for(arm: str, args: argparse.Namespace, evals: list[str]) -> Any:
    from core.runs.run import RunSpec

    config: dict[str, Any] = {"seed": args.seed, "max_length": args.max_length, "epochs": args.epochs}
    config |= {"batch_size": 8, "grad_accum": 1, "learning_rate": 2e-4}
    if args.model:
        config["model"] = args.model
    common = {
        "dataset": "pool",
        "budget": float(args.budget),
        "seed": args.seed,
        "config": config,
        "eval_paths": evals,
        "eval_limit": args.eval_limit,
        "max_new_tokens": args.max_new_tokens,
        "name": arm,
    }
    if arm in ("random", "balanced_random", "kmq"):  # balanced_random: uniform within the clusters
        return RunSpec(strategy=arm, **common)
    if arm == "iterative_kmq":
        return RunSpec(loop="iterative_kmq", rounds=args.rounds, loop_params={"max_new_tokens": 32}, **common)
    return RunSpec(loop="iterit", rounds=args.epochs, **{**common, "config": {**config, "epochs": 1}})


def run_arm(workspace: Path, spec: Any) -> dict[str, Any]:
    from core import jobs
    from core.runs.run import launch_run

    started = time.perf_counter()
    run_id = launch_run(workspace, spec)
    status = jobs.read_status(workspace, run_id)
    while status.active:
        time.sleep(2)
        status = jobs.read_status(workspace, run_id)
    seconds = time.perf_counter() - started
    if status.state != "done":
        log(jobs.read_log(workspace, run_id)[-3000:])
    return {"arm": spec.name, "run_id": run_id, "state": status.state, "error": status.error, "seconds": seconds}


def run_seed(args: argparse.Namespace, evals: list[str], scratch: Path) -> dict[str, Any]:
    """The whole experiment at ``args.seed`` in its own workspace: the pool, then every arm."""
    from core.runs.run import compare_runs

    workspace = (args.workspace or scratch) / f"seed-{args.seed}"
    workspace.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log(f"seed {args.seed}: preparing a {args.pool}-row pool in {workspace}")
    prepare_pool(workspace, args)
    prepare_seconds = time.perf_counter() - started
    arms = []
    for arm in args.arms:
        log(f"seed {args.seed}: {arm}: running")
        arms.append(run_arm(workspace, spec_for(arm, args, evals)))
        log(f"{arm}: {arms[-1]['state']} in {arms[-1]['seconds'] / 60:.1f} min")
    table = compare_runs(workspace, [a["run_id"] for a in arms if a["state"] == "done"])
    return {
        "seed": args.seed,
        "prepare_seconds": prepare_seconds,
        "arms": arms,
        "table": [{**row, "seed": args.seed, "arm": row["label"]} for row in table.to_dict(orient="records")],
        "seconds": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from bench.seeds import as_records, format_table, summarise

    args = parse_args(argv)
    evals = [
        str(p)
        for p in (args.eval or [args.data_dir / "eval" / "gsm8k_test.jsonl", args.data_dir / "eval" / "mmlu_dev.jsonl"])
    ]
    started = time.perf_counter()
    seeds = args.seeds or [args.seed]
    with tempfile.TemporaryDirectory(prefix="bench-replicate-") as scratch:
        runs = [run_seed(argparse.Namespace(**{**vars(args), "seed": s}), evals, Path(scratch)) for s in seeds]
    rows = [row for run in runs for row in run["table"]]
    summary = summarise(rows, "loss_change", ["eval_set"])
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "seeds": runs,
        "summary": as_records(summary),
        "total_seconds": time.perf_counter() - started,
        "machine": machine_info(),
    }
    for run in runs:
        print_results(results["args"], run)
    print(f"\n== loss change over seeds {seeds} (negative: the run lowered the loss) ==")
    print(format_table(summary, "loss change"))
    print(f"total {results['total_seconds'] / 60:.1f} min")
    print(f"\nresults written to {write_json(results, 'replicate').relative_to(ROOT)}")
    return 0


def print_results(args: dict[str, Any], results: dict[str, Any]) -> None:
    print(
        f"\n== {args['pool']}-row pool, budget {args['budget']}, seed {results['seed']}, {args['epochs']} epochs, "
        f"eval: first {args['eval_limit']} rows per set =="
    )
    for arm in results["arms"]:
        print(f"{arm['arm']:<16} {arm['state']:<10} {arm['seconds'] / 60:5.1f} min {arm['error'] or ''}")
    columns = ["label", "eval_set", "base_loss", "run_loss", "loss_change", "base_accuracy", "run_accuracy"]
    if results["table"]:
        import pandas as pd

        table = pd.DataFrame(results["table"])[columns]
        print()
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(json.dumps({"prepare_seconds": round(results["prepare_seconds"], 1)}))


if __name__ == "__main__":
    raise SystemExit(main())
