"""Benchmark of LM scoring (perplexity + IFD) on real pool examples against a naive one-example loop.

What it measures, in one process, on a seeded sample of ``--n`` rows (default 500) of the top-level
``*.jsonl`` files of the data dir (``--data-dir`` or ``CURATE_BENCH_DATA``; ``eval/`` is left out):

1. **Model load.** ``core.models.lm.load_causal_lm()`` (the packaged SmolLM2-135M-Instruct, dequantised from
   GGUF), timed on its own and excluded from both rates.
2. **Peak matmul rate.** A large torch matmul (2048x2048 @ 2048x2048, 3 warm-up and 10 timed reps, median) in
   float32 and in bfloat16 gives this machine's working peak in GFLOP/s per dtype. It runs before and after the
   scoring runs.
3. **Ours.** ``IFDScorer(max_length=...).score(frame)`` with its default ``precision="auto"`` (bf16 autocast on
   a CPU with native bf16, else float32): the conditional pass (which gives perplexity) and the response-alone
   pass in one pool of length-sorted batches up to a token budget, the shared system-turn prefix run once and
   its key/value cache reused, and the LM head only on response positions. Then the same with
   ``precision="fp32"`` (skip with ``--no-fp32``), to separate what bf16 gives from what the batching gives.
4. **Naive.** The same examples (or a seeded subset with ``--naive-n``), the same rendering
   (``core.models.passes.render_pair``): per example, one batch-1 forward on the full conditional sequence
   with full logits (``model(input_ids=...).logits``), log_softmax, mean NLL over the response span; the same for
   the response-alone sequence. No bucketing, no batching. Its IFD and perplexity are compared with ours.

FLOPs are counted as 2 x (matmul parameters of the body x tokens + LM-head parameters x head positions) per pass:
the body (every ``nn.Linear`` under ``model.model``; the embedding lookup is free) runs on every token, the tied
head (vocab x hidden) only where it is applied (ours: response positions; naive: all positions). Attention's
score and value products are not counted (small at these lengths). For ours, padding tokens are counted apart and
the achieved rate uses the FLOPs of the tokens it computes (the shared prefix once). Each rate is shown as a
share of the measured matmul peak in the dtype its products ran in.

Peak memory: a thread samples ``VmRSS`` every 0.2 s per phase, and ``ru_maxrss`` is read at each phase end
(the helpers of ``bench/prepare.py``).

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

TARGET_RATIO = 2.0
PROJECT_N = 50_000
MATMUL_SIZE = 2048
PEAK_DTYPES = ("float32", "bfloat16")
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--n", type=int, default=500, help="examples scored (seeded sample of the pool)")
    parser.add_argument("--naive-n", type=int, help="run the naive loop on a seeded subset of N of those examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--no-fp32", action="store_true", help="skip the run of ours with precision=fp32")
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


def run_ours(frame: pd.DataFrame, max_length: int, lm: Any, body: int, head: int, precision: str) -> dict[str, Any]:
    """``IFDScorer.score`` on the frame, timed, with the token counts of its batches."""
    from core.score.scorers import IFDScorer

    scorer = IFDScorer(max_length=max_length, precision=precision)
    label = f"ours ({precision})"
    cpu_started, started = time.process_time(), time.perf_counter()
    done = [0.0, len(frame) / 10]

    def progress(units: float) -> None:
        done[0] += units
        if done[0] >= done[1]:
            done[1] += len(frame) / 10
            log(f"{label}: {done[0]:.0f}/{len(frame)} ({time.perf_counter() - started:.0f} s)")

    scores = scorer.score(frame, progress)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    tokens = token_accounting(frame, max_length, lm, scorer.token_budget)
    flops = 2 * (body * tokens["computed_tokens"] + head * tokens["head_positions"])
    return {
        "precision": "bf16" if scorer._bf16() else "fp32",
        "examples": len(frame),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "examples_per_second": len(frame) / seconds,
        **tokens,
        "flops_real": flops,
        "gflops_achieved": flops / seconds / 1e9,
        "scores": scores,
    }


def token_accounting(frame: pd.DataFrame, max_length: int, lm: Any, token_budget: int) -> dict[str, Any]:
    """Tokens ours computes: the pooled sequences, the shared prefix once, and the padding of its batches.

    It repeats the rendering, the prefix search and the batching of ``response_nll``, untimed.
    """
    from core.models.passes import _batches, _starts_with, render_pair, shared_prefix

    pairs = [
        render_pair(lm.tokenizer, i, x, o, max_length)
        for i, x, o in zip(frame.instruction, frame.input, frame.output, strict=True)
    ]
    pool = [(p.conditional, p.conditional_start, p.n_response) for p in pairs]
    pool += [(p.unconditional, p.unconditional_start, p.n_response) for p in pairs]
    prefix = shared_prefix(pool)
    sharing = np.array([_starts_with(ids, prefix, start) for ids, start, _ in pool])
    lengths = np.array([len(ids) for ids, _, _ in pool]) - len(prefix) * sharing
    padded = n_batches = 0
    for group in (np.flatnonzero(sharing), np.flatnonzero(~sharing)):
        for batch in _batches(lengths[group], token_budget, 16):
            n_batches += 1
            padded += int(lengths[group][batch].max()) * len(batch)
    computed = int(lengths.sum()) + (len(prefix) if sharing.any() else 0)
    cond_lengths = np.array([len(p.conditional) for p in pairs])
    return {
        "batches": n_batches,
        "real_tokens": int(sum(len(ids) for ids, _, _ in pool)),
        "prefix_tokens": len(prefix),
        "prefix_sharers": int(sharing.sum()),
        "computed_tokens": computed,
        "padded_tokens": padded,
        "padding_tokens": padded - int(lengths.sum()),
        "padding_share": (padded - int(lengths.sum())) / padded,
        "head_positions": 2 * sum(p.n_response for p in pairs),
        "tokens_conditional": {"mean": float(cond_lengths.mean()), "p95": float(np.percentile(cond_lengths, 95))},
        "response_tokens_mean": float(np.mean([p.n_response for p in pairs])),
        "truncated": int(sum(p.truncated for p in pairs)),
    }


# ---------------------------------------------------------------- naive


def naive_nll(model: Any, ids: list[int], start: int, n: int) -> float:
    """One batch-1 forward with full logits; mean NLL of ``ids[start:start+n]``."""
    import torch

    if n == 0:
        return float("nan")
    logits = model(input_ids=torch.tensor([ids])).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    targets = torch.tensor(ids[start : start + n])
    return float(-log_probs[start - 1 : start - 1 + n].gather(1, targets[:, None]).mean())


def run_naive(frame: pd.DataFrame, max_length: int, lm: Any, body: int, head: int) -> dict[str, Any]:
    """The one-example-per-forward loop, rendering included in the timing as it is in ours."""
    import torch

    from core.models.passes import render_pair

    conditional, alone = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
    tokens = 0
    step = max(1, len(frame) // 10)
    cpu_started, started = time.process_time(), time.perf_counter()
    with torch.inference_mode():
        for k, (i, x, o) in enumerate(zip(frame.instruction, frame.input, frame.output, strict=True)):
            pair = render_pair(lm.tokenizer, i, x, o, max_length)
            conditional[k] = naive_nll(lm.model, pair.conditional, pair.conditional_start, pair.n_response)
            alone[k] = naive_nll(lm.model, pair.unconditional, pair.unconditional_start, pair.n_response)
            tokens += len(pair.conditional) + len(pair.unconditional)
            if (k + 1) % step == 0:
                log(f"naive: {k + 1}/{len(frame)} ({time.perf_counter() - started:.0f} s)")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    flops = 2 * (body + head) * tokens  # the head runs on every position
    return {
        "examples": len(frame),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "examples_per_second": len(frame) / seconds,
        "real_tokens": tokens,
        "head_positions": tokens,
        "flops": flops,
        "gflops_achieved": flops / seconds / 1e9,
        "ifd": np.exp(conditional - alone),
        "perplexity": np.exp(conditional),
    }


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

    runs = {}
    for precision in ("auto",) if args.no_fp32 else ("auto", "fp32"):
        name = "ours" if precision == "auto" else "ours_fp32"
        monitor.enter(name)
        log(f"{name}: IFDScorer(precision={precision!r}) on {len(frame)} examples")
        runs[name] = run_ours(frame, args.max_length, lm, body, head, precision)
        log(f"{name}: {runs[name]['seconds']:.1f} s, {runs[name]['examples_per_second']:.2f} examples/s")

    naive_index = np.arange(len(frame))
    if args.naive_n is not None and args.naive_n < len(frame):
        naive_index = np.sort(np.random.default_rng(args.seed + 1).choice(len(frame), args.naive_n, replace=False))
    monitor.enter("naive")
    log(f"naive: batch-1 loop with full logits on {len(naive_index)} examples")
    naive = run_naive(frame.iloc[naive_index].reset_index(drop=True), args.max_length, lm, body, head)

    monitor.enter("peak")
    peaks += [peak_matmul(dtype) for dtype in PEAK_DTYPES]
    monitor.stop()

    ours = runs["ours"]
    for run in runs.values():
        scores = run.pop("scores")
        run["ifd_max_rel_diff_vs_naive"] = rel_diff(scores["ifd"][naive_index], naive["ifd"])
        run["perplexity_max_rel_diff_vs_naive"] = rel_diff(scores["perplexity"][naive_index], naive["perplexity"])
        run["ifd_spearman_vs_naive"] = spearman(scores["ifd"][naive_index], naive["ifd"])
        run["nan_ifd"] = int(np.isnan(scores["ifd"]).sum())
        run["ratio_vs_naive"] = run["examples_per_second"] / naive["examples_per_second"]
    ratio = ours["ratio_vs_naive"]
    results.update(
        {
            "examples": len(frame),
            "sources": frame.source.value_counts().to_dict(),
            "peak_matmul": peaks,
            "peak_gflops": {d: max(p["gflops_median"] for p in peaks if p["dtype"] == d) for d in PEAK_DTYPES},
            "runs": runs,
            "naive": {k: v for k, v in naive.items() if k not in ("ifd", "perplexity")},
            "naive_subset": len(naive_index) < len(frame),
            "ratio": ratio,
            "pass_ratio": ratio >= TARGET_RATIO,
            "projected_hours_50k": PROJECT_N / ours["examples_per_second"] / 3600,
            "projected_hours_50k_naive": PROJECT_N / naive["examples_per_second"] / 3600,
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
    m, runs, naive, peak = r["machine"], r["runs"], r["naive"], r["peak_gflops"]
    ours = runs["ours"]
    print(f"\nmachine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads)")
    print(f"model {r['model']['id']} ({r['model']['dtype']}), loaded in {r['load_seconds']:.1f} s (not in the rates)")
    print(f"matmul params: body {r['model']['body_params'] / 1e6:.1f} M, head {r['model']['head_params'] / 1e6:.1f} M")
    tok = ours["tokens_conditional"]
    print(
        f"\n== LM scoring: {r['examples']} pool examples, max_length {r['args']['max_length']}, "
        f"seed {r['args']['seed']} =="
    )
    print(
        f"conditional tokens mean {tok['mean']:.0f}, p95 {tok['p95']:.0f}; response tokens mean "
        f"{ours['response_tokens_mean']:.0f}; truncated {ours['truncated']}; NaN IFD {ours['nan_ifd']}"
    )
    for dtype in PEAK_DTYPES:
        measured = ", ".join(
            f"{p['gflops_median']:.0f} (max {p['gflops_max']:.0f}, load {p['load_1min']:.1f})"
            for p in r["peak_matmul"]
            if p["dtype"] == dtype
        )
        print(f"peak matmul {MATMUL_SIZE}^2 {dtype}, GFLOP/s before / after: {measured}")
    if r["naive_subset"]:
        print(f"NOTE: the naive loop ran on a seeded subset of {naive['examples']} of the {r['examples']} examples")
    print(
        f"\n{'method':<36} {'examples':>8} {'wall s':>7} {'CPU s':>7} {'ex/s':>6} {'tokens':>8} "
        f"{'GFLOP':>7} {'GFLOP/s':>8} {'% peak':>6}"
    )
    rows = [
        (f"ours: IFDScorer, {run['precision']} products", run, run["flops_real"], peak[DTYPE_NAMES[run["precision"]]])
        for run in runs.values()
    ]
    rows.append(("naive: batch-1, full logits, fp32", naive, naive["flops"], peak["float32"]))
    for label, run, flops, dtype_peak in rows:
        print(
            f"{label:<36} {run['examples']:>8} {run['seconds']:7.1f} {run['cpu_seconds']:7.1f} "
            f"{run['examples_per_second']:6.2f} {run.get('computed_tokens', run['real_tokens']):>8} "
            f"{flops / 1e9:7.0f} {run['gflops_achieved']:8.1f} {100 * run['gflops_achieved'] / dtype_peak:5.0f}%"
        )
    print(
        f"ours: {ours['real_tokens']} tokens in {ours['batches']} batches; the {ours['prefix_tokens']}-token system "
        f"prefix of {ours['prefix_sharers']} sequences computed once ({ours['computed_tokens']} computed); padding "
        f"{ours['padding_tokens']} ({100 * ours['padding_share']:.1f} % of {ours['padded_tokens']}; not in its GFLOP); "
        f"head on {ours['head_positions']} response positions"
    )
    print(f"naive: head on all {naive['head_positions']} positions (counted in its GFLOP)")
    for name, run in runs.items():
        print(
            f"{name} vs naive: IFD max relative difference {run['ifd_max_rel_diff_vs_naive']:.2e}, "
            f"Spearman {run['ifd_spearman_vs_naive']:.5f}; perplexity max relative difference "
            f"{run['perplexity_max_rel_diff_vs_naive']:.2e}"
        )
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
    for name, run in runs.items():
        print(f"ratio {name} / naive {run['ratio_vs_naive']:.2f}x")
    print(
        f"ratio ours (default precision) / naive {r['ratio']:.2f}x; target >= {TARGET_RATIO:.0f}x: {verdict(r['pass_ratio'])}"
    )
    print(
        f"projected time for {PROJECT_N:,} examples: ours {r['projected_hours_50k']:.1f} h, "
        f"naive {r['projected_hours_50k_naive']:.1f} h (at the rates above, 2 CPUs)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
