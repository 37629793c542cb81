"""Importing any core module loads no heavy or UI library.

torch, transformers and sentence-transformers cost seconds to import and duckdb opens files: core imports them
inside the functions that use them, so the CLI answers fast, the worker starts fast and the app's pages render
before any model loads. streamlit and plotly belong to app/ and pages/ only. The import runs in a fresh
interpreter, since this test process has long imported all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "duckdb", "streamlit", "plotly", "transformers", "sentence_transformers")

# Walks core (pkgutil imports each package to find its children), imports every module, and prints, for each
# module, the heavy libraries that importing it added to sys.modules.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import core
heavy = {heavy!r}
loaded, modules = {{}}, ["core"]
for info in pkgutil.walk_packages(core.__path__, "core."):
    modules.append(info.name)
    before = {{name for name in heavy if name in sys.modules}}
    importlib.import_module(info.name)
    added = sorted(name for name in heavy if name in sys.modules and name not in before)
    if added:
        loaded[info.name] = added
print(json.dumps({{"modules": modules, "loaded": loaded}}))
"""


@pytest.mark.subprocess  # the one test of the fast tier that starts a process: it needs a clean interpreter
def test_importing_every_core_module_loads_no_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL.format(heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert len(report["modules"]) > 40, report["modules"]  # the walk reached every stage, not just the top
    assert report["loaded"] == {}
