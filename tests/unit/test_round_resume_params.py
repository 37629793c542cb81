"""A loop run recorded before a training setting existed resumes at that setting's default, and only there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.runs.round_files import check_params


def test_a_run_recorded_without_precision_resumes_at_fp32_only(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"budget": 10, "config": {"lora_r": 8}}))
    check_params(tmp_path, {"budget": 10, "config": {"lora_r": 8, "precision": "fp32"}})  # the default: resumes
    with pytest.raises(ValueError, match=r"other parameters \(config\)"):
        check_params(tmp_path, {"budget": 10, "config": {"lora_r": 8, "precision": "bf16"}})
