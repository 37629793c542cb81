"""Benchmark of LM scoring (perplexity + IFD) on real pool examples against a naive one-example loop.

What it measures, in one process, on a seeded sample of ``--n`` rows (default 500) of the top-level
``*.jsonl`` files of the data dir (``../shared/data``; ``eval/`` is left out):

1. **Model load.** ``core.models.lm.load_causal_lm()`` (the packaged SmolLM2-135M-Instruct, dequantised from
   GGUF), timed on its own and excluded from both rates.
2. **Peak matmul rate.** A large torch matmul (2048x2048 @ 2048x2048 in the model's dtype, 3 warm-up and 10 timed
   reps, median) gives this machine's working peak in GFLOP/s. It runs before and after the scoring runs.
3. **Ours.** ``IFDScorer(max_length=...).score(frame)``: the conditional pass (which gives perplexity) and the
   response-alone pass, in length-sorted batches up to a token budget, with the LM head only on response positions.
4. **Naive.** The same examples (or a seeded subset with ``--naive-n``), the same rendering
   (``core.algorithms.lm_scores.render_pair``): per example, one batch-1 forward on the full conditional sequence
   with full logits (``model(input_ids=...).logits``), log_softmax, mean NLL over the response span; the same for
   the response-alone sequence. No bucketing, no batching. Its IFD and perplexity are compared with ours.

FLOPs are counted as 2 x (matmul parameters of the body x tokens + LM-head parameters x head positions) per pass:
the body (every ``nn.Linear`` under ``model.model``; the embedding lookup is free) runs on every token, the tied
head (vocab x hidden) only where it is applied (ours: response positions; naive: all positions). Attention's
score and value products are not counted (small at these lengths). For ours, padding tokens are counted apart and
the achieved rate uses real-token FLOPs only. Both rates are shown as a share of the measured matmul peak.

Peak memory: a thread samples ``VmRSS`` every 0.2 s per phase, and ``ru_maxrss`` is read at each phase end
(the helpers of ``bench/prepare.py``).

Run from the project root: ``.venv/bin/python bench/score.py`` (see bench/README.md for the options).
Results are printed and written as JSON to ``bench/results/score-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub
ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from prepare import (  # noqa: E402
    PhaseMonitor,
    gb,
    log,
    max_rss_bytes,
    pool_lines,
    seeded_subset,
    verdict,
    write_json,
)

TARGET_RATIO = 2.0
PROJECT_N = 50_000
MATMUL_SIZE = 2048


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=500, help="examples scored (seeded sample of the pool)")
    parser.add_argument("--naive-n", type=int, help="run the naive loop on a seeded subset of N of those examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=512)
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


def run_ours(frame: pd.DataFrame, max_length: int, lm: Any, body: int, head: int) -> dict[str, Any]:
    """``IFDScorer.score`` on the frame, timed, with the token counts of its batches."""
    from core.algorithms.lm_scores import _batches, render_pair
    from core.algorithms.scorers import IFDScorer

    scorer = IFDScorer(max_length=max_length)
    cpu_started, started = time.process_time(), time.perf_counter()
    done = [0.0, len(frame) / 10]

    def progress(units: float) -> None:
        done[0] += units
        if done[0] >= done[1]:
            done[1] += len(frame) / 10
            log(f"ours: {done[0]:.0f}/{len(frame)} ({time.perf_counter() - started:.0f} s)")

    scores = scorer.score(frame, progress)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    # The token accounting repeats the rendering and the batching, untimed.
    pairs = [
        render_pair(lm.tokenizer, i, x, o, max_length)
        for i, x, o in zip(frame.instruction, frame.input, frame.output, strict=True)
    ]
    real = padded = head_positions = 0
    n_batches = 0
    for which in ("conditional", "unconditional"):
        lengths = np.array([len(getattr(p, which)) for p in pairs])
        for batch in _batches(lengths, scorer.token_budget, 16):
            n_batches += 1
            padded += int(lengths[batch].max()) * len(batch)
        real += int(lengths.sum())
        head_positions += sum(p.n_response for p in pairs)
    flops = 2 * (body * real + head * head_positions)
    return {
        "examples": len(frame),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "examples_per_second": len(frame) / seconds,
        "batches": n_batches,
        "real_tokens": real,
        "padded_tokens": padded,
        "padding_tokens": padded - real,
        "padding_share": (padded - real) / padded,
        "head_positions": head_positions,
        "flops_real": flops,
        "flops_with_padding_body": flops + 2 * body * (padded - real),
        "gflops_achieved": flops / seconds / 1e9,
        "scores": scores,
        "pairs": pairs,
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

    from core.algorithms.lm_scores import render_pair

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


def machine_info() -> dict[str, Any]:
    import torch
    import transformers

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


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
    peaks = [peak_matmul(lm.dtype)]
    log(f"peak matmul {peaks[0]['gflops_median']:.0f} GFLOP/s")

    monitor.enter("ours")
    log(f"ours: IFDScorer on {len(frame)} examples")
    ours = run_ours(frame, args.max_length, lm, body, head)
    log(f"ours: {ours['seconds']:.1f} s, {ours['examples_per_second']:.2f} examples/s")

    naive_index = np.arange(len(frame))
    if args.naive_n is not None and args.naive_n < len(frame):
        naive_index = np.sort(np.random.default_rng(args.seed + 1).choice(len(frame), args.naive_n, replace=False))
    monitor.enter("naive")
    log(f"naive: batch-1 loop with full logits on {len(naive_index)} examples")
    naive = run_naive(frame.iloc[naive_index].reset_index(drop=True), args.max_length, lm, body, head)

    monitor.enter("peak")
    peaks.append(peak_matmul(lm.dtype))
    monitor.stop()

    peak = max(p["gflops_median"] for p in peaks)
    ours_ifd, ours_ppl = ours["scores"]["ifd"][naive_index], ours["scores"]["perplexity"][naive_index]
    pairs = ours.pop("pairs")
    scores = ours.pop("scores")
    cond_lengths = np.array([len(p.conditional) for p in pairs])
    ratio = ours["examples_per_second"] / naive["examples_per_second"]
    results.update(
        {
            "examples": len(frame),
            "sources": frame.source.value_counts().to_dict(),
            "tokens_conditional": {"mean": float(cond_lengths.mean()), "p95": float(np.percentile(cond_lengths, 95))},
            "response_tokens_mean": float(np.mean([p.n_response for p in pairs])),
            "truncated": int(sum(p.truncated for p in pairs)),
            "nan_ifd": int(np.isnan(scores["ifd"]).sum()),
            "peak_matmul": peaks,
            "peak_gflops": peak,
            "ours": ours,
            "naive": {k: v for k, v in naive.items() if k not in ("ifd", "perplexity")},
            "naive_subset": len(naive_index) < len(frame),
            "ifd_max_rel_diff": rel_diff(naive["ifd"], ours_ifd),
            "perplexity_max_rel_diff": rel_diff(naive["perplexity"], ours_ppl),
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


def print_results(r: dict[str, Any]) -> None:
    m, ours, naive, peak = r["machine"], r["ours"], r["naive"], r["peak_gflops"]
    print(f"\nmachine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads)")
    print(f"model {r['model']['id']} ({r['model']['dtype']}), loaded in {r['load_seconds']:.1f} s (not in the rates)")
    print(f"matmul params: body {r['model']['body_params'] / 1e6:.1f} M, head {r['model']['head_params'] / 1e6:.1f} M")
    tok = r["tokens_conditional"]
    print(
        f"\n== LM scoring: {r['examples']} pool examples, max_length {r['args']['max_length']}, "
        f"seed {r['args']['seed']} =="
    )
    print(
        f"conditional tokens mean {tok['mean']:.0f}, p95 {tok['p95']:.0f}; response tokens mean "
        f"{r['response_tokens_mean']:.0f}; truncated {r['truncated']}; NaN IFD {r['nan_ifd']}"
    )
    runs = ", ".join(
        f"{p['gflops_median']:.0f} (max {p['gflops_max']:.0f}, load {p['load_1min']:.1f})" for p in r["peak_matmul"]
    )
    print(f"peak matmul {MATMUL_SIZE}^2 {r['model']['dtype']}, GFLOP/s before / after: {runs}")
    if r["naive_subset"]:
        print(f"NOTE: the naive loop ran on a seeded subset of {naive['examples']} of the {r['examples']} examples")
    print(
        f"\n{'method':<34} {'examples':>8} {'wall s':>7} {'CPU s':>7} {'ex/s':>6} {'tokens':>8} "
        f"{'GFLOP':>7} {'GFLOP/s':>8} {'% peak':>6}"
    )
    rows = [
        ("ours: IFDScorer (bucketed batches)", ours, ours["flops_real"]),
        ("naive: batch-1, full logits", naive, naive["flops"]),
    ]
    for label, run, flops in rows:
        print(
            f"{label:<34} {run['examples']:>8} {run['seconds']:7.1f} {run['cpu_seconds']:7.1f} "
            f"{run['examples_per_second']:6.2f} {run['real_tokens']:>8} {flops / 1e9:7.0f} "
            f"{run['gflops_achieved']:8.1f} {100 * run['gflops_achieved'] / peak:5.0f}%"
        )
    print(
        f"ours: {ours['batches']} batches, padding {ours['padding_tokens']} tokens "
        f"({100 * ours['padding_share']:.1f} % of {ours['padded_tokens']} processed; not in its GFLOP), "
        f"head on {ours['head_positions']} response positions"
    )
    print(f"naive: head on all {naive['head_positions']} positions (counted in its GFLOP)")
    print(f"IFD max relative difference ours vs naive: {r['ifd_max_rel_diff']:.2e}")
    print(f"perplexity max relative difference ours vs naive: {r['perplexity_max_rel_diff']:.2e}")
    print(
        f"\n{'phase':<6} {'wall s':>7} {'CPU s':>7} {'CPU/wall':>8} {'load mean/max':>13} {'peak RSS':>9} {'ru_maxrss':>9}"
    )
    for name, stats in r["phases"].items():
        share = stats["cpu_seconds"] / max(stats["wall_seconds"], 1e-9)
        print(
            f"{name:<6} {stats['wall_seconds']:7.1f} {stats['cpu_seconds']:7.1f} {share:8.2f} "
            f"{stats['load_mean']:6.1f}/{stats['load_max']:<6.1f} {gb(stats['peak_rss_bytes']):>9} "
            f"{gb(stats['max_rss_at_end_bytes']):>9}"
        )
    print(f"process peak RSS (ru_maxrss) {gb(r['process_peak_rss_bytes'])}")
    print(f"\nratio ours / naive {r['ratio']:.2f}x; target >= {TARGET_RATIO:.0f}x: {verdict(r['pass_ratio'])}")
    print(
        f"projected time for {PROJECT_N:,} examples: ours {r['projected_hours_50k']:.1f} h, "
        f"naive {r['projected_hours_50k_naive']:.1f} h (at the rates above, 2 CPUs)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
