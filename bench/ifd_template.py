"""IFD under the chat template against Cherry's Alpaca rendering: ranks, top 10 and how often IFD >= 1 fires.

On a seeded sample of ``--n`` rows (default 120) of the top-level ``*.jsonl`` files of the data dir (``--data-dir``
or ``CURATE_BENCH_DATA``), with the packaged SmolLM2-135M-Instruct, it scores IFD three ways with the ``ifd``
scorer itself (:class:`core.score.scorers.IFDScorer`, default precision):

- ``chat``: ``template=chat`` (the user turn, then the assistant turn; the response alone as a lone assistant
  message, IterIT's rendering), the perplexity ratio: the scorer's default before issue 19;
- ``default``: the scorer's defaults now (``template=alpaca``, perplexity ratio, ``truncation=keep_response``);
- ``cherry``: Cherry's code exactly (``template=alpaca form=loss_ratio truncation=cut_response``).

It prints, per setting, how many scored rows have IFD >= 1 (the filter of ``ifd_topk`` and ``iterit_greedy``),
how many have IFD >= 0.9, the median IFD and, against ``cherry``, the Spearman rank correlation and how many of
the 10 highest IFD < 1 rows are shared; then the sources of the rows the filter drops under ``cherry``.
Cost: 6 forward passes per row (2-10 min on two cores depending on the load).

Run from the project root: ``.venv/bin/python -m bench.ifd_template [--n 40]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is packaged; never reach for the hub

import numpy as np
import pandas as pd

from bench.prepare import DATA_DIR, log, pool_lines, seeded_subset

SETTINGS = {
    "chat": {"template": "chat"},
    "default": {},
    "cherry": {"template": "alpaca", "form": "loss_ratio", "truncation": "cut_response"},
}


def top_helped(ifd: np.ndarray, k: int = 10) -> set[int]:
    """The ``k`` rows of highest IFD among those with IFD < 1: what ``ifd_topk`` would pick first."""
    helped = np.flatnonzero(np.isfinite(ifd) & (ifd < 1))
    return set(helped[np.argsort(-ifd[helped], kind="stable")][:k].tolist())


def main() -> None:
    from scipy.stats import spearmanr

    from core.score.scorers import IFDScorer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = [json.loads(line) for line in seeded_subset(pool_lines(args.data_dir), args.n, args.seed)]
    frame = pd.DataFrame(rows)
    scores = {}
    for label, params in SETTINGS.items():
        started = time.time()
        scores[label] = IFDScorer(**params).score(frame[["instruction", "input", "output"]])["ifd"]
        log(f"{label}: {time.time() - started:.0f} s")
    cherry = scores["cherry"]
    print(f"{len(frame)} rows (seed {args.seed}); load {os.getloadavg()[0]:.1f}")
    print(
        f"{'setting':>8} {'IFD>=1':>8} {'IFD>=0.9':>9} {'median':>7} {'Spearman vs cherry':>19} {'top-10 shared':>14}"
    )
    for label, ifd in scores.items():
        both = np.isfinite(ifd) & np.isfinite(cherry)
        rho = spearmanr(ifd[both], cherry[both])[0]
        fired = f"{int(np.sum(ifd >= 1))}/{int(np.isfinite(ifd).sum())}"
        shared = len(top_helped(ifd) & top_helped(cherry))
        print(f"{label:>8} {fired:>8} {int(np.sum(ifd >= 0.9)):>9} {np.nanmedian(ifd):>7.3f} {rho:>19.3f} {shared:>14}")
    print("dropped under cherry (IFD >= 1), by source:", sorted(frame.source[cherry >= 1]))


if __name__ == "__main__":
    main()
