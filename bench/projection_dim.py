"""How much of a LESS score is projection noise: LESS scores at d = 1024 ... 16384 against unprojected features.

What it does, in one process, with the project's own gradient code (:mod:`core.gradients.features`) and the
packaged SmolLM2-135M-Instruct:

1. **Sample.** ``--pool`` seeded rows (default 200) of the top-level ``*.jsonl`` files of the data dir
   (``--data-dir`` or ``CURATE_BENCH_DATA``), and ``--target`` seeded rows (default 16) of ``eval/gsm8k_test.jsonl``
   there (another file with ``--target-file``).
2. **Warmup.** The default gradient adapter (LoRA r 8 on q/k/v/o, :class:`core.gradients.pipeline.GradientConfig`)
   trained for one epoch on ``--warmup`` further seeded pool rows (default 16), keeping AdamW's moments, as the
   pipeline's warmup does at 5 % of a dataset.
3. **Unprojected features.** Per-example LoRA gradients (``per_example_gradients``) of every sampled row, in the
   pipeline's default precision (bf16 passes where the CPU multiplies bf16 natively), the Adam direction for
   pool rows and the plain gradient for target rows, kept at their full P = 921,600 values and L2-normalised.
   Their LESS scores (:func:`core.select.walk.less_scores`) are the reference.
4. **Projected.** For each d and each of ``--seeds`` projection seeds: the default sparse projection
   (:func:`core.gradients.projection.build_projector`), rows L2-normalised, LESS scores, and their Spearman rank
   correlation with the reference; also the overlap of the top 10 %.

It prints a table (mean and lowest Spearman over the seeds) and ``PASS d=...`` for the smallest d whose mean
Spearman is at least ``--threshold`` (0.9), and writes JSON to ``bench/results/projection_dim-<timestamp>.json``.
Cost: about 220 gradient passes (2-4 min on two quiet cores, up to ~10 min on two busy ones) and a few seconds
per projection; memory about 1 GB for the unprojected rows.

Run from the project root: ``.venv/bin/python -m bench.projection_dim``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.prepare import DATA_DIR, log, pool_lines  # noqa: E402

DIMENSIONS = (256, 512, 1024, 2048, 4096, 8192, 16384)


def sample_rows(data_dir: Path, n_pool: int, n_warmup: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pool sample, warmup rows): disjoint seeded draws from every top-level row of the data dir."""
    lines = pool_lines(data_dir)
    picked = np.random.default_rng(seed).choice(len(lines), n_pool + n_warmup, replace=False)
    rows = [json.loads(lines[i]) for i in picked]
    frame = pd.DataFrame(rows)[["instruction", "input", "output"]]
    return frame.iloc[:n_pool].reset_index(drop=True), frame.iloc[n_pool:].reset_index(drop=True)


def target_rows(path: Path, n: int, seed: int) -> pd.DataFrame:
    """``n`` seeded rows of a JSONL target file."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    picked = np.sort(np.random.default_rng(seed).choice(len(lines), min(n, len(lines)), replace=False))
    return pd.DataFrame([json.loads(lines[i]) for i in picked])[["instruction", "input", "output"]]


def warmed_model(lm: Any, warmup: pd.DataFrame) -> tuple[Any, tuple[Any, Any]]:
    """The default gradient adapter after one epoch on ``warmup``, and AdamW's flattened moments."""
    from core.gradients.features import adam_moments
    from core.gradients.pipeline import GradientConfig
    from core.train.trainer import epoch_steps, start_session, train_pass

    config = GradientConfig().train_config()
    session = start_session(lm.model, lm.tokenizer, config, epoch_steps(len(warmup), config))
    train_pass(session, warmup, 0)
    session.model.eval()
    return session.model, adam_moments(session.optimizer, session.model)


def full_gradients(model: Any, tokenizer: Any, frame: pd.DataFrame, moments: Any, batch_size: int) -> np.ndarray:
    """(n, P) float32 unprojected, L2-normalised features: the Adam direction with ``moments``, else the gradient."""
    import torch

    from core.gradients.features import adam_direction, lora_parameters, per_example_gradients, resolve_bf16
    from core.models.fast import bf16_weights, cpu_chunked_attention
    from core.models.passes import collate, pad_token_id, render_examples

    rendered = render_examples(tokenizer, frame, 512)
    n_params = sum(p.numel() for _, p in lora_parameters(model))
    rows = np.zeros((len(rendered), n_params), dtype=np.float32)
    bf16 = resolve_bf16("auto", "cpu")
    order = np.argsort([-len(item.ids) for item in rendered], kind="stable")
    with (
        torch.no_grad(),
        bf16_weights(model) if bf16 else _nothing(),
        cpu_chunked_attention(model) if bf16 else _nothing(),
    ):
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            grads = per_example_gradients(
                model, collate([rendered[i] for i in index], pad_token_id(tokenizer)), bf16=False
            )
            if moments is not None:
                grads = adam_direction(grads, *moments)
            rows[index] = grads.float().cpu().numpy()
            log(f"  gradients {min(start + batch_size, len(order))}/{len(order)} at {time.strftime('%H:%M:%S')}")
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def projected(rows: np.ndarray, d: int, seed: int) -> np.ndarray:
    """The default sparse projection of ``rows`` to ``d`` dimensions, rows L2-normalised (as the pipeline stores them)."""
    import torch

    from core.gradients.projection import build_projector

    projector = build_projector("sparse", rows.shape[1], d, seed)
    out = projector.project(torch.from_numpy(rows)).numpy()
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-30)


def compare(pool: np.ndarray, target: np.ndarray, dims: list[int], seeds: int) -> list[dict[str, Any]]:
    """Per d: mean and lowest Spearman (and top-10 % overlap) of projected LESS scores against the unprojected."""
    from scipy.stats import spearmanr

    from core.select.walk import less_scores

    reference = less_scores(pool, target)
    top = max(1, len(pool) // 10)
    best = set(np.argsort(-reference)[:top])
    results = []
    for d in dims:
        rhos, overlaps = [], []
        for seed in range(seeds):
            both = projected(np.concatenate([pool, target]), d, seed)
            scores = less_scores(both[: len(pool)], both[len(pool) :])
            rhos.append(float(spearmanr(scores, reference)[0]))
            overlaps.append(len(best & set(np.argsort(-scores)[:top])) / top)
        results.append(
            {
                "d": d,
                "spearman_mean": float(np.mean(rhos)),
                "spearman_min": float(np.min(rhos)),
                "top10pct_overlap_mean": float(np.mean(overlaps)),
                "spearman_per_seed": rhos,
            }
        )
        log(f"d={d}: Spearman mean {np.mean(rhos):.3f} min {np.min(rhos):.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--target-file", type=Path, default=None, help="default: eval/gsm8k_test.jsonl in the data dir")
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--target", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3, help="projection seeds per d")
    parser.add_argument("--dims", default=",".join(map(str, DIMENSIONS)))
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    from core.models.lm import load_causal_lm

    started = time.time()
    pool_frame, warmup = sample_rows(args.data_dir, args.pool, args.warmup, seed=0)
    target_frame = target_rows(args.target_file or args.data_dir / "eval" / "gsm8k_test.jsonl", args.target, seed=0)
    lm = load_causal_lm()
    log(f"warmup on {len(warmup)} rows")
    model, moments = warmed_model(lm, warmup)
    log(f"unprojected features of {len(pool_frame)} pool + {len(target_frame)} target rows")
    pool = full_gradients(model, lm.tokenizer, pool_frame, moments, args.batch_size)
    target = full_gradients(model, lm.tokenizer, target_frame, None, args.batch_size)
    gradient_seconds = time.time() - started
    results = compare(pool, target, [int(d) for d in args.dims.split(",")], args.seeds)
    passing = [r["d"] for r in results if r["spearman_mean"] >= args.threshold]
    print(f"pool {len(pool)} rows, target {len(target)} rows, P = {pool.shape[1]:,}, {args.seeds} projection seeds")
    print(f"{'d':>6} {'Spearman mean':>14} {'lowest':>7} {'top-10% overlap':>16}")
    for r in results:
        print(f"{r['d']:>6} {r['spearman_mean']:>14.3f} {r['spearman_min']:>7.3f} {r['top10pct_overlap_mean']:>16.2f}")
    print(f"PASS d={min(passing)}" if passing else f"FAIL: no d reaches Spearman {args.threshold}")
    from core.gradients.pipeline import CPU_DIMENSION

    print(f"the CPU default d={CPU_DIMENSION}: {'PASS' if CPU_DIMENSION in passing else 'FAIL or not measured'}")
    print(f"gradients {gradient_seconds:.0f} s, total {time.time() - started:.0f} s, load {os.getloadavg()[0]:.1f}")
    out = ROOT / "bench" / "results" / f"projection_dim-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "results": results,
                "pass": min(passing) if passing else None,
                "seconds": time.time() - started,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
