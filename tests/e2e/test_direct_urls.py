"""Real-browser test: every page opens from its own address typed into the browser, not only from the menu.

The default page of ``st.navigation`` is served at the root only; when Datasets was the default, /datasets
answered "Page not found". The home page is the default now, and every other page has its own address.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser import NEEDS_CHROMIUM, new_page, serve, wait_idle

pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]

ADDRESSES = [
    ("", "Curation studio"),
    ("datasets", "Datasets"),
    ("clusters", "Clusters"),
    ("diagnostics", "Diagnostics"),
    ("quality", "Quality"),
    ("gradients", "Gradient graph"),
    ("select", "Select"),
    ("runs", "Runs"),
    ("export", "Export"),
]


def test_every_page_opens_from_its_address(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with serve(tmp_path / "ws") as url, sync_playwright() as playwright:
        page = new_page(playwright)
        for path, heading in ADDRESSES:
            page.goto(f"{url}/{path}")
            expect(page.get_by_role("heading", name=heading, exact=True, level=1)).to_be_visible()
            wait_idle(page)  # a "Page not found" notice comes with the run that falls back to the default page
            assert page.get_by_text("Page not found").count() == 0, path
            assert page.url.rstrip("/") == f"{url}/{path}".rstrip("/"), (path, page.url)
        page.context.browser.close()
