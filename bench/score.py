"""Benchmark of LM scoring (perplexity + IFD): the fast pass against the autocast pass and a naive loop.

What it measures, in one process, on a seeded sample of ``--n`` rows (default 500) of the top-level
``*.jsonl`` files of the data dir (``--data-dir`` or ``CURATE_BENCH_DATA``; ``eval/`` is left out):

1. **Model load.** ``core.models.lm.load_causal_lm()`` (the packaged SmolLM2-135M-Instruct, dequantised from
   GGUF), timed on its own and excluded from every rate.
2. **Peak matmul rate.** A large torch matmul (2048x2048 @ 2048x2048, 3 warm-up and 10 timed reps, median) in
   float32 and in bfloat16 gives this machine's working peak in GFLOP/s per dtype. It runs before and after the
   scoring runs; the higher median is the reference a rate is a share of.
3. **Four methods on the same rows, interleaved.** The sample is cut into ``--rounds`` parts; each part is
   scored by every method in turn, the order rotating from part to part, so a neighbour's burst on the shared
   box lands on all of them rather than on one:

   * ``fast``: ``IFDScorer(precision="bf16").score(part)``: the fast pass (``core.models.fast.fast_pass``: bf16
     weights, the chunked CPU attention, the LM head fused with the loss), the conditional pass (which gives
     perplexity) and the response-alone pass in one pool, packed back to back into rows of up to 4,096
     tokens (no padding), the shared system-turn prefix run once and its key/value cache reused;
   * ``autocast``: the pass before it, ``IFDScorer(precision="fp32")`` inside ``torch.autocast(bfloat16)``:
     float32 weights, bf16 products, SDPA attention (length-sorted padded batches; the same prefix and head);
   * ``fp32``: ``IFDScorer(precision="fp32")``, the float32 reference of the agreement figures (skip with
     ``--no-fp32``: the naive loop, float32 too, is the reference then);
   * ``naive``: per example (or a seeded subset, ``--naive-n``), the same rendering
     (``core.models.passes.render_pair`` with the scorer's template), one batch-1 float32 forward on the whole
     sequence with full logits, log_softmax and the mean NLL of the response span; the same for the
     response-alone sequence. No bucketing, no batching.

FLOPs are counted as 2 x (matmul parameters of the body x tokens + LM-head parameters x head positions) per pass:
the body (every ``nn.Linear`` under ``model.model``; the embedding lookup is free) runs on every token, the tied
head (vocab x hidden) only where it is applied (ours: response positions; naive: all positions). Attention's
score and value products are not counted (small at these lengths). For ours, padding tokens are counted apart and
the achieved rate uses the FLOPs of the tokens it computes (the shared prefix once). Each rate is shown as a
share of the measured matmul peak in the dtype its products ran in.

Targets (issue 21): the fast pass at >= 3x the naive loop's rows/s, and its IFD's Spearman correlation with
float32 >= 0.999; each is printed with PASS or FAIL. Peak memory: a thread samples ``VmRSS`` every 0.2 s per
phase, and ``ru_maxrss`` is read at each phase end (the helpers of ``bench/prepare.py``).

Run from the project root: ``.venv/bin/python -m bench.score`` (see docs/benchmarks.md for the options).
Results are printed and written as JSON to ``bench/results/score-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.prepare import (  # noqa: E402
    DATA_DIR,
    PhaseMonitor,
    gb,
    log,
    machine_info,
    max_rss_bytes,
    pool_lines,
    seeded_subset,
    verdict,
    write_json,
)

TARGET_RATIO = 3.0  # the fast pass's rows/s over the naive loop's
TARGET_SPEARMAN = 0.999  # the fast pass's IFD against float32
PROJECT_N = 50_000
MATMUL_SIZE = 2048
PEAK_DTYPES = ("float32", "bfloat16")
METHODS = ("fast", "autocast", "fp32", "naive")
PRODUCT_DTYPE = {"fast": "bfloat16", "autocast": "bfloat16", "fp32": "float32", "naive": "float32"}
LABELS = {
    "fast": "fast pass: bf16 weights, chunked attn",
    "autocast": "autocast: fp32 weights, bf16 SDPA",
    "fp32": "float32: fp32 weights, SDPA",
    "naive": "naive: batch-1, full logits, fp32",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--n", type=int, default=500, help="examples scored (seeded sample of the pool)")
    parser.add_argument("--naive-n", type=int, help="run the naive loop on a seeded subset of N of those examples")
    parser.add_argument("--rounds", type=int, default=5, help="parts the methods take turns on (interleaving)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--no-fp32", action="store_true", help="skip the float32 run of ours")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- data


def sample_frame(data_dir: Path, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``n`` pool rows as a frame with instruction, input, output (and source)."""
    rows = [json.loads(line) for line in seeded_subset(pool_lines(data_dir), n, seed)]
    return pd.DataFrame(
        {
            "instruction": [str(r.get("instruction") or "") for r in rows],
            "input": [str(r.get("input") or "") for r in rows],
            "output": [str(r.get("output") or "") for r in rows],
            "source": [str(r.get("source") or "") for r in rows],
        }
    )


# ---------------------------------------------------------------- FLOPs and peak


def matmul_params(model: Any) -> tuple[int, int]:
    """(matmul weights of the transformer body, weights of the LM head): each does 2 FLOPs per token it runs on."""
    import torch

    body = sum(m.weight.numel() for m in model.base_model.modules() if isinstance(m, torch.nn.Linear))
    head = model.get_output_embeddings().weight.numel()
    return body, head


def peak_matmul(dtype_name: str, size: int = MATMUL_SIZE, warmup: int = 3, reps: int = 10) -> dict[str, Any]:
    """GFLOP/s of a ``size``-square torch matmul in ``dtype_name``: median and max of ``reps`` timed runs."""
    import torch

    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    for _ in range(warmup):
        torch.mm(a, b)
    rates = []
    for _ in range(reps):
        started = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * size**3 / (time.perf_counter() - started) / 1e9)
    return {
        "size": size,
        "dtype": dtype_name,
        "gflops_median": statistics.median(rates),
        "gflops_max": max(rates),
        "load_1min": os.getloadavg()[0],
    }


# ---------------------------------------------------------------- ours


def score_part(part: pd.DataFrame, max_length: int, method: str) -> dict[str, np.ndarray]:
    """``IFDScorer.score`` of one part by ``method`` (fast, autocast or fp32)."""
    import contextlib

    import torch

    from core.models.lm import load_causal_lm
    from core.score.scorers import IFDScorer

    scorer = IFDScorer(max_length=max_length, precision="bf16" if method == "fast" else "fp32")
    device = load_causal_lm().device.split(":")[0]
    autocast = torch.autocast(device, dtype=torch.bfloat16) if method == "autocast" else contextlib.nullcontext()
    with autocast:
        return scorer.score(part)


def token_accounting(frame: pd.DataFrame, max_length: int, lm: Any, token_budget: int) -> dict[str, Any]:
    """Tokens ours computes on ``frame``: the pooled sequences, the shared prefix once, and the padding of its batches.

    It repeats the rendering, the prefix search and the batching of ``response_nll``, untimed.
    """
    from core.models.passes import _batches, _packs, _starts_with, ifd_sequences, shared_prefix

    pairs = rendered_pairs(frame, max_length, lm)
    pool = [sequence for sequence in ifd_sequences(pairs) if sequence[2] > 0]
    prefix = shared_prefix(pool)
    sharing = np.array([_starts_with(ids, prefix, start) for ids, start, _ in pool])
    lengths = np.array([len(ids) for ids, _, _ in pool]) - len(prefix) * sharing
    padded = n_batches = n_rows = 0
    for group in (np.flatnonzero(sharing), np.flatnonzero(~sharing)):
        for batch in _batches(lengths[group], token_budget, 16) if len(group) else []:
            n_batches += 1
            padded += int(lengths[group][batch].max()) * len(batch)
        n_rows += len(_packs(lengths[group], token_budget)) if len(group) else 0
    return {
        "batches": n_batches,
        "packed_rows": n_rows,
        "real_tokens": int(sum(len(ids) for ids, _, _ in pool)),
        "prefix_tokens": len(prefix),
        "prefix_sharers": int(sharing.sum()),
        "computed_tokens": int(lengths.sum()) + (len(prefix) if sharing.any() else 0),
        "padded_tokens": padded,
        "padding_tokens": padded - int(lengths.sum()),
        "head_positions": sum(n for _, _, n in pool),
        "conditional_lengths": [len(p.conditional) for p in pairs],
        "response_tokens": [p.n_response for p in pairs],
        "truncated": int(sum(p.truncated for p in pairs)),
    }


def rendered_pairs(frame: pd.DataFrame, max_length: int, lm: Any) -> list[Any]:
    """The scorer's rendering (its default template and truncation) of every row."""
    from core.models.passes import render_pair
    from core.score.scorers import IFDScorer

    scorer = IFDScorer(max_length=max_length)
    return [
        render_pair(lm.tokenizer, i, x, o, max_length, template=scorer.template, truncation=scorer.truncation)
        for i, x, o in zip(frame.instruction, frame.input, frame.output, strict=True)
    ]


def merged_accounting(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The token counts of every part added up (each part is scored, batched and prefixed on its own)."""
    lists = ("conditional_lengths", "response_tokens")
    total: dict[str, Any] = {key: sum(part[key] for part in parts) for key in parts[0] if key not in lists}
    total["prefix_tokens"] = max(part["prefix_tokens"] for part in parts)
    lengths = np.concatenate([part["conditional_lengths"] for part in parts])
    responses = np.concatenate([part["response_tokens"] for part in parts])
    total["padding_share"] = total["padding_tokens"] / max(total["padded_tokens"], 1)
    total["tokens_conditional"] = {"mean": float(lengths.mean()), "p95": float(np.percentile(lengths, 95))}
    total["response_tokens_mean"] = float(np.mean(responses))
    return total


# ---------------------------------------------------------------- naive


def naive_nll(model: Any, ids: list[int], start: int, n: int) -> float:
    """One batch-1 forward with full logits; mean NLL of ``ids[start:start+n]``."""
    import torch

    if n == 0:
        return float("nan")
    logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    targets = torch.tensor(ids[start : start + n], device=model.device)
    return float(-log_probs[start - 1 : start - 1 + n].gather(1, targets[:, None]).mean())


def naive_part(part: pd.DataFrame, max_length: int, lm: Any) -> dict[str, Any]:
    """The one-example-per-forward loop on one part, rendering included in the timing as it is in ours."""
    import torch

    conditional, alone = np.full(len(part), np.nan), np.full(len(part), np.nan)
    tokens = 0
    with torch.inference_mode():
        for k, pair in enumerate(rendered_pairs(part, max_length, lm)):
            conditional[k] = naive_nll(lm.model, pair.conditional, pair.conditional_start, pair.n_response)
            alone[k] = naive_nll(lm.model, pair.unconditional, pair.unconditional_start, pair.n_alone)
            tokens += len(pair.conditional) + len(pair.unconditional)
    return {"ifd": np.exp(conditional - alone), "perplexity": np.exp(conditional), "tokens": tokens}


# ---------------------------------------------------------------- the interleaved runs


def run_interleaved(frame: pd.DataFrame, naive_rows: np.ndarray, args: argparse.Namespace, lm: Any) -> dict[str, Any]:
    """Every method on every part of ``frame``, the order rotating per part; the naive loop on ``naive_rows`` only."""
    methods = [m for m in METHODS if not (args.no_fp32 and m == "fp32")]
    runs: dict[str, dict[str, Any]] = {
        m: {"seconds": 0.0, "cpu_seconds": 0.0, "ifd": np.full(len(frame), np.nan), "examples": 0} for m in methods
    }
    for m in methods:
        runs[m]["perplexity"] = np.full(len(frame), np.nan)
    runs["naive"]["tokens"] = 0
    parts = [part for part in np.array_split(np.arange(len(frame)), max(1, args.rounds)) if len(part)]
    for number, rows in enumerate(parts):
        for method in methods[number % len(methods) :] + methods[: number % len(methods)]:
            chosen = rows[np.isin(rows, naive_rows)] if method == "naive" else rows
            if not len(chosen):
                continue
            part = frame.iloc[chosen].reset_index(drop=True)
            cpu_started, started = time.process_time(), time.perf_counter()
            if method == "naive":
                values = naive_part(part, args.max_length, lm)
                runs[method]["tokens"] += values["tokens"]
            else:
                values = score_part(part, args.max_length, method)
            runs[method]["seconds"] += time.perf_counter() - started
            runs[method]["cpu_seconds"] += time.process_time() - cpu_started
            runs[method]["examples"] += len(chosen)
            runs[method]["ifd"][chosen] = values["ifd"]
            runs[method]["perplexity"][chosen] = values["perplexity"]
            log(f"part {number + 1}/{len(parts)} {method}: {len(chosen)} rows, {runs[method]['seconds']:.0f} s so far")
    return runs


def rates(
    runs: dict[str, Any], accounting: dict[str, Any], body: int, head: int, peaks: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Rows/s, GFLOP/s and the share of the peak (in the dtype of its products) of every method."""
    result = {}
    for method, run in runs.items():
        if method == "naive":
            flops = 2 * (body + head) * run["tokens"]  # the head runs on every position
            tokens = run["tokens"]
        else:
            flops = 2 * (body * accounting["computed_tokens"] + head * accounting["head_positions"])
            tokens = accounting["computed_tokens"]
        gflops = flops / run["seconds"] / 1e9
        result[method] = {
            "examples": run["examples"],
            "seconds": run["seconds"],
            "cpu_seconds": run["cpu_seconds"],
            "examples_per_second": run["examples"] / run["seconds"],
            "tokens": tokens,
            "flops": flops,
            "gflops_achieved": gflops,
            "peak_share": gflops / peaks[PRODUCT_DTYPE[method]],
            "nan_ifd": int(np.isnan(run["ifd"]).sum()),
        }
    return result


def agreement(runs: dict[str, Any], naive_rows: np.ndarray) -> dict[str, float]:
    """IFD Spearman correlations and largest relative differences against the float32 references."""
    result: dict[str, float] = {}
    reference = runs["fp32"]["ifd"] if "fp32" in runs else None
    for method in ("fast", "autocast"):
        ifd = runs[method]["ifd"]
        if reference is not None:
            result[f"{method}_ifd_spearman_vs_fp32"] = spearman(ifd, reference)
            result[f"{method}_ifd_max_rel_diff_vs_fp32"] = rel_diff(ifd, reference)
        result[f"{method}_ifd_spearman_vs_naive"] = spearman(ifd[naive_rows], runs["naive"]["ifd"][naive_rows])
    if reference is not None:
        result["fp32_ifd_max_rel_diff_vs_naive"] = rel_diff(reference[naive_rows], runs["naive"]["ifd"][naive_rows])
        result["fp32_perplexity_max_rel_diff_vs_naive"] = rel_diff(
            runs["fp32"]["perplexity"][naive_rows], runs["naive"]["perplexity"][naive_rows]
        )
    return result


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-12))) if ok.any() else float("nan")


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    frame = sample_frame(args.data_dir, args.n, args.seed)
    monitor = PhaseMonitor()
    monitor.start()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}

    monitor.enter("load")
    from core.models.lm import load_causal_lm
    from core.score.scorers import IFDScorer

    started = time.perf_counter()
    lm = load_causal_lm()
    results["load_seconds"] = time.perf_counter() - started
    body, head = matmul_params(lm.model)
    results["model"] = {"id": lm.model_id, "device": lm.device, "dtype": lm.dtype, "body_params": body}
    results["model"]["head_params"] = head
    log(f"model {lm.model_id} loaded in {results['load_seconds']:.1f} s ({lm.device}, {lm.dtype})")

    monitor.enter("peak")
    peaks = [peak_matmul(dtype) for dtype in PEAK_DTYPES]
    log("peak matmul " + ", ".join(f"{p['dtype']} {p['gflops_median']:.0f} GFLOP/s" for p in peaks))

    naive_rows = np.arange(len(frame))
    if args.naive_n is not None and args.naive_n < len(frame):
        naive_rows = np.sort(np.random.default_rng(args.seed + 1).choice(len(frame), args.naive_n, replace=False))
    token_budget = IFDScorer().token_budget
    parts = [part for part in np.array_split(np.arange(len(frame)), max(1, args.rounds)) if len(part)]
    accounting = merged_accounting(
        [token_accounting(frame.iloc[rows].reset_index(drop=True), args.max_length, lm, token_budget) for rows in parts]
    )
    monitor.enter("scoring")
    log(f"{len(frame)} examples in {args.rounds} parts; naive on {len(naive_rows)}")
    runs = run_interleaved(frame, naive_rows, args, lm)

    monitor.enter("peak")
    peaks += [peak_matmul(dtype) for dtype in PEAK_DTYPES]
    monitor.stop()

    peak = {d: max(p["gflops_median"] for p in peaks if p["dtype"] == d) for d in PEAK_DTYPES}
    measured = rates(runs, accounting, body, head, peak)
    ratio = measured["fast"]["examples_per_second"] / measured["naive"]["examples_per_second"]
    agree = agreement(runs, naive_rows)
    fidelity = agree.get("fast_ifd_spearman_vs_fp32", agree["fast_ifd_spearman_vs_naive"])
    results.update(
        {
            "examples": len(frame),
            "sources": frame.source.value_counts().to_dict(),
            "peak_matmul": peaks,
            "peak_gflops": peak,
            "tokens": accounting,
            "runs": measured,
            "agreement": agree,
            "naive_subset": len(naive_rows) < len(frame),
            "ratios_vs_naive": {
                m: r["examples_per_second"] / measured["naive"]["examples_per_second"] for m, r in measured.items()
            },
            "fast_vs_autocast": measured["fast"]["examples_per_second"] / measured["autocast"]["examples_per_second"],
            "ratio": ratio,
            "pass_ratio": ratio >= TARGET_RATIO,
            "spearman": fidelity,
            "pass_spearman": fidelity >= TARGET_SPEARMAN,
            "projected_hours_50k": {m: PROJECT_N / r["examples_per_second"] / 3600 for m, r in measured.items()},
            "phases": {k: v for k, v in monitor.phases.items() if k not in ("setup", "done")},
            "process_peak_rss_bytes": max_rss_bytes(),
            "machine": machine_info(),
        }
    )
    print_results(results)
    print(f"\nresults written to {write_json(results, 'score').relative_to(ROOT)}")
    return 0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 else float("nan")


def print_results(r: dict[str, Any]) -> None:
    m, runs, tokens, agree = r["machine"], r["runs"], r["tokens"], r["agreement"]
    print(f"\nmachine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads)")
    print(f"model {r['model']['id']} ({r['model']['dtype']}), loaded in {r['load_seconds']:.1f} s (not in the rates)")
    print(f"matmul params: body {r['model']['body_params'] / 1e6:.1f} M, head {r['model']['head_params'] / 1e6:.1f} M")
    tok = tokens["tokens_conditional"]
    print(
        f"\n== LM scoring: {r['examples']} pool examples, max_length {r['args']['max_length']}, "
        f"seed {r['args']['seed']}, {r['args']['rounds']} interleaved parts =="
    )
    print(
        f"conditional tokens mean {tok['mean']:.0f}, p95 {tok['p95']:.0f}; response tokens mean "
        f"{tokens['response_tokens_mean']:.0f}; truncated {tokens['truncated']}; NaN IFD {runs['fast']['nan_ifd']}"
    )
    for dtype in PEAK_DTYPES:
        measured = ", ".join(
            f"{p['gflops_median']:.0f} (max {p['gflops_max']:.0f}, load {p['load_1min']:.1f})"
            for p in r["peak_matmul"]
            if p["dtype"] == dtype
        )
        print(f"peak matmul {MATMUL_SIZE}^2 {dtype}, GFLOP/s before / after: {measured}")
    if r["naive_subset"]:
        print(
            f"NOTE: the naive loop ran on a seeded subset of {runs['naive']['examples']} of the {r['examples']} examples"
        )
    print(
        f"\n{'method':<38} {'examples':>8} {'wall s':>7} {'CPU s':>7} {'ex/s':>6} {'x naive':>7} {'tokens':>8} "
        f"{'GFLOP/s':>8} {'% peak':>6}"
    )
    for method, run in runs.items():
        print(
            f"{LABELS[method]:<38} {run['examples']:>8} {run['seconds']:7.1f} {run['cpu_seconds']:7.1f} "
            f"{run['examples_per_second']:6.2f} {r['ratios_vs_naive'][method]:7.2f} {run['tokens']:>8} "
            f"{run['gflops_achieved']:8.1f} {100 * run['peak_share']:5.0f}%"
        )
    print(
        f"ours: {tokens['real_tokens']} tokens; the {tokens['prefix_tokens']}-token system prefix of "
        f"{tokens['prefix_sharers']} sequences computed once per part ({tokens['computed_tokens']} computed); "
        f"head on {tokens['head_positions']} response positions"
    )
    print(
        f"fast: {tokens['packed_rows']} packed rows, no padding; autocast and float32: {tokens['batches']} "
        f"length-sorted batches, padding {tokens['padding_tokens']} ({100 * tokens['padding_share']:.1f} % of "
        f"{tokens['padded_tokens']}; not in the GFLOP)"
    )
    print("% peak: of the bfloat16 peak for fast and autocast, of the float32 peak for float32 and naive")
    for name, value in agree.items():
        print(f"{name}: {value:.5f}" if "spearman" in name else f"{name}: {value:.2e}")
    print(
        f"\n{'phase':<9} {'wall s':>7} {'CPU s':>7} {'CPU/wall':>8} {'load mean/max':>13} {'peak RSS':>9} "
        f"{'ru_maxrss':>9}"
    )
    for name, stats in r["phases"].items():
        share = stats["cpu_seconds"] / max(stats["wall_seconds"], 1e-9)
        print(
            f"{name:<9} {stats['wall_seconds']:7.1f} {stats['cpu_seconds']:7.1f} {share:8.2f} "
            f"{stats['load_mean']:6.1f}/{stats['load_max']:<6.1f} {gb(stats['peak_rss_bytes']):>9} "
            f"{gb(stats['max_rss_at_end_bytes']):>9}"
        )
    print(f"process peak RSS (ru_maxrss) {gb(r['process_peak_rss_bytes'])}")
    print(f"fast pass / autocast pass {r['fast_vs_autocast']:.2f}x")
    print(f"fast pass / naive {r['ratio']:.2f}x; target >= {TARGET_RATIO:.0f}x: {verdict(r['pass_ratio'])}")
    reference = "float32" if "fast_ifd_spearman_vs_fp32" in agree else "naive (float32)"
    print(
        f"fast pass IFD Spearman vs {reference} {r['spearman']:.5f}; target >= {TARGET_SPEARMAN}: "
        f"{verdict(r['pass_spearman'])}"
    )
    hours = ", ".join(f"{method} {value:.1f} h" for method, value in r["projected_hours_50k"].items())
    print(f"projected time for {PROJECT_N:,} examples: {hours} (at the rates above)")


if __name__ == "__main__":
    raise SystemExit(main())
