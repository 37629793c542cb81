"""The ``score`` job: score a dataset with one scorer (:func:`core.score.scoring.score_dataset`) in a worker.

:class:`ScoreJob` is what the Quality page and ``core.jobs.launch`` take; :meth:`~ScoreJob.validate`
refuses an unknown dataset, scorer or scorer parameter, a reward scorer without a model, a judge whose
server URL, model name, prompt or key variable cannot work, or a bad limit before a worker starts. Whether a
named model loads is left to the worker: a hub id cannot be told from a missing path without loading it, and
the worker reports a failed load in one line.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from core import atomic, jobs
from core.engines import engine_from_spec
from core.progress import Progress
from core.score.judge import JudgeSettingError, JudgeSettings, check_settings

PRECISIONS = ("auto", "bf16", "fp32")


@dataclasses.dataclass(frozen=True)
class ScoreJob:
    """Score ``dataset`` with ``scorer`` built from ``params``; ``limit`` scores at most that many examples."""

    kind: ClassVar[str] = "score"
    dataset: str
    scorer: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    limit: int | None = None
    engine: dict[str, Any] | None = None  # where a model scorer runs (core.engines); None: the worker itself

    def validate(self, workspace: Path) -> None:
        from core.score.scorers import SCORERS
        from core.score.scoring import build_scorer

        jobs.ready_dataset(workspace, self.dataset)
        with jobs.blame("scorer"):
            SCORERS.get(self.scorer)
        with jobs.blame("params"):
            scorer = build_scorer(self.scorer, **self.params)
        if self.scorer == "reward" and not getattr(scorer, "model", ""):
            raise jobs.InvalidJob("model", "the reward scorer needs a reward model path or hub id; none ships offline")
        if isinstance(scorer, JudgeSettings):  # the URL, the model's name, the prompt, the key's variable
            try:
                check_settings(scorer)
            except JudgeSettingError as exc:
                raise jobs.InvalidJob(exc.field, exc.detail) from None
        if getattr(scorer, "precision", "auto") not in PRECISIONS:
            raise jobs.InvalidJob("precision", f"choose {', '.join(PRECISIONS)}, not {scorer.precision!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise jobs.InvalidJob("limit", f"give a positive number of examples (or none for all), not {self.limit!r}")
        with jobs.blame("engine"):
            engine_from_spec(self.engine)  # the engine's parameters only: no cluster is reached here

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ScoreJob:
        return cls(
            dataset=str(params["dataset"]),
            scorer=str(params["scorer"]),
            params=dict(params.get("params") or {}),
            limit=params.get("limit"),
            engine=params.get("engine"),
        )


def execute(workspace: Path, spec: ScoreJob, progress: Progress, job_dir: Path) -> dict[str, Any]:
    """Job kind ``score``: resumable, since every chunk of scores is committed as it is computed."""
    from core.score.scoring import build_scorer, estimate_seconds, pending, score_dataset
    from core.storage.database import Store
    from core.storage.datasets import get_dataset

    store = Store(workspace)
    dataset = get_dataset(store, spec.dataset)
    scorer = build_scorer(spec.scorer, **spec.params)
    only = None
    if spec.limit is not None:
        # the sample is drawn once, at the first start, and kept: a resumed job finishes that sample, where
        # drawing again from what is still unscored would score ``limit`` more examples, and other ones
        only = score_sample(job_dir, lambda: list(pending(store, dataset, scorer, spec.limit).content_hash))
    engine = engine_from_spec(spec.engine)
    if scorer.uses_model and engine is None:  # measured on a few examples on this device before the long run
        progress.start("estimate", 1)
        todo = pending(store, dataset, scorer, spec.limit, only=only)
        rate, seconds = estimate_seconds(scorer, todo)
        progress.message(f"estimate: {len(todo)} examples at {rate:.2f}/s = {seconds / 60:.1f} min")
    report = score_dataset(store, dataset, scorer, limit=spec.limit, only=only, progress=progress, engine=engine)
    return dataclasses.asdict(report)


def score_sample(job_dir: Path, draw: Callable[[], list[str]]) -> list[str]:
    """The content hashes a score job with a limit scores: read from its folder, else drawn and saved."""
    path = job_dir / "sample.json"
    if path.exists():
        return json.loads(path.read_text())
    hashes = draw()
    atomic.write_json(path, hashes, indent=1)  # a kill never leaves half a sample that a resume would trust
    return hashes
