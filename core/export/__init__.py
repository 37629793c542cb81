"""Export the curated pool, or a saved selection, as JSONL (original fields kept) with a manifest.

The manifest records the input file's hash, the embedder, k, the seed, every veto and weight in force,
the counts per cluster, the time and the app version, plus the exported file's own hash. For a
selection it also records the strategy, its parameters, the seed, the budget, the pool hash and the
score keys, and the rows are written in pick order.

Each line is a row's JSON object as ingest stored it (``json.dumps(row, ensure_ascii=False)``): the input's
fields, order, values and types, but its bytes only when the input was written that way (no ``\\u`` escapes,
``", "`` and ``": "`` separators); docs/user-guide.md says so under Export.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import core
from core import atomic
from core.errors import UnusablePath
from core.safe_paths import check_writable_folder
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store


@dataclass(frozen=True)
class ExportBundle:
    """The JSONL bytes to write and their manifest."""

    jsonl: bytes
    manifest: dict[str, Any]

    @property
    def n_rows(self) -> int:
        return int(self.manifest["counts"]["exported"])


def manifest_path_for(out_path: Path) -> Path:
    """``data.jsonl`` -> ``data.manifest.json`` beside it."""
    return out_path.with_name(out_path.stem + ".manifest.json")


def build_export(
    store: Store, dataset: ds.DatasetInfo, k: int | None = None, selection_id: int | None = None
) -> ExportBundle:
    """Every example that is not vetoed (itself or through its cluster at ``k``, default the active k),
    or the examples of a saved selection in pick order (at the selection's k)."""
    selection = _selection(store, dataset, selection_id) if selection_id is not None else None
    k = int(selection["k"] if selection else (k or dataset.active_k or 0))
    if not k:
        raise ValueError(f"dataset {dataset.name!r} has no clustering yet; prepare it first")
    kept = curation.kept_rows(store, dataset.dataset_id, k)
    if selection:
        everything = curation.all_rows(store, dataset.dataset_id, k).set_index("row_idx")
        kept = everything.loc[selection["row_idx"]].reset_index()
    jsonl = "".join(line + "\n" for line in kept.original).encode("utf-8")
    clusters = curation.clusters(store, dataset.dataset_id, k)
    kept_per_cluster = kept.groupby("cluster_id").size().to_dict()
    per_cluster = {
        str(int(row.cluster_id)): {
            "label": row.label,
            "size": int(row.size),
            "exported": int(kept_per_cluster.get(row.cluster_id, 0)),
            "vetoed": bool(row.vetoed),
            "weight": float(row.weight),
        }
        for row in clusters.itertuples()
    }
    decisions = curation.decisions(store, dataset.dataset_id)
    active = decisions["clusters_by_k"].get(str(k), {"vetoed_clusters": [], "weights": {}})
    manifest = {
        "app": {"name": "curation-studio", "version": core.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "selection": selection["manifest"] if selection else "every non-vetoed example",
        "dataset": {
            "name": dataset.name,
            "source_path": dataset.source_path,
            "file_sha256": dataset.file_sha256,
            "shape": dataset.shape,
            "mapping": dataset.mapping,
            "rows": dataset.n_rows,
            "rows_skipped_at_ingest": dataset.n_skipped,
        },
        "embedder": {**dataset.embedder, "cache_key": dataset.embedder_key, "fields": dataset.embed_fields},
        "clustering": {
            "algorithm": "kmeans",
            "k": k,
            "seed": dataset.seed,
            "k_grid": dataset.k_grid,
            "best_silhouette_k": dataset.best_k,
            "knee_k": dataset.knee_k,
        },
        "vetoes": {"clusters": active["vetoed_clusters"], "examples": decisions["vetoed_examples"]},
        "weights": active["weights"],
        "counts": {"exported": len(kept), "total": dataset.n_rows, "per_cluster": per_cluster},
        "output": {"sha256": hashlib.sha256(jsonl).hexdigest(), "rows": len(kept)},
        "example_ids": list(kept.example_id),
    }
    return ExportBundle(jsonl, manifest)


def _selection(store: Store, dataset: ds.DatasetInfo, selection_id: int) -> dict[str, Any]:
    from core.storage import selections

    record = selections.get(store, selection_id)
    if record["dataset_id"] != dataset.dataset_id:
        raise ValueError(f"selection {selection_id} belongs to another dataset than {dataset.name!r}")
    keys = ("name", "strategy", "params", "seed", "budget", "size", "pool_hash", "pool_size", "decisions", "score_keys")
    manifest = {"id": selection_id, **{key: record[key] for key in keys}, "created_at": str(record["created_at"])}
    return {"k": record["k"], "row_idx": list(selections.items(store, selection_id).row_idx), "manifest": manifest}


def check_target(out_path: Path) -> None:
    """Refuse an export path that is a folder, or whose folder cannot be created or written in.

    Run before anything is written: the JSONL and the manifest are written one after the other, so a manifest
    path that fails after the JSONL was written would leave a file without its manifest.
    """
    for path in (out_path, manifest_path_for(out_path)):
        if path.is_dir():
            raise UnusablePath(f"{path} is a folder, not a file; give the path of a .jsonl file to write")
    check_writable_folder(out_path.parent, "the export's folder")


def existing_outputs(out_path: Path) -> list[Path]:
    """The files an export to ``out_path`` would overwrite: the JSONL, its manifest, both or none."""
    return [path for path in (out_path, manifest_path_for(out_path)) if path.exists()]


def write_export(bundle: ExportBundle, out_path: str | Path) -> tuple[Path, Path]:
    """Write the JSONL and its manifest beside it (the folder is made if missing); returns both paths."""
    out_path = Path(out_path)
    check_target(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out_path, bundle.jsonl)
    manifest = dict(bundle.manifest, output={**bundle.manifest["output"], "file": out_path.name})
    manifest_path = manifest_path_for(out_path)
    atomic.write_text(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return out_path, manifest_path
