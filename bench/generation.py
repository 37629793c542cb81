"""Benchmark of greedy generation as iterative kMQ's round scorer runs it: our KV-cached loop against
``model.generate``.

On a seeded sample of ``--n`` pool instructions (the top-level ``*.jsonl`` files of the data dir,
``--data-dir`` or ``CURATE_BENCH_DATA``), rendered as a round renders them
(:func:`core.models.generation.row_prompts`, the last ``--max-length`` tokens), with the packaged
SmolLM2-135M-Instruct and the loop's defaults (``--max-new-tokens`` 64, ``--batch-size`` 8):

1. **generate**: ``model.generate`` (greedy, KV-cached by transformers) on batches in the sample's order, as
   generation ran before :func:`core.models.generation.greedy_decode` (float32 weights);
2. **ours fp32**: :func:`core.models.generation.greedy_decode` in float32 (length-sorted batches, finished rows
   leave the batch);
3. **ours bf16**: the same on bf16 copies of the weights.

The three run interleaved, ``--repeats`` times each (generate, fp32, bf16, generate, ...), so a change in the
machine's load hits them alike; each rate is new tokens (stop ids included) per second, the median over the
repeats (the process's CPU seconds are recorded beside: on a shared box they vary less). Then: the share of
prompts whose fp32 tokens equal ``model.generate``'s exactly (it should be 1.0), and the share whose bf16
tokens equal the fp32 ones (bf16 rounds the logits: a near tie can flip and the answer diverges from there),
with the mean length of the common prefix. No target is set: the printout gives the ratios to
``model.generate``.

Run from the project root: ``.venv/bin/python -m bench.generation`` (see docs/benchmarks.md). Results are
printed and written as JSON to ``bench/results/generation-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub

from bench.prepare import DATA_DIR, log, machine_info, write_json
from bench.score import sample_frame

VARIANTS = ("generate", "ours_fp32", "ours_bf16")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--n", type=int, default=64, help="prompts (seeded sample of the pool)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="iterative kMQ's default")
    parser.add_argument("--batch-size", type=int, default=8, help="iterative kMQ's generation_batch_size default")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def variants(lm: Any, prompts: list[list[int]], args: argparse.Namespace) -> dict[str, Callable[[], list[list[int]]]]:
    """Each variant as a call that returns the new ids of every prompt, in the prompts' order."""
    import torch

    from core.models.generation import greedy_decode, reference_generate, stop_ids
    from core.models.passes import pad_token_id

    stop, pad_id = stop_ids(lm.model, lm.tokenizer), pad_token_id(lm.tokenizer)

    def generate() -> list[list[int]]:
        with torch.inference_mode():
            return reference_generate(lm.model, lm.tokenizer, prompts, args.max_new_tokens, args.batch_size)

    def ours(precision: str) -> Callable[[], list[list[int]]]:
        return lambda: greedy_decode(
            lm.model,
            prompts,
            max_new_tokens=args.max_new_tokens,
            stop=stop,
            pad_id=pad_id,
            batch_size=args.batch_size,
            precision=precision,
        )

    return {"generate": generate, "ours_fp32": ours("fp32"), "ours_bf16": ours("bf16")}


def timed_rounds(calls: dict[str, Callable[[], list[list[int]]]], repeats: int) -> dict[str, Any]:
    """Every variant ``repeats`` times, interleaved: seconds per run, tokens, and the last run's ids."""
    runs: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}  # on a shared box, CPU seconds say more than wall
    outputs: dict[str, list[list[int]]] = {}
    for repeat in range(repeats):
        for name, call in calls.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            outputs[name] = call()
            runs[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            tokens = sum(map(len, outputs[name]))
            log(
                f"repeat {repeat + 1}/{repeats} {name}: {runs[name][-1]:.1f} s ({cpu[name][-1]:.1f} CPU s), {tokens} tokens"
            )
    result: dict[str, Any] = {}
    for name, seconds in runs.items():
        tokens = sum(map(len, outputs[name]))
        median = statistics.median(seconds)
        result[name] = {
            "seconds": seconds,
            "cpu_seconds": cpu[name],
            "median_s": median,
            "median_cpu_s": statistics.median(cpu[name]),
            "tokens": tokens,
            "tokens_per_s": tokens / median,
        }
    return {"rates": result, "outputs": outputs}


def agreement(a: list[list[int]], b: list[list[int]]) -> dict[str, float]:
    """The share of prompts whose two outputs are equal, and the mean common prefix as a share of the longer."""
    equal = [x == y for x, y in zip(a, b, strict=True)]
    prefixes = [_common(x, y) / max(1, len(x), len(y)) for x, y in zip(a, b, strict=True)]
    return {"exact": sum(equal) / len(equal), "mean_prefix_share": statistics.fmean(prefixes)}


def _common(x: list[int], y: list[int]) -> int:
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    return n


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from core.models.generation import row_prompts
    from core.models.lm import load_causal_lm

    args = parse_args(argv)
    started = time.perf_counter()
    lm = load_causal_lm()
    load_s = time.perf_counter() - started
    frame = sample_frame(args.data_dir, args.n, args.seed)
    prompts = row_prompts(lm.tokenizer, list(frame[["instruction", "input"]].itertuples(index=False)), args.max_length)
    log(f"model loaded in {load_s:.1f} s; {len(prompts)} prompts, {sum(map(len, prompts))} prompt tokens")
    timed = timed_rounds(variants(lm, prompts, args), args.repeats)
    outputs, rates = timed["outputs"], timed["rates"]
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(args),
        "machine": machine_info(),
        "load_1min": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "model_load_s": load_s,
        "prompt_tokens": sum(map(len, prompts)),
        "rates": rates,
        "ratio_fp32": rates["ours_fp32"]["tokens_per_s"] / rates["generate"]["tokens_per_s"],
        "ratio_bf16": rates["ours_bf16"]["tokens_per_s"] / rates["generate"]["tokens_per_s"],
        "fp32_vs_generate": agreement(outputs["ours_fp32"], outputs["generate"]),
        "bf16_vs_fp32": agreement(outputs["ours_bf16"], outputs["ours_fp32"]),
    }
    print_results(results)
    log(f"written to {write_json(results, 'generation')}")
    return 0


def print_results(r: dict[str, Any]) -> None:
    print(f"\ngeneration: {r['args']['n']} prompts, max_new_tokens {r['args']['max_new_tokens']}, "
          f"batch {r['args']['batch_size']}, {r['args']['repeats']} interleaved repeats, "
          f"load {r['load_1min']:.2f}, {r['torch_threads']} torch threads")  # fmt: skip
    for name in VARIANTS:
        rate = r["rates"][name]
        print(f"  {name:<10} {rate['tokens']:>6} tokens  median {rate['median_s']:7.1f} s "
              f"({rate['median_cpu_s']:.1f} CPU s)  {rate['tokens_per_s']:7.1f} tok/s")  # fmt: skip
    print(f"  ours fp32 / generate: {r['ratio_fp32']:.2f}x   ours bf16 / generate: {r['ratio_bf16']:.2f}x")
    same, bf16 = r["fp32_vs_generate"], r["bf16_vs_fp32"]
    print(f"  fp32 tokens equal to generate's: {same['exact']:.1%} of prompts")
    print(f"  bf16 tokens equal to fp32's: {bf16['exact']:.1%} of prompts "
          f"(common prefix {bf16['mean_prefix_share']:.1%} of the answer on average)")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
