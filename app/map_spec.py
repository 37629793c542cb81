"""What the map component (app/map_component.py) draws, as pure functions of data frames (no Streamlit here).

A spec is a JSON-ready dict: the extent of the map, the drawn points as packed base64 arrays (x and y as
uint16 steps of the extent, row and cluster as int32, a uint16 colour index into ``palette``, optionally a
float32 value), a density image of every point (from :data:`DENSITY_FROM` points), the clusters' labels to write
on the map, every cluster's name for the hover, a legend, and two identities: ``points_id`` (the drawn
points' places; the browser decodes them again only when it changes) and ``revision`` (everything drawn; what
tests and benchmarks wait on). Up to the limit every point is drawn, each with a one-line snippet for the
hover; above it a seeded sample, and the hover names the row (a click reads its text on the page). From
:data:`DENSITY_FROM` points a density image lies under the points: many rows often share one spot of the map.

Vetoed points are grey in both colourings (by cluster and by score); a score map's points without a value are
a lighter grey. Texts are sent as plain strings: the component writes them with ``fillText`` and
``textContent``, which never interpret markup.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from plotly.colors import hex_to_rgb, qualitative, sample_colorscale, unlabel_rgb

from app.text import clip, one_line
from core.cluster import density

PALETTE = qualitative.Dark24 + qualitative.Light24
VETOED_COLOR = "#b4b4b4"
NO_VALUE_COLOR = "#e4e4e4"
SNIPPET_CHARS = 100  # a hover snippet is one line
LABEL_CHARS = 28  # a label written on the map
NAME_CHARS = 60  # a cluster's name in the hover
DENSITY_FROM = 500  # from this many points the density image is drawn under them: where rows pile up on one spot
MAP_LABELS = 40  # the largest clusters whose label is written on the map (overlapping ones are skipped)
VIRIDIS = [unlabel_rgb(c) for c in sample_colorscale("Viridis", list(np.linspace(0, 1, 256)))]


def cluster_spec(points: pd.DataFrame, labels: dict[int, str], highlight: int | None = None) -> dict[str, Any]:
    """The map coloured by cluster: every point (or the sample) in its cluster's colour, grey when vetoed, the
    open cluster (``highlight``) drawn larger; above the limit a density image in the same colours."""
    clusters, vetoed = points.cluster_id.to_numpy(np.int64), points.vetoed.to_numpy(bool)
    colors = np.where(vetoed, len(PALETTE), clusters % len(PALETTE)).astype(np.uint16)
    image = None
    if len(points) >= DENSITY_FROM:
        x, y = points.x.to_numpy(), points.y.to_numpy()
        image = png_uri(label_image(density.label_grid(x, y, np.where(vetoed, density.NO_LABEL, clusters))))
    drawn = positions(points)
    spec = _spec(points, drawn, colors, [*PALETTE, VETOED_COLOR], image)
    spec.update(
        highlight=None if highlight is None else int(highlight),
        vetoed_color=len(PALETTE),
        names={int(c): clip(one_line(text), NAME_CHARS) for c, text in labels.items()},
        labels=cluster_labels(points.iloc[drawn], clusters, vetoed, labels),
        legend={"title": "colour: cluster", "swatches": [[VETOED_COLOR, "vetoed"]]},
    )
    return _with_revision(spec)


def score_spec(points: pd.DataFrame, values: pd.Series, name: str) -> dict[str, Any]:
    """The map coloured by a per-example score on the Viridis scale, vetoed points grey, points without a value
    light grey; above the limit each cell of the density image shows its mean score. ``values`` is aligned
    with ``points``."""
    scores = values.to_numpy(np.float64)
    finite = scores[np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(scores, nan=low) - low) / max(high - low, 1e-12), 0, 1)
    colors = (scaled * 255).astype(np.uint16)
    colors[~np.isfinite(scores)] = 256
    vetoed = points.vetoed.to_numpy(bool) if "vetoed" in points else np.zeros(len(points), bool)
    colors[vetoed] = 257
    image = None
    if len(points) >= DENSITY_FROM:
        grid = density.value_grid(points.x.to_numpy(), points.y.to_numpy(), scores)
        image = png_uri(value_image(grid, low, high))
    palette = [_hex(rgb) for rgb in VIRIDIS] + [NO_VALUE_COLOR, VETOED_COLOR]
    drawn = positions(points)
    spec = _spec(points, drawn, colors, palette, image)
    spec["points"]["value"] = _b64(scores[drawn].astype(np.float32))
    title = clip(one_line(name), 80)
    spec.update(
        highlight=None,
        vetoed_color=257,
        value_name=title,
        names={},
        labels=[],
        legend={
            "title": title,
            "low": f"{low:.4g}",
            "high": f"{high:.4g}",
            "colors": [_hex(VIRIDIS[i]) for i in range(0, 256, 32)] + [_hex(VIRIDIS[255])],
            "swatches": [[VETOED_COLOR, "vetoed"], [NO_VALUE_COLOR, "no value"]],
        },
    )
    return _with_revision(spec)


def point_size(n_drawn: int) -> int:
    """Pixels a drawn point takes: larger when few are drawn, so a small map stays readable, smaller when many."""
    return 6 if n_drawn <= 1_000 else 5 if n_drawn <= 5_000 else 4 if n_drawn <= 12_000 else 3


def positions(points: pd.DataFrame) -> np.ndarray:
    """Which of ``points`` are drawn: all up to the limit, else the seeded sample (the same on every rerun)."""
    return density.sample_positions(len(points))


def _spec(
    points: pd.DataFrame, drawn: np.ndarray, colors: np.ndarray, palette: list[str], image: str | None
) -> dict[str, Any]:
    """What both colourings share: the extent, the ``drawn`` points packed, the palette and the image."""
    x, y = points.x.to_numpy(np.float64), points.y.to_numpy(np.float64)
    extent = density.Extent.of(x, y)
    qx = _quantise(x[drawn], extent.x0, extent.x1)
    qy = _quantise(y[drawn], extent.y0, extent.y1)
    rows = points.row_idx.to_numpy(np.int64)[drawn].astype(np.int32)
    clusters = points.cluster_id.to_numpy(np.int64)[drawn].astype(np.int32)
    places = [_b64(qx), _b64(qy), _b64(rows), _b64(clusters)]
    spec: dict[str, Any] = {
        "extent": [extent.x0, extent.x1, extent.y0, extent.y1],
        "n_points": len(points),
        "points": dict(zip(("x", "y", "row", "cluster"), places, strict=True)) | {"color": _b64(colors[drawn])},
        "points_id": hashlib.blake2b("".join(places).encode(), digest_size=8).hexdigest(),
        "palette": palette,
        "image": image,
        # under every point (up to the limit) the image is a faint halo of where rows pile up; above, it is the map
        "image_alpha": 0.45 if len(drawn) == len(points) else 1.0,
        "point_size": point_size(len(drawn)),
        "point_alpha": 0.9 if len(drawn) <= 2_000 else 0.75,
        "snippets": None,
    }
    if len(points) <= density.points_limit() and "snippet" in points:
        spec["snippets"] = [clip(one_line(text), SNIPPET_CHARS) for text in points.snippet.iloc[drawn]]
    return spec


def _with_revision(spec: dict[str, Any]) -> dict[str, Any]:
    spec["revision"] = hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()
    return spec


def cluster_labels(
    drawn: pd.DataFrame, clusters: np.ndarray, vetoed: np.ndarray, labels: dict[int, str]
) -> list[dict[str, Any]]:
    """The label of each of the :data:`MAP_LABELS` largest clusters, largest first, at the median of its drawn
    points, marked "(vetoed)" when most of its rows are vetoed."""
    if not len(clusters):
        return []
    # counts by bincount, linear in the rows (np.unique sorts a million cluster ids on every veto)
    counts = np.bincount(clusters)
    ids = np.flatnonzero(counts)
    sizes = counts[ids]
    vetoed_rows = np.bincount(clusters[vetoed], minlength=len(counts))
    # the drawn points grouped by cluster once (a filter of the frame per label cost 40 scans of the sample)
    drawn_clusters = drawn.cluster_id.to_numpy(np.int64)
    order = np.argsort(drawn_clusters, kind="stable")
    starts = np.searchsorted(drawn_clusters[order], ids, side="left")
    ends = np.searchsorted(drawn_clusters[order], ids, side="right")
    span = dict(zip(ids.tolist(), zip(starts.tolist(), ends.tolist(), strict=True), strict=True))
    x, y = drawn.x.to_numpy(np.float64)[order], drawn.y.to_numpy(np.float64)[order]
    out = []
    for cluster, size in sorted(zip(ids.tolist(), sizes.tolist(), strict=True), key=lambda p: -p[1])[:MAP_LABELS]:
        start, end = span[cluster]
        if start == end:
            continue
        is_vetoed = bool(vetoed_rows[cluster] * 2 > size)
        text = clip(one_line(labels.get(int(cluster), f"cluster {cluster}")), LABEL_CHARS)
        out.append(
            {
                "cluster": int(cluster),
                "x": float(np.median(x[start:end])),
                "y": float(np.median(y[start:end])),
                "text": text + (" (vetoed)" if is_vetoed else ""),
                "vetoed": is_vetoed,
            }
        )
    return out


def label_image(grid: density.Grid) -> np.ndarray:
    """An RGBA image of a label grid: palette colour per cell, grey for vetoed, alpha from log density."""
    palette = np.array([hex_to_rgb(c) if c.startswith("#") else unlabel_rgb(c) for c in PALETTE], dtype=np.uint8)
    assert grid.dominant is not None
    dominant = grid.dominant
    rgb = palette[np.maximum(dominant, 0) % len(palette)]
    rgb[dominant == density.NO_LABEL] = hex_to_rgb(VETOED_COLOR)
    return _with_alpha(rgb, grid.counts, grid.bins)


def value_image(grid: density.Grid, low: float, high: float) -> np.ndarray:
    """An RGBA image of a value grid on the Viridis scale (a 256-colour table), light grey where no value."""
    assert grid.mean is not None
    scaled = np.clip((np.nan_to_num(grid.mean, nan=low) - low) / max(high - low, 1e-12), 0, 1)
    rgb = np.array(VIRIDIS)[(scaled * 255).astype(np.int64)].astype(np.uint8)
    rgb[np.isnan(grid.mean)] = hex_to_rgb(NO_VALUE_COLOR)
    return _with_alpha(rgb, grid.counts, grid.bins)


def _with_alpha(rgb: np.ndarray, counts: np.ndarray, bins: int) -> np.ndarray:
    """RGB per cell plus an alpha that grows with log(count); empty cells transparent; image rows top-down."""
    shade = np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)
    alpha = np.where(counts > 0, 60 + 195 * shade, 0).astype(np.uint8)
    image = np.concatenate([rgb, alpha[:, None]], axis=1).reshape(bins, bins, 4)
    return image[::-1]  # the grid's row 0 is the bottom of the map, an image's the top


def png_uri(image: np.ndarray) -> str:
    """The image as a PNG data URI, reduced to 256 colours: 3-5 times smaller than full RGBA (57 KB against
    173 KB for a million points in 64 clusters), and the map has few colours anyway."""
    buffer = io.BytesIO()
    Image.fromarray(image, "RGBA").quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(spec: dict[str, Any], name: str) -> np.ndarray:
    """One of the spec's packed point arrays, decoded as the browser does (for tests and benchmarks)."""
    dtype = {"x": np.uint16, "y": np.uint16, "row": np.int32, "cluster": np.int32, "color": np.uint16}
    return np.frombuffer(base64.b64decode(spec["points"][name]), dtype=dtype.get(name, np.float32))


def _quantise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Places as uint16 steps of the extent: 1/65,535 of the map's width is far below a pixel."""
    return np.round((values - low) / max(high - low, 1e-12) * 65535).clip(0, 65535).astype(np.uint16)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _hex(rgb: Any) -> str:
    r, g, b = (round(float(c)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def with_highlight(spec: dict[str, Any], cluster: int | None, focus: int | None = None) -> dict[str, Any]:
    """A copy of ``spec`` with ``cluster`` drawn larger (the open one); the arrays are shared, not copied.
    ``focus``: a number that changes each time the page wants the map zoomed to that cluster (opened from the
    table or the picker, not from the map itself)."""
    if cluster is None:
        return spec
    revision = hashlib.blake2b(f"{spec['revision']}:{cluster}:{focus}".encode(), digest_size=8).hexdigest()
    return spec | {"highlight": int(cluster), "focus": focus, "revision": revision}
