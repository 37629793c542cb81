"""Datasets, their examples, the embedding cache, k sweeps and map coordinates: reads and writes.

All SQL here uses ``?`` parameters; bulk rows go in through Arrow tables registered on the connection, a new
dataset's examples through a staging Parquet file (:mod:`core.storage.staging`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import DatasetNotFound
from core.storage.database import one_row

if TYPE_CHECKING:
    import pandas as pd

    from core.ingest import IngestSummary
    from core.storage.database import Store
    from core.storage.staging import ExampleStaging


@dataclass(frozen=True)
class DatasetInfo:
    """One row of the ``datasets`` table, decoded."""

    dataset_id: int
    name: str
    source_path: str
    file_sha256: str
    shape: str
    mapping: dict[str, Any]
    n_rows: int
    n_skipped: int
    skipped: list[str]
    created_at: datetime
    embedder: dict[str, Any]
    embedder_key: str | None
    embed_fields: list[str]
    seed: int
    k_grid: list[int]
    active_k: int | None
    best_k: int | None
    knee_k: int | None
    status: str
    # where a dataset read through Hugging Face datasets came from (core.ingest.hf.HFRows.origin); None for a file
    source: dict[str, Any] | None = None


_DATASET_COLUMNS = (
    "dataset_id, name, source_path, file_sha256, shape, mapping, n_rows, n_skipped, skipped, created_at, "
    "embedder, embedder_key, embed_fields, seed, k_grid, active_k, best_k, knee_k, status, source"
)
_JSON_FIELDS = {"mapping", "skipped", "embedder", "embed_fields", "k_grid"}


def _to_info(row: tuple[Any, ...]) -> DatasetInfo:
    names = [name.strip() for name in _DATASET_COLUMNS.split(",")]
    values = {
        name: (json.loads(v) if name in _JSON_FIELDS | {"source"} and v is not None else v)
        for name, v in zip(names, row, strict=True)
    }
    for name in _JSON_FIELDS:
        if values[name] is None:
            values[name] = [] if name in {"skipped", "embed_fields", "k_grid"} else {}
    return DatasetInfo(**values)


def list_datasets(store: Store) -> list[DatasetInfo]:
    """Every dataset in the workspace, oldest first."""
    with store.read() as con:
        rows = con.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets ORDER BY dataset_id").fetchall()
    return [_to_info(row) for row in rows]


def dataset_rows(store: Store) -> list[dict[str, Any]]:
    """Every dataset as a row of a listing (the CLI's ``datasets``, the Python API's ``Workspace.datasets``)."""
    return [
        {
            "id": d.dataset_id,
            "name": d.name,
            "rows": d.n_rows,
            "skipped": d.n_skipped,
            "status": d.status,
            "k": d.active_k,
            "source": d.source_path,
        }
        for d in list_datasets(store)
    ]


def get_dataset(store: Store, ref: str | int | None = None) -> DatasetInfo:
    """A dataset by name or id; ``None`` means the most recently created one."""
    datasets = list_datasets(store)
    if not datasets:
        raise DatasetNotFound(f"The workspace {store.workspace} has no dataset yet; prepare one first.")
    if ref is None:
        return datasets[-1]
    for info in datasets:
        if info.name == str(ref) or str(info.dataset_id) == str(ref):
            return info
    names = ", ".join(info.name for info in datasets)
    raise DatasetNotFound(f"No dataset named {ref!r} in {store.workspace} (have: {names}).")


def insert_dataset(
    store: Store,
    found: IngestSummary,
    staged: ExampleStaging,
    *,
    name: str,
    embedder: dict[str, Any],
    embedder_key: str,
    embed_fields: list[str],
    seed: int,
) -> int:
    """Store a read file and its examples, staged in ``staged``, in one transaction; returns the new dataset id.

    Each example's id is its content hash's first 16 characters, with "-n" on the n-th repeat of an exact
    duplicate in row order: :func:`core.ingest.assign_ids`, in SQL, so no table of every hash is held in memory.
    """
    staged.close()
    with store.write() as con:
        dataset_id = one_row(con.execute("SELECT nextval('dataset_ids')"))[0]
        con.execute(
            "INSERT INTO datasets (dataset_id, name, source_path, file_sha256, shape, mapping, n_rows, n_skipped, "
            "skipped, created_at, embedder, embedder_key, embed_fields, seed, k_grid, status, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', 'ingested', ?)",
            [
                dataset_id,
                name,
                found.source_path,
                found.file_sha256,
                found.shape,
                json.dumps(found.mapping),
                staged.n_rows,
                found.n_skipped,
                json.dumps([bad.describe() for bad in found.bad_rows]),
                datetime.now(UTC).replace(tzinfo=None),
                json.dumps(embedder),
                embedder_key,
                json.dumps(embed_fields),
                seed,
                json.dumps(found.source) if found.source else None,
            ],
        )
        # The occurrence numbers are computed on two narrow columns and paired with the rows by position: a
        # window over the whole rows sorted every text (at 300k rows 6.5 s and 1.34 GB against 4.2 s, 1.04 GB).
        con.execute(
            "INSERT INTO examples SELECT ?, s.row_idx, "
            "left(s.content_hash, 16) || CASE WHEN d.n > 1 THEN '-' || CAST(d.n AS VARCHAR) ELSE '' END, "
            "s.location, s.instruction, s.input, s.output, s.messages, s.original, s.content_hash, s.prompt_hash, "
            "s.text_hash FROM read_parquet(?) s POSITIONAL JOIN (SELECT n FROM (SELECT row_idx, "
            "row_number() OVER (PARTITION BY content_hash ORDER BY row_idx) AS n FROM read_parquet(?)) "
            "ORDER BY row_idx) d",
            [dataset_id, str(staged.path), str(staged.path)],
        )
    return int(dataset_id)


def delete_dataset(store: Store, dataset_id: int) -> None:
    """Remove a dataset and everything derived from it (the shared embedding cache is kept)."""
    with store.write() as con:
        con.execute(
            "DELETE FROM selection_items WHERE selection_id IN (SELECT selection_id FROM selections WHERE dataset_id = ?)",
            [dataset_id],
        )
        con.execute(
            "DELETE FROM gradient_edges WHERE feature_key IN (SELECT feature_key FROM gradient_sets WHERE dataset_id = ?)",
            [dataset_id],
        )
        for table in (
            "gradient_sets",
            "hidden_sets",
            "selections",
            "examples",
            "k_sweep",
            "assignments",
            "cluster_labels",
            "cluster_label_memory",
            "map_coords",
            "cluster_decisions",
            "cluster_names",
            "example_vetoes",
            "history",
            "history_batches",
            "tags",
            "search_postings",
            "search_vocab",
            "datasets",
        ):
            con.execute(f"DELETE FROM {table} WHERE dataset_id = ?", [dataset_id])  # table names are constants


def update_dataset(store: Store, dataset_id: int, **fields: Any) -> None:
    """Set some columns of a dataset row (JSON fields are encoded here)."""
    allowed = {"status", "active_k", "best_k", "knee_k", "k_grid"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update dataset fields {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    values = [json.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()]
    with store.write() as con:
        con.execute(f"UPDATE datasets SET {assignments} WHERE dataset_id = ?", [*values, dataset_id])


def text_hashes(store: Store, dataset_id: int) -> list[str]:
    """The embedded-text hash of every example, in row order."""
    with store.read() as con:
        rows = con.execute(
            "SELECT text_hash FROM examples WHERE dataset_id = ? ORDER BY row_idx", [dataset_id]
        ).fetchall()
    return [row[0] for row in rows]


def cached_text_hashes(store: Store, embedder_key: str, hashes: list[str]) -> set[str]:
    """Which of ``hashes`` already have an embedding under ``embedder_key``."""
    import pyarrow as pa

    with store.read() as con:
        con.register("wanted", pa.table({"text_hash": list(set(hashes))}))
        rows = con.execute(
            "SELECT c.text_hash FROM embedding_cache c JOIN wanted w USING (text_hash) WHERE c.embedder_key = ?",
            [embedder_key],
        ).fetchall()
        con.unregister("wanted")
    return {row[0] for row in rows}


def put_embeddings(store: Store, embedder_key: str, hashes: list[str], vectors: np.ndarray) -> None:
    """Add vectors to the embedding cache (existing entries are kept)."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    values = pa.array(vectors.reshape(-1))
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, vectors.size + 1, vectors.shape[1], dtype=np.int32)), values)
    table = pa.table({"embedder_key": [embedder_key] * len(hashes), "text_hash": hashes, "vector": lists})
    with store.write() as con:
        con.register("new_vectors", table)
        con.execute("INSERT OR IGNORE INTO embedding_cache SELECT embedder_key, text_hash, vector FROM new_vectors")
        con.unregister("new_vectors")


def delete_embeddings(store: Store, embedder_key: str, hashes: list[str]) -> int:
    """Remove the cached vectors of ``hashes`` under ``embedder_key`` (others are kept); returns how many were
    removed. The next prepare of a dataset holding those texts embeds them again (bench/embed_rate.py re-opens
    a window of texts this way between its repeats)."""
    import pyarrow as pa

    with store.write() as con:
        con.register("doomed", pa.table({"text_hash": pa.array(list(set(hashes)), pa.string())}))
        (removed,) = one_row(
            con.execute(
                "DELETE FROM embedding_cache WHERE embedder_key = ? AND text_hash IN (SELECT text_hash FROM doomed)",
                [embedder_key],
            )
        )
        con.unregister("doomed")
    return int(removed)


EMBEDDING_BATCH_ROWS = 65_536  # rows of vectors read at a time by load_embeddings


def load_embeddings(store: Store, dataset_id: int, embedder_key: str) -> np.ndarray:
    """The (N, d) float32 embedding matrix of a dataset, in row order (rows without a cached vector left out).

    Read in record batches and placed by row index into one preallocated matrix: no ORDER BY (DuckDB would
    sort a million 1.5 kB rows) and no whole Arrow copy beside the result, so the peak stays near the matrix
    itself (at 1M x 384 the ordered, combined read peaked at 7.2 GB in bench/scale.py).
    """
    import pyarrow.compute as pc

    with store.read() as con:
        rows = np.sort(
            con.execute("SELECT row_idx FROM examples WHERE dataset_id = ?", [dataset_id]).fetchnumpy()["row_idx"]
        )
        reader = con.sql(
            "SELECT e.row_idx, c.vector FROM examples e JOIN embedding_cache c ON c.text_hash = e.text_hash "
            "AND c.embedder_key = ? WHERE e.dataset_id = ?",
            params=[embedder_key, dataset_id],
        ).to_arrow_reader(EMBEDDING_BATCH_ROWS)
        matrix: np.ndarray | None = None
        filled = np.zeros(len(rows), dtype=bool)
        for batch in reader:
            if batch.num_rows == 0:
                continue
            flat = pc.list_flatten(batch.column(1)).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            vectors = flat.reshape(batch.num_rows, -1)
            if matrix is None:
                matrix = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
            at = np.searchsorted(rows, batch.column(0).to_numpy(zero_copy_only=False))
            matrix[at] = vectors
            filled[at] = True
    if matrix is None:
        return np.zeros((0, 0), dtype=np.float32)
    return matrix if filled.all() else matrix[filled]


def embeddings_at_rows(store: Store, dataset_id: int, embedder_key: str, rows: np.ndarray) -> np.ndarray:
    """The embeddings of the given distinct rows, in the order given (a cluster's rows for a split or a
    relabel: read by a join, not the whole matrix)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = np.asarray(rows, dtype=np.int64)
    with store.read() as con:
        con.register("wanted_vectors", pa.table({"row_idx": wanted.astype(np.int32)}))
        try:
            table = con.sql(
                "SELECT e.row_idx, c.vector FROM examples e JOIN wanted_vectors w USING (row_idx) "
                "JOIN embedding_cache c ON c.text_hash = e.text_hash AND c.embedder_key = ? WHERE e.dataset_id = ?",
                params=[embedder_key, dataset_id],
            ).to_arrow_table()
        finally:
            con.unregister("wanted_vectors")
    if table is None:  # a SELECT always has a result: for the type checker
        raise RuntimeError("the embeddings query returned no result")
    if table.num_rows != len(wanted):
        raise LookupError(f"{len(wanted) - table.num_rows} of the {len(wanted)} rows asked for have no embedding")
    if table.num_rows == 0:
        return np.zeros((0, 0), dtype=np.float32)
    vectors = pc.list_flatten(table.column(1)).to_numpy(zero_copy_only=False).astype(np.float32)
    vectors = vectors.reshape(table.num_rows, -1)
    found = table.column(0).to_numpy().astype(np.int64)
    place = np.argsort(wanted, kind="stable")
    out = np.empty_like(vectors)
    out[place[np.searchsorted(wanted[place], found)]] = vectors
    return out


def save_sweep(
    store: Store,
    dataset_id: int,
    points: list[dict[str, Any]],
    labels_by_k: dict[int, np.ndarray],
    cluster_labels: dict[int, list[dict[str, Any]]],
) -> None:
    """Replace the stored sweep rows, assignments and cluster labels for the given k values."""
    import pyarrow as pa

    with store.write() as con:
        for point in points:
            k = int(point["k"])
            for table in ("k_sweep", "assignments", "cluster_labels", "cluster_label_memory"):
                con.execute(f"DELETE FROM {table} WHERE dataset_id = ? AND k = ?", [dataset_id, k])
            con.execute(
                "INSERT INTO k_sweep (dataset_id, k, inertia, silhouette, silhouette_sample, min_size, median_size, "
                "max_size, seed, fit_rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    dataset_id,
                    k,
                    point["inertia"],
                    point["silhouette"],
                    point["silhouette_sample"],
                    point["min_size"],
                    point["median_size"],
                    point["max_size"],
                    point["seed"],
                    point.get("fit_rows"),
                ],
            )
            labels = labels_by_k[k]
            con.register(
                "new_assign",
                pa.table(
                    {
                        "dataset_id": np.full(len(labels), dataset_id, dtype=np.int32),
                        "k": np.full(len(labels), k, np.int32),
                        "row_idx": np.arange(len(labels), dtype=np.int32),
                        "cluster_id": labels.astype(np.int32),
                    }
                ),
            )
            con.execute("INSERT INTO assignments SELECT * FROM new_assign")
            con.unregister("new_assign")
            for item in cluster_labels[k]:
                con.execute(
                    "INSERT INTO cluster_labels (dataset_id, k, cluster_id, label, terms, size, representative_row) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        dataset_id,
                        k,
                        item["cluster_id"],
                        item["label"],
                        json.dumps(item["terms"]),
                        item["size"],
                        item.get("representative_row"),
                    ],
                )


def load_sweep(store: Store, dataset_id: int) -> pd.DataFrame:
    """The k sweep diagnostics (one row per k, ascending), with the number of non-empty clusters each k kept
    and ``fit_rows``, the rows k-means was fitted on when fewer than all (else missing).

    ``n_clusters`` is counted from the stored assignments rather than stored, so sweeps stored before it
    existed report it too.
    """
    with store.read() as con:
        return con.execute(
            "SELECT s.k, s.inertia, s.silhouette, s.silhouette_sample, s.min_size, s.median_size, s.max_size, "
            "s.seed, (SELECT count(DISTINCT a.cluster_id) FROM assignments a "
            "WHERE a.dataset_id = s.dataset_id AND a.k = s.k) AS n_clusters, s.fit_rows "
            "FROM k_sweep s WHERE s.dataset_id = ? ORDER BY s.k",
            [dataset_id],
        ).df()


def save_map(store: Store, dataset_id: int, coords: np.ndarray) -> None:
    """Replace the 2-D map coordinates of a dataset."""
    import pyarrow as pa

    with store.write() as con:
        con.execute("DELETE FROM map_coords WHERE dataset_id = ?", [dataset_id])
        con.register(
            "new_coords",
            pa.table(
                {
                    "dataset_id": np.full(len(coords), dataset_id, dtype=np.int32),
                    "row_idx": np.arange(len(coords), dtype=np.int32),
                    "x": coords[:, 0].astype(np.float32),
                    "y": coords[:, 1].astype(np.float32),
                }
            ),
        )
        con.execute("INSERT INTO map_coords SELECT * FROM new_coords")
        con.unregister("new_coords")


def example_texts(store: Store, dataset_id: int) -> pd.DataFrame:
    """Every example's ids, hashes and texts, in row order: row_idx, example_id, content_hash, instruction,
    input, output, text_hash (for embedding, labels, scoring, gradients and training)."""
    with store.read() as con:
        return con.execute(
            "SELECT row_idx, example_id, content_hash, instruction, input, output, text_hash FROM examples "
            "WHERE dataset_id = ? ORDER BY row_idx",
            [dataset_id],
        ).df()


def example_hashes(store: Store, dataset_id: int) -> pd.DataFrame:
    """Every example's row_idx and content_hash, in row order: what score keys and counts read, without texts."""
    with store.read() as con:
        return con.execute(
            "SELECT row_idx, content_hash FROM examples WHERE dataset_id = ? ORDER BY row_idx", [dataset_id]
        ).df()


def outputs(store: Store, dataset_id: int) -> list[str]:
    """Every example's response text, in row order (what empty-response checks read, without the rest)."""
    with store.read() as con:
        rows = con.execute("SELECT output FROM examples WHERE dataset_id = ? ORDER BY row_idx", [dataset_id]).fetchall()
    return [text for (text,) in rows]


def field_values(store: Store, dataset_id: int, field: str) -> list[str | None]:
    """One field of every example's original row (``source``, ``topic``...), as text, in row order; None where a
    row lacks it or holds null. A number or an object comes back as its JSON text."""
    pointer = "/" + field.replace("~", "~0").replace("/", "~1")  # a JSON pointer: any key, dots and all
    with store.read() as con:
        rows = con.execute(
            "SELECT json_extract_string(original, ?) FROM examples WHERE dataset_id = ? ORDER BY row_idx",
            [pointer, dataset_id],
        ).fetchall()
    return [value for (value,) in rows]


def field_names(store: Store, dataset_id: int) -> list[str]:
    """Every field name found in the dataset's original rows, sorted (the columns a row may be grouped by)."""
    with store.read() as con:
        rows = con.execute(
            "SELECT DISTINCT unnest(json_keys(original)) AS name FROM examples WHERE dataset_id = ? ORDER BY name",
            [dataset_id],
        ).fetchall()
    return [name for (name,) in rows]


def examples_at(store: Store, dataset_id: int, rows: list[int]) -> pd.DataFrame:
    """row_idx, example_id, instruction, input, output of the given rows only, in no particular order."""
    with store.read() as con:
        return con.execute(
            "SELECT row_idx, example_id, instruction, input, output FROM examples "
            "WHERE dataset_id = ? AND list_contains(?, row_idx)",
            [dataset_id, [int(row) for row in rows]],
        ).df()


def duplicate_counts(store: Store, dataset_id: int) -> list[int]:
    """For every example in row order, how many examples of the dataset share its content (1 = unique)."""
    with store.read() as con:
        rows = con.execute(
            "SELECT count(*) OVER (PARTITION BY content_hash) FROM examples WHERE dataset_id = ? ORDER BY row_idx",
            [dataset_id],
        ).fetchall()
    return [int(n) for (n,) in rows]


def content_hashes(store: Store) -> list[str]:
    """The distinct content hashes of every dataset in the workspace, sorted."""
    with store.read() as con:
        rows = con.execute("SELECT DISTINCT content_hash FROM examples ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def assignments(store: Store, dataset_id: int, k: int) -> np.ndarray:
    """The cluster id of every example at clustering ``k``, in row order."""
    with store.read() as con:
        frame = con.execute(
            "SELECT cluster_id FROM assignments WHERE dataset_id = ? AND k = ? ORDER BY row_idx", [dataset_id, k]
        ).df()
    return frame.cluster_id.to_numpy()


def all_assignments(store: Store, dataset_id: int) -> pd.DataFrame:
    """k, row_idx, cluster_id of every swept clustering, ordered by k, then row."""
    with store.read() as con:
        return con.execute(
            "SELECT k, row_idx, cluster_id FROM assignments WHERE dataset_id = ? ORDER BY k, row_idx", [dataset_id]
        ).df()


def texts_in_rows(store: Store, dataset_id: int, start: int, stop: int) -> pd.DataFrame:
    """row_idx, instruction, input, output, text_hash of the rows ``start <= row_idx < stop``, in row order: what
    embedding reads chunk by chunk, so a prepare never holds every text at once."""
    with store.read() as con:
        return con.execute(
            "SELECT row_idx, instruction, input, output, text_hash FROM examples "
            "WHERE dataset_id = ? AND row_idx >= ? AND row_idx < ? ORDER BY row_idx",
            [dataset_id, int(start), int(stop)],
        ).df()


def texts_at_rows(store: Store, dataset_id: int, rows: np.ndarray) -> pd.DataFrame:
    """row_idx, instruction, input, output of the given rows (any number: joined, not listed), in row order."""
    import pyarrow as pa

    with store.read() as con:
        con.register("wanted_rows", pa.table({"row_idx": np.asarray(rows, dtype=np.int32)}))
        frame = con.execute(
            "SELECT e.row_idx, e.instruction, e.input, e.output FROM examples e JOIN wanted_rows w USING (row_idx) "
            "WHERE e.dataset_id = ? ORDER BY e.row_idx",
            [dataset_id],
        ).df()
        con.unregister("wanted_rows")
    return frame


def outputs_made_of(store: Store, dataset_id: int, characters: str) -> list[str]:
    """The responses made only of ``characters`` (the empty ones too), in row order: the few an empty-response
    count must look at, rather than every response of a large dataset."""
    others = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in characters) + "]"  # RE2: every character by code point
    with store.read() as con:
        rows = con.execute(
            "SELECT output FROM examples WHERE dataset_id = ? AND NOT regexp_matches(coalesce(output, ''), ?) "
            "ORDER BY row_idx",
            [dataset_id, others],
        ).fetchall()
    return [text or "" for (text,) in rows]
