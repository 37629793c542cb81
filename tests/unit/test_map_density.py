"""The map above its point limit: a density image of every point, a sample drawn on top, and a box or lasso
that takes every row inside it (core.cluster.density, app.map_spec, app.figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import figures, map_spec
from core.cluster import density


def _points(n: int, clusters: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, clusters, n)
    centers = np.stack([np.arange(clusters) * 10.0, np.zeros(clusters)], axis=1)
    xy = centers[cluster] + rng.normal(size=(n, 2))
    return pd.DataFrame(
        {"row_idx": np.arange(n), "x": xy[:, 0], "y": xy[:, 1], "cluster_id": cluster, "vetoed": cluster == 2}
    )


def test_each_cell_takes_its_most_common_label_and_counts_every_point() -> None:
    x = np.array([0.1, 0.1, 0.1, 9.9, 9.9])
    y = np.array([0.1, 0.1, 0.1, 9.9, 9.9])
    labels = np.array([3, 3, 5, density.NO_LABEL, density.NO_LABEL])
    grid = density.label_grid(x, y, labels, bins=4)
    assert grid.counts.sum() == 5
    assert grid.dominant is not None
    corner, far = density.cells(np.array([0.1, 9.9]), np.array([0.1, 9.9]), grid.extent, 4)
    assert grid.dominant[corner] == 3 and grid.counts[corner] == 3
    assert grid.dominant[far] == density.NO_LABEL  # vetoed points are most common there: drawn grey
    assert (grid.dominant[grid.counts == 0] < density.NO_LABEL).all()  # empty cells are marked empty


def test_a_cell_shows_the_mean_of_the_values_it_has() -> None:
    x, y = np.array([0.0, 0.0, 10.0]), np.array([0.0, 0.0, 10.0])
    grid = density.value_grid(x, y, np.array([1.0, 3.0, np.nan]), bins=2)
    assert grid.mean is not None
    low, high = density.cells(np.array([0.0, 10.0]), np.array([0.0, 10.0]), grid.extent, 2)
    assert grid.mean[low] == pytest.approx(2.0)
    assert np.isnan(grid.mean[high]) and grid.counts[high] == 1  # a point without a value still counts


def test_a_lasso_takes_exactly_the_points_inside_it() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, 20_000), rng.uniform(-1, 1, 20_000)
    triangle = ([-0.5, 0.5, 0.0], [-0.5, -0.5, 0.5])
    inside = density.in_polygon(x, y, *triangle)
    # the same triangle by half-planes
    expected = (y >= -0.5) & (y <= 0.5 - np.abs(x) * 2) & (np.abs(x) <= 0.5)
    assert (inside != expected).sum() <= 3  # points on an edge may fall either way
    assert 2_000 < inside.sum() < 3_000  # the triangle is an eighth of the square


def test_a_selection_of_boxes_and_lassos_is_their_union_and_a_click_is_none() -> None:
    x, y = np.array([0.0, 5.0, 10.0]), np.array([0.0, 5.0, 10.0])
    box = {"x": [-1, 1], "y": [1, -1]}  # corners in any order
    lasso = {"x": [9, 11, 11, 9], "y": [9, 9, 11, 11]}
    chosen = density.in_selection(x, y, {"box": [box], "lasso": [lasso], "points": []})
    assert chosen is not None and chosen.tolist() == [True, False, True]
    assert density.in_selection(x, y, {"points": [{"customdata": 1}], "box": [], "lasso": []}) is None


def test_the_sample_is_the_same_on_every_call_and_every_point_when_few() -> None:
    assert density.sample_positions(50, limit=100).tolist() == list(range(50))
    first, again = density.sample_positions(100_000, limit=500), density.sample_positions(100_000, limit=500)
    assert len(first) == 500 and (first == again).all() and (np.diff(first) > 0).all()


def test_above_the_limit_the_map_sends_a_density_image_and_a_sample_without_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CURATE_MAP_POINTS", "1000")
    points = _points(30_000)
    labels = {c: f"topic {c}" for c in range(8)}
    spec = map_spec.cluster_spec(points, labels)
    assert spec["image"].startswith("data:image/png;base64,") and spec["n_points"] == 30_000
    rows, clusters = map_spec.decode(spec, "row"), map_spec.decode(spec, "cluster")
    assert len(rows) == 1000  # the sample, not every point
    assert (points.cluster_id.to_numpy()[rows] == clusters).all()  # each point carries its row and cluster
    texts = [label["text"] for label in spec["labels"]]
    assert "topic 5" in texts and "topic 2 (vetoed)" in texts  # labels on the map, the veto said
    assert spec["names"][5] == "topic 5" and spec["snippets"] is None  # hover names the cluster; no text sent
    # the places survive the trip: uint16 steps of the extent are far below a pixel
    x0, x1 = spec["extent"][:2]
    placed = x0 + map_spec.decode(spec, "x") / 65535 * (x1 - x0)
    assert np.abs(placed - points.x.to_numpy()[rows]).max() < (x1 - x0) / 60_000
    assert sum(len(packed) for packed in spec["points"].values()) < 1000 * 20  # under 20 bytes a drawn point


def test_a_veto_changes_the_colours_image_and_labels_but_not_the_drawn_places(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_MAP_POINTS", "1000")
    points = _points(30_000)
    before, after = map_spec.cluster_spec(points.assign(vetoed=False), {}), map_spec.cluster_spec(points, {})
    assert before["image"] != after["image"]  # cluster 2's spots turn grey
    assert [a["text"] for a in before["labels"]] != [a["text"] for a in after["labels"]]
    assert before["points_id"] == after["points_id"]  # the browser keeps its decoded places
    assert before["revision"] != after["revision"]  # and knows to draw again
    grey = map_spec.decode(after, "color") == after["vetoed_color"]
    assert (map_spec.decode(after, "cluster")[grey] == 2).all() and grey.any()
    assert not (map_spec.decode(before, "color") == before["vetoed_color"]).any()


def test_below_the_limit_every_point_is_drawn_with_a_one_line_snippet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_MAP_POINTS", "1000")
    points = _points(300).assign(snippet=lambda f: ["<b>line</b>\nnext " + str(i) for i in f.row_idx])
    spec = map_spec.cluster_spec(points, {0: "zero"})
    assert spec["image"] is None and len(map_spec.decode(spec, "row")) == 300
    # from a few hundred points a density image lies under them too (many rows can share one spot)
    assert map_spec.cluster_spec(_points(800), {})["image"] is not None
    assert map_spec.cluster_spec(_points(800), {})["point_size"] > spec["point_size"] - 1 > 0
    # plain text, one line: the component writes it with textContent, so markup stays visible as typed
    assert spec["snippets"][7] == "<b>line</b> next 7"
    opened = map_spec.with_highlight(spec, 3)
    assert opened["highlight"] == 3 and opened["revision"] != spec["revision"] and spec["highlight"] is None
    focused = map_spec.with_highlight(spec, 3, focus=1)  # opened from the table: the map zooms to it, once
    assert focused["focus"] == 1 and focused["revision"] != opened["revision"]


def test_the_score_map_greys_vetoed_points_and_lightens_those_without_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CURATE_MAP_POINTS", "1000")
    points = _points(30_000)
    values = pd.Series(np.where(points.cluster_id == 0, np.nan, points.x))
    spec = map_spec.score_spec(points, values, "<b>ifd</b>")
    assert spec["image"] is not None and spec["legend"]["title"] == "<b>ifd</b>"  # drawn as text, not markup
    colors, clusters = map_spec.decode(spec, "color"), map_spec.decode(spec, "cluster")
    palette = spec["palette"]
    assert {palette[c] for c in colors[clusters == 2]} == {map_spec.VETOED_COLOR}  # vetoed: grey, not a score
    assert {palette[c] for c in colors[clusters == 0]} == {map_spec.NO_VALUE_COLOR}
    assert np.isnan(map_spec.decode(spec, "value")[clusters == 0]).all()


def test_the_map_component_never_parses_dataset_text_as_html() -> None:
    source = (Path(map_spec.__file__).parent / "map_component.js").read_text()
    assert "textContent" in source and "fillText" in source
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink


def test_a_few_thousand_points_get_a_coarser_grid_than_a_million() -> None:
    assert density.grid_bins(2_000) < 100 < density.grid_bins(100_000) == density.grid_bins(1_000_000) == 512


def test_the_walk_map_above_the_limit_draws_a_sample_and_names_each_pick_by_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CURATE_MAP_POINTS", "1000")
    points = _points(30_000)  # no snippet column: the map above the limit reads no text
    path = pd.DataFrame({"row_idx": [5, 17, 29_999], "component": [0, 0, 1], "position": [0, 1, 2], "via": "walk"})
    figure = figures.walk_path(points, path)
    assert len(figure.data[0].x) == 1000  # the grey background is the sample
    picks = [point for trace in figure.data[1:] for point in trace.customdata]
    assert [point[2] for point in picks] == ["row 5", "row 17", "row 29999"]


@pytest.mark.parametrize("value", ["many", "0", "-5"])
def test_a_bad_point_limit_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CURATE_MAP_POINTS", value)
    with pytest.raises(ValueError, match="CURATE_MAP_POINTS must be"):
        density.points_limit()
