"""The evaluation-set folder: ``<workspace>/eval`` unless ``CURATE_EVAL_DIR`` says otherwise, and the sample set
``make run`` puts there loads as an evaluation set with numeric gold answers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from core import config
from core.train.evaluate import answer_kind, extract_answer, load_eval_set
from tests.conftest import ROOT

SAMPLE_EVAL = ROOT / "sample_data" / "eval" / "arithmetic_word_problems.jsonl"


def test_the_eval_folder_defaults_to_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATE_EVAL_DIR", raising=False)
    monkeypatch.setenv("CURATE_WORKSPACE", str(tmp_path / "ws"))
    assert config.eval_dir() == (tmp_path / "ws" / "eval").resolve()
    assert config.eval_dir(tmp_path / "other") == (tmp_path / "other" / "eval").resolve()


def test_curate_eval_dir_names_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_EVAL_DIR", str(tmp_path / "sets"))
    assert config.eval_dir(tmp_path / "ws") == (tmp_path / "sets").resolve()


def test_the_sample_eval_set_has_worked_answers_ending_in_the_gold_number() -> None:
    eval_set = load_eval_set(SAMPLE_EVAL)
    assert len(eval_set.rows) == 40
    assert answer_kind(row.answer for row in eval_set.rows) == "number"
    for row in eval_set.rows:
        assert row.output.endswith(f"#### {row.answer}")
        assert extract_answer(row.output, "number") == row.answer


def test_the_sample_eval_set_is_what_the_generator_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("sample_generate", ROOT / "sample_data" / "generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    out = tmp_path / "eval.jsonl"
    generate.write_jsonl(generate.build_eval_rows(), out)
    assert out.read_bytes() == SAMPLE_EVAL.read_bytes()
