"""Shared helpers of the real-browser tests: serve the app on a free port, open Debian Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NEEDS_CHROMIUM = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make test installs it)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {timeout} s")


def choose_option(page, label: str, text: str, attempts: int = 5) -> None:
    """Open a Streamlit selectbox and pick an option; retried because a rerun can close the list."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    combobox = page.get_by_role("combobox", name=label)
    for attempt in range(attempts):
        combobox.click()
        combobox.press_sequentially(text)
        option = page.get_by_role("option").filter(has_text=text).first
        try:
            option.click(timeout=10_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")


def wait_idle(page: Any, timeout: float = 90, settle: float = 1.0) -> None:
    """Wait until the session's script has stopped running and stayed stopped for ``settle`` seconds.

    A click that lands while a run is still drawing the page can hit a widget that the same run is about
    to replace; waiting for the run to end first makes a test's clicks reach the app every time. The
    state comes from the ``data-test-script-state`` attribute Streamlit's own browser tests read.
    """
    app = page.locator('[data-testid="stApp"]')
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        if app.get_attribute("data-test-script-state") != "notRunning":
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the app was still running after {timeout} s")


@contextmanager
def serve(
    workspace: Path, *extra: str, address: str | None = "127.0.0.1", env: dict[str, str] | None = None
) -> Iterator[str]:
    """``streamlit run app/main.py`` on a free port for ``workspace``; yields its URL, stops it by its PID.

    ``address`` None leaves the address to ``.streamlit/config.toml`` (what ``make run`` does); ``env``: more
    environment variables for the server (``CURATE_*`` settings).
    """
    port = free_port()
    env = dict(os.environ, CURATE_WORKSPACE=str(workspace), **(env or {}))
    command = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)]
    command += ["--server.address", address] if address else []
    command += ["--server.headless", "true", "--browser.gatherUsageStats", "false", *extra]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def new_page(playwright: Any, **options: Any) -> Any:
    """A Chromium page with the long timeouts a shared 2-core box needs."""
    from playwright.sync_api import expect

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(**options)
    page.set_default_timeout(90_000)
    expect.set_options(timeout=90_000)
    return page
