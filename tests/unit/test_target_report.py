"""What a target set is made of, told before use, and the targets gradient methods refuse: rows without
responses give a target gradient from the end-of-turn token alone (docs/algorithms.md 4.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import cli, jobs
from core.errors import UnusableTarget
from core.gradients import pipeline
from core.gradients.job import GradientsJob
from core.gradients.target_report import SMALL_TARGET_ROWS, describe_paths
from core.runs.run import RunSpec
from core.select.run import build_strategy, run_selection
from core.storage import datasets as ds
from core.storage import gradients as gstore
from core.storage.database import Store
from tests.conftest import write_jsonl

GRADIENT_STRATEGIES = ("less", "g2is", "g2is_no_graph")


def bread_rows(outputs: list[str]) -> list[dict[str, str]]:
    return [
        {"id": f"t{i}", "instruction": f"Question {i} about bread: explain bread", "input": "", "output": output}
        for i, output in enumerate(outputs)
    ]


@pytest.fixture
def prompts_only(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", bread_rows(["", "  ", "\n"] * 4))


@pytest.fixture
def partly_empty(tmp_path: Path) -> Path:
    """12 rows, 8 of them answered: big enough not to warn about its size."""
    return write_jsonl(tmp_path / "partly.jsonl", bread_rows(["Bread rises.", "", "Knead it, then bake."] * 4))


def test_the_report_counts_rows_responses_and_their_mean_length(tmp_path):
    # "Bread rises." is 3 tokens (2 words, 1 mark), "Knead it, then bake." 6; whitespace counts as empty
    path = write_jsonl(tmp_path / "mixed.jsonl", bread_rows(["Bread rises.", "", "Knead it, then bake.", " \t"]))

    (report,) = describe_paths([path])

    assert (report.name, report.rows, report.answered, report.empty) == ("mixed", 4, 2, 2)
    assert report.mean_response_tokens == pytest.approx(4.5)
    assert report.line() == "target mixed: 4 rows, 2 with a response, 4.5 response tokens on average"


def test_a_small_target_warns_and_a_big_enough_one_does_not(tmp_path):
    small = write_jsonl(tmp_path / "small.jsonl", bread_rows(["Bread."] * (SMALL_TARGET_ROWS - 1)))
    enough = write_jsonl(tmp_path / "enough.jsonl", bread_rows(["Bread."] * SMALL_TARGET_ROWS))

    (small_report,), (enough_report,) = describe_paths([small]), describe_paths([enough])

    assert [note for note in small_report.warnings() if "only 9 row(s)" in note]
    assert enough_report.warnings() == []


def test_a_partly_empty_target_says_how_many_rows_the_gradient_uses(partly_empty):
    (report,) = describe_paths([partly_empty])

    assert report.warnings() == [
        "target partly: 4 of 12 rows have no response; gradient methods use only the 8 rows with one "
        "(an empty row's gradient is the end-of-turn token's)"
    ]


@pytest.mark.parametrize("strategy", GRADIENT_STRATEGIES)
def test_a_prompt_only_target_is_refused_for_gradient_methods_with_why_and_what_to_do(
    workspace, prompts_only, strategy
):
    store = Store(workspace)  # no gradient features: without the check first this would ask to compute them

    with pytest.raises(UnusableTarget) as caught:
        run_selection(store, ds.get_dataset(store), build_strategy(strategy, {"target": str(prompts_only)}), 4)

    message = str(caught.value)
    assert "target prompts has no responses (all 12 outputs are empty)" in message
    assert "end-of-turn token alone" in message and "add reference answers" in message
    assert "embedding_knn" in message and "g2is_embeddings" in message


def test_an_embedding_strategy_takes_a_prompt_only_target_and_reports_it(workspace, prompts_only):
    store = Store(workspace)

    result = run_selection(
        store, ds.get_dataset(store), build_strategy("embedding_knn", {"target": str(prompts_only)}), 4
    )

    assert len(result.example_ids) == 4
    (target,) = result.report["targets"]
    assert (target["rows"], target["answered"]) == (12, 0)
    assert "no responses" in target["warnings"][0]


def test_the_gradients_job_and_a_run_refuse_it_before_launch(workspace, prompts_only):
    with pytest.raises(jobs.InvalidJob, match=r"^targets: target prompts has no responses") as caught:
        GradientsJob(dataset="tiny", targets=(str(prompts_only),)).validate(workspace)
    assert caught.value.field == "targets"
    run = RunSpec(dataset="tiny", strategy="less", strategy_params={"target": str(prompts_only)}, budget=4)
    with pytest.raises(jobs.InvalidJob, match=r"^strategy_params: target prompts has no responses"):
        run.validate(workspace)


def test_computing_target_gradients_refuses_it_before_any_model_loads(workspace, prompts_only, tmp_path):
    store = Store(workspace)
    config = pipeline.GradientConfig(model=str(tmp_path / "no-such-model"))  # loading it would fail otherwise

    with pytest.raises(UnusableTarget, match="end-of-turn token alone"):
        pipeline.compute_gradients(store, ds.get_dataset(store), config, [prompts_only])
    assert gstore.list_sets(store, ds.get_dataset(store).dataset_id) == []


def test_a_partly_empty_target_gets_features_of_its_answered_rows_only(computed, partly_empty):
    workspace, _, config = computed
    store = Store(workspace)
    dataset = ds.get_dataset(store)

    report = pipeline.compute_gradients(store, dataset, config, [partly_empty])

    (target,) = report["target_reports"]
    assert (target["rows"], target["answered"]) == (12, 8) and "use only the 8 rows" in target["warnings"][0]
    assert gstore.get_set(store, report["targets"]["partly"]).n_rows == 8
    result = run_selection(store, dataset, build_strategy("less", {"target": str(partly_empty)}), 4)
    assert len(result.example_ids) == 4 and result.report["targets"][0]["answered"] == 8


def test_the_cli_refuses_a_prompt_only_target_in_one_line(workspace, prompts_only, capsys):
    for argv in (
        ["gradients", "--target", str(prompts_only)],
        ["select", "--strategy", "g2is", "--budget", "4", "--target", str(prompts_only)],
    ):
        code = cli.main([*argv, "--workspace", str(workspace)])
        captured = capsys.readouterr()
        assert (code, captured.out) == (1, "")
        assert captured.err.startswith("error: target prompts has no responses") and captured.err.count("\n") == 1


def test_the_cli_shows_the_target_report_before_selecting(workspace, partly_empty, capsys):
    argv = [
        "--workspace",
        str(workspace),
        "--strategy",
        "embedding_knn",
        "--budget",
        "4",
        "--target",
        str(partly_empty),
    ]

    code = cli.main(["select", *argv])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == "target partly: 12 rows, 8 with a response, 4.5 response tokens on average"
    assert lines[1].startswith("selection 1: 4 of 24 kept examples")
    assert captured.err == "warning: " + describe_paths([partly_empty])[0].warnings()[0] + "\n"
