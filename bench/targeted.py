"""Targeted selection on a held-out task: G2IS vs LESS vs embedding kNN vs random at 1 % and 5 % of a pool.

This is a result, not a test. The question: when a curator names a target task with a few dozen of its
rows, do the targeted strategies pick pool examples whose fine-tuning helps on *other* rows of that task
more than a random pick of the same size does?

1. A seeded sample of ``--pool`` rows of the top-level ``*.jsonl`` of the data dir (a mix of every source)
   is prepared and scored exactly as ``bench/replicate.py`` does, in a fresh temporary workspace.
2. The target task file (``--target-file``, GSM8K test by default) is split into two temporary files: its
   first ``--target-rows`` rows are the TARGET set that steers selection, the next ``--eval-limit`` rows
   the held-out EVALUATION set, so selection never sees an evaluation row. ``--eval`` adds more sets.
3. LoRA-gradient features of the pool and of the target set are computed once with
   ``core.gradients.pipeline.compute_gradients`` (default ``GradientConfig``, ``max_length`` =
   ``--max-length``); its report (examples/s, seconds) is printed.
4. Arms ``random``, ``balanced_random`` (uniform within the k-means clusters), ``embedding_knn``, ``rds_plus``
   (base-model hidden states, round-robin over the target rows; its pool features are computed once per seed
   like the gradients), ``less`` and ``g2is`` (its defaults: the walk may pick fewer than the budget, and the
   number actually trained on is reported) at every ``--fractions`` of the pool (as a count: round(fraction x
   pool), at least 1), each launched as a run through ``core.runs.run`` (the code a user's runs take):
   ``--epochs`` epochs of LoRA, evaluated on the held-out rows (response loss; exact match of the final answer
   with greedy decoding) against the base model.
5. With ``--seeds 0 1 2`` all of that runs once per seed, each in its own workspace: the seed draws the pool
   sample, the selection and the training order (the target and held-out rows stay the same). The summary
   gives each arm's mean and standard deviation of the held-out loss change, and its paired difference against
   random with a 95 % Student-t interval (bench/seeds.py).

Measured on the 2-core CPU under load (a test suite alongside): ``--pool 400`` with four arms took 47 minutes,
16 of them for the gradient features (0.5 examples/s); the 600-row default takes longer. Sized for three seeds in
about an hour on a quiet box (an estimate from those timings):

    .venv/bin/python -m bench.targeted --pool 200 --fractions 0.05 --seeds 0 1 2

Results are printed and written as JSON to ``bench/results/targeted-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]

from bench.prepare import DATA_DIR, log, machine_info, write_json  # noqa: E402
from bench.replicate import prepare_pool, run_arm  # noqa: E402

ARMS = ("random", "balanced_random", "embedding_knn", "rds_plus", "less", "g2is")
TARGETED = frozenset({"embedding_knn", "rds_plus", "less", "g2is"})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    data = DATA_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=data)
    parser.add_argument("--pool", type=int, default=600, help="pool rows (seeded sample of every source)")
    parser.add_argument("--target-file", type=Path, default=data / "eval" / "gsm8k_test.jsonl")
    parser.add_argument("--target-rows", type=int, default=32, help="first rows of the file: the target set")
    parser.add_argument("--eval-limit", type=int, default=30, help="the next rows of the file: held out")
    parser.add_argument("--eval", action="append", default=[], help="extra evaluation JSONL (repeatable)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05])
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
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--workspace", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--arms", nargs="*", default=list(ARMS))
    return parser.parse_args(argv)


def split_target(path: Path, target_rows: int, eval_rows: int, folder: Path) -> tuple[Path, Path]:
    """The first ``target_rows`` rows of ``path`` (the target set) and the next ``eval_rows`` (held out)."""
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    if len(lines) < target_rows + eval_rows:
        raise SystemExit(f"{path} has {len(lines)} rows; {target_rows} + {eval_rows} are needed")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.stem}_target.jsonl"
    heldout = folder / f"{path.stem}_heldout.jsonl"
    target.write_text("\n".join(lines[:target_rows]) + "\n", encoding="utf-8")
    heldout.write_text("\n".join(lines[target_rows : target_rows + eval_rows]) + "\n", encoding="utf-8")
    return target, heldout


def gradient_features(workspace: Path, target: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Pool and target gradient features (warmup, features, graph) with the default configuration."""
    from core.gradients.pipeline import GradientConfig, compute_gradients
    from core.storage import datasets as ds
    from core.storage.database import Store

    config = GradientConfig(max_length=args.max_length)
    if args.model:
        config = dataclasses.replace(config, model=args.model)
    store = Store(workspace)
    report = compute_gradients(store, ds.get_dataset(store, "pool"), config, [target])
    return {**report, "config": dataclasses.asdict(config)}


def budget_of(fraction: float, pool: int) -> int:
    return max(1, round(fraction * pool))


def spec_for(arm: str, budget: int, target: Path, evals: list[str], args: argparse.Namespace) -> Any:
    from core.runs.run import RunSpec

    config: dict[str, Any] = {"seed": args.seed, "max_length": args.max_length, "epochs": args.epochs}
    config |= {"batch_size": 8, "grad_accum": 1, "learning_rate": 2e-4}
    if args.model:
        config["model"] = args.model
    return RunSpec(
        dataset="pool",
        strategy=arm,
        strategy_params={"target": str(target)} if arm in TARGETED else {},
        budget=float(budget),
        seed=args.seed,
        config=config,
        eval_paths=evals,
        eval_limit=None,  # the held-out file holds just the evaluation rows
        max_new_tokens=args.max_new_tokens,
        name=f"{arm}@{budget}",
    )


def arm_rows(workspace: Path, arm: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluation set of a finished run: examples trained on, base and run loss and exact match."""
    from core import jobs
    from core.runs.run import evaluations

    result = jobs.read_status(workspace, arm["run_id"]).result or {}
    rows = []
    for name, pair in evaluations(workspace, arm["run_id"]).items():
        base, run = pair.get("base", {}), pair.get("run", {})
        rows.append(
            {
                "arm": arm["arm"],
                "fraction": arm["fraction"],
                "budget": arm["budget"],
                "examples": result.get("examples"),
                "eval_set": name,
                "base_loss": base.get("loss"),
                "run_loss": run.get("loss"),
                "loss_change": None if None in (run.get("loss"), base.get("loss")) else run["loss"] - base["loss"],
                "base_correct": _correct(base),
                "run_correct": _correct(run),
                "answered": run.get("n_answered"),
                "minutes": arm["seconds"] / 60,
            }
        )
    return rows


def _correct(summary: dict[str, Any]) -> int | None:
    if summary.get("accuracy") is None:
        return None
    return round(summary["accuracy"] * summary["n_answered"])


def run_seed(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """The whole experiment at ``args.seed`` in its own workspace: pool, features, every arm at every size."""
    started = time.perf_counter()
    workspace = (args.workspace or scratch) / f"seed-{args.seed}"
    workspace.mkdir(parents=True, exist_ok=True)
    target, heldout = split_target(args.target_file, args.target_rows, args.eval_limit, scratch / "task")
    evals = [str(heldout), *map(str, args.eval)]
    log(f"seed {args.seed}: preparing a {args.pool}-row pool in {workspace}")
    prepare_pool(workspace, args)
    prepare_seconds = time.perf_counter() - started
    log(f"gradient features of the pool and of {target.name}")
    gradients = gradient_features(workspace, target, args)
    log(f"gradients: {gradients}")
    hidden = hidden_state_features(workspace, args) if "rds_plus" in args.arms else None
    arms = []
    for fraction in args.fractions:
        budget = budget_of(fraction, args.pool)
        for arm in args.arms:
            log(f"seed {args.seed}: {arm} at {fraction:g} ({budget} examples): running")
            done = run_arm(workspace, spec_for(arm, budget, target, evals, args))
            arms.append({**done, "arm": arm, "fraction": fraction, "budget": budget})
            log(f"{arm} at {fraction:g}: {done['state']} in {done['seconds'] / 60:.1f} min")
    table = [{**row, "seed": args.seed} for arm in arms if arm["state"] == "done" for row in arm_rows(workspace, arm)]
    return {
        "seed": args.seed,
        "prepare_seconds": prepare_seconds,
        "gradients": gradients,
        "hidden_states": hidden,
        "arms": arms,
        "table": table,
        "seconds": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from bench.seeds import as_records, summarise

    args = parse_args(argv)
    started = time.perf_counter()
    seeds = args.seeds or [args.seed]
    with tempfile.TemporaryDirectory(prefix="bench-targeted-") as scratch:
        runs = [run_seed(argparse.Namespace(**{**vars(args), "seed": seed}), Path(scratch)) for seed in seeds]
    rows = [row for run in runs for row in run["table"]]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "seeds": runs,
        "summary": as_records(summarise(rows, "loss_change", ["eval_set", "fraction"])),
        "total_seconds": time.perf_counter() - started,
        "machine": machine_info(),
    }
    for run in runs:
        print_results(results["args"], run)
    print_summary(rows, results["total_seconds"])
    print(f"\nresults written to {write_json(results, 'targeted').relative_to(ROOT)}")
    return 0


def hidden_state_features(workspace: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The pool's RDS+ hidden states (base model, default settings); the target's are computed at selection."""
    from core.hidden.pipeline import HiddenConfig, compute_hidden_states
    from core.storage import datasets as ds
    from core.storage.database import Store

    config = HiddenConfig(max_length=args.max_length)
    if args.model:
        config = dataclasses.replace(config, model=args.model)
    store = Store(workspace)
    return dict(compute_hidden_states(store, ds.get_dataset(store, "pool"), config))


def print_summary(rows: list[dict[str, Any]], seconds: float) -> None:
    """Mean, spread and paired difference against random over the seeds, per evaluation set and size."""
    from bench.seeds import format_table, summarise

    seeds = sorted({row["seed"] for row in rows})
    print(f"\n== held-out loss change over seeds {seeds} (negative: the run lowered the loss) ==")
    print(format_table(summarise(rows, "loss_change", ["eval_set", "fraction"]), "loss change"))
    print(f"total {seconds / 60:.1f} min")


def print_results(args: dict[str, Any], results: dict[str, Any]) -> None:
    grad = results["gradients"]
    print(
        f"\n== {args['pool']}-row pool, target: first {args['target_rows']} rows of {Path(args['target_file']).name}, "
        f"held out: the next {args['eval_limit']}, seed {results['seed']}, {args['epochs']} epochs =="
    )
    print(
        f"gradient features: {grad['rows']} pool rows, d {grad['d']}, {grad['examples_per_second']} examples/s, "
        f"{grad['seconds']} s in all (warmup, features, graph, target)"
    )
    for arm in results["arms"]:
        if arm["state"] != "done":
            print(f"{arm['arm']:<14} {arm['fraction']:<5g} {arm['state']:<10} {arm['error'] or ''}")
    header = f"{'arm':<14} {'frac':>5} {'budget':>6} {'trained':>7} {'eval set':<20} {'loss':>7} {'change':>8}"
    print("\n" + header + f" {'exact match':>12} {'min':>5}")
    bases: dict[str, dict[str, Any]] = {}
    for row in results["table"]:  # the base model's figures are the same in every run's row of a set
        bases.setdefault(row["eval_set"], row)
    for name, row in bases.items():
        base = "-" if row["base_loss"] is None else f"{row['base_loss']:.4f}"
        match = "-" if row["base_correct"] is None else f"{row['base_correct']}/{row['answered']}"
        print(f"{'base model':<14} {'':>5} {'':>6} {0:>7} {name:<20} {base:>7} {'':>8} {match:>12}")
    for row in results["table"]:
        print(_table_line(row))
    print(
        f"\nprepare {results['prepare_seconds']:.0f} s; this seed {results['seconds'] / 60:.1f} min; "
        "base loss and exact match are the untuned model's on the same rows"
    )


def _table_line(row: dict[str, Any]) -> str:
    loss = "-" if row["run_loss"] is None else f"{row['run_loss']:.4f}"
    change = "-" if row["loss_change"] is None else f"{row['loss_change']:+.4f}"
    match = (
        "-" if row["run_correct"] is None else f"{row['run_correct']}/{row['answered']} (base {row['base_correct']})"
    )
    return (
        f"{row['arm']:<14} {row['fraction']:>5g} {row['budget']:>6} {row['examples']!s:>7} {row['eval_set']:<20} "
        f"{loss:>7} {change:>8} {match:>12} {row['minutes']:5.1f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
