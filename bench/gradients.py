"""Benchmark of gradient-based selection: LoRA gradient features and the gradient graph.

``--part`` picks what runs: ``features``, ``graph`` or ``all`` (the graph first, so its memory is measured
before the model is loaded).

**graph.** ``core.gradients.graph.top_neighbours`` (exact, chunked) on ``--graph-rows`` (50,000) seeded
synthetic unit features of ``--d`` (1024) dimensions stored as float16, as the pipeline stores them
(features clustered around 500 random centres, so neighbourhoods are structured like real ones), with
``--neighbours`` (M = 100) per row; then the edges written to a scratch workspace's ``gradient_edges`` and
read back as the walk reads them. Targets: build under 2 minutes and under 4 GB (peak RSS of the phase
minus the RSS before it: what the build adds). Real features for 50k rows would take hours on this CPU.

**features.** In one process, on a seeded sample of ``--examples`` rows (default 128) of the top-level
``*.jsonl`` files of the data dir (``--data-dir`` or ``CURATE_BENCH_DATA``; ``eval/`` is left out):

1. **Model.** ``core.models.lm.load_causal_lm`` (the packaged SmolLM2-135M-Instruct, float32 on the CPU) with
   the default LoRA adapter (``prepare_model(lm.model, TrainConfig())``: r 8 on q/k/v/o), then a short warmup
   of ``--warmup-steps`` AdamW steps (default 2, batch 4) through ``core.train.trainer.train_pass`` so the B
   matrices are non-zero and there are real Adam moments. Loading and warmup are outside both rates.
2. **Projection.** Building each projector and projecting 8 and 64 rows of P gradients to ``--d`` (one call
   each, after the build), so the cost of ``sparse`` and ``rademacher`` can be compared at this P.
3. **Ours.** ``core.gradients.features.gradient_features`` with the Adam moments (pool features), micro-batches
   of ``--batch-size`` (8) examples and at most ``--token-budget`` (2048) padded tokens, sorted by length,
   ``--projection`` (default sparse), with its default ``precision="auto"`` (bf16 passes on a CPU with native
   bf16, else float32); then the same with ``precision="fp32"`` (skip with ``--no-fp32``), to separate what bf16
   gives from what the batching gives. One untimed warm-up call on 2 examples each (it also draws the
   projector, which ``build_projector`` caches, so neither method pays for the draw).
4. **Naive.** The same examples, the same rendering, the same moments and projector: per example, one batch-1
   forward with full logits (``model(**batch).loss``), ``loss.backward()``, the LoRA ``.grad`` flattened,
   the Adam direction, the projection of that one row, L2 normalisation.

The methods run interleaved: the examples are split into ``--rounds`` consecutive parts (default 4), each part
goes through every method with the order rotating per round, and a rate is total examples over total seconds.
The box is shared; a single long run per method lets a neighbour's burst land on one of them.

It prints examples/s of each and the ratio to naive (target: ours >= 2x naive), the row-wise cosine of ours
(float16) to the naive features (the float32 run does the same arithmetic, so every row must agree above
0.999; bf16 passes differ by their rounding, about 0.995-0.9999 here), and per-phase wall/CPU seconds and
peak memory (a thread samples ``VmRSS`` every 0.2 s; ``ru_maxrss`` for the process; the helpers of
``bench/prepare.py``). What we found on the 2-core CPU: in float32 a batch-1 pass is already matmul-bound
and batching gains only ~10-15 %; bf16 passes gain more from it (1.5-1.7x per token from 1 to 4 examples,
nothing measurable beyond 8), and padding is held to ~5 % by batching only similar lengths. The gain over
naive comes from bf16 passes on bf16 weights, a chunked
attention in place of PyTorch's slow bf16 CPU flash kernel, and the LM head on response positions only,
fused with the loss (``core.models.fast``).

Run from the project root: ``.venv/bin/python bench/gradients.py [--examples 128] [--d 1024]``. Results are
printed and written as JSON to ``bench/results/gradients-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.prepare import DATA_DIR, PhaseMonitor, gb, log, machine_info, max_rss_bytes, verdict, write_json  # noqa: E402
from bench.score import sample_frame  # noqa: E402

TARGET_RATIO = 2.0
TARGET_MIN_COSINE = 0.999
PROJECTION_ROWS = (8, 64)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("features", "graph", "all"), default="all")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--examples", type=int, default=128, help="pool examples (seeded sample)")
    parser.add_argument("--d", type=int, default=1024, help="projected dimension")
    parser.add_argument("--projection", choices=("sparse", "rademacher"), default="sparse")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per forward/backward pass (ours)")
    parser.add_argument("--token-budget", type=int, default=2048, help="padded tokens per pass at most (ours)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--warmup-steps", type=int, default=2, help="AdamW steps (batch 4) before the features")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds, each on 1/ROUNDS of the examples")
    parser.add_argument("--no-fp32", action="store_true", help="skip the run of ours with precision=fp32")
    parser.add_argument("--no-projection-timing", action="store_true", help="skip timing the two projectors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--graph-rows", type=int, default=50_000, help="rows of the graph benchmark")
    parser.add_argument("--neighbours", type=int, default=100, help="M, neighbours per row in the graph")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- features: set-up


def warmed_up_model(lm: Any, frame: pd.DataFrame, steps: int, seed: int) -> tuple[Any, tuple[Any, Any]]:
    """The default LoRA adapter after ``steps`` AdamW steps on the frame's first examples, and its moments."""
    from core.gradients.features import adam_moments
    from core.train.trainer import TrainConfig, start_session, train_pass

    config = TrainConfig(batch_size=4, grad_accum=1, seed=seed)
    session = start_session(lm.model, lm.tokenizer, config, max(steps, 1))
    if steps > 0:
        train_pass(session, frame.iloc[: 4 * steps].reset_index(drop=True), 0)
    session.model.eval()
    return session.model, adam_moments(session.optimizer, session.model)


def time_projectors(n_params: int, d: int, seed: int) -> list[dict[str, Any]]:
    """Seconds to build each projector and to project 8 and 64 random rows (one call each)."""
    import torch

    from core.gradients.projection import build_projector

    rows = torch.randn(max(PROJECTION_ROWS), n_params, generator=torch.Generator().manual_seed(seed))
    timings = []
    for kind in ("sparse", "rademacher"):
        started = time.perf_counter()
        projector = build_projector(kind, n_params, d, seed)  # type: ignore[arg-type]
        projector.project(rows[:1])  # the sparse matrix is drawn on first use: count it in the build
        timing: dict[str, Any] = {"kind": kind, "build_seconds": time.perf_counter() - started}
        for count in PROJECTION_ROWS:
            started = time.perf_counter()
            projector.project(rows[:count])
            timing[f"project_{count}_seconds"] = time.perf_counter() - started
        timings.append(timing)
        log(f"projection {kind}: " + ", ".join(f"{k} {v:.3f}" for k, v in timing.items() if k != "kind"))
    return timings


# ---------------------------------------------------------------- features: ours and naive


def run_ours(
    model: Any, tokenizer: Any, frame: pd.DataFrame, moments: Any, args: argparse.Namespace, precision: str
) -> dict[str, Any]:
    """``gradient_features`` on the frame (pool features: with the moments), timed."""
    from core.gradients.features import gradient_features

    options = {"moments": moments, "d": args.d, "projection": args.projection, "seed": args.seed}
    options |= {"precision": precision, "max_length": args.max_length}
    options |= {"batch_size": args.batch_size, "token_budget": args.token_budget}
    cpu_started, started = time.process_time(), time.perf_counter()
    features = gradient_features(model, tokenizer, frame, **options)
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started} | {
        "features": features
    }


def run_naive(
    model: Any, tokenizer: Any, frame: pd.DataFrame, moments: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """One example at a time: full-logit forward, loss.backward(), flattened .grad, Adam direction, projection."""
    import torch

    from core.gradients.features import adam_direction, lora_parameters
    from core.gradients.projection import build_projector
    from core.models.passes import collate, render_examples

    params = [param for _, param in lora_parameters(model)]
    pad_id = tokenizer.pad_token_id
    cpu_started, started = time.process_time(), time.perf_counter()
    projector = build_projector(args.projection, sum(p.numel() for p in params), args.d, args.seed)
    features = np.zeros((len(frame), args.d), dtype=np.float32)
    for row in range(len(frame)):
        item = render_examples(tokenizer, frame.iloc[[row]], args.max_length)[0]
        model.zero_grad(set_to_none=True)
        model(**collate([item], pad_id)).loss.backward()
        grad = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in params])
        projected = projector.project(adam_direction(grad[None], *moments))[0]
        features[row] = (projected / projected.norm()).numpy()
    model.zero_grad(set_to_none=True)
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started} | {
        "features": features
    }


def run_rounds(
    methods: dict[str, Callable[..., dict[str, Any]]],
    model: Any,
    tokenizer: Any,
    frame: pd.DataFrame,
    moments: Any,
    args: argparse.Namespace,
    monitor: PhaseMonitor,
) -> dict[str, dict[str, Any]]:
    """Every method on each of ``--rounds`` consecutive parts of the frame, the order rotating per round.

    The box is shared: interleaving spreads whatever else runs over all methods instead of one of them.
    """
    parts = np.array_split(np.arange(len(frame)), args.rounds)
    totals = {name: {"examples": 0, "seconds": 0.0, "cpu_seconds": 0.0, "features": []} for name in methods}
    for round_index, part in enumerate(parts):
        names = list(methods)
        names = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in names:
            monitor.enter(name)
            result = methods[name](model, tokenizer, frame.iloc[part].reset_index(drop=True), moments, args)
            total = totals[name]
            total["examples"] += len(part)
            total["seconds"] += result["seconds"]
            total["cpu_seconds"] += result["cpu_seconds"]
            total["features"].append(result["features"])
            log(f"round {round_index + 1}/{len(parts)} {name}: {len(part)} examples in {result['seconds']:.1f} s")
    for total in totals.values():
        total["features"] = np.concatenate(total["features"])
        total["examples_per_second"] = total["examples"] / total["seconds"]
    return totals


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def features_benchmark(args: argparse.Namespace, monitor: PhaseMonitor) -> dict[str, Any]:
    """Ours against the naive loop on the same examples, model, moments and projector (see the docstring)."""
    from core.gradients.features import lora_parameters, resolve_bf16
    from core.models.lm import load_causal_lm
    from core.models.passes import render_examples
    from core.train.trainer import TrainConfig

    frame = sample_frame(args.data_dir, args.examples, args.seed)
    monitor.enter("load")
    started = time.perf_counter()
    lm = load_causal_lm(TrainConfig().model)
    load_seconds = time.perf_counter() - started
    log(f"model {lm.model_id} loaded in {load_seconds:.1f} s ({lm.device}, {lm.dtype})")
    monitor.enter("warmup")
    model, moments = warmed_up_model(lm, frame, args.warmup_steps, args.seed)
    n_params = sum(p.numel() for _, p in lora_parameters(model))
    log(f"LoRA adapter: {n_params} parameters, {args.warmup_steps} warmup steps")
    timings = []
    if not args.no_projection_timing:
        monitor.enter("projection")
        timings = time_projectors(n_params, args.d, args.seed)
    variants = {"ours": "auto"} | ({} if args.no_fp32 else {"ours_fp32": "fp32"})
    methods = {name: partial(run_ours, precision=precision) for name, precision in variants.items()}
    monitor.enter("untimed")
    for run in methods.values():  # lazy imports, thread pools and the projector's draw, outside the timings
        run(model, lm.tokenizer, frame.iloc[:2], moments, args)
    runs = run_rounds(methods | {"naive": run_naive}, model, lm.tokenizer, frame, moments, args, monitor)
    naive = runs["naive"].pop("features")
    device_type = next(model.parameters()).device.type
    for name, precision in variants.items():
        runs[name]["precision"] = "bf16" if resolve_bf16(precision, device_type) else "fp32"
        cosines = row_cosines(runs[name].pop("features"), naive)
        runs[name] |= {"cosine_min": float(cosines.min()), "cosine_mean": float(cosines.mean())}
        runs[name]["ratio_vs_naive"] = runs[name]["examples_per_second"] / runs["naive"]["examples_per_second"]
    lengths = np.array([len(item.ids) for item in render_examples(lm.tokenizer, frame, args.max_length)])
    ratio = runs["ours"]["ratio_vs_naive"]
    return {
        "model": {"id": lm.model_id, "device": lm.device, "dtype": lm.dtype, "lora_params": n_params},
        "load_seconds": load_seconds,
        "tokens": {"mean": float(lengths.mean()), "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max())},
        "sources": frame.source.value_counts().to_dict(),
        "projection_timings": timings,
        "runs": runs,
        "ratio": ratio,
        "pass_ratio": ratio >= TARGET_RATIO,
        # same arithmetic, so the float32 run must agree row by row; bf16 passes differ by their rounding
        "exactness_run": "ours_fp32" if "ours_fp32" in runs else "ours",
        "pass_cosine": runs["ours_fp32" if "ours_fp32" in runs else "ours"]["cosine_min"] > TARGET_MIN_COSINE,
    }


def print_features(r: dict[str, Any], args: argparse.Namespace) -> None:
    model, tokens = r["model"], r["tokens"]
    print(
        f"\n== gradient features: {r['runs']['ours']['examples']} pool examples, d {args.d}, {args.projection} "
        f"projection, batch {args.batch_size} (<= {args.token_budget} tokens), max_length {args.max_length}, "
        f"seed {args.seed}, {args.rounds} interleaved rounds =="
    )
    print(
        f"model {model['id']} ({model['dtype']}), LoRA P = {model['lora_params']}; loaded in {r['load_seconds']:.1f} s"
    )
    print(f"tokens per example: mean {tokens['mean']:.0f}, p95 {tokens['p95']:.0f}, max {tokens['max']}")
    for timing in r["projection_timings"]:
        print(
            f"projection {timing['kind']:<10}: build {timing['build_seconds']:.2f} s, "
            + ", ".join(f"{count} rows {timing[f'project_{count}_seconds']:.3f} s" for count in PROJECTION_ROWS)
        )
    print(f"\n{'method':<56} {'wall s':>7} {'CPU s':>7} {'ex/s':>7} {'x naive':>7} {'cos min':>8} {'cos mean':>8}")
    for name, run in r["runs"].items():
        label = (
            f"{name}: gradient_features, {run['precision']} passes"
            if name != "naive"
            else "naive: batch-1 forward + loss.backward(), full logits, fp32"
        )
        compared = (
            ""
            if name == "naive"
            else f"{run['ratio_vs_naive']:7.2f}x {run['cosine_min']:8.5f} {run['cosine_mean']:8.5f}"
        )
        print(
            f"{label:<56} {run['seconds']:7.1f} {run['cpu_seconds']:7.1f} {run['examples_per_second']:7.3f} {compared}"
        )
    print("(cos: row cosine of ours, float16, to the naive float32 features)")
    print(f"\nratio ours / naive {r['ratio']:.2f}x; target >= {TARGET_RATIO}x: {verdict(r['pass_ratio'])}")
    exact = r["exactness_run"]
    print(f"{exact} agrees with naive, min row cosine > {TARGET_MIN_COSINE}: {verdict(r['pass_cosine'])}")
    if exact != "ours" and r["runs"]["ours"]["precision"] == "bf16":
        ours = r["runs"]["ours"]
        print(f"ours (bf16 passes) vs naive float32: min row cosine {ours['cosine_min']:.5f} (bf16 rounding)")


# ---------------------------------------------------------------- graph

GRAPH_TARGET_SECONDS = 120.0
GRAPH_TARGET_BYTES = 4e9


def synthetic_features(rows: int, d: int, seed: int) -> np.ndarray:
    """Unit rows clustered around 500 random centres (noise 0.7 of a centre), stored as float16."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((500, d), dtype=np.float32)
    features = centres[rng.integers(0, 500, rows)] + 0.7 * rng.standard_normal((rows, d), dtype=np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return features.astype(np.float16)


def graph_benchmark(args: argparse.Namespace, monitor: PhaseMonitor) -> dict[str, Any]:
    import tempfile

    from prepare import rss_bytes

    from core.gradients import graph
    from core.storage import gradients as gstore
    from core.storage.database import Store

    monitor.enter("graph data")
    features = synthetic_features(args.graph_rows, args.d, args.seed)
    before = rss_bytes()
    monitor.enter("graph build")
    started = time.perf_counter()
    indices, similarities = graph.top_neighbours(features, args.neighbours)
    build = time.perf_counter() - started
    monitor.enter("graph store")
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(scratch)
        started = time.perf_counter()
        gstore.save_edges(store, "bench", indices, similarities)
        stored = time.perf_counter() - started
        started = time.perf_counter()
        loaded, _ = gstore.load_neighbours(store, "bench", len(features))
        read = time.perf_counter() - started
    monitor.enter("graph done")
    added = monitor.phases["graph build"]["peak_rss_bytes"] - before
    return {
        "rows": len(features),
        "d": args.d,
        "neighbours": args.neighbours,
        "build_seconds": build,
        "store_seconds": stored,
        "read_seconds": read,
        "rss_before_bytes": before,
        "build_added_bytes": added,
        "loaded_equal": bool(np.array_equal(loaded, indices)),
        "pass_seconds": build < GRAPH_TARGET_SECONDS,
        "pass_memory": added < GRAPH_TARGET_BYTES,
    }


def print_graph(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n== gradient graph: {r['rows']:,} x {r['d']} float16 features, top {r['neighbours']} neighbours (exact) =="
    )
    print(f"build {r['build_seconds']:.1f} s; target < {GRAPH_TARGET_SECONDS:.0f} s: {verdict(r['pass_seconds'])}")
    print(
        f"memory added by the build {gb(r['build_added_bytes'])} (over {gb(r['rss_before_bytes'])} before); "
        f"target < {gb(GRAPH_TARGET_BYTES)}: {verdict(r['pass_memory'])}"
    )
    print(
        f"edges written to DuckDB in {r['store_seconds']:.1f} s, read back in {r['read_seconds']:.1f} s "
        f"(identical: {r['loaded_equal']})"
    )


# ---------------------------------------------------------------- main

PARTS: dict[str, tuple[Callable[..., dict[str, Any]], Callable[[dict[str, Any], argparse.Namespace], None]]] = {
    "graph": (graph_benchmark, print_graph),  # first: its memory is measured before the model is loaded
    "features": (features_benchmark, print_features),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = list(PARTS) if args.part == "all" else [args.part]
    missing = [part for part in wanted if part not in PARTS]
    if missing:
        raise SystemExit(f"part {missing[0]!r} is not in this benchmark yet (available: {', '.join(PARTS)})")
    monitor = PhaseMonitor()
    monitor.start()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    for part in wanted:
        results[part] = PARTS[part][0](args, monitor)
    monitor.stop()
    results["phases"] = {k: v for k, v in monitor.phases.items() if k not in ("setup", "done")}
    results["process_peak_rss_bytes"] = max_rss_bytes()
    results["machine"] = machine_info()
    m = results["machine"]
    print(f"\nmachine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads)")
    for part in wanted:
        PARTS[part][1](results[part], args)
    print(f"\n{'phase':<11} {'wall s':>7} {'CPU s':>7} {'load':>5} {'peak RSS':>9}")
    for name, stats in results["phases"].items():
        print(
            f"{name:<11} {stats['wall_seconds']:7.1f} {stats['cpu_seconds']:7.1f} {stats['load_mean']:5.1f} "
            f"{gb(stats['peak_rss_bytes']):>9}"
        )
    print(f"process peak RSS (ru_maxrss) {gb(results['process_peak_rss_bytes'])}")
    print(f"\nresults written to {write_json(results, 'gradients').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
