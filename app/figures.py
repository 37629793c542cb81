"""Plotly figures as pure functions of data frames (no Streamlit here), so they are easy to test.

Plotly renders a subset of HTML (<b>, <br>, <a href>, <span style>) in hover labels, ticks, legends and
titles, so every dataset-derived string goes through :func:`app.text.hover` before it reaches a figure.
"""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import hex_to_rgb, qualitative, sample_colorscale, unlabel_rgb

from app.text import hover
from core.cluster import density

PALETTE = qualitative.Dark24 + qualitative.Light24
VETOED_COLOR = "#c8c8c8"
SAMPLE_COLOR = "rgba(30, 30, 30, 0.45)"  # the density map's drawn sample: handles for hover and click
SNIPPET_CHARS = 120  # a hover label is one line: long instructions are cut (the store already sends 120)


def cluster_map(points: pd.DataFrame, highlight: int | None = None, labels: dict[int, str] | None = None) -> go.Figure:
    """WebGL scatter of the 2-D map, one color per cluster, vetoed points grey; hover shows a snippet
    (HTML-escaped: dataset text must never act on the page). Above ``density.points_limit()`` points: a
    density image of every point and a sample drawn on top (:func:`cluster_density_map`)."""
    if len(points) > density.points_limit():
        return cluster_density_map(points, highlight, labels or {})
    colors = [
        VETOED_COLOR if vetoed else PALETTE[int(cluster) % len(PALETTE)]
        for cluster, vetoed in zip(points.cluster_id, points.vetoed, strict=True)
    ]
    sizes = [9 if highlight is not None and c == highlight else 5 for c in points.cluster_id]
    snippets = [hover(s, SNIPPET_CHARS) for s in points.snippet]
    figure = go.Figure(
        go.Scattergl(
            x=points.x,
            y=points.y,
            mode="markers",
            marker={"color": colors, "size": sizes, "opacity": 0.8},
            customdata=list(zip(points.row_idx, points.cluster_id, snippets, strict=True)),
            hovertemplate="cluster %{customdata[1]}<br>%{customdata[2]}<extra></extra>",
        )
    )
    return _map_layout(figure)


def score_map(points: pd.DataFrame, values: pd.Series, name: str) -> go.Figure:
    """The 2-D map colored by a per-example score (grey where an example has no value); ``name`` may hold a
    target's file name, so it is escaped like the snippets. Above ``density.points_limit()`` points: each
    cell of a density image shows its mean score, and a sample is drawn on top (:func:`score_density_map`)."""
    if len(points) > density.points_limit():
        return score_density_map(points, values, name)
    snippets = [hover(s, SNIPPET_CHARS) for s in points.snippet]
    title = hover(name, 80)
    figure = go.Figure(
        go.Scattergl(
            x=points.x,
            y=points.y,
            mode="markers",
            marker={
                "color": values,
                "colorscale": "Viridis",
                "size": 5,
                "opacity": 0.8,
                "colorbar": {"title": {"text": title}},
                "showscale": True,
            },
            customdata=list(zip(points.row_idx, points.cluster_id, snippets, values.round(4), strict=True)),
            hovertemplate=f"cluster %{{customdata[1]}} · {title} %{{customdata[3]}}"
            "<br>%{customdata[2]}<extra></extra>",
        )
    )
    return _map_layout(figure)


def cluster_density_map(points: pd.DataFrame, highlight: int | None, labels: dict[int, str]) -> go.Figure:
    """Every point as a density image (a cell takes its most common cluster's colour, grey when vetoed points
    are most common, and is darker the more points it holds) under a seeded sample drawn as small dark dots
    (handles for hover and click), with the largest clusters' labels written on the map. Only coordinates,
    row ids and cluster ids of the sample go to the browser: a click opens the row's text on the page.

    The colours and the vetoes live in the image and the labels only, and the open cluster is not
    highlighted: in Chromium without a GPU every changed trace is redrawn on the CPU (about a second for 64
    coloured traces of the sample, bench/browser_scale.py). So opening a cluster leaves the figure as it is
    (Streamlit sends a reference to the one the browser holds), and a veto changes the image and the labels
    while the sample's arrays, under an unchanged ``datarevision``, are not recomputed. ``highlight`` is kept
    for the signature of :func:`cluster_map`."""
    del highlight
    x, y = points.x.to_numpy(), points.y.to_numpy()
    vetoed, clusters = points.vetoed.to_numpy(), points.cluster_id.to_numpy()
    grid = density.label_grid(x, y, np.where(vetoed, density.NO_LABEL, clusters))
    figure = go.Figure()
    _add_image(figure, _label_image(grid), grid.extent)
    sample = points.iloc[density.sample_positions(len(points))]
    trace = _sample_trace(sample, SAMPLE_COLOR, "cluster %{customdata[1]} · row %{customdata[0]}")
    trace.customdata = ids = _sample_ids(sample)
    figure.add_trace(trace)
    # in one call: add_annotation validates the layout again for each (0.11 s for 40, against 0.004 s)
    figure.update_layout(annotations=_cluster_annotations(sample, clusters, vetoed, labels))
    # the sample's arrays depend on no decision: an unchanged datarevision tells plotly.js not to recompute
    # them when a veto changes only the image and the labels
    figure.update_layout(datarevision=hashlib.blake2b(ids.tobytes(), digest_size=8).hexdigest())
    return _map_layout(figure)


MAP_LABELS = 40  # the largest clusters whose label is written on the map


def _cluster_annotations(
    sample: pd.DataFrame, clusters: np.ndarray, vetoed: np.ndarray, labels: dict[int, str]
) -> list[dict]:
    """The label of each of the :data:`MAP_LABELS` largest clusters at the median of its sampled points,
    greyed and marked when the cluster is vetoed (most of its rows vetoed); HTML-escaped like every text."""
    ids, sizes = np.unique(clusters, return_counts=True)
    vetoed_rows = np.bincount(clusters[vetoed], minlength=int(ids.max()) + 1 if len(ids) else 0)
    annotations = []
    for cluster in ids[np.argsort(-sizes, kind="stable")][:MAP_LABELS]:
        part = sample[sample.cluster_id == cluster]
        if part.empty:
            continue
        is_vetoed = vetoed_rows[cluster] * 2 > sizes[ids == cluster][0]
        text = hover(labels.get(int(cluster), f"cluster {int(cluster)}"), 28) + (" (vetoed)" if is_vetoed else "")
        annotations.append(
            {
                "x": float(part.x.median()),
                "y": float(part.y.median()),
                "text": text,
                "showarrow": False,
                "font": {"size": 10, "color": "#777777" if is_vetoed else "#222222"},
                "bgcolor": "rgba(255,255,255,0.6)",
            }
        )
    return annotations


def score_density_map(points: pd.DataFrame, values: pd.Series, name: str) -> go.Figure:
    """Every point as a density image whose cells show their mean score (grey where no point has one) under a
    seeded sample coloured by its own scores, on one colour scale."""
    x, y, scores = points.x.to_numpy(), points.y.to_numpy(), values.to_numpy(np.float64)
    finite = scores[np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    grid = density.value_grid(x, y, scores)
    figure = go.Figure()
    _add_image(figure, _value_image(grid, low, high), grid.extent)
    positions = density.sample_positions(len(points))
    sample, sample_scores = points.iloc[positions], scores[positions].astype(np.float32)
    title = hover(name, 80)
    has = np.isfinite(sample_scores)
    figure.add_trace(_sample_trace(sample[~has], VETOED_COLOR, f"no {title}<br>row %{{customdata}}"))
    scored = _sample_trace(sample[has], VETOED_COLOR, f"{title} %{{marker.color:.4f}}<br>row %{{customdata}}")
    scored.marker.update(
        color=sample_scores[has],
        colorscale="Viridis",
        cmin=low,
        cmax=high,
        colorbar={"title": {"text": title}},
        showscale=True,
    )
    figure.add_trace(scored)
    return _map_layout(figure)


def _sample_trace(part: pd.DataFrame, color: str, hovertext: str) -> go.Scattergl:
    """Markers for sampled points: float32 coordinates and the row index as customdata (what a click or a
    selection sends back; the page looks the rest up), sent as packed binary arrays (about 12 bytes a point)."""
    return go.Scattergl(
        x=part.x.to_numpy(np.float32),
        y=part.y.to_numpy(np.float32),
        mode="markers",
        marker={"color": color, "size": 4, "opacity": 0.9},
        customdata=part.row_idx.to_numpy(np.int32),
        hovertemplate=f"{hovertext} · click to read it<extra></extra>",
    )


def _sample_ids(part: pd.DataFrame) -> np.ndarray:
    """Row index and cluster id of each drawn point, packed as int32 pairs."""
    return np.column_stack([part.row_idx.to_numpy(np.int64), part.cluster_id.to_numpy(np.int64)]).astype(np.int32)


def _label_image(grid: density.Grid) -> np.ndarray:
    """An RGBA image of a label grid: palette colour per cell, grey for vetoed, alpha from log density."""
    palette = np.array([hex_to_rgb(c) if c.startswith("#") else unlabel_rgb(c) for c in PALETTE], dtype=np.uint8)
    assert grid.dominant is not None
    dominant = grid.dominant
    rgb = palette[np.maximum(dominant, 0) % len(palette)]
    rgb[dominant == density.NO_LABEL] = hex_to_rgb(VETOED_COLOR)
    return _with_alpha(rgb, grid.counts, grid.bins)


def _value_image(grid: density.Grid, low: float, high: float) -> np.ndarray:
    """An RGBA image of a value grid on the Viridis scale (a 256-colour table), grey where no value."""
    table = np.array([unlabel_rgb(c) for c in sample_colorscale("Viridis", list(np.linspace(0, 1, 256)))])
    assert grid.mean is not None
    scaled = np.clip((np.nan_to_num(grid.mean, nan=low) - low) / max(high - low, 1e-12), 0, 1)
    rgb = table[(scaled * 255).astype(np.int64)].astype(np.uint8)
    rgb[np.isnan(grid.mean)] = hex_to_rgb(VETOED_COLOR)
    return _with_alpha(rgb, grid.counts, grid.bins)


def _with_alpha(rgb: np.ndarray, counts: np.ndarray, bins: int) -> np.ndarray:
    """RGB per cell plus an alpha that grows with log(count); empty cells transparent; image rows top-down."""
    shade = np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)
    alpha = np.where(counts > 0, 60 + 195 * shade, 0).astype(np.uint8)
    image = np.concatenate([rgb, alpha[:, None]], axis=1).reshape(bins, bins, 4)
    return image[::-1]  # the grid's row 0 is the bottom of the map, an image's the top


def _png_uri(image: np.ndarray) -> str:
    """The image as a PNG data URI, reduced to 256 colours: 3-5 times smaller than full RGBA (57 KB against
    173 KB for a million points in 64 clusters), and the map has few colours anyway."""
    buffer = io.BytesIO()
    Image.fromarray(image, "RGBA").quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _add_image(figure: go.Figure, image: np.ndarray, extent: density.Extent) -> None:
    """The density image under the markers, stretched over the map's extent (a PNG of a few hundred KB)."""
    figure.add_layout_image(
        source=_png_uri(image),
        xref="x",
        yref="y",
        x=extent.x0,
        y=extent.y1,
        sizex=extent.x1 - extent.x0,
        sizey=extent.y1 - extent.y0,
        sizing="stretch",
        layer="below",
    )
    # the axes span the image (with no trace at an edge plotly would clip the image's border)
    figure.update_xaxes(range=[extent.x0, extent.x1])
    figure.update_yaxes(range=[extent.y0, extent.y1])


def _map_layout(figure: go.Figure) -> go.Figure:
    figure.update_layout(
        height=520,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        # dragging pans: in Streamlit a click selects a point only when the drag mode is not a lasso or box
        # (those turn clicks into plain events), and a click is how a curator reads one row
        dragmode="pan",
        xaxis={"visible": False},
        yaxis={"visible": False},
        showlegend=False,
    )
    return figure


def _mark(figure: go.Figure, k: int | None, text: str, color: str) -> None:
    if k is not None:
        figure.add_vline(x=k, line_dash="dash", line_color=color, annotation_text=text)


def elbow(sweep: pd.DataFrame, chosen_k: int | None, knee_k: int | None) -> go.Figure:
    """Inertia against k, with the chosen k and the knee marked."""
    figure = go.Figure(go.Scatter(x=sweep.k, y=sweep.inertia, mode="lines+markers", name="inertia"))
    _mark(figure, chosen_k, f"chosen k={chosen_k}", "#d62728")
    _mark(figure, knee_k, f"knee k={knee_k}", "#2ca02c")
    figure.update_layout(
        height=340, xaxis_title="k", yaxis_title="inertia (sum of squared distances)", margin={"t": 30}
    )
    return figure


def silhouette(sweep: pd.DataFrame, chosen_k: int | None, best_k: int | None) -> go.Figure:
    """Silhouette (cosine) against k, with the chosen and the best k marked."""
    figure = go.Figure(go.Scatter(x=sweep.k, y=sweep.silhouette, mode="lines+markers", name="silhouette"))
    _mark(figure, chosen_k, f"chosen k={chosen_k}", "#d62728")
    if best_k != chosen_k:
        _mark(figure, best_k, f"best k={best_k}", "#1f77b4")
    figure.update_layout(height=340, xaxis_title="k", yaxis_title="silhouette (cosine)", margin={"t": 30})
    return figure


def size_histogram(sizes: pd.Series) -> go.Figure:
    """How many clusters have each size."""
    figure = go.Figure(go.Histogram(x=sizes, nbinsx=min(40, max(5, len(sizes)))))
    figure.update_layout(height=300, xaxis_title="cluster size (examples)", yaxis_title="clusters", margin={"t": 30})
    return figure


def node_link(nodes: pd.DataFrame, edges: pd.DataFrame) -> go.Figure:
    """One example (centre) and its gradient neighbours on a circle; edges green when aligned (cosine > 0),
    red when conflicting, wider when stronger. Hover shows the escaped instruction."""
    import numpy as np

    others = nodes[~nodes.centre].row_idx.tolist()
    angle = {row: 2 * np.pi * i / max(len(others), 1) for i, row in enumerate(others)}
    place = {row: (float(np.cos(a)), float(np.sin(a))) for row, a in angle.items()}
    place.update({int(r): (0.0, 0.0) for r in nodes[nodes.centre].row_idx})
    figure = go.Figure()
    for src, dst, weight in zip(edges.src, edges.dst, edges.weight, strict=True):
        if int(src) in place and int(dst) in place:
            (x0, y0), (x1, y1) = place[int(src)], place[int(dst)]
            figure.add_trace(
                go.Scatter(
                    x=[x0, x1],
                    y=[y0, y1],
                    mode="lines",
                    line={"color": "#2a9d4b" if weight > 0 else "#d62728", "width": 0.5 + 4 * abs(float(weight))},
                    hoverinfo="text",
                    text=f"cosine {float(weight):.3f}",
                )
            )
    texts = [hover(t, 160) for t in nodes.instruction]
    figure.add_trace(
        go.Scatter(
            x=[place[int(r)][0] for r in nodes.row_idx],
            y=[place[int(r)][1] for r in nodes.row_idx],
            mode="markers+text",
            text=[str(r) for r in nodes.row_idx],
            textposition="top center",
            marker={
                "size": [18 if c else 11 for c in nodes.centre],
                "color": ["#1f3b73" if c else "#7f8fa6" for c in nodes.centre],
            },
            customdata=texts,
            hovertemplate="row %{text}<br>%{customdata}<extra></extra>",
        )
    )
    figure.update_layout(
        height=480, showlegend=False, xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"}
    )
    return figure


def walk_path(points: pd.DataFrame, path: pd.DataFrame) -> go.Figure:
    """The map in grey with a selection's picks joined in pick order, one color per walk component. Above
    the map's point limit the grey background is its seeded sample, and a pick's hover names its row (the
    points carry no snippet then)."""
    background = points.iloc[density.sample_positions(len(points))]
    figure = go.Figure(
        go.Scattergl(
            x=background.x.to_numpy(np.float32),
            y=background.y.to_numpy(np.float32),
            mode="markers",
            marker={"color": VETOED_COLOR, "size": 4},
            hoverinfo="skip",
        )
    )
    where = points.set_index("row_idx")[["x", "y"]]
    if "snippet" in points:
        snippets = points.set_index("row_idx").snippet
    else:
        snippets = pd.Series({int(r): f"row {int(r)}" for r in path.row_idx}, dtype=object)
    for component, steps in path.groupby("component", sort=True):
        xy = where.loc[steps.row_idx]
        figure.add_trace(
            go.Scatter(
                x=xy.x.tolist(),
                y=xy.y.tolist(),
                mode="lines+markers",
                line={"color": PALETTE[int(component) % len(PALETTE)], "width": 1.5},
                marker={"size": 7},
                name=f"component {component}",
                customdata=[
                    (int(p), hover(v, 40), hover(snippets.get(r, ""), SNIPPET_CHARS))
                    for p, v, r in zip(steps.position, steps.via, steps.row_idx, strict=True)
                ],
                hovertemplate="pick %{customdata[0]} (%{customdata[1]})<br>%{customdata[2]}<extra></extra>",
            )
        )
    _map_layout(figure)
    figure.update_layout(showlegend=True, dragmode="pan")
    return figure


def binned_histogram(values: pd.Series, name: str, bins: int = 50) -> go.Figure:
    """A histogram binned here, so the browser gets ``bins`` bars, not one value per row."""
    finite = values.dropna().to_numpy(dtype=float)
    counts, edges = np.histogram(finite, bins=bins) if finite.size else (np.zeros(0), np.zeros(1))
    figure = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_line_width=0))
    figure.update_layout(xaxis_title=name, yaxis_title="rows", bargap=0, margin={"t": 10})
    return figure


def sample_rows(frame: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    """At most ``limit`` rows of ``frame``, a seeded sample in row order when there are more (a scatter of a
    million points would send them all to the browser on every rerun)."""
    return frame if len(frame) <= limit else frame.sample(n=limit, random_state=seed).sort_index()
