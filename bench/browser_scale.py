"""Benchmark of the curator's path in a real browser (Chromium via playwright) on a prepared large workspace.

Issue 16 asks, at 1,000,000 rows with the server warm: the Clusters page's first render under 5 s; opening a
cluster, a veto round trip, a keyword search and every page switch under 1 s each (median of 5); under 1 MB
sent to the browser per rerun after a veto; and, in the browser, a lasso of about 10,000 points and an export.
This measures each of them against an existing workspace prepared by ``bench/scale.py`` (dataset ``scale``).

Method. The workspace is copied first (``cp -r --reflink=auto`` into a temporary folder next to it; the copy
is deleted at the end) because the benchmark vetoes clusters. The app is served once (``streamlit run``,
tests/e2e/browser.py's ``serve``) and every page is visited once to warm its caches. Then, in Debian Chromium
with the project's ``CHROMIUM_ARGS`` (a 1400x1000 viewport):

1. Clusters first render: a new browser page navigates to ``/clusters``; timed until the map component says
   its density image and its drawn sample are on the canvas and the script is idle. 5 samples, each a new page in its own browser
   context (an empty cache: the app's bundle is loaded again).
2. Open a cluster: pick a different cluster each time in "Open a cluster"; until its heading "Cluster N:" is
   visible and the script is idle. 5 samples.
3. Veto round trip: click "Vetoed (leave this cluster out)" on the open cluster; until the switch is checked,
   the script is idle and the store (``core.storage.curation.cluster_states``, read from this process every
   50 ms: the decision tables only) says vetoed.
   Each veto also records whether the map had drawn it (a new revision) into the same canvas.
   The same cluster is then un-vetoed the same way; un-vetoes are reported as their own row, not in the veto
   median. 5 of each. Also the websocket bytes the browser received from the click until idle (sum of
   ``framereceived`` payload lengths): target under 1 MB per veto rerun.
4. Keyword search: type a word into "Keyword in instruction or output" and press Enter; until the results
   pager's label "Page (of P; N examples)" with the N this process counts (``curation.count_examples``) is
   visible and the script is idle. The 5 words are taken at run time from the first rows of the dataset
   (words of 6+ letters), on a fresh page without an open cluster.
5. Page switches: click the sidebar links Datasets, Clusters, Diagnostics, Quality, Select, Export in turn;
   each until its h1 heading is visible and the script is idle. Median over the 6 switches.
6. Lasso: a fresh Clusters page; the map's Lasso button; a mouse drag around a rectangle in data
   coordinates chosen here from the stored map coordinates (``curation.map_points``) to hold 8k-12k rows (a
   square around the densest cell of a 64x64 grid, its half-width bisected), converted to pixels by the map
   component's own transform (``curateMap.toViewport``); until the caption "N points selected" is visible and
   the script is idle. Reports N against the count computed here, and how long the drag's mouse moves took.
7. Export: on the Export page, click "Download JSONL"; until the browser's download has finished; its size.
8. The desk's newer clicks (issue 17), on a fresh Clusters page: the table's first row ticked (untimed), the
   second ticked (until the bulk buttons and the merge's preview, "Merged: N examples, labelled ...", show),
   then *Veto the 2 ticked clusters* (until the store says both vetoed), *Undo* (until neither is), *Merge
   the 2 ticked clusters* (until the "Merged cluster" notice), *Preview the split* of the merged cluster
   (its expander opened untimed; until *Split into 2 clusters* is visible), *Split into 2 clusters* (until
   the "Split cluster" notice), and two *Undo* (until each one's "Undid #N" notice): the cycle ends where it
   began and runs up to 3 times; each click a row of its own, target 1 s.

"Idle" is read from Streamlit's ``data-test-script-state`` attribute on ``[data-testid=stApp]``: a
MutationObserver installed in every page records each change with a timestamp, and a step ends at the last
change to ``notRunning`` after the action, once a run has started after the action and the state has then
stayed ``notRunning`` for ``--settle`` seconds (the settle wait itself is not counted); page switches end
with the first run after the click instead, since the pages with a job panel rerun a polling fragment every
second. Each sample also records when the first run began, how many runs there were, when the visible
condition held, and the browser's main thread busy time (long tasks, over 50 ms each) in the step. A step's time is the
later of that moment and the moment its visible condition held, checked every 20 ms from this process (not with
Playwright's ``expect``, whose retries come 100, 250, 500 and then 1,000 ms apart and so added up to half a
second to a step). ``--steps 2,8`` runs only the steps named. A step that times out is
FAILED with what was seen and a screenshot in ``bench/results/browser_scale-shots``; the run goes on with a
fresh page.

Run from the project root: ``python -m bench.browser_scale --workspace /abs/path/ws-300000``. Prints a table
(step, median, samples, bytes, target, PASS/FAIL) and the load average at the start and the end; writes
``bench/results/browser_scale-<rows>.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, serve

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHOTS = RESULTS / "browser_scale-shots"
VETO = "Vetoed (leave this cluster out)"
SEARCH = "Keyword in instruction or output"
PAGES = ["Datasets", "Clusters", "Diagnostics", "Quality", "Select", "Export"]
MB = 1_000_000

# Records every change of the script state with the browser's clock (the same machine's clock as Python's).
STATE_JS = """
window.__states = [];
new MutationObserver(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const s = app && app.getAttribute('data-test-script-state');
  const last = window.__states[window.__states.length - 1];
  if (s && (!last || last[1] !== s)) window.__states.push([Date.now(), s]);
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
window.__busy = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__busy.push([performance.timeOrigin + e.startTime, e.duration]);
}).observe({type: 'longtask', buffered: true});
"""
AXES_JS = """(root, corners) => ({pixels: corners.map(([x, y]) => root.curateMap.toViewport(x, y))})"""
MAP = ".curate-map"  # the map component's root (app/map_component.js); its data-* attributes say what it drew


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


POLL_S = 0.02  # how often a step's visible condition is checked


def poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once ``condition()`` holds, checked every ``POLL_S``. Playwright's ``expect`` retries after 100,
    250, 500 then every 1,000 ms, which added up to half a second to a step that ended between two checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(POLL_S)


def visible(locator: Any, timeout: float) -> None:
    """Return once ``locator`` (one element, or its first) is visible."""
    poll(lambda: locator.first.is_visible(), timeout, f"{locator} visible")


class Bench:
    """One browser, the current page, the websocket byte counter, and the step timer."""

    def note(self, out: dict[str, Any], seconds: float, received: int) -> None:
        """Add one timed sample to a step's record: seconds, bytes and the details of the last timing."""
        out["samples"].append(round(seconds, 3))
        out["bytes"].append(received)
        for key, value in self.detail.items():
            out.setdefault(key, []).append(value)

    def __init__(self, playwright: Any, url: str, settle: float, timeout: float) -> None:
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.url, self.settle, self.timeout = url, settle, timeout
        self.received = 0
        self.page: Any = None
        self.detail: dict[str, Any] = {}

    def new_page(self) -> Any:
        from playwright.sync_api import expect

        if self.page is not None:
            self.page.close()
        page = self.browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(self.timeout * 1000)
        expect.set_options(timeout=self.timeout * 1000)
        page.add_init_script(STATE_JS)

        def on_ws(ws: Any) -> None:
            ws.on("framereceived", lambda payload: setattr(self, "received", self.received + len(payload)))

        page.on("websocket", on_ws)
        self.page = page
        return page

    def idle_since(self, start_ms: float, deadline: float, need_run: bool = True) -> float:
        """Seconds since the epoch at which the script last became idle after ``start_ms`` (a run having
        started after it when ``need_run``), once it has stayed idle ``settle`` seconds."""
        while time.monotonic() < deadline:
            states = self.page.evaluate("() => window.__states || []")
            current = self.page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
            ran = any(t >= start_ms and s == "running" for t, s in states)
            if current == "notRunning" and (ran or not need_run):
                idle_at = max([t for t, s in states if s == "notRunning"] or [start_ms])
                if time.time() * 1000 - idle_at >= self.settle * 1000:
                    return max(idle_at, start_ms) / 1000
            time.sleep(0.05)
        raise TimeoutError(f"the script was not idle within {self.timeout} s of the action")

    def timed(
        self, action: Callable[[], None], ready: Callable[[], None], *, need_run: bool = True, first_run: bool = False
    ) -> tuple[float, int]:
        """Run ``action``; seconds until ``ready`` returned and the script is idle; websocket bytes meanwhile."""
        deadline = time.monotonic() + self.timeout
        self.received = 0
        start = time.time()
        action()
        ready()
        ready_at = time.time()
        if first_run:  # the end of the first run after the action, not of the polling fragment's later runs
            while True:
                states = self.page.evaluate("() => window.__states || []")
                after = [(t, s) for t, s in states if t >= start * 1000]
                began = next((i for i, (_, s) in enumerate(after) if s == "running"), None)
                before = [s for t, s in states if t < start * 1000]
                if began is None and before and before[-1] == "running":
                    # a run was going when the link was clicked (a polling fragment's) and the switch took it
                    # over, so no new "running" is recorded: the first end after the click ends the step
                    began = 0 if after else None
                ended = (
                    next((t for t, s in after[began or 0 :] if s == "notRunning"), None) if began is not None else None
                )
                if ended is not None:
                    idle_at = ended / 1000
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no run after the action ended within {self.timeout} s")
                time.sleep(0.05)
        else:
            idle_at = self.idle_since(start * 1000, deadline, need_run)
        end = max(ready_at, idle_at)
        states = self.page.evaluate("() => window.__states || []")
        # what a reader needs to see where the time went: the visible condition's moment, the runs it took
        busy = self.page.evaluate("() => window.__busy || []")
        self.detail = {
            # the page's main thread busy in tasks over 50 ms (drawing, parsing) during the step
            "browser_busy_s": round(sum(d for t, d in busy if start * 1000 <= t <= end * 1000) / 1000, 3),
            "visible_s": round(ready_at - start, 3),
            "runs": sum(1 for t, s in states if t >= start * 1000 and s == "running"),
            "first_run_start_s": next(
                (round(t / 1000 - start, 3) for t, s in states if t >= start * 1000 and s == "running"), None
            ),
            "first_run_end_s": next(
                (round(t / 1000 - start, 3) for t, s in states if t >= start * 1000 and s == "notRunning"), None
            ),
        }
        return end - start, self.received

    def shot(self, name: str) -> str:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        try:
            self.page.screenshot(path=str(path), full_page=True, timeout=30_000)
        except Exception as exc:  # a screenshot is evidence, not a result: never let it end the run
            return f"(no screenshot: {type(exc).__name__})"
        return str(path.relative_to(ROOT))


def goto(bench: Bench, path: str) -> None:
    bench.page.goto(f"{bench.url}/{path}", wait_until="commit")


def map_drawn(bench: Bench) -> None:
    """The map's density image and its drawn sample are on the canvas."""
    root = bench.page.locator(MAP)

    def drawn() -> bool:
        if not root.count():
            return False
        image, points = root.get_attribute("data-image"), root.get_attribute("data-drawn") or ""
        return image == "drawn" and bool(re.match(r"^[1-9]", points))

    poll(drawn, bench.timeout, "the map drawn")


def heading(bench: Bench, name: str) -> None:
    visible(bench.page.get_by_role("heading", name=name, exact=True, level=1), bench.timeout)


def choose_cluster(bench: Bench, cluster_id: int) -> None:
    """The "Open a cluster" select, picking the option that starts with ``<id>:`` (not ``1<id>:``)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    combobox = bench.page.get_by_role("combobox", name="Open a cluster")
    for attempt in range(5):
        combobox.click()
        combobox.press_sequentially(f"{cluster_id}:")
        option = bench.page.get_by_role("option").filter(has_text=re.compile(rf"^{cluster_id}:"))
        try:
            option.first.click(timeout=10_000)
            return
        except PlaywrightTimeout:
            if attempt == 4:
                raise
            bench.page.keyboard.press("Escape")


def lasso_box(x: np.ndarray, y: np.ndarray, low: int = 8_000, high: int = 12_000) -> tuple[list[float], int]:
    """A rectangle [x0, y0, x1, y1] around the densest cell of a 64x64 grid holding ``low``..``high`` points."""
    counts, xe, ye = np.histogram2d(x, y, bins=64)
    i, j = np.unravel_index(np.argmax(counts), counts.shape)
    cx, cy = (xe[i] + xe[i + 1]) / 2, (ye[j] + ye[j + 1]) / 2
    span = max(x.max() - x.min(), y.max() - y.min())
    lo, hi = 0.0, span
    for _ in range(60):
        half = (lo + hi) / 2
        inside = int(((abs(x - cx) <= half) & (abs(y - cy) <= half)).sum())
        if low <= inside <= high:
            break
        lo, hi = (half, hi) if inside < low else (lo, half)
    return [float(v) for v in (cx - half, cy - half, cx + half, cy + half)], inside


def search_words(store: Store, dataset: Any, n: int = 5) -> list[str]:
    frame = curation.example_page(store, dataset.dataset_id, dataset.active_k, limit=50)
    words: list[str] = []
    for text in frame.instruction:
        for word in re.findall(r"[A-Za-z]{6,}", str(text)):
            if word.lower() not in words:
                words.append(word.lower())
    return words[:n]


def run(
    workspace: Path, samples: int, settle: float, timeout: float, only: frozenset[str] = frozenset()
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    store = Store(workspace)
    dataset = ds.get_dataset(store, "scale")
    dataset_id, k = dataset.dataset_id, int(dataset.active_k)
    table = curation.clusters(store, dataset_id, k)
    assert not table.vetoed.any(), "the workspace copy has vetoed clusters already"
    big = table.sort_values("size", ascending=False).cluster_id.tolist()
    points = curation.map_points(store, dataset_id, k, 0)
    box, expected_lasso = lasso_box(points.x.to_numpy(np.float64), points.y.to_numpy(np.float64))
    words = search_words(store, dataset, samples)
    totals = {w: curation.count_examples(store, dataset_id, k, search=w) for w in words}
    steps: dict[str, dict[str, Any]] = {}

    def fresh_clusters_page() -> None:
        bench.new_page()
        goto(bench, "clusters")
        map_drawn(bench)
        bench.idle_since(time.time() * 1000 - 60_000, time.monotonic() + timeout, need_run=False)

    def record(name: str, target: float | None, fn: Callable[[], dict[str, Any]], bench: Bench) -> None:
        if only and re.match(r"\d+", name).group() not in only:  # type: ignore[union-attr]
            return
        print(f"-- {name} (load {load()})", flush=True)
        try:
            result = fn()
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            result["screenshot"] = bench.shot(f"{dataset.n_rows}-{name.split()[0]}-failed")
            try:
                fresh_clusters_page()
            except Exception as again:  # the next step starts from whatever page there is
                result["recovery_error"] = f"{type(again).__name__}: {str(again).splitlines()[0][:300]}"
        samples_s = result.get("samples", [])
        result["median_s"] = statistics.median(samples_s) if samples_s else None
        result["target_s"] = target
        ok = "error" not in result and (target is None or result["median_s"] < target)
        if "bytes" in result and result.get("bytes_target"):
            ok = ok and max(result["bytes"]) < result["bytes_target"]
        result["verdict"] = "PASS" if ok else "FAIL"
        steps[name] = result
        print(f"   {json.dumps(result)}", flush=True)

    with serve(workspace) as url, sync_playwright() as playwright:
        bench = Bench(playwright, url, settle, timeout)
        bench.new_page()
        warm = {}
        for path, name in [(p.lower(), p) for p in PAGES]:
            start = time.time()
            goto(bench, path)
            heading(bench, name)
            if name == "Clusters":
                map_drawn(bench)
            bench.idle_since(start * 1000, time.monotonic() + timeout)
            warm[name] = round(time.time() - start, 2)
        print(f"warm-up visits (s, incl. settle): {warm}", flush=True)

        def first_render() -> dict[str, Any]:
            out: dict[str, Any] = {"samples": [], "bytes": []}
            for i in range(samples):
                bench.new_page()
                seconds, received = bench.timed(lambda: goto(bench, "clusters"), lambda: map_drawn(bench))
                bench.note(out, seconds, received)
                if i == 0:
                    out["screenshot"] = bench.shot(f"{dataset.n_rows}-first_render")
            return out

        record("1 Clusters first render", 5.0, first_render, bench)

        opened = big[:samples]

        def open_clusters() -> dict[str, Any]:
            out: dict[str, Any] = {"samples": [], "bytes": [], "clusters": opened}
            for cid in opened:
                seconds, received = bench.timed(
                    lambda cid=cid: choose_cluster(bench, cid),
                    lambda cid=cid: visible(
                        bench.page.get_by_role("heading", name=re.compile(rf"^Cluster {cid}:")), timeout
                    ),
                )
                bench.note(out, seconds, received)
            return out

        record("2 open a cluster", 1.0, open_clusters, bench)

        unveto: dict[str, Any] = {"samples": [], "bytes": []}

        def veto_once(cid: int, vetoed: bool) -> tuple[float, int]:
            switch = bench.page.get_by_role("switch", name=VETO)

            def ready() -> None:  # the switch shows it, then the store has it (polled from this process)
                poll(lambda: switch.is_checked() == vetoed, timeout, f"the switch shows vetoed={vetoed}")
                deadline = time.monotonic() + timeout
                # cluster_states reads the decision tables only: curation.clusters also counts every cluster's
                # duplicates over the million rows (0.3-0.8 s a poll), and polling that every 50 ms took a core
                # from the server being measured
                while bool(curation.cluster_states(store, dataset_id, k).set_index("cluster_id").vetoed[cid]) != vetoed:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the store never said vetoed={vetoed} for cluster {cid}")
                    time.sleep(0.05)

            root = bench.page.locator(MAP)
            before = root.get_attribute("data-revision")
            root.locator("canvas").evaluate("c => { c.mark = 1 }")
            timed = bench.timed(lambda: bench.page.get_by_text(VETO).click(), ready)
            # whether the map had drawn the veto (its image grey where vetoed rows prevail, its label marked)
            # when the step ended, into the same canvas (not a map mounted afresh)
            bench.detail["map_redrawn"] = root.get_attribute("data-revision") != before
            bench.detail["same_canvas"] = root.locator("canvas").evaluate("c => c.mark === 1")
            return timed

        def vetoes() -> dict[str, Any]:
            out: dict[str, Any] = {"samples": [], "bytes": [], "bytes_target": MB, "clusters": opened}
            for cid in opened:
                choose_cluster(bench, cid)
                visible(bench.page.get_by_role("heading", name=re.compile(rf"^Cluster {cid}:")), timeout)
                bench.idle_since(time.time() * 1000 - 60_000, time.monotonic() + timeout, need_run=False)
                seconds, received = veto_once(cid, True)
                bench.note(out, seconds, received)
                seconds, received = veto_once(cid, False)
                unveto["samples"].append(round(seconds, 3))
                unveto["bytes"].append(received)
                for key, value in bench.detail.items():
                    unveto.setdefault(key, []).append(value)
            return out

        record("3 veto round trip", 1.0, vetoes, bench)
        record("3b un-veto round trip", 1.0, lambda: unveto, bench)

        def searches() -> dict[str, Any]:
            fresh_clusters_page()
            box_ = bench.page.get_by_label(SEARCH)
            out: dict[str, Any] = {"samples": [], "bytes": [], "totals": list(totals.values())}
            for word in words:

                def act(word: str = word) -> None:
                    box_.fill(word)
                    box_.press("Enter")

                label = re.compile(rf"^Page \(of \d+; {totals[word]} examples\)")
                seconds, received = bench.timed(
                    act, lambda label=label: visible(bench.page.get_by_text(label), timeout)
                )
                bench.note(out, seconds, received)
            return out

        record("4 keyword search", 1.0, searches, bench)

        def lasso() -> dict[str, Any]:
            fresh_clusters_page()
            x0, y0, x1, y1 = box
            corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0 + (y1 - y0) * 0.02]]
            axes = bench.page.locator(MAP).evaluate(AXES_JS, corners)
            bench.page.locator(MAP).get_by_role("button", name="Lasso").click()
            pixels = axes["pixels"]

            marks: dict[str, float] = {}

            def drag() -> None:  # where the time goes: the drag's mouse events, the release, then the run
                marks["start"] = time.time()
                bench.page.mouse.move(*pixels[0])
                bench.page.mouse.down()
                for px, py in pixels[1:]:
                    bench.page.mouse.move(px, py, steps=8)
                marks["moved"] = time.time()
                bench.page.mouse.up()
                marks["released"] = time.time()

            caption = bench.page.get_by_text(re.compile(r"[\d,]+ points selected; opened the cluster"))
            seconds, received = bench.timed(drag, lambda: visible(caption, timeout))
            selected = int(re.match(r"([\d,]+)", caption.inner_text()).group(1).replace(",", ""))
            return {
                "samples": [round(seconds, 3)],
                "bytes": [received],
                "drag_moves_s": round(marks["moved"] - marks["start"], 3),
                "mouse_up_returned_s": round(marks["released"] - marks["start"], 3),
                "visible_s": [bench.detail["visible_s"]],
                "runs": [bench.detail["runs"]],
                "browser_busy_s": [bench.detail["browser_busy_s"]],
                "first_run_start_s": [bench.detail["first_run_start_s"]],
                "selected_in_app": selected,
                "inside_box_python": expected_lasso,
                "box_data": [round(v, 4) for v in box],
                "box_pixels": [[round(a, 1), round(b, 1)] for a, b in pixels[:4]],
                "screenshot": bench.shot(f"{dataset.n_rows}-lasso"),
            }

        record("6 lasso ~10k points", None, lasso, bench)

        def switches() -> dict[str, Any]:
            out: dict[str, Any] = {"samples": [], "bytes": [], "pages": PAGES}
            for name in PAGES:
                link = bench.page.get_by_role("link", name=name, exact=True)
                try:
                    seconds, received = bench.timed(link.click, lambda name=name: heading(bench, name), first_run=True)
                except TimeoutError as exc:  # say which switch
                    raise TimeoutError(f"switch to {name}: {exc}") from exc
                time.sleep(settle)  # then let the page's own work (a polling fragment's runs) pass
                bench.note(out, seconds, received)
            return out

        def tick(row: int) -> None:
            """Tick a row of the cluster table (a canvas: its box is clicked where it is drawn; rows are 31-35 px
            high, so row r's middle lies near 33 (r + 1) + 16 px below the grid's top either way)."""
            grid = bench.page.locator('[data-testid="stDataFrame"]').first
            grid.scroll_into_view_if_needed()
            box_ = grid.bounding_box()
            start = time.time() * 1000
            bench.page.mouse.click(box_["x"] + 20, box_["y"] + 33 * (row + 1) + 16)
            bench.idle_since(start, time.monotonic() + timeout)  # the tick's own run, over before the next step

        def vetoed_now() -> set[int]:
            states = curation.cluster_states(store, dataset_id, k)
            return {int(c) for c in states.cluster_id[states.vetoed]}

        def until_store(condition: Callable[[], bool], what: str) -> Callable[[], None]:
            def ready() -> None:
                deadline = time.monotonic() + timeout
                while not condition():
                    if time.monotonic() > deadline:
                        raise TimeoutError(what)
                    time.sleep(0.05)

            return ready

        def click(name: str | re.Pattern[str]) -> Callable[[], None]:
            return lambda: bench.page.get_by_role("button", name=name, exact=isinstance(name, str)).click()

        def notice(pattern: str) -> Callable[[], None]:
            return lambda: visible(bench.page.get_by_text(re.compile(pattern)), timeout)

        desk: dict[str, dict[str, Any]] = {
            name: {"samples": [], "bytes": []}
            for name in (
                "tick a 2nd cluster",
                "veto ticked",
                "undo",
                "merge ticked",
                "split preview",
                "split",
                "undo split",
                "undo merge",
            )
        }

        def desk_steps() -> dict[str, Any]:
            """Two clusters ticked in the table, vetoed with one click and undone; merged, the merged cluster's
            split previewed and applied, then both undone: each click timed until its effect shows (the store
            for a veto, the page's notice for the rest) and the script is idle. The cycle ends where it began,
            so it repeats."""
            fresh_clusters_page()
            ordered = curation.cluster_states(store, dataset_id, k).cluster_id.tolist()  # the table's order
            first_two = set(ordered[:2])

            def open_split() -> None:
                bench.page.get_by_role("button", name="Preview the split", exact=True).click()

            def previewed() -> None:
                visible(bench.page.get_by_role("button", name="Split into 2 clusters"), timeout)

            def tick_second() -> None:
                grid = bench.page.locator('[data-testid="stDataFrame"]').first
                box_ = grid.bounding_box()
                bench.page.mouse.click(box_["x"] + 20, box_["y"] + 33 * 2 + 16)

            def merge_offered() -> None:  # the bulk buttons and the merge's preview (its label) are drawn
                visible(bench.page.get_by_text(re.compile(r"^Merged: [\d,]+ examples, labelled")), timeout)

            for _ in range(min(samples, 3)):
                tick(0)
                bench.page.locator('[data-testid="stDataFrame"]').first.scroll_into_view_if_needed()
                seconds, received = bench.timed(tick_second, merge_offered)
                bench.note(desk["tick a 2nd cluster"], seconds, received)
                steps_ = [
                    (
                        "veto ticked",
                        click("Veto the 2 ticked clusters"),
                        until_store(lambda: vetoed_now() == first_two, "veto"),
                    ),
                    ("undo", click("Undo"), until_store(lambda: not vetoed_now(), "undo")),
                    ("merge ticked", click(re.compile(r"^Merge the 2 ticked clusters")), notice(r"^Merged cluster")),
                    ("split preview", open_split, previewed),
                    ("split", click("Split into 2 clusters"), notice(r"^Split cluster")),
                    (
                        "undo split",
                        click("Undo"),
                        notice(r"^Undid #\d+: moved [\d,]+ examples between clusters \(split"),
                    ),
                    (
                        "undo merge",
                        click("Undo"),
                        notice(r"^Undid #\d+: moved [\d,]+ examples between clusters \(merged"),
                    ),
                ]
                for name, act, ready in steps_:
                    if name == "split preview":  # the expander opens in the browser alone: not timed
                        bench.page.get_by_text("Split this cluster", exact=True).click()
                    seconds, received = bench.timed(act, ready)
                    bench.note(desk[name], seconds, received)
                fresh_clusters_page()  # the ticks went with the merge: start the next cycle afresh
            return {"samples": [], "cycles": min(samples, 3)}

        record("8 desk clicks", None, desk_steps, bench)
        for name, out in desk.items():
            record(f"8 {name}", 1.0, lambda out=out: out, bench)

        record("5 page switches", 1.0, switches, bench)

        def export() -> dict[str, Any]:
            if not bench.page.get_by_role("heading", name="Export", exact=True, level=1).is_visible():
                goto(bench, "export")
                heading(bench, "Export")
            bench.idle_since(time.time() * 1000 - 60_000, time.monotonic() + timeout, need_run=False)
            start = time.time()
            with bench.page.expect_download(timeout=timeout * 1000) as info:
                bench.page.get_by_role("button", name="Download JSONL").click()
            path = Path(info.value.path())  # returns when the download has finished
            seconds = time.time() - start
            size = path.stat().st_size
            lines = sum(1 for _ in path.open("rb"))
            return {"samples": [round(seconds, 3)], "file_bytes": size, "rows": lines}

        record("7 export (Download JSONL)", None, export, bench)
        bench.browser.close()
    return {"n_rows": dataset.n_rows, "k": k, "steps": steps, "warm_up_s": warm}


def table_text(result: dict[str, Any]) -> str:
    lines = [f"{'step':28} {'median s':>9}  {'samples s':34} {'bytes (max)':>12} {'target':>8}  verdict"]
    for name, step in result["steps"].items():
        median = "-" if step.get("median_s") is None else f"{step['median_s']:.2f}"
        each = " ".join(f"{s:.2f}" for s in step.get("samples", [])) or step.get("error", "")[:34]
        received = f"{max(step['bytes']):,}" if step.get("bytes") else f"{step.get('file_bytes', 0):,}"
        target = "-" if step.get("target_s") is None else f"<{step['target_s']:g} s"
        lines.append(f"{name:28} {median:>9}  {each:34} {received:>12} {target:>8}  {step['verdict']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True, help="a prepared workspace (absolute path)")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds the script must stay idle")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a step may take")
    parser.add_argument("--steps", default="", help="run only these steps, by number (e.g. 2,8); default: all")
    parser.add_argument("--in-place", action="store_true", help="do not copy the workspace (it gets vetoes)")
    args = parser.parse_args()
    start_load = load()
    print(f"load average at start: {start_load}", flush=True)
    copy_dir = None
    workspace = args.workspace
    if not args.in_place:
        copy_dir = Path(tempfile.mkdtemp(prefix="browser-bench-", dir=workspace.parent))
        subprocess.run(["cp", "-r", "--reflink=auto", str(workspace), str(copy_dir / "ws")], check=True)
        workspace = copy_dir / "ws"
    try:
        only = frozenset(step.strip() for step in args.steps.split(",") if step.strip())
        result = run(workspace, args.samples, args.settle, args.timeout, only)
    finally:
        if copy_dir is not None:
            shutil.rmtree(copy_dir, ignore_errors=True)
    end_load = load()
    result.update(workspace=str(args.workspace), load_start=start_load, load_end=end_load, settle_s=args.settle)
    print(table_text(result))
    print(f"load average at start: {start_load}; at end: {end_load}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"browser_scale-{result['n_rows']}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
