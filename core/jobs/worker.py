"""The worker process of a background job: ``python -m core.jobs.worker JOB_DIR``.

Reads ``params.json``, runs the job kind's function with a :class:`FileProgress`, and writes the final
state (done, cancelled or failed with the error) to ``status.json``. Never imports streamlit (nor torch,
unless the job needs it). A job killed outright (``kill -9``, a crash) is resumed by running the worker
again on its folder (:func:`core.jobs.relaunch`): every job kind picks up what it committed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.jobs import FileProgress, write_status
from core.progress import Cancelled, Progress

JobFunction = Callable[[Path, dict[str, Any], Progress], dict[str, Any]]


def run_prepare(workspace: Path, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Job kind ``prepare``: params ``path`` and ``options`` (the fields of PrepareOptions)."""
    from core.prepare import PrepareOptions, prepare
    from core.storage.database import Store

    options = dict(params.get("options") or {})
    for name in ("embed_fields", "k_grid"):
        if options.get(name) is not None:
            options[name] = tuple(options[name])
    report = prepare(Store(workspace), params["path"], PrepareOptions(**options), progress)
    return dataclasses.asdict(report)


def run_score(workspace: Path, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Job kind ``score``: params ``dataset``, ``scorer``, optional ``params`` and ``limit``."""
    from core.score.scoring import build_scorer, estimate_seconds, pending, score_dataset
    from core.storage.database import Store
    from core.storage.datasets import get_dataset

    store = Store(workspace)
    dataset = get_dataset(store, params["dataset"])
    scorer = build_scorer(params["scorer"], **(params.get("params") or {}))
    limit = params.get("limit")
    only = None
    job_dir = getattr(progress, "job_dir", None)
    if limit is not None and job_dir is not None:
        # the sample is drawn once, at the first start, and kept: a resumed job finishes that sample, where
        # drawing again from what is still unscored would score ``limit`` more examples, and other ones
        only = _score_sample(job_dir, lambda: list(pending(store, dataset, scorer, limit).content_hash))
    if scorer.uses_model:  # measured on a few examples on this device before the long run starts
        progress.start("estimate", 1)
        todo = pending(store, dataset, scorer, limit, only=only)
        rate, seconds = estimate_seconds(scorer, todo)
        progress.message(f"estimate: {len(todo)} examples at {rate:.2f}/s = {seconds / 60:.1f} min")
    report = score_dataset(store, dataset, scorer, limit=limit, only=only, progress=progress)
    return dataclasses.asdict(report)


def _score_sample(job_dir: Path, draw: Callable[[], list[str]]) -> list[str]:
    """The content hashes a score job with a limit scores: read from its folder, else drawn and saved."""
    from core.runs.round_files import write_json

    path = job_dir / "sample.json"
    if path.exists():
        return json.loads(path.read_text())
    hashes = draw()
    write_json(path, hashes)  # atomic: a kill never leaves half a sample that a resume would trust
    return hashes


def run_train(workspace: Path, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Job kind ``train``: a fine-tuning run (:mod:`core.runs.run`); resumable in the same folder."""
    from core.runs.run import execute_run

    return execute_run(workspace, params, progress, folder=getattr(progress, "job_dir", None))


def run_gradients(workspace: Path, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Job kind ``gradients``: params ``dataset``, optional ``config`` (GradientConfig fields) and ``targets``."""
    from core.gradients.pipeline import compute_gradients, current_config
    from core.storage.database import Store
    from core.storage.datasets import get_dataset

    store = Store(workspace)
    dataset = get_dataset(store, params["dataset"])
    # unnamed fields keep the values of the features already computed, so a new target matches them
    config = dataclasses.replace(current_config(store, dataset.dataset_id), **(params.get("config") or {}))
    return compute_gradients(store, dataset, config, params.get("targets") or [], progress)


JOB_KINDS: dict[str, JobFunction] = {
    "prepare": run_prepare,
    "score": run_score,
    "train": run_train,
    "gradients": run_gradients,
}


def describe_error(exc: BaseException) -> str:
    """The one-line message a failed job shows: the exception's own, or what to do when memory ran out."""
    # torch.OutOfMemoryError (CUDA or MPS) subclasses RuntimeError; matched by name to keep torch out of here
    if isinstance(exc, MemoryError) or any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        return (
            f"ran out of memory ({type(exc).__name__}{': ' + detail if detail else ''}). Try again with a smaller "
            "batch size (batch_size, or token_budget for scorers), a smaller max_length, or fewer examples (a limit)."
        )
    return f"{exc}" or type(exc).__name__


def run_job(job_dir: Path) -> int:
    """Run the job in ``job_dir`` to its end; returns a process exit code."""
    spec = json.loads((job_dir / "params.json").read_text())
    workspace = job_dir.parent.parent
    write_status(job_dir, state="running", pid=os.getpid())
    try:
        result = JOB_KINDS[spec["kind"]](workspace, spec["params"], FileProgress(job_dir))
    except Cancelled as exc:
        write_status(job_dir, state="cancelled", message=str(exc))
        return 0
    except Exception as exc:  # any failure ends the job as failed, with its message shown to the user
        traceback.print_exc()
        write_status(job_dir, state="failed", error=describe_error(exc))
        return 1
    write_status(job_dir, state="done", result=result)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(Path(sys.argv[1])))
