"""The Runs page offers the evaluation sets of the eval folder (``<workspace>/eval``, or ``CURATE_EVAL_DIR``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

SAMPLE_EVAL = ROOT / "sample_data" / "eval" / "arithmetic_word_problems.jsonl"


def test_the_runs_page_offers_the_workspace_eval_folder(page, prepared_workspace, monkeypatch) -> None:
    monkeypatch.delenv("CURATE_EVAL_DIR", raising=False)
    (prepared_workspace / "eval").mkdir(exist_ok=True)
    shutil.copy(SAMPLE_EVAL, prepared_workspace / "eval")
    at = page("runs").run()
    assert not at.exception
    offered = [Path(option).resolve() for option in at.multiselect(key="run_evals").options]
    assert offered == [(prepared_workspace / "eval" / SAMPLE_EVAL.name).resolve()]


def test_curate_eval_dir_replaces_the_workspace_eval_folder(
    page, prepared_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (prepared_workspace / "eval").mkdir(exist_ok=True)
    shutil.copy(SAMPLE_EVAL, prepared_workspace / "eval")
    elsewhere = tmp_path / "my-evals"
    elsewhere.mkdir()
    (elsewhere / "mine.jsonl").write_text('{"instruction": "q", "output": "a", "answer": "1"}\n')
    monkeypatch.setenv("CURATE_EVAL_DIR", str(elsewhere))
    at = page("runs").run()
    assert not at.exception
    assert [Path(option).name for option in at.multiselect(key="run_evals").options] == ["mine.jsonl"]
