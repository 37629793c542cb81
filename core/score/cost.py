"""What an LM scoring run will cost before it starts, from the rates measured by ``bench/score.py``.

:func:`core.score.scoring.estimate_seconds` measures a few examples on this device once the model is loaded;
this module answers without loading anything, so the Quality page can state the cost of scoring a whole
dataset next to the Score button, and the CLI can refuse an hours-long run that was not asked for.
"""

from __future__ import annotations

# Examples per second on the reference 2-core CPU, docs/benchmarks.md "bench/score.py: LM scoring": IFDScorer on
# 500 pool examples (SmolLM2-135M, max_length 512), the bf16 fast pass (issue 21: bf16 weights, the chunked
# attention, packed rows, oneDNN's packed linear layers, chunks that follow the sequences) and float32 measured
# side by side on a quiet box on 2026-12-05: 5.04 and 2.21 ex/s (the median of three runs for each; a fourth
# measured 5.11 and 2.26).
# IFD runs two passes (the conditional one, 176 tokens a mean example, and the response alone: 243 tokens an
# example in all); perplexity runs only the conditional one, so its rate is IFD's scaled by the token counts.
IFD_BF16 = 5.04
IFD_FP32 = 2.21
MEASURED_RATES: dict[tuple[str, str], float] = {
    ("ifd", "bf16"): IFD_BF16,
    ("ifd", "fp32"): IFD_FP32,
    ("perplexity", "bf16"): IFD_BF16 * 243 / 176,
    ("perplexity", "fp32"): IFD_FP32 * 243 / 176,
}
# A long run asks for confirmation (the CLI's --yes) above this many seconds.
CONFIRM_SECONDS = 3600.0


def rate(scorer: str, precision: str = "auto") -> float | None:
    """Measured examples per second of ``scorer`` (``auto`` is bf16 here), or None for a scorer not measured
    (the heuristic ones take seconds; a reward model's speed depends on the model given)."""
    return MEASURED_RATES.get((scorer, "fp32" if precision == "fp32" else "bf16"))


def projected_seconds(scorer: str, n_rows: int, precision: str = "auto") -> float | None:
    """Seconds to score ``n_rows`` examples with ``scorer`` on the reference CPU, or None when not measured."""
    per_second = rate(scorer, precision)
    return None if per_second is None else n_rows / per_second


def duration(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps a readable number: 45 s, 12 min, 3.4 h, 4.0 days."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"  # a fraction of a second reads "about 1 s", not "about 0 s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def cost_line(scorer: str, n_rows: int, precision: str = "auto") -> str | None:
    """One sentence stating the cost, or None for a scorer without a measured rate."""
    seconds = projected_seconds(scorer, n_rows, precision)
    if seconds is None:
        return None
    line = f"scoring {n_rows:,} examples with {scorer} takes about {duration(seconds)} on a 2-core CPU"
    if seconds > CONFIRM_SECONDS:
        line += "; score a stratified sample instead (a limit: every cluster gets its share, at least one)"
    return line
