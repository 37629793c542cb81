"""Integration fixtures: the sample data prepared once per session with the packaged models.

Preparing ``sample_data/sample.jsonl`` (2,240 rows: MiniLM embeddings, the k sweep, labels, the map) is the
same work for every test that starts from it; it runs once, through the Python API as a user would call it (in
a process of its own), and each test copies the prepared folder. A copy's own ``prepare`` of the same file
reuses the dataset.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SAMPLE = ROOT / "sample_data" / "sample.jsonl"


PREPARE = (
    "import sys; from core import Workspace; Workspace(sys.argv[1]).prepare(sys.argv[2], name='sample', progress=False)"
)


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding dataset "sample", prepared with every default. Never modify it: copy it.

    The prepare runs in a fresh Python process: in the test session's own process, after the tests before its
    first user had run, the same call took 148 s instead of 41, a tenth of ``make test`` (why is not pinned
    down: the process ran on one core, and the stack sampled once was opening a DuckDB connection)."""
    folder = tmp_path_factory.mktemp("sample") / "ws"
    subprocess.run([sys.executable, "-c", PREPARE, str(folder), str(SAMPLE)], cwd=ROOT, check=True)
    return folder


def copy_workspace(prepared: Path, to: Path) -> Path:
    """A private copy of a prepared workspace at ``to``."""
    shutil.copytree(prepared, to)
    return to
