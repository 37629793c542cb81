"""The ``gradients`` job: warmup, gradient features, graph and target features (:mod:`core.gradients.pipeline`).

:class:`GradientsJob` is what the Gradient graph page, the CLI and ``core.jobs.launch`` take;
:meth:`~GradientsJob.validate` refuses an unknown dataset, an unknown or out-of-range parameter, a
target file that does not read and a target with no responses, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core import jobs
from core.engines import engine_from_spec
from core.progress import Progress

if TYPE_CHECKING:
    from core.gradients.pipeline import GradientConfig
    from core.storage.database import Store

PROJECTIONS = ("sparse", "rademacher")
PRECISIONS = ("auto", "fp32", "bf16")
# One batched backward pass per example with the default 135M model on the reference 2-core CPU (the Gradient
# graph page's figure: 25 min for the 2,240-row sample data); the warmup and the graph come on top.
EXAMPLES_PER_SECOND = 1.5
POSITIVE = ("lora_r", "lora_alpha", "warmup_epochs", "max_length", "neighbours", "batch_size")


@dataclasses.dataclass(frozen=True)
class GradientsJob:
    """Compute ``dataset``'s gradient features and graph, and the features of each file in ``targets``.

    ``config`` names :class:`~core.gradients.pipeline.GradientConfig` fields; the fields it leaves out keep
    the values of the features already computed, so a target added later matches them.
    """

    kind: ClassVar[str] = "gradients"
    dataset: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    targets: tuple[str, ...] = ()
    engine: dict[str, Any] | None = None  # where the features run (core.engines); None: the worker itself

    def validate(self, workspace: Path) -> None:
        from core.gradients import target_report
        from core.gradients.pipeline import GradientConfig
        from core.train.evaluate import load_eval_set

        jobs.ready_dataset(workspace, self.dataset)
        known = {field.name for field in dataclasses.fields(GradientConfig)}
        unknown = set(self.config) - known
        if unknown:
            raise jobs.InvalidJob(
                "config", f"unknown gradient parameter(s) {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        with jobs.blame("config"):  # a value of the wrong type fails the checks with a TypeError
            check_config(dataclasses.replace(GradientConfig(), **self.config))
        with jobs.blame("engine"):
            engine_from_spec(self.engine)  # the engine's parameters only: no cluster is reached here
        for path in self.targets:
            with jobs.blame("targets"):  # a bad row is reported with its file and line
                target_report.require_responses([target_report.describe(load_eval_set(path))])

    def gradient_config(self, store: Store, dataset_id: int) -> GradientConfig:
        """The configuration to compute with: the current features' values, overridden by ``config``."""
        from core.gradients.pipeline import current_config

        return dataclasses.replace(current_config(store, dataset_id), **self.config)

    def to_params(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "config": dict(self.config),
            "targets": list(self.targets),
            "engine": self.engine,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GradientsJob:
        return cls(
            dataset=str(params["dataset"]),
            config=dict(params.get("config") or {}),
            targets=tuple(params.get("targets") or ()),
            engine=params.get("engine"),
        )


def check_config(config: GradientConfig) -> None:
    """Refuse values the pipeline cannot use, naming the field."""
    if config.d < 0:
        raise jobs.InvalidJob("d", f"give a feature dimension of 0 (automatic) or more, not {config.d}")
    if not 0 < config.warmup_fraction <= 1:
        raise jobs.InvalidJob("warmup_fraction", f"give a fraction in (0, 1], not {config.warmup_fraction}")
    for name in POSITIVE:
        if getattr(config, name) < 1:
            raise jobs.InvalidJob(name, f"must be at least 1, not {getattr(config, name)}")
    if config.learning_rate <= 0:
        raise jobs.InvalidJob("learning_rate", f"must be positive, not {config.learning_rate}")
    if config.projection not in PROJECTIONS:
        raise jobs.InvalidJob("projection", f"choose {', '.join(PROJECTIONS)}, not {config.projection!r}")
    if config.precision not in PRECISIONS:
        raise jobs.InvalidJob("precision", f"choose {', '.join(PRECISIONS)}, not {config.precision!r}")


def execute(workspace: Path, spec: GradientsJob, progress: Progress, job_dir: Path) -> dict[str, Any]:
    """Job kind ``gradients``: resumable, since the warmup and every chunk of features are saved as they end."""
    from core.gradients.pipeline import compute_gradients
    from core.storage.database import Store
    from core.storage.datasets import get_dataset

    store = Store(workspace)
    dataset = get_dataset(store, spec.dataset)
    config = spec.gradient_config(store, dataset.dataset_id)
    return compute_gradients(store, dataset, config, spec.targets, progress, engine=engine_from_spec(spec.engine))
