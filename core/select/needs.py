"""What a selection strategy needs from the workspace, what of it is missing and what computing it would cost
on this machine, before a selection starts; and the compute a saved selection consumed, after.

A strategy declares its ``needs`` (embeddings, scores, gradients, graph, target, hidden states...). For a
strategy instance and a dataset, :func:`requirements` lists one :class:`Requirement` per input it reads: the
scores are named by scorer (derived from its parameters: kMQ's ``quality="combined"`` reads whatever scorers
have run, the heuristics at least; IFD top-k reads IFD), the gradient ones by feature set. A missing input
comes with the rows to compute and the estimated seconds: those rows over this workspace's measured rate for
the stage (the median of the runs recorded in :mod:`core.storage.stage_runs`, those on this machine's device
preferred), else over the rate measured on the reference 2-core CPU (docs/benchmarks.md), and says which of
the two it used. :func:`strategy_estimate` adds the strategy's own projected time (:mod:`core.select.cost`).

:func:`selection_cost` is what a saved selection records: per input it used, the seconds of the recorded
stage runs that produced it, plus the strategy's own seconds, the device and the total.

Checks live in :data:`CHECKS`, one function per need; a stage added elsewhere registers its own (for
example ``CHECKS["hidden_states"] = my_check``). A need without a check is looked up in the recorded runs
under its own name (:func:`recorded_check`).
"""

from __future__ import annotations

import dataclasses
import importlib
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import config
from core.score import cost as score_cost
from core.select import cost as select_cost
from core.storage import scores as score_store
from core.storage import stage_runs

if TYPE_CHECKING:
    from core.select.run import SelectionResult
    from core.select.strategies import SelectionStrategy
    from core.storage.database import Store
    from core.storage.datasets import DatasetInfo

MEASURED = "measured here"
REFERENCE = "reference CPU"

# Rows per second on the reference 2-core CPU (docs/benchmarks.md and docs/scale.md), for a stage this workspace
# has not run yet:
# - embeddings: the packaged MiniLM embedded 51,475 texts in 370.9 s (138.8 texts/s; benchmarks.md, bench/prepare.py,
#   "Figures measured on 2026-11-21"); the hashing embedder 1,965 rows/s at 1M rows (benchmarks.md, bench/scale.py,
#   "The whole prepare at 300k and 1M rows, measured on 2026-12-03").
# - gradients and target_gradients: LoRA-gradient features at 1.99 examples/s (bf16 passes; benchmarks.md,
#   bench/gradients.py, measured on 2026-11-22); scale.md rounds it to "about 2 examples/s".
# - warmup: LoRA training at 110-130 tokens/s (benchmarks.md, bench/train.py, 2026-11-22), about 0.69 examples/s
#   at the 180 tokens of the gradients benchmark's mean example (125 / 180).
# - hidden_states: one forward pass per example, as perplexity alone: 3.7 examples/s (scale.md's table).
# - the heuristics scorer: its rules took 1.5 s (cut-off) and 0.35 s (near duplicates beyond the neighbour search)
#   over 52,272 rows (benchmarks.md, bench/heuristics.py, "Figures measured on 2026-12-03"): a floor, the faiss
#   neighbour search comes on top. LM scorers: core/score/cost.py's MEASURED_RATES.
REFERENCE_RATES: dict[str, float] = {
    "embeddings": 51_475 / 370.9,
    "embeddings:hashing": 1_965.0,
    "gradients": 1.99,
    "target_gradients": 1.99,
    "warmup": 125 / 180,
    "hidden_states": 3.7,
    "target_hidden_states": 3.7,
    "scores:heuristics": 52_272 / (1.5 + 0.35),
}
# The gradient graph compares all pairs: 63.6 s for 50,000 x 1,024 features, top 100 (benchmarks.md,
# bench/gradients.py --part graph, 2026-11-22), so its reference time grows as the square of the rows.
GRAPH_REFERENCE = (50_000, 63.6)
WARMUP_FRACTION = 0.05  # core.gradients.pipeline.GradientConfig.warmup_fraction's default


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One input a strategy reads: ``present`` or not; when missing, the ``rows`` to compute and the estimated
    ``seconds`` (None: no rate known) with their ``source`` (:data:`MEASURED` or :data:`REFERENCE`).

    ``need`` names it (``embeddings``, ``scores:ifd``, ``gradients``...); ``inputs`` are the (stage, key) pairs of
    the recorded stage runs that produced it, whose seconds a saved selection counts as its cost."""

    need: str
    what: str
    present: bool
    inputs: tuple[tuple[str, str], ...] = ()
    rows: int = 0
    seconds: float | None = None
    source: str = ""
    note: str = ""

    def estimate(self) -> str:
        """``"about 3 min (reference CPU)"``, ``"not measured"``; empty when present or nothing is known to compute."""
        if self.present or (self.seconds is None and not self.rows):
            return ""
        if self.seconds is None:
            return "not measured"
        return f"{about(self.seconds)} ({self.source})"

    def line(self) -> str:
        """One line for the CLI: ``"scores:ifd: missing, 2,000 rows, about 11 min (reference CPU); run ..."``."""
        if self.present:
            return f"{self.need}: present" + (f" ({self.note})" if self.note else "")
        parts = [f"{self.rows:,} rows" if self.rows else "", self.estimate()]
        told = ", ".join(part for part in parts if part)
        return f"{self.need}: missing" + (f", {told}" if told else "") + (f"; {self.note}" if self.note else "")


def about(seconds: float) -> str:
    """``"about 3 min"``; ``"under 1 s"`` rather than "about 0 s"."""
    return "under 1 s" if seconds < 1 else f"about {score_cost.duration(seconds)}"


@dataclasses.dataclass(frozen=True)
class Context:
    """What a check reads: the workspace, the dataset, the strategy, and this machine's device for model work."""

    store: Store
    dataset: DatasetInfo
    strategy: Any
    device: str


Check = Callable[[Context], list[Requirement]]


# ---------------------------------------------------------------- rates


def machine_device() -> str:
    """The device a model stage would run on here, without importing torch: ``CURATE_DEVICE``, else CUDA when
    torch is loaded and sees a GPU or the NVIDIA driver is present, else the CPU."""
    override = config.device_override()
    if override:
        return override.split(":")[0]
    torch = sys.modules.get("torch")
    if torch is not None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if Path("/proc/driver/nvidia/version").exists() else "cpu"


def measured_rate(
    store: Store, stage: str, device: str, *, scorer: str | None = None, key: str | None = None
) -> float | None:
    """The median rows per second of the workspace's recorded runs of ``stage`` (any dataset: a rate belongs
    to the machine), those of the same ``key`` and then those on ``device`` preferred; None when none ran."""
    found = stage_runs.runs(store, stage=stage, scorer=scorer)
    if key is not None:
        same = [run for run in found if run.key == key]
        # embedders differ by orders of magnitude (hashing against a transformer): another key's rate says nothing
        found = same if same or stage == "embeddings" else found
    chosen = [run for run in found if run.device == device] or found
    return statistics.median(run.rate for run in chosen) if chosen else None


def rate(ctx: Context, stage: str, *, scorer: str | None = None, key: str | None = None) -> tuple[float | None, str]:
    """(rows per second, source): measured here when the workspace has a run of the stage, else the reference."""
    measured = measured_rate(ctx.store, stage, ctx.device, scorer=scorer, key=key)
    if measured is not None:
        return measured, MEASURED
    if stage == "scores":
        reference = score_cost.rate(scorer or "") or REFERENCE_RATES.get(f"scores:{scorer}")
    elif stage == "embeddings":
        hashing = "hashing" in str((ctx.dataset.embedder or {}).get("name", ""))
        reference = REFERENCE_RATES["embeddings:hashing" if hashing else "embeddings"]
    else:
        reference = REFERENCE_RATES.get(stage)
    return reference, REFERENCE if reference is not None else ""


def estimate(ctx: Context, stage: str, rows: int, **match: Any) -> tuple[float | None, str]:
    """(seconds to compute ``rows`` rows of ``stage`` here, source), or (None, "") with no rate."""
    per_second, source = rate(ctx, stage, **match)
    if per_second is None:
        return None, ""
    return rows / max(per_second, 1e-9), source


def _combine(parts: list[tuple[float | None, str]]) -> tuple[float | None, str]:
    """Several estimates summed; None when one is unknown; the source names both when they differ."""
    if any(seconds is None for seconds, _ in parts):
        return None, ""
    sources = sorted({source for _, source in parts}, key=[MEASURED, REFERENCE].index)
    return sum(seconds or 0.0 for seconds, _ in parts), " + ".join(sources)


# ---------------------------------------------------------------- checks, one per need


def embeddings_check(ctx: Context) -> list[Requirement]:
    """Computed by the prepare: every prepared dataset has them (its clusters come from them)."""
    key = ctx.dataset.embedder_key or ""
    name = (ctx.dataset.embedder or {}).get("name", "the embedder")
    return [Requirement("embeddings", f"sentence embeddings ({name})", True, (("embeddings", key),))]


# The scorers a raw score comes from, the cheapest first (a strategy's ``quality`` may name any score).
SCORE_SOURCES: dict[str, tuple[str, ...]] = {
    "perplexity": ("perplexity", "ifd"),
    "perplexity_alone": ("ifd",),
    "instruction_does_not_help": ("ifd",),
    "response_tokens": ("perplexity",),
    "response_length": ("heuristics",),
    "cut_off_response": ("heuristics",),
    "gibberish": ("heuristics",),
    "arithmetic_error": ("heuristics",),
    "near_duplicate": ("heuristics",),
}
# Strategies that read a fixed score whatever their parameters.
FIXED_SCORES: dict[str, tuple[str, ...]] = {"ifd_topk": ("ifd",), "iterit_greedy": ("ifd",)}


def scores_read(strategy: Any) -> list[str]:
    """The scores a strategy reads: ``combined`` (the combined quality: any scorer's output), or raw score
    names; from its registry name or its ``quality`` parameter."""
    if strategy.name in FIXED_SCORES:
        return list(FIXED_SCORES[strategy.name])
    declared = getattr(strategy, "scores", None)  # a strategy may declare the score names it reads
    if isinstance(declared, tuple | list | frozenset):
        return [str(name) for name in declared]
    return [str(getattr(strategy, "quality", "combined") or "combined")]


def scores_check(ctx: Context) -> list[Requirement]:
    """One requirement per scorer read: for ``combined`` every scorer that has run (the heuristics, the cheapest,
    when none has), else the scorer of each raw score."""
    latest = score_store.latest_keys(ctx.store, ctx.dataset.dataset_id)
    found: list[Requirement] = []
    for score in scores_read(ctx.strategy):
        if score == "combined":
            scorers = list(latest) or ["heuristics"]
            what = "combined quality"
        else:
            sources = SCORE_SOURCES.get(score, (score,))
            scorers = [next((s for s in sources if s in latest), sources[0])]
            what = f"the {score!r} score"
        found += [_scorer_requirement(ctx, scorer, latest.get(scorer), what) for scorer in scorers]
    return list({req.need: req for req in found}.values())


def _scorer_requirement(ctx: Context, scorer: str, key: str | None, what: str) -> Requirement:
    scored, total = score_store.coverage(ctx.store, ctx.dataset.dataset_id, key)
    need = f"scores:{scorer}"
    if key is not None:
        note = f"{scored:,} of {total:,} examples scored" if scored < total else ""
        return Requirement(need, f"{what}: {scorer} scores", True, (("scores", key),), note=note)
    seconds, source = estimate(ctx, "scores", total, scorer=scorer)
    note = f"run the {scorer} scorer (Quality page, or `python -m core score --scorer {scorer}`)"
    return Requirement(need, f"{what}: {scorer} scores", False, rows=total, seconds=seconds, source=source, note=note)


def _pool_set(ctx: Context) -> Any:
    from core.errors import MissingGradients
    from core.gradients import pipeline

    try:
        return pipeline.pool_set(ctx.store, ctx.dataset.dataset_id)
    except MissingGradients:
        return None


GRADIENTS_NOTE = "compute them on the Gradient graph page or with `python -m core gradients`"


def gradients_check(ctx: Context) -> list[Requirement]:
    """The pool's LoRA-gradient features (and the warmup that precedes them)."""
    info = _pool_set(ctx)
    what = "LoRA-gradient features of every example"
    if info is not None:
        return [Requirement("gradients", what, True, (("warmup", info.feature_key), ("gradients", info.feature_key)))]
    rows = ctx.dataset.n_rows
    warmup_rows = max(1, round(WARMUP_FRACTION * rows))
    seconds, source = _combine([estimate(ctx, "warmup", warmup_rows), estimate(ctx, "gradients", rows)])
    return [Requirement("gradients", what, False, rows=rows, seconds=seconds, source=source, note=GRADIENTS_NOTE)]


def graph_check(ctx: Context) -> list[Requirement]:
    """The top-M neighbour graph of the pool's gradient features (computed with them)."""
    from core.storage import gradients as gstore

    info = _pool_set(ctx)
    what = "gradient neighbour graph"
    if info is not None and gstore.has_edges(ctx.store, info.feature_key):
        return [Requirement("graph", what, True, (("graph", info.feature_key),))]
    rows = ctx.dataset.n_rows
    measured = measured_rate(ctx.store, "graph", ctx.device)
    if measured is not None:
        seconds, source = rows / measured, MEASURED
    else:  # all pairs: the reference time grows with the square of the rows
        reference_rows, reference_seconds = GRAPH_REFERENCE
        seconds, source = reference_seconds * (rows / reference_rows) ** 2, REFERENCE
    return [Requirement("graph", what, False, rows=rows, seconds=seconds, source=source, note=GRADIENTS_NOTE)]


def _target_rows(ctx: Context) -> tuple[list[int], str]:
    """The answered rows of each target file of the strategy's ``target`` (what gradients are computed for),
    or an empty list and why."""
    from core.gradients import target_report
    from core.gradients.pipeline import target_paths
    from core.train.evaluate import load_eval_set

    paths = target_paths(str(getattr(ctx.strategy, "target", "") or ""))
    if not paths:
        return [], "choose a target set"
    try:
        return [target_report.describe(load_eval_set(path)).answered for path in paths], ""
    except (OSError, ValueError) as exc:  # an unreadable target: the run itself names the file and the line
        return [], str(exc).splitlines()[0][:200]


def target_check(ctx: Context) -> list[Requirement]:
    """The target set's LoRA-gradient features, under the pool's adapter and projection."""
    from core.errors import MissingGradients
    from core.gradients.pipeline import target_paths, target_sets

    what = "LoRA-gradient features of the target set"
    counts, problem = _target_rows(ctx)
    if problem:
        return [Requirement("target", what, False, note=problem)]
    info = _pool_set(ctx)
    if info is not None:
        try:
            found = target_sets(ctx.store, info, target_paths(str(ctx.strategy.target)))
            return [Requirement("target", what, True, tuple(("target_gradients", s.feature_key) for s in found))]
        except (MissingGradients, OSError, ValueError):
            pass
    rows = sum(counts)
    seconds, source = estimate(ctx, "target_gradients", rows)
    note = "computed with the pool's features (`python -m core gradients --target FILE`)"
    return [Requirement("target", what, False, rows=rows, seconds=seconds, source=source, note=note)]


def target_embeddings_check(ctx: Context) -> list[Requirement]:
    """The target rows embedded with the dataset's embedder: done inside the selection, so in its own time."""
    counts, problem = _target_rows(ctx)
    what = "sentence embeddings of the target set"
    if problem:
        return [Requirement("target_embeddings", what, False, note=problem)]
    return [Requirement("target_embeddings", what, True, note=f"{sum(counts):,} rows, embedded during the selection")]


def data_check(ctx: Context, need: str) -> list[Requirement]:
    """A need read from the dataset itself (the response texts, strata): nothing to compute."""
    return [Requirement(need, f"{need} (from the data)", True)]


def recorded_check(ctx: Context, need: str) -> list[Requirement]:
    """A need computed by a stage that records its runs under the need's own name (e.g. ``hidden_states``): present
    when the dataset has such a run; else every row to compute at that stage's rate."""
    done = stage_runs.runs(ctx.store, stage=need, dataset_id=ctx.dataset.dataset_id)
    what = need.replace("_", " ")
    if done:
        return [Requirement(need, what, True, tuple(sorted({(need, run.key) for run in done})))]
    rows = ctx.dataset.n_rows
    if need.startswith("target_"):
        counts, problem = _target_rows(ctx)
        if problem:
            return [Requirement(need, what, False, note=problem)]
        rows = sum(counts)
    seconds, source = estimate(ctx, need, rows)
    return [Requirement(need, what, False, rows=rows, seconds=seconds, source=source)]


def hidden_states_check(ctx: Context) -> list[Requirement]:
    """The base model's pooled hidden states of every example (RDS+): present when the workspace holds a pool set
    of them (core/storage/hidden.py, looked up by name so this works with or without that module), else as
    :func:`recorded_check` says."""
    try:
        hidden = importlib.import_module("core.storage.hidden")
    except ImportError:
        return recorded_check(ctx, "hidden_states")
    sets = [s for s in hidden.list_sets(ctx.store, ctx.dataset.dataset_id) if getattr(s, "role", "") == "pool"]
    if not sets:
        return recorded_check(ctx, "hidden_states")
    inputs = (("hidden_states", str(sets[0].feature_key)),)
    return [Requirement("hidden_states", "pooled hidden states of every example", True, inputs)]


CHECKS: dict[str, Check] = {
    "embeddings": embeddings_check,
    "scores": scores_check,
    "gradients": gradients_check,
    "graph": graph_check,
    "target": target_check,
    "target_embeddings": target_embeddings_check,
    "hidden_states": hidden_states_check,
    "outputs": lambda ctx: data_check(ctx, "outputs"),
    "strata": lambda ctx: data_check(ctx, "strata"),
}
"""One check per need; another stage's module may add its own (``needs.CHECKS["hidden_states"] = check``)."""
# the order the needs are listed in: what the prepare computes, then scores, then the gradient stages
_ORDER = (
    "embeddings",
    "outputs",
    "strata",
    "scores",
    "gradients",
    "graph",
    "target",
    "target_embeddings",
    "hidden_states",
)


def requirements(store: Store, dataset: DatasetInfo, strategy: SelectionStrategy) -> list[Requirement]:
    """Every input ``strategy`` reads on ``dataset``, present or missing with its estimated time here. The
    embeddings always come first: every strategy selects from the clusters computed on them."""
    ctx = Context(store, dataset, strategy, machine_device())
    needs = {"embeddings", *strategy.needs}
    ordered = sorted(needs, key=lambda need: (_ORDER.index(need) if need in _ORDER else len(_ORDER), need))
    found: list[Requirement] = []
    for need in ordered:
        check = CHECKS.get(need)
        found += check(ctx) if check else recorded_check(ctx, need)
    return found


def missing(found: list[Requirement]) -> list[Requirement]:
    return [req for req in found if not req.present]


def strategy_estimate(name: str, rows: int, budget: float, candidates: int = 0) -> tuple[float | None, str]:
    """The strategy's own projected seconds on ``rows`` (the dataset's rows bound the pool) and its source."""
    from core.select.pool import resolve_budget

    if name not in select_cost.COSTS:
        return None, ""
    try:
        count = resolve_budget(budget, rows, rows)
    except ValueError:
        return None, ""
    seconds = select_cost.projected_seconds(name, rows, count, candidates)
    return seconds, REFERENCE if seconds is not None else ""


def summary_lines(found: list[Requirement], strategy_seconds: tuple[float | None, str] = (None, "")) -> list[str]:
    """What the CLI prints before a selection with something missing: one line per requirement, then the total."""
    lines = [req.line() for req in found]
    seconds, source = strategy_seconds
    if seconds is not None:
        lines.append(f"select: {about(seconds)} ({source})")
    todo = missing(found)
    known = [req.seconds for req in todo if req.seconds is not None]
    if todo and known:
        unknown = " (and what is not measured)" if len(known) < len(todo) else ""
        lines.append(f"to compute first: {about(sum(known))}{unknown}")
    return lines


# ---------------------------------------------------------------- recorded after


def selection_cost(store: Store, dataset: DatasetInfo, result: SelectionResult) -> dict[str, Any]:
    """The compute a selection consumed: per input it used, the seconds of the dataset's recorded stage runs
    that produced it (``scores:<scorer>``, ``embeddings``, ``gradients``...), plus ``select``, the strategy's own
    seconds; the devices those ran on (most seconds first) and the total. ``unrecorded`` names inputs with no
    recorded run (computed before runs were recorded, or in another workspace)."""
    from core.select.strategies import STRATEGIES

    name = str(result.strategy.get("name", ""))
    if name in STRATEGIES.names():
        params = {key: value for key, value in result.strategy.items() if key != "name"}
        found = requirements(store, dataset, STRATEGIES.build(name, **params))
    else:  # a loop's final selection: its clusters come from the embeddings
        found = embeddings_check(Context(store, dataset, None, "cpu"))
    seconds: dict[str, float] = {}
    unrecorded: list[str] = []
    used: list[stage_runs.StageRun] = []
    for req in found:
        if not req.present or not req.inputs:
            continue
        scorer = req.need.removeprefix("scores:")
        if req.need.startswith("scores:") and scorer in result.score_keys:  # the key the selection read
            req = dataclasses.replace(req, inputs=(("scores", result.score_keys[scorer]),))
        runs = [run for stage, key in req.inputs for run in _runs_of(store, dataset.dataset_id, stage, key)]
        spent, used = sum(run.seconds for run in runs), used + runs
        if spent > 0:
            seconds[req.need] = round(spent, 6)
        else:
            unrecorded.append(req.need)
    seconds["select"] = round(float(result.seconds), 6)
    by_device: dict[str, float] = {}
    for run in used:
        by_device[run.device] = by_device.get(run.device, 0.0) + run.seconds
    devices = sorted(by_device, key=lambda device: -by_device[device])
    devices += [] if "cpu" in devices else ["cpu"]  # the strategy itself runs in this process, on the CPU
    cost: dict[str, Any] = {"device": ", ".join(devices), "seconds": seconds, "total": round(sum(seconds.values()), 6)}
    if unrecorded:
        cost["unrecorded"] = unrecorded
    return cost


def _runs_of(store: Store, dataset_id: int, stage: str, key: str) -> list[stage_runs.StageRun]:
    return [run for run in stage_runs.runs(store, stage=stage, dataset_id=dataset_id) if run.key == key]
