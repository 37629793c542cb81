"""The map at any size: a density grid of every point, a fixed sample to draw on top, and the rows a box or
lasso drawn on the map holds.

Up to :func:`points_limit` points (``CURATE_MAP_POINTS``, default 20,000) the browser gets every point. Above it, a map of every point would send
about 20 bytes a point on every rerun and make the browser draw a million markers; instead the page draws a
grid of up to :data:`GRID_BINS` x :data:`GRID_BINS` cells over all points (each cell coloured by its most common
cluster, or its mean score, and shaded by how many points it holds) and a seeded sample of
:func:`points_limit` points on top, which carry the hover label and can be clicked. A box or lasso is
resolved here against every point, not only the drawn sample, so "lasso 10,000 points" means 10,000 rows.
``bench/map_options.py`` measures this against drawing every point, pydeck and embedding-atlas
(docs/benchmarks.md). Colours are the page's business (app/figures.py); this module only counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core import config

GRID_BINS = 512  # most cells per side of the density grid (a 512x512 PNG of 256 colours is 50-100 KB)
NO_LABEL = -1  # the label of a vetoed point in the grid (drawn grey)


def points_limit() -> int:
    """Points drawn one by one; above, a density grid and a sample of this many (``core.config.map_points``)."""
    return config.map_points()


@dataclass(frozen=True)
class Extent:
    """The map's bounds, padded so that no point sits on the edge of the grid."""

    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, pad: float = 0.02) -> Extent:
        if len(x) == 0:
            return cls(0.0, 1.0, 0.0, 1.0)
        x0, x1, y0, y1 = float(np.min(x)), float(np.max(x)), float(np.min(y)), float(np.max(y))
        dx, dy = max(x1 - x0, 1e-9) * pad, max(y1 - y0, 1e-9) * pad
        return cls(x0 - dx, x1 + dx, y0 - dy, y1 + dy)


@dataclass(frozen=True)
class Grid:
    """Per cell (row-major, ``bins`` x ``bins``, row 0 at the bottom): how many points, and either the most
    common label (``dominant``, :data:`NO_LABEL` for vetoed) or the mean of a value (``mean``, NaN where no
    point of the cell has one)."""

    extent: Extent
    bins: int
    counts: np.ndarray
    dominant: np.ndarray | None = None
    mean: np.ndarray | None = None


def grid_bins(n_points: int) -> int:
    """Cells per side for ``n_points``: about two per point along a side (2 * sqrt(n)), at least 64 and at most
    :data:`GRID_BINS`, so that a few thousand points make visible spots rather than single pixels."""
    return int(np.clip(2 * np.sqrt(max(n_points, 1)), 64, GRID_BINS))


def cells(x: np.ndarray, y: np.ndarray, extent: Extent, bins: int) -> np.ndarray:
    """The grid cell of each point, as one index ``row * bins + column``."""
    column = np.clip(((x - extent.x0) / (extent.x1 - extent.x0) * bins).astype(np.int64), 0, bins - 1)
    row = np.clip(((y - extent.y0) / (extent.y1 - extent.y0) * bins).astype(np.int64), 0, bins - 1)
    return row * bins + column


def label_grid(x: np.ndarray, y: np.ndarray, labels: np.ndarray, bins: int | None = None) -> Grid:
    """Counts and the most common label per cell (ties go to the smaller label); labels are ints >= NO_LABEL.
    ``bins`` defaults to :func:`grid_bins`."""
    bins = grid_bins(len(x)) if bins is None else bins
    extent = Extent.of(x, y)
    cell = cells(x, y, extent, bins)
    shifted = labels.astype(np.int64) - NO_LABEL  # >= 0
    span = int(shifted.max()) + 1 if len(shifted) else 1
    pairs, pair_counts = np.unique(cell * span + shifted, return_counts=True)
    pair_cell, pair_label = pairs // span, pairs % span + NO_LABEL
    # most common first within a cell, then the smallest label: the first pair of each cell wins
    order = np.lexsort((pair_label, -pair_counts, pair_cell))
    first = np.r_[True, pair_cell[order][1:] != pair_cell[order][:-1]]
    dominant = np.full(bins * bins, NO_LABEL - 1, dtype=np.int64)  # NO_LABEL - 1: an empty cell
    dominant[pair_cell[order][first]] = pair_label[order][first]
    counts = np.bincount(cell, minlength=bins * bins)
    return Grid(extent, bins, counts, dominant=dominant)


def value_grid(x: np.ndarray, y: np.ndarray, values: np.ndarray, bins: int | None = None) -> Grid:
    """Counts and the mean of the finite ``values`` per cell (``bins`` defaults to :func:`grid_bins`)."""
    bins = grid_bins(len(x)) if bins is None else bins
    extent = Extent.of(x, y)
    cell = cells(x, y, extent, bins)
    finite = np.isfinite(values)
    sums = np.bincount(cell[finite], weights=values[finite], minlength=bins * bins)
    valued = np.bincount(cell[finite], minlength=bins * bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valued > 0, sums / np.maximum(valued, 1), np.nan)
    return Grid(extent, bins, np.bincount(cell, minlength=bins * bins), mean=mean)


def sample_positions(n_points: int, limit: int | None = None, seed: int = 0) -> np.ndarray:
    """Positions of a seeded sample of ``limit`` (default :func:`points_limit`) of ``n_points`` points, in
    order (all of them when fewer).
    The same for every rerun and every colouring, so the drawn points do not jump about."""
    limit = points_limit() if limit is None else limit
    if n_points <= limit:
        return np.arange(n_points)
    return np.sort(np.random.default_rng(seed).choice(n_points, size=limit, replace=False))


def in_box(x: np.ndarray, y: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """Whether each point lies in the box spanned by ``xs`` and ``ys`` (two corners each, any order)."""
    return (x >= min(xs)) & (x <= max(xs)) & (y >= min(ys)) & (y <= max(ys))


def in_polygon(x: np.ndarray, y: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """Whether each point lies inside the polygon (even-odd rule). Only points inside its bounding box are
    tested edge by edge, so a lasso over a corner of a million-point map costs little."""
    px, py = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    inside = np.zeros(len(x), dtype=bool)
    if len(px) < 3:
        return inside
    candidates = np.flatnonzero(in_box(x, y, [px.min(), px.max()], [py.min(), py.max()]))
    cx, cy = x[candidates].astype(np.float64), y[candidates].astype(np.float64)
    odd = np.zeros(len(candidates), dtype=bool)
    for ax, ay, bx, by in zip(px, py, np.roll(px, -1), np.roll(py, -1), strict=True):
        crosses = (ay > cy) != (by > cy)
        with np.errstate(divide="ignore", invalid="ignore"):
            at_x = ax + (cy - ay) * (bx - ax) / (by - ay)
        odd ^= crosses & (cx < at_x)
    inside[candidates] = odd
    return inside


def in_selection(x: np.ndarray, y: np.ndarray, selection: Mapping[str, Any]) -> np.ndarray | None:
    """The points inside the boxes and lassos of a plotly selection (``{"box": [{"x": [..], "y": [..]}],
    "lasso": [...]}``), over every point; None when the selection has neither (a click on points)."""
    shapes = [("box", shape) for shape in selection.get("box") or []]
    shapes += [("lasso", shape) for shape in selection.get("lasso") or []]
    if not shapes:
        return None
    chosen = np.zeros(len(x), dtype=bool)
    for kind, shape in shapes:
        test = in_box if kind == "box" else in_polygon
        chosen |= test(x, y, shape.get("x", []), shape.get("y", []))
    return chosen
