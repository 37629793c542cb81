"""Two curators in two browser sessions change the same cluster at once: both changes are kept, and each
session shows the other's change after its next rerun (a keyed widget would otherwise keep its old value)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.prepare import PrepareOptions, prepare
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import keyword_rows, write_jsonl
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, choose_option, serve, wait_idle

pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]
VETO = "Vetoed (leave this cluster out)"


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("sessions")
    workspace = tmp / "ws"
    data = write_jsonl(tmp / "tiny.jsonl", keyword_rows())
    prepare(Store(workspace), data, PrepareOptions(name="tiny", embedder={"name": "hashing"}, k_grid=(4,)))
    with serve(workspace) as url:
        yield url, workspace


def _open_cluster_zero(browser, url: str):
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{url}/clusters")
    choose_option(page, "Open a cluster", "0:")
    expect(page.get_by_role("heading", name="Cluster 0:")).to_be_visible()
    wait_idle(page)
    return page


def _wait_for(condition, what: str, timeout: float = 90, history=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        told = "" if history is None else f"; the decisions recorded:\n{history()}"
        assert time.monotonic() < deadline, f"{what} never reached the store{told}"
        time.sleep(0.3)


def _rerun(page, keyword: str) -> None:
    """Rerun the session's script through a curator's next action, a search (a reload would be a new session)."""
    from playwright.sync_api import expect

    search = page.get_by_label("Keyword in instruction or output")
    search.fill(keyword)
    search.press("Enter")
    expect(page.get_by_text("examples)").last).to_be_visible()  # the search results are shown: the rerun ended


def test_two_sessions_change_one_cluster_at_once_and_each_sees_the_other(served_app: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, workspace = served_app
    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")

    def cluster_zero() -> tuple[bool, float]:
        row = curation.clusters(store, dataset.dataset_id, dataset.active_k).iloc[0]
        return bool(row.vetoed), float(row.weight)

    def history() -> str:  # shown when a change is lost: which session wrote what, in order
        return curation.history(store, dataset.dataset_id).to_string()

    with sync_playwright() as playwright:
        expect.set_options(timeout=90_000)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first, second = _open_cluster_zero(browser, url), _open_cluster_zero(browser, url)
        expect(second.get_by_role("switch", name=VETO)).not_to_be_checked()
        expect(first.get_by_role("slider")).to_have_value("1")

        first.get_by_text(VETO).click()  # one curator vetoes ...
        expect(first.get_by_role("switch", name=VETO)).to_be_checked()
        for step in range(1, 6):  # ... while the other raises the weight of the same cluster, 0.1 a key press
            second.get_by_role("slider").press("ArrowRight")  # found afresh: a rerun may re-render it
            _wait_for(
                lambda step=step: round(cluster_zero()[1], 1) == round(1 + step / 10, 1),
                f"weight step {step}",
                history=history,
            )
        _wait_for(lambda: cluster_zero() == (True, 1.5), "the veto and the weight", history=history)

        _rerun(first, "bread")
        _rerun(second, "python")
        expect(first.get_by_role("slider")).to_have_value("1.5")
        expect(second.get_by_role("switch", name=VETO)).to_be_checked()
        expect(first.get_by_role("switch", name=VETO)).to_be_checked()  # its own change stays
        expect(second.get_by_role("slider")).to_have_value("1.5")
        browser.close()
    assert cluster_zero() == (True, 1.5), history()
