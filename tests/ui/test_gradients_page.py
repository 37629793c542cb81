"""Gradient graph page: the compute form launches a job; with features computed (tiny model) it shows the
cluster x target heatmap, the map colored by alignment, a neighbourhood and a G2IS walk path; the hidden-states
panel (RDS+) launches its own job and then describes the features."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from core import jobs
from core.gradients import pipeline
from core.hidden import pipeline as hidden
from core.select.run import build_strategy, run_selection, save_selection
from core.storage import datasets as ds
from core.storage import hidden as hstore
from core.storage.database import Store


@pytest.fixture
def target_file(tmp_path):
    rows = [{"instruction": f"Question {i} about bread", "input": "", "output": "Bread."} for i in range(4)]
    path = tmp_path / "bread_target.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def with_features(prepared_workspace, tiny_model_dir, target_file):
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store)
    config = pipeline.GradientConfig(model=str(tiny_model_dir), d=32, neighbours=6, warmup_fraction=0.25, max_length=96)
    pipeline.compute_gradients(store, dataset, config, [target_file])
    result = run_selection(store, dataset, build_strategy("g2is", {"target": str(target_file)}), 5)
    save_selection(store, dataset, result, "g2is walk")
    return prepared_workspace, len(result.example_ids)


def test_without_features_the_page_offers_to_compute_them(page, monkeypatch, target_file):
    launched = []
    monkeypatch.setattr(jobs, "launch", lambda workspace, spec: launched.append(spec) or "job-1")
    at = page("gradients").run()
    assert not at.exception
    assert any("No gradient features yet" in info.value for info in at.info)
    at.number_input(key="gradient_d").set_value(64).run()
    at.button(key="start_gradients").click().run()
    (spec,) = launched
    assert spec.kind == "gradients" and spec.config["d"] == 64 and spec.dataset == "tiny"


def test_with_features_the_page_shows_alignment_neighbourhood_and_walk(page, with_features):
    _, walked = with_features
    at = page("gradients").run()
    assert not at.exception, at.exception
    specs = [chart.proto.spec for chart in at.get("plotly_chart")]
    between = json.loads(specs.pop(1))  # the clusters x clusters alignment, in its expander
    assert between["data"][0]["type"] == "heatmap" and len(between["data"][0]["x"]) == 2  # the tiny dataset's k
    assert len(specs) == 3  # heatmap, neighbourhood, walk path
    heatmap = json.loads(specs[0])
    assert heatmap["data"][0]["type"] == "heatmap" and heatmap["data"][0]["x"] == ["bread_target"]
    (alignment,) = at.get("bidi_component")  # the map coloured by alignment, drawn by the map component
    assert json.loads(alignment.proto.json)["legend"]["title"] == "alignment with bread_target"
    neighbourhood = json.loads(specs[1])
    colors = {trace["line"]["color"] for trace in neighbourhood["data"] if trace.get("mode") == "lines"}
    assert colors <= {"#2a9d4b", "#d62728"} and colors  # aligned / conflicting edges
    walk = json.loads(specs[2])
    picked = sum(len(trace["x"]) for trace in walk["data"][1:])
    assert picked == walked > 0  # every pick of the saved walk, in its components
    at.number_input(key="neighbour_row").set_value(3).run()
    assert not at.exception
    assert '"3"' in at.get("plotly_chart")[2].proto.spec  # the chosen row is the centre node's label


def test_the_select_page_runs_less_toward_a_target_picked_from_the_workspace(page, with_features, target_file):
    workspace, _ = with_features
    (workspace / "targets").mkdir()
    (workspace / "targets" / target_file.name).write_text(target_file.read_text())
    at = page("select").run()
    at.selectbox(key="strategy").select("less").run()
    at.multiselect(key="param_less_target").select(str(workspace / "targets" / target_file.name)).run()
    at.number_input(key="budget").set_value(4.0).run()
    at.button(key="preview").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.metric[0].value.startswith("4 of")
    assert at.button(key="save_selection")  # the preview can be saved


def test_a_gradients_job_on_a_bad_target_file_shows_its_error_at_the_button_and_launches_nothing(
    page, prepared_workspace
):
    (prepared_workspace / "targets").mkdir()
    bad = prepared_workspace / "targets" / "bad_target.jsonl"
    bad.write_text('{"instruction": "q", "output": 3}\n')
    at = page("gradients").run()
    at.multiselect(key="gradient_targets").select(str(bad)).run()
    at.button(key="start_gradients").click().run()
    assert not at.exception
    errors = [error.value.replace("\\", "") for error in at.error]  # plain() escapes markdown characters
    assert any(error.startswith("targets: bad_target.jsonl, line 1") for error in errors), errors
    assert "gradient_job" not in at.session_state
    assert jobs.list_jobs(prepared_workspace) == []


def test_the_hidden_states_panel_launches_a_job_and_then_describes_the_features(page, monkeypatch, prepared_workspace):
    launched = []
    monkeypatch.setattr(jobs, "launch", lambda workspace, spec: launched.append(spec) or "job-2")
    at = page("gradients").run()
    assert not at.exception
    assert any("RDS+ (rds_plus on the Select page) needs them" in caption.value for caption in at.caption)
    at.button(key="start_hidden_states").click().run()
    (spec,) = launched
    assert spec.kind == "hidden_states" and spec.dataset == "tiny" and spec.engine is None

    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store)
    info = hidden.pool_info(dataset, hidden.HiddenConfig(model="test"), "fp32", dataset.n_rows)
    hstore.save_set(store, dataclasses.replace(info, d=8), np.eye(dataset.n_rows, 8, dtype=np.float32))
    at = page("gradients").run()
    assert not at.exception
    assert any(f"Computed: {dataset.n_rows} examples, d=8, model test" in caption.value for caption in at.caption)
