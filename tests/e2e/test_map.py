"""Real-browser test of the map above its point limit (a density image and a drawn sample), on the project's
sample data with the limit lowered to 300 points (``CURATE_MAP_POINTS``): hover a drawn point, click it and
read its text, lasso a region and get every row inside it (not only the drawn ones), veto the opened
cluster and see the map change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.prepare import PrepareOptions, prepare
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, serve, wait_idle

pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "sample.jsonl"
LIMIT = 300
VETO = "Vetoed (leave this cluster out)"

# Page coordinates of the first drawn point of a trace, and what the figure holds, read from plotly's own
# state: the axes' data-to-pixel functions place the point where the mouse must go.
POINT_JS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const box = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const traces = gd._fullData.filter(t => t.x && t.x.length > 0);
  const t = traces[Math.floor(traces.length / 2)];
  return {px: box.left + xa._offset + xa.l2p(t.x[0]), py: box.top + ya._offset + ya.l2p(t.y[0]),
          row: Number(t.customdata[0]), drawn: gd._fullData.reduce((n, d) => n + (d.x ? d.x.length : 0), 0),
          left: box.left + xa._offset, top: box.top + ya._offset, width: xa._length, height: ya._length};
}"""
MAP_STATE_JS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  return {image: gd.layout.images[0].source.length + ':' + gd.layout.images[0].source.slice(-64),
          vetoed: (gd.layout.annotations || []).filter(a => a.text.includes('(vetoed)')).length};
}"""


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
        expect(page.locator(".js-plotly-plot .imagelayer image")).to_have_count(1)  # the density image
        wait_idle(page)
        point = page.evaluate(POINT_JS)
        assert point["drawn"] == LIMIT  # the sample, not every row

        page.mouse.move(point["px"], point["py"])  # hover names the row and says a click reads it
        expect(page.locator(".hoverlayer")).to_contain_text("click to read it")
        row = int(re.search(r"row (\d+)", page.locator(".hoverlayer").text_content() or "").group(1))
        # (several rows may share a spot: the one hovered is the one clicked)

        page.mouse.click(point["px"], point["py"])  # a click shows that row's text on the page
        expect(page.get_by_text(f"The point you clicked (row {row}):")).to_be_visible()
        text = curation.example_page(store, dataset.dataset_id, dataset.active_k, row_idx=row, limit=1)
        expect(page.get_by_text(text.instruction.iloc[0][:40], exact=False).first).to_be_visible()
        wait_idle(page)

        # a lasso around the middle of the map takes every row inside it, drawn or not
        page.locator(".modebar-btn[data-val='lasso']").first.click()
        left, top, width, height = point["left"], point["top"], point["width"], point["height"]
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

        before = page.evaluate(MAP_STATE_JS)
        assert before["vetoed"] == 0
        page.get_by_text(VETO).click()  # veto the opened cluster: the map greys it
        expect(page.get_by_role("switch", name=VETO)).to_be_checked()
        wait_idle(page)
        page.wait_for_function(
            "(old) => { const gd = document.querySelector('.js-plotly-plot');"
            " return (gd.layout.annotations || []).some(a => a.text.includes('(vetoed)'))"
            " && gd.layout.images[0].source.slice(-64) !== old; }",
            arg=before["image"].split(":", 1)[1],
        )
        assert page.evaluate(MAP_STATE_JS)["image"] != before["image"]  # the density image changed too
        browser.close()
    vetoed = curation.clusters(store, dataset.dataset_id, dataset.active_k).vetoed
    assert vetoed.sum() == 1
