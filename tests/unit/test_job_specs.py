"""Typed job specs: each kind is registered, round-trips through its job folder's params.json, and its
validate() refuses, naming the field, what would otherwise fail in the worker; launch writes nothing then."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from core import jobs
from core.gradients.job import GradientsJob
from core.hidden.job import HiddenStatesJob
from core.prepare import PrepareOptions
from core.prepare_job import PrepareJob
from core.runs.run import RunSpec
from core.score.job import ScoreJob
from core.select.job import SelectJob
from core.storage import datasets as ds
from core.storage.database import Store
from core.sweep_job import SweepJob

HASHING = {"name": "hashing"}


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target.jsonl"
    path.write_text('{"instruction": "q", "output": "a"}\n')
    return path


@pytest.fixture
def bad_target(tmp_path: Path) -> Path:
    path = tmp_path / "bad_target.jsonl"
    path.write_text('{"instruction": "q", "output": 3}\n')
    return path


def _specs(source: Path, target: Path) -> list[jobs.JobSpec]:
    """One valid spec of every kind, on the unit workspace's dataset ``tiny``."""
    return [
        PrepareJob(str(source), PrepareOptions(name="more", embedder=HASHING, embed_fields=("instruction",))),
        ScoreJob(dataset="tiny", scorer="perplexity", params={"model": "m", "max_length": 96}, limit=8),
        GradientsJob(dataset="tiny", config={"d": 64, "neighbours": 6}, targets=(str(target),)),
        HiddenStatesJob(dataset="tiny", config={"max_length": 256}, targets=(str(target),), limit=10),
        RunSpec(dataset="tiny", strategy="random", budget=4, eval_paths=[str(target)]),
        SweepJob(dataset="tiny", ks=(3, 5), choose=5),
        SelectJob(dataset="tiny", strategy="random", budget=5.0, seed=3, k=4),
    ]


def test_every_kind_names_its_spec_class_and_worker_function() -> None:
    assert set(jobs.KINDS) == {"prepare", "score", "gradients", "hidden_states", "train", "sweep", "select"}
    for kind, where in jobs.KINDS.items():
        assert jobs.spec_class(kind).kind == kind
        assert callable(jobs.resolve(where.run))
    with pytest.raises(jobs.InvalidJob, match="unknown job kind 'nope'"):
        jobs.spec_class("nope")


def test_valid_specs_pass_and_round_trip_through_their_stored_params(
    workspace: Path, template_file: Path, target: Path
) -> None:
    for spec in _specs(template_file, target):
        spec.validate(workspace)
        stored = json.loads(json.dumps(spec.to_params()))  # as params.json holds them
        assert type(spec).from_params(stored) == spec, spec.kind


def test_specs_read_the_params_of_jobs_written_before_they_existed() -> None:
    prepare = PrepareJob.from_params({"path": "a.jsonl", "options": {"name": "a", "k_grid": [2, 4]}})
    assert prepare.options == PrepareOptions(name="a", k_grid=(2, 4))
    assert ScoreJob.from_params({"dataset": "tiny", "scorer": "heuristics"}) == ScoreJob("tiny", "heuristics")
    gradients = GradientsJob.from_params({"dataset": "tiny", "config": {"d": 8}, "targets": ["t.jsonl"]})
    assert gradients == GradientsJob("tiny", {"d": 8}, ("t.jsonl",))
    assert SweepJob.from_params({"dataset": "tiny", "choose": 3}) == SweepJob("tiny", choose=3)


def _refused(spec: jobs.JobSpec, workspace: Path, field: str, match: str) -> None:
    with pytest.raises(jobs.InvalidJob, match=match) as caught:
        spec.validate(workspace)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("path", "options", "field", "match"),
    [
        ("nowhere.jsonl", {}, "path", "no file at .*nowhere.jsonl"),
        (None, {"name": "  "}, "name", "needs a name"),
        (None, {"name": "../data"}, "name", "holds a path separator"),
        (None, {"name": "two\nlines"}, "name", "control or invisible character"),
        (None, {"embed_fields": ()}, "embed_fields", "at least one field"),
        (None, {"embed_fields": ("instruction", "answer")}, "embed_fields", "cannot embed 'answer'"),
        (None, {"mapping": {"prompt": "instruction"}}, "mapping", "cannot map 'prompt'"),
        (None, {"k_grid": (0, 4)}, "k_grid", "positive k values"),
        (None, {"embedder": {"name": "glove"}}, "embedder", "unknown embedder 'glove'"),
        (None, {"embedder": {"name": "hashing", "size": 3}}, "embedder", "no parameter"),
    ],
)
def test_a_bad_prepare_job_is_refused_naming_the_field(
    workspace: Path, template_file: Path, path: str | None, options: dict[str, Any], field: str, match: str
) -> None:
    spec = PrepareJob(path or str(template_file), PrepareOptions(**{"embedder": HASHING, **options}))
    _refused(spec, workspace, field, match)


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        ({"dataset": "nope"}, "dataset", "No dataset named 'nope'"),
        ({"scorer": "vibes"}, "scorer", "unknown scorer 'vibes'"),
        ({"params": {"temperature": 1.0}}, "params", "no parameter"),
        ({"params": {"precision": "fp8"}}, "precision", "not 'fp8'"),
        ({"scorer": "reward", "params": {}}, "model", "needs a reward model"),
        ({"limit": 0}, "limit", "positive number"),
    ],
)
def test_a_bad_score_job_is_refused_naming_the_field(
    workspace: Path, changes: dict[str, Any], field: str, match: str
) -> None:
    spec = dataclasses.replace(ScoreJob(dataset="tiny", scorer="perplexity", params={"model": "m"}), **changes)
    _refused(spec, workspace, field, match)


def test_a_job_on_a_dataset_whose_prepare_has_not_finished_is_refused(workspace: Path) -> None:
    store = Store(workspace)
    ds.update_dataset(store, ds.get_dataset(store, "tiny").dataset_id, status="embedding")
    _refused(ScoreJob(dataset="tiny", scorer="heuristics"), workspace, "dataset", "let its prepare finish")
    _refused(GradientsJob(dataset="tiny"), workspace, "dataset", "let its prepare finish")
    _refused(SweepJob(dataset="tiny", ks=(3,)), workspace, "dataset", "let its prepare finish")
    _refused(SelectJob(dataset="tiny", strategy="random"), workspace, "dataset", "let its prepare finish")


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        ({"dataset": "nope"}, "dataset", "No dataset named 'nope'"),
        ({"strategy": "best"}, "strategy", "best"),
        ({"params": {"temperature": 1}}, "params", "no parameter"),
        ({"budget": 0.0}, "budget", "above 0"),
        ({"seed": -1}, "seed", "from 0"),
    ],
)
def test_a_bad_select_job_is_refused_naming_the_field(
    workspace: Path, changes: dict[str, Any], field: str, match: str
) -> None:
    _refused(dataclasses.replace(SelectJob(dataset="tiny", strategy="random"), **changes), workspace, field, match)


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        ({"dataset": "nope"}, "dataset", "No dataset named 'nope'"),
        ({"ks": (), "choose": None}, "ks", "k values to sweep or a k to choose"),
        ({"ks": (1, 4)}, "ks", r"from 2 to 24 \(the rows\), not \[1\]"),
        ({"ks": (4, 25)}, "ks", r"not \[25\]"),
        ({"choose": 100}, "choose", r"not \[100\]"),
    ],
)
def test_a_bad_sweep_job_is_refused_naming_the_field(
    workspace: Path, changes: dict[str, Any], field: str, match: str
) -> None:
    _refused(dataclasses.replace(SweepJob(dataset="tiny", ks=(3,)), **changes), workspace, field, match)


@pytest.mark.parametrize(
    ("config", "field", "match"),
    [
        ({"dims": 8}, "config", r"unknown gradient parameter\(s\) \['dims'\]"),
        ({"d": -1}, "d", "0 \\(automatic\\) or more"),
        ({"warmup_fraction": 0.0}, "warmup_fraction", "fraction in"),
        ({"neighbours": 0}, "neighbours", "at least 1"),
        ({"learning_rate": 0.0}, "learning_rate", "positive"),
        ({"projection": "gaussian"}, "projection", "not 'gaussian'"),
        ({"precision": "fp16"}, "precision", "not 'fp16'"),
        ({"neighbours": "many"}, "config", "not supported"),
    ],
)
def test_a_bad_gradients_config_is_refused_naming_the_field(
    workspace: Path, config: dict[str, Any], field: str, match: str
) -> None:
    _refused(GradientsJob(dataset="tiny", config=config), workspace, field, match)


def test_a_gradients_job_with_a_bad_target_file_is_refused_with_its_line(workspace: Path, bad_target: Path) -> None:
    _refused(GradientsJob(dataset="tiny", targets=(str(bad_target),)), workspace, "targets", "bad_target.jsonl, line 1")


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        ({"dataset": "nope"}, "dataset", "No dataset named 'nope'"),
        ({"config": {"pooling": "last"}}, "config", "unknown hidden-state setting"),
        ({"config": {"max_length": 2}}, "max_length", "at least 8"),
        ({"config": {"precision": "fp16"}}, "precision", "not 'fp16'"),
        ({"limit": 0}, "limit", "at least 1"),
        ({"engine": {"name": "spark"}}, "engine", "no engine 'spark'"),
    ],
)
def test_a_bad_hidden_states_job_is_refused_naming_the_field(
    workspace: Path, changes: dict[str, Any], field: str, match: str
) -> None:
    _refused(dataclasses.replace(HiddenStatesJob(dataset="tiny"), **changes), workspace, field, match)


def test_a_hidden_states_job_with_a_bad_target_file_is_refused_with_its_line(workspace: Path, bad_target: Path) -> None:
    bad = HiddenStatesJob(dataset="tiny", targets=(str(bad_target),))
    _refused(bad, workspace, "targets", "bad_target.jsonl, line 1")


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        ({"dataset": "nope"}, "dataset", "No dataset named 'nope'"),
        ({"config": {"epochz": 1}}, "config", "unknown training parameter"),
        ({"loop": "forever"}, "loop", "not 'forever'"),
        ({"loop": "iterit", "rounds": 0}, "budget", "at least one round"),
        ({"loop": "iterative_kmq", "loop_params": {"speed": 3}}, "loop_params", "has no parameter"),
        ({"loop": "iterative_kmq", "loop_params": {"within": "psychic"}}, "loop_params", "psychic"),
        ({"strategy": None, "selection_id": 999}, "selection_id", "no selection 999"),
        ({"strategy": None}, "strategy", "strategy and a budget"),
        ({"strategy": "psychic"}, "strategy", "unknown selection strategy 'psychic'"),
        ({"strategy_params": {"speed": 3}}, "strategy_params", "no parameter"),
    ],
)
def test_a_bad_run_spec_is_refused_naming_the_field(
    workspace: Path, changes: dict[str, Any], field: str, match: str
) -> None:
    _refused(
        dataclasses.replace(RunSpec(dataset="tiny", strategy="random", budget=4), **changes), workspace, field, match
    )


def test_launch_writes_nothing_for_an_invalid_spec(workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(jobs.InvalidJob, match="path: no file"):
        jobs.launch(workspace, PrepareJob(str(tmp_path / "nowhere.jsonl")))

    @dataclasses.dataclass(frozen=True)
    class Impostor(ScoreJob):
        """Claims the score kind without being its registered spec."""

    with pytest.raises(jobs.InvalidJob, match="not the registered spec of 'score' jobs"):
        jobs.launch(workspace, Impostor(dataset="tiny", scorer="heuristics"))
    assert jobs.list_jobs(workspace) == []
    assert not jobs.jobs_dir(workspace).exists() or not any(jobs.jobs_dir(workspace).iterdir())


def test_a_select_job_leaves_the_selection_in_its_folder_as_run_selection_computes_it(workspace: Path) -> None:
    from core.progress import Progress
    from core.select import job as select_job
    from core.select.run import build_strategy, run_selection

    job_dir = jobs.job_folder(workspace, "20261203-000000-select")
    job_dir.mkdir(parents=True)
    spec = SelectJob(dataset="tiny", strategy="random", budget=5.0, seed=3)

    result = select_job.execute(workspace, spec, Progress(), job_dir)

    stored = select_job.load_result(workspace, job_dir.name)
    store = Store(workspace)
    direct = run_selection(store, ds.get_dataset(store, "tiny"), build_strategy("random"), 5.0, seed=3)
    assert result["selected"] == 5 and stored.example_ids == direct.example_ids
    assert (stored.pool_hash, stored.row_idx) == (direct.pool_hash, direct.row_idx)


def test_every_job_on_a_dataset_still_preparing_is_refused_before_it_starts(
    workspace: Path, template_file: Path, target: Path
) -> None:
    store = Store(workspace)
    ds.update_dataset(store, ds.get_dataset(store, "tiny").dataset_id, status="preparing")
    on_a_dataset = [spec for spec in _specs(template_file, target) if spec.kind != "prepare"]
    for spec in on_a_dataset:
        with pytest.raises(jobs.InvalidJob, match="dataset: 'tiny' is preparing: let its prepare finish first"):
            spec.validate(workspace)
