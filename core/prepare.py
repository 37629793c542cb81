"""Prepare a dataset: ingest -> embed (cached) -> k sweep with diagnostics -> labels -> 2-D map.

The CLI, the background worker and the tests call these functions alike. Each stage commits its own
results, so a cancelled or crashed prepare resumes where it stopped: re-preparing the same file under
the same name skips what is stored, and embeddings are cached by (embedder, text hash) across datasets.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import config, ingest
from core.cluster import clustering, labels
from core.cluster.reduce import DEFAULT_REDUCER, MAP_SAMPLE, MAP_SAMPLE_ABOVE, REDUCERS
from core.embed.embedders import build_embedder
from core.embed.stage import EmbedStage, for_device, table_vectors
from core.engines import SHARD_FOLDER, Engine, EngineReport, LocalEngine
from core.errors import DatasetExists, DatasetNotFound
from core.ingest.hf import HFSource, default_name, is_hf_source
from core.progress import Progress
from core.registry import spec_of
from core.safe_paths import check_dataset_name
from core.storage import curation, search, stage_runs
from core.storage import datasets as ds
from core.storage.database import Store
from core.storage.staging import ExampleStaging

EMBED_CHUNK = 1024
READ_CHUNK = 16 * EMBED_CHUNK  # rows of text read from the store at a time while embedding
WRITE_SECONDS = 30.0  # vectors are committed after this long of embedding, or config.embed_write_rows() of them


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """Everything that shapes a prepare; stored with the dataset so the result can be reproduced."""

    name: str | None = None
    mapping: dict[str, str | None] | None = None
    skip_bad_rows: bool = False
    embedder: dict[str, Any] | None = None
    embed_fields: tuple[str, ...] = ("instruction", "input")
    k_grid: tuple[int, ...] | None = None
    seed: int = 0
    silhouette_sample: int = 10_000
    replace: bool = False
    # Above sweep_sample_above rows each k-means of the sweep is fitted on a seeded sweep_sample-row sample and
    # every row assigned to its nearest centroid; above map_sample_above rows the map is fitted on a seeded
    # map_sample-row sample and the other rows placed (core/cluster/reduce.py); above sweep_sample_above rows
    # each cluster's label is read from at most label_texts_per_cluster of its texts (seeded).
    sweep_sample_above: int = clustering.FIT_SAMPLE_ABOVE
    sweep_sample: int = clustering.FIT_SAMPLE
    map_sample_above: int = MAP_SAMPLE_ABOVE
    map_sample: int = MAP_SAMPLE
    label_texts_per_cluster: int = labels.TEXTS_PER_CLUSTER
    # A Hugging Face source (hf:ORG/NAME, or a folder: core/ingest/hf.py): its config, its split (None: the only
    # one, else train) and whether to stream it rather than download it whole into the datasets cache first.
    hf_config: str | None = None
    hf_split: str | None = None
    hf_streaming: bool = False


@dataclasses.dataclass
class PrepareReport:
    """What a prepare did, for the CLI, the job status and the benchmark."""

    dataset_id: int
    name: str
    n_rows: int
    n_skipped: int
    skipped: list[str]
    reused: bool
    embedded: int = 0
    embeddings_cached: int = 0
    best_k: int | None = None
    knee_k: int | None = None
    active_k: int | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    sample_notes: list[str] = dataclasses.field(default_factory=list)  # which stages ran on a sample, and how
    engine: dict[str, Any] | None = None  # the embedding's engine run (core.engines.EngineReport as a dict)


# bench/prepare.py on the reference 2-core CPU (docs/benchmarks.md): 51,772 rows in 9.4 min with the packaged
# sentence embedder, embedding being most of it; what the home page quotes before a first prepare.
PREPARE_ROWS_PER_SECOND = 51_772 / (9.4 * 60)


def prepare(
    store: Store,
    path: str | Path,
    options: PrepareOptions,
    progress: Progress | None = None,
    *,
    batch_rows: int = ingest.BATCH_ROWS,
    engine: Engine | None = None,
) -> PrepareReport:
    """Ingest ``path`` into ``store`` and compute embeddings (on ``engine``, default this process), the k sweep,
    labels and the map.

    ``path`` is a file, or a Hugging Face source (``hf:ORG/NAME``, a ``save_to_disk`` folder, a folder of Parquet
    shards) read with the options' ``hf_config``, ``hf_split`` and ``hf_streaming``. The rows are read
    ``batch_rows`` at a time into a staging file, so memory does not grow with them.
    """
    progress = progress or Progress()
    source = source_of(path, options)
    name = dataset_name(path, options)
    for field in options.embed_fields:
        if field not in ingest.MAPPABLE_FIELDS:
            raise ValueError(f"cannot embed field {field!r}; choose from {ingest.MAPPABLE_FIELDS}")
    timer = _Timer()
    with ExampleStaging(store.workspace) as staged:  # the file's rows, until they are known to be good
        with timer("ingest"):
            found = _read_into(staged, source, options, batch_rows, progress)
        label = source.spec if isinstance(source, HFSource) else source.name
        grid = _k_grid(label, options.k_grid, found.n_rows)  # checked before anything is stored
        embedder = _embedder_for(options, engine)
        info = _existing(store, name, found, options, embedder)
        if info is not None and info.status == "ready":
            return _report(info, reused=True, seconds=timer.seconds)
        if info is None:
            with timer("store"):
                dataset_id = ds.insert_dataset(
                    store,
                    found,
                    staged,
                    name=name,
                    embedder=spec_of(embedder),
                    embedder_key=embedder.cache_key(),
                    embed_fields=list(options.embed_fields),
                    seed=options.seed,
                )
        else:
            dataset_id = info.dataset_id
    with timer("embed"):
        embedded, cached, run = embed_missing(store, embedder, dataset_id, options.embed_fields, progress, engine)
    with timer("load"):
        embeddings = ds.load_embeddings(store, dataset_id, embedder.cache_key())
    with timer("k_sweep"):
        choice = run_sweep(
            store,
            dataset_id,
            embeddings,
            TextReader(store, dataset_id, options.embed_fields),
            grid,
            seed=options.seed,
            silhouette_sample=options.silhouette_sample,
            progress=progress,
            sampling=SweepSampling(options.sweep_sample_above, options.sweep_sample, options.label_texts_per_cluster),
        )
    ds.update_dataset(store, dataset_id, k_grid=grid, best_k=choice.best_k, knee_k=choice.knee_k, active_k=choice.k)
    progress.start("map", 1)
    reducer = REDUCERS.build(
        DEFAULT_REDUCER, seed=options.seed, fit_sample_above=options.map_sample_above, sample_size=options.map_sample
    )
    with timer("umap"):
        coords = reducer.reduce(embeddings)
    with timer("store"):
        ds.save_map(store, dataset_id, coords)
    with timer("search_index"):
        search.build_index(store, dataset_id)
    progress.advance()  # the last point where a cancel stops the prepare; after it the dataset is ready
    ds.update_dataset(store, dataset_id, status="ready")
    report = _report(ds.get_dataset(store, dataset_id), reused=False, seconds=timer.seconds)
    report.embedded, report.embeddings_cached = embedded, cached
    report.engine = dataclasses.asdict(run)
    report.sample_notes = _sample_notes(store, report, options)
    return report


def _sample_notes(store: Store, report: PrepareReport, options: PrepareOptions) -> list[str]:
    """One line per stage that ran on a sample (the sweep, the map), for the CLI and the job status."""
    notes = []
    sweep = clustering.sample_note(stored_sweep(store, report.dataset_id), report.n_rows)
    if sweep:
        notes.append(sweep)
    if report.n_rows > options.map_sample_above and options.map_sample < report.n_rows:
        notes.append(
            f"map fitted on a {options.map_sample:,}-row sample, the other {report.n_rows - options.map_sample:,} "
            "rows placed by their nearest sample rows."
        )
    return notes


def source_of(path: str | Path, options: PrepareOptions) -> Path | HFSource:
    """What a prepare reads: the file at ``path``, or the Hugging Face source it names (``hf:...`` or a folder)."""
    if is_hf_source(path):
        return HFSource(str(path), options.hf_config, options.hf_split, options.hf_streaming)
    return Path(path)


def dataset_name(path: str | Path, options: PrepareOptions) -> str:
    """The name a prepare gives its dataset: the one asked for, else the file's stem (a Hugging Face dataset's
    name, :func:`core.ingest.hf.default_name`); ValueError when that cannot name a dataset (see
    :func:`core.safe_paths.check_dataset_name`)."""
    if options.name is not None:
        return check_dataset_name(options.name)
    source = source_of(path, options)
    stem = default_name(source) if isinstance(source, HFSource) else source.stem
    try:
        return check_dataset_name(stem)
    except ValueError as exc:
        raise ValueError(f"{exc} (the name comes from the source's name: give the dataset a name)") from None


def _read_into(
    staged: ExampleStaging, source: Path | HFSource, options: PrepareOptions, batch_rows: int, progress: Progress
) -> ingest.IngestSummary:
    """Read the source batch by batch into ``staged``, each row with the hash of its embedded text; raises the
    source's IngestError, or Cancelled between batches (the staged rows are then dropped with the staging file).

    Progress counts a file's bytes read (its size is known before the first row, its row count only after
    the last), so a million rows show a percentage rather than one step at the end; a Hugging Face dataset's
    rows (a streamed one's count may be unknown: then the count grows with no total)."""
    stream = ingest.DatasetStream(
        source, mapping=options.mapping, skip_bad_rows=options.skip_bad_rows, batch_rows=batch_rows
    )
    progress.start(stream.progress_stage, stream.total)
    for batch in stream.batches():
        staged.add(batch, [_text_hash(example, options.embed_fields) for example in batch])
        _advance_to(progress, stream.done)  # also checks for a cancel: it need not wait for the source's end
    found = stream.summary()
    _advance_to(progress, stream.total)
    return found


def _advance_to(progress: Progress, done: int) -> None:
    """Advance to ``done`` units of the stage's total (no further: a file that grew while read overshoots); with
    no total known (a streamed dataset), to ``done``."""
    target = min(done, progress.total) if progress.total else done
    progress.advance(max(0, target - progress.done))


def _embedder_for(options: PrepareOptions, engine: Engine | None) -> Any:
    """The prepare's embedder; on another engine than this process, its precision resolved for the engine's
    device, so the cache key names what the workers compute."""
    embedder = build_embedder(options.embedder)
    return embedder if engine is None or engine.name == "local" else for_device(embedder, engine.device())


def _existing(
    store: Store, name: str, result: ingest.IngestSummary, options: PrepareOptions, embedder: Any
) -> ds.DatasetInfo | None:
    try:
        info = ds.get_dataset(store, name)
    except DatasetNotFound:
        return None
    if info.name != name:  # matched by numeric id, not by name
        return None
    same = (
        info.file_sha256 == result.file_sha256
        and info.embed_fields == list(options.embed_fields)
        and info.embedder_key == embedder.cache_key()
    )
    if same:
        return info
    if not options.replace:
        raise DatasetExists(
            f"A dataset named {name!r} already exists in this workspace with a different file or settings; "
            "choose another name or replace it."
        )
    ds.delete_dataset(store, info.dataset_id)
    return None


def _report(info: ds.DatasetInfo, *, reused: bool, seconds: dict[str, float]) -> PrepareReport:
    return PrepareReport(
        info.dataset_id,
        info.name,
        info.n_rows,
        info.n_skipped,
        info.skipped,
        reused,
        best_k=info.best_k,
        knee_k=info.knee_k,
        active_k=info.active_k,
        seconds=seconds,
    )


def _text_hash(example: ingest.Example, fields: tuple[str, ...]) -> str:
    import hashlib

    text = ingest.embed_text(example.instruction, example.input, example.output, fields)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextReader:
    """The embedded texts of chosen rows, read from the store when asked (labels read a sample of them)."""

    def __init__(self, store: Store, dataset_id: int, fields: tuple[str, ...]) -> None:
        self.store, self.dataset_id, self.fields = store, dataset_id, fields

    def __call__(self, rows: np.ndarray) -> list[str]:
        frame = ds.texts_at_rows(self.store, self.dataset_id, rows)
        if not np.array_equal(frame.row_idx.to_numpy(), rows):
            raise ValueError("rows must be distinct, sorted and within the dataset")
        return _embed_texts(frame, self.fields)


def _embed_texts(frame: Any, fields: tuple[str, ...]) -> list[str]:
    return [
        ingest.embed_text(i, x, o, fields) for i, x, o in zip(frame.instruction, frame.input, frame.output, strict=True)
    ]


def embed_missing(
    store: Store,
    embedder: Any,
    dataset_id: int,
    fields: tuple[str, ...],
    progress: Progress,
    engine: Engine | None = None,
) -> tuple[int, int, EngineReport]:
    """Embed the dataset's texts whose hash has no cached vector, on ``engine`` (default: this process), the
    vectors committed as parts finish.

    Returns (texts embedded now, texts found in the cache, the engine's report). Texts are read from the store ``READ_CHUNK`` rows
    at a time, so a prepare never holds every text as a Python string; inside a read, parts are taken in
    text-length order so each part's batches hold texts of similar length (the embedder sorts by exact token
    count inside a part).
    """
    import pyarrow as pa  # here, not at the top: importing the module for its options loads no pyarrow

    key = embedder.cache_key()
    hashes = ds.text_hashes(store, dataset_id)
    n_rows, unique = len(hashes), set(hashes)
    del hashes
    cached = ds.cached_text_hashes(store, key, list(unique))
    missing = unique - cached
    n_missing = len(missing)
    progress.start("embed", n_missing)

    def windows() -> Iterator[pa.Table]:
        for start in range(0, n_rows, READ_CHUNK):
            frame = ds.texts_in_rows(store, dataset_id, start, start + READ_CHUNK)
            pending: dict[str, str] = {}
            for text_hash, text in zip(frame.text_hash, _embed_texts(frame, fields), strict=True):
                if text_hash in missing:
                    pending.setdefault(text_hash, text)
            missing.difference_update(pending)
            order = sorted(pending, key=lambda h: len(pending[h]))
            yield pa.table(
                {"key": pa.array(order, pa.string()), "text": pa.array([pending[h] for h in order], pa.string())}
            )

    started = time.perf_counter()
    with _VectorWriter(store, key) as writer:
        run = (engine or LocalEngine()).run(
            EmbedStage(embedder),
            windows(),
            lambda table: writer.add(table.column("key").to_pylist(), table_vectors(table)),
            folder=store.workspace / SHARD_FOLDER,
            shard_rows=EMBED_CHUNK,
            total=n_missing,
            progress=progress,
        )
    # the workspace's measured embedding rate (core/storage/stage_runs.py): only the texts embedded now count
    stage_runs.record(
        store,
        dataset_id,
        stage="embeddings",
        key=key,
        rows=n_missing,
        seconds=time.perf_counter() - started,
        device=stage_runs.device_of(engine),
        engine=stage_runs.engine_name(engine),
    )
    return n_missing, len(cached), run


class _VectorWriter:
    """Commits embedded chunks to the cache in writes of ``config.embed_write_rows()`` vectors, or after
    ``WRITE_SECONDS`` of embedding, whichever comes first, and what is left when the block ends (also on
    cancel: finished vectors are kept). A commit costs a fixed 0.1-0.5 s that grows with the cache (DuckDB
    maintains the cache's key index): at 400-500k cached rows a write of 1,024 vectors took 150-270 us a
    row, one of 16,384 took 62 us (load 3.6), so per-chunk commits made embedding grow faster than the rows
    (exponent 1.45 from 300k to 1M with the hashing embedder). The time bound keeps what a kill can lose to
    about half a minute of a slow model's work."""

    def __init__(self, store: Store, key: str):
        self.store, self.key, self.rows = store, key, config.embed_write_rows()
        self.hashes: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.since = time.monotonic()

    def __enter__(self) -> _VectorWriter:
        return self

    def add(self, hashes: list[str], vectors: np.ndarray) -> None:
        self.hashes += hashes
        self.vectors.append(vectors)
        if len(self.hashes) >= self.rows or time.monotonic() - self.since >= WRITE_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.hashes:
            ds.put_embeddings(self.store, self.key, self.hashes, np.concatenate(self.vectors))
        self.hashes, self.vectors, self.since = [], [], time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.flush()


def _k_grid(source: str, k_grid: Sequence[int] | None, n_rows: int) -> list[int]:
    """The k values to sweep for ``n_rows`` rows; a grid with none in 1..n_rows is refused up front. ``source``
    names the file (or the Hugging Face dataset) in the error."""
    grid = list(k_grid or clustering.default_k_grid(n_rows))
    if not any(1 <= k <= n_rows for k in grid):
        raise ValueError(
            f"{source}: the k grid {grid} has no k between 1 and the file's {n_rows} rows; "
            "give smaller k values (nothing was stored)"
        )
    return grid


@dataclasses.dataclass(frozen=True)
class SweepSampling:
    """When the sweep fits on a sample (above ``fit_above`` rows, ``fit_rows`` of them) and how many texts per
    cluster its labels read."""

    fit_above: int = clustering.FIT_SAMPLE_ABOVE
    fit_rows: int = clustering.FIT_SAMPLE
    label_texts_per_cluster: int = labels.TEXTS_PER_CLUSTER  # applies above ``fit_above`` rows only


def run_sweep(
    store: Store,
    dataset_id: int,
    embeddings: np.ndarray,
    texts: Sequence[str] | Callable[[np.ndarray], list[str]],
    grid: list[int],
    *,
    seed: int,
    silhouette_sample: int,
    progress: Progress,
    sampling: SweepSampling | None = None,
) -> clustering.KChoice:
    """k-means for every k of ``grid`` with diagnostics and labels; stores them; returns the default k of all
    the k stored (best silhouette, else knee, else smallest, with the reason)."""
    sampling = sampling or SweepSampling()
    grid = [k for k in grid if 1 <= k <= len(embeddings)]
    if not grid:
        raise ValueError(f"no valid k in the grid for {len(embeddings)} rows")
    progress.start("k sweep", len(grid))
    points, labels_by_k = clustering.sweep_k(
        embeddings,
        grid,
        seed=seed,
        silhouette_sample=silhouette_sample,
        on_k_done=lambda _: progress.advance(),
        clusterer=clustering.DEFAULT_CLUSTERER,
        fit_sample_above=sampling.fit_above,
        fit_sample=sampling.fit_rows,
    )
    # empty clusters are already dropped, so a k can hold fewer clusters than k: label the ones it has. Labels
    # read a sample of each cluster's texts only where the sweep fits on a sample; below, every text as before.
    sampled = len(embeddings) > sampling.fit_above
    per_cluster = sampling.label_texts_per_cluster if sampled else len(embeddings)
    cluster_labels = labels.labels_by_k(texts, labels_by_k, per_cluster=per_cluster, seed=seed)
    for k, items in cluster_labels.items():  # each cluster's row nearest its centre, shown beside its label
        chosen = clustering.representatives(embeddings, labels_by_k[k])
        for item in items:
            item["representative_row"] = chosen.get(int(item["cluster_id"]))
    ds.save_sweep(store, dataset_id, [dataclasses.asdict(p) for p in points], labels_by_k, cluster_labels)
    return clustering.choose_default_k(stored_sweep(store, dataset_id))


def stored_sweep(store: Store, dataset_id: int) -> list[clustering.SweepPoint]:
    """Every k stored for a dataset, as sweep points."""
    rows = ds.load_sweep(store, dataset_id).to_dict("records")
    for row in rows:  # a NULL fit_rows (fitted on every row) reads back as NaN
        row["fit_rows"] = None if row.get("fit_rows") is None or np.isnan(row["fit_rows"]) else int(row["fit_rows"])
    return [clustering.SweepPoint(**row) for row in rows]


def sample_note(store: Store, dataset: ds.DatasetInfo) -> str | None:
    """How the stored sweep was sampled (see :func:`core.cluster.clustering.sample_note`), or None."""
    return clustering.sample_note(stored_sweep(store, dataset.dataset_id), dataset.n_rows)


def sweep_notes(store: Store, dataset: ds.DatasetInfo, *, extend_hint: str) -> list[str]:
    """The stored sweep's warnings for a user (no best k and why, dropped empty clusters, best k at the
    grid's edge with ``extend_hint`` telling how to sweep further)."""
    return clustering.sweep_notes(stored_sweep(store, dataset.dataset_id), dataset.n_rows, extend_hint=extend_hint)


def choose_k(store: Store, dataset: ds.DatasetInfo, k: int, progress: Progress | None = None) -> None:
    """Make ``k`` the active clustering; fits it first (from the stored embeddings) when it was not swept."""
    progress = progress or Progress()
    sweep = ds.load_sweep(store, dataset.dataset_id)
    if k not in set(sweep.k):
        add_k_values(store, dataset, [k], progress)
    ds.update_dataset(store, dataset.dataset_id, active_k=int(k))
    curation.record_choice(store, dataset.dataset_id, "choose_k", "k", dataset.active_k, int(k))


def add_k_values(store: Store, dataset: ds.DatasetInfo, ks: list[int], progress: Progress | None = None) -> None:
    """Fit and store more k values (re-fitting any already there), without re-embedding."""
    progress = progress or Progress()
    embeddings = ds.load_embeddings(store, dataset.dataset_id, dataset.embedder_key or "")
    if min(ks) < 2 or max(ks) > len(embeddings):
        raise ValueError(f"k must be between 2 and the number of rows ({len(embeddings)})")
    texts = TextReader(store, dataset.dataset_id, tuple(dataset.embed_fields))
    choice = run_sweep(
        store, dataset.dataset_id, embeddings, texts, ks, seed=dataset.seed, silhouette_sample=10_000, progress=progress
    )
    grid = sorted(set(dataset.k_grid) | set(ks))
    ds.update_dataset(store, dataset.dataset_id, k_grid=grid, best_k=choice.best_k, knee_k=choice.knee_k)


class _Timer:
    """Accumulates wall-clock seconds per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str) -> _Timer:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + time.perf_counter() - self._start
