"""Unit-tier fixtures: one prepared workspace per session, copied for each test that changes it.

Preparing pays UMAP's JIT (~10 s) once per process; copying the prepared folder costs milliseconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl


def count_rows(workspace: Path, table: str) -> int:
    """Rows in one table of a workspace (table names are constants in the tests)."""
    from core.storage.database import Store

    with Store(workspace).read() as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def store_snapshot(workspace: Path) -> tuple[list[tuple[str, int, str]], int, int]:
    """What a failed ingest must leave unchanged: the dataset list, the example count, the data version."""
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    listing = [(d.name, d.n_rows, d.status) for d in ds.list_datasets(store)]
    with store.read() as con:
        n_examples = con.execute("SELECT count(*) FROM examples").fetchone()[0]
    return listing, n_examples, store.data_version()


@pytest.fixture(scope="session")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 24-row keyword file the template workspace was prepared from (do not modify)."""
    return write_jsonl(tmp_path_factory.mktemp("template") / "tiny.jsonl", keyword_rows())


@pytest.fixture(scope="session")
def template_workspace(template_file: Path) -> Path:
    """A workspace holding dataset "tiny" (keyword embedder, k in {2, 4, 6}, seed 0). Never modify it: copy it."""
    from core.prepare import PrepareOptions, prepare
    from core.storage.database import Store

    workspace = template_file.parent / "ws"
    prepare(
        Store(workspace),
        template_file,
        PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4, 6), seed=0),
    )
    return workspace


@pytest.fixture
def workspace(template_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared template workspace."""
    copy = tmp_path / "ws"
    shutil.copytree(template_workspace, copy)
    return copy
