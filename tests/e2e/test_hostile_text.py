"""Real-browser test: a dataset full of hostile text (HTML, <script>, markdown links and images, directives,
math, a 200,000-character word) served with `streamlit run` and visited page by page in Debian Chromium.

On every page, after hovering the map and opening clusters, selections and runs, the DOM holds nothing the
data injected: no script ran, no element with the data's id, no tracker image, no javascript: link, no
heading, bold, math or colored text made from the data, no horizontal overflow. The hostile text is still
readable as text on the cluster cards, and the exported JSONL holds the input rows unchanged.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.e2e.browser import NEEDS_CHROMIUM, choose_option, new_page, serve, wait_idle
from tests.ui.test_hostile_text_pages import (
    BOLD_HTML,
    DATASET_NAME,
    HOSTILE,
    LINK,
    LONG_WORD,
    SELECTION_NAME,
    prepare_hostile_workspace,
)

pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]

# What a page would hold had any hostile text been interpreted; every count must stay 0.
PROBE = """() => ({
    pwned: typeof window.__pwned,
    injected: document.querySelectorAll('#injected').length,
    onerror: document.querySelectorAll('[onerror]').length,
    trackers: [...document.images].filter(i => (i.getAttribute('src') || '').includes('127.0.0.1:9')).length,
    javascriptLinks: document.querySelectorAll('a[href^="javascript" i]').length,
    dataLinks: [...document.links].filter(a => !a.href.startsWith(location.origin)).length,
    scripts: [...document.scripts].filter(s => s.textContent.includes('__pwned')).length,
    headings: [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]
        .filter(h => /^\\s*Heading/.test(h.textContent)).length,
    bold: [...document.querySelectorAll('strong, b')].filter(e => e.textContent.trim() === 'bold').length,
    math: document.querySelectorAll('.katex').length,
    directives: document.querySelectorAll('.stMarkdownColoredText, .stMarkdownColoredBackground').length,
    overflow: Math.max(0, document.documentElement.scrollWidth - document.documentElement.clientWidth),
})"""
CLEAN = {
    "pwned": "undefined",
    "injected": 0,
    "onerror": 0,
    "trackers": 0,
    "javascriptLinks": 0,
    "dataLinks": 0,
    "scripts": 0,
    "headings": 0,
    "bold": 0,
    "math": 0,
    "directives": 0,
    "overflow": 0,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """The hostile workspace (no saved selection: the test saves one in the browser) and the app serving it."""
    workspace, data = prepare_hostile_workspace(tmp_path_factory.mktemp("hostile-e2e"), with_selection=False)
    with serve(workspace) as url:
        yield url, workspace, data


class Watch:
    """Requests to the tracker's address and dialogs (alert) the page opened, seen over the whole visit."""

    def __init__(self, page: Any):
        self.trackers: list[str] = []
        self.dialogs: list[str] = []
        page.on("request", lambda request: self._request(request.url))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def _request(self, url: str) -> None:
        if "127.0.0.1:9/" in url:
            self.trackers.append(url)


def assert_inert(page: Any, watch: Watch, where: str) -> None:
    found = page.evaluate(PROBE)
    assert found == CLEAN, (where, found)
    assert not watch.trackers and not watch.dialogs, (where, watch.trackers, watch.dialogs)


def visit(page: Any, url: str, path: str, heading: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/{path}")
    expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible()


def hover_map(page: Any) -> list[str]:
    """Move the mouse over every drawn point of the map; returns the hover labels' text seen."""
    from playwright.sync_api import expect

    root = page.locator(".curate-map").first
    root.scroll_into_view_if_needed()
    expect(root).to_have_attribute("data-drawn", re.compile(r"^[1-9]"))  # the points are decoded and drawn
    labels = []
    for point in root.evaluate("r => r.curateMap.points()"):
        page.mouse.move(point["x"], point["y"])
        time.sleep(0.05)
        labels.append(root.locator(".tip").text_content() or "")
    page.mouse.move(0, 0)
    return labels


def test_hostile_text_stays_text_on_every_page(served: tuple[str, Path, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, workspace, _ = served
    store = Store(workspace)
    dataset = ds.get_dataset(store, DATASET_NAME)
    table = curation.clusters(store, dataset.dataset_id, dataset.active_k)
    with sync_playwright() as playwright:
        page = new_page(playwright, viewport={"width": 1400, "height": 1000})
        watch = Watch(page)

        visit(page, url, "", "Curation studio")  # the home page names the dataset and its newest selection
        expect(page.get_by_text("Where it stands")).to_be_visible()
        assert_inert(page, watch, "home")

        visit(page, url, "datasets", "Datasets")
        expect(page.get_by_role("heading", name="Summary:")).to_be_visible()
        assert_inert(page, watch, "datasets")

        visit(page, url, "clusters", "Clusters")
        labels = hover_map(page)
        assert any(BOLD_HTML in label for label in labels), labels  # escaped: the tag shows as text, not bold
        assert_inert(page, watch, "clusters map hovered")
        seen, shown = set(), []
        for cluster in table.cluster_id:
            choose_option(page, "Open a cluster", f"{cluster}:")
            expect(page.get_by_role("heading", name=f"Cluster {cluster}:")).to_be_visible()
            if not page.get_by_text("Veto this example").first.is_visible():
                page.get_by_text("cards", exact=True).click()  # every example in full, not the compact table
            expect(page.get_by_text("Veto this example").first).to_be_visible()
            assert_inert(page, watch, f"cluster {cluster}")
            wait_idle(page)  # the card's texts arrive one by one: read them once the run has finished
            cards = page.locator('[data-testid="stText"]').all_text_contents()
            shown += cards
            if any(BOLD_HTML in card for card in cards):
                expect(page.get_by_text(BOLD_HTML).first).to_be_visible()  # the tag itself, as text
                expect(page.get_by_text(LINK).first).to_be_visible()
                seen.add("hostile card")
            if LONG_WORD in cards:  # the 200,000-character word wraps inside its card, which scrolls
                box = page.locator('[data-testid="stText"]').filter(has_text="wwwwwwwwww").first.bounding_box()
                assert box is not None and box["width"] < 1400
                seen.add("long card")
        assert seen == {"hostile card", "long card"}
        for fragment in HOSTILE:  # every card's text, exactly as in the file (the first line of an instruction)
            assert any(card.startswith(fragment + "\n") for card in shown), fragment

        visit(page, url, "diagnostics", "Diagnostics")
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        assert_inert(page, watch, "diagnostics")

        visit(page, url, "quality", "Quality")
        expect(page.get_by_role("heading", name="Clusters by quality")).to_be_visible()
        assert_inert(page, watch, "quality")

        visit(page, url, "select", "Select")
        budget = page.get_by_label("Budget: a count, or a fraction below 1 of the dataset's rows")
        budget.fill("5")
        budget.press("Enter")
        page.get_by_role("button", name="Preview").click()
        expect(page.get_by_text("kept examples")).to_be_visible()
        name = page.get_by_label("Name", exact=True)
        name.fill(SELECTION_NAME)
        name.press("Enter")
        page.get_by_role("button", name="Save selection").click()
        expect(page.get_by_text("Saved selection #")).to_be_visible()
        assert_inert(page, watch, "select")

        visit(page, url, "export", "Export")
        combobox = page.get_by_role("combobox", name="What to export")
        combobox.click()
        expect(page.get_by_role("option").filter(has_text=SELECTION_NAME)).to_be_visible()  # plain option text
        assert_inert(page, watch, "export options")
        page.keyboard.press("Escape")
        path = page.get_by_label("Or write to a file inside", exact=False)
        path.fill(f"../{LINK}/{BOLD_HTML}.jsonl")
        path.press("Enter")
        page.get_by_role("button", name="Write to path").click()
        expect(page.get_by_text("would leave the")).to_be_visible()
        expect(page.get_by_text(LINK, exact=False).first).to_be_visible()  # the typed path, quoted as text
        assert_inert(page, watch, "export error")

        visit(page, url, "runs", "Runs")
        expect(page.get_by_text("Training loss")).to_be_visible()
        page.get_by_text("Launch a run").click()  # folded away once runs exist
        page.get_by_text("a saved selection").click()
        combobox = page.get_by_role("combobox", name="Selection")
        expect(combobox).to_be_visible()
        assert_inert(page, watch, "runs")

        visit(page, url, "gradients", "Gradient graph")
        expect(page.get_by_text("No gradient features yet")).to_be_visible()
        assert_inert(page, watch, "gradients")
        page.context.browser.close()


def test_export_holds_the_hostile_rows_unchanged(served: tuple[str, Path, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _, data = served
    with sync_playwright() as playwright:
        page = new_page(playwright, accept_downloads=True)
        visit(page, url, "export", "Export")
        expect(page.get_by_role("combobox", name="What to export")).to_have_value("Every non-vetoed example")
        wait_idle(page)  # a click during a run can miss the button the run replaces
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download JSONL").click()
        exported = tmp_path / "export.jsonl"
        download_info.value.save_as(exported)
        page.context.browser.close()

    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert rows == [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
