"""Real-browser test of the map above its point limit (a density image and a drawn sample), on the project's
sample data with the limit lowered to 300 points (``CURATE_MAP_POINTS``): hover a drawn point, click it and
read its text, lasso a region and get every row inside it (not only the drawn ones), veto the opened
cluster and see the map change in place (the same canvas, its zoom kept)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.prepare import PrepareOptions, prepare
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, choose_option, serve, wait_idle

pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "sample.jsonl"
LIMIT = 300
VETO = "Vetoed (leave this cluster out)"


@pytest.fixture(scope="module")
def served_map(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workspace = tmp_path_factory.mktemp("map") / "ws"
    prepare(Store(workspace), SAMPLE, PrepareOptions(name="sample", embedder={"name": "hashing"}, k_grid=(8,)))
    with serve(workspace, env={"CURATE_MAP_POINTS": str(LIMIT)}) as url:
        yield url, workspace


def test_hover_click_lasso_and_veto_on_the_density_map(served_map: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, workspace = served_map
    store = Store(workspace)
    dataset = ds.get_dataset(store, "sample")
    assert dataset.n_rows > 5 * LIMIT
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        expect.set_options(timeout=90_000)
        page.goto(f"{url}/clusters")
        expect(page.get_by_text(f"{LIMIT} sampled points are drawn on top")).to_be_visible()
        root = page.locator(".curate-map")
        expect(root).to_have_attribute("data-drawn", str(LIMIT))  # the sample, not every row
        wait_idle(page)
        assert int(root.get_attribute("data-labels") or 0) > 0  # cluster labels written on the map
        points = root.evaluate("r => r.curateMap.points()")
        point = points[len(points) // 2]

        page.mouse.move(point["x"], point["y"])  # hover names the row, its cluster's label, and says a click reads it
        tip = root.locator(".tip")
        expect(tip).to_contain_text("click to read it")
        row = int(re.search(r"row (\d+)", tip.text_content() or "").group(1))
        # (several rows may share a spot: the one hovered is the one clicked)

        page.mouse.click(point["x"], point["y"])  # a click shows that row's text on the page
        expect(page.get_by_text(f"The point you clicked (row {row}):")).to_be_visible()
        text = curation.example_page(store, dataset.dataset_id, dataset.active_k, row_idx=row, limit=1)
        expect(page.get_by_text(text.instruction.iloc[0][:40], exact=False).first).to_be_visible()
        wait_idle(page)

        # a lasso around the middle of the map takes every row inside it, drawn or not
        root.get_by_role("button", name="Lasso").click()
        canvas = root.locator("canvas").bounding_box()
        left, top, width, height = canvas["x"], canvas["y"], canvas["width"], canvas["height"]
        corners = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.12)]
        page.mouse.move(left + width * corners[0][0], top + height * corners[0][1])
        page.mouse.down()
        for fx, fy in corners[1:]:
            page.mouse.move(left + width * fx, top + height * fy, steps=8)
        page.mouse.up()
        caption = page.get_by_text(re.compile(r"[\d,]+ points selected; opened the cluster"))
        expect(caption).to_be_visible()
        selected = int(re.match(r"([\d,]+)", caption.inner_text()).group(1).replace(",", ""))
        assert selected > LIMIT  # more than could have been drawn: the lasso counted every row
        expect(page.get_by_role("heading", name=re.compile(r"^Cluster \d+:"))).to_be_visible()
        wait_idle(page)

        # zoom in, then veto the opened cluster: the same canvas redraws, greys it, and keeps the zoom
        root.get_by_role("button", name="Pan").click()
        page.mouse.move(left + width / 2, top + height / 2)
        page.mouse.wheel(0, -400)
        root.locator("canvas").evaluate("c => { c.mark = 'before the veto' }")
        zoomed = len(root.evaluate("r => r.curateMap.points()"))
        assert zoomed < LIMIT  # fewer points in view
        revision = root.get_attribute("data-revision")
        page.get_by_text(VETO).click()
        expect(page.get_by_role("switch", name=VETO)).to_be_checked()
        expect(root).not_to_have_attribute("data-revision", revision or "")
        wait_idle(page)
        assert root.locator("canvas").evaluate("c => c.mark") == "before the veto"  # not mounted afresh
        assert len(root.evaluate("r => r.curateMap.points()")) == zoomed  # the curator's zoom is kept
        root.get_by_role("button", name="Reset view").click()
        vetoed = root.evaluate("r => r.curateMap.labels().filter(l => l.vetoed).length")
        assert vetoed >= 1  # its label on the map says "(vetoed)"

        # a cluster opened from the picker is zoomed to: most points in view are its own
        wait_idle(page)
        whole = root.evaluate("r => r.curateMap.points()")
        smallest = min({p["cluster"] for p in whole}, key=lambda c: sum(p["cluster"] == c for p in whole))
        choose_option(page, "Open a cluster", f"{smallest}:")
        expect(page.get_by_role("heading", name=re.compile(rf"^Cluster {smallest}:"))).to_be_visible()
        wait_idle(page)
        shown = root.evaluate("r => r.curateMap.points()")
        own = sum(p["cluster"] == smallest for p in shown)
        assert own >= 0.9 * sum(p["cluster"] == smallest for p in whole)  # (nearly) all of it in view
        assert own / len(shown) > own / len(whole)  # and closer than the whole map

        # the keyboard: j opens the next cluster, x vetoes the open one, u undoes it
        page.mouse.click(5, 5)  # focus the page, not a text field
        page.keyboard.press("j")
        ids = [int(c) for c in curation.clusters(store, dataset.dataset_id, dataset.active_k).cluster_id]
        following = ids[(ids.index(smallest) + 1) % len(ids)]
        expect(page.get_by_role("heading", name=re.compile(rf"^Cluster {following}:"))).to_be_visible()
        wait_idle(page)
        page.keyboard.press("x")
        expect(page.get_by_role("switch", name=VETO)).to_be_checked()
        wait_idle(page)
        page.keyboard.press("u")
        expect(page.get_by_role("switch", name=VETO)).not_to_be_checked()

        # n, n marks the open cluster's third example, e shows it in full, v vetoes it, u undoes that
        third = curation.example_page(store, dataset.dataset_id, dataset.active_k, cluster_id=following, limit=3)
        third = third.iloc[2]
        for key in ("n", "n", "e"):
            wait_idle(page)
            page.keyboard.press(key)
        expect(page.get_by_text(re.compile(rf"· id {re.escape(str(third.example_id))} ·"))).to_be_visible()
        wait_idle(page)
        page.keyboard.press("v")
        vetoed_examples = lambda: curation.decisions(store, dataset.dataset_id)["vetoed_examples"]  # noqa: E731
        deadline = time.monotonic() + 60
        while vetoed_examples() != [third.example_id]:
            assert time.monotonic() < deadline, f"v vetoed {vetoed_examples()}, not {third.example_id}"
            time.sleep(0.2)
        wait_idle(page)
        page.keyboard.press("u")
        deadline = time.monotonic() + 60
        while vetoed_examples():
            assert time.monotonic() < deadline, "u did not undo the example's veto"
            time.sleep(0.2)
        browser.close()
    vetoed = curation.clusters(store, dataset.dataset_id, dataset.active_k).vetoed
    assert vetoed.sum() == 1
