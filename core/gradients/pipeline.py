"""Compute and cache a dataset's gradient features, its gradient graph and target-set features.

The steps (docs/algorithms.md 4.2-4.3), each cached so that a rerun does only what is missing:

1. **Warmup**: LoRA-train the base model on a seeded random fraction of the dataset (5 % by default),
   keeping AdamW's moment buffers; the adapter and moments go to ``gradients/warmup_<key>/``.
2. **Pool features**: per example, the Adam-preconditioned LoRA gradient, projected and normalised
   (:mod:`core.gradients.features`), computed in resumable chunks.
3. **Graph**: top-M cosine neighbours per example, stored as edges.
4. **Target features**: plain LoRA gradients of the target rows (a JSONL of the same shape, e.g. a few
   dozen GSM8K problems), under the same warmed-up adapter and projection.

The warmup samples every example of the dataset, vetoed or not, and features are computed for every
row, so the curator's later decisions never invalidate them: selections subset them.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from core.errors import MissingGradients
from core.gradients import target_report
from core.models.lm import DEFAULT_LM, model_id
from core.progress import Progress
from core.storage import datasets as ds
from core.storage import gradients as gstore
from core.storage import stage_runs
from core.storage.database import Store

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from core.engines import Engine
    from core.models.lm import CausalLM

CPU_DIMENSION = 1024
CUDA_DIMENSION = 8192  # the LESS / G2IS value; a sparse projection makes it affordable on a GPU machine
GRADIENT_SHARD = 64  # examples per shard on the ray engine: about 30 s of a CPU actor, a fraction of a GPU's


@dataclasses.dataclass(frozen=True)
class GradientConfig:
    """Everything the features depend on. ``d`` 0 picks 8192 on CUDA and 1024 on the CPU.

    LoRA r 8 on q/k/v/o of the 135M default (~0.9 M parameters) and one warmup epoch is the CPU-sized
    version of LESS's r 128, 4 epochs (docs/algorithms.md 4.8); every value can be raised.
    """

    model: str = DEFAULT_LM
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: str = "q_proj,k_proj,v_proj,o_proj"
    warmup_fraction: float = 0.05
    warmup_epochs: int = 1
    learning_rate: float = 2e-4
    max_length: int = 512
    d: int = 0
    projection: Literal["sparse", "rademacher"] = "sparse"
    seed: int = 0
    neighbours: int = 100
    batch_size: int = 8
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def dimension(self) -> int:
        from core.models.device import pick_device

        return self.d or (CUDA_DIMENSION if pick_device().startswith("cuda") else CPU_DIMENSION)

    def resolved_precision(self) -> str:
        """``bf16`` or ``fp32``: auto is bf16 on CUDA and on CPUs with native bf16 (1.9x faster passes; rows
        keep a cosine of 0.995 at worst, 0.999 on average, with the float32 features), as the LM scorers do."""
        from core.gradients.features import resolve_bf16
        from core.models.device import pick_device

        return "bf16" if resolve_bf16(self.precision, pick_device().split(":")[0]) else "fp32"

    def train_config(self) -> Any:
        from core.train.trainer import TrainConfig

        return TrainConfig(
            model=self.model,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=0.0,  # features must not depend on a dropout draw
            target_modules=self.target_modules,
            learning_rate=self.learning_rate,
            epochs=self.warmup_epochs,
            batch_size=self.batch_size,
            grad_accum=1,
            max_length=self.max_length,
            seed=self.seed,
        )


@dataclasses.dataclass
class Warmup:
    """The warmed-up LoRA model, AdamW's flattened moments (exp_avg, exp_avg_sq) and the adapter's hash."""

    model: CausalLM
    moments: tuple[Any, Any]
    adapter_hash: str
    key: str
    trained: int = 0  # examples trained on now (0: loaded from the workspace)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20]


def dataset_frame(store: Store, dataset_id: int) -> pd.DataFrame:
    """instruction, input, output of every row, in row order."""
    return ds.example_texts(store, dataset_id)[["row_idx", "example_id", "instruction", "input", "output"]]


def warmup(
    store: Store, dataset: ds.DatasetInfo, lm: Any, config: GradientConfig, progress: Progress | None = None
) -> Warmup:
    """The warmup adapter and optimizer moments, trained now or loaded from the workspace."""
    import torch

    from core.gradients.features import adam_moments
    from core.train.trainer import epoch_steps, save_model, start_session, train_pass

    frame = dataset_frame(store, dataset.dataset_id)
    rng = np.random.default_rng(config.seed)
    size = max(1, round(config.warmup_fraction * len(frame)))
    rows = np.sort(rng.choice(len(frame), size=min(size, len(frame)), replace=False))
    train_config = config.train_config()
    key = _hash({"data": dataset.file_sha256, "rows": rows.tolist(), "train": dataclasses.asdict(train_config), "v": 1})
    folder = gstore.folder(store) / f"warmup_{key}"
    if (folder / "done.json").exists():
        from peft import PeftModel

        # trainable: the features are gradients with respect to the adapter's weights
        adapter = str(folder / "adapter")
        model = PeftModel.from_pretrained(copy.deepcopy(lm.model), adapter, is_trainable=True).eval()
        moments = torch.load(folder / "moments.pt", weights_only=True)
        return Warmup(model, (moments["exp_avg"], moments["exp_avg_sq"]), _file_hash(_adapter_file(folder)), key)
    examples = frame.iloc[rows].reset_index(drop=True)
    total = train_config.epochs * epoch_steps(len(examples), train_config)
    session = start_session(lm.model, lm.tokenizer, train_config, total)
    if progress:
        progress.start(f"warmup: {len(examples)} examples x {train_config.epochs} epoch(s)", total)
    stop = progress.stop_requested if progress else None
    for epoch in range(train_config.epochs):
        train_pass(session, examples, epoch, on_step=lambda status: _tick(progress), should_stop=stop)
    exp_avg, exp_avg_sq = adam_moments(session.optimizer, session.model)
    save_model(session.model, folder / "adapter", train_config)
    torch.save({"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}, folder / "moments.pt")
    (folder / "done.json").write_text(json.dumps({"rows": len(examples), "steps": total}))
    session.model.eval()
    return Warmup(session.model, (exp_avg, exp_avg_sq), _file_hash(_adapter_file(folder)), key, len(examples))


def _adapter_file(folder: Path) -> Path:
    return folder / "adapter" / "adapter_model.safetensors"


def _tick(progress: Progress | None, count: int = 1) -> None:
    if progress:
        progress.advance(count)


def _feature_info(
    dataset: ds.DatasetInfo, config: GradientConfig, warm: Warmup, role: str, n_rows: int, **target: Any
) -> gstore.GradientSet:
    from core.gradients.features import BF16_PASSES

    precision = config.resolved_precision()
    payload = {
        "role": role,
        "data": target.get("target_sha256") or dataset.file_sha256,
        "dataset": dataset.dataset_id if role == "pool" else None,
        "warmup": warm.key,
        "adapter": warm.adapter_hash,
        "d": config.dimension(),
        "projection": config.projection,
        "seed": config.seed,
        "max_length": config.max_length,
        "model": model_id(config.model),
        "precision": precision,
        "passes": BF16_PASSES if precision == "bf16" else "fp32",  # what a bf16 pass computes has changed
    }
    if target.get("target_rows") is not None:
        payload["rows"] = target["target_rows"]
    return gstore.GradientSet(
        feature_key=f"{role}_{_hash(payload)}",
        dataset_id=dataset.dataset_id,
        role=role,
        target_name=target.get("target_name"),
        target_path=target.get("target_path"),
        target_sha256=target.get("target_sha256"),
        model_id=model_id(config.model),
        adapter_hash=warm.adapter_hash,
        d=config.dimension(),
        projection=config.projection,
        seed=config.seed,
        n_rows=n_rows,
        config=dataclasses.asdict(config),
    )


def _features(
    store: Store,
    info: gstore.GradientSet,
    warm: Warmup,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    config: GradientConfig,
    moments: tuple[Any, Any] | None,
    progress: Progress | None,
    engine: Engine | None = None,
) -> np.ndarray:
    from core.gradients.features import gradient_features

    if gstore.get_set(store, info.feature_key) is not None:
        return gstore.load_features(store, info.feature_key)
    if progress:
        progress.start(f"{info.role} gradient features: {len(frame)} examples", len(frame))
    if engine is not None:
        features = _engine_features(store, info, warm, frame, config, moments, progress or Progress(), engine)
    else:
        features = gradient_features(
            warm.model,
            tokenizer,
            frame,
            moments=moments,
            d=info.d,
            projection=config.projection,
            seed=config.seed,
            max_length=config.max_length,
            batch_size=config.batch_size,
            precision=config.resolved_precision(),
            progress=(lambda count: _tick(progress, count)) if progress else None,
            should_stop=progress.stop_requested if progress else None,
            out_dir=gstore.folder(store) / f"{info.feature_key}.parts",
        )
    gstore.save_set(store, info, features)
    shutil.rmtree(gstore.folder(store) / f"{info.feature_key}.parts", ignore_errors=True)
    return features.astype(np.float32)


def _engine_features(
    store: Store,
    info: gstore.GradientSet,
    warm: Warmup,
    frame: pd.DataFrame,
    config: GradientConfig,
    moments: tuple[Any, Any] | None,
    progress: Progress,
    engine: Engine,
) -> np.ndarray:
    """The features of ``frame`` computed on ``engine``; each finished part is kept in the features' parts
    folder as it is merged (so a killed job loses no finished part), then all are put together in row order."""
    import uuid

    import pyarrow as pa

    from core.engines import SHARD_FOLDER, example_table
    from core.gradients.stage import GradientStage, adapter_files, moments_bytes

    parts = gstore.folder(store) / f"{info.feature_key}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    features = np.zeros((len(frame), info.d), dtype=np.float16)
    done = np.zeros(len(frame), dtype=bool)
    for path in sorted(parts.glob("engine-*.npz")):  # what a killed job merged already
        with np.load(path) as part:
            features[part["rows"]], done[part["rows"]] = part["features"], True
    progress.advance(int(done.sum()))
    todo = np.flatnonzero(~done)
    inputs = example_table(todo, frame.iloc[todo])

    def merge(table: pa.Table) -> None:
        from core.embed.stage import table_vectors

        rows = np.asarray([int(key) for key in table.column("key").to_pylist()], dtype=np.int64)
        values = table_vectors(table).astype(np.float16)
        np.savez(parts / f"engine-{uuid.uuid4().hex[:12]}.npz", rows=rows, features=values)
        features[rows] = values

    stage = GradientStage(
        feature_key=info.feature_key,
        model=config.model,
        adapter=adapter_files(gstore.folder(store) / f"warmup_{warm.key}" / "adapter"),
        moments=moments_bytes(moments),
        d=info.d,
        projection=config.projection,
        seed=config.seed,
        max_length=config.max_length,
        batch_size=config.batch_size,
        precision=config.resolved_precision(),
    )
    folder = store.workspace / SHARD_FOLDER
    engine.run(stage, [inputs], merge, folder=folder, shard_rows=GRADIENT_SHARD, total=len(todo), progress=progress)
    return features


def for_engine(config: GradientConfig, engine: Engine | None) -> GradientConfig:
    """``config`` with its dimension and precision fixed for the device the engine's workers compute on (a
    GPU cluster's features are 8,192-wide and bf16, whatever this machine would pick)."""
    if engine is None or engine.name == "local":
        return config
    from core.gradients.features import resolve_bf16

    device = engine.device()
    d = config.d or (CUDA_DIMENSION if device == "cuda" else CPU_DIMENSION)
    precision = "bf16" if resolve_bf16(config.precision, device) else "fp32"
    return dataclasses.replace(config, d=d, precision=precision)  # type: ignore[arg-type]


def compute_gradients(
    store: Store,
    dataset: ds.DatasetInfo,
    config: GradientConfig = GradientConfig(),
    targets: Sequence[str | Path] = (),
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Warmup, pool features, graph and the given targets' features: whatever is not cached yet. The features
    run on ``engine`` (default: this process); the warmup and the graph always run here."""
    engine = None if engine is None or engine.name == "local" else engine
    config = for_engine(config, engine)
    from core.gradients.graph import top_neighbours
    from core.models.lm import load_causal_lm
    from core.train.evaluate import load_eval_set

    sets = [load_eval_set(path) for path in targets]  # a bad target file fails before any model work
    reports = [target_report.describe(eval_set) for eval_set in sets]
    target_report.require_responses(reports)  # so is a target without responses: it has no task gradient
    for note in (note for report in reports for note in report.warnings()):
        if progress:
            progress.message(note)
    started = time.perf_counter()
    if progress:
        progress.start("load model", 1)
    lm = load_causal_lm(config.model)
    warmup_started = time.perf_counter()
    warm = warmup(store, dataset, lm, config, progress)
    warmup_seconds = time.perf_counter() - warmup_started
    frame = dataset_frame(store, dataset.dataset_id)
    pool_info = _feature_info(dataset, config, warm, "pool", len(frame))
    record = functools.partial(_record, store, dataset.dataset_id, pool_info.feature_key)
    record("warmup", warm.trained, warmup_seconds, stage_runs.device_of(None), None)  # trained here, or 0 rows
    feature_started = time.perf_counter()
    cached = gstore.get_set(store, pool_info.feature_key) is not None
    features = _features(store, pool_info, warm, lm.tokenizer, frame, config, warm.moments, progress, engine)
    feature_seconds = time.perf_counter() - feature_started
    device = stage_runs.device_of(engine)  # after the features: torch is loaded, so a GPU is seen
    record("gradients", 0 if cached else len(frame), feature_seconds, device, engine)
    if not gstore.has_edges(store, pool_info.feature_key):
        if progress:
            progress.start(f"gradient graph: top {config.neighbours} neighbours", len(features))
        graph_started = time.perf_counter()
        indices, similarities = top_neighbours(
            features, config.neighbours, progress=(lambda count: _tick(progress, count)) if progress else None
        )
        gstore.save_edges(store, pool_info.feature_key, indices, similarities)
        record("graph", len(features), time.perf_counter() - graph_started, "cpu", None)  # numpy and faiss, here
    target_keys = {}
    for eval_set in sets:
        answered = target_report.answered_rows(eval_set)
        rows = pd.DataFrame([dataclasses.asdict(eval_set.rows[i]) for i in answered])
        info = _feature_info(
            dataset,
            config,
            warm,
            "target",
            len(rows),
            target_name=eval_set.name,
            target_path=str(eval_set.path),
            target_sha256=eval_set.sha256,
            # a partly-empty target's features cover its answered rows only: a key of their own, so features
            # stored for every row by an older version are not mistaken for them
            target_rows=answered if len(answered) < len(eval_set.rows) else None,
        )
        target_started, target_cached = time.perf_counter(), gstore.get_set(store, info.feature_key) is not None
        _features(store, info, warm, lm.tokenizer, rows, config, None, progress, engine)
        spent, computed = time.perf_counter() - target_started, 0 if target_cached else len(rows)
        _record(store, dataset.dataset_id, info.feature_key, "target_gradients", computed, spent, device, engine)
        target_keys[eval_set.name] = info.feature_key
    return {
        "pool": pool_info.feature_key,
        "rows": len(frame),
        "d": pool_info.d,
        "cached": cached,
        "examples_per_second": None if cached else round(len(frame) / max(feature_seconds, 1e-9), 3),
        "targets": target_keys,
        "target_reports": [report.to_dict() for report in reports],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _record(
    store: Store, dataset_id: int, key: str, stage: str, rows: int, seconds: float, device: str, engine: Engine | None
) -> None:
    """A stage's run into the workspace's measured rates (core/storage/stage_runs.py); a cached one (0 rows) is not.
    The warmup is recorded under the pool features' key: it is what they cost beyond their own passes."""
    engine_name = stage_runs.engine_name(engine)
    stage_runs.record(
        store, dataset_id, stage=stage, key=key, rows=rows, seconds=seconds, device=device, engine=engine_name
    )


# ---------------------------------------------------------------- reading for selection and pages


def pool_set(store: Store, dataset_id: int) -> gstore.GradientSet:
    """The dataset's newest pool feature set; an error saying how to compute one when there is none."""
    for info in gstore.list_sets(store, dataset_id):
        if info.role == "pool":
            return info
    raise MissingGradients(
        "this needs gradient features: compute them on the Gradient graph page or with `python -m core gradients`"
    )


def current_config(store: Store, dataset_id: int) -> GradientConfig:
    """The configuration of the dataset's newest pool features (defaults when there are none): computing a
    new target's features later must use the same model, adapter and projection."""
    for info in gstore.list_sets(store, dataset_id):
        if info.role == "pool":
            known = {f.name for f in dataclasses.fields(GradientConfig)}
            return GradientConfig(**{key: value for key, value in info.config.items() if key in known})
    return GradientConfig()


def target_sets(store: Store, pool: gstore.GradientSet, paths: Sequence[str | Path]) -> list[gstore.GradientSet]:
    """The feature sets of the target files ``paths`` under the same adapter and projection as ``pool``."""
    from core.train.evaluate import load_eval_set

    if not paths:
        raise MissingGradients("this strategy needs a target set: give the path of a JSONL file (--target FILE)")
    found = []
    for path in paths:
        eval_set = load_eval_set(path)
        report = target_report.describe(eval_set)
        target_report.require_responses([report])
        match = [
            info
            for info in gstore.list_sets(store, pool.dataset_id)
            if info.role == "target"
            and info.target_sha256 == eval_set.sha256
            and info.n_rows == report.answered  # features of the answered rows only (compute_gradients)
            and info.comparable_with(pool)
        ]
        if not match:
            raise MissingGradients(
                f"no gradient features for the target {path}: compute them on the Gradient graph page or "
                f"with `python -m core gradients --target {path}`"
            )
        found.append(match[0])
    return found


def target_paths(target: str) -> list[str]:
    """A strategy's ``target`` field: one path, or several separated by commas (one sub-task each)."""
    return [part.strip() for part in str(target or "").split(",") if part.strip()]
