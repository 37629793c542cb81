"""Benchmark of our LoRA training loop against a plain ``transformers.Trainer`` on the same model and data.

In one process, on a seeded sample of ``--n`` rows (default 32) of the top-level ``*.jsonl`` of the data
dir, rendered once with our chat-template rendering (response-only labels, ``--max-length`` 256):

1. **Ours:** ``core.train.trainer.train`` with LoRA (r 8 on q/k/v/o), batch ``--batch-size`` (4),
   no accumulation, one epoch, cosine schedule, on a copy of the packaged SmolLM2-135M-Instruct.
2. **Trainer:** ``transformers.Trainer`` with the same LoRA adapter on a fresh copy of the same model (its
   GGUF "quantized" marker cleared: the weights are dequantized float32 and the Trainer refuses a marked model), the
   same tokenised examples and labels, the same batch size, learning rate, schedule and seed, no
   evaluation, no saving, no logging integrations, ``use_cpu`` on a CPU box.

Both count the tokens they process (prompt and response, padding excluded) and report tokens/s over their
training loop (ours: ``TrainResult.seconds``; the Trainer: ``trainer.train()``; building the model copy, the
adapter and the tokenised data is outside both timings); the
order of the two runs alternates with ``--repeats`` (default 2) and the median is reported. Peak
memory: per-phase peak VmRSS sampled every 0.2 s (the helpers of ``bench/prepare.py``). Target (issue
5): ours not slower than the Trainer.

Run from the project root: ``.venv/bin/python bench/train.py``. Results are printed and written as JSON
to ``bench/results/train-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
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


def run_ours(lm: Any, frame: Any, config: Any) -> dict[str, float]:
    from core.train.trainer import train

    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        result = train(lm.model, lm.tokenizer, frame, config, Path(folder))
    # result.seconds is the training loop (and the final adapter save); the model copy, the adapter set-up and
    # the rendering before it are left out, as the Trainer's run leaves out building its model and data.
    return {"seconds": result.seconds, "tokens": result.tokens, "tokens_per_second": result.tokens / result.seconds}


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
    from core.models.lm import load_causal_lm
    from core.train.trainer import TrainConfig

    frame = sample_frame(args.data_dir, args.n, args.seed)
    config = TrainConfig(batch_size=args.batch_size, grad_accum=1, epochs=1, max_length=args.max_length, seed=args.seed)
    monitor = PhaseMonitor()
    monitor.start()
    monitor.enter("load")
    started = time.perf_counter()
    lm = load_causal_lm()
    load_seconds = time.perf_counter() - started
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "trainer": []}
    for repeat in range(args.repeats):
        order = ("ours", "trainer") if repeat % 2 == 0 else ("trainer", "ours")
        for name in order:
            monitor.enter(name)
            log(f"repeat {repeat + 1}: {name}")
            runs[name].append((run_ours if name == "ours" else run_trainer)(lm, frame, config))
            log(f"{name}: {runs[name][-1]['tokens_per_second']:.0f} tokens/s")
    monitor.stop()
    median = {name: statistics.median(r["tokens_per_second"] for r in rows) for name, rows in runs.items()}
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(args),
        "config": config.__dict__,
        "load_seconds": load_seconds,
        "runs": runs,
        "median_tokens_per_second": median,
        "ratio": median["ours"] / median["trainer"],
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
        f"batch {r['args']['batch_size']}, {r['args']['repeats']} repeats (alternating order) =="
    )
    for name, rows in r["runs"].items():
        each = ", ".join(f"{row['tokens_per_second']:.0f}" for row in rows)
        print(f"{name:<8} tokens/s per repeat: {each}; median {r['median_tokens_per_second'][name]:.0f}")
    print(f"\n{'phase':<8} {'wall s':>7} {'CPU s':>7} {'peak RSS':>9}")
    for name, stats in r["phases"].items():
        print(f"{name:<8} {stats['wall_seconds']:7.1f} {stats['cpu_seconds']:7.1f} {gb(stats['peak_rss_bytes']):>9}")
    print(f"process peak RSS (ru_maxrss) {gb(r['process_peak_rss_bytes'])}")
    print(f"\nratio ours / Trainer {r['ratio']:.2f}x; target >= 1.0x: {verdict(r['ratio'] >= 1.0)}")


if __name__ == "__main__":
    raise SystemExit(main())
