"""Benchmark of four ways to draw a 1M-point map in Streamlit, measured in a real browser, side by side.

The app's map (one plotly ``Scattergl`` with a hover text per point) is unusable at 1,000,000 rows; this
measures the candidates that could replace it. For each option it writes a small standalone Streamlit script
into a temporary folder, serves it headless on a free loopback port and opens it in Debian Chromium through
playwright. The script makes the same synthetic data for every option, inside ``st.cache_data`` so reruns do
not rebuild it: N points (seed 0) in 64 Gaussian blobs, columns ``row_idx`` int32, ``x``/``y`` float32 and
``cluster_id`` int16. It has two buttons: ``rerun`` (changes nothing in the map) and ``veto`` (cluster 0 turns
grey, what a veto does on the Clusters page).

Measured per option, each step with a timeout (``--timeout``, default 120 s; a step past it is FAILED with
why, and the option's later steps are skipped; a component that shows its own "cannot draw" message is FAILED
too, its reruns still measured):

- first render: seconds from navigation until the script is idle
  (``[data-testid=stApp][data-test-script-state=notRunning]``) and the largest canvas of the page or its frames
  shows points (a screenshot of its area, polled, has over 0.5 % of its pixels off the background colour), and
  the bytes received over the websocket meanwhile (payload lengths of ``framereceived``);
- the same for a click on ``rerun`` and then on ``veto`` (from the click until a run started and ended, and
  two animation frames); for ``veto`` also the seconds until the map's pixels changed on screen (some widgets
  redraw after the script has ended);
- the streamlit server's peak RSS (itself and its children, sampled every 0.2 s with psutil);
- what the script reports about itself: the seconds to build the figure (and, for the density image, the
  PNG's size);
- what selection each component can send back to Python (from its API, not exercised here).

Options: ``plotly_full`` (one ``Scattergl`` of every point, coloured by cluster through a discrete colour
scale, customdata row_idx and cluster_id, no text), ``plotly_density_sample`` (a 512x512 density image of
every point, coloured by each bin's most common cluster, as a PNG under a ``Scattergl`` of a fixed 20,000-point
sample), ``pydeck`` (a deck.gl ``ScatterplotLayer`` of every point) and ``embedding_atlas`` (Apple's
embedding-atlas Streamlit component, run under another Python, ``--atlas-python``, since it is not a
dependency of the app).

WebGL: the project's ``CHROMIUM_ARGS`` disable the GPU, which leaves WebGL 1 only (SwiftShader); deck.gl needs
WebGL 2 and embedding-atlas's map WebGPU, so this benchmark drops ``--disable-gpu`` and adds
``--enable-unsafe-swiftshader --use-angle=swiftshader --enable-unsafe-webgpu`` for every option: all of them
render on the CPU (SwiftShader). The atlas widget fetches DuckDB-WASM from cdn.jsdelivr.net, which this offline
box cannot reach; the benchmark answers those requests with the same version's files from the wheel.

Run from the project root: ``python -m bench.map_options --points 1000000`` (add ``--points 100000`` for the
comparison). It prints one table and the load average at the start and the end, and writes JSON to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHOTS = RESULTS / "map_options-shots"
OPTIONS = ("plotly_full", "plotly_density_sample", "pydeck", "embedding_atlas")
BROWSER_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--enable-unsafe-webgpu",
]
SELECTION = {
    "plotly_full": "points, box, lasso (on_select: selection.points with customdata, .box, .lasso); hover in browser",
    "plotly_density_sample": "points, box, lasso of the 20k sample only (box/lasso ranges cover all); hover on sample",
    "pydeck": "click picks objects (on_select single/multi-object: selection.indices/objects); no box/lasso",
    "embedding_atlas": "returns a selection predicate (SQL over the frame): lasso/rect/cluster in the widget",
}

# The part every script shares: the data (cached), the colours, the two buttons.
COMMON = """
import json, os, time
import numpy as np
import pandas as pd
import streamlit as st

N = {n}
OUT = {out!r}
st.set_page_config(layout="wide")


@st.cache_data
def data(n):
    rng = np.random.default_rng(0)
    centres = rng.uniform(-50, 50, size=(64, 2))
    scales = rng.uniform(0.5, 3.0, size=64)
    cluster = rng.integers(0, 64, size=n).astype(np.int16)
    xy = centres[cluster] + rng.normal(size=(n, 2)) * scales[cluster, None]
    return pd.DataFrame(
        {{
            "row_idx": np.arange(n, dtype=np.int32),
            "x": xy[:, 0].astype(np.float32),
            "y": xy[:, 1].astype(np.float32),
            "cluster_id": cluster,
        }}
    )


def palette(grey):
    hues = (np.arange(64) * 0.618034) % 1.0
    rgb = []
    for i, h in enumerate(hues):
        if i == grey:
            rgb.append((170, 170, 170))
            continue
        k = (np.array([5, 3, 1]) + h * 6) % 6
        c = 0.85 - 0.6 * np.clip(np.minimum(k, 4 - k), 0, 1)
        rgb.append(tuple(int(v * 255) for v in c))
    return np.array(rgb, dtype=np.uint8)


def report(**fields):
    with open(OUT, "a") as f:
        f.write(json.dumps(fields) + "\\n")


st.session_state.setdefault("grey", None)
df = data(N)
left, right = st.columns(2)
left.button("rerun")
right.button("veto", on_click=lambda: st.session_state.update(grey=0))
colours = palette(st.session_state.grey)
started = time.perf_counter()
"""

BODIES = {
    "plotly_full": """
import plotly.graph_objects as go
scale = []
for i, c in enumerate(colours):
    colour = "rgb(%d,%d,%d)" % tuple(c)
    scale += [[i / 64, colour], [(i + 1) / 64, colour]]
fig = go.Figure(
    go.Scattergl(
        x=df["x"].to_numpy(), y=df["y"].to_numpy(), mode="markers",
        marker=dict(size=2, color=df["cluster_id"].to_numpy(), colorscale=scale, cmin=-0.5, cmax=63.5),
        customdata=np.stack([df["row_idx"].to_numpy(), df["cluster_id"].to_numpy().astype(np.int32)], axis=1),
        hovertemplate="row %{customdata[0]} cluster %{customdata[1]}<extra></extra>",
    )
)
fig.update_layout(height=700, dragmode="lasso", margin=dict(l=0, r=0, t=0, b=0))
report(build_s=time.perf_counter() - started, grey=st.session_state.grey)
event = st.plotly_chart(fig, key="map", on_select="rerun", selection_mode=("points", "box", "lasso"))
""",
    "plotly_density_sample": """
import base64, io
import plotly.graph_objects as go
from PIL import Image

BINS = 512


@st.cache_data
def density(n):
    d = data(n)
    x, y, c = d["x"].to_numpy(), d["y"].to_numpy(), d["cluster_id"].to_numpy().astype(np.int64)
    lo = np.array([x.min(), y.min()]); hi = np.array([x.max(), y.max()])
    ix = np.clip(((x - lo[0]) / (hi[0] - lo[0]) * BINS).astype(np.int64), 0, BINS - 1)
    iy = np.clip(((y - lo[1]) / (hi[1] - lo[1]) * BINS).astype(np.int64), 0, BINS - 1)
    counts = np.bincount((iy * BINS + ix) * 64 + c, minlength=BINS * BINS * 64).reshape(BINS, BINS, 64)
    return counts.sum(axis=2), counts.argmax(axis=2).astype(np.int16), lo, hi


@st.cache_data
def sample(n, k=20_000):
    d = data(n)
    return d.iloc[np.sort(np.random.default_rng(1).choice(len(d), size=min(k, len(d)), replace=False))]


total, top, lo, hi = density(N)
rgba = np.zeros((BINS, BINS, 4), dtype=np.uint8)
rgba[..., :3] = colours[top]
rgba[..., 3] = np.where(total > 0, 40 + 215 * np.log1p(total) / np.log1p(total.max()), 0).astype(np.uint8)
buffer = io.BytesIO()
Image.fromarray(rgba[::-1]).save(buffer, format="PNG")  # row 0 of the image is the top (largest y)
png = buffer.getvalue()
s = sample(N)
fig = go.Figure(
    go.Scattergl(
        x=s["x"].to_numpy(), y=s["y"].to_numpy(), mode="markers",
        marker=dict(size=3, color=["rgb(%d,%d,%d)" % tuple(colours[c]) for c in s["cluster_id"]]),
        customdata=s["row_idx"].to_numpy(), hovertemplate="row %{customdata}<extra></extra>",
    )
)
fig.update_layout(
    height=700, dragmode="lasso", margin=dict(l=0, r=0, t=0, b=0),
    xaxis=dict(range=[lo[0], hi[0]]), yaxis=dict(range=[lo[1], hi[1]]),
    images=[dict(
        source="data:image/png;base64," + base64.b64encode(png).decode(), xref="x", yref="y",
        x=lo[0], y=hi[1], sizex=hi[0] - lo[0], sizey=hi[1] - lo[1], sizing="stretch", layer="below",
        xanchor="left", yanchor="top",
    )],
)
report(build_s=time.perf_counter() - started, png_bytes=len(png), grey=st.session_state.grey)
event = st.plotly_chart(fig, key="map", on_select="rerun", selection_mode=("points", "box", "lasso"))
""",
    "pydeck": """
import pydeck as pdk
frame = df[["x", "y", "cluster_id"]].copy()
rgb = colours[frame["cluster_id"].to_numpy()]
frame["r"], frame["g"], frame["b"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
layer = pdk.Layer(
    "ScatterplotLayer", frame, id="points", get_position="[x, y]", get_fill_color="[r, g, b]",
    radius_units="pixels", get_radius=1.5, pickable=True,
)
deck = pdk.Deck(
    layers=[layer], map_style=None, views=[pdk.View(type="OrthographicView", controller=True)],
    initial_view_state=pdk.ViewState(target=[0, 0, 0], zoom=2),
)
report(build_s=time.perf_counter() - started, grey=st.session_state.grey)
event = st.pydeck_chart(deck, key="map", height=700, on_select="rerun", selection_mode="multi-object")
""",
    "embedding_atlas": """
from embedding_atlas.streamlit import embedding_atlas
frame = df.copy()
# A veto is simulated by a category column where cluster 0 becomes "vetoed": the frame changes, as it would
# in the app; which column the atlas colours by is chosen in its own UI.
frame["category"] = frame["cluster_id"].astype(str)
if st.session_state.grey is not None:
    frame.loc[frame["cluster_id"] == st.session_state.grey, "category"] = "vetoed"
report(build_s=time.perf_counter() - started, grey=st.session_state.grey)
predicate = embedding_atlas(frame, x="x", y="y", row_id="row_idx", labels="disabled", {atlas_kwargs} key="map")
""",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, action="append", help="N (repeatable); default 1,000,000")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--atlas-python", default="/work/atlas-venv/bin/python")
    parser.add_argument("--atlas-kwargs", default="", help="extra keyword arguments for embedding_atlas(...)")
    return parser.parse_args()


def loadavg() -> str:
    return "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


class RssSampler(threading.Thread):
    """Peak RSS of a process and its children, sampled every 0.2 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def run(self) -> None:
        import psutil

        try:
            process = psutil.Process(self.pid)
            while not self.stopped.is_set():
                rss = process.memory_info().rss
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
                self.peak = max(self.peak, rss)
                time.sleep(0.2)
        except psutil.Error:
            pass


# Runs in the page: whether the script has been seen running since the flag was reset, and whether it is idle now.
WATCH_JS = """() => {
  window.__sawRunning = false;
  const app = document.querySelector('[data-testid=stApp]');
  if (window.__observer) window.__observer.disconnect();
  window.__observer = new MutationObserver(() => {
    if (app.getAttribute('data-test-script-state') === 'running') window.__sawRunning = true;
  });
  window.__observer.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
IDLE_JS = (
    "() => window.__sawRunning && document.querySelector('[data-testid=stApp]')"
    ".getAttribute('data-test-script-state') === 'notRunning'"
)
FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def map_canvas(page: Any) -> Any | None:
    """The largest visible canvas of the page or its frames (the map), or None."""
    best, best_area = None, 0.0
    for frame in page.frames:
        try:
            canvases = frame.locator("canvas")
            for i in range(canvases.count()):
                box = canvases.nth(i).bounding_box()
                if box and box["width"] * box["height"] > best_area:
                    best, best_area = canvases.nth(i), box["width"] * box["height"]
        except Exception:  # a frame can detach while we look
            continue
    return best


def snapshot(canvas: Any) -> Any:
    """What the map's area shows on screen (composited: a plotly image under the canvas counts too)."""
    import io

    from PIL import Image

    return Image.open(io.BytesIO(canvas.screenshot(timeout=30_000))).convert("RGB")


def inked(image: Any) -> float:
    """Share of the pixels that differ from the most common colour (the background)."""
    import numpy as np

    pixels = np.asarray(image).reshape(-1, 3).astype(np.int16)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float((np.abs(pixels - background).max(axis=1) > 30).mean())


def changed(before: Any, after: Any) -> int:
    """How many pixels differ clearly between two snapshots."""
    import numpy as np

    a, b = np.asarray(before).astype(np.int16), np.asarray(after).astype(np.int16)
    if a.shape != b.shape:
        return a.size
    return int((np.abs(a - b).max(axis=2) > 30).sum())


def blocked_by(page: Any) -> str | None:
    """A message in which a component says it cannot draw (embedding-atlas without WebGPU)."""
    for frame in page.frames:
        try:
            loc = frame.get_by_text("WebGPU is unavailable")
            if loc.count() and loc.first.is_visible():
                return loc.first.inner_text()[:200]
        except Exception:
            continue
    return None


def wait_first_render(page: Any, deadline: float) -> str | None:
    """Until the script is idle and the map's canvas shows points (over 0.5 % of its pixels inked).

    Returns the message of a component that says it cannot draw (then the rest of it may still work).
    """
    app = page.locator("[data-testid=stApp]")
    while time.monotonic() < deadline:
        state = app.get_attribute("data-test-script-state") if app.count() else None
        message = blocked_by(page) if state == "notRunning" else None
        if message:
            return message
        canvas = map_canvas(page) if state == "notRunning" else None
        try:
            if canvas is not None and canvas.is_visible() and inked(snapshot(canvas)) > 0.005:
                return None
        except PlaywrightTimeout:  # the page's main thread is still busy with the data: look again
            continue
        time.sleep(0.3)
    raise TimeoutError("no visible canvas with points drawn, with the script idle")


def wait_visible_change(page: Any, before: Any, deadline: float) -> bool:
    """Until the map's pixels differ from ``before`` (some widgets redraw after the script has ended)."""
    while time.monotonic() < deadline:
        canvas = map_canvas(page)
        try:
            if canvas is not None and changed(before, snapshot(canvas)) > 20:
                return True
        except PlaywrightTimeout:
            continue
        time.sleep(0.3)
    return False


def route_duckdb_cdn(context: Any, python: str, log: list[str]) -> None:
    """Serve the atlas widget's DuckDB-WASM, which it fetches from cdn.jsdelivr.net, from the wheel's own copy.

    The box is offline; the wheel's standalone frontend (``embedding_atlas/static/assets``) bundles the same
    DuckDB-WASM version (1.33.1-dev45.0) under hashed names, so each CDN file is answered with its twin.
    """
    package = subprocess.run(
        [python, "-c", "import embedding_atlas, os; print(os.path.dirname(embedding_atlas.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assets = Path(package) / "static" / "assets"
    twins = {}
    for name in ("duckdb-browser-eh.worker", "duckdb-browser-mvp.worker", "duckdb-eh", "duckdb-mvp"):
        suffix = ".js" if "worker" in name else ".wasm"
        found = sorted(assets.glob(f"{name}-*{suffix}"))
        if found:
            twins[name + suffix] = found[0]

    def handle(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        if name in twins:
            log.append(f"routed {name} to the wheel's copy")
            content_type = "application/wasm" if name.endswith(".wasm") else "text/javascript"
            route.fulfill(
                path=str(twins[name]), headers={"Access-Control-Allow-Origin": "*"}, content_type=content_type
            )
        else:
            log.append(f"no local copy of {route.request.url}")
            route.abort()

    context.route("https://cdn.jsdelivr.net/npm/@duckdb/**", handle)


def error_text(page: Any) -> str:
    """Streamlit's exception box or a component's error, for a FAILED row."""
    texts = []
    for selector in ("[data-testid=stException]", "[data-testid=stAlert]", ".gl-container + div"):
        try:
            loc = page.locator(selector)
            if loc.count():
                texts.append(loc.first.inner_text()[:300])
        except Exception:
            pass
    return " | ".join(texts)


def measure(option: str, n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out = work / f"{option}-{n}.jsonl"
    script = work / f"{option}-{n}.py"
    body = BODIES[option].replace("{atlas_kwargs}", args.atlas_kwargs)
    script.write_text(COMMON.format(n=n, out=str(out)) + body)
    python = args.atlas_python if option == "embedding_atlas" else sys.executable
    port = free_port()
    command = [python, "-m", "streamlit", "run", str(script), "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    command += ["--server.fileWatcherType", "none"]
    log = work / f"{option}-{n}.log"
    result: dict[str, Any] = {"option": option, "n": n, "python": python, "selection": SELECTION[option]}
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, cwd=work, stdout=log_file, stderr=subprocess.STDOUT)
    sampler = RssSampler(server.pid)
    sampler.start()
    url = f"http://127.0.0.1:{port}"
    received = [0]
    console: list[str] = []
    routed: list[str] = []
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            if option == "embedding_atlas":
                route_duckdb_cdn(context, python, routed)
            page = context.new_page()
            page.set_default_timeout(args.timeout * 1000)

            def on_ws(ws: Any) -> None:
                ws.on("framereceived", lambda payload: received.__setitem__(0, received[0] + len(payload)))

            page.on("websocket", on_ws)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"[:300]))
            steps = [("first", None), ("rerun", "rerun"), ("veto", "veto")]
            for step, button in steps:
                before = received[0]
                started = time.monotonic()
                deadline = started + args.timeout
                try:
                    if button is None:
                        page.goto(url, wait_until="commit")
                        blocked = wait_first_render(page, deadline)
                        if blocked:
                            # The map cannot draw; the reruns are still measured (script and bytes).
                            result["failed"] = f"first: the map did not draw; the component says: {blocked}"
                    else:
                        canvas = map_canvas(page)
                        shot = snapshot(canvas) if canvas is not None and "failed" not in result else None
                        before, started = received[0], time.monotonic()
                        page.evaluate(WATCH_JS)
                        page.get_by_role("button", name=button, exact=True).click()
                        page.wait_for_function(IDLE_JS, timeout=args.timeout * 1000, polling=100)
                        page.evaluate(FRAMES_JS)
                    result[f"{step}_s"] = round(time.monotonic() - started, 2)
                    if step == "veto" and shot is not None:
                        # The grey cluster on screen: for most options it is there when the script ends.
                        seen = wait_visible_change(page, shot, started + args.timeout)
                        result["veto_visible_s"] = round(time.monotonic() - started, 2) if seen else None
                    result[f"{step}_mb"] = round((received[0] - before) / 1e6, 3)
                    # A picture of each state, to check by eye that the map was really drawn.
                    page.screenshot(path=str(SHOTS / f"{option}-{n}-{step}.png"))
                except Exception as exc:
                    result[f"{step}_s"] = None
                    result[f"{step}_mb"] = round((received[0] - before) / 1e6, 3)
                    why = f"{step}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    shown = error_text(page)
                    result["failed"] = why + (f"; page shows: {shown}" if shown else "")
                    break
            if option in ("pydeck", "embedding_atlas", "plotly_full"):
                result["canvases"] = sum(f.locator("canvas").count() for f in page.frames)
            browser.close()
    except Exception as exc:
        result["failed"] = f"server: {type(exc).__name__}: {exc}"[:300]
    finally:
        sampler.stopped.set()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        sampler.join(timeout=2)
    result["server_peak_rss_gb"] = round(sampler.peak / 1e9, 2)
    result["console_errors"] = console[:5]
    result["routed"] = sorted(set(routed))
    if out.exists():
        result["script_reports"] = [json.loads(line) for line in out.read_text().splitlines()]
    tail = log.read_text().strip().splitlines()[-5:]
    if "failed" in result or any("Error" in line for line in tail):
        result["server_log_tail"] = tail
    return result


def fmt(seconds: Any, mb: Any) -> str:
    return "-" if seconds is None and not mb else f"{'FAILED' if seconds is None else seconds} s / {mb} MB"


def notes(r: dict[str, Any]) -> str:
    parts = []
    builds = [x for x in r.get("script_reports", []) if "build_s" in x]
    if builds:
        parts.append("build " + "/".join(f"{x['build_s']:.2f}" for x in builds) + " s")
    pngs = [x["png_bytes"] for x in builds if "png_bytes" in x]
    if pngs:
        parts.append(f"PNG {pngs[0] / 1e3:.0f} kB")
    if "veto_visible_s" in r:
        seen = r.get("veto_visible_s")
        parts.append(f"grey on screen after {seen} s" if seen is not None else "no visible change after veto")
    parts.append(f"server peak RSS {r['server_peak_rss_gb']} GB")
    if "failed" in r:
        parts.append("FAILED " + r["failed"])
    if r.get("console_errors"):
        parts.append("console: " + r["console_errors"][0])
    return "; ".join(parts)


def main() -> None:
    args = parse_args()
    sizes = args.points or [1_000_000]
    options = [o for o in args.options.split(",") if o]
    SHOTS.mkdir(parents=True, exist_ok=True)
    start_load = loadavg()
    print(f"load average at start: {start_load}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="map_options-") as tmp:
        for n in sizes:
            for option in options:
                print(f"{option} N={n:,} ...", flush=True)
                r = measure(option, n, args, Path(tmp))
                r["load_after"] = loadavg()
                results.append(r)
                print(json.dumps(r), flush=True)
    end_load = loadavg()
    print()
    print(
        "| option | N | first render | rerun (no change) | rerun (one cluster grey) | selection offered | notes |\n"
        "|---|---:|---|---|---|---|---|"
    )
    for r in results:
        first = fmt(r.get("first_s"), r.get("first_mb"))
        if r.get("failed", "").startswith("first") and r.get("first_s") is not None:
            first = f"FAILED: no map (page idle after {first})"
        print(
            f"| {r['option']} | {r['n']:,} | {first} "
            f"| {fmt(r.get('rerun_s'), r.get('rerun_mb'))} | {fmt(r.get('veto_s'), r.get('veto_mb'))} "
            f"| {r['selection']} | {notes(r)} |"
        )
    print(f"\nload average at start: {start_load}; at end: {end_load}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"map_options-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"load_start": start_load, "load_end": end_load, "results": results}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
