"""Export the curated pool, or a saved selection, in a trainer-ready format with a manifest.

The formats (``core.export.formats``): ``jsonl`` (the default: the rows in the input's own shape), chat
``messages`` and ``sharegpt`` JSONL, one ``parquet`` file, or an ``hf`` ``datasets`` folder; beside any of them,
on request, LLaMA-Factory's ``dataset_info.json`` entry and an Axolotl ``datasets:`` block
(``core.export.trainers``).

The manifest records the input file's hash, the embedder, k, the seed, every veto and weight in force,
the counts per cluster, the time and the app version, the format (its name, how a row is written, and for
any format but ``jsonl`` the hash of the same rows in the input's own shape: ``rows_sha256``, equal to what a
``jsonl`` export of them would record), plus the exported file's own hash. For a
selection it also records the strategy, its parameters, the seed, the budget, the pool hash, the
score keys and the compute the selection consumed (``cost``), and the rows are written in pick order.

Each line is a row's JSON object as ingest stored it (``json.dumps(row, ensure_ascii=False)``): the input's
fields, order, values and types, but its bytes only when the input was written that way (no ``\\u`` escapes,
``", "`` and ``": "`` separators); docs/user-guide.md says so under Export.

:func:`stream_export` writes an export of any size with flat memory: the stored JSON texts are read a chunk of
rows at a time, handed to the format's writer as they come, the example ids spooled to a scratch file, and the
export and its manifest appear at their paths only when complete (``core.atomic``). :func:`build_export` holds
a JSONL export in memory; it serves small exports and tests, and is the reference the streamed bytes are
checked against.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import core
from core import atomic
from core.errors import UnusablePath
from core.export import trainers
from core.export.formats import ExportFormat, FormatWriter, get_format
from core.export.rows import SourceShape, has_system_field
from core.safe_paths import check_writable_folder
from core.storage import cluster_edits, curation, selections
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
    """``data.jsonl`` -> ``data.manifest.json`` beside it; another name keeps its suffix (``data.parquet`` ->
    ``data.parquet.manifest.json``, a folder ``data-hf`` -> ``data-hf.manifest.json``), so exports of one name
    in two formats keep their own manifests."""
    return out_path.with_name(trainers.entry_name(out_path) + ".manifest.json")


def export_name(stem: str, fmt: str) -> str:
    """The file (or folder) name the page offers for an export of ``stem`` in ``fmt``: ``stem.jsonl`` for the
    default format, ``stem-<format><suffix>`` for the others, so two formats' files never share a name."""
    return f"{stem}{'' if fmt == 'jsonl' else '-' + fmt}{get_format(fmt).suffix}"


DEFAULT_CHUNK_ROWS = 20_000  # about 10-20 MB of stored JSON text per chunk at typical row sizes


@dataclass(frozen=True)
class WrittenExport:
    """Where a streamed export was written, and what it holds."""

    path: Path  # the file (or, for a folder format, the folder)
    manifest_path: Path
    n_rows: int
    sha256: str
    format: str = "jsonl"
    trainer_files: tuple[Path, ...] = ()  # dataset_info.json, the Axolotl block: those asked for

    @property
    def jsonl_path(self) -> Path:
        """The written file (its name from when JSONL was the only format)."""
        return self.path


@dataclass(frozen=True)
class ExportPreview:
    """What an export would hold, counted without reading a text: the rows and the manifest's per-cluster table."""

    n_rows: int
    per_cluster: dict[str, dict[str, Any]]


def build_export(
    store: Store,
    dataset: ds.DatasetInfo,
    k: int | None = None,
    selection_id: int | None = None,
    tag: str | None = None,
) -> ExportBundle:
    """Every example that is not vetoed (itself or through its cluster at ``k``, default the active k; with
    ``tag``, only those carrying it), or the examples of a saved selection in pick order (at the selection's k),
    held in memory."""
    _check_filter(selection_id, tag)
    selection = _selection(store, dataset, selection_id) if selection_id is not None else None
    k = _export_k(dataset, k, selection)
    kept = curation.kept_rows(store, dataset.dataset_id, k, tag)
    if selection:
        everything = curation.all_rows(store, dataset.dataset_id, k).set_index("row_idx")
        row_idx = list(selections.items(store, int(selection["manifest"]["id"])).row_idx)
        kept = everything.loc[row_idx].reset_index()
    jsonl = "".join(line + "\n" for line in kept.original).encode("utf-8")
    manifest = _manifest(
        store,
        dataset,
        k,
        selection,
        dict(kept.cluster_id.value_counts()),
        {"sha256": hashlib.sha256(jsonl).hexdigest(), "rows": len(kept)},
        tag,
        _format_section(get_format("jsonl"), {"system_field": any(map(has_system_field, kept.original))}),
    )
    return ExportBundle(jsonl, {**manifest, "example_ids": list(kept.example_id)})


@dataclass(frozen=True)
class TrainerFiles:
    """Which trainers' files to write beside an export (``core.export.trainers``)."""

    llamafactory: bool = False  # merge the export's entry into dataset_info.json in its folder
    axolotl: bool = False  # write <name>.axolotl.yaml, the config's datasets: block


def stream_export(
    store: Store,
    dataset: ds.DatasetInfo,
    out_path: str | Path,
    k: int | None = None,
    selection_id: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    tag: str | None = None,
    fmt: str = "jsonl",
    trainer_files: TrainerFiles = TrainerFiles(),
) -> WrittenExport:
    """Write the export in format ``fmt`` to ``out_path`` and its manifest beside it, ``chunk_rows`` rows at a
    time (for ``jsonl``, what :func:`build_export` holds, byte for byte), then the trainers' files asked for;
    overwrites the export and its manifest (callers that must not check :func:`existing_outputs`); a folder
    export replaces only a folder an earlier ``hf`` export wrote.

    The rows, the decisions and the counts come from one read of the workspace, so the manifest describes
    exactly the rows written; other writers wait until the last row is read (not while a Parquet or ``datasets``
    file is built from them).
    """
    _check_filter(selection_id, tag)
    out_path, export_format = Path(out_path), get_format(fmt)
    check_target(out_path, fmt, trainer_files.llamafactory)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path = manifest_path_for(out_path)
    with atomic.replacing(manifest_path) as manifest_scratch, atomic.replacing(out_path) as out_scratch:
        ids_path = out_scratch.with_name("example_ids.part")  # removed with the scratch folder
        spool = out_scratch.with_name("spool")
        spool.mkdir()
        writer = export_format.open(out_scratch, SourceShape(dataset.shape, dataset.mapping or {}), spool)
        with curation.bounded_scan(store):  # one connection for every read below: the rows agree with the manifest
            selection = _selection(store, dataset, selection_id) if selection_id is not None else None
            k = _export_k(dataset, k, selection)
            turns = export_format.needs_turns
            chunks = (
                selections.item_chunks(store, selection_id, k, chunk_rows, messages=turns)
                if selection_id is not None
                else curation.kept_row_chunks(store, dataset.dataset_id, k, chunk_rows, tag, messages=turns)
            )
            n_rows, rows_sha256, per_cluster = _write_rows(chunks, writer, ids_path)
            output = {"rows": n_rows, "file": out_path.name}
            manifest = _manifest(store, dataset, k, selection, per_cluster, output, tag)
        written = writer.finish()
        details = written.details if fmt == "jsonl" else {**written.details, "rows_sha256": rows_sha256}
        manifest["output"] = {"sha256": written.sha256, **output}
        manifest["format"] = _format_section(export_format, details)
        _write_manifest(manifest_scratch, manifest, ids_path, n_rows)
        _make_room(out_path, export_format, out_scratch.with_name("replaced"))
    files = _write_trainer_files(out_path, manifest, trainer_files)
    return WrittenExport(out_path, manifest_path, n_rows, written.sha256, fmt, files)


def preview(
    store: Store, dataset: ds.DatasetInfo, selection_id: int | None = None, tag: str | None = None
) -> ExportPreview:
    """The rows an export would hold and its per-cluster table, from counts alone (cheap at a million rows)."""
    _check_filter(selection_id, tag)
    with store.read():
        selection = _selection(store, dataset, selection_id) if selection_id is not None else None
        k = _export_k(dataset, None, selection)
        counts = (
            selections.cluster_counts(store, selection_id, k)
            if selection_id is not None
            else curation.kept_counts(store, dataset.dataset_id, k, tag)
        )
        per_cluster = _per_cluster(store, dataset, k, counts)
    return ExportPreview(sum(counts.values()), per_cluster)


def download_export(
    store: Store,
    dataset: ds.DatasetInfo,
    selection_id: int | None,
    stem: str,
    tag: str | None = None,
    fmt: str = "jsonl",
    trainer_files: TrainerFiles = TrainerFiles(),
) -> WrittenExport:
    """The export behind the page's download buttons, written (streamed) once per data version and format.

    It lives in ``exports/downloads/v<data version>/`` + :func:`export_name` (another format than ``jsonl``: in
    ``v<data version>/<format>/``, so each folder's dataset_info.json holds that export's entry alone); the
    export, manifest and trainer-file buttons share it, and a click after a change writes a fresh one and
    removes the older versions' folders. The trainers' files of an export already written are written from
    its manifest.
    """
    downloads = store.workspace / "exports" / "downloads"
    version = downloads / f"v{store.data_version()}"
    folder = version if fmt == "jsonl" else version / fmt
    out_path = folder / export_name(stem, fmt)
    manifest_path = manifest_path_for(out_path)
    if out_path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = _write_trainer_files(out_path, manifest, trainer_files)
        output = manifest["output"]
        return WrittenExport(out_path, manifest_path, output["rows"], output["sha256"], fmt, files)
    for old in downloads.glob("v*"):
        if old != version and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)  # a reader still holding a file keeps it until closed
    return stream_export(
        store, dataset, out_path, selection_id=selection_id, tag=tag, fmt=fmt, trainer_files=trainer_files
    )


def download_archive(written: WrittenExport) -> Path:
    """A folder export as one zip file beside it (``<folder>.zip``, the folder at its root), made once."""
    archive = written.path.with_name(written.path.name + ".zip")
    if not archive.exists():
        with atomic.replacing(archive) as scratch:
            made = shutil.make_archive(str(scratch.with_suffix("")), "zip", written.path.parent, written.path.name)
            Path(made).replace(scratch)
    return archive


@dataclass(frozen=True)
class PastExport:
    """An export found in the workspace's ``exports/`` folder, read from its manifest."""

    jsonl_path: Path
    selection: str  # "every non-vetoed example", or "selection #N"
    n_rows: int
    created_at: str


# The manifest's last key; what comes before it is bounded (counts per cluster, decisions) and holds the rest.
_IDS_KEY = '\n  "example_ids": ['
_HEAD_BYTES = 4 << 20


def past_exports(workspace: Path, dataset_name: str) -> list[PastExport]:
    """The exports of ``dataset_name`` under ``<workspace>/exports`` (downloads included), newest first.

    Only each manifest's head is read, up to its example ids (a million-row manifest holds a million ids);
    a manifest that cannot be read, or whose head is past 4 MB, is left out.
    """
    found = []
    for manifest_path in (workspace / "exports").rglob("*.manifest.json"):
        head = _manifest_head(manifest_path)
        if head is None or (head.get("dataset") or {}).get("name") != dataset_name:
            continue
        selection = head.get("selection")
        what = f"selection #{selection.get('id')}" if isinstance(selection, dict) else str(selection)
        output = head.get("output") or {}
        name = output.get("file") if isinstance(output.get("file"), str) else None  # the written file or folder
        path = manifest_path.with_name(name or manifest_path.name.removesuffix(".manifest.json") + ".jsonl")
        found.append(PastExport(path, what, int(output.get("rows", 0)), str(head.get("created_at", ""))))
    return sorted(found, key=lambda e: e.created_at, reverse=True)


def _manifest_head(path: Path) -> dict[str, Any] | None:
    """The manifest without its example ids, or None when unreadable."""
    try:
        with path.open(encoding="utf-8") as file:
            text = file.read(_HEAD_BYTES)
    except (OSError, UnicodeDecodeError):
        return None
    cut = text.find(_IDS_KEY)
    try:
        return json.loads(text[:cut].rstrip().removesuffix(",") + "\n}" if cut >= 0 else text)
    except ValueError:
        return None  # cut short, or not a manifest


def _export_k(dataset: ds.DatasetInfo, k: int | None, selection: dict[str, Any] | None) -> int:
    chosen = int(selection["k"] if selection else (k or dataset.active_k or 0))
    if not chosen:
        raise ValueError(f"dataset {dataset.name!r} has no clustering yet; prepare it first")
    return chosen


def _write_rows(
    chunks: Iterable[list[curation.ExportRow]], writer: FormatWriter, ids_path: Path
) -> tuple[int, str, Counter[int]]:
    """Hand each chunk's rows to ``writer`` and append its ids (as the manifest writes them, each after ``,``)
    to ``ids_path``; returns the rows written, the SHA-256 of their JSONL in the input's own shape and the rows
    per cluster."""
    digest, per_cluster, n_rows = hashlib.sha256(), Counter[int](), 0
    with ids_path.open("w", encoding="utf-8") as ids:
        for chunk in chunks:
            data = "".join(original + "\n" for _, _, original, _ in chunk).encode("utf-8")
            digest.update(data)
            writer.add([(original, turns) for _, _, original, turns in chunk], data)
            ids.write("".join(",\n    " + json.dumps(example_id, ensure_ascii=False) for example_id, *_ in chunk))
            per_cluster.update(int(cluster_id) for _, cluster_id, _, _ in chunk)
            n_rows += len(chunk)
    return n_rows, digest.hexdigest(), per_cluster


def _format_section(export_format: ExportFormat, details: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``format``: what was written and how, enough to write it again from the same rows."""
    return {"name": export_format.name, "rule": export_format.rule, **details}


def _make_room(out_path: Path, export_format: ExportFormat, trash: Path) -> None:
    """Move an earlier folder export to ``trash`` (inside the scratch folder, removed with it), out of the new
    one's way: a folder cannot replace a folder in one step. Anything else at the path is refused, not moved."""
    if not (export_format.folder and out_path.exists()):
        return
    if not _is_dataset_folder(out_path):
        raise UnusablePath(f"{out_path} exists and is not a datasets folder an export wrote; give a new folder")
    out_path.rename(trash)


def _is_dataset_folder(path: Path) -> bool:
    return path.is_dir() and (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def _write_trainer_files(out_path: Path, manifest: dict[str, Any], which: TrainerFiles) -> tuple[Path, ...]:
    files = []
    if which.llamafactory:
        files.append(trainers.write_llamafactory(out_path, manifest))
    if which.axolotl:
        files.append(trainers.write_axolotl(out_path, manifest))
    return tuple(files)


def _write_manifest(path: Path, manifest: dict[str, Any], ids_path: Path, n_rows: int) -> None:
    """Write ``manifest`` plus the spooled example ids as ``json.dumps(..., indent=2, ensure_ascii=False)``
    writes the whole dict, without holding the ids: the ids are its last key, so the text is the dict's
    dump with an empty list, whose ``[]`` is replaced by the spooled items."""
    text = json.dumps({**manifest, "example_ids": []}, indent=2, ensure_ascii=False)
    empty = "[]\n}"
    with path.open("w", encoding="utf-8") as out:
        if not n_rows:
            out.write(text + "\n")
            return
        out.write(text[: -len(empty)] + "[")
        with ids_path.open(encoding="utf-8") as ids:
            ids.read(1)  # the comma before the first id
            shutil.copyfileobj(ids, out)
        out.write("\n  ]\n}\n")


def _per_cluster(
    store: Store, dataset: ds.DatasetInfo, k: int, exported: Mapping[Any, int]
) -> dict[str, dict[str, Any]]:
    table = curation.cluster_states(store, dataset.dataset_id, k).to_dict("records")
    return {
        str(int(row["cluster_id"])): {
            "label": row["label"],  # the curator's name for it when there is one
            "computed_label": row.get("terms_label", row["label"]),
            "size": int(row["size"]),
            "exported": int(exported.get(int(row["cluster_id"]), 0)),
            "vetoed": bool(row["vetoed"]),
            "weight": float(row["weight"]),
        }
        for row in table
    }


def _manifest(
    store: Store,
    dataset: ds.DatasetInfo,
    k: int,
    selection: dict[str, Any] | None,
    exported: Mapping[int, int],
    output: dict[str, Any],
    tag: str | None = None,
    export_format: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything in the manifest but the example ids (which the caller appends last); the format section
    and the output last but one (a streamed export knows them only once the rows are written)."""
    per_cluster = _per_cluster(store, dataset, k, exported)
    decisions = curation.decisions(store, dataset.dataset_id)
    active = decisions["clusters_by_k"].get(str(k), {"vetoed_clusters": [], "weights": {}})
    return {
        "app": {"name": "curation-studio", "version": core.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "selection": selection["manifest"]
        if selection
        else (f"every non-vetoed example tagged {tag!r}" if tag else "every non-vetoed example"),
        "filter": {"tag": tag} if tag else None,
        "dataset": {
            "name": dataset.name,
            "source_path": dataset.source_path,
            "file_sha256": dataset.file_sha256,
            "shape": dataset.shape,
            "mapping": dataset.mapping,
            "rows": dataset.n_rows,
            "rows_skipped_at_ingest": dataset.n_skipped,
            # a dataset read through Hugging Face datasets: hf:ORG/NAME or its folder, config, split, fingerprint
            **({"source": dataset.source} if dataset.source else {}),
        },
        "embedder": {**dataset.embedder, "cache_key": dataset.embedder_key, "fields": dataset.embed_fields},
        "clustering": {
            "algorithm": "kmeans",
            "k": k,
            "seed": dataset.seed,
            "k_grid": dataset.k_grid,
            "best_silhouette_k": dataset.best_k,
            "knee_k": dataset.knee_k,
            "edits": cluster_edits.edits_in_effect(store, dataset.dataset_id, k),
        },
        "vetoes": {"clusters": active["vetoed_clusters"], "examples": decisions["vetoed_examples"]},
        "weights": active["weights"],
        "counts": {"exported": int(output["rows"]), "total": dataset.n_rows, "per_cluster": per_cluster},
        "format": export_format,
        "output": output,
    }


def _check_filter(selection_id: int | None, tag: str | None) -> None:
    """A tag filters the kept pool; a saved selection is exported as it was picked."""
    if selection_id is not None and tag is not None:
        raise ValueError("a tag filters the kept examples; a saved selection is exported whole (give one or the other)")


def _selection(store: Store, dataset: ds.DatasetInfo, selection_id: int) -> dict[str, Any]:
    record = selections.get(store, selection_id)
    if record["dataset_id"] != dataset.dataset_id:
        raise ValueError(f"selection {selection_id} belongs to another dataset than {dataset.name!r}")
    keys = ("name", "strategy", "params", "seed", "budget", "size", "pool_hash", "pool_size", "decisions", "score_keys")
    manifest = {"id": selection_id, **{key: record[key] for key in keys}, "created_at": str(record["created_at"])}
    manifest["cost"] = record.get("cost")  # the compute it consumed (None: saved before costs were recorded)
    return {"k": record["k"], "manifest": manifest}


def check_target(out_path: Path, fmt: str = "jsonl", llamafactory: bool = False) -> None:
    """Refuse an export path that is a folder (for a folder format: a file, or a folder no export wrote), or
    whose folder cannot be created or written in, or (with ``llamafactory``) whose dataset_info.json cannot be
    merged into.

    Run before anything is written: the export and the manifest are written one after the other, so a manifest
    path that fails after the export was written would leave an export without its manifest.
    """
    export_format = get_format(fmt)
    manifest = manifest_path_for(out_path)
    if manifest.is_dir():
        raise UnusablePath(f"{manifest} is a folder, not a file; give another path for the export")
    if export_format.folder:
        if out_path.exists() and not _is_dataset_folder(out_path):
            what = "a folder no export wrote" if out_path.is_dir() else "a file"
            raise UnusablePath(f"{out_path} exists and is {what}; give the path of a new folder for the {fmt} export")
    elif out_path.is_dir():
        suffix = export_format.suffix
        raise UnusablePath(f"{out_path} is a folder, not a file; give the path of a {suffix} file to write")
    check_writable_folder(out_path.parent, "the export's folder")
    if llamafactory:
        trainers.check_llamafactory(out_path)


def existing_outputs(out_path: Path, axolotl: bool = False) -> list[Path]:
    """What an export to ``out_path`` would overwrite: the export, its manifest and (with ``axolotl``) its Axolotl
    block, those that exist (dataset_info.json is merged into, never overwritten)."""
    paths = [out_path, manifest_path_for(out_path)]
    if axolotl:
        paths.append(trainers.axolotl_path_for(out_path))
    return [path for path in paths if path.exists()]


def write_export(bundle: ExportBundle, out_path: str | Path) -> tuple[Path, Path]:
    """Write the JSONL and its manifest beside it (the folder is made if missing); returns both paths."""
    out_path = Path(out_path)
    check_target(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out_path, bundle.jsonl)
    manifest = dict(bundle.manifest, output={**bundle.manifest["output"], "file": out_path.name})  # jsonl only
    manifest_path = manifest_path_for(out_path)
    atomic.write_text(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return out_path, manifest_path
