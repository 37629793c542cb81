"""The ``prepare`` job: prepare a dataset file (:func:`core.prepare.prepare`) in a background worker.

:class:`PrepareJob` is what the Datasets page and ``core.jobs.launch`` take; its :meth:`~PrepareJob.validate`
refuses, before any worker starts, what the prepare would only find out later: a missing file (or a folder
that holds no dataset, an empty ``hf:``), an unknown embedder or one of its parameters, a field that cannot be embedded, a bad k grid or mapping, a
dataset name that cannot be one.
What only reading the file reveals (a malformed row) still fails in the worker, with its file and line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from core import ingest, jobs
from core.engines import engine_from_spec
from core.ingest import hf
from core.prepare import PrepareOptions, dataset_name, source_of
from core.progress import Progress


@dataclasses.dataclass(frozen=True)
class PrepareJob:
    """Prepare the file at ``path`` (or the Hugging Face source it names: ``hf:ORG/NAME``, a folder) with
    ``options``; stored as ``{"path": ..., "options": {...}}``."""

    kind: ClassVar[str] = "prepare"
    path: str
    options: PrepareOptions = dataclasses.field(default_factory=PrepareOptions)
    engine: dict[str, Any] | None = None  # where the embedding runs (core.engines); None: the worker itself

    def validate(self, workspace: Path) -> None:
        from core.embed.embedders import build_embedder

        options = self.options
        source = source_of(self.path, options)
        if isinstance(source, hf.HFSource):
            with jobs.blame("path"):
                hf.check_source(source)
        elif not source.is_file():
            raise jobs.InvalidJob("path", f"no file at {self.path}")
        else:
            _refuse_hf_options(options, source)
        with jobs.blame("name"):
            dataset_name(self.path, options)
        if not options.embed_fields:
            raise jobs.InvalidJob("embed_fields", "choose at least one field to embed")
        for field in options.embed_fields:
            if field not in ingest.MAPPABLE_FIELDS:
                raise jobs.InvalidJob("embed_fields", f"cannot embed {field!r}; choose from {ingest.MAPPABLE_FIELDS}")
        for field in options.mapping or {}:
            if field not in ingest.MAPPABLE_FIELDS:
                raise jobs.InvalidJob("mapping", f"cannot map {field!r}; map {', '.join(ingest.MAPPABLE_FIELDS)}")
        if options.k_grid is not None and (not options.k_grid or min(options.k_grid) < 1):
            raise jobs.InvalidJob("k_grid", f"give positive k values, not {list(options.k_grid)}")
        with jobs.blame("embedder"):
            build_embedder(options.embedder)  # builds the dataclass only: no model is loaded here
        with jobs.blame("engine"):
            engine_from_spec(self.engine)  # the engine's parameters only: no cluster is reached here

    def to_params(self) -> dict[str, Any]:
        return {"path": self.path, "options": dataclasses.asdict(self.options), "engine": self.engine}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PrepareJob:
        options = dict(params.get("options") or {})
        for name in ("embed_fields", "k_grid"):
            if options.get(name) is not None:
                options[name] = tuple(options[name])  # JSON has lists; the options hold tuples
        return cls(path=str(params["path"]), options=PrepareOptions(**options), engine=params.get("engine"))


def _refuse_hf_options(options: PrepareOptions, path: Path) -> None:
    """A config, split or streaming is for a Hugging Face dataset: given with a file, it is a mistake."""
    for field, value in (("hf_config", options.hf_config), ("hf_split", options.hf_split)):
        if value:
            raise jobs.InvalidJob(field, f"{path.name} is a file: a config or split is for a Hugging Face dataset")
    if options.hf_streaming:
        raise jobs.InvalidJob("hf_streaming", f"{path.name} is a file: streaming is for a Hugging Face dataset")


def execute(workspace: Path, spec: PrepareJob, progress: Progress, job_dir: Path) -> dict[str, Any]:
    """Job kind ``prepare``: resumable, since each stage of a prepare commits what it computed."""
    from core.prepare import prepare
    from core.storage.database import Store

    report = prepare(Store(workspace), spec.path, spec.options, progress, engine=engine_from_spec(spec.engine))
    return dataclasses.asdict(report)
