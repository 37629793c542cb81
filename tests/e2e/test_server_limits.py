"""The server as `make run` starts it: reachable from this machine only, and refusing oversized uploads."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.browser import NEEDS_CHROMIUM, new_page, serve

pytestmark = [pytest.mark.e2e]
LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc/net/tcp{,6} write them


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of sockets listening on ``port`` (state 0A), from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if int(port_hex, 16) == port and fields[3] == "0A":
                found.add(address)
    return found


def test_the_config_and_the_makefile_bind_to_localhost() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["server"]["maxUploadSize"] == 1024
    assert "ADDRESS ?= localhost" in (ROOT / "Makefile").read_text()


def test_the_server_listens_on_loopback_only(tmp_path: Path) -> None:
    with serve(tmp_path / "ws", address=None) as url:  # the address comes from .streamlit/config.toml
        addresses = _listening_addresses(int(url.rsplit(":", 1)[1]))
    assert addresses and addresses <= LOOPBACK, addresses


@NEEDS_CHROMIUM
def test_an_upload_over_the_limit_is_refused_with_a_message(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    workspace = tmp_path / "ws"
    big = tmp_path / "big.jsonl"
    row = '{"instruction": "Say hi", "input": "", "output": "' + "hi " * 500 + '"}\n'
    big.write_text(row * (2 * 1024 * 1024 // len(row) + 1))  # just over 2 MB
    with serve(workspace, "--server.maxUploadSize", "1") as url, sync_playwright() as playwright:
        page = new_page(playwright)
        page.goto(f"{url}/datasets")
        expect(page.get_by_role("heading", name="Datasets", exact=True, level=1)).to_be_visible()
        page.get_by_text("Upload a file").click()
        expect(page.get_by_text("1MB per file")).to_be_visible()
        page.locator("input[type=file]").set_input_files(str(big))
        expect(page.get_by_text("File must be 1.0MB or smaller.")).to_be_visible()
        expect(page.get_by_role("button", name="Prepare")).to_have_count(0)
        page.context.browser.close()
    assert not (workspace / "uploads").exists() or not any((workspace / "uploads").iterdir())
    assert not (workspace / "jobs").exists()
