"""Benchmark of our LoRA training loop, in float32 and in bf16, against a plain ``transformers.Trainer``.

In one process, on a seeded sample of ``--n`` rows (default 32) of the top-level ``*.jsonl`` of the data
dir, rendered once with our chat-template rendering (response-only labels, ``--max-length`` 256):

1. **Ours:** ``core.train.trainer.train`` with LoRA (r 8 on q/k/v/o), batch ``--batch-size`` (4),
   no accumulation, one epoch, cosine schedule, on a copy of the packaged SmolLM2-135M-Instruct, float32.
2. **Ours, bf16:** the same with ``precision="bf16"`` (bf16 passes over the frozen base, float32 adapter and
   AdamW state; ``core.train.mixed``), from the same adapter (the torch RNG is seeded before each of our runs).
3. **Trainer:** ``transformers.Trainer`` with the same LoRA adapter on a fresh copy of the same model (its
   GGUF "quantized" marker cleared: the weights are dequantized float32 and the Trainer refuses a marked model), the
   same tokenised examples and labels, the same batch size, learning rate, schedule and seed, no
   evaluation, no saving, no logging integrations, ``use_cpu`` on a CPU box.

All count the tokens they process (prompt and response, padding excluded) and report tokens/s over their
training loop (ours: ``TrainResult.seconds``; the Trainer: ``trainer.train()``; building the model copy, the
adapter and the tokenised data is outside both timings); the
order of the three runs rotates with ``--repeats`` (default 2) and the median is reported. Peak
memory: per-phase peak VmRSS sampled every 0.2 s (the helpers of ``bench/prepare.py``). Targets: ours
(float32) not slower than the Trainer (issue 5); ours in bf16 at least 1.5x the Trainer, with a final loss
within 2 % of the float32 run's after the same steps (issue 21). The per-step losses of both our runs (first
repeat; every repeat takes the same steps from the same adapter) are in the JSON and, as a table, in the
printout. bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX): elsewhere the benchmark says so and stops.

Run from the project root: ``.venv/bin/python bench/train.py``. Results are printed and written as JSON
to ``bench/results/train-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]

from bench.prepare import DATA_DIR, PhaseMonitor, gb, log, machine_info, max_rss_bytes, verdict, write_json  # noqa: E402
from bench.score import sample_frame  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


RUNS = ("ours", "ours_bf16", "trainer")


def run_ours(lm: Any, frame: Any, config: Any) -> dict[str, Any]:
    from core.train.trainer import train

    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        result = train(lm.model, lm.tokenizer, frame, config, Path(folder))
    # result.seconds is the training loop (and the final adapter save); the model copy, the adapter set-up and
    # the rendering before it are left out, as the Trainer's run leaves out building its model and data.
    return {
        "seconds": result.seconds,
        "tokens": result.tokens,
        "tokens_per_second": result.tokens / result.seconds,
        "losses": result.losses,
    }


def run_trainer(lm: Any, frame: Any, config: Any) -> dict[str, float]:
    import torch
    from transformers import Trainer, TrainingArguments

    from core.models.passes import IGNORE, render_examples
    from core.train.trainer import prepare_model

    examples = render_examples(lm.tokenizer, frame, config.max_length)
    rows = [{"input_ids": e.ids, "labels": e.labels} for e in examples]
    pad = lm.tokenizer.pad_token_id

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(row["input_ids"]) for row in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, row in enumerate(batch):
            ids[i, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
            labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
            mask[i, : len(row["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    torch.manual_seed(config.seed)
    model = prepare_model(lm.model, config)
    # transformers marks a model loaded from GGUF as quantized although its weights are dequantized float32
    # tensors, and the Trainer refuses to train such a model: clear the marker on this copy.
    causal = model.get_base_model()
    causal.hf_quantizer = None
    if "is_quantized" in vars(causal):
        causal.is_quantized = False
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as folder:
        args = TrainingArguments(
            output_dir=folder,
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum,
            num_train_epochs=config.epochs,
            learning_rate=config.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=math.ceil(config.warmup_ratio * len(rows) / config.batch_size),
            weight_decay=config.weight_decay,
            max_grad_norm=1.0,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            seed=config.seed,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    tokens = sum(len(e.ids) for e in examples) * config.epochs
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from core.models.device import pick_device
    from core.models.lm import load_causal_lm
    from core.train.mixed import require_native_bf16
    from core.train.trainer import TrainConfig

    try:
        require_native_bf16(pick_device().split(":")[0])
    except ValueError as exc:
        raise SystemExit(f"bench.train compares float32 with bf16 training: {exc}") from None
    frame = sample_frame(args.data_dir, args.n, args.seed)
    config = TrainConfig(batch_size=args.batch_size, grad_accum=1, epochs=1, max_length=args.max_length, seed=args.seed)
    configs = {"ours": config, "ours_bf16": dataclasses.replace(config, precision="bf16"), "trainer": config}
    monitor = PhaseMonitor()
    monitor.start()
    monitor.enter("load")
    started = time.perf_counter()
    lm = load_causal_lm()
    load_seconds = time.perf_counter() - started
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in RUNS}
    for repeat in range(args.repeats):
        order = RUNS[repeat % len(RUNS) :] + RUNS[: repeat % len(RUNS)]  # each run takes each slot in turn
        for name in order:
            monitor.enter(name)
            log(f"repeat {repeat + 1}: {name}")
            runs[name].append((run_trainer if name == "trainer" else run_ours)(lm, frame, configs[name]))
            log(f"{name}: {runs[name][-1]['tokens_per_second']:.0f} tokens/s")
    monitor.stop()
    median = {name: statistics.median(r["tokens_per_second"] for r in rows) for name, rows in runs.items()}
    fp32_losses, bf16_losses = runs["ours"][0]["losses"], runs["ours_bf16"][0]["losses"]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(args),
        "config": config.__dict__,
        "load_seconds": load_seconds,
        "runs": runs,
        "median_tokens_per_second": median,
        "ratio": median["ours"] / median["trainer"],
        "ratio_bf16": median["ours_bf16"] / median["trainer"],
        "ratio_bf16_fp32": median["ours_bf16"] / median["ours"],
        "loss_curves": {"fp32": fp32_losses, "bf16": bf16_losses},
        "final_loss_change": bf16_losses[-1] / fp32_losses[-1] - 1,
        "phases": {k: v for k, v in monitor.phases.items() if k not in ("setup", "done")},
        "process_peak_rss_bytes": max_rss_bytes(),
        "machine": machine_info(),
    }
    print_results(results)
    print(f"\nresults written to {write_json(results, 'train').relative_to(ROOT)}")
    return 0


def print_results(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"\nmachine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads)")
    print(
        f"== LoRA training, {r['args']['n']} examples, max_length {r['args']['max_length']}, "
        f"batch {r['args']['batch_size']}, {r['args']['repeats']} repeats (rotating order) =="
    )
    for name, rows in r["runs"].items():
        each = ", ".join(f"{row['tokens_per_second']:.0f}" for row in rows)
        print(f"{name:<9} tokens/s per repeat: {each}; median {r['median_tokens_per_second'][name]:.0f}")
    print(f"\n{'phase':<9} {'wall s':>7} {'CPU s':>7} {'peak RSS':>9}")
    for name, stats in r["phases"].items():
        print(f"{name:<9} {stats['wall_seconds']:7.1f} {stats['cpu_seconds']:7.1f} {gb(stats['peak_rss_bytes']):>9}")
    print(f"process peak RSS (ru_maxrss) {gb(r['process_peak_rss_bytes'])}")
    print_losses(r["loss_curves"])
    change = r["final_loss_change"]
    print(f"\nratio ours / Trainer {r['ratio']:.2f}x; target >= 1.0x: {verdict(r['ratio'] >= 1.0)}")
    print(f"ratio ours bf16 / Trainer {r['ratio_bf16']:.2f}x; target >= 1.5x: {verdict(r['ratio_bf16'] >= 1.5)}")
    print(f"ratio ours bf16 / ours fp32 {r['ratio_bf16_fp32']:.2f}x")
    print(f"final loss bf16 vs fp32 {change:+.2%}; target within 2 %: {verdict(abs(change) <= 0.02)}")


def print_losses(curves: dict[str, list[float]], rows: int = 16) -> None:
    """Our two loss curves side by side: every step up to ``rows`` steps, else ``rows`` evenly spaced ones and the last."""
    fp32, bf16 = curves["fp32"], curves["bf16"]
    steps = sorted({round(i * (len(fp32) - 1) / max(rows - 1, 1)) for i in range(rows)} | {len(fp32) - 1})
    print(f"\n{'step':>5} {'loss fp32':>10} {'loss bf16':>10} {'change':>8}")
    for i in steps:
        print(f"{i + 1:>5} {fp32[i]:10.4f} {bf16[i]:10.4f} {bf16[i] / fp32[i] - 1:+8.2%}")


if __name__ == "__main__":
    raise SystemExit(main())
