"""The app on a workspace that another process holds, or that another app server also has open."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.test_workspace_in_use import HOLD_LOCK, holding


def test_a_held_workspace_shows_who_holds_it_not_a_trace(page, prepared_workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_LOCK_TIMEOUT", "0.5")
    with holding(HOLD_LOCK, prepared_workspace / ".lock") as holder:
        app = page("main").run()
    assert not app.exception
    assert any(f"is in use: process {holder.pid}" in error.value for error in app.error)

    app.run()  # once the holder is gone, the same session works again
    assert not app.exception and not app.error
    assert app.title[0].value == "Curation studio"  # the home page


def test_another_app_on_the_workspace_is_named_in_the_sidebar(page, prepared_workspace: Path) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; print('held', flush=True); time.sleep(120)", "streamlit"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        (prepared_workspace / "apps").mkdir(exist_ok=True)
        record = {"pid": other.pid, "url": "http://localhost:8599", "started_at": "2026-11-22T07:00:00+00:00"}
        (prepared_workspace / "apps" / f"{other.pid}.json").write_text(json.dumps(record))
        app = page("main").run()
    finally:
        other.kill()
        other.wait()
    assert not app.exception
    warnings = [warning.value.replace("\\", "").replace("\u2060", "") for warning in app.sidebar.warning]
    assert any(f"also open in another app: http://localhost:8599 (process {other.pid})" in text for text in warnings)
