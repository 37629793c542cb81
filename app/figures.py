"""Plotly figures as pure functions of data frames (no Streamlit here), so they are easy to test. The Clusters
and Gradients pages' maps are not here: they are drawn by the map component from app/map_spec.py.

Plotly renders a subset of HTML (<b>, <br>, <a href>, <span style>) in hover labels, ticks, legends and
titles, so every dataset-derived string goes through :func:`app.text.hover` before it reaches a figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from app.text import hover
from core.cluster import density

PALETTE = qualitative.Dark24 + qualitative.Light24
VETOED_COLOR = "#c8c8c8"
SNIPPET_CHARS = 120  # a hover label is one line: long instructions are cut (the store already sends 120)


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
