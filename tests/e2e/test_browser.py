"""Real-browser test: serve the app with `streamlit run`, drive Debian Chromium with Playwright.

Open the app, open a cluster, veto it, export, and check that the exported JSONL lacks that cluster's rows.
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A workspace with a prepared 24-row dataset (model-free embedder), heuristic scores, and the app serving it."""
    from core.score.scoring import build_scorer, score_dataset

    tmp = tmp_path_factory.mktemp("e2e")
    workspace = tmp / "ws"
    data = write_jsonl(tmp / "tiny.jsonl", keyword_rows())
    prepare(Store(workspace), data, PrepareOptions(name="tiny", embedder={"name": "hashing"}, k_grid=(4,)))
    score_dataset(Store(workspace), ds.get_dataset(Store(workspace), "tiny"), build_scorer("heuristics"))
    with serve(workspace) as url:
        yield url, workspace


def test_veto_a_cluster_then_export_leaves_its_rows_out(served_app: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, workspace = served_app
    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")
    members, _ = curation.examples(store, dataset.dataset_id, dataset.active_k, cluster_id=0, limit=1000)
    assert len(members) > 0

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(accept_downloads=True)
        page.set_default_timeout(90_000)
        expect.set_options(timeout=90_000)
        page.goto(f"{url}/clusters")
        expect(page.get_by_role("heading", name="Clusters", exact=True, level=1)).to_be_visible()

        choose_option(page, "Open a cluster", "0:")
        expect(page.get_by_role("heading", name="Cluster 0:")).to_be_visible()

        page.get_by_text("Vetoed (leave this cluster out)").click()
        deadline = time.monotonic() + 90
        while not curation.clusters(store, dataset.dataset_id, dataset.active_k).vetoed.iloc[0]:
            assert time.monotonic() < deadline, "the veto never reached the store"
            time.sleep(0.3)

        page.get_by_role("link", name="Export").click()
        expect(page.get_by_role("heading", name="Export", exact=True, level=1)).to_be_visible()
        expect(page.get_by_text(f"{dataset.n_rows - len(members)} of {dataset.n_rows}")).to_be_visible()
        wait_idle(page)  # a click during a run can miss the button the run replaces
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download JSONL").click()
        exported = tmp_path / "export.jsonl"
        download_info.value.save_as(exported)
        browser.close()

    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    exported_instructions = {row["instruction"] for row in rows}
    assert len(rows) == dataset.n_rows - len(members)
    assert not exported_instructions & set(members.instruction)


def test_color_the_map_by_a_score(served_app: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = served_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(90_000)
        expect.set_options(timeout=90_000)
        page.goto(f"{url}/clusters")
        expect(page.get_by_role("heading", name="Clusters", exact=True, level=1)).to_be_visible()
        legend = page.locator(".curate-map .legend")  # the map component's legend (app/map_component.js)
        expect(legend).to_contain_text("colour: cluster")
        expect(legend.locator(".ramp")).to_have_count(0)  # colored by cluster: swatches, no colour ramp

        choose_option(page, "Color the map by", "response_length")
        expect(legend).to_contain_text("response_length")
        expect(legend.locator(".ramp")).to_have_count(1)
        choose_option(page, "Color the map by", "combined quality")
        expect(legend).to_contain_text("combined quality")
        browser.close()


def test_save_a_kmq_selection_then_export_it(served_app: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from core.storage import selections

    url, workspace = served_app
    store = Store(workspace)
    dataset = ds.get_dataset(store, "tiny")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(accept_downloads=True)
        page.set_default_timeout(90_000)
        expect.set_options(timeout=90_000)
        page.goto(f"{url}/select")
        expect(page.get_by_role("heading", name="Select", exact=True, level=1)).to_be_visible()
        expect(page.get_by_role("combobox", name="Strategy")).to_have_value("kMQ (k-means quality)")  # its human name
        budget = page.get_by_label("Budget: a count, or a fraction below 1 of the dataset's rows")
        budget.fill("6")
        budget.press("Enter")
        page.get_by_role("button", name="Preview").click()
        expect(page.get_by_text("kept examples")).to_be_visible()
        page.get_by_role("button", name="Save selection").click()
        expect(page.get_by_text("Saved selection #")).to_be_visible()
        saved = selections.listing(store, dataset.dataset_id)
        selection_id = int(saved.selection_id.iloc[0])
        assert saved.strategy.iloc[0] == "kmq" and saved["size"].iloc[0] == 6

        page.get_by_role("link", name="Export").click()
        expect(page.get_by_role("heading", name="Export", exact=True, level=1)).to_be_visible()
        choose_option(page, "What to export", f"Selection #{selection_id}")
        expect(page.get_by_text(f"selection #{selection_id}", exact=True)).to_be_visible()
        expect(page.get_by_text(f"6 of {dataset.n_rows}", exact=True)).to_be_visible()  # the bundle was rebuilt
        exported = tmp_path / "selection.jsonl"
        for _ in range(10):  # the button can still serve the previous bundle for a moment after the rerun
            wait_idle(page)  # a click during a run can miss the button the run replaces
            with page.expect_download() as download_info:
                page.get_by_role("button", name="Download JSONL").click()
            download_info.value.save_as(exported)
            if len(exported.read_text().splitlines()) == 6:
                break
            time.sleep(1)
        browser.close()

    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    expected = selections.items(store, selection_id).row_idx.tolist()
    originals = curation.all_rows(store, dataset.dataset_id, dataset.active_k).set_index("row_idx").original
    assert rows == [json.loads(originals[r]) for r in expected]


def test_launch_a_run_on_a_tiny_model_and_watch_it_finish(served_app: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from core import jobs
    from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

    url, workspace = served_app
    model_dir = tmp_path / "tiny-model"
    tokenizer = byte_tokenizer()
    tiny_causal_lm(tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    eval_file = tmp_path / "tiny_eval.jsonl"
    eval_file.write_text(
        json.dumps({"instruction": "What is 2 + 2?", "input": "", "output": "4", "answer": "4"}) + "\n"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(90_000)
        expect.set_options(timeout=90_000)
        page.goto(f"{url}/runs")
        expect(page.get_by_role("heading", name="Runs", exact=True, level=1)).to_be_visible()
        for label, value in [
            ("Budget (count, or fraction < 1)", "6"),
            ("Epochs", "1"),
            ("Max length", "128"),
            ("Model (path or hub id; default: packaged SmolLM2)", str(model_dir)),
            ("More evaluation files (comma-separated paths)", str(eval_file)),
            ("Run name", "tiny demo"),
        ]:
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Enter")
        page.get_by_role("button", name="Launch run").click()
        deadline = time.monotonic() + 240
        while not [s for s in jobs.list_jobs(workspace, "train") if s.state == "done"]:
            states = [(s.state, s.error) for s in jobs.list_jobs(workspace, "train")]
            assert time.monotonic() < deadline and not any(state == "failed" for state, _ in states), states
            time.sleep(1)
        # the run list notices the run ended and refreshes the page: its curve, results and downloads appear
        expect(page.get_by_role("button", name="Download adapter (zip)")).to_be_visible()
        expect(page.get_by_text("Training loss")).to_be_visible()
        browser.close()
