"""Integration fixtures: the sample data prepared once per session with the packaged models.

Preparing ``sample_data/sample.jsonl`` (2,240 rows: MiniLM embeddings, the k sweep, labels, the map) is the
same work for every test that starts from it; it runs once, through the Python API as a user would call it,
and each test copies the prepared folder. A copy's own ``prepare`` of the same file reuses the dataset.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

SAMPLE = ROOT / "sample_data" / "sample.jsonl"


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding dataset "sample", prepared with every default. Never modify it: copy it."""
    from core import Workspace

    folder = tmp_path_factory.mktemp("sample") / "ws"
    Workspace(folder).prepare(SAMPLE, name="sample", progress=False)
    return folder


def copy_workspace(prepared: Path, to: Path) -> Path:
    """A private copy of a prepared workspace at ``to``."""
    shutil.copytree(prepared, to)
    return to
