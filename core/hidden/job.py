"""The ``hidden_states`` job: the base model's pooled hidden states of a dataset (and of target sets) for RDS+
(:mod:`core.hidden.pipeline`).

:class:`HiddenStatesJob` is what the Gradient graph page, the CLI and ``core.jobs.launch`` take;
:meth:`~HiddenStatesJob.validate` refuses an unknown dataset, an unknown or out-of-range setting, a bad
engine and a target file that does not read, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core import jobs
from core.engines import engine_from_spec
from core.progress import Progress

if TYPE_CHECKING:
    from core.hidden.pipeline import HiddenConfig


@dataclasses.dataclass(frozen=True)
class HiddenStatesJob:
    """Compute ``dataset``'s pooled hidden states (at most ``limit`` rows this run; None: all that are left)
    and those of each file in ``targets``. ``config`` names :class:`~core.hidden.pipeline.HiddenConfig` fields;
    those it leaves out keep their defaults."""

    kind: ClassVar[str] = "hidden_states"
    dataset: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    targets: tuple[str, ...] = ()
    limit: int | None = None
    engine: dict[str, Any] | None = None  # where the features run (core.engines); None: the worker itself

    def validate(self, workspace: Path) -> None:
        from core.hidden.pipeline import HiddenConfig
        from core.train.evaluate import load_eval_set

        jobs.ready_dataset(workspace, self.dataset)
        known = {field.name for field in dataclasses.fields(HiddenConfig)}
        unknown = set(self.config) - known
        if unknown:
            raise jobs.InvalidJob(
                "config", f"unknown hidden-state setting(s) {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        with jobs.blame("config"):  # a value of the wrong type fails the checks with a TypeError
            check_config(self.hidden_config())
        if self.limit is not None and self.limit < 1:
            raise jobs.InvalidJob("limit", f"must be at least 1 row, not {self.limit}")
        with jobs.blame("engine"):
            engine_from_spec(self.engine)  # the engine's parameters only: no cluster is reached here
        for path in self.targets:
            with jobs.blame("targets"):  # a bad row is reported with its file and line
                load_eval_set(path)

    def hidden_config(self) -> HiddenConfig:
        from core.hidden.pipeline import HiddenConfig

        return dataclasses.replace(HiddenConfig(), **self.config)

    def to_params(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "config": dict(self.config),
            "targets": list(self.targets),
            "limit": self.limit,
            "engine": self.engine,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> HiddenStatesJob:
        return cls(
            dataset=str(params["dataset"]),
            config=dict(params.get("config") or {}),
            targets=tuple(params.get("targets") or ()),
            limit=params.get("limit"),
            engine=params.get("engine"),
        )


def check_config(config: HiddenConfig) -> None:
    """Refuse values the pipeline cannot use, naming the field."""
    from core.hidden.pipeline import PRECISIONS

    if not str(config.model).strip():
        raise jobs.InvalidJob("model", "give a model name or folder")
    if config.max_length < 8:
        raise jobs.InvalidJob("max_length", f"must be at least 8 tokens, not {config.max_length}")
    if config.precision not in PRECISIONS:
        raise jobs.InvalidJob("precision", f"choose {', '.join(PRECISIONS)}, not {config.precision!r}")


def execute(workspace: Path, spec: HiddenStatesJob, progress: Progress, job_dir: Path) -> dict[str, Any]:
    """Job kind ``hidden_states``: resumable, since every finished part of the features is kept as it ends."""
    from core.hidden.pipeline import compute_hidden_states
    from core.storage.database import Store
    from core.storage.datasets import get_dataset

    store = Store(workspace)
    dataset = get_dataset(store, spec.dataset)
    engine = engine_from_spec(spec.engine)
    return compute_hidden_states(
        store, dataset, spec.hidden_config(), spec.targets, limit=spec.limit, progress=progress, engine=engine
    )
