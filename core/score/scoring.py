"""Score a dataset with a registered scorer: estimate first, then chunks committed one by one (resumable).

Scores already stored for the same scorer key and example content are reused, so scoring again costs
nothing and an interrupted run resumes where it stopped. ``limit`` scores a seeded sample of the unscored
examples stratified by cluster (proportional to each cluster's unscored count, at least one per cluster), so a
partial run covers every cluster; ``only`` restricts scoring to given
examples (a resumed job finishes the sample it drew instead of drawing another). A scorer's model is
loaded before any work, so a bad model path fails at once with one clear line (:class:`ModelLoadError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.engines import SHARD_FOLDER, Engine, EngineReport, LocalEngine, RowsProgress, example_table
from core.errors import ModelLoadError
from core.progress import Progress
from core.registry import spec_of
from core.score.scorers import SCORERS, Scorer
from core.score.stage import ScoreStage, for_device, table_values
from core.storage import scores as score_store
from core.storage import stage_runs
from core.storage.database import Store
from core.storage.datasets import DatasetInfo, assignments, example_hashes, example_texts


@dataclasses.dataclass
class ScoreReport:
    """What one scoring call did."""

    scorer: str
    score_key: str
    scored: int
    cached: int
    seconds: float
    engine: dict[str, Any] | None = None  # a model scorer's engine run (core.engines.EngineReport as a dict)
    tally: dict[str, float] | None = None  # a scorer's own counts of this run (the judge: rated, unparsed, failed)


def build_scorer(name: str, **params: Any) -> Scorer:
    """A scorer from its registry name and parameters (``None`` values mean the default)."""
    return SCORERS.build(name, **{k: v for k, v in params.items() if v is not None})


def _examples(store: Store, dataset_id: int, texts: bool = True) -> pd.DataFrame:
    """The dataset's unique examples (first row of each content), with what a scorer reads (``texts=False``:
    row_idx and content_hash only, what keys and counts need; a million rows' texts are about 1 GB)."""
    if texts:
        frame = example_texts(store, dataset_id)[["row_idx", "content_hash", "instruction", "input", "output"]]
    else:
        frame = example_hashes(store, dataset_id)
    return frame.drop_duplicates("content_hash").reset_index(drop=True)


def score_key_for(store: Store, dataset: DatasetInfo, scorer: Scorer) -> str:
    """The scorer's key; for set-dependent scorers (TF-IDF) also the hash of the dataset's set of texts (in row
    order for an ``order_dependent`` one: MinHash keeps the first row of a group), and for one that
    ``needs_quality`` the hash of the qualities it is given."""
    key = scorer.score_key()
    if scorer.set_dependent:
        hashes = list(_examples(store, dataset.dataset_id, texts=False).content_hash)
        if not getattr(scorer, "order_dependent", False):
            hashes.sort()
        key += ":set=" + hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
    if getattr(scorer, "needs_quality", False):
        values = np.round(_quality_for(store, dataset, scorer).to_numpy(dtype=float), 6)
        key += ":quality=" + hashlib.sha256(values.tobytes()).hexdigest()[:16]
    return key


def _quality_for(store: Store, dataset: DatasetInfo, scorer: Scorer) -> pd.Series:
    """Every row's combined quality with the default weights, without the signals the scorer ignores (its own)."""
    from core.score import quality

    ignored = getattr(scorer, "ignores_signals", frozenset())
    weights = {name: weight for name, weight in quality.DEFAULT_WEIGHTS.items() if name not in ignored}
    return quality.example_quality(store, dataset, weights)


def pending(
    store: Store,
    dataset: DatasetInfo,
    scorer: Scorer,
    limit: int | None,
    seed: int = 0,
    only: Collection[str] | None = None,
) -> pd.DataFrame:
    """The unique examples still to score: a seeded sample of ``limit`` of them stratified by the active
    clusters (:func:`stratified_sample`) when given, or those of the content hashes ``only`` (then ``limit`` is
    ignored)."""
    examples = _examples(store, dataset.dataset_id)
    done = _done_hashes(store, score_key_for(store, dataset, scorer), scorer)
    todo = examples[~examples.content_hash.isin(done)]
    if only is not None:
        return todo[todo.content_hash.isin(set(only))]
    if limit is not None and len(todo) > limit and not scorer.set_dependent:
        clusters = _clusters_of(store, dataset, todo)
        todo = todo.iloc[np.sort(stratified_sample(clusters, limit, seed))]
    return todo


def _done_hashes(store: Store, key: str, scorer: Scorer) -> set[str]:
    """The content hashes with scores under ``key``, less those the scorer's ``retry_flag`` marks (the judge's
    failed requests): those are sent again rather than cached."""
    done = score_store.scored_hashes(store, key)
    flag = getattr(scorer, "retry_flag", None)
    return done - score_store.flagged_hashes(store, key, flag) if flag else done


def _clusters_of(store: Store, dataset: DatasetInfo, frame: pd.DataFrame) -> np.ndarray:
    """The active cluster of each row of ``frame`` (all zero before a clustering exists)."""
    if dataset.active_k is None:
        return np.zeros(len(frame), dtype=int)
    return assignments(store, dataset.dataset_id, int(dataset.active_k))[frame.row_idx.to_numpy()]


def stratified_quotas(sizes: np.ndarray, limit: int) -> np.ndarray:
    """How many to draw from each cluster: one from each (while ``limit`` allows, largest clusters first),
    the rest proportional to the sizes left, rounded by largest remainder, never above a cluster's size.

    A uniform sample of a few hundred from a million rows misses the small clusters entirely, and the Quality
    page ranks clusters: each needs at least one score to be ranked at all.
    """
    sizes = np.asarray(sizes, dtype=int)
    quotas = np.zeros(len(sizes), dtype=int)
    order = np.argsort(-sizes, kind="stable")
    quotas[order[: min(limit, len(sizes))]] = 1
    while (left := min(limit, int(sizes.sum())) - int(quotas.sum())) > 0:
        room = (sizes - quotas).astype(float)
        exact = room / room.sum() * left
        extra = np.floor(exact).astype(int)
        rest = left - int(extra.sum())
        extra[np.lexsort((np.arange(len(sizes)), -(exact - extra)))[:rest]] += 1
        quotas = np.minimum(quotas + extra, sizes)
    return quotas


def stratified_sample(clusters: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Positions of a seeded sample of ``limit`` rows with :func:`stratified_quotas` per cluster."""
    rng = np.random.default_rng(seed)
    ids, inverse, sizes = np.unique(clusters, return_inverse=True, return_counts=True)
    quotas = stratified_quotas(sizes, limit)
    picks = [rng.choice(np.flatnonzero(inverse == i), quotas[i], replace=False) for i in range(len(ids))]
    return np.concatenate(picks) if picks else np.zeros(0, dtype=int)


def load_model(scorer: Scorer) -> None:
    """Load the scorer's model now (it stays cached in this process), so a bad model fails before any work
    with a :class:`ModelLoadError` (see :func:`checked_load`)."""
    model = getattr(scorer, "model", None)
    if not scorer.uses_model or not isinstance(model, str) or not model:
        return
    from core.models.lm import load_causal_lm, load_reward_model

    checked_load(load_reward_model if scorer.name == "reward" else load_causal_lm, model)


def checked_load(loader: Callable[[str], Any], model: str) -> Any:
    """``loader(model)``, a failure becoming a :class:`ModelLoadError` that names the model and the reason on
    one line: the libraries' own message for a bad path is unclear (``Repo id must be in the form ...``),
    spans lines, and its exception types (OSError) escape the CLI's error handling."""
    try:
        return loader(model)
    except Exception as exc:
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
            raise  # not the model's fault: the worker explains running out of memory
        raise ModelLoadError(f"cannot load the model {model!r}: {_load_problem(model, exc)}") from exc


def _load_problem(model: str, exc: Exception) -> str:
    """One line saying why ``model`` did not load."""
    path = Path(model).expanduser()
    if model.startswith(("/", "./", "../", "~")) and not path.exists():
        return "no such file or folder"
    if path.is_dir() and not (path / "config.json").exists() and "gguf" not in model.lower():
        return "the folder has no config.json (is it a Hugging Face model folder?)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def estimate_seconds(scorer: Scorer, todo: pd.DataFrame, sample: int = 8) -> tuple[float, float]:
    """(examples per second measured on a small sample on this device, projected seconds for ``todo``)."""
    if todo.empty:
        return float("inf"), 0.0
    load_model(scorer)
    probe = todo.head(sample)
    scorer.score(probe.head(1))  # warm-up: loads the model once, outside the timing
    start = time.perf_counter()
    scorer.score(probe)
    rate = len(probe) / max(time.perf_counter() - start, 1e-9)
    return rate, len(todo) / rate


def score_dataset(
    store: Store,
    dataset: DatasetInfo,
    scorer: Scorer,
    *,
    limit: int | None = None,
    only: Collection[str] | None = None,
    chunk: int = 128,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> ScoreReport:
    """Score the dataset's unscored examples (see :func:`pending` for ``limit`` and ``only``), committing
    every ``chunk`` examples. A model scorer runs on ``engine`` (default: this process; on a Ray cluster each
    chunk is a shard); a model-free one always runs here.

    128 examples are about 45 s of LM scoring on a 2-core CPU: little to redo after a cancel, and enough
    sequences per chunk for the length-sorted batches to pack with little padding.
    """
    progress = progress or Progress()
    started = time.perf_counter()
    if engine is not None and engine.name != "local" and scorer.uses_model:
        scorer = for_device(scorer, engine.device())  # the key names the precision the workers compute in
    # a stage from the start: until the first one a job's bar read "0/0" while the unscored rows were found
    progress.start("find unscored examples", 1)
    key = score_key_for(store, dataset, scorer)
    score_store.register_run(store, key, scorer.name, spec_of(scorer))
    todo = pending(store, dataset, scorer, limit, only=only)
    hashes = _examples(store, dataset.dataset_id, texts=False).content_hash  # no texts: pending read them once
    cached = int(hashes.isin(_done_hashes(store, key, scorer)).sum())
    computing = time.perf_counter()  # the model's load counts: a first run pays it too
    if not todo.empty:
        load_model(scorer)
    progress.start(f"score {scorer.name}", len(todo))
    if scorer.uses_model and not scorer.set_dependent:
        run = _score_on_engine(store, scorer, key, todo, chunk, progress, engine or LocalEngine())
        _record(store, dataset, scorer, key, len(todo), time.perf_counter() - computing, engine)
        seconds = time.perf_counter() - started
        return ScoreReport(scorer.name, key, len(todo), cached, seconds, dataclasses.asdict(run))
    if getattr(scorer, "needs_embeddings", False):
        todo = _with_embeddings(store, dataset, todo)
    if getattr(scorer, "needs_quality", False):  # MinHash's keep=quality
        todo = todo.assign(quality=_quality_for(store, dataset, scorer).to_numpy()[todo.row_idx.to_numpy()])
    step = len(todo) if scorer.set_dependent else min(chunk, getattr(scorer, "chunk_rows", chunk))
    totals: dict[str, float] | None = {} if hasattr(scorer, "tally") else None
    for begin in range(0, len(todo), max(step, 1)):
        part = todo.iloc[begin : begin + step]
        # a set-dependent scorer scores every row in one call: its own reports move the bar meanwhile. A
        # chunked scorer's count moves only after each chunk is committed, so the count a job reports (and a
        # kill or a cancel leaves) is always what the store holds
        reported = RowsProgress(progress, len(part) if scorer.set_dependent else 0)
        values = scorer.score(part, progress=reported)
        score_store.put_scores(store, key, list(part.content_hash), values)
        if totals is not None:  # the judge's running counts and rate: the CLI's postfix, a job's message
            totals = _add(totals, scorer.tally(values))  # type: ignore[attr-defined]
            elapsed = time.perf_counter() - computing
            progress.note(scorer.run_note(totals, begin + len(part), len(todo), elapsed))  # type: ignore[attr-defined]
        progress.advance(len(part) - reported.done)  # a cancel stops here, after this chunk was committed
    _record(store, dataset, scorer, key, len(todo), time.perf_counter() - computing, None)  # model-free: here
    return ScoreReport(scorer.name, key, len(todo), cached, time.perf_counter() - started, tally=totals)


def _add(totals: dict[str, float], more: dict[str, float]) -> dict[str, float]:
    names = [*totals, *(name for name in more if name not in totals)]
    return {name: totals.get(name, 0.0) + more.get(name, 0.0) for name in names}


def _record(
    store: Store, dataset: DatasetInfo, scorer: Scorer, key: str, rows: int, seconds: float, engine: Engine | None
) -> None:
    """The run's rows and seconds into the workspace's measured rates (nothing when every row was cached)."""
    stage_runs.record(
        store,
        dataset.dataset_id,
        stage="scores",
        scorer=scorer.name,
        key=key,
        rows=rows,
        seconds=seconds,
        device=stage_runs.device_of(engine) if scorer.uses_model else getattr(scorer, "run_device", "cpu"),
        engine=stage_runs.engine_name(engine if scorer.uses_model else None),
    )


def _score_on_engine(
    store: Store, scorer: Scorer, key: str, todo: pd.DataFrame, chunk: int, progress: Progress, engine: Engine
) -> EngineReport:
    """A model scorer's parts computed on ``engine``, each committed as it finishes."""
    import pyarrow as pa

    inputs = example_table(todo.content_hash, todo)

    def merge(table: pa.Table) -> None:
        hashes, values = table_values(table)
        score_store.put_scores(store, key, hashes, values)

    return engine.run(
        ScoreStage(scorer, key),
        [inputs],
        merge,
        folder=store.workspace / SHARD_FOLDER,
        shard_rows=chunk,
        total=len(todo),
        progress=progress,
    )


def _with_embeddings(store: Store, dataset: DatasetInfo, frame: pd.DataFrame) -> pd.DataFrame:
    from core.storage.datasets import load_embeddings

    embeddings = load_embeddings(store, dataset.dataset_id, dataset.embedder_key or "")
    return frame.assign(embedding=list(embeddings[frame.row_idx.to_numpy()]))


def cluster_summary(store: Store, dataset: DatasetInfo) -> pd.DataFrame:
    """Per cluster of the active k: size, scored count, mean and standard deviation of every stored score."""
    from core.storage import curation

    keys = list(score_store.latest_keys(store, dataset.dataset_id).values())
    values = score_store.dataset_scores(store, dataset.dataset_id, keys)
    table = curation.clusters(store, dataset.dataset_id, int(dataset.active_k))[["cluster_id", "label", "size"]]
    values = values.assign(cluster_id=assignments(store, dataset.dataset_id, int(dataset.active_k)))
    if values.shape[1] == 1:
        return table
    grouped = values.groupby("cluster_id")
    stats = grouped.agg(["mean", "std"])
    stats.columns = [f"{name}_{stat}" for name, stat in stats.columns]
    first = values.columns[0]
    stats["scored"] = grouped[first].count()
    return table.merge(stats.reset_index(), on="cluster_id", how="left").replace({np.nan: None})
