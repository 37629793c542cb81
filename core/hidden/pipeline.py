"""Compute and cache the base model's pooled hidden states of a dataset's rows and of target sets (RDS+,
docs/algorithms.md 4.10).

A dataset's features are computed on an engine (:mod:`core.engines`, ``local`` by default) in parts of
``HIDDEN_SHARD`` rows; each finished part is kept in the workspace as it is merged
(:func:`core.storage.hidden.save_part`), so a cancelled or killed run loses at most the part in flight and the
next run computes only the rows no part holds. Once every row is done, the parts become one float16 matrix
and a ``hidden_sets`` row keyed by a hash of the model, precision, max length, pooling and data; a later run
with the same settings reuses it. Features are computed for every row, vetoed or not, so the curator's later
decisions never invalidate them: selections subset them.

A target set (a JSONL of the task to aim at) is small: its features are computed when a selection first
needs them, in the selecting process, with the settings of the dataset's features, and cached by the
file's content hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.errors import MissingHiddenStates
from core.models.lm import DEFAULT_LM, model_id
from core.progress import Progress
from core.storage import datasets as ds
from core.storage import hidden as hstore
from core.storage.database import Store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from core.engines import Engine, EngineReport
    from core.train.evaluate import EvalSet

POOLING = "position_weighted_mean"  # the only pooling RDS+ uses; part of every feature key
HIDDEN_SHARD = 128  # rows per part: a cancel waits for at most one part (seconds on a CPU for the 135M default)
CUDA_HIDDEN_SHARD = 1024  # on a GPU: longer parts sort into fuller batches (about 1.5 s of an H200's work)
VERSION = 1  # bump when what a feature means changes (rendering, layer, pooling), so old caches are not reused
PRECISIONS = ("auto", "fp32", "bf16")


@dataclasses.dataclass(frozen=True)
class HiddenConfig:
    """What the features depend on besides the data. ``max_length`` 2048 is the RDS+ code's; ``precision``
    ``auto`` is bf16 where the device multiplies bf16 natively (a GPU, a recent CPU), else float32."""

    model: str = DEFAULT_LM
    max_length: int = 2048
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def resolved_precision(self, device: str) -> str:
        """``bf16`` or ``fp32`` on ``device`` (``CURATE_PRECISION`` can force either, as for every LM pass)."""
        if self.precision != "auto":
            return self.precision
        from core.models.device import use_bf16

        return "bf16" if use_bf16(device) else "fp32"


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _key_payload(config: HiddenConfig, precision: str) -> dict[str, Any]:
    payload = {
        "model": model_id(config.model),
        "precision": precision,
        "max_length": config.max_length,
        "pooling": POOLING,
        "v": VERSION,
    }
    if precision == "bf16":  # the fast pass's features, not those of the earlier bf16 autocast (float32 keys stay)
        from core.models.fast import FAST_PASS

        payload["pass"] = FAST_PASS
    return payload


def _info(dataset_id: int, config: HiddenConfig, precision: str, n_rows: int, **fields: Any) -> hstore.HiddenSet:
    return hstore.HiddenSet(
        feature_key=fields.pop("feature_key"),
        dataset_id=dataset_id,
        role=fields.pop("role"),
        target_name=fields.get("target_name"),
        target_path=fields.get("target_path"),
        target_sha256=fields.get("target_sha256"),
        model_id=model_id(config.model),
        precision=precision,
        max_length=config.max_length,
        pooling=POOLING,
        d=0,  # known once computed
        n_rows=n_rows,
        config=dataclasses.asdict(config),
    )


def pool_info(dataset: ds.DatasetInfo, config: HiddenConfig, precision: str, n_rows: int) -> hstore.HiddenSet:
    """The metadata (and cache key) of ``dataset``'s features under ``config`` at ``precision``."""
    payload = {"role": "pool", "dataset": dataset.dataset_id, "data": dataset.file_sha256}
    key = f"pool_{_hash(payload | _key_payload(config, precision))}"
    return _info(dataset.dataset_id, config, precision, n_rows, feature_key=key, role="pool")


def target_info(dataset_id: int, config: HiddenConfig, precision: str, eval_set: EvalSet) -> hstore.HiddenSet:
    """The metadata (and cache key) of a target set's features, to compare with the dataset's under ``config``."""
    payload = {"role": "target", "dataset": dataset_id, "data": eval_set.sha256}
    key = f"target_{_hash(payload | _key_payload(config, precision))}"
    return _info(
        dataset_id,
        config,
        precision,
        len(eval_set.rows),
        feature_key=key,
        role="target",
        target_name=eval_set.name,
        target_path=str(eval_set.path),
        target_sha256=eval_set.sha256,
    )


def dataset_frame(store: Store, dataset_id: int) -> pd.DataFrame:
    """row_idx, instruction, input, output of every row, in row order."""
    return ds.example_texts(store, dataset_id)[["row_idx", "instruction", "input", "output"]]


# ---------------------------------------------------------------- computing


def compute_hidden_states(
    store: Store,
    dataset: ds.DatasetInfo,
    config: HiddenConfig = HiddenConfig(),
    targets: Sequence[str | Path] = (),
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
    shard_rows: int | None = None,
) -> dict[str, Any]:
    """The dataset's features (whatever is not cached or kept from a stopped run yet, at most ``limit`` rows
    now), then each target's. A run that leaves rows to do stores no finished set: the next run continues."""
    from core.engines import LocalEngine
    from core.train.evaluate import load_eval_set

    if limit is not None and limit < 1:
        raise ValueError(f"the limit must be at least 1 row, not {limit}")
    sets = [load_eval_set(path) for path in targets]  # a bad target file fails before any model work
    started = time.perf_counter()
    engine = engine or LocalEngine()
    progress = progress or Progress()
    device = engine.device()
    precision = config.resolved_precision(device)
    shard_rows = shard_rows or (CUDA_HIDDEN_SHARD if device == "cuda" else HIDDEN_SHARD)
    frame = dataset_frame(store, dataset.dataset_id)
    info = pool_info(dataset, config, precision, len(frame))
    report = _pool_features(store, info, frame, config, limit, progress, engine, shard_rows)
    # a target's features need the dataset's settings only, not its finished features
    report["targets"] = {eval_set.name: _target_features(store, info, eval_set)[0] for eval_set in sets}
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _pool_features(
    store: Store,
    info: hstore.HiddenSet,
    frame: pd.DataFrame,
    config: HiddenConfig,
    limit: int | None,
    progress: Progress,
    engine: Engine,
    shard_rows: int,
) -> dict[str, Any]:
    """Compute the rows still missing (at most ``limit``); store the whole set once none is missing."""
    n = len(frame)
    cached = hstore.get_set(store, info.feature_key)
    report: dict[str, Any] = {"key": info.feature_key, "rows": n, "precision": info.precision, "engine": None}
    report["examples_per_second"] = None
    if cached is not None:
        return report | {"d": cached.d, "cached": True, "computed": 0, "reused": n, "left": 0}
    kept, _ = hstore.load_parts(store, info.feature_key)
    done = np.zeros(n, dtype=bool)
    done[kept] = True
    todo = np.flatnonzero(~done)
    now = todo if limit is None else todo[:limit]
    reused = int(done.sum())
    progress.start(f"hidden states: {n} examples", reused + len(now))
    progress.advance(reused)
    if len(now):
        started = time.perf_counter()
        run = _run_rows(store, info, frame, now, config, progress, engine, shard_rows)
        seconds = time.perf_counter() - started
        report["engine"] = dataclasses.asdict(run)
        report["examples_per_second"] = round(len(now) / max(seconds, 1e-9), 3)
        _record(store, info, "hidden_states", len(now), seconds, engine)
    left = len(todo) - len(now)
    d = _finish(store, info) if left == 0 else 0
    return report | {"d": d, "cached": False, "computed": len(now), "reused": reused, "left": left}


def _run_rows(
    store: Store,
    info: hstore.HiddenSet,
    frame: pd.DataFrame,
    rows: np.ndarray,
    config: HiddenConfig,
    progress: Progress,
    engine: Engine,
    shard_rows: int,
) -> EngineReport:
    """The features of ``rows`` of ``frame`` on ``engine``, each finished part kept as it is merged."""
    from core.engines import SHARD_FOLDER, example_table
    from core.hidden.stage import HiddenStage

    def merge(table: pa.Table) -> None:
        from core.embed.stage import table_vectors

        done = np.asarray([int(key) for key in table.column("key").to_pylist()], dtype=np.int64)
        hstore.save_part(store, info.feature_key, done, table_vectors(table))

    stage = HiddenStage(info.feature_key, config.model, config.max_length, info.precision)
    return engine.run(
        stage,
        [example_table(rows, frame.iloc[rows])],
        merge,
        folder=store.workspace / SHARD_FOLDER,
        shard_rows=shard_rows,
        total=len(rows),
        progress=progress,
    )


def _finish(store: Store, info: hstore.HiddenSet) -> int:
    """Put the parts together in row order, store the whole set and drop the parts; the feature width."""
    rows, features = hstore.load_parts(store, info.feature_key)
    if features is None or len(np.unique(rows)) != info.n_rows:
        raise RuntimeError(f"hidden states {info.feature_key}: the kept parts do not cover every row; run it again")
    matrix = np.zeros((info.n_rows, features.shape[1]), dtype=np.float16)
    matrix[rows] = features
    hstore.save_set(store, dataclasses.replace(info, d=int(matrix.shape[1])), matrix)
    hstore.clear_parts(store, info.feature_key)
    return int(matrix.shape[1])


def _target_features(store: Store, pool: hstore.HiddenSet, eval_set: EvalSet) -> tuple[str, np.ndarray]:
    """(feature key, float32 features) of a target set under the pool's settings: cached, else computed here."""
    from core.engines import SHARD_FOLDER, LocalEngine, run_in_order
    from core.hidden.stage import HiddenStage

    config = config_of(pool)
    info = target_info(pool.dataset_id, config, pool.precision, eval_set)
    if hstore.get_set(store, info.feature_key) is not None:
        return info.feature_key, hstore.load_features(store, info.feature_key)
    import pandas as pd

    from core.embed.stage import table_vectors

    rows = pd.DataFrame(
        {
            "instruction": [r.instruction for r in eval_set.rows],
            "input": [r.input for r in eval_set.rows],
            "output": [r.output for r in eval_set.rows],
        }
    )
    stage = HiddenStage(info.feature_key, config.model, config.max_length, pool.precision)
    started = time.perf_counter()
    table = run_in_order(LocalEngine(), stage, rows, folder=store.workspace / SHARD_FOLDER, shard_rows=HIDDEN_SHARD)
    features = table_vectors(table)
    _record(store, info, "target_hidden_states", len(rows), time.perf_counter() - started, None)
    hstore.save_set(store, dataclasses.replace(info, d=int(features.shape[1])), features)
    return info.feature_key, features.astype(np.float16).astype(np.float32)  # what a later load gives


def _record(store: Store, info: hstore.HiddenSet, stage: str, rows: int, seconds: float, engine: Any) -> None:
    """Remember the run's rows and seconds (the workspace's measured rates and a selection's recorded cost)."""
    from core.storage import stage_runs

    device = stage_runs.device_of(engine)
    name = getattr(engine, "name", "local")
    key = info.feature_key
    stage_runs.record(
        store, info.dataset_id, stage=stage, key=key, rows=rows, seconds=seconds, device=device, engine=name
    )


# ---------------------------------------------------------------- reading for selection and pages


def config_of(info: hstore.HiddenSet) -> HiddenConfig:
    """The configuration a stored set was computed with."""
    known = {f.name for f in dataclasses.fields(HiddenConfig)}
    return HiddenConfig(**{key: value for key, value in info.config.items() if key in known})


def latest_pool(store: Store, dataset_id: int) -> hstore.HiddenSet | None:
    """The dataset's newest finished feature set, None when there is none."""
    return next((info for info in hstore.list_sets(store, dataset_id) if info.role == "pool"), None)


def pool_set(store: Store, dataset: ds.DatasetInfo) -> hstore.HiddenSet:
    """The dataset's newest finished feature set; an error saying how to compute one when there is none."""
    info = latest_pool(store, dataset.dataset_id)
    if info is None:
        raise MissingHiddenStates(
            "this strategy needs the base model's hidden states of every example, not computed yet: compute them "
            "on the Gradient graph page (Hidden states for RDS+) or with "
            f"`python -m core hidden-states --dataset {dataset.name}`"
        )
    return info


def pool_features(store: Store, info: hstore.HiddenSet) -> np.ndarray:
    """A stored set's features, float32, one unit row per dataset row."""
    return hstore.load_features(store, info.feature_key)


def target_features(store: Store, pool: hstore.HiddenSet, paths: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """(features of every target row, the file each row came from as 0, 1, ...) under the pool's settings;
    a target seen for the first time is computed here (the model loads once) and cached by content hash."""
    from core.train.evaluate import load_eval_set

    if not paths:
        raise MissingHiddenStates("this strategy needs a target set: give the path of a JSONL file (--target FILE)")
    matrices = [_target_features(store, pool, load_eval_set(path))[1] for path in paths]
    groups = np.repeat(np.arange(len(matrices)), [len(m) for m in matrices])
    return np.concatenate(matrices), groups
