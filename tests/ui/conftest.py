"""AppTest fixtures: pages run against a prepared temporary workspace named by CURATE_WORKSPACE."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture
def page(prepared_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], AppTest]:
    """Build an AppTest for ``pages/<name>.py`` (or the entry point for ``main``) over the prepared workspace."""
    monkeypatch.setenv("CURATE_WORKSPACE", str(prepared_workspace))

    def build(name: str) -> AppTest:
        path = ROOT / "app" / "main.py" if name == "main" else ROOT / "pages" / f"{name}.py"
        return AppTest.from_file(str(path), default_timeout=60)

    return build
