"""Prepare a dataset: ingest -> embed (cached) -> k sweep with diagnostics -> labels -> 2-D map.

The CLI, the background worker and the tests call these functions alike. Each stage commits its own
results, so a cancelled or crashed prepare resumes where it stopped: re-preparing the same file under
the same name skips what is stored, and embeddings are cached by (embedder, text hash) across datasets.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import ingest
from core.cluster import clustering, labels
from core.cluster.reduce import DEFAULT_REDUCER, REDUCERS
from core.embed.embedders import build_embedder
from core.errors import DatasetExists, DatasetNotFound
from core.progress import Progress
from core.registry import spec_of
from core.safe_paths import check_dataset_name
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from core.storage.staging import ExampleStaging

EMBED_CHUNK = 1024


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


def prepare(
    store: Store,
    path: str | Path,
    options: PrepareOptions,
    progress: Progress | None = None,
    *,
    batch_rows: int = ingest.BATCH_ROWS,
) -> PrepareReport:
    """Ingest ``path`` into ``store`` and compute embeddings, the k sweep, labels and the map.

    The file is read ``batch_rows`` rows at a time into a staging file, so memory does not grow with it.
    """
    progress = progress or Progress()
    path = Path(path)
    name = dataset_name(path, options)
    for field in options.embed_fields:
        if field not in ingest.MAPPABLE_FIELDS:
            raise ValueError(f"cannot embed field {field!r}; choose from {ingest.MAPPABLE_FIELDS}")
    timer = _Timer()
    progress.start("ingest", 1)
    with ExampleStaging(store.workspace) as staged:  # the file's rows, until they are known to be good
        with timer("ingest"):
            found = _read_into(staged, path, options, batch_rows, progress)
        progress.advance()
        grid = _k_grid(path, options.k_grid, found.n_rows)  # checked before anything is stored
        embedder = build_embedder(options.embedder)
        info = _existing(store, name, found, options)
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
    texts = ds.example_texts(store, dataset_id)
    with timer("embed"):
        embedded, cached = embed_missing(store, embedder, texts, options.embed_fields, progress)
    with timer("load"):
        embeddings = ds.load_embeddings(store, dataset_id, embedder.cache_key())
    with timer("k_sweep"):
        choice = run_sweep(
            store,
            dataset_id,
            embeddings,
            _label_texts(texts, options.embed_fields),
            grid,
            seed=options.seed,
            silhouette_sample=options.silhouette_sample,
            progress=progress,
        )
    ds.update_dataset(store, dataset_id, k_grid=grid, best_k=choice.best_k, knee_k=choice.knee_k, active_k=choice.k)
    progress.start("map", 1)
    with timer("umap"):
        coords = REDUCERS.build(DEFAULT_REDUCER, seed=options.seed).reduce(embeddings)
    with timer("store"):
        ds.save_map(store, dataset_id, coords)
    progress.advance()  # the last point where a cancel stops the prepare; after it the dataset is ready
    ds.update_dataset(store, dataset_id, status="ready")
    report = _report(ds.get_dataset(store, dataset_id), reused=False, seconds=timer.seconds)
    report.embedded, report.embeddings_cached = embedded, cached
    return report


def dataset_name(path: Path, options: PrepareOptions) -> str:
    """The name a prepare gives its dataset: the one asked for, else the file's stem; ValueError when that
    cannot name a dataset (see :func:`core.safe_paths.check_dataset_name`)."""
    if options.name is not None:
        return check_dataset_name(options.name)
    try:
        return check_dataset_name(path.stem)
    except ValueError as exc:
        raise ValueError(f"{exc} (the name comes from the file's name: give the dataset a name)") from None


def _read_into(
    staged: ExampleStaging, path: Path, options: PrepareOptions, batch_rows: int, progress: Progress
) -> ingest.IngestSummary:
    """Read the file batch by batch into ``staged``, each row with the hash of its embedded text; raises the
    file's IngestError, or Cancelled between batches (the staged rows are then dropped with the staging file)."""
    stream = ingest.DatasetStream(
        path, mapping=options.mapping, skip_bad_rows=options.skip_bad_rows, batch_rows=batch_rows
    )
    for batch in stream.batches():
        staged.add(batch, [_text_hash(example, options.embed_fields) for example in batch])
        progress.check()  # a million rows take a minute: a cancel need not wait for the end of the file
    return stream.summary()


def _existing(store: Store, name: str, result: ingest.IngestSummary, options: PrepareOptions) -> ds.DatasetInfo | None:
    try:
        info = ds.get_dataset(store, name)
    except DatasetNotFound:
        return None
    if info.name != name:  # matched by numeric id, not by name
        return None
    same = (
        info.file_sha256 == result.file_sha256
        and info.embed_fields == list(options.embed_fields)
        and info.embedder_key == build_embedder(options.embedder).cache_key()
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


def _label_texts(texts: Any, fields: tuple[str, ...]) -> list[str]:
    return [
        ingest.embed_text(i, x, o, fields) for i, x, o in zip(texts.instruction, texts.input, texts.output, strict=True)
    ]


def embed_missing(
    store: Store, embedder: Any, texts: Any, fields: tuple[str, ...], progress: Progress
) -> tuple[int, int]:
    """Embed the texts whose hash has no cached vector, in chunks committed one by one.

    Returns (texts embedded now, texts found in the cache). Chunks are taken in text-length order so each
    chunk's batches hold texts of similar length (the embedder sorts by exact token count inside a chunk).
    """
    key = embedder.cache_key()
    unique: dict[str, str] = {}
    for text_hash, text in zip(texts.text_hash, _label_texts(texts, fields), strict=True):
        unique.setdefault(text_hash, text)
    cached = ds.cached_text_hashes(store, key, list(unique))
    missing = sorted((h for h in unique if h not in cached), key=lambda h: len(unique[h]))
    progress.start("embed", len(missing))
    for start in range(0, len(missing), EMBED_CHUNK):
        chunk = missing[start : start + EMBED_CHUNK]
        vectors = embedder.embed([unique[h] for h in chunk], progress=progress.advance)
        ds.put_embeddings(store, key, chunk, vectors)
    return len(missing), len(cached)


def _k_grid(path: Path, k_grid: Sequence[int] | None, n_rows: int) -> list[int]:
    """The k values to sweep for ``n_rows`` rows; a grid with none in 1..n_rows is refused up front."""
    grid = list(k_grid or clustering.default_k_grid(n_rows))
    if not any(1 <= k <= n_rows for k in grid):
        raise ValueError(
            f"{path.name}: the k grid {grid} has no k between 1 and the file's {n_rows} rows; "
            "give smaller k values (nothing was stored)"
        )
    return grid


def run_sweep(
    store: Store,
    dataset_id: int,
    embeddings: np.ndarray,
    texts: list[str],
    grid: list[int],
    *,
    seed: int,
    silhouette_sample: int,
    progress: Progress,
) -> clustering.KChoice:
    """k-means for every k of ``grid`` with diagnostics and labels; stores them; returns the default k of all
    the k stored (best silhouette, else knee, else smallest, with the reason)."""
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
    )
    counts, vocabulary = labels.term_counts(texts)
    # empty clusters are already dropped, so a k can hold fewer clusters than k: label the ones it has
    cluster_labels = {
        k: labels.cluster_terms(counts, vocabulary, found, int(found.max()) + 1) for k, found in labels_by_k.items()
    }
    ds.save_sweep(store, dataset_id, [dataclasses.asdict(p) for p in points], labels_by_k, cluster_labels)
    return clustering.choose_default_k(stored_sweep(store, dataset_id))


def stored_sweep(store: Store, dataset_id: int) -> list[clustering.SweepPoint]:
    """Every k stored for a dataset, as sweep points."""
    rows = ds.load_sweep(store, dataset_id).to_dict("records")
    return [clustering.SweepPoint(**row) for row in rows]


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
    texts = _label_texts(ds.example_texts(store, dataset.dataset_id), tuple(dataset.embed_fields))
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
