"""AppTest fixtures: pages run against a prepared temporary workspace named by CURATE_WORKSPACE."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture
def page(prepared_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], AppTest]:
    """Build an AppTest for ``pages/<name>.py`` (or the entry point for ``main``) over the prepared workspace."""
    monkeypatch.setenv("CURATE_WORKSPACE", str(prepared_workspace))

    def build(name: str) -> AppTest:
        path = ROOT / "app" / "main.py" if name == "main" else ROOT / "pages" / f"{name}.py"
        return AppTest.from_file(str(path), default_timeout=60)

    return build


def fake_run(
    workspace: Path,
    run_id: str,
    *,
    name: str,
    loss: float = 1.5,
    state: str = "done",
    error: str | None = None,
    dataset: str = "tiny",
    eval_set: str = "gsm",
) -> None:
    """A training run's folder as a finished (or failed) run leaves it: status, loss curve, evaluation and
    adapter, without training."""
    from core import jobs

    folder = jobs.jobs_dir(workspace) / run_id
    folder.mkdir(parents=True)
    jobs.write_status(
        folder,
        job_id=run_id,
        kind="train",
        state=state,
        stage="train",
        done=2,
        total=2,
        loss=loss,
        error=error,
        params={"name": name, "dataset": dataset},
        result={"examples": 4, "steps": 2},
    )
    (folder / "losses.jsonl").write_text(
        '{"step": 1, "loss": 2.0, "tokens_per_second": 500}\n'
        f'{{"step": 2, "loss": {loss}, "tokens_per_second": 520}}\n'
    )
    evals = {eval_set: {"base": {"loss": 2.5, "accuracy": 0.1}, "run": {"loss": loss, "accuracy": 0.2}}}
    (folder / "evals.json").write_text(json.dumps(evals))
    (folder / "final").mkdir()
    (folder / "final" / "adapter_model.safetensors").write_bytes(b"weights")


def cluster_table(at: AppTest) -> Any:
    """The Clusters page's table of clusters (the page holds other tables: a cluster's examples)."""
    return next(frame for frame in at.dataframe if {"cluster_id", "label", "size"} <= set(frame.value.columns))
